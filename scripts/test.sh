#!/usr/bin/env bash
# Run the checks in the project's .venv (scripts/setup.sh makes it): ruff's error rules, the
# import contracts of .importlinter (the walls DESIGN.md draws), then the test suite on two
# workers (pytest-xdist; a test file's tests stay on one worker, so its module fixtures -- a
# ComfyUI server, tiny models -- are built once). Extra arguments go to pytest (`-n 0`: one process).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check --quiet .
.venv/bin/lint-imports --no-cache >/dev/null || .venv/bin/lint-imports --no-cache
exec .venv/bin/python -m pytest -q -n 2 --dist loadfile "$@"
