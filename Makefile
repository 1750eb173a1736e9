# Two commands on a fresh machine: `make demo` and `make test`. Each sets up the
# virtual environment first (Python 3.11+ and make are all they need).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup demo test bench ui api devnet migrate psql stop env clean

$(STAMP): pyproject.toml devnet/pyproject.toml demo/pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@# setuptools prints a box about editable installs (a folder named like the package would shadow it):
	@# true of any editable install, nothing to act on here.
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/python -m pip install --quiet -c constraints.txt \
		-e '.[dev]' -e ./devnet -e ./demo
	@# pip compiles what it installs, not an editable install's sources: where PYTHONDONTWRITEBYTECODE is
	@# set (containers, this machine) every process (a run's worker, a code server) compiled the package
	@# again, 0.4 s of CPU each. Python ignores a compiled file whose source has changed since.
	$(BIN)/python -m compileall -q reconciliation_pipeline devnet/soroban_devnet demo/recon_demo
	touch $(STAMP)

setup: $(STAMP)  ## create .venv and install the project and its test tools

demo: setup      ## embedded PostgreSQL + devnet, seed both sides, run the jobs, print a summary (twice: act 2)
	@$(BIN)/recon demo

test: setup      ## lint, then the whole test suite against a real PostgreSQL and the devnet over HTTP
	$(BIN)/ruff check reconciliation_pipeline reconciliation_pipeline_tests devnet demo benchmarks
	@# One worker per core, at most 4 (they share the embedded server), a file's tests on one worker.
	$(BIN)/python -m pytest -n auto --maxprocesses 4 --dist loadfile

bench: setup     ## the chain-sweep benchmark (N=10000, 20 ms latency); figures go to BENCHMARKS.md
	$(BIN)/python benchmarks/chain_sweep.py --n 10000 --latency-ms 20 --write

ui: setup        ## dagster dev on the demo's database and a seeded devnet; prints its URL (ARGS='--port 3100')
	@$(BIN)/recon ui $(ARGS)

api: setup       ## the API for the apps on RECON_API_HOST:RECON_API_PORT (needs RECON_API_*_TOKENS; launches via make ui's webserver)
	$(BIN)/recon api

devnet: setup    ## a seeded devnet in the foreground (prints the variables that point at it)
	$(BIN)/recon devnet

migrate: setup   ## apply the recon schema's migrations to DATABASE_URL (idempotent; no application table)
	$(BIN)/recon migrate

psql: setup      ## psql on the embedded app database (ARGS='-c "SELECT 1"' passes arguments to psql)
	@$(BIN)/recon psql -- $(ARGS)

stop: setup      ## stop the embedded PostgreSQL
	$(BIN)/recon stop

env: setup       ## print the resolved environment as shell exports
	$(BIN)/recon env

clean:           ## remove the virtual environment and local data (stops the embedded server first)
	-$(BIN)/recon stop
	rm -rf $(VENV) .local
