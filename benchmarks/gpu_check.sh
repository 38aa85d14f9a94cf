#!/usr/bin/env bash
# One prepared device check: run from the repository root; results in $OUT (or benchmarks/results).
#   bash benchmarks/gpu_check.sh [--budget-s 480] [--tiny] [--only SECTION ...] ...
#   bash benchmarks/gpu_check.sh --budget-s 470 --only zebrafish_fit throughput_1m
# Every section runs in a subprocess killed at its cap, so the run ends within --budget-s
# (480 s by default) plus a few seconds; the timeout is a last resort.
set -u
cd "$(dirname "$0")/.."
OUT_DIR="${OUT:-benchmarks/results}"
mkdir -p "$OUT_DIR"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
timeout 560 python3 benchmarks/gpu_check.py --budget-s 480 --output "$OUT_DIR/gpu_check.json" "$@" 2>&1 \
  | tee "$OUT_DIR/gpu_check_log.txt"
