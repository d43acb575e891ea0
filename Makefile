# The course's commands. `make book` and `make test` do all set-up on a fresh machine.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.aigc-installed
# The venv's pins; the package metadata keeps looser bounds for Colab.
# torchao 0.18.0 (August 2026), the newest on the index, is the release whose PT2E int8 path
# runs on torch 2.14 (tests/test_quantize.py); its wheels declare no torch bound, so pin both.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1 torchao==0.18.0
# make test runs two pytest workers side by side on the two cores: one thread each there.
export OMP_NUM_THREADS ?= 2
export PYTHONHASHSEED := 0

.PHONY: setup browser assets book test lint format strip outputs student clean judge

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@# The venv's 22,000 modules are byte-compiled on every core (56 s here; pip does it on
	@# one, about 90 s). They must be: where PYTHONDONTWRITEBYTECODE is set (this machine,
	@# CI) Python caches no .pyc itself, and without them every kernel and subprocess
	@# recompiled torch on import (the suite ran 1.8x slower: 1,046 s against 586 s).
	$(PY) -m pip install --quiet --no-compile $(TORCH_PINS) -e ".[dev]"
	@# as pip does, a module that does not compile is skipped (torch ships a Python 3.12 test
	@# file, py312_intrinsics.py, that 3.11 cannot parse): its import would fail either way
	$(PY) -m compileall -q -j 0 "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" > /dev/null || true
	@touch $(STAMP)

## assets: what the built book loads, kept inside it so it reads offline (a classroom, a USB
# stick). MathJax comes with the sphinx-mathjax-offline package (pip, the book extra);
# require.js and the Jupyter widget manager (the version ipywidgets 8 expects) from npm.
VENDOR := book/_static/vendor
EXTRA  := book/_extra
FONTS  := @jupyter-widgets/html-manager/dist
HTML_MANAGER := 1.0.15
REQUIREJS := 2.3.8
assets: $(VENDOR)/.installed

$(VENDOR)/.installed: Makefile
	@command -v npm >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null; } || \
		{ echo "the book's offline assets need npm (apt-get install npm)"; exit 1; }
	@rm -rf $(VENDOR) && mkdir -p $(VENDOR)/@jupyter-widgets/html-manager $(VENDOR)/requirejs
	cd $(VENDOR) && npm pack --silent @jupyter-widgets/html-manager@$(HTML_MANAGER) \
		requirejs@$(REQUIREJS) >/dev/null
	tar xzf $(VENDOR)/jupyter-widgets-html-manager-$(HTML_MANAGER).tgz \
		-C $(VENDOR)/@jupyter-widgets/html-manager \
		--strip-components=1 --exclude='*.map' package/dist
	tar xzf $(VENDOR)/requirejs-$(REQUIREJS).tgz -C $(VENDOR)/requirejs --strip-components=1 \
		package/require.js package/README.md
	@rm -f $(VENDOR)/*.tgz
	@# the manager looks for its fonts next to each page: the root and notebooks/
	@rm -rf $(EXTRA) && for page_dir in . notebooks; do mkdir -p $(EXTRA)/$$page_dir/$(FONTS) && \
		cp $(VENDOR)/$(FONTS)/*.woff* $(EXTRA)/$$page_dir/$(FONTS)/; done
	@touch $@

## book: execute the notebooks (profile "auto": cpu here, gpu with CUDA) and build _build/html
# The execution cache does not know the profile: a build with another AIGC_PROFILE (or
# AIGC_DRY_RUN) clears it, and Sphinx's saved pages too (_build/.doctrees holds the executed
# outputs, and Sphinx re-reads no unchanged source), so every page is rebuilt.
book: setup assets
	@mkdir -p _build; profile="$${AIGC_PROFILE:-auto}$${AIGC_DRY_RUN:+ dry-run=$$AIGC_DRY_RUN}"; \
	if [ -f _build/.aigc-profile ] && [ "$$(cat _build/.aigc-profile)" != "$$profile" ]; then \
		echo "profile changed to $$profile: clearing the execution cache and the built pages"; \
		rm -rf _build/.jupyter_cache _build/.doctrees _build/html; fi; \
	echo "$$profile" > _build/.aigc-profile
	$(VENV)/bin/jupyter-book build . -W -n --keep-going
	@echo "Open _build/html/index.html"

## browser: Debian's chromium and chromedriver, for the test of chapter 10's page. Installed
# with apt when missing and running as root; otherwise that one test is skipped (it says why).
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing chromium and chromium-driver with apt (chapter 10's browser test)"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 || \
		{ apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; } || \
		echo "apt could not install chromium: the browser test will be skipped"; \
	else echo "no chromium and not root: the browser test will be skipped"; fi

## test: the whole suite (ruff, the import layers, mypy, unit, parity, quality, notebooks, book)
test: setup browser assets
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	@# mypy (about 90 s on a fresh clone, on one core) runs beside the suite, whose two
	@# workers leave part of the two cores idle; either failing fails the target
	@$(VENV)/bin/mypy > $(VENV)/mypy.log 2>&1 & mypy=$$!; \
	echo "mypy (beside the tests) and OMP_NUM_THREADS=1 pytest -n 2 --dist loadgroup"; \
	OMP_NUM_THREADS=1 $(PY) -m pytest -n 2 --dist loadgroup --durations=20; tests=$$?; \
	wait $$mypy; typed=$$?; echo "mypy:"; cat $(VENV)/mypy.log; \
	[ $$tests -eq 0 ] && [ $$typed -eq 0 ]

lint: setup
	$(VENV)/bin/ruff check .

format: setup
	$(VENV)/bin/ruff check --fix .

## strip: remove outputs from notebooks, except cells marked NBVAL_CHECK_OUTPUT
strip: setup
	$(PY) -m aigc_course.notebook strip notebooks/*.ipynb

## outputs: re-run the notebooks on smoke and keep the NBVAL_CHECK_OUTPUT cells' outputs
outputs: setup
	$(PY) -m aigc_course.notebook refresh notebooks/*.ipynb

## student: write student versions of the notebooks (solutions replaced by stubs) to _student/
student: setup
	$(PY) -m aigc_course.notebook student notebooks/*.ipynb --out _student

## judge: retrain the digits judge and overwrite its shipped checkpoint (others: aigc-course judge --dataset D)
judge: setup
	$(VENV)/bin/aigc-course judge

clean:
	rm -rf _build _student .pytest_cache
