#!/bin/sh
# bench_quantize.sh — wall time, peak RSS and the time split (forward /
# Hessian / solve / write, from the command's own summary) of
# `gptq quantize` on one model, for the ways of running it:
#   rtn            no calibration, no forward pass
#   gptq-chunked   true-sequential, --batch-tokens 8192 (auto for big models): one
#                  partial forward per group and chunk, then the output pass
#   gptq-fused     true-sequential, all windows in one forward pass (auto when
#                  its work buffers take <= 2 GiB): the
#                  Hessians are taken and the groups quantized inside it
#   gptq-no-ts     --no-true-sequential (one Hessian pass, then the output pass)
#
# usage: bench/bench_quantize.sh MODEL_DIR CALIB_TEXT [NSAMPLES [SEQLEN]]
#        (env: GPTQ = the binary, default build/src/cli/gptq; OUT = scratch
#        folder, default /tmp/gptq-bench-quantize; RUNS = which of the above)
# Example (bench/RESULTS.md): bench/bench_quantize.sh ../shared/models/llama-27m
#        ../shared/text/calib.txt 128 512
set -eu
MODEL=$1
CALIB=$2
NS=${3:-128}
SEQ=${4:-512}
GPTQ=${GPTQ:-build/src/cli/gptq}
OUT=${OUT:-/tmp/gptq-bench-quantize}
RUNS=${RUNS:-"rtn gptq-chunked gptq-fused gptq-no-ts"}
mkdir -p "$OUT"
printf '%-13s %9s %11s %9s %9s %9s %9s\n' run wall_s peak_rss_MB forward_s hessian_s solve_s write_s
for r in $RUNS; do
    case "$r" in
    rtn) f="--method rtn" ;;
    gptq-chunked) f="--batch-tokens 8192" ;;
    gptq-fused) f="--batch-tokens $((NS * SEQ))" ;;
    gptq-no-ts) f="--no-true-sequential --batch-tokens 8192" ;;
    *) echo "unknown run $r" >&2; exit 2 ;;
    esac
    log="$OUT/$r.log"
    # shellcheck disable=SC2086
    /usr/bin/time -f 'wall %e rss %M' "$GPTQ" quantize "$MODEL" -o "$OUT/ckpt-$r" \
        --calib "$CALIB" --calib-bytes 1000000 --nsamples "$NS" --seqlen "$SEQ" --asym \
        $f > "$log" 2>&1
    wall=$(sed -n 's/^wall \([0-9.]*\) rss.*/\1/p' "$log")
    rss=$(sed -n 's/^wall .* rss \([0-9]*\)$/\1/p' "$log")
    fwd=$(sed -n 's/.*time: *forward \([0-9.]*\) s.*/\1/p' "$log")
    hes=$(sed -n 's/.*hessian \([0-9.]*\) s.*/\1/p' "$log")
    sol=$(sed -n 's/.*solve \([0-9.]*\) s.*/\1/p' "$log")
    wr=$(sed -n 's/.*pack+write \([0-9.]*\) s.*/\1/p' "$log")
    printf '%-13s %9s %11s %9s %9s %9s %9s\n' "$r" "$wall" "$((rss / 1024))" "$fwd" "$hes" \
        "$sol" "$wr"
done
