# genlens: `make book` sets up and builds the book; `make test` sets up and runs the tests.
# Both create (or reuse) the virtual environment .venv from pyproject.toml.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup book html test unit nbval bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[book,test,peers]"
	# torchattacks pins requests~=2.25, which would break Sphinx: a test-only peer, installed without deps.
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps "torchattacks==3.5.1"
	touch $(STAMP)

book: $(STAMP)          ## run every chapter (quick profile) and build the HTML into _build/html
	$(BIN)/genlens book

html: $(STAMP)          ## build the HTML from the executed chapters, without running them
	$(BIN)/genlens book --no-run

test: unit nbval        ## unit tests, then re-execute and validate the executed chapters

unit: $(STAMP)
	TQDM_DISABLE=1 $(BIN)/python -m pytest tests -q

# nbval re-executes the committed chapters against an empty cache, so every model is retrained and
# every checked output (cells marked NBVAL_CHECK_OUTPUT) must come out the same.
nbval: $(STAMP)
	cache=$$(mktemp -d -t genlens-nbval.XXXXXX) && trap 'rm -rf "$$cache"' EXIT && \
	  TQDM_DISABLE=1 GENLENS_CACHE=$$cache $(BIN)/python -m pytest -q -p no:cacheprovider \
	  --nbval-lax --nbval-cell-timeout=3600 --nbval-sanitize-with tests/nbval_sanitize.cfg book/chapters

bench: $(STAMP)
	for f in bench/*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf _build
