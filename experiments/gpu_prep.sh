#!/usr/bin/env bash
# Prepare this checkout for a lent GPU machine (the `device` tool of this workplace): that machine has Python 3.12
# with torch, pandas, scikit-learn, rich, pyyaml, safetensors, onnx / onnxruntime and pytest, but not optuna,
# pydantic or plotly, and it cannot download anything. This script puts wheels of those (the versions in .venv)
# into .whl/ and the CIFAR-10 subset (cifar10_small.npz) into .gpudata/, both git-ignored through
# .git/info/exclude; with the tracked tree about 57 MiB, under the device's 64 MiB limit (Fashion-MNIST as well
# would pass it, so the GPU checks run on CIFAR-10). Ray is not carried (its wheel
# alone is larger): the Ray tests skip there and run on the CPU in CI.
#
# Then each device call names carry [".whl", ".gpudata"] and runs experiments/gpu_run.sh with the stages it wants
# (that script installs the wheels, sets PYTHONPATH / NAS_DATA_DIR, and returns results in $OUT/results.tgz):
#   bash experiments/gpu_run.sh env tests trainer fidelity       (about 5 minutes with FIDELITY_MIN=2)
#   bash experiments/gpu_run.sh ssm latency packing phases       (about 5 minutes with PACK_S=60)
# All of them ran on 2026-12-04 (docs/benchmarks.md, "On a GPU"). Still open there: the trainer with its data blocks
# (target 0.9), --trials-per-gpu with proxy training in the default layout, and proxy_fidelity --full past 7
# architectures (FIDELITY_MIN=4 gets about 30 at the default layout's pace, unmeasured).
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
rm -f .whl/*.whl .gpudata/*.npz
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .whl "${pins[@]}"
data=${NAS_DATA_DIR:-../shared/data}
for f in cifar10_small.npz; do
  if [ -f "$data/$f" ]; then cp "$data/$f" .gpudata/; else echo "gpu_prep: no $data/$f (skipped)" >&2; fi
done
du -sh .whl .gpudata
echo "gpu_prep: carry [\".whl\", \".gpudata\"] in each device run"
