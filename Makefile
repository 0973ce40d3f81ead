# The book's two commands (README.md): `make book` sets everything up and builds the site, `make check`
# runs every check, exactly as CI does (.ci/run). Both reuse whatever is already in place (.ci/setup).
# A Makefile because it is this field's convention (QuantEcon's lectures, gdsbook) and is on every
# Linux and macOS machine; each target is one line of shell, so it stays readable without make.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
export PATH := $(CURDIR)/.venv/bin:$(PATH)

.PHONY: book check setup lab lab-zh-hans lab-zh-hant

book: setup
	python -m book_tools.editions build
	@echo "The book is built in English, 简体中文 and 繁體中文: open _build/html/index.html in a browser" \
	  "(the Chinese editions: _build/html/zh-hans/index.html, _build/html/zh-hant/index.html). To run the chapters: make lab"

check: setup
	ruff check . && ruff format --check . && pytest -n 2 tests/ && OMP_NUM_THREADS=1 pytest -n 2 --nbmake book/ && python -m book_tools.notebooks check book/*.ipynb && python -m book_tools.translation check && python -m book_tools.editions check && python -m book_tools.prose book/*.ipynb book/*.md && python -m book_tools.editions build -W -n --keep-going && pytest -n 2 site_tests/

lab: setup
	jupyter lab book/

# The Chinese chapters (简体中文, 繁體中文): the same code, translated prose.
lab-zh-hans: setup
	jupyter lab zh-hans/book/

lab-zh-hant: setup
	jupyter lab zh-hant/book/

setup:
	.ci/setup
