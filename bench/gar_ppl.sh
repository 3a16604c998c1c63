#!/bin/sh
# gar_ppl.sh — what GAR (act_group_aware, group-aware act-order) does to perplexity,
# beside the paper's column order and act-order (desc_act): for each model and bit
# width, three `gptq quantize` runs that differ only in the order, each evaluated on
# a whole text (every window of SEQLEN tokens; the protocol of shared/README.md).
# Calibration as tools/accuracy_matrix.sh (and shared/README.md's reference figures):
# 128 windows of SEQLEN tokens from the first 1,000,000 bytes of calib.txt, seed 0,
# damp 0.01, block 128, group 128 (--group-size), asymmetric, true-sequential. GAR
# orders whole groups only (a last partial group stays in column order, as in
# GPTQModel): a model whose in_features are all below the group size gets the
# paper's order from it.
#
# usage: bench/gar_ppl.sh [options] [OUT_DIR]
#   --build DIR        the build folder whose src/cli/gptq runs (default: build; copy the
#                      binary elsewhere first if you keep building while this runs)
#   --backend NAME     cpu (default) or hip: quantize and eval both run on it
#   --text NAME        eval (shared text/eval.txt, default), wikitext2 (the whole
#                      WikiText-2 test set, text/wikitext2-test.raw.txt), or a file's path
#   --models "M ..."   shared model names (models/M) or model folders (a path with a '/');
#                      default "llama-27m opt-18m"
#   --bits "B ..."     default "4 3"
#   --orders "O ..."   of gar (--act-group-aware), paper (--no-act-group-aware), act
#                      (--desc-act); default all three
#   --group-size G     default 128
#   --seqlen N         tokens per window (default 512; a model with fewer positions uses
#                      its max_position_embeddings)
#   --max-windows N    evaluate only the first N windows (default: all)
#   OUT_DIR            logs and results.tsv (default /tmp/gptq-gar); a row already in
#                      results.tsv is skipped, so a re-run resumes
# env: GPTQ_SHARED (default ../shared).
# Prints the raw rows, then one line per model, text, backend and width: the three
# perplexities and GAR's change against the paper's order.
set -eu
BUILD=build
BACKEND=cpu
TEXT=eval
MODELS="llama-27m opt-18m"
BITS="4 3"
ORDERS="gar paper act"
SEQLEN=512
GROUP=128
MAX_WINDOWS=
while [ $# -gt 0 ]; do
    case "$1" in
    --build) BUILD=$2; shift 2 ;;
    --backend) BACKEND=$2; shift 2 ;;
    --text) TEXT=$2; shift 2 ;;
    --models) MODELS=$2; shift 2 ;;
    --bits) BITS=$2; shift 2 ;;
    --orders) ORDERS=$2; shift 2 ;;
    --seqlen) SEQLEN=$2; shift 2 ;;
    --group-size) GROUP=$2; shift 2 ;;
    --max-windows) MAX_WINDOWS=$2; shift 2 ;;
    -h|--help) sed -n '2,32p' "$0"; exit 0 ;;
    -*) echo "gar_ppl.sh: unknown option $1 (--help lists them)" >&2; exit 2 ;;
    *) break ;;
    esac
done
OUT=${1:-/tmp/gptq-gar}
GPTQ=$BUILD/src/cli/gptq
SHARED=${GPTQ_SHARED:-../shared}
case "$TEXT" in
eval) TEXT_FILE=$SHARED/text/eval.txt ;;
wikitext2) TEXT_FILE=$SHARED/text/wikitext2-test.raw.txt ;;
*) TEXT_FILE=$TEXT ;;
esac
[ -x "$GPTQ" ] || { echo "gar_ppl.sh: no $GPTQ (--build DIR: a built checkout)" >&2; exit 2; }
[ -f "$TEXT_FILE" ] || { echo "gar_ppl.sh: no text $TEXT_FILE" >&2; exit 2; }
mkdir -p "$OUT"
RES="$OUT/results.tsv"
[ -f "$RES" ] ||
    printf 'model\tbits\tgroup\torder\ttext\tbackend\tppl\twindows\tquant_s\teval_s\n' > "$RES"

order_flags() {
    case "$1" in
    gar) echo "--act-group-aware" ;;
    paper) echo "--no-act-group-aware" ;;
    act) echo "--desc-act" ;;
    *) echo "gar_ppl.sh: unknown order $1" >&2; exit 2 ;;
    esac
}

for bits in $BITS; do
    for model in $MODELS; do
        case "$model" in */*) dir=$model ;; *) dir=$SHARED/models/$model ;; esac
        name=$(basename "$model")
        # windows no longer than the model's positions
        seq=$(python3 -c "import json, sys; c = json.load(open(sys.argv[1])); \
print(min(int(sys.argv[2]), c.get('max_position_embeddings', 1 << 30)))" \
            "$dir/config.json" "$SEQLEN")
        for order in $ORDERS; do
            key="$name	$bits	$GROUP	$order	$TEXT	$BACKEND	"
            if grep -q "^$key" "$RES"; then continue; fi
            tag="$name-w$bits-g$GROUP-$order-$BACKEND"
            echo "== $tag on $TEXT ($(date +%H:%M:%S))"
            t0=$(date +%s)
            # shellcheck disable=SC2046
            "$GPTQ" quantize "$dir" -o "$OUT/$tag" --overwrite --quiet --backend "$BACKEND" \
                --calib "$SHARED/text/calib.txt" --calib-bytes 1000000 --nsamples 128 \
                --seqlen "$seq" --seed 0 --damp-percent 0.01 --block-size 128 \
                --bits "$bits" --group-size "$GROUP" --asym $(order_flags "$order") \
                > "$OUT/$tag.quant.log" 2>&1
            t1=$(date +%s)
            set -- --text "$TEXT_FILE" --seqlen "$seq" --backend "$BACKEND"
            [ -n "$MAX_WINDOWS" ] && set -- "$@" --max-windows "$MAX_WINDOWS"
            "$GPTQ" eval "$OUT/$tag" "$@" > "$OUT/$tag.eval.log" 2>&1
            t2=$(date +%s)
            ppl=$(sed -n 's/^ppl \([0-9.]*\).*/\1/p' "$OUT/$tag.eval.log")
            win=$(sed -n 's/^ppl .* windows \([0-9]*\) .*/\1/p' "$OUT/$tag.eval.log")
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$bits" "$GROUP" \
                "$order" "$TEXT" "$BACKEND" "$ppl" "${win:-?}" "$((t1 - t0))" "$((t2 - t1))" >> "$RES"
            echo "   ppl $ppl"
            rm -rf "${OUT:?}/$tag" # the checkpoint is not needed once evaluated
        done
    done
done
column -t -s '	' "$RES"
echo
# one line per (model, bits, group, text, backend): paper, gar, act and GAR against paper
awk -F '\t' 'NR > 1 {
    k = $1 "\t" $2 "\t" $3 "\t" $5 "\t" $6
    if (!(k in seen)) { seen[k] = 1; keys[n++] = k }
    p[k, $4] = $7; w[k] = $8
}
END {
    printf "%-14s %4s %5s %-10s %-8s %7s %10s %10s %10s %9s\n", "model", "bits", "group",
        "text", "backend", "windows", "paper", "gar", "act", "gar/paper"
    for (i = 0; i < n; i++) {
        k = keys[i]; split(k, f, "\t")
        d = "-"
        if (p[k, "paper"] != "" && p[k, "gar"] != "")
            d = sprintf("%+.2f%%", 100 * (p[k, "gar"] / p[k, "paper"] - 1))
        for (j = 0; j < 3; j++) {
            o = j == 0 ? "paper" : j == 1 ? "gar" : "act"
            v[j] = p[k, o] != "" ? p[k, o] : "-"
        }
        printf "%-14s %4s %5s %-10s %-8s %7s %10s %10s %10s %9s\n", f[1], f[2], f[3], f[4],
            f[5], w[k], v[0], v[1], v[2], d
    }
}' "$RES"
