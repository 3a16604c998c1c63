#!/bin/sh
# gar_ppl.sh — what GAR (act_group_aware, group-aware act-order) does to perplexity on
# the shared models, beside the paper's column order and act-order (desc_act): for each
# model and bit width, three `gptq quantize` runs that differ only in the order, each
# evaluated on eval.txt with the protocol of shared/README.md (seqlen 512, every window).
# Calibration as tools/accuracy_matrix.sh (and the reference figures): 128 x 512 tokens
# from the first 1,000,000 bytes of calib.txt, seed 0, damp 0.01, block 128, group 128,
# asymmetric, true-sequential.
#
# usage: bench/gar_ppl.sh [OUT_DIR]   (env: GPTQ, GPTQ_SHARED, MODELS, BITS, ORDERS,
#        MAX_WINDOWS)
#   OUT_DIR  checkpoints, logs and results.tsv (default /tmp/gptq-gar); a row already in
#            results.tsv is skipped, so a re-run resumes
#   GPTQ     the gptq binary (default build/src/cli/gptq; copy it somewhere stable first
#            if you keep building while this runs)
#   MAX_WINDOWS  evaluate only the first N windows of 512 (default: all 934); the same
#            windows for every run, so the orders compare pairwise
# Quantizing takes 1-3 min a run on 2 shared cores, a whole eval ~10 min: run it with
# nohup nice in the background.
set -eu
OUT=${1:-/tmp/gptq-gar}
GPTQ=${GPTQ:-build/src/cli/gptq}
SHARED=${GPTQ_SHARED:-../shared}
MODELS=${MODELS:-"llama-27m opt-18m"}
BITS=${BITS:-"4 3"}
ORDERS=${ORDERS:-"gar paper act"}
MAX_WINDOWS=${MAX_WINDOWS:-}
mkdir -p "$OUT"
RES="$OUT/results.tsv"
[ -f "$RES" ] || printf 'model\tbits\torder\tppl\tquant_s\teval_s\twindows\n' > "$RES"

order_flags() {
    case "$1" in
    gar) echo "--act-group-aware" ;;
    paper) echo "--no-act-group-aware" ;;
    act) echo "--desc-act" ;;
    *) echo "unknown order $1" >&2; exit 2 ;;
    esac
}

for bits in $BITS; do
    for model in $MODELS; do
        for order in $ORDERS; do
            if grep -q "^$model	$bits	$order	" "$RES"; then continue; fi
            tag="$model-w$bits-$order"
            echo "== $tag ($(date +%H:%M:%S))"
            t0=$(date +%s)
            # shellcheck disable=SC2046
            "$GPTQ" quantize "$SHARED/models/$model" -o "$OUT/$tag" --overwrite --quiet \
                --calib "$SHARED/text/calib.txt" --calib-bytes 1000000 --nsamples 128 \
                --seqlen 512 --seed 0 --damp-percent 0.01 --block-size 128 \
                --bits "$bits" --group-size 128 --asym $(order_flags "$order") \
                > "$OUT/$tag.quant.log" 2>&1
            t1=$(date +%s)
            set -- --text "$SHARED/text/eval.txt" --seqlen 512
            [ -n "$MAX_WINDOWS" ] && set -- "$@" --max-windows "$MAX_WINDOWS"
            "$GPTQ" eval "$OUT/$tag" "$@" > "$OUT/$tag.eval.log" 2>&1
            t2=$(date +%s)
            ppl=$(sed -n 's/^ppl \([0-9.]*\).*/\1/p' "$OUT/$tag.eval.log")
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$model" "$bits" "$order" "$ppl" \
                "$((t1 - t0))" "$((t2 - t1))" "${MAX_WINDOWS:-all}" >> "$RES"
            echo "   ppl $ppl"
            rm -rf "${OUT:?}/$tag" # the checkpoint is not needed once evaluated
        done
    done
done
column -t -s '	' "$RES"
