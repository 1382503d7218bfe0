# The two entry points of the README. Both do their own set-up (idempotent).
.PHONY: setup demo test lint lab-down clean

setup:
	tools/setup.sh

# The main job: the local lab, `pulumi up` of the `lab` stack on it, and a reachability table.
demo: setup
	.venv/bin/vlaninfra demo

# The whole test suite: unit, lab (root), engine end-to-end and VM tests, then lint and types.
test: setup
	tools/run-tests.sh

lint: setup
	.venv/bin/ruff check .
	.venv/bin/mypy

lab-down: setup
	.venv/bin/vlaninfra lab down --all

clean: lab-down
	rm -rf .venv .engine .pulumi-state .cache
