"""Shared by the e2e tests that run solution.py and iml predict: a launcher that blocks every iML
import, and the comparison of two submissions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from machine_speed import backstop

# Runs a script with every iML package unimportable, whatever the environment has installed
# (the project is installed editable into the venv, so -I alone would still find it).
LAUNCHER = '''
import runpy, sys
BLOCKED = {"graph", "nodes", "runtime", "scripts", "prompts", "iml"}
class Blocker:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"iML is not importable here: {name}")
        return None
sys.meta_path.insert(0, Blocker)
script, *args = sys.argv[1:]
sys.argv = [script, *args]
runpy.run_path(script, run_name="__main__")
'''


def run_isolated(script: Path, task_dir: Path, out: Path, workdir: Path) -> subprocess.CompletedProcess:
    launcher = workdir / "launch.py"
    launcher.write_text(LAUNCHER)
    return subprocess.run([sys.executable, "-I", str(launcher), str(script), str(task_dir), str(out)],
                          cwd=workdir, capture_output=True, text=True, timeout=backstop(300))


def assert_same_submission(expected: Path, got: Path, reorder_by: str | None = None) -> None:
    """The same columns, rows and values (numbers to 1e-7); `reorder_by`: rows matched by that id."""
    a, b = pd.read_csv(expected, dtype=str, keep_default_na=False), pd.read_csv(got, dtype=str, keep_default_na=False)
    assert list(a.columns) == list(b.columns)
    assert len(a) == len(b)
    if reorder_by:
        b = b.set_index(reorder_by).loc[a[reorder_by]].reset_index()[list(a.columns)]
    for col in a.columns:
        x, y = pd.to_numeric(a[col], errors="coerce"), pd.to_numeric(b[col], errors="coerce")
        if x.notna().all() and y.notna().all():
            np.testing.assert_allclose(y.to_numpy(float), x.to_numpy(float), rtol=1e-7, atol=1e-9, err_msg=col)
        else:
            assert (a[col] == b[col]).all(), col
