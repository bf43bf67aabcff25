#!/usr/bin/env bash
# The GPU half of edge_fer on one NVIDIA GPU machine, from a clean checkout, in a few minutes:
#   install the tensorrt extra; build fp32, fp16 and int8 engines from the committed FERPlus ONNX files
#   (benchmarks/ferplus/model-onnx-*.onnx), each rule-checked first and checked for top-1 agreement with
#   onnx-fp32 on the FERPlus test images; benchmark them (SingleStream and Offline) into a SQLite file;
#   write the report.
#
#   bash benchmarks/gpu_check.sh [--dry-run] [--builder python-api|trtexec]
#
# --dry-run prints every command, and for each engine the rule check, the trtexec command line and the
# Python API settings for the GPU and TensorRT it finds, without installing or building anything.
# Environment: FERPLUS_ROOT (default ../shared/datasets/ferplus), OUT (default runs/gpu-check).
set -euo pipefail
cd "$(dirname "$0")/.."

dry_run=0
builder=python-api
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry_run=1 ;;
    --builder) builder="$2"; shift ;;
    *) echo "usage: bash benchmarks/gpu_check.sh [--dry-run] [--builder python-api|trtexec]" >&2; exit 2 ;;
  esac
  shift
done
root="${FERPLUS_ROOT:-../shared/datasets/ferplus}"
out="${OUT:-runs/gpu-check}"
models=benchmarks/ferplus

run() {  # print a command, then run it unless this is a dry run
  printf '+'; printf ' %q' "$@"; printf '\n'
  if [ "$dry_run" -eq 0 ]; then "$@"; fi
}

if [ "$dry_run" -eq 0 ]; then
  if ! command -v nvidia-smi >/dev/null 2>&1; then
    echo "gpu_check: no nvidia-smi here; this script needs an NVIDIA GPU (try --dry-run)" >&2
    exit 2
  fi
  [ -d .venv ] || python3 -m venv .venv
fi
run . .venv/bin/activate
run python -m pip install --quiet -e '.[tensorrt,dev]'
[ "$dry_run" -eq 1 ] && [ -x .venv/bin/edge-fer ] && . .venv/bin/activate
run mkdir -p "$out"

for precision in fp32 fp16 int8; do
  if [ "$dry_run" -eq 1 ] && command -v edge-fer >/dev/null 2>&1; then
    edge-fer engine "$models" --precision "$precision" --builder "$builder" --dry-run || true
  fi
  run edge-fer engine "$models" --precision "$precision" --builder "$builder" \
    --out "$out/model-tensorrt-$precision.engine" \
    --reference "$models/model-onnx-fp32.onnx" --dataset ferplus --root "$root" --label-mode majority
done

run edge-fer bench "$out/model-tensorrt-fp32.engine" "$out/model-tensorrt-fp16.engine" "$out/model-tensorrt-int8.engine" \
  "$models/model-onnx-fp32.onnx" --target local-gpu --dataset ferplus --root "$root" --label-mode majority \
  --store "$out/results.sqlite"
run edge-fer report --store "$out/results.sqlite" --out "$out/report"
run python -m pytest -m gpu
