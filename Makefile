# genlens: `make book` sets up and builds the book; `make test` sets up and runs the tests.
# Both create (or reuse) the virtual environment .venv from pyproject.toml.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup book html html-strict test test-portable unit nbval bench dist student clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[book,test,peers,zoo]"
	# torchattacks pins requests~=2.25, which would break Sphinx: a test-only peer, installed without deps.
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps "torchattacks==3.5.1"
	touch $(STAMP)

book: $(STAMP)          ## run every chapter (quick profile) and build the HTML into _build/html
	$(BIN)/genlens book

html: $(STAMP)          ## build the HTML from the executed chapters, without running them
	$(BIN)/genlens book --no-run

test: unit html-strict nbval   ## unit tests, the HTML build (warnings are errors), then re-execute and validate the chapters

# The same validation with another machine's floating-point summation order (no wide vector kernels,
# one thread): the committed chapters must validate on any processor, not only the one that recorded them.
test-portable: $(STAMP)
	ATEN_CPU_CAPABILITY=default OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(MAKE) nbval

html-strict: $(STAMP)   ## build the HTML from the executed chapters; any Sphinx warning fails
	$(BIN)/genlens book --no-run --strict

unit: $(STAMP)
	TQDM_DISABLE=1 $(BIN)/python -m pytest -q tests lib/genlens   # unit tests and the docstrings' examples

# nbval re-executes the committed chapters against an empty cache (every model is retrained); a cell
# that raises fails. Checked cells (NBVAL_CHECK_OUTPUT) are compared with every number sanitized away,
# and each re-executed chapter saves its results, which `genlens validate` compares with the committed
# results: outcomes exactly, every figure within the tolerance recorded beside it.
nbval: $(STAMP)
	tmp=$$(mktemp -d -t genlens-nbval.XXXXXX) && trap 'rm -rf "$$tmp"' EXIT && \
	  TQDM_DISABLE=1 GENLENS_CACHE=$$tmp/cache GENLENS_RESULTS_DIR=$$tmp/results $(BIN)/python -m pytest -q \
	  -p no:cacheprovider --nbval-lax --nbval-cell-timeout=3600 --nbval-sanitize-with tests/nbval_sanitize.cfg \
	  book/chapters; status=$$?; $(BIN)/genlens validate $$tmp/results/quick || status=1; exit $$status

BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[book,test,peers,zoo,bench]"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps "dadapy==0.3.4"
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)   ## every bench: genlens against its peers at equal accuracy; each prints `speedup: X` last
	for f in bench/*.py; do $(BIN)/python $$f || exit 1; done

dist: $(STAMP)          ## the wheel and the sdist into dist/ (tests/test_readers.py installs both in a fresh venv)
	$(BIN)/python -m build --no-isolation --outdir dist .

student: $(STAMP)       ## every chapter as a notebook without the exercise solutions, into _build/student
	$(BIN)/genlens export --student _build/student

clean:
	rm -rf _build dist
