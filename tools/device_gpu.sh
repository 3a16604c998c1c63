#!/usr/bin/env bash
# device_gpu.sh — build gptq-c with the HIP plugin compiled by nvcc (through
# backends/hip/hip_compat_nvidia.h) on the device machine (one NVIDIA H100,
# CUDA 13, no Debian packages, no network), run the GPU tests and the GPU
# benchmark, and leave the logs in $OUT.
#
# Run it through the device tool from the repository root, carrying the
# Debian packages the CPU core needs (made here, on the dev machine):
#   /work/shared/tools/device-debs.sh .debs libcjson1 libcjson-dev \
#       libpcre2-8-0 libpcre2-dev libutf8proc2 libutf8proc-dev libcriterion3 libcriterion-dev libgit2-1.5 \
#       libnanomsg5 libhttp-parser2.9 libmbedcrypto7 libmbedtls14 \
#       libmbedx509-1 libssh2-1 libffi8 pkgconf pkgconf-bin libpkgconf3 \
#       libgssapi-krb5-2 libkrb5-3 libk5crypto3 libkrb5support0 libkeyutils1 \
#       libcom-err2
#   device run: command "bash tools/device_gpu.sh [STEPS]", carry [".debs"]
# STEPS (default "build test bench"): any of
#   build     meson setup + ninja of the plugin, the tests and benches used here
#             (build-gpu, -Dhip=enabled -Doffload_arch=sm_90)
#   test      meson test: hip_codeobj, hip, gptq, hostile_args (its GPU rows), genfast (its
#             genfast_hip rows: joined linears on hip), backend_ops (the op table:
#             every row on hip against the CPU; its lines in backend_ops.log)
#   sanitize  compute-sanitizer memcheck + racecheck on test_backend_ops and test_hip
#   bench     bench_hip_layer at the three Llama-2-7B shapes, 262144 tokens
#   ops       bench_ops: every row of the op table on cpu and hip (OPS_ARGS adds
#             options, e.g. --scale 8 --filter gemm)
#   benchlayer bench_layer --backend hip (the public API, host data)
#   linear    bench_hip_layer --linear: gemm f32 and linear_fast TF32 v1/v2
#   e2e       `gptq quantize --backend hip` of a random bf16 model with
#             Llama-2-7B's shapes (bench/make_random_llama.py, made here on
#             the GPU) with 128 x 2048 calibration tokens of data/text/calib.txt,
#             4-bit g128: wall time, the command's own time split and peak
#             device memory, and nvidia-smi's peak memory.used sampled every
#             200 ms. E2E_ARGS adds options (e.g. --forward-math tf32).
#   matmul    `gptq matmul` (the reference A16 matmul) on two modules of the e2e
#             checkpoint, X (32, in) random, on the cpu and the hip backend:
#             the seconds each takes and whether Y and W are the same bytes
#   prof      where a decode call's time goes: bench_hip_w4a16's call floor (host
#             queueing vs GPU), ncu durations, ncu --set full of the first gemv-mma
#   optable   only the op table of `test` (test_backend_ops: every row on hip
#             against the CPU, in backend_ops.log), without the other suites
#   families  test_families' GPU rows: the Gemma 2 / Gemma 3 forward on hip against
#             transformers' logits (tests/data/families), and `gptq diff --backends
#             cpu,hip --feed ref` on both models, after build
#   gar       GAR (act_group_aware) on hip against the CPU, after build: test_hip's
#             quantize_layer rows and test_diff's hip/golden* and hip/tiny_llama*
#             (in $OUT/gar.log)
#   w4a16     the HIP matmul_q_fast (backends/hip/hip_w4a16.hip), after build: the
#             op table's matmul_q_fast rows on hip against the CPU (w4a16_ops.log),
#             `gptq matmul --fast` on hip (auto, simt, mma) vs cpu vs the reference on RTN
#             checkpoints of data/tiny-llama (w4 g32, w4 one group, w8 g128), and
#             bench_hip_w4a16 (copy bandwidth, 7B shapes at M = 1, a whole decode
#             step, prefill; w4a16_bench.log)
#   genstep   bench_gen_step on an RTN checkpoint of data/tiny-llama, hip and cpu: a
#             generate decode step with the fast linears joined and apart (genstep.log)
#   tf32acc   what --forward-math tf32 costs in accuracy, on data/tiny-llama:
#             perplexity on data/text/eval.txt (seqlen 256) of the fp model
#             and of GPTQ w4 g128 checkpoints quantized on the GPU with the
#             forward in f32 and in tf32 (every eval itself in f32)
# The packages are unpacked into /tmp/deps (never into /); minimal
# pkg-config files pointing there are written to /tmp/deps/pc.
set -uo pipefail
steps=${*:-build test bench}
OUT=${OUT:-/tmp/gptq-out}
mkdir -p "$OUT"
root=$(pwd)
log() { echo "== $*" | tee -a "$OUT/summary.txt"; }

log "device_gpu.sh: steps: $steps"
{
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv
    nvcc --version | tail -2
    gcc --version | head -1
    python3 -m mesonbuild.mesonmain --version 2>/dev/null || meson --version
    ninja --version
    nproc
} >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

# ---- dependencies: Debian packages unpacked under /tmp/deps ----
D=/tmp/deps
# always unpack: a warm machine may hold another run's /tmp/deps without ours
mkdir -p "$D"
# DEBS: the carried folder (default .debs); it may hold openblas-headers.tar
# instead of the 5 MB libopenblas-pthread-dev (tools/device_diff.sh prepare)
DEBS=${DEBS:-.debs}
for f in "$DEBS"/*.deb; do dpkg -x "$f" "$D" || { echo "cannot unpack $f"; exit 1; }; done
[ -f "$DEBS/openblas-headers.tar" ] && tar -xf "$DEBS/openblas-headers.tar" -C "$D"
L=$D/usr/lib/x86_64-linux-gnu
# the system compiler's own OpenMP runtime must win over bookworm's (newer
# symbol versions): drop ours when the system has one
if ldconfig -p | grep -q 'libgomp.so.1 '; then rm -f "$L"/libgomp.so*; fi
export LD_LIBRARY_PATH=$L:$L/openblas-pthread${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
mkdir -p "$D/pc"
pc() { # name cflags libs
    printf 'Name: %s\nDescription: %s (unpacked Debian package)\nVersion: 99\nCflags: %s\nLibs: %s\n' \
        "$1" "$1" "$2" "$3" >"$D/pc/$1.pc"
}
pc openblas "-I$D/usr/include/x86_64-linux-gnu/openblas-pthread" "-L$L/openblas-pthread -lopenblas"
pc lapacke "-I$D/usr/include/x86_64-linux-gnu -I$D/usr/include" "-L$L -llapacke"
pc libcjson "-I$D/usr/include/cjson -I$D/usr/include" "-L$L -lcjson"
pc libpcre2-8 "-I$D/usr/include" "-L$L -lpcre2-8"
pc libutf8proc "-I$D/usr/include" "-L$L -lutf8proc"
pc criterion "-I$D/usr/include" "-L$L -lcriterion -pthread"
export PKG_CONFIG_PATH=$D/pc PKG_CONFIG_LIBDIR=$D/pc
if ! command -v pkg-config >/dev/null; then
    export PKG_CONFIG=$D/usr/bin/pkgconf
fi
export LIBRARY_PATH=$L:$L/openblas-pthread
MESON="meson"
command -v meson >/dev/null || MESON="python3 -m mesonbuild.mesonmain"
B=build-gpu

for step in $steps; do
    case $step in
    build)
        log "build"
        rm -rf "$B"
        # GPTQ_TESTS=disabled: no Criterion needed (the plugin, the CLI, the benches)
        tests=${GPTQ_TESTS:-enabled}
        targets="backends/hip/libgptq-hip.so bench/bench_hip_layer bench/bench_layer bench/bench_ops src/cli/gptq
            bench/bench_hip_w4a16 bench/bench_w4a16 bench/bench_gen_step"
        [ "$tests" = enabled ] && targets="$targets tests/test_hip tests/test_gptq tests/test_backend_ops
            tests/test_hostile_args tests/test_genfast tests/libgptq-testgood.so
            tests/libgptq-testdeclines.so tests/libgptq-testnofast.so"
        # shellcheck disable=SC2086
        $MESON setup "$B" -Dhip=enabled -Doffload_arch=sm_90 -Dtests=$tests >"$OUT/build.log" 2>&1 &&
            ninja -C "$B" $targets >>"$OUT/build.log" 2>&1
        rc=$?
        # the first errors (a compile error of the plugin is otherwise buried)
        grep -m 20 -E "error|FAILED" "$OUT/build.log"
        tail -25 "$OUT/build.log"
        log "build rc=$rc"
        [ $rc -eq 0 ] || exit 1
        ;;
    test)
        log "test"
        timeout 300 $MESON test -C "$B" --no-rebuild --print-errorlogs hip_codeobj hip gptq hostile_args \
            genfast backend_ops >"$OUT/test.log" 2>&1
        rc=$?
        # every row of the op table on hip against the CPU, with its figure and tolerance
        GPTQ_BUILD_ROOT=$root/$B OPENBLAS_CORETYPE=Haswell timeout 120 "$B/tests/test_backend_ops" \
            --jobs 1 >"$OUT/backend_ops.log" 2>&1
        echo "backend_ops: $(grep -c ' hip vs ' "$OUT/backend_ops.log") row checks on hip," \
            "$(grep -c '^\[skip\]' "$OUT/backend_ops.log") skips; $(tail -1 "$OUT/backend_ops.log")"
        # per-test details of the HIP suite (criterion's own report, with the logged figures)
        GPTQ_BUILD_ROOT=$root/$B OPENBLAS_CORETYPE=Haswell timeout 120 "$B/tests/test_hip" \
            --verbose --jobs 1 >>"$OUT/test.log" 2>&1
        grep -E "^\s*[0-9]+/[0-9]+ |\[(PASS|FAIL|SKIP)\]|identical|Synthesis" "$OUT/test.log" | tail -40
        log "test rc=$rc"
        ;;
    prof)
        # where a decode call's time goes: the host's queueing vs the GPU (bench_hip_w4a16's
        # call floor), each kernel's own duration (ncu, kernels serialized) at the floor's
        # 128 x 128 and at 4096 x 4096, and ncu --set full of the first PROF_KERNEL launch
        log "prof: matmul_q_fast: call floor, ncu"
        export GPTQ_BACKEND_PATH=$root/$B/backends/hip OPENBLAS_CORETYPE=Haswell
        "$B/bench/bench_hip_w4a16" --sections floor --gb 0.25 2>&1 | tee "$OUT/prof_floor.txt"
        GPTQ_HIP_W4A16=simt "$B/bench/bench_hip_w4a16" --sections floor --gb 0.25 2>&1 |
            tee -a "$OUT/prof_floor.txt"
        if command -v ncu >/dev/null; then
            timeout 120 ncu --metrics gpu__time_duration.sum -k regex:w4_gemv -c 6 \
                "$B/bench/bench_hip_w4a16" --sections floor --layers 1 --reps 1 --gb 0.25 \
                >"$OUT/prof_ncu_floor.txt" 2>&1
            grep -E "w4_gemv|duration" "$OUT/prof_ncu_floor.txt" | head -12
            timeout 240 ncu --set full --import-source no -k "regex:${PROF_KERNEL:-w4_gemv_mma}" \
                -c "${PROF_COUNT:-1}" "$B/bench/bench_hip_w4a16" --sections validate --reps 1 \
                --gb 0.25 >"$OUT/prof_ncu.txt" 2>&1
            log "prof: ncu rc=$?"
            grep -E "Duration|DRAM Throughput|Issued Instructions  |Achieved Occupancy|Registers Per|No Eligible|Warp Cycles Per Issued" \
                "$OUT/prof_ncu.txt" | head -20
            # each shape once (4096x4096, 4096x11008, 11008x4096, joined 4096x12288 and
            # 4096x22016): duration, DRAM rate, occupancy, instructions; then where the
            # warps stall (the WarpStateStats section's raw metrics, cycles per issue)
            timeout 120 ncu --metrics gpu__time_duration.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,dram__bytes_read.sum,sm__warps_active.avg.pct_of_peak_sustained_active,smsp__inst_executed.sum,sm__cycles_elapsed.avg.per_second \
                -k "regex:${PROF_KERNEL:-w4_gemv_mma}" -c 5 "$B/bench/bench_hip_w4a16" --sections once \
                --reps 1 --gb 0.25 >"$OUT/prof_ncu_once.txt" 2>&1
            grep -E "w4_gemv|once:|duration|dram__|warps_active|inst_executed" "$OUT/prof_ncu_once.txt" |
                sed 's/  */ /g' | head -45
            timeout 180 ncu --section WarpStateStats --page raw -k "regex:${PROF_KERNEL:-w4_gemv_mma}" \
                -c 5 "$B/bench/bench_hip_w4a16" --sections once --reps 1 --gb 0.25 \
                >"$OUT/prof_ncu_stalls.txt" 2>&1
            log "prof: stalls rc=$?"
            grep -E "w4_gemv|issue_stalled.*per_issue_active|warp_latency_per_inst_issued" \
                "$OUT/prof_ncu_stalls.txt" | awk '$NF+0 >= 0.2 || /w4_gemv/' | sed 's/  */ /g' | head -80
        fi
        ;;
    optable)
        log "optable"
        GPTQ_BUILD_ROOT=$root/$B OPENBLAS_CORETYPE=Haswell timeout 120 "$B/tests/test_backend_ops" \
            --verbose --jobs 1 >"$OUT/backend_ops.log" 2>&1
        rc=$?
        echo "backend_ops: $(grep -c ' hip vs ' "$OUT/backend_ops.log") row checks on hip," \
            "$(grep -c '^\[skip\]' "$OUT/backend_ops.log") skips; $(tail -1 "$OUT/backend_ops.log")"
        log "optable rc=$rc"
        ;;
    families)
        log "families"
        ninja -C "$B" tests/test_families >>"$OUT/build.log" 2>&1
        GPTQ_SOURCE_ROOT=$root OPENBLAS_CORETYPE=Haswell timeout 120 "$B/tests/test_families" \
            --verbose --jobs 1 >"$OUT/families.log" 2>&1
        rc=$?
        grep -E "\[(PASS|FAIL|SKIP)\]|max \|diff\||Synthesis" "$OUT/families.log" | tail -30
        log "families rc=$rc"
        # and the GPTQ solve of both Gemma models, hip fed the CPU's layer inputs
        for f in gemma2 gemma3; do
            GPTQ_BACKEND_PATH=$root/$B/backends/hip OPENBLAS_CORETYPE=Haswell timeout 60 \
                "$B/src/cli/gptq" diff "tests/data/families/$f" --backends cpu,hip --feed ref \
                --calib data/text/calib.txt --nsamples 8 --seqlen 96 >>"$OUT/families.log" 2>&1
            log "gptq diff $f cpu,hip --feed ref rc=$?"
        done
        tail -12 "$OUT/families.log"
        ;;
    sanitize)
        log "sanitize"
        # the op table (every op against the CPU), the Hessian finished on the
        # GPU (hessian_finish, dot), the device-resident layer solve
        for tool in memcheck racecheck; do
            GPTQ_BUILD_ROOT=$root/$B OPENBLAS_CORETYPE=Haswell timeout 300 compute-sanitizer \
                --tool $tool --error-exitcode 9 "$B/tests/test_backend_ops" --jobs 1 \
                >>"$OUT/sanitize_$tool.log" 2>&1
            log "compute-sanitizer $tool test_backend_ops rc=$?"
            for f in 'hip/quantize_with_the_accumulated_hessian*' 'hip/quantize_layer_dev*'; do
                GPTQ_BUILD_ROOT=$root/$B OPENBLAS_CORETYPE=Haswell timeout 150 compute-sanitizer \
                    --tool $tool --error-exitcode 9 "$B/tests/test_hip" --jobs 1 --filter "$f" \
                    >>"$OUT/sanitize_$tool.log" 2>&1
                log "compute-sanitizer $tool $f rc=$?"
            done
            grep -E "Synthesis|ERROR SUMMARY|RACECHECK SUMMARY" "$OUT/sanitize_$tool.log"
        done
        ;;
    bench)
        log "bench"
        timeout 240 "$B/bench/bench_hip_layer" --backend hip --tokens 262144 --reps 3 --attention 2>&1 |
            tee "$OUT/bench.log"
        log "bench rc=$?"
        ;;
    ops)
        log "ops: the op table timed on cpu and hip"
        # shellcheck disable=SC2086
        GPTQ_BACKEND_PATH=$root/$B/backends/hip OPENBLAS_CORETYPE=SkylakeX timeout 300 \
            "$B/bench/bench_ops" ${OPS_ARGS:-} 2>&1 | tee "$OUT/ops.log"
        log "ops rc=$?"
        ;;
    linear)
        log "linear: the forward's Linears, gemm f32 vs linear_fast TF32 v1 / v2"
        timeout 120 "$B/bench/bench_hip_layer" --backend hip --no-check --tokens 4096 \
            --shapes 4096x4096 --reps 3 --linear 2>&1 | tee "$OUT/linear.log"
        log "linear rc=$?"
        ;;
    benchlayer)
        log "bench_layer (public API)"
        timeout 200 "$B/bench/bench_layer" --backend hip --tokens 262144 2>&1 | tee "$OUT/bench_layer.log"
        log "bench_layer rc=$?"
        ;;
    e2e)
        log "e2e: gptq quantize of a random Llama-2-7B-shaped bf16 model"
        M=/tmp/llama2-7b-random
        if [ ! -f $M/config.json ]; then
            python3 bench/make_random_llama.py $M --shape llama-2-7b 2>&1 | tee -a "$OUT/e2e.log"
        fi
        sync
        nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 \
            >"$OUT/e2e_smi.txt" 2>/dev/null &
        smi=$!
        # shellcheck disable=SC2086
        GPTQ_BACKEND_PATH=$root/$B/backends/hip OPENBLAS_CORETYPE=SkylakeX \
            /usr/bin/time -v timeout ${E2E_TIMEOUT:-560} "$B/src/cli/gptq" quantize $M -o /tmp/llama2-7b-gptq \
            --calib data/text/calib.txt --nsamples 128 --seqlen 2048 --bits 4 --group-size 128 \
            --backend hip --log-json "$OUT/e2e_modules.jsonl" ${E2E_ARGS:-} \
            >"$OUT/e2e_quantize.log" 2>&1
        rc=$?
        kill $smi 2>/dev/null
        grep -v '^\[' "$OUT/e2e_quantize.log" | tail -30
        echo "nvidia-smi peak memory.used: $(sort -n "$OUT/e2e_smi.txt" | tail -1) MiB" |
            tee -a "$OUT/e2e.log"
        du -sh /tmp/llama2-7b-gptq 2>/dev/null | tee -a "$OUT/e2e.log"
        log "e2e rc=$rc"
        ;;
    matmul)
        log "matmul: the reference A16 matmul on the e2e checkpoint, cpu vs hip"
        C=/tmp/llama2-7b-gptq
        [ -f $C/config.json ] || { echo "no $C: run the e2e step first"; exit 1; }
        export GPTQ_BACKEND_PATH=$root/$B/backends/hip OPENBLAS_CORETYPE=SkylakeX
        for mod in model.layers.0.self_attn.q_proj:4096 model.layers.31.mlp.down_proj:11008; do
            name=${mod%%:*} k=${mod##*:}
            python3 - "$k" /tmp/x_$k.safetensors <<'PY'
import sys, torch
from safetensors.torch import save_file
g = torch.Generator().manual_seed(0)
save_file({"X": torch.randn(32, int(sys.argv[1]), generator=g)}, sys.argv[2])
PY
            for be in cpu hip; do
                "$B/src/cli/gptq" matmul $C --module "$name" -x /tmp/x_$k.safetensors \
                    -o /tmp/y_$be.safetensors --dequant --backend $be 2>&1 | tee -a "$OUT/matmul.log"
            done
            python3 - <<'PY' 2>&1 | tee -a "$OUT/matmul.log"
from safetensors.torch import load_file
a, b = load_file("/tmp/y_cpu.safetensors"), load_file("/tmp/y_hip.safetensors")
for t in ("Y", "W"):
    same = a[t].view(-1).view(dtype=__import__("torch").int32).eq(
        b[t].view(-1).view(dtype=__import__("torch").int32)).float().mean().item()
    print(f"  {t} {tuple(a[t].shape)}: cpu and hip bytes identical for {same * 100:.4f}% of elements")
PY
        done
        log "matmul done"
        ;;
    genstep)
        log "genstep: a generate decode step, fast linears joined and apart"
        ninja -C "$B" bench/bench_gen_step >>"$OUT/build.log" 2>&1
        export GPTQ_BACKEND_PATH=$root/$B/backends/hip OPENBLAS_CORETYPE=Haswell
        "$B/src/cli/gptq" quantize data/tiny-llama -o /tmp/tiny-genstep --method rtn --quiet \
            >>"$OUT/genstep.log" 2>&1
        for be in hip cpu; do
            "$B/bench/bench_gen_step" /tmp/tiny-genstep --backend $be 2>&1 | tee -a "$OUT/genstep.log"
        done
        ;;
    w4a16)
        log "w4a16: the HIP matmul_q_fast"
        GPTQ_BUILD_ROOT=$root/$B OPENBLAS_CORETYPE=Haswell timeout 150 "$B/tests/test_backend_ops" \
            --verbose --jobs 1 --filter 'backend_ops/matmul_q_fast' >"$OUT/w4a16_ops.log" 2>&1
        rc=$?
        grep ' hip vs ' "$OUT/w4a16_ops.log" | sed 's/ (.*//' | tail -60
        grep -E "\[(FAIL|SKIP)|skip\]" "$OUT/w4a16_ops.log" | head
        log "w4a16: op table rows on hip: $(grep -c ' hip vs ' "$OUT/w4a16_ops.log"), rc=$rc"
        export GPTQ_BACKEND_PATH=$root/$B/backends/hip OPENBLAS_CORETYPE=Haswell
        for v in "g32:--bits 4 --group-size 32" "g-1:--bits 4 --group-size -1" "b8:--bits 8"; do
            name=${v%%:*}
            # shellcheck disable=SC2086
            "$B/src/cli/gptq" quantize data/tiny-llama -o /tmp/tiny-rtn-$name --method rtn \
                ${v#*:} --quiet >>"$OUT/w4a16_matmul.log" 2>&1 ||
                log "w4a16: quantize $name failed"
            for mod in model.layers.0.self_attn.q_proj:256 model.layers.2.mlp.down_proj:384; do
                m=${mod%%:*} k=${mod##*:}
                for M in 1 40; do
                    python3 - "$M" "$k" /tmp/x.safetensors <<'PY'
import sys, torch
from safetensors.torch import save_file
g = torch.Generator().manual_seed(int(sys.argv[1]))
save_file({"X": torch.randn(int(sys.argv[1]), int(sys.argv[2]), generator=g)}, sys.argv[3])
PY
                    for run in "ref:--backend cpu" "cpu:--backend cpu --fast" "hip:--backend hip --fast" \
                        "simt:--backend hip --fast" "mma:--backend hip --fast"; do
                        # shellcheck disable=SC2086
                        case ${run%%:*} in simt | mma) export GPTQ_HIP_W4A16=${run%%:*} ;; esac
                        "$B/src/cli/gptq" matmul /tmp/tiny-rtn-$name --module "$m" -x /tmp/x.safetensors \
                            -o /tmp/y_${run%%:*}.safetensors ${run#*:} >>"$OUT/w4a16_matmul.log" 2>&1 ||
                            log "w4a16: gptq matmul ${run#*:} failed ($name $m M=$M)"
                        unset GPTQ_HIP_W4A16
                    done
                    python3 - "$name $m M=$M" <<'PY' 2>&1 | tee -a "$OUT/w4a16_matmul.log"
import sys
from safetensors.torch import load_file
r = load_file("/tmp/y_ref.safetensors")["Y"].double()
out = []
for n in ("cpu", "hip", "simt", "mma"):
    y = load_file(f"/tmp/y_{n}.safetensors")["Y"].double()
    out.append(f"{n} max|d|/max|ref| {((y - r).abs().max() / r.abs().max()).item():.2e}")
print(f"  {sys.argv[1]}: fast vs reference: " + ", ".join(out))
PY
                done
            done
        done
        grep -E "fast kernel" "$OUT/w4a16_matmul.log" | sort | uniq -c | head
        unset GPTQ_BACKEND_PATH
        timeout 300 "$B/bench/bench_hip_w4a16" 2>&1 | tee "$OUT/w4a16_bench.log"
        log "w4a16: bench rc=$?"
        ;;
    tf32acc)
        log "tf32acc: --forward-math f32 vs tf32 on data/tiny-llama"
        export GPTQ_BACKEND_PATH=$root/$B/backends/hip OPENBLAS_CORETYPE=SkylakeX
        for math in f32 tf32; do
            "$B/src/cli/gptq" eval data/tiny-llama --text data/text/eval.txt --seqlen 256 \
                --backend hip --forward-math $math 2>&1 | tail -1 | sed "s/^/fp, eval $math: /" |
                tee -a "$OUT/tf32acc.log"
            "$B/src/cli/gptq" quantize data/tiny-llama -o /tmp/tiny-$math --calib data/text/calib.txt \
                --nsamples 128 --seqlen 256 --asym --backend hip --forward-math $math --quiet &&
                "$B/src/cli/gptq" eval /tmp/tiny-$math --text data/text/eval.txt --seqlen 256 \
                    --backend hip 2>&1 | tail -1 | sed "s/^/gptq w4 asym, quantize $math: /" |
                    tee -a "$OUT/tf32acc.log"
        done
        log "tf32acc done"
        ;;
    gar)
        # GAR (act_group_aware, issue 13) on hip against the CPU: test_hip's
        # layer rows (act-order, GAR, GAR + static groups; the device-resident
        # solve, its first variants in GAR's order), and test_diff's (the
        # gar_* goldens within the diff thresholds, tiny-llama cpu vs hip)
        log "gar"
        ninja -C "$B" tests/test_diff >>"$OUT/build.log" 2>&1 || { log "gar: build rc=$?"; exit 1; }
        for t in "test_hip hip/quantize_layer*" "test_diff hip/golden*" "test_diff hip/tiny_llama*"; do
            GPTQ_BUILD_ROOT=$root/$B GPTQ_SOURCE_ROOT=$root OPENBLAS_CORETYPE=Haswell \
                GPTQ_BACKEND_PATH=$root/$B/backends/hip timeout 150 "$B/tests/${t%% *}" \
                --verbose --jobs 1 --filter "${t#* }" >>"$OUT/gar.log" 2>&1
            log "gar: ${t} rc=$?"
        done
        grep -E "\[(PASS|FAIL|SKIP)\]|identical|ref/|cpu vs hip|Synthesis" "$OUT/gar.log" | tail -40
        ;;
    *)
        echo "unknown step $step"
        exit 2
        ;;
    esac
done
