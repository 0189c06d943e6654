"""Generated code is the least trustworthy thing in the system. A scripted LLM hands the graph
one deliberately bad module after another; each must end as a failed attempt with the right
status and message, the track's kernel must keep working, and the run must still end with a
valid submission (issue 3)."""

from pathlib import Path

import pytest
from machine_speed import slowness
from stub_openai import Script, ScriptedChatModel

from graph.context import Settings
from graph.runner import run_task
from prompts import render_recipe
from runtime.submission_file import validate_submission

pytestmark = pytest.mark.slow

RECIPE = render_recipe("traditional")
HEAD = """import numpy as np


class Model:
    def __init__(self, task, params):
        self.task = task

    def fit(self, X, y, X_valid=None, y_valid=None):
        {fit}
        return self

    def predict(self, X):
        {predict}
"""


def model(fit: str = "pass", predict: str = "return np.full(len(X), 0.5)") -> dict:
    return {"features": RECIPE["features"], "model": HEAD.format(fit=fit, predict=predict), "notes": "bad on purpose"}


# (module answer, expected status, words the error must contain)
BAD = [
    (model(fit="while True:\n            pass"), "check_failed", "timed out"),
    # os._exit written plainly is refused by the static check; through getattr it really runs
    (model(fit="import os, time\n        time.sleep(0.2)\n        getattr(os, '_ex' + 'it')(3)"), "check_failed", "died"),
    (model(fit="import ctypes\n        ctypes.string_at(0)"), "check_failed", "died"),
    (model(fit="self.hog = [bytearray(64 * 2**20) for _ in range(40)]"), "check_failed", "memory"),
    (model(fit="print('x' * 10_000_000)", predict="return np.full(len(X), 1.5)"), "check_failed", "outside [0, 1]"),
    (model(fit="self.rows = open('/etc/hostname').read()"), "check_failed", "open() is not allowed"),
    (model(predict="return np.zeros((len(X), 3))"), "check_failed", "returned shape"),
    (model(predict="return np.full(len(X), np.nan)"), "check_failed", "NaN"),
    (model(predict="return np.full(len(X) - 1, 0.5)"), "check_failed", "returned shape"),
    ({"features": RECIPE["features"], "model": HEAD.format(fit="pass", predict="return 0").replace("    def predict(self, X):\n        return 0\n", ""),
      "notes": "forgot predict"}, "check_failed", "Model.predict is missing"),
    (model(fit="if True\n            pass"), "check_failed", "syntax error"),
    (model(fit="import not_a_package_anywhere"), "check_failed", "not installed"),
]


def test_every_kind_of_bad_module_fails_alone_and_the_run_ends_valid(make_task, tmp_path, monkeypatch):
    task_dir = make_task("binary")
    script = Script({
        "TaskReading": [{"target": "outcome", "id_column": "row_key", "metric": "auc", "task_type": "binary", "notes": ""}],
        "ModuleCode": [answer for answer, _, _ in BAD],
    })
    # The memory ceiling turns the blow-up into out_of_memory; the cap on one attempt keeps the
    # endless fit's timeout quick. Every one of them is stopped by check, before a full execution.
    # The cap is what the other checks and the final recipe need on free cores, stretched by how
    # slow the machine is now: there they must end in their own way, not by the cap.
    slow = slowness()
    settings = Settings(time_budget_s=600, n_folds=3, max_debug_attempts=len(BAD) - 1,
                        kernel_memory_mb=1500, min_attempt_timeout_s=4 * slow, max_attempt_timeout_s=8 * slow,
                        refine_max_candidates=0)
    final = run_task(task_dir, tmp_path / "run", settings, llm=ScriptedChatModel(script=script))

    attempts = final["tracks"]["traditional"].attempts
    for (answer, status, words), attempt in zip(BAD, attempts):
        assert attempt.status == status or (status == "check_failed" and attempt.status in ("died", "out_of_memory")), \
            (words, attempt.status, attempt.error)
        assert words.lower() in (attempt.error or "").lower(), (words, attempt.error)
    # after the LLM's repairs ran out: the track's own recipe, in the same (restarted) kernel
    last = attempts[-1]
    assert (last.source, last.status) == ("fallback", "ok") and len(attempts) == len(BAD) + 1
    assert validate_submission(final["task"], final["submission_path"]) == []
    assert Path(final["submission_path"]).exists()
