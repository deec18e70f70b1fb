#!/usr/bin/env bash
# Run the test suite in the project's .venv (scripts/setup.sh makes it).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m pytest -q "$@"
