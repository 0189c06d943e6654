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
# IML_EXTRAS: the optional dependency groups (pyproject.toml); the test command adds `cluster` (Ray)
# (the stamp lists what is installed, one group a line: the demo after the tests installs nothing).
stamp=".venv/.iml-installed"
installed=""
[ -f "$stamp" ] && installed="$(cat "$stamp")"
wanted="$(printf '%s\n%s\n' "${IML_EXTRAS:-dev}" "$installed" | tr ',' '\n' | grep -v '^$' | sort -u)"
missing="$(comm -23 <(echo "$wanted") <(echo "$installed" | grep -v '^$' | sort -u))"
if [ -n "$missing" ] || [ pyproject.toml -nt "$stamp" ]; then
  extras="$(paste -sd, <<<"$wanted")"
  echo "setting up .venv with [$extras] (first time: a few minutes)..."
  $PIP install -q "torch==2.13.0"
  $PIP install -q -e ".[$extras]"
  echo "$wanted" > "$stamp"
fi
