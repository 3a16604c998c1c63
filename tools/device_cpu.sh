#!/usr/bin/env bash
# device_cpu.sh — gptq-c's CPU build on the device machine's 16-core CPU.
# There are no Debian packages there: the .deb files carried in .debs-cpu
# (made here with ../shared/tools/device-debs.sh .debs-cpu libcjson1
# libcjson-dev libpcre2-8-0 libpcre2-dev libutf8proc2 libutf8proc-dev, minus
# libopenblas-pthread-dev whose headers travel as openblas-headers.tar) or,
# when there is no .debs-cpu, in .debs (the set tools/device_gpu.sh uses:
# copy /work/main/.debs) are unpacked into /tmp/deps and the sources
# compiled with gcc directly (no meson, no Criterion).
#
#   device run: bash tools/device_cpu.sh [STEPS]      carry: .debs-cpu or .debs [.dev/acc]
# STEPS (default "build bench"):
#   build     the gptq CLI and bench_layer into /tmp/gptq-bin
#   bench     bench_layer at Llama-2-7B layer shapes, 16 threads, 16,384 tokens
#   accuracy  tools/accuracy_matrix.sh on the models in .dev/acc/models
#             (MODELS env), with .dev/acc/text/{calib,eval}.txt
#   kernels   bench_w4a16 (the fast W4A16 matmul, 7B shapes, w4 g128, against
#             the read/triad bandwidth it measures): every ISA the CPU runs at
#             all threads, the best one with a sweep of 1, 2, 4, 8 and all
#             threads (tools/device_cpu_kernels.sh runs build + kernels;
#             ISAS="avx512 ..." picks the ISAs)
# OpenBLAS 0.3.21 does not recognise this (virtualised Sapphire Rapids) CPU
# and falls back to its slowest kernels ("Prescott"): the kernel family is
# pinned to SkylakeX (AVX-512) or Haswell (AVX2) unless OPENBLAS_CORETYPE is
# set. Logs and tables go to $OUT.
set -euo pipefail
steps=${*:-build bench}
OUT=${OUT:-/tmp/out}
mkdir -p /tmp/deps "$OUT" /tmp/gptq-bin
DEBS=.debs-cpu
ls "$DEBS"/*.deb >/dev/null 2>&1 || DEBS=.debs
for f in "$DEBS"/*.deb; do dpkg -x "$f" /tmp/deps; done
# the OpenBLAS headers may travel as a tar (the -dev .deb is mostly a static library)
for f in "$DEBS"/*.tar; do [ -f "$f" ] && tar xf "$f" -C /tmp/deps; done
D=/tmp/deps/usr
LIB=$D/lib/x86_64-linux-gnu
# the system compiler's own OpenMP runtime must win over bookworm's (.debs
# carries libgomp1): drop ours when the system has one
if ldconfig -p | grep 'libgomp.so.1 ' >/dev/null; then rm -f "$LIB"/libgomp.so*; fi
export LD_LIBRARY_PATH=$LIB:$LIB/openblas-pthread
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
  if grep -qw avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX
  else export OPENBLAS_CORETYPE=Haswell; fi
fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
echo "OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE OMP_NUM_THREADS=$OMP_NUM_THREADS" | tee "$OUT/env.txt"

for step in $steps; do
case $step in
build)
  # the -dev packages' .so links point into /usr/lib: link by path instead
  ln -sf "$LIB/openblas-pthread/libopenblas.so.0" /tmp/deps/libopenblas.so
  ln -sf "$LIB/liblapacke.so.3" /tmp/deps/liblapacke.so
  ln -sf "$LIB/libcjson.so.1" /tmp/deps/libcjson.so
  ln -sf "$LIB/libpcre2-8.so.0" /tmp/deps/libpcre2-8.so
  ln -sf "$LIB/libutf8proc.so.2" /tmp/deps/libutf8proc.so
  CFLAGS="-std=c11 -O3 -ffp-contract=off -fno-fast-math -fopenmp -D_DEFAULT_SOURCE -DNDEBUG
    -Isrc -Ibackends -Ibackends/cpu -I$D/include -I$D/include/x86_64-linux-gnu
    -I$D/include/x86_64-linux-gnu/openblas-pthread"
  LIBS="-L/tmp/deps -lopenblas -llapacke -lcjson -lpcre2-8 -lutf8proc -lm -ldl -lpthread"
  mkdir -p /tmp/obj
  objs=()
  # every library source: src/ but the CLI, and the CPU backend
  for s in $(find src backends/cpu -name '*.c' -not -path 'src/cli/*' | sort); do
    o=/tmp/obj/$(echo "$s" | tr / _).o
    gcc $CFLAGS -c "$s" -o "$o" &
    objs+=("$o")
  done
  wait
  gcc $CFLAGS bench/bench_layer.c "${objs[@]}" -o /tmp/gptq-bin/bench_layer $LIBS
  gcc $CFLAGS bench/bench_w4a16.c "${objs[@]}" -o /tmp/gptq-bin/bench_w4a16 $LIBS
  gcc $CFLAGS -Isrc/cli src/cli/*.c "${objs[@]}" -o /tmp/gptq-bin/gptq $LIBS
  ;;
bench)
  /tmp/gptq-bin/bench_layer --tokens 16384 | tee "$OUT/bench_cpu.txt"
  ;;
accuracy)
  # GNU time is not installed there: a stand-in printing the two lines the
  # matrix script reads (wall clock, peak RSS of the child)
  if [ ! -x /usr/bin/time ]; then
    cat > /tmp/gptq-bin/time <<'PY'
#!/usr/bin/env python3
import resource, subprocess, sys, time
args = sys.argv[2:] if sys.argv[1:2] == ["-v"] else sys.argv[1:]
t0 = time.time(); rc = subprocess.call(args); dt = time.time() - t0
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
sys.stderr.write("\tElapsed (wall clock) time (h:mm:ss or m:ss): %d:%05.2f\n" % (dt // 60, dt % 60))
sys.stderr.write("\tMaximum resident set size (kbytes): %d\n" % rss)
sys.exit(rc)
PY
    chmod +x /tmp/gptq-bin/time
    sed 's|/usr/bin/time -v|/tmp/gptq-bin/time -v|' tools/accuracy_matrix.sh > /tmp/gptq-bin/matrix.sh
  else
    cp tools/accuracy_matrix.sh /tmp/gptq-bin/matrix.sh
  fi
  GPTQ=/tmp/gptq-bin/gptq GPTQ_SHARED=.dev/acc MODELS=${MODELS:-opt-18m} \
    sh /tmp/gptq-bin/matrix.sh /tmp/acc 2>&1 | tee "$OUT/accuracy_run.txt" || true
  cp /tmp/acc/results.tsv "$OUT/accuracy.tsv"
  ;;
kernels)
  # each run validates against gptq_matmul_ref first and exits 1 on a mismatch
  lscpu > "$OUT/lscpu.txt" || true
  # OMP_PROC_BIND=close: one thread per core, kept there (the figures of
  # bench/RESULTS.md); the best ISA also sweeps the thread count
  export OMP_PROC_BIND=${OMP_PROC_BIND:-close}
  for isa in ${ISAS:-avx512 avx2 generic}; do
    if [ "$isa" = avx512 ] && ! grep -qw avx512f /proc/cpuinfo; then
      echo "no AVX-512 on this CPU: avx512 not run" | tee "$OUT/w4a16_avx512.txt"; continue
    fi
    args="--layers 32"
    [ "$isa" = avx512 ] && args="$args --threads 1,2,4,8,$OMP_NUM_THREADS"
    [ "$isa" = generic ] && args="--layers 8"
    # shellcheck disable=SC2086
    GPTQ_CPU_ISA=$isa /tmp/gptq-bin/bench_w4a16 $args 2>&1 | tee "$OUT/w4a16_$isa.txt"
  done
  ;;
*) echo "unknown step $step" >&2; exit 2 ;;
esac
done
