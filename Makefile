# edgesmith: `make demo` (the main job) and `make test` work on a fresh machine with python3 only.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
DATA   ?= cifar10
MODEL  ?= resnet8
EPOCHS ?= 3
OUT    ?= runs/demo
DEMO_ARGS ?=

.PHONY: install test demo clean

# The venv is rebuilt whenever pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[train,dev]'
	touch $@

install: $(VENV)/.installed

test: $(VENV)/.installed
	TF_CPP_MIN_LOG_LEVEL=3 $(PY) -m pytest -q -ra

# Train, export and benchmark one model. On a machine without internet access pass a
# class-folder dataset, e.g. `make demo DATA=../shared/data/cifar10-jpeg`.
demo: $(VENV)/.installed
	TF_CPP_MIN_LOG_LEVEL=3 $(VENV)/bin/edgesmith pipeline --data $(DATA) --model $(MODEL) \
		--epochs $(EPOCHS) --out $(OUT) --overwrite --threads 1,2 $(DEMO_ARGS)

clean:
	rm -rf $(VENV) runs .pytest_cache
