# Agentic Trading: experiment data management.
# `make demo` runs the main job; `make test` runs lint, types and the whole test suite.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
EXTRAS := tracking,training,dashboard,studies,mlflow,alerts,ray,dev

.PHONY: help setup browser demo test lint typecheck pytest bench benchmark-agents stress chaos clean

help:  ## List the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 12

setup: $(VENV)/.installed browser  ## Create .venv and install everything (fast when nothing changed)
	@# Our sources byte-compiled (only what changed): where PYTHONDONTWRITEBYTECODE is set, as
	@# in some CI images, every process would otherwise compile them again, and each training
	@# would pay it before its first step.
	@$(BIN)/python -m compileall -q src

# The dashboard's browser tests drive Debian's chromium through chromium-driver.
browser:
	@command -v chromedriver >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then APT="apt-get"; else APT="sudo -n apt-get"; fi; \
	  $$APT install -y -qq chromium chromium-driver >/dev/null 2>&1 \
	    || { $$APT update -qq >/dev/null 2>&1 && $$APT install -y -qq chromium chromium-driver >/dev/null 2>&1; } \
	    || echo "warning: could not install chromium and chromium-driver; browser tests will be skipped"; }

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[$(EXTRAS)]"
	touch $@

demo: setup  ## The main job, on the embedded defaults (memory broker, local Aim repository)
	$(BIN)/agentic-trading demo

test: setup lint typecheck pytest  ## Lint (ruff), types (mypy) and the whole pytest suite

lint: setup
	$(BIN)/ruff check src tests benchmarks scripts

typecheck: setup
	$(BIN)/mypy

# The tests run on two workers (pytest-xdist; each test keeps to its own namespace, database and
# ports): 8.5-9 min here against 11 min one after another. PYTEST_WORKERS=0 runs them one after
# another (easier to read when one fails).
PYTEST_WORKERS ?= 2
# Each worker's trainings would give torch every core: share the cores out, as `study run-local`
# does for its workers (oversubscribed, a PPO update took several times longer).
PYTEST_THREADS ?= $(shell n=$$(nproc); w=$(PYTEST_WORKERS); [ "$$w" -gt 1 ] 2>/dev/null && n=$$((n / w)); echo $$((n > 0 ? n : 1)))

pytest: setup
	OMP_NUM_THREADS=$(PYTEST_THREADS) MKL_NUM_THREADS=$(PYTEST_THREADS) $(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadgroup

bench: setup  ## Benchmarks against raw redis-py, the Aim SDK, plain SB3 and SQLAlchemy in the same run; JSON under benchmarks/results/
	$(BIN)/python -m benchmarks.run

# Every agent x feature set x reward over 5 walk-forward folds x 3 seeds after 3-pip costs
# (about 1.5 h on 2 cores); cells already in benchmarks/results/agents.json are skipped.
benchmark-agents: setup  ## The agents benchmark: writes docs/benchmark.md and benchmarks/results/agents.json (resumable)
	$(BIN)/python -m benchmarks.agents --jobs 2

stress: setup chaos  ## Long fault and load runs: the chaos soak, 8 trainings at once, Aim and MLflow server outages, a study over two hosts, PostgreSQL restart under a study, a killed worker, 100 experiments for 60 s, fault suites x5
	RELIABILITY_TRAININGS=8 $(BIN)/pytest -q -m stress tests/test_reliability.py
	$(BIN)/pytest -q -m stress tests/ --deselect tests/test_reliability.py
	$(BIN)/python -m tests.load --experiments 100 --seconds 60 --output benchmarks/results/load.json
	for round in 1 2 3 4 5; do $(BIN)/pytest -q tests/test_redis_faults.py tests/test_sync_channel.py || exit 1; done

# The chaos soak (root: network namespaces and a tmpfs): a 30-trial study on two trainer hosts
# while workers are killed and Redis, PostgreSQL and the tracking server restart; then every
# record is reconciled. Reports in benchmarks/results/chaos-aim.json and chaos-mlflow.json.
CHAOS_SEED ?= 1
chaos: setup  ## The chaos soak, with aim server and then an mlflow server (JSON reports under benchmarks/results/)
	$(BIN)/python -m tests.chaos --backend aim --seed $(CHAOS_SEED)
	$(BIN)/python -m tests.chaos --backend mlflow --seed $(CHAOS_SEED)

clean:  ## Remove the virtual environment and caches
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
