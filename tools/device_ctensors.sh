#!/usr/bin/env bash
# device_ctensors.sh — prove the compressed-tensors export (issue 13) with an
# independent loader on the device machine's PyTorch (torch 2.x; CI runs the
# same loader with Debian's torch 1.13 in tests/test_cli_ctensors.c).
#
#   1. here:   bash tools/device_ctensors.sh prepare BUILD
#      quantizes data/tiny-llama three ways into .dev/ct (ignored by git):
#        a4  asym 4-bit g64, RTN            s8  sym 8-bit per-channel, RTN
#        gar asym 4-bit g64, GPTQ with GAR on data/text/calib.txt
#      and writes, per checkpoint and module, `gptq matmul --dequant`'s W
#      (y_C_M.safetensors: the weight gptq-c itself reads from the checkpoint).
#   2. device: run "bash tools/device_ctensors.sh check", carry [".dev/ct"]
#      tools/load_ctensors_torch.py dequantizes each module from the
#      checkpoint's own tensors and config (written from the format's
#      description, not from gptq-c), and each W must be the same bits as
#      gptq-c's. Prints one line per module and "overall: PASS|FAIL"; exit 1
#      on any difference.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
D=$root/.dev/ct
MODULES="model.layers.0.self_attn.q_proj model.layers.1.mlp.gate_proj model.layers.2.mlp.down_proj"

case ${1:-} in
prepare)
    B=${2:?usage: device_ctensors.sh prepare BUILD}
    G=$B/src/cli/gptq
    rm -rf "$D" && mkdir -p "$D"
    q() { "$G" quantize "$root/data/tiny-llama" -o "$D/$1" --format compressed-tensors --quiet "${@:2}" || exit 1; }
    q a4 --asym --group-size 64 --method rtn
    q s8 --bits 8 --group-size -1 --method rtn
    q gar --asym --group-size 64 --calib "$root/data/text/calib.txt" --nsamples 16 --seqlen 256
    python3 - "$D" <<'P' || exit 1
import json, struct, sys
# X (1, K) of f32, one file per K the modules need
for K in (256, 384):
    data = struct.pack("<%df" % K, *[((i * 37) % 101 - 50) / 50.0 for i in range(K)])
    hdr = json.dumps({"X": {"dtype": "F32", "shape": [1, K], "data_offsets": [0, len(data)]}}).encode()
    hdr += b" " * (-len(hdr) % 8)
    with open(f"{sys.argv[1]}/x{K}.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(hdr)) + hdr + data)
P
    for C in a4 s8 gar; do
        for M in $MODULES; do
            K=256; [ "$M" = model.layers.2.mlp.down_proj ] && K=384
            "$G" matmul "$D/$C" --module "$M" -x "$D/x$K.safetensors" -o "$D/y_${C}_$M.safetensors" \
                --dequant --quiet || exit 1
        done
    done
    echo "prepared $D"
    ;;
check)
    cd "$D" || exit 1
    python3 -c 'import torch, sys; print("torch", torch.__version__, "python", sys.version.split()[0])'
    fail=0
    for C in a4 s8 gar; do
        for M in $MODULES; do
            python3 "$root/tools/load_ctensors_torch.py" "$C" "$M" /tmp/w.safetensors ||
                { echo "FAIL loader $C $M"; fail=1; continue; }
            python3 - "$C" "$M" <<'P' || fail=1
import sys, torch
from safetensors.torch import load_file
c, m = sys.argv[1], sys.argv[2]
a = load_file("/tmp/w.safetensors")["W"]
b = load_file(f"y_{c}_{m}.safetensors")["W"]
same = a.shape == b.shape and torch.equal(a.view(torch.int32), b.view(torch.int32))
print(f"{c:4s} {m:34s} shape {tuple(a.shape)} bit-identical {same} "
      f"max|diff| {(a - b).abs().max().item():.3g}")
sys.exit(0 if same else 1)
P
        done
    done
    echo "overall: $([ $fail = 0 ] && echo PASS || echo FAIL)"
    exit $fail
    ;;
*)
    echo "usage: device_ctensors.sh prepare BUILD | check" >&2
    exit 2
    ;;
esac
