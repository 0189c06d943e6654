#!/usr/bin/env bash
# The first README command: set up, build an example task, solve it offline.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
EXAMPLE="${1:-penguins}"
BUDGET="${IML_DEMO_BUDGET:-60s}"
rm -rf "tasks/$EXAMPLE"
.venv/bin/iml example "$EXAMPLE" "tasks/$EXAMPLE"
.venv/bin/iml run "tasks/$EXAMPLE" --time-budget "$BUDGET" --out "runs/demo-$EXAMPLE"
.venv/bin/iml validate "tasks/$EXAMPLE" "runs/demo-$EXAMPLE/submission.csv"
.venv/bin/iml grade "tasks/$EXAMPLE" "runs/demo-$EXAMPLE/submission.csv"
