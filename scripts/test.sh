#!/usr/bin/env bash
# The second README command: set up, run the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
IML_EXTRAS="dev,cluster" bash scripts/setup.sh
# Two workers, one test file each at a time (module fixtures stay in one process): most of the
# suite's time is end-to-end runs waiting on their budgets, which one process leaves a core idle
# for (22.5 min in one process, 13.5 in two, on an idle 2-core machine). IML_TEST_WORKERS=0: one process.
exec .venv/bin/python -m pytest -n "${IML_TEST_WORKERS:-2}" --dist loadfile "$@"
