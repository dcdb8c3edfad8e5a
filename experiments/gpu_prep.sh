#!/usr/bin/env bash
# Prepare this checkout for a lent GPU machine (the `device` tool of this workplace): that machine has Python 3.12
# with torch, pandas, scikit-learn, rich, pyyaml, safetensors, onnx / onnxruntime and pytest, but not optuna,
# pydantic or plotly, and it cannot download anything. This script puts wheels of those (the versions in .venv)
# into .whl/ and the Fashion-MNIST / MNIST .npz files into .gpudata/, both git-ignored through
# .git/info/exclude; together about 60 MiB, under the device's 64 MiB carry limit. Ray is not carried (its wheel
# alone is larger): the Ray tests skip there and run on the CPU in CI.
#
# Then every device command names carry [".whl", ".gpudata"] and starts with
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
#       .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD NAS_DATA_DIR=$PWD/.gpudata PYTHONUNBUFFERED=1 || exit;
# followed by, one 10-minute command at a time (results under experiments/results/ come back through $OUT):
#   python3 -m pytest -q -m gpu tests
#   python3 experiments/bench_trainer_overhead.py --device cuda
#   python3 experiments/bench_ssm_scan.py --device cuda         (then set ssm.scan_plan's CUDA branch by it)
#   python3 experiments/bench_trials_per_gpu.py --seconds 180
#   python3 experiments/search_quality.py search fmnist_vision --profile gpu --time-limit 540
#
# Usage: experiments/gpu_prep.sh            (from anywhere; NAS_DATA_DIR or ../shared/data holds the .npz files)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
mkdir -p .git/info .whl .gpudata
for d in /.whl/ /.gpudata/; do grep -qxF "$d" .git/info/exclude 2>/dev/null || echo "$d" >> .git/info/exclude; done
names="optuna alembic sqlalchemy colorlog mako plotly pydantic pydantic-core annotated-types typing-inspection"
pins=()
for name in $names; do
  version=$("$PY" -m pip show "$name" 2>/dev/null | awk '/^Version:/ {print $2}')
  if [ -z "$version" ]; then echo "gpu_prep: $name is not installed in $PY's environment" >&2; exit 2; fi
  pins+=("$name==$version")
done
rm -f .whl/*.whl
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .whl "${pins[@]}"
data=${NAS_DATA_DIR:-../shared/data}
for f in fashion_mnist.npz mnist.npz; do
  if [ -f "$data/$f" ]; then cp "$data/$f" .gpudata/; else echo "gpu_prep: no $data/$f (skipped)" >&2; fi
done
du -sh .whl .gpudata
echo "gpu_prep: carry [\".whl\", \".gpudata\"] in each device run"
