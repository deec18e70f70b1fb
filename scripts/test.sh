#!/usr/bin/env bash
# Run the checks in the project's .venv (scripts/setup.sh makes it): ruff's error rules, the
# import contracts of .importlinter (the walls DESIGN.md draws), then the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check --quiet .
.venv/bin/lint-imports --no-cache >/dev/null || .venv/bin/lint-imports --no-cache
exec .venv/bin/python -m pytest -q "$@"
