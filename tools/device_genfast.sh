#!/usr/bin/env bash
# device_genfast.sh — on the device, the merged tree: the op table on hip, then
# `gptq generate` of a GPTQ w4 g128 checkpoint of data/tiny-llama (quantized there on
# hip) on hip and cpu with --linears fast and f32: the four texts must be the same bytes.
#   device run: bash tools/device_genfast.sh   carry [".debs"]   (~60 s after the start)
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
bash tools/device_gpu.sh build optable > "$OUT/gpu.txt" 2>&1; echo "device_gpu rc=$?" >> "$OUT/gpu.txt"
tail -5 "$OUT/gpu.txt"
L=/tmp/deps/usr/lib/x86_64-linux-gnu
export LD_LIBRARY_PATH=$L:$L/openblas-pthread GPTQ_BACKEND_PATH=$PWD/build-gpu/backends/hip OPENBLAS_CORETYPE=SkylakeX
G=build-gpu/src/cli/gptq
{
$G quantize data/tiny-llama -o /tmp/q4 --backend hip --calib data/text/calib.txt --nsamples 16 --seqlen 256 --quiet; echo "quantize rc=$?"
P="The history of the city"
for be in hip cpu; do for lin in fast f32; do
  $G generate /tmp/q4 --prompt "$P" -n 48 --backend $be --linears $lin > /tmp/g_${be}_$lin.txt 2> /tmp/e_${be}_$lin.txt; echo "generate $be $lin rc=$?"; tail -1 /tmp/e_${be}_$lin.txt
done; done
# the fast linears apart (--no-join): the joined rows above must give the same text
$G generate /tmp/q4 --prompt "$P" -n 48 --backend hip --linears fast --no-join > /tmp/g_hip_apart.txt 2> /tmp/e_hip_apart.txt; echo "generate hip fast --no-join rc=$?"; tail -1 /tmp/e_hip_apart.txt
for f in /tmp/g_*.txt; do echo "$f $(md5sum < $f)"; done
cat /tmp/g_hip_fast.txt
} > "$OUT/gen.txt" 2>&1
cat "$OUT/gen.txt"
