#!/bin/sh
# bench_generate.sh — tokens/s of `gptq generate` (KV cache) on the bundled
# and shared models, and on GPTQ checkpoints of them with both linear paths:
# the prompt pass (prefill, one batch) and the decoding (one token at a
# time), as the command reports them on stderr; the model upload is timed
# apart. Greedy, a fixed prompt of about 100 tokens, N new tokens (EOS
# ignored only in the sense that a model that stops early says so in the
# `stopped:` field; its rate is over the tokens it made).
#
#   bench/bench_generate.sh BUILD_DIR [N] [BACKEND]
#
# The checkpoints are w4 g128 RTN quantizations of data/tiny-llama and the
# shared llama-27m, made in a temporary folder (removed at the end): the
# linears' speed does not depend on how the codes were chosen. Each runs
# with `--linears fast` (packed, the backend's matmul_q_fast; q, k, v and
# gate, up joined, the default), `--linears fast --no-join` (each linear
# its own call) and `--linears f32` (dequantized once, gemm); a backend
# without the fast op prints its refusal for the fast rows.
#
# Prints one line per run: model, linears (the summary's "linears:" field),
# prompt tokens, prompt tokens/s, new tokens, decode tokens/s, why it
# stopped, MiB of weights on the backend.
set -eu
build=${1:?usage: bench/bench_generate.sh BUILD_DIR [N] [BACKEND]}
n=${2:-128}
backend=${3:-cpu}
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${GPTQ_SHARED:-$root/../shared}
gptq=$build/src/cli/gptq
prompt=$(head -c 480 "$root/data/text/eval.txt" | tr '\n' ' ')
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# run NAME MODEL [generate options]: one line from the command's summary
run() {
  name=$1
  m=$2
  shift 2
  if ! err=$("$gptq" generate "$m" --prompt "$prompt" -n "$n" --backend "$backend" "$@" \
             2>&1 >/dev/null); then
    echo "$name $*: $err"
    return 0
  fi
  echo "$err" | sed -n "s|.*prompt \([0-9]*\) tokens in [0-9.]* s (\([0-9.]*\) tokens/s); generated \([0-9]*\) tokens in [0-9.]* s (\([0-9.]*\) tokens/s); stopped: \([^;]*\); linears: \(.*\); weights \([0-9.]*\) MiB.*|$name [\6] \1 \2 \3 \4 \5 \7|p"
}

for m in "$root/data/tiny-llama" "$shared/models/stories-260k" "$shared/models/opt-18m" \
         "$shared/models/llama-27m"; do
  [ -d "$m" ] || { echo "$m: absent, skipped" >&2; continue; }
  run "$(basename "$m")" "$m"
done
for m in "$root/data/tiny-llama" "$shared/models/llama-27m"; do
  [ -d "$m" ] || continue
  ck=$tmp/$(basename "$m")-w4g128
  "$gptq" quantize "$m" -o "$ck" --method rtn --bits 4 --group-size 128 --quiet \
    --backend "$backend" >/dev/null
  run "$(basename "$ck")" "$ck" --linears fast
  run "$(basename "$ck")" "$ck" --linears fast --no-join
  run "$(basename "$ck")" "$ck" --linears f32
done
