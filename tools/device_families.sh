#!/usr/bin/env bash
# device_families.sh — the device proof of issue 11 (model families), on the
# device machine (one NVIDIA H200: PyTorch + transformers 5, no network; the
# HIP plugin compiled by nvcc as tools/device_gpu.sh does). Per family of
# tools/train_family.py's FAMILIES table (the one list of families):
#   1. train a small model of the family from scratch on data/text/calib.txt
#      (tools/train_family.py, on the GPU, while the CPU builds), saved in
#      bf16 with transformers' own fp perplexity on data/text/eval.txt;
#   2. `gptq eval` of the fp model on the cpu and the hip backend (our ppl
#      must equal transformers' within 0.1%);
#   3. RTN and GPTQ, w4 g128 and w3 g128 (sym), `gptq quantize --backend hip`
#      (and GPTQ w4 once with --backend cpu), each checkpoint through
#      `gptq eval --backend hip --kl-divergence --kl-base FP` (GPTQ must be
#      below RTN at each width; the KL divergence from the fp model beside);
#   4. `gptq diff --backends cpu,hip` over every layer, --feed ref (the
#      backend's gate) and --feed own (as a real run), exit 0 = every metric
#      within the thresholds of src/cli/backend_diff.c;
#   5. tests/test_families on cpu and hip (the transformers-made reference
#      logits of tests/data/families).
# A family our build refuses (its architecture or a config key) gets
# "refused: <message>" in its row; the others go on.
#
# Run through the device tool from the repository root, carrying the Debian
# packages of tools/device_gpu.sh's header (Criterion included: test_families
# is built):
#   device run: command "bash tools/device_families.sh", carry [".debs"]
# (from a copy of a worktree under .dev/NAME: cd there and set DEBS=../../.debs,
# carry [".debs", ".dev/NAME"]). One call of at most 10 minutes: the build
# (~2-3 min) runs while the GPU trains (~10-20 s a family), then ~20-30 s a
# family of quantize/eval/diff on tiny models.
# Arguments: the steps, default "build train run" (build: device_gpu.sh build +
# test_families; train: tools/train_family.py; run: everything after). BUILD
# names the build folder (default build-gpu: what device_gpu.sh builds).
# Environment: FAMILY_MODELS (default /tmp/gptq-families: trained folders found
# there with their hf_ppl.json are reused), FAMILIES (comma-separated subset),
# EVAL_WINDOWS (0 = every window of eval.txt, the default: 230 windows of 256),
# QBACKEND (default hip: the backend of the RTN/GPTQ runs and their evals).
# Back in $OUT: families_summary.md (the table), families.tsv (its numbers),
# train.log, test_families.log, families_logs.tar.gz (every command's log),
# and device_gpu.sh's env.txt, build.log, summary.txt.
set -uo pipefail
OUT=${OUT:-/tmp/gptq-out}
mkdir -p "$OUT"
root=$(pwd)
MODELS=${FAMILY_MODELS:-/tmp/gptq-families}
Q=/tmp/gptq-families-q
LOGS=/tmp/gptq-families-logs
B=${BUILD:-build-gpu}
steps=" ${*:-build train run} "
G=$root/$B/src/cli/gptq
WIN=${EVAL_WINDOWS:-0}
QB=${QBACKEND:-hip} # the backend of the RTN/GPTQ quantizations and their evals
TEXT=data/text/eval.txt
CALIB=data/text/calib.txt
rm -rf "$Q" "$LOGS"
mkdir -p "$MODELS" "$Q" "$LOGS"
log() { echo "== $*" | tee -a "$OUT/summary.txt"; }

fams=${FAMILIES:-$(python3 tools/train_family.py --list | cut -f1 | paste -sd,)}
log "device_families.sh: families $fams, eval windows ${WIN/#0/all}"

# ---- 1. train on the GPU (background) while the CPU builds ----
t0=$(date +%s)
winarg=()
[ "$WIN" != 0 ] && winarg=(--max-windows "$WIN")
trainer=""
if [[ $steps == *" train "* ]]; then
    PYTHONUNBUFFERED=1 python3 tools/train_family.py --out "$MODELS" --only "$fams" --reuse \
        "${winarg[@]}" >"$OUT/train.log" 2>&1 &
    trainer=$!
fi

if [[ $steps == *" build "* ]]; then
    bash tools/device_gpu.sh build || { log "device_gpu.sh build failed"; exit 1; }
fi
D=/tmp/deps
L=$D/usr/lib/x86_64-linux-gnu
export LD_LIBRARY_PATH=$L:$L/openblas-pthread${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export PKG_CONFIG_PATH=$D/pc PKG_CONFIG_LIBDIR=$D/pc LIBRARY_PATH=$L:$L/openblas-pthread
command -v pkg-config >/dev/null || export PKG_CONFIG=$D/usr/bin/pkgconf
if [[ $steps == *" build "* ]]; then
    ninja -C "$B" tests/test_families >>"$OUT/build.log" 2>&1
    log "test_families build rc=$?"
fi
if [ -n "$trainer" ]; then
    wait $trainer
    log "train rc=$? ($(($(date +%s) - t0)) s since the start)"
    grep -v '^\s' "$OUT/train.log" | grep -E "^[a-z0-9]+: |failed|Error" | cut -c1-300
fi
[[ $steps == *" run "* ]] || exit 0

export GPTQ_SOURCE_ROOT=$root GPTQ_BUILD_ROOT=$root/$B OPENBLAS_CORETYPE=SkylakeX
export GPTQ_BACKEND_PATH=$root/$B/backends/hip # the CLI finds the plugin there

# ---- 5. the reference logits on both backends (before the models: quick) ----
timeout 120 "$B/tests/test_families" --verbose --jobs 1 >"$OUT/test_families.log" 2>&1
log "test_families rc=$? (cpu and hip rows)"
grep -E "on (cpu|hip):|\[(FAIL|SKIP)\]|Synthesis" "$OUT/test_families.log" | cut -c1-250

# `gptq eval` -> its ppl figure ("" when it failed; the log says why)
ppl_of() { grep -o 'ppl [0-9.]*' "$1" | head -1 | cut -d' ' -f2; }
evalrun() { # log model backend [options...]
    local log=$1 model=$2 be=$3
    shift 3
    timeout 180 "$G" eval "$model" --text $TEXT --seqlen 256 --backend "$be" \
        $([ "$WIN" != 0 ] && echo --max-windows "$WIN") "$@" >"$log" 2>&1
}
# `gptq eval --kl-divergence` -> "mean KL (same top %)"
kl_of() { sed -n 's/^kl-divergence from .*: mean \([^ ]*\) .*same-top \([^ ]*\)%.*/\1 (\2%)/p' "$1"; }
# the first error line of a log, one line, for the table
why() { grep -m1 -E 'gptq [a-z]+: error' "$1" | sed 's/^gptq [a-z]*: error: //' | tr '|' '/' | cut -c1-200; }

tsv=$OUT/families.tsv
printf 'family\tarch\thf\tcpu\thip\trtn4\tgptq4\trtn3\tgptq3\tgptq4cpu\tdiff_ref\tdiff_own\tlogits\tnote\tkl_rtn4\tkl_gptq4\tkl_rtn3\tkl_gptq3\n' >"$tsv"
IFS=, read -r -a famlist <<<"$fams"
# one family: its row into $LOGS/<family>/row.tsv
family() {
    local f=$1
    local M=$MODELS/$f l=$LOGS/$f arch hf logits suite st rel cpu hip row kl note C gcpu d rc
    mkdir -p "$l"
    arch=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['architecture'])" \
        "$M/hf_ppl.json" 2>/dev/null || echo '?')
    hf=$(python3 -c "import json,sys; print('%.6f' % json.load(open(sys.argv[1]))['ppl'])" \
        "$M/hf_ppl.json" 2>/dev/null || echo '')
    logits=""
    for be in cpu hip; do # "cpu PASS 7.8e-07" (status, max |diff| / max |ref| of the logits)
        suite=families; [ $be = hip ] && suite=families_hip
        st=$(grep -oE "^\[(PASS|FAIL|SKIP)\] $suite::$f:" "$OUT/test_families.log" | cut -c2-5)
        rel=$(sed -n "s/^\[----\] $f on $be: .*max |diff| \/ max |ref| \([^;]*\);.*/\1/p" \
            "$OUT/test_families.log" | head -1)
        grep -q "^\[----\] $f on $be: refused" "$OUT/test_families.log" && rel=refused
        [ -n "$st" ] && logits="${logits:+$logits, }$be $st${rel:+ $rel}"
    done
    row=(); kl=(); note=""
    if [ -z "$hf" ]; then
        note="not trained (train.log)"
        printf '%s\t%s\t\t\t\t\t\t\t\t\t\t\t%s\t%s\n' "$f" "$arch" "$logits" "$note" >"$l/row.tsv"
        log "$f: $note"
        return
    fi
    evalrun "$l/eval_fp_cpu.log" "$M" cpu
    cpu=$(ppl_of "$l/eval_fp_cpu.log")
    if [ -z "$cpu" ]; then
        note="refused: $(why "$l/eval_fp_cpu.log")"
        printf '%s\t%s\t%s\t\t\t\t\t\t\t\t\t\t%s\t%s\n' "$f" "$arch" "$hf" "$logits" "$note" >"$l/row.tsv"
        log "$f: $note"
        return
    fi
    evalrun "$l/eval_fp_hip.log" "$M" hip
    hip=$(ppl_of "$l/eval_fp_hip.log")
    for bits in 4 3; do
        for meth in rtn gptq; do
            C=$Q/$f-$meth-w$bits
            # the checkpoint's ppl and its KL divergence from the fp model
            timeout 180 "$G" quantize "$M" -o "$C" --calib $CALIB --nsamples 128 --seqlen 256 \
                --bits $bits --group-size 128 --method $meth --backend "$QB" \
                >"$l/quantize_${meth}_w$bits.log" 2>&1 &&
                evalrun "$l/eval_${meth}_w$bits.log" "$C" "$QB" --kl-divergence --kl-base "$M"
            row+=("$(ppl_of "$l/eval_${meth}_w$bits.log" 2>/dev/null)")
            kl+=("$(kl_of "$l/eval_${meth}_w$bits.log" 2>/dev/null)")
            rm -rf "$C"
        done
    done
    C=$Q/$f-gptq-w4-cpu
    timeout 180 "$G" quantize "$M" -o "$C" --calib $CALIB --nsamples 128 --seqlen 256 \
        --bits 4 --group-size 128 --backend cpu >"$l/quantize_gptq_w4_cpu.log" 2>&1 &&
        evalrun "$l/eval_gptq_w4_cpu.log" "$C" cpu
    gcpu=$(ppl_of "$l/eval_gptq_w4_cpu.log" 2>/dev/null)
    rm -rf "$C"
    d=()
    for feed in ref own; do
        timeout 180 "$G" diff "$M" --backends cpu,hip --calib $CALIB --nsamples 16 --seqlen 256 \
            --feed $feed >"$l/diff_$feed.log" 2>&1
        rc=$? # 1: a threshold failed, or an error (its message)
        if [ $rc = 0 ]; then d+=(pass)
        elif grep -q 'gptq diff: error' "$l/diff_$feed.log"; then d+=("error: $(why "$l/diff_$feed.log")")
        else d+=("FAIL (rc $rc)"); fi
    done
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$f" "$arch" "$hf" "$cpu" \
        "$hip" "${row[0]}" "${row[1]}" "${row[2]}" "${row[3]}" "$gcpu" "${d[0]}" "${d[1]}" \
        "$logits" "$note" "${kl[0]}" "${kl[1]}" "${kl[2]}" "${kl[3]}" >"$l/row.tsv"
    log "$f: hf $hf cpu $cpu hip $hip rtn/gptq w4 ${row[0]}/${row[1]} w3 ${row[2]}/${row[3]}" \
        "gptq w4 cpu $gcpu diff ref ${d[0]} own ${d[1]} ($(($(date +%s) - t0)) s)"
}

# families run side by side, JOBS at a time (tiny models: the GPU and 16 cores are
# far from full), each command with OMP_NUM_THREADS cores
JOBS=${JOBS:-4}
export OMP_NUM_THREADS=$(( $(nproc) / JOBS > 0 ? $(nproc) / JOBS : 1 ))
for f in "${famlist[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n; done
    family "$f" &
done
wait
for f in "${famlist[@]}"; do cat "$LOGS/$f/row.tsv" >>"$tsv" 2>/dev/null; done

# ---- the table ----
python3 - "$tsv" "$OUT/families_summary.md" "$MODELS" "$WIN" "$QB" <<'PY'
import csv, json, os, sys
tsv, md, models, win, qb = sys.argv[1:6]
rows = list(csv.DictReader(open(tsv), delimiter="\t"))
f = lambda s: float(s) if s else None
out = ["# Model families on the device (tools/device_families.sh)", "",
       "Perplexity on data/text/eval.txt, windows of 256 tokens (%s), no special tokens; "
       "models trained by tools/train_family.py. RTN/GPTQ: w4 g128 and w3 g128 sym, quantized "
       "with --backend %s (GPTQ: 128 windows of 256 tokens of calib.txt), evaluated there; "
       "'GPTQ w4 cpu': quantized and evaluated on cpu. rel: max |ours - transformers| / "
       "transformers over cpu and hip (must be < 1e-3). diff: `gptq diff --backends cpu,hip` "
       "(16 windows of 256), feed ref / own. logits: tests/test_families rows." %
       ("all" if win == "0" else "the first " + win, qb), "",
       "| family | architecture | transformers fp | ours fp cpu | ours fp hip | rel | RTN w4 | "
       "GPTQ w4 | RTN w3 | GPTQ w3 | GPTQ w4 cpu | GPTQ < RTN | diff ref / own | logits | note |",
       "| --- " * 15 + "|"]
kl_rows = ["", "KL divergence of each checkpoint from its fp model (`gptq eval --kl-divergence "
           "--kl-base`, same windows): mean per-token KL (share of tokens with the same top "
           "token).", "", "| family | RTN w4 | GPTQ w4 | RTN w3 | GPTQ w3 |", "| --- " * 5 + "|"]
bad = 0
for r in rows:
    hf, cpu, hip = f(r["hf"]), f(r["cpu"]), f(r["hip"])
    rel = max(abs(x - hf) / hf for x in (cpu, hip)) if hf and cpu and hip else None
    q = [f(r[k]) for k in ("rtn4", "gptq4", "rtn3", "gptq3")]
    better = (all(v is not None for v in q) and q[1] < q[0] and q[3] < q[2])
    ok = rel is not None and rel < 1e-3 and better and r["diff_ref"] == "pass" and \
        r["diff_own"] == "pass" and "FAIL" not in r["logits"]
    bad += not ok and not r["note"].startswith("refused")
    fmt = lambda v: "%.4f" % v if v is not None else "-"
    out.append("| " + " | ".join([
        r["family"], r["arch"], fmt(hf), fmt(cpu), fmt(hip),
        "%.2e" % rel if rel is not None else "-", *[fmt(v) for v in q], fmt(f(r["gptq4cpu"])),
        ("yes" if better else "NO") if all(v is not None for v in q) else "-",
        "%s / %s" % (r["diff_ref"] or "-", r["diff_own"] or "-"), r["logits"] or "-",
        r["note"] or ("ok" if ok else "CHECK")]) + " |")
    if r.get("kl_gptq4"):
        kl_rows.append("| %s | %s |" % (r["family"], " | ".join(
            r[k] or "-" for k in ("kl_rtn4", "kl_gptq4", "kl_rtn3", "kl_gptq3"))))
out += kl_rows
out.append("")
for r in rows:
    p = os.path.join(models, r["family"], "hf_ppl.json")
    if os.path.exists(p):
        j = json.load(open(p))
        out.append("- %s: %s; %d parameters; loss %s -> %s in %d steps of %d x 256 tokens "
                   "(%.1f s); torch %s, transformers %s, %s" % (
                       r["family"], j["what"], j["parameters"], j["losses"][0][1],
                       j["losses"][-1][1], j["steps"], j["batch"], j["train_seconds"],
                       j["torch"], j["transformers"], j["device"]))
out.append("")
out.append("families needing a look: %d" % bad)
open(md, "w").write("\n".join(out) + "\n")
print("\n".join(out))
PY
tar -czf "$OUT/families_logs.tar.gz" -C "$LOGS" . 2>/dev/null
log "done ($(($(date +%s) - t0)) s)"
