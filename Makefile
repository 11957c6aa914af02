# movierecs — `make help` lists the targets.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
ifneq ($(wildcard ../shared/data/ml-100k/u.data),)  # ML-100k beside the clone (as CI has it); else MOVIERECS_DATA or fastai's download
export MOVIERECS_DATA ?= $(abspath ../shared/data/ml-100k)
endif

.DEFAULT_GOAL := help
.PHONY: help install install-check screenshot lint test test-tables test-fast test-floor reproduce benchmark accuracy topn foldin bench-cli tune tune-accuracy tune-blend accuracy-attempts tune-topn tune-foldin tune-next next next-peer next-timing next-render peer-venv temporal notebooks distributed bench bench-scale clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: $(STAMP) ## Create .venv and install movierecs with its test, bench and docs extras under constraints.txt
$(STAMP): setup.cfg pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test,bench,docs]'
	touch $@

test: install lint ## The linter and the layer contract, then every test (fast ones, then the slow ML-100k regression runs); the slowest 25 are listed
	$(PY) -m pytest -n 2 --dist loadgroup -m 'not tables' --durations=25

lint: install ## ruff (pyproject.toml) and the layer contract (import-linter, setup.cfg)
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports setup.cfg

test-tables: install ## The committed table rows that take minutes to re-run (GLocal-K on u1, ~3 min), left out of make test
	$(PY) -m pytest -m tables --durations=10

test-fast: install ## Run the fast tests only (seconds, synthetic data)
	$(PY) -m pytest -n 2 --dist loadgroup -m 'not slow'

FLOOR := .venv-floor
test-floor: ## The fast tests on the oldest versions setup.cfg allows (constraints-floor.txt), in .venv-floor (~5 min)
	test -x $(FLOOR)/bin/python || $(PYTHON) -m venv $(FLOOR)
	$(FLOOR)/bin/python -m pip install --quiet -c constraints-floor.txt -e '.[test,bench]'
	$(FLOOR)/bin/python -m pytest -m 'not slow'

SEEDS ?= 1
reproduce: install ## Retrain every experiment; write results/losses.{csv,md}, env.json; re-execute the notebooks. SEEDS=3: + results/seeds.md
	$(PY) -m movierecs.studies.reproduce --out results --seeds $(SEEDS) --bars movierecs/train/seeds.csv --notebooks notebooks/*.ipynb

benchmark: install ## Every experiment and Surprise's peers on the canonical splits: results/benchmark.{md,csv}
	$(PY) -m movierecs.studies.benchmark --out results

accuracy: install ## The blend of GLocal-K, I-AutoRec and `tuned` (weights fitted on a carve-out) and its members on u1 (3 seeds) and u2-u5: results/accuracy.{md,csv}, and benchmark.md's claim (~1 h)
	$(PY) -m movierecs.studies.accuracy --out results
	$(PY) -m movierecs.studies.benchmark --markdown-only --out results

topn: install ## Every top-N method (baselines, implicit, fastai models) on u1-u5, ua, ub and Microsoft Recommenders' protocol: results/topn.{md,csv}
	$(PY) -m movierecs.studies.topn --out results

foldin: install ## Fold-in against training in: 10% of users held out, folded in from half their ratings (and from k = 1-20), the other half scored: results/foldin.{md,csv}, foldin_k.csv (~15 min)
	$(PY) -m movierecs.studies.foldin --out results

tune-foldin: install ## Choose what fold-in shrinks someone new toward, on a carve-out of the users outside make foldin's held-out ones: results/foldin_tuning.{md,csv} (~8 min)
	$(PY) benchmarks/tune_foldin.py

tune-next: install ## Choose SASRec's epochs, lr and windows, EASE^R's lambda and recent popularity's window on each user's second-to-last rating: results/next_tuning.{md,csv} (~45 min; --keep reuses SASRec rows it holds)
	$(PY) benchmarks/tune_next.py

next: install ## What comes next, leave-one-out in time, full ranking: baselines, EASE^R, mult_dae and SASRec (seeds 42-46), with make next-peer's rows and next-timing's table: results/next_item.{md,csv,json} (~40 min). ML-1M: make next DATA=ml-1m MOVIERECS_DATA=a folder holding ml-1m.zip or its folder
	$(PY) -m movierecs.studies.nextitem --data $(or $(DATA),ml-100k)

temporal: install ## The rating (RMSE) and top-N (NDCG, recall) tables on a global split in time beside a random one, seeds 42-46: results/temporal.{md,csv} (~15 min)
	$(PY) -m movierecs.studies.temporal

PEER_VENV := .venv-rectools
peer-venv: ## RecTools 0.19 (its SASRec) in a venv of its own, .venv-rectools: it cannot share .venv
	bash benchmarks/peers/setup_rectools.sh $(PEER_VENV)

PEER_SEEDS ?= 5
next-peer: install peer-venv ## RecTools' SASRec with its published settings on make next's very rows, seeds 42-(41+PEER_SEEDS) or SEED_LIST=44,45 (the other seeds' rows kept): results/next_peer.csv (about an hour a seed); then make next-render
	$(PY) -m movierecs.studies.nextitem --peer --seeds $(PEER_SEEDS) $(if $(SEED_LIST),--seed-list $(SEED_LIST))

next-timing: install peer-venv ## An epoch of movierecs' SASRec and of RecTools', in turns, one thread each, on make next's rows: results/next_timing.csv (~5 min, alone on the machine); then make next-render
	$(PY) -m movierecs.studies.nextitem --timing

next-render: install ## results/next_item.md again from next_item.csv, next_peer.csv and next_timing.csv, training nothing
	$(PY) -m movierecs.studies.nextitem --render

INSTALL_CHECK ?= /tmp/movierecs-install-check
install-check: ## pip install . into a fresh venv, then from /tmp: import, train, recommend and serve with no checkout on the path (~5 min)
	rm -rf $(INSTALL_CHECK) && $(PYTHON) -m venv $(INSTALL_CHECK)
	$(INSTALL_CHECK)/bin/python -m pip install --quiet -c constraints.txt .
	cd /tmp && $(INSTALL_CHECK)/bin/python $(CURDIR)/tools/install_check.py

screenshot: install ## Refresh results/serve.png, the web page in headless Chromium on ML-100k (the browser test; a test run writes it to a temporary folder)
	MOVIERECS_SCREENSHOT=results/serve.png $(PY) -m pytest -q -p no:cacheprovider tests/app/test_browser.py -k ml100k

notebooks: install ## Re-execute notebooks/*.ipynb and save their outputs in place
	$(PY) -m movierecs.studies.nbrun notebooks/*.ipynb

tune: install ## Grid-search the `tuned` experiment on a carve-out of u1.base (never u1.test): results/tuning.{md,csv}
	$(PY) benchmarks/tune.py

tune-accuracy: install ## Choose the autoencoders' L2, epochs and epoch averaging on a carve-out of u1.base (never u1.test): results/accuracy_tuning.{md,csv}
	$(PY) benchmarks/tune_accuracy.py

tune-blend: install ## Choose make accuracy's blend (members, seed averaging) on the carve-out of make tune-accuracy (never u1.test): results/blend_tuning.{md,csv}
	$(PY) benchmarks/tune_blend.py

accuracy-attempts: install ## Why GLocal-K falls short of u1's 0.8889: its matrix layout, SciPy's L-BFGS-B, more blend members, on a carve-out of u1.base: results/accuracy_attempts.{md,csv} (~20 min)
	$(PY) benchmarks/accuracy_attempts.py

tune-topn: install ## Choose the top-N table's settings on a carve-out of u1.base (never u1.test): results/topn_tuning.{md,csv}
	$(PY) benchmarks/tune_topn.py

distributed: install ## The 2-process table: collab on ML-100k in one process and on 2 CPU processes (torch DDP, gloo), seeds 42-46: results/distributed.{md,csv} (~10 min)
	$(PY) benchmarks/distributed.py

bench: install ## Time an epoch of every model (bare PyTorch loop vs faithful vs default path), then bench-scale: results/bench.md; the web page's requests: results/serve_latency.md; the commands: results/cli_latency.md
	$(PY) benchmarks/speed.py
	$(PY) benchmarks/scale.py
	$(PY) benchmarks/serve_latency.py
	$(PY) benchmarks/cli_latency.py

bench-cli: install ## Each `movierecs` command from the shell beside the same answer through the Learner, default models cached: results/cli_latency.md (~2 min)
	$(PY) benchmarks/cli_latency.py

bench-scale: install ## ML-25M size: load and build, dense vs sparse path ratings/s and memory, Surprise SVD and a compiled SGD loop at ML-25M and ML-1M size, the bandwidth bound, the targets, accuracy on ML-100k, the 2-process table: bench.md's Scale section, results/scale.json (~25 min)
	$(PY) benchmarks/scale.py

.PHONY: docs
docs: install ## Build the docs site offline in strict mode (site/)
	$(PY) -c 'import material, mkdocstrings_handlers.python, mkdocs_jupyter' 2>/dev/null || $(PY) -m pip install --quiet -c constraints.txt -e '.[docs]'
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

clean: ## Remove .venv and caches
	rm -rf $(VENV) $(FLOOR) .pytest_cache *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
