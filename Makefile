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

demo: setup
	$(BIN)/nas space sample vision -n 5 --seed 0
	$(BIN)/nas eval vision --dataset digits --epochs 3 --seed 0

test: setup
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs .pytest_cache
