#!/usr/bin/env bash
# Build the CPU core on the device machine (no Debian packages there: the
# .deb files carried in .debs-cpu, made by ../shared/tools/device-debs.sh
# plus cjson and pcre2, are unpacked into /tmp/deps) and run bench_layer at
# Llama-2-7B layer shapes with all 16 cores and 16,384 calibration tokens.
#   device run:  bash tools/device_cpu_bench.sh   (carry: .debs-cpu)
# Output: the bench table on stdout and in $OUT/bench_cpu.txt.
set -euo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p /tmp/deps "$OUT"
for f in .debs-cpu/*.deb; do dpkg -x "$f" /tmp/deps; done
D=/tmp/deps/usr
LIB=$D/lib/x86_64-linux-gnu
export LD_LIBRARY_PATH=$LIB:$LIB/openblas-pthread
# the -dev packages' .so links are absolute to /usr/lib/...: link by path
ln -sf "$LIB/openblas-pthread/libopenblas.so.0" /tmp/deps/libopenblas.so
ln -sf "$LIB/liblapacke.so.3" /tmp/deps/liblapacke.so
ln -sf "$LIB/libcjson.so.1" /tmp/deps/libcjson.so
ln -sf "$LIB/libpcre2-8.so.0" /tmp/deps/libpcre2-8.so
ln -sf "$LIB/libutf8proc.so.2" /tmp/deps/libutf8proc.so
CC=${CC:-gcc}
CFLAGS="-std=c11 -O3 -ffp-contract=off -fno-fast-math -fopenmp -D_DEFAULT_SOURCE -DNDEBUG
  -Isrc -Ibackends -Ibackends/cpu -I$D/include -I$D/include/x86_64-linux-gnu
  -I$D/include/x86_64-linux-gnu/openblas-pthread"
srcs=$(ls src/*.c src/core/*.c src/io/*.c src/quant/*.c src/model/*.c src/text/*.c src/eval/*.c \
       backends/cpu/*.c 2>/dev/null)
mkdir -p /tmp/obj
objs=()
for s in $srcs; do
  o=/tmp/obj/$(echo "$s" | tr / _).o
  $CC $CFLAGS -c "$s" -o "$o" &
  objs+=("$o")
done
wait
$CC $CFLAGS bench/bench_layer.c "${objs[@]}" -o /tmp/bench_layer -L/tmp/deps \
  -lopenblas -llapacke -lcjson -lpcre2-8 -lutf8proc -lm -ldl -lpthread
lscpu | grep -E "Model name|^CPU\(s\)|Thread|Flags" | cut -c1-200 | tee "$OUT/cpu.txt"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-16}
/tmp/bench_layer --tokens 16384 "$@" | tee "$OUT/bench_cpu.txt"
