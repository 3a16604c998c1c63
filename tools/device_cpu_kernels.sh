#!/usr/bin/env bash
# device_cpu_kernels.sh — the fast W4A16 matmul (matmul_q_fast, issue 12) on
# the device machine's 16-core CPU, in one call: tools/device_cpu.sh's build
# and kernels steps (bench_w4a16 for each ISA the CPU runs, validated against
# gptq_matmul_ref first; the avx512 run also sweeps 1, 2, 4, 8 and all
# threads). The issue's target: a 7B decode step at >= 50% of the read
# bandwidth measured in the same program.
#
#   device run: bash tools/device_cpu_kernels.sh      carry: .debs (or .debs-cpu)
# (cp -r /work/main/.debs . first; ~2 min; logs in $OUT:
# w4a16_{avx512,avx2,generic}.txt, lscpu.txt, env.txt)
set -euo pipefail
exec bash "$(dirname "$0")/device_cpu.sh" build kernels
