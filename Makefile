# celeryops.stack: the two commands are `make lab` and `make test`; everything else is what they call.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV      ?= .venv
PYTHON    ?= python3
BIN       := $(VENV)/bin
RELEASES  ?= bookworm trixie
LAB_RELEASE ?= bookworm
TIMED     := lab/timed.sh
export PATH := $(CURDIR)/$(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

.PHONY: help venv collection-link images lab lab-info lab-destroy \
        test lint yamllint ansible-lint ruff changelog-lint unit sanity molecule bench docs clean

help: ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(BIN)/.installed: requirements-dev.txt
	@$(TIMED) venv bash -c '$(PYTHON) -m venv $(VENV) && $(BIN)/pip install -q --upgrade pip && $(BIN)/pip install -q -r requirements-dev.txt'
	@touch $@

venv: $(BIN)/.installed collection-link ## Create the virtualenv with the pinned tools.

collection-link: ## Make the checkout resolvable as celeryops.stack (git-ignored link).
	@mkdir -p collections/ansible_collections/celeryops
	@ln -sfn ../../.. collections/ansible_collections/celeryops/stack

images: ## Build the lab's Debian images (only those missing).
	@for r in $(RELEASES); do $(TIMED) "image $$r" lab/build-image.sh $$r; done

browser: ## Debian's chromium for the browser test (installed with apt when missing; lab/molecule.sh does it too).
	@$(TIMED) "browser" lab/browser.sh

lab: venv ## Deploy the whole stack on the local 3-host lab and say where it is.
	@$(TIMED) "lab image" lab/build-image.sh $(LAB_RELEASE)
	@$(TIMED) "lab containers" lab/up.sh $(LAB_RELEASE)
	@$(TIMED) "lab converge" ansible-playbook playbooks/site.yml -i inventories/lab
	@lab/info.sh

lab-info: ## Say what runs in the lab and where the credentials are.
	@lab/info.sh

screenshots: venv browser ## Screenshots of Flower and the management UI of the running lab (make lab first) into docs/screenshots/.
	CELERYOPS_SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots \
	    pytest -q -p no:cacheprovider --ansible-inventory=inventories/lab molecule/stack/tests/test_browser.py

lab-destroy: ## Remove the lab's containers and network (credentials stay).
	@lab/down.sh

# The faults and operator mistakes the suite proves, one JSON line per row, for docs/reliability.md.
test: export CELERYOPS_RELIABILITY_DIR := $(CURDIR)/build/reliability
test: venv ## The whole suite: lint, unit tests, sanity, molecule on every release, then docs/reliability.md (benchmarks: make bench).
	@rm -rf $(CELERYOPS_RELIABILITY_DIR)
	@$(TIMED) "lint" $(MAKE) --no-print-directory lint
	@$(TIMED) "unit" $(MAKE) --no-print-directory unit
	@$(TIMED) "sanity" $(MAKE) --no-print-directory sanity
	@$(TIMED) "molecule" $(MAKE) --no-print-directory molecule
	@python hacking/reliability_report.py $(CELERYOPS_RELIABILITY_DIR) docs/reliability.md

lint: yamllint ansible-lint ruff changelog-lint ## All linters.

yamllint: venv
	yamllint --strict .

ansible-lint: venv
	ansible-lint --profile production

changelog-lint: venv ## Check the changelog fragments (sections, format).
	antsibull-changelog lint

ruff: venv
	ruff check .
	ruff format --check .

unit: venv ## Unit tests (pytest) of modules and scripts.
	pytest -q tests/unit tests/preflight

sanity: venv ## ansible-test sanity on a generated ansible_collections/celeryops/stack tree.
	@lab/sanity.sh

molecule: venv ## The molecule scenarios stack and cluster on every Debian release, side by side (lab/molecule-releases.sh).
	@lab/molecule-releases.sh $(RELEASES)

bench: venv ## Benchmarks on the running lab (make lab first, LAB_RELEASE as for it); results in docs/. See bench/README.md.
	@$(TIMED) "pool bench" python bench/run_pool_bench.py -i inventories/lab \
	    --json docs/bench-pools-$(LAB_RELEASE).json --output docs/bench-pools.md --include $(wildcard docs/bench-pools-*.json)

docs: venv ## Regenerate role and module docs from the specs
	python hacking/render_docs.py

clean: lab-destroy ## Remove the virtualenv and generated files (not credentials, not images).
	rm -rf $(VENV) collections build .cache
