# edgesmith: `make demo` (the main job) and `make test` work on a fresh machine with python3 only.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
DATA   ?= cifar10
MODEL  ?= resnet8
EPOCHS ?= 3
OUT    ?= runs/demo
DEMO_ARGS ?=

.PHONY: install test demo bench clean

# The venv is rebuilt whenever pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[train,dev]'
	touch $@

install: $(VENV)/.installed

# One pytest worker per core (a test file stays on one worker, so its module fixtures are built
# once): most tests spend their time in single-threaded graph tracing and conversion, so two
# workers on 2 cores take about half the wall time of one.
test: $(VENV)/.installed
	TF_CPP_MIN_LOG_LEVEL=3 $(PY) -m pytest -q -ra -n auto --dist loadfile

# Train, export and benchmark one model. On a machine without internet access pass a
# class-folder dataset, e.g. `make demo DATA=../shared/data/cifar10-jpeg`.
demo: $(VENV)/.installed
	TF_CPP_MIN_LOG_LEVEL=3 $(VENV)/bin/edgesmith pipeline --data $(DATA) --model $(MODEL) \
		--epochs $(EPOCHS) --out $(OUT) --overwrite --threads 1,2 $(DEMO_ARGS)

# The project's own performance figures (printed, never asserted): export time per variant, wall time
# and p50 stability of two full `edgesmith bench` runs on BENCH_RUN (default: runs/demo, else a small
# synthetic run), then training throughput per precision.
BENCH_RUN ?=
bench: $(VENV)/.installed
	TF_CPP_MIN_LOG_LEVEL=3 $(PY) -m edgesmith.benchmarks.perf_project $(BENCH_RUN)
	TF_CPP_MIN_LOG_LEVEL=3 $(PY) -m edgesmith.benchmarks.perf_training

clean:
	rm -rf $(VENV) runs .pytest_cache
