# edgesmith: `make demo` (the main job) and `make test` work on a fresh machine with python3 only.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
NOTF_VENV ?= .venv-notf
DATA   ?= cifar10
MODEL  ?= resnet8
EPOCHS ?= 3
OUT    ?= runs/demo
DEMO_ARGS ?=

.PHONY: install test test-notf test-avx2 demo bench clean

# The venv is rebuilt whenever pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[train,mcu,dev]'
	touch $@

install: $(VENV)/.installed

# One pytest worker per core (a test file stays on one worker, so its module fixtures are built
# once): most tests spend their time in single-threaded graph tracing and conversion, so two
# workers on 2 cores take about half the wall time of one.
test: $(VENV)/.installed
	TF_CPP_MIN_LOG_LEVEL=3 $(PY) -m pytest -q -ra -n auto --dist loadfile

# The TF-free tier as a device runs it: a second venv holding `pip install edgesmith` with no
# extras (LiteRT, numpy, Pillow, Typer: no TensorFlow, ONNX Runtime or matplotlib) plus pytest,
# running every test not marked `tf`; tests marked `onnx` or `plots` are skipped there with the
# extra that brings them (tests/conftest.py). The venv is rebuilt from scratch when pyproject.toml
# changes, so a dependency that moved to an extra does not linger; edgesmith itself is reinstalled
# as a wheel from the working tree on every run (a few seconds; build/ is cleared so no deleted
# module lingers in it), and pytest runs from tests/ so the repository's edgesmith/ folder cannot
# shadow the installed package (nor in the bench's worker processes).
$(NOTF_VENV)/.installed: pyproject.toml
	rm -rf $(NOTF_VENV)
	$(PYTHON) -m venv $(NOTF_VENV)
	$(NOTF_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(NOTF_VENV)/bin/python -m pip install --quiet '.[dev]'
	touch $@

test-notf: $(NOTF_VENV)/.installed
	rm -rf build
	$(NOTF_VENV)/bin/python -m pip install --quiet --no-deps --force-reinstall .
	cd tests && $(abspath $(NOTF_VENV))/bin/python -m pytest -c ../pyproject.toml --rootdir .. -q -ra \
		-m "not tf" -n auto --dist loadfile .

# The int8 part of the suite again, as on an AVX2-only CPU (no AVX-512, no VNNI, no AMX: an AMD Zen 3),
# whatever CPU this is: tools/as_avx2.sh hides those features from /proc/cpuinfo and from ONNX Runtime's
# and LiteRT's CPUID, so their AVX2 kernels run. The int8 forms, targets, advice, float fallback and the
# one real-data smoke pipeline must pass there too. Where the tool cannot run (not root, no mount
# namespace, no gdb/objdump) it prints why and passes without testing.
AVX2_TESTS ?= tests/export/test_int8_forms.py tests/export/test_targets.py tests/benchmarks/test_advice.py \
	tests/export/test_fallback.py tests/test_realdata_smoke.py
test-avx2: $(VENV)/.installed
	@if tools/as_avx2.sh --check; then \
		tools/as_avx2.sh env TF_CPP_MIN_LOG_LEVEL=3 $(PY) -m pytest -q -ra -n auto --dist loadfile $(AVX2_TESTS); \
	else echo "test-avx2: skipped, the AVX2 view needs what is named above"; fi

# Train, export and benchmark one model. On a machine without internet access pass a
# class-folder dataset, e.g. `make demo DATA=../shared/data/cifar10-jpeg`.
demo: $(VENV)/.installed
	TF_CPP_MIN_LOG_LEVEL=3 $(VENV)/bin/edgesmith pipeline --data $(DATA) --model $(MODEL) \
		--epochs $(EPOCHS) --out $(OUT) --overwrite --threads 1,2 $(DEMO_ARGS)

# The project's own performance figures (printed, never asserted; scripts in tools/, not installed):
# export time per variant, wall time and p50 stability of two full `edgesmith bench` runs on BENCH_RUN
# (default: runs/demo, else a small synthetic run), then training throughput per precision on DATA
# (a class-folder dataset, cifar10 or synthetic).
BENCH_RUN ?=
bench: $(VENV)/.installed
	TF_CPP_MIN_LOG_LEVEL=3 $(PY) tools/perf_project.py $(BENCH_RUN)
	TF_CPP_MIN_LOG_LEVEL=3 $(PY) tools/perf_training.py --data $(DATA)

clean:
	rm -rf $(VENV) $(NOTF_VENV) runs .pytest_cache
