#!/usr/bin/env bash
# The main job on the bundled default: build gptq-c, quantize the tiny model
# in data/ with GPTQ (4-bit, g128) on data/text/calib.txt, and measure the
# perplexity of the original and the quantized model on data/text/eval.txt
# (each line names its model and text), and the quantized model's KL divergence
# from the original on the same windows.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build
[ -d build ] || meson setup build
ninja -C build
model=data/tiny-llama
out=${1:-out/tiny-llama-gptq-4bit}
mkdir -p "$(dirname "$out")"
./build/src/cli/gptq quantize "$model" -o "$out" --calib data/text/calib.txt \
  --nsamples 64 --seqlen 256 --bits 4 --group-size 128
./build/src/cli/gptq eval "$model" --text data/text/eval.txt --seqlen 256
./build/src/cli/gptq eval "$out" --text data/text/eval.txt --seqlen 256 \
  --kl-divergence --kl-base "$model"
