#!/usr/bin/env bash
# Everything a GPU session measures, in one call; the figures go to BENCHMARKS.md ("GPU").
#
#   bash bench/gpu_session.sh OUT_DIR [PART ...]
#
# PARTS (default: smoke arch train restore data):
#   smoke    bench/gpu_smoke.py (numbers on CUDA, nccl torchrun + CUDA prefetch + resume, test.py, ndrsr.cli.restore)
#   arch     bench/bench_arch.py at 256^2 and 512^2 in fp32 (TF32 off), tf32, bf16 and fp16 (+ CUDA graph replay)
#   compile  bench/bench_arch.py --compile (dynamic shapes, and reduce-overhead = CUDA graphs) in bf16
#   train    bench/bench_train.py (demo and released sizes) in fp32, tf32 and bf16
#   restore  bench/bench_restore.py: a 3840x2160 image through ndrsr-restore's tiled path, fp32 and fp16
#   data     bench/bench_data.py with 0, 4 and 8 DataLoader workers (samples/s vs the step rate of train)
# Needs a Python with CUDA torch and ndrsr's dependencies importable (python3 by default; PYTHON=... to change).
# Each part writes OUT_DIR/<part>.log; the exit status is the number of parts that failed.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: bash bench/gpu_session.sh OUT_DIR [PART ...]}
shift
parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(smoke arch train restore data)
py=${PYTHON:-python3}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
failed=0

run_part() {
    local part=$1
    echo "=== $part ($(date +%H:%M:%S))"
    case $part in
        smoke) $py bench/gpu_smoke.py ;;
        arch)
            for p in fp32 tf32 bf16 fp16; do
                $py bench/bench_arch.py --device cuda --precision "$p" --sizes 256 512 --runs 30 --cudnn-benchmark \
                    --cuda-graph
            done ;;
        compile)
            timeout 300 $py bench/bench_arch.py --device cuda --precision bf16 --sizes 512 --runs 30 --cudnn-benchmark --compile
            timeout 300 $py bench/bench_arch.py --device cuda --precision bf16 --sizes 512 --runs 30 --cudnn-benchmark \
                --compile --compile-mode reduce-overhead ;;
        train)
            for p in fp32 tf32 bf16; do
                $py bench/bench_train.py --device cuda --precision "$p" --runs 20 --cudnn-benchmark
            done ;;
        restore)
            for p in fp32 fp16; do
                $py bench/bench_restore.py --device cuda --precision "$p" --threads 8
            done ;;
        data)
            for w in 0 4 8; do
                $py bench/bench_data.py --workers "$w" --samples 100 --rounds 3
            done ;;
        *) echo "unknown part $part"; return 2 ;;
    esac
}

for part in "${parts[@]}"; do
    run_part "$part" 2>&1 | tee "$out/$part.log"
    status=${PIPESTATUS[0]}
    echo "=== $part exit $status"
    [ "$status" -ne 0 ] && failed=$((failed + 1))
done
echo "=== parts failed: $failed"
exit $failed
