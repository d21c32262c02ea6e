# `make run`: set up what is missing, then start the GUI on the bundled recording.
# `make test`: set up, start the virtual sound card, run the tests.  `make bench`: the speed table.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# The CPU wheel: an unpinned torch pulls a multi-GB CUDA build.
TORCH  ?= torch==2.13.0
PYQT   ?= PyQt6==6.11.0
# `rtdstft batch` and its tests: Parquet, the Ray cluster path, pandas to read the dataset back.
SCALE  ?= ray[data]==2.60.0 pyarrow==26.0.1 pandas==3.1.1 tqdm==4.70.1
DEMO   := recordings/demo.wav

.PHONY: run test bench lint setup system-deps clean

setup: system-deps $(VENV)/.installed

system-deps:
	@bash scripts/system-deps.sh

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check $(TORCH) $(PYQT) $(SCALE)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	# Test-only: the seed paper's reference implementation, compared against in tests and bench
	# (its matplotlib import is covered by the audio extra; --no-deps skips its torchaudio pin).
	$(PY) -m pip install -q --disable-pip-version-check --no-deps dstft==3.0.0
	@touch $@

$(DEMO): gui/demo.py | $(VENV)/.installed
	$(PY) -m rtdstft_gui.demo $@

run: setup $(DEMO)
	$(VENV)/bin/rtdstft-gui $(DEMO) $(ARGS)

test: setup $(DEMO)
	$(VENV)/bin/ruff check rtdstft gui tests scripts
	@eval "$$(bash scripts/pulse.sh start)"; \
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS); rc=$$?; \
	bash scripts/pulse.sh stop; exit $$rc

# The seed paper's reference implementation, for comparison rows only (not a dependency of rtdstft;
# --no-deps keeps its torchaudio requirement, which it never imports, from pulling a CUDA torch).
bench: setup
	$(PY) -m pip install -q --disable-pip-version-check --no-deps dstft==3.0.0
	$(VENV)/bin/rtdstft bench $(ARGS)

lint: setup
	$(VENV)/bin/ruff check rtdstft gui tests scripts

clean:
	rm -rf $(VENV) build *.egg-info
