#!/bin/sh
# accuracy_matrix.sh — the accuracy matrix of bench/RESULTS.md ("gptq quantize"):
# for each shared model, perplexity on eval.txt (seqlen 512, the protocol of
# shared/README.md) of the floating-point model and of RTN / GPTQ checkpoints
# written by `gptq quantize`, with 128 x 512 calibration tokens from the
# first 1,000,000 bytes of calib.txt (seed 0), damp 0.01, block 128, as the
# reference figures were made. Also the wall time and peak RSS of every
# `gptq quantize` (/usr/bin/time -v) and its own time split.
#
# usage: tools/accuracy_matrix.sh [OUT_DIR]   (env: GPTQ, GPTQ_SHARED, MODELS,
#        CONFIGS, BATCH_TOKENS, MAX_WINDOWS)
#   OUT_DIR     where checkpoints, logs and results.tsv go (default
#               /tmp/gptq-accuracy); a configuration whose row is already in
#               results.tsv is skipped, so the script can be re-run to resume.
#   GPTQ        the gptq binary (default build/src/cli/gptq; copy it somewhere
#               stable first if you keep building while this runs)
#   BATCH_TOKENS  tokens per forward pass of quantize (default 65536: all
#               128 x 512 windows in one pass; 8192 uses less memory)
#   MAX_WINDOWS eval only the first N windows (default: all 934)
# Takes hours on 2 cores: run it with nohup in the background.
set -eu
OUT=${1:-/tmp/gptq-accuracy}
GPTQ=${GPTQ:-build/src/cli/gptq}
SHARED=${GPTQ_SHARED:-../shared}
MODELS=${MODELS:-"llama-27m opt-18m"}
CONFIGS=${CONFIGS:-"fp rtn_w4_asym gptq_w4_asym gptq_w4_sym gptq_w4_asym_act rtn_w3_asym gptq_w3_asym gptq_w3_asym_act"}
BATCH_TOKENS=${BATCH_TOKENS:-65536}
MAX_WINDOWS=${MAX_WINDOWS:-}
mkdir -p "$OUT"
RES="$OUT/results.tsv"
[ -f "$RES" ] || printf 'model\tconfig\tppl\tquant_wall_s\tquant_peak_rss_kb\tforward_s\thessian_s\tsolve_s\tformat\teval_s\n' > "$RES"

# Shards cut right after the unquantized tensors (embeddings, norms,
# lm_head: 16,790,528 bytes in llama-27m, 10,506,240 in opt-18m), so every
# checkpoint of a model has the same first shard, byte for byte: the
# PyTorch compatibility check (tools/load_gptq_torch.py) then carries one
# copy of it to the device machine. The tensors are the same as unsharded.
shard() {
    case "$1" in
    llama-27m) echo 16856064 ;;
    opt-18m) echo 10571776 ;;
    *) echo 4GB ;;
    esac
}

# The GPTQ rows are the paper's column order (--no-act-group-aware), as the reference
# figures and the table of bench/RESULTS.md; bench/gar_ppl.sh measures GAR, the default.
flags() {
    case "$1" in
    rtn_w4_asym) echo "--method rtn --bits 4 --group-size 128 --asym" ;;
    gptq_w4_asym) echo "--bits 4 --group-size 128 --asym --no-act-group-aware" ;;
    gptq_w4_sym) echo "--bits 4 --group-size 128 --sym --no-act-group-aware" ;;
    gptq_w4_asym_act) echo "--bits 4 --group-size 128 --asym --desc-act" ;;
    rtn_w3_asym) echo "--method rtn --bits 3 --group-size 128 --asym" ;;
    gptq_w3_asym) echo "--bits 3 --group-size 128 --asym --no-act-group-aware" ;;
    gptq_w3_asym_act) echo "--bits 3 --group-size 128 --asym --desc-act" ;;
    *) echo "unknown config $1" >&2; exit 2 ;;
    esac
}

for model in $MODELS; do
    for cfg in $CONFIGS; do
        if grep -q "^$model	$cfg	" "$RES"; then continue; fi
        echo "== $model $cfg ($(date +%H:%M:%S))"
        dir="$SHARED/models/$model"
        wall=""; rss=""; fwd=""; hes=""; sol=""; fmt=""
        if [ "$cfg" != fp ]; then
            dir="$OUT/$model-$cfg"
            # shellcheck disable=SC2046
            /usr/bin/time -v "$GPTQ" quantize "$SHARED/models/$model" -o "$dir" \
                --calib "$SHARED/text/calib.txt" --calib-bytes 1000000 --nsamples 128 \
                --seqlen 512 --seed 0 --damp-percent 0.01 --block-size 128 \
                --batch-tokens "$BATCH_TOKENS" --log-json "$OUT/$model-$cfg.jsonl" \
                --max-shard-size "$(shard "$model")" \
                $(flags "$cfg") > "$OUT/$model-$cfg.quant.log" 2>&1
            log="$OUT/$model-$cfg.quant.log"
            wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$log")
            rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$log")
            fwd=$(sed -n 's/.*time: *forward \([0-9.]*\) s.*/\1/p' "$log")
            hes=$(sed -n 's/.*hessian \([0-9.]*\) s.*/\1/p' "$log")
            sol=$(sed -n 's/.*solve \([0-9.]*\) s.*/\1/p' "$log")
            fmt=$(sed -n 's/.*format: *\([a-z_0-9]*\).*/\1/p' "$log")
        fi
        set -- --text "$SHARED/text/eval.txt" --seqlen 512
        [ -n "$MAX_WINDOWS" ] && set -- "$@" --max-windows "$MAX_WINDOWS"
        "$GPTQ" eval "$dir" "$@" > "$OUT/$model-$cfg.eval.log" 2>&1
        ppl=$(sed -n 's/^ppl \([0-9.]*\).*/\1/p' "$OUT/$model-$cfg.eval.log")
        es=$(sed -n 's/.*seconds \([0-9.]*\).*/\1/p' "$OUT/$model-$cfg.eval.log")
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$model" "$cfg" "$ppl" "$wall" "$rss" \
            "$fwd" "$hes" "$sol" "$fmt" "$es" >> "$RES"
        echo "   ppl $ppl (quant $wall, rss ${rss}kB)"
    done
done
column -t -s '	' "$RES"
