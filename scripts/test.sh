#!/usr/bin/env bash
# Install (if needed) and run the fast test suite: lint, then pytest without the slow marker.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
python -m ruff check src tests
python -m pytest -m "not slow" -q -p no:cacheprovider "$@"
