# Two entry points: `make demo` and `make test`. Each creates .venv and installs what it needs.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test install clean timm-tests docs

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m glore.demo --output-dir results/demo

# the tests, then the Python blocks of README.md and docs/ (in order, one process: see conftest.py)
test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadgroup -q
	$(PY) -m pytest -q README.md docs

# the documentation site (Sphinx, warnings as errors) into site/
docs: $(STAMP)
	$(PY) -m sphinx -W --keep-going -q -b html docs site

# timm's own model tests (tests/test_models.py of the pinned timm's sdist) on glore's registered
# configurations: conformance/timm_glore.py deselects every other model; its pretrained-loading
# tests read stand-in weights from a hub cache that conformance/hub_cache.py writes (offline)
TIMM_VERSION := $(shell sed -n 's/.*"timm==\([0-9.]*\)".*/\1/p' pyproject.toml)
TIMM_TESTS := build/timm-$(TIMM_VERSION)

$(TIMM_TESTS)/tests/test_models.py: $(STAMP)
	rm -rf $(TIMM_TESTS) && mkdir -p $(TIMM_TESTS)
	$(PY) -m pip download --quiet --no-deps --no-binary :all: timm==$(TIMM_VERSION) -d $(TIMM_TESTS)
	tar xzf $(TIMM_TESTS)/timm-$(TIMM_VERSION).tar.gz -C $(TIMM_TESTS) --strip-components=1 \
		timm-$(TIMM_VERSION)/tests timm-$(TIMM_VERSION)/pyproject.toml
	$(PY) -m pip install --quiet pytest-timeout

# CONFIGS="convnext_tiny_gc_all vit_small_patch16_224_glore" runs only those configurations
timm-tests: $(TIMM_TESTS)/tests/test_models.py
	HF_HOME=$(CURDIR)/$(TIMM_TESTS)/hf-home $(PY) conformance/hub_cache.py
	cd $(TIMM_TESTS) && GLORE_CONFIGS="$(CONFIGS)" HF_HOME=$(CURDIR)/$(TIMM_TESTS)/hf-home HF_HUB_OFFLINE=1 \
		PYTHONPATH=$(CURDIR)/conformance $(CURDIR)/$(PY) -m pytest tests/test_models.py \
		-p timm_glore -p no:cacheprovider -n 2 -q

clean:
	rm -rf $(VENV) results .pytest_cache site
