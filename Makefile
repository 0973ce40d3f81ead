# The book's two commands (README.md): `make book` sets everything up and builds the site, `make check`
# runs every check, exactly as CI does (.ci/run). Both reuse whatever is already in place (.ci/setup).
# A Makefile because it is this field's convention (QuantEcon's lectures, gdsbook) and is on every
# Linux and macOS machine; each target is one line of shell, so it stays readable without make.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
export PATH := $(CURDIR)/.venv/bin:$(PATH)

.PHONY: book check setup lab

book: setup
	jupyter-book build .
	@echo "The book is built: open _build/html/index.html in a browser. To run the chapters: make lab"

check: setup
	ruff check . && ruff format --check . && pytest -n 2 tests/ && pytest --nbmake book/ && python -m book_tools.notebooks check book/*.ipynb && python -m book_tools.prose book/*.ipynb book/*.md && python benchmarks/speed.py --quick --seeds 2 && jupyter-book build . -W -n --keep-going && pytest site_tests/

lab: setup
	jupyter lab book/

setup:
	.ci/setup
