#!/bin/sh
# bench_generate.sh — tokens/s of `gptq generate` (KV cache) on the bundled
# and shared models: the prompt pass (prefill, one batch) and the decoding
# (one token at a time), as the command reports them on stderr; the model
# upload is timed apart. Greedy, a fixed prompt of about 100 tokens, N new
# tokens (EOS ignored only in the sense that a model that stops early says
# so in the `stopped:` field; its rate is over the tokens it made).
#
#   bench/bench_generate.sh BUILD_DIR [N] [BACKEND]
#
# Prints one line per model: model, prompt tokens, prompt tokens/s, new
# tokens, decode tokens/s, why it stopped.
set -eu
build=${1:?usage: bench/bench_generate.sh BUILD_DIR [N] [BACKEND]}
n=${2:-128}
backend=${3:-cpu}
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${GPTQ_SHARED:-$root/../shared}
prompt=$(head -c 480 "$root/data/text/eval.txt" | tr '\n' ' ')
for m in "$root/data/tiny-llama" "$shared/models/stories-260k" "$shared/models/opt-18m" \
         "$shared/models/llama-27m"; do
  [ -d "$m" ] || { echo "$m: absent, skipped" >&2; continue; }
  err=$("$build/src/cli/gptq" generate "$m" --prompt "$prompt" -n "$n" --backend "$backend" \
        2>&1 >/dev/null)
  echo "$err" | sed -n "s|.*prompt \([0-9]*\) tokens in [0-9.]* s (\([0-9.]*\) tokens/s); generated \([0-9]*\) tokens in [0-9.]* s (\([0-9.]*\) tokens/s); stopped: \(.*\)|$(basename "$m") \1 \2 \3 \4 \5|p"
done
