# The two set-up commands of the README. Each creates or reuses .venv/ and installs what is
# needed (torch 2.13.0 CPU first), then runs its job.
PY := .venv/bin/python

.PHONY: setup demo test serve
setup:
	@bash scripts/setup_env.sh

demo: setup
	$(PY) -m softdimo demo

test: setup
	$(PY) -m pytest -q

serve: setup
	$(PY) -m softdimo serve
