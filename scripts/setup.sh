#!/usr/bin/env bash
# Creates .venv and installs iml into it. Idempotent: a second run only checks.
# torch goes first and pinned: 2.13.0 is the CPU wheel on these machines, while an unpinned
# torch (asked for by transformers or sentence-transformers) pulls gigabytes of CUDA packages.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "error: iml needs Python 3.11 or newer (set PYTHON=/path/to/python3.11)" >&2
  exit 2
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=".venv/bin/python -m pip --disable-pip-version-check"
stamp=".venv/.iml-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setting up .venv (first time: a few minutes)..."
  $PIP install -q "torch==2.13.0"
  $PIP install -q -e ".[dev]"
  touch "$stamp"
fi
