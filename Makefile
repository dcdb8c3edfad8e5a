# Set-up and the two Quick-start jobs. torch==2.13.0 is installed before the project: on this workplace it is a
# local CPU wheel, and letting pip resolve "torch" itself would pull a multi-GB CUDA build.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
NAS_DATA_DIR ?= $(abspath ../shared/data)
export NAS_DATA_DIR

.PHONY: setup demo test clean

$(BIN)/nas: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(BIN)/nas

setup: $(BIN)/nas

# The main job: a small multi-objective search (accuracy vs. CPU latency) on the embedded 8x8 digits, then its
# front and the baselines timed again together, its report and the export of the knee of the front. Running it
# again continues (and finishes) the same run.
demo: setup
	$(BIN)/nas search experiments/digits_demo.yaml --name demo --resume --quiet
	$(BIN)/nas measure runs/demo
	$(BIN)/nas report runs/demo
	$(BIN)/nas export runs/demo --knee --out runs/demo/export --force

# Two worker processes (pytest-xdist), a test file to a worker: module-scoped fixtures such as the Ray runtime
# stay in one process.
test: setup
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

clean:
	rm -rf $(VENV) runs .pytest_cache
