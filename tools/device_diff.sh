#!/usr/bin/env bash
# device_diff.sh — `gptq diff` CPU vs HIP on the device machine (one NVIDIA
# H100; the HIP plugin compiled by nvcc as tools/device_gpu.sh does): the
# HIP cases of tests/test_diff.c (every model given, feed ref and own, sym
# and asym; the golden layer case ref/w4_g128_asym), the same golden case
# through the CLI (`gptq layer --backend hip` + `gptq compare`), and
# `gptq diff --json` logs. Logs come back through $OUT.
#
# /work/shared does not travel, and a call carries 64 MiB in all (the
# working tree and .debs included), so the shared models travel as slices
# of their first layers (a layer-by-layer walk computes exactly the same
# first layers either way), made here:
#   bash tools/device_diff.sh prepare SET      (on the dev machine)
# SET 1: stories-260k (whole) + opt-18m (first 3 of 4 layers)
# SET 2: llama-27m (first 2 of 6 layers)
# SET 3 / 4: llama-27m / opt-18m whole (every layer), xz-compressed, for the
#            `cli` step (which needs no Criterion: carry .debs-diff instead)
# into .dev/diffshared/models/ (ignored by git). Then, through the device
# tool, carrying [".debs", ".dev/diffshared"]:
#   bash tools/device_diff.sh run
# which builds (tools/device_gpu.sh build, then the diff targets), runs the
# tests on every model found in .dev/diffshared/models and data/tiny-llama,
# and writes $OUT/diff_test.log, $OUT/diff_<model>_<feed>.jsonl,
# $OUT/golden_cli.log, $OUT/summary.txt. Calibration text on the device:
# data/text/calib.txt (tracked, so it travels without carry).
set -uo pipefail
root=$(pwd)
step=${1:-run}

if [ "$step" = prepare ]; then
    set=${2:?prepare needs SET 1 or 2}
    SH=${GPTQ_SHARED:-$root/../shared}
    dst=$root/.dev/diffshared/models
    rm -rf "$root/.dev/diffshared"
    mkdir -p "$dst"
    slice() { # name nlayers
        /usr/bin/python3 - "$SH/models/$1" "$dst/$1" "$2" <<'EOF'
import json, os, re, shutil, struct, sys
src, dst, keep = sys.argv[1], sys.argv[2], int(sys.argv[3])
os.makedirs(dst, exist_ok=True)
for f in os.listdir(src):
    if f.endswith(".json") and f != "model.safetensors.index.json":
        shutil.copy(os.path.join(src, f), dst)
cfg = json.load(open(os.path.join(dst, "config.json")))
cfg["num_hidden_layers"] = min(keep, cfg["num_hidden_layers"])
json.dump(cfg, open(os.path.join(dst, "config.json"), "w"), indent=2)
files = sorted(f for f in os.listdir(src) if f.endswith(".safetensors"))
lay = re.compile(r"\.layers\.(\d+)\.")
tensors = []  # (name, dtype, shape, bytes)
for f in files:
    with open(os.path.join(src, f), "rb") as fh:
        n = struct.unpack("<Q", fh.read(8))[0]
        hdr = json.loads(fh.read(n))
        base = 8 + n
        for name, info in hdr.items():
            if name == "__metadata__":
                continue
            m = lay.search(name)
            if m and int(m.group(1)) >= keep:
                continue
            a, b = info["data_offsets"]
            fh.seek(base + a)
            tensors.append((name, info["dtype"], info["shape"], fh.read(b - a)))
tensors.sort(key=lambda t: t[0])
hdr, off = {"__metadata__": {"format": "pt"}}, 0
for name, dt, shape, data in tensors:
    hdr[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(data)]}
    off += len(data)
h = json.dumps(hdr, separators=(",", ":")).encode()
h += b" " * (-len(h) % 8)
with open(os.path.join(dst, "model.safetensors"), "wb") as out:
    out.write(struct.pack("<Q", len(h)) + h)
    for t in tensors:
        out.write(t[3])
print(f"{dst}: {cfg['num_hidden_layers']} layers, {len(tensors)} tensors, {off / 1e6:.1f} MB")
EOF
    }
    whole() { # name: every layer, the shards xz-compressed (unpacked by `cli`)
        mkdir -p "$dst/$1"
        cp "$SH/models/$1"/*.json "$dst/$1/"
        for f in "$SH/models/$1"/*.safetensors; do
            xz -T0 -6 -c "$f" >"$dst/$1/$(basename "$f").xz"
        done
        chmod -R u+w "$dst"
        # the packages without Criterion (no tests are built for `cli`) and
        # with the OpenBLAS headers as a tar instead of their 5 MB -dev .deb
        rm -rf "$root/.debs-diff"
        mkdir -p "$root/.debs-diff"
        for f in "$root"/.debs/*.deb; do
            case $(basename "$f") in
            libcriterion* | libgit2* | libnanomsg* | libhttp-parser* | libmbed* | libssh2* | \
                libgssapi* | libkrb5* | libk5crypto* | libkeyutils* | libcom-err* | libffi* | \
                libopenblas-pthread-dev* | libtmglib*) ;;
            *) cp "$f" "$root/.debs-diff/" ;;
            esac
        done
        cp "$root/.debs-cpu/openblas-headers.tar" "$root/.debs-diff/"
    }
    case $set in
    1) cp -r "$SH/models/stories-260k" "$dst/" && chmod -R u+w "$dst" && slice opt-18m 3 ;;
    2) slice llama-27m 2 ;;
    3) whole llama-27m ;;
    4) whole opt-18m ;;
    *) echo "SET must be 1, 2, 3 or 4"; exit 2 ;;
    esac
    du -sh "$root/.dev/diffshared" "$root/.debs" "$root/.debs-diff" 2>/dev/null
    exit 0
fi

# cli: every layer of the whole models of SET 3 / 4 through `gptq diff`
# (exit 1 when a metric passes its threshold), carrying
# [".debs-diff", ".dev/diffshared"]: feed ref (the gate) and own, asym and sym.
if [ "$step" = cli ]; then
    OUT=${OUT:-/tmp/gptq-out}
    mkdir -p "$OUT"
    DEBS=.debs-diff GPTQ_TESTS=disabled bash tools/device_gpu.sh build ||
        { echo "build failed"; exit 1; }
    export LD_LIBRARY_PATH=/tmp/deps/usr/lib/x86_64-linux-gnu:/tmp/deps/usr/lib/x86_64-linux-gnu/openblas-pthread
    export GPTQ_BACKEND_PATH=$root/build-gpu/backends/hip OPENBLAS_CORETYPE=Haswell
    SH=$root/.dev/diffshared
    for f in "$SH"/models/*/*.xz; do xz -d "$f"; done
    fails=0
    for m in $(ls "$SH/models"); do
        for feed in ref own; do
            for grid in asym sym; do
                timeout 240 build-gpu/src/cli/gptq diff "$SH/models/$m" --backends cpu,hip \
                    --calib data/text/calib.txt --nsamples 16 --seqlen 128 --$grid --feed $feed \
                    --json >"$OUT/diff_${m}_${feed}_$grid.jsonl" 2>&1
                rc=$?
                [ $rc -eq 0 ] || fails=$((fails + 1))
                echo "== gptq diff $m feed $feed $grid: rc=$rc (1 = a threshold failed)" |
                    tee -a "$OUT/summary.txt"
                tail -1 "$OUT/diff_${m}_${feed}_$grid.jsonl" | cut -c1-600
            done
        done
    done
    echo "== failures: $fails" | tee -a "$OUT/summary.txt"
    exit $fails
fi

OUT=${OUT:-/tmp/gptq-out}
mkdir -p "$OUT"
log() { echo "== $*" | tee -a "$OUT/summary.txt"; }

# build as device_gpu.sh does (dependencies, plugin), then the diff targets
bash tools/device_gpu.sh build || { log "device_gpu.sh build failed"; exit 1; }
D=/tmp/deps
L=$D/usr/lib/x86_64-linux-gnu
export LD_LIBRARY_PATH=$L:$L/openblas-pthread${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export PKG_CONFIG_PATH=$D/pc PKG_CONFIG_LIBDIR=$D/pc LIBRARY_PATH=$L:$L/openblas-pthread
command -v pkg-config >/dev/null || export PKG_CONFIG=$D/usr/bin/pkgconf
B=build-gpu
ninja -C "$B" tests/test_diff tests/libgptq-testgood.so src/cli/gptq >"$OUT/build_diff.log" 2>&1
rc=$?
tail -5 "$OUT/build_diff.log"
log "diff targets build rc=$rc"
[ $rc -eq 0 ] || exit 1

# the shared models that travelled, and a calibration text beside them
SH=$root/.dev/diffshared
mkdir -p "$SH/text"
cp data/text/calib.txt "$SH/text/calib.txt"
ls "$SH/models" | tee -a "$OUT/summary.txt"

export GPTQ_SOURCE_ROOT=$root GPTQ_BUILD_ROOT=$root/$B GPTQ_TEST_PLUGIN_DIR=$root/$B/tests
export GPTQ_SHARED=$SH OPENBLAS_CORETYPE=Haswell
export GPTQ_BACKEND_PATH=$root/$B/backends/hip # the CLI finds the plugin there
log "test_diff"
timeout 300 "$B/tests/test_diff" --verbose --jobs 1 >"$OUT/diff_test.log" 2>&1
log "test_diff rc=$?"
grep -E "\[(PASS|FAIL|SKIP)\]|Synthesis|cpu vs hip|ref/w4|hip::" "$OUT/diff_test.log" | tail -40

# the golden case through the CLI
log "golden case through the CLI"
G=$B/src/cli/gptq
{
    $G layer ref/w4_g128_asym/input.safetensors -o /tmp/golden_hip.safetensors --backend hip \
        --bits 4 --group-size 128 --asym --damp-percent 0.01 &&
        $G compare ref/w4_g128_asym/expected.safetensors /tmp/golden_hip.safetensors
} >"$OUT/golden_cli.log" 2>&1
log "golden CLI rc=$?"
cat "$OUT/golden_cli.log"

# a gptq diff --json log (asym, feed ref) on the first model found
m=$(ls "$SH/models" | grep -v stories | head -1)
for feed in ref; do
    [ -n "$m" ] || break
    timeout 60 $G diff "$SH/models/$m" --backends cpu,hip --calib "$SH/text/calib.txt" \
        --nsamples 16 --seqlen 128 --asym --feed $feed --json >"$OUT/diff_${m}_$feed.jsonl" 2>&1
    log "gptq diff $m feed $feed rc=$? (exit 1 = a threshold failed)"
    tail -1 "$OUT/diff_${m}_$feed.jsonl"
done
