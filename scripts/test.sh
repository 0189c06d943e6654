#!/usr/bin/env bash
# The second README command: set up, run the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
IML_EXTRAS="dev,cluster" bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
