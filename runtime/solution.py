"""solution.py: the run's winning code as one standalone script.

`python solution.py TASK_DIR OUT.csv` reproduces submission.csv in a fresh process without
iML: it holds the runtime modules it needs as their whole text (the data readers, the
submission's format, the fold loop: `inlined`, so the two cannot drift apart), repeats the
harness's folds, fits each member's Features and Model once per fold exactly as the harness
does, averages the fold models' test predictions (mixed with a fit on all rows where the run
made one), blends the members with the ensemble's weights, and formats the result like the
sample submission.

submit writes it; the report links to it. It reads records and the run folder only (the run's
state is a mapping of records here: graph.state.IMLState), so it sits below the graph.
"""

from __future__ import annotations

import ast
import importlib.util
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from runtime.blend import exact_weights, member_attempts
from runtime.python_source import parse

# The runtime modules solution.py holds, whole, in this order: the tables' reading (a large table's
# through the same columnar cache, in a temporary folder), the submission's format, the fold loop
# the harness runs (its folds, the target's encoding, one fold's fit and the loop over folds), and
# the stacker a long run may end with.
INLINED = ("runtime.errors", "runtime.data", "runtime.memory", "runtime.columnar", "runtime.submission", "runtime.fold_loop",
           "runtime.stack")


def module_source(name: str) -> str:
    """A runtime module's text, read rather than imported: importing the fold loop would bring
    sklearn and scipy (~1 s, ~60 MB) into the framework's process, which needs neither."""
    return Path(importlib.util.find_spec(name).origin).read_text()


def inlined(name: str) -> str:
    """A module's source (by its dotted name) without its docstring and its imports of iML:
    solution.py holds the very functions the framework runs, so the two cannot drift apart."""
    source = module_source(name)
    tree = parse(source)
    lines = source.splitlines()
    drop: set[int] = set()
    for node in tree.body:
        is_doc = isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
        iml_import = isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in ("runtime", "graph", "nodes", "__future__")
        if (is_doc and node is tree.body[0]) or iml_import:
            drop.update(range(node.lineno - 1, node.end_lineno))
    return "\n".join(line for i, line in enumerate(lines) if i not in drop).strip() + "\n"


def literal(text: str) -> str:
    """`text` as a Python string literal: a readable raw triple-quoted one when that is exact."""
    candidate = "r'''" + text + "'''"
    try:
        if ast.literal_eval(candidate) == text:
            return candidate
    except (SyntaxError, ValueError):
        pass
    return repr(text)


def attempt_cuts(folder: Path) -> int:
    """How many cuts of the folds an attempt finished (result.json; one before repeats existed)."""
    try:
        return int(json.loads((folder / "result.json").read_text()).get("cuts") or 1)
    except (OSError, ValueError):
        return 1


def attempt_full_fit(folder: Path) -> dict | None:
    """The params of an attempt's fit on all rows (result.json), None when it made none."""
    try:
        full_fit = json.loads((folder / "result.json").read_text()).get("full_fit") or {}
    except (OSError, ValueError):
        return None
    return full_fit["params"] if "seconds" in full_fit else None


def render_solution(state: Mapping[str, Any], run_dir: Path,
                    library: Callable[[list[str]], Mapping[str, str]] | None = None) -> str:
    """library: given the members' sources, the recipe modules they import (name -> text, each
    after what it imports); the caller knows the recipes (prompts.imports.library_modules)."""
    ensemble = state["ensemble"]
    task_json = (run_dir / "task.json").read_text()
    profile_json = (run_dir / "profile.json").read_text()
    blueprint = json.loads((run_dir / "blueprint.json").read_text())
    validation, data = blueprint["validation"], blueprint.get("data")
    members = member_attempts(state.get("tracks", {}), ensemble) if ensemble.kind != "baseline" else {}
    weights = exact_weights(ensemble.weights, members, ensemble) if members else {}

    member_lines, source_lines, member_sources = [], [], []
    for i, (name, attempt) in enumerate(members.items()):
        folder = Path(attempt.dir)
        member_lines.append(
            f"    {{'name': {name!r}, 'weight': {weights[name]!r}, 'attempt': {str(folder.relative_to(run_dir))!r},\n"
            f"     'score': {attempt.score!r}, 'params': json.loads({literal(json.dumps(attempt.params))}),\n"
            f"     'cuts': {attempt_cuts(folder)!r}, 'full_fit': {attempt_full_fit(folder)!r},\n"
            f"     'features': FEATURES_{i}, 'model': MODEL_{i}}},"
        )
        for module in ("features", "model"):
            source = (folder / f"{module}.py").read_text()
            member_sources.append(source)
            source_lines.append(f"# {'=' * 20} {name}: {folder.relative_to(run_dir)}/{module}.py {'=' * 20}\n"
                                f"{module.upper()}_{i} = {literal(source)}\n")

    score = "n/a" if ensemble.score != ensemble.score else f"{ensemble.score:.6g}"
    header = HEADER.format(run=run_dir.name, kind=ensemble.kind, metric=json.loads(task_json)["metric"], score=score,
                           members=", ".join(f"{n} ({w})" for n, w in ensemble.weights.items()) or "none: a constant baseline")
    parts = [
        header,
        IMPORTS,
        "# The task as the run read it (task.json), the data profile the modules were given\n"
        "# (profile.json), and the validation scheme of the blueprint.\n"
        f"TASK = json.loads({literal(task_json)})\n"
        f"PROFILE = json.loads({literal(profile_json)})\n"
        f"VALIDATION = json.loads({literal(json.dumps(validation))})\n"
        "# a large table: the rows the run fitted on (a seeded sample of its columnar cache), else None\n"
        f"DATA = {'None' if data is None else f'json.loads({literal(json.dumps(data))})'}\n"
        f"ENSEMBLE_KIND = {ensemble.kind!r}\n"
        f"THRESHOLD = {ensemble.threshold!r}  # binary labels: the positive class from this probability on\n"
        f"POWER = {ensemble.power!r}  # log loss: the probabilities' calibration, fitted out of fold (1: none)\n"
        f"STACKER = {ensemble.stacker!r}  # stacked: the second-level model over the members' predictions (None: a blend)\n",
        "\n# -- inlined from iML: reading the tables (runtime/errors.py, runtime/data.py, runtime/memory.py,\n"
        "# runtime/columnar.py), the submission's format (runtime/submission.py), the harness's loop over\n"
        "# folds (runtime/fold_loop.py) and the stacker (runtime/stack.py) " + "-" * 10 + "\n\n",
        "\n\n".join(inlined(name) for name in INLINED),
        BODY,
        runtime_part(json.loads(task_json), library(member_sources) if library is not None else {}),
        "\n# -- the members' modules, as the run executed them " + "-" * 40 + "\n\n",
        "\n".join(source_lines),
        "\n# name, blend weight (relative: divided by the sum of the weights), attempt folder, out-of-fold score,\n# params, modules\n"
        "MEMBERS = [\n" + "\n".join(member_lines) + "\n]\n",
        MAIN,
    ]
    return "".join(parts)


# The modules for generated code that solution.py always carries, whole and under their names:
# the recipes' declared settings and the steps they share (runtime.images joins them on an
# image task)
CARRIED = ("runtime.params", "runtime.recipe_steps")


def runtime_part(task: dict, library: Mapping[str, str] | None = None) -> str:
    """The iML modules the members' code imports, each whole (its imports of the others kept) and
    installed under its name, so the members run as they ran in the run: CARRIED, runtime.images
    for an image task, then `library`, the recipe modules the members import (name -> text)."""
    texts = {name: module_source(name) for name in (*CARRIED, *(["runtime.images"] if task.get("images") else []))}
    texts.update({name: text for name, text in (library or {}).items() if name not in texts})
    parts = ["\n# -- carried from iML: " + ", ".join(texts) + ", which the members' modules import: "
             "installed under those names " + "-" * 10 + "\n\n"]
    for name, text in texts.items():
        packages = [".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)]
        variable = name.replace(".", "_")
        parent, _, leaf = name.rpartition(".")
        parts.append("".join(f"sys.modules.setdefault({p!r}, types.ModuleType({p!r}))\n" for p in packages)
                     + f"{variable}_SOURCE = {literal(text)}\n"
                     f"{variable} = types.ModuleType({name!r})\n"
                     f"sys.modules[{name!r}] = {variable}\n"
                     f"setattr(sys.modules[{parent!r}], {leaf!r}, {variable})\n"
                     f"exec(compile({variable}_SOURCE, {'<' + name + '>'!r}, 'exec'), {variable}.__dict__)\n")
    return "".join(parts)


def write_solution(state: Mapping[str, Any], run_dir: Path,
                   library: Callable[[list[str]], Mapping[str, str]] | None = None) -> Path:
    path = run_dir / "solution.py"
    path.write_text(render_solution(state, run_dir, library))
    return path


HEADER = '''#!/usr/bin/env python
"""Reproduces submission.csv of the iML run {run}.

    python solution.py TASK_DIR OUT.csv

Ensemble: {kind} of {members}; out-of-fold {metric}: {score}.

Standalone: it needs pandas, numpy, scikit-learn and what the modules import, not iML. It
repeats the run: the same cross-validation folds, each member's Features and Model fitted
once per fold on the other folds (the held-out fold is passed for early stopping, as in the
run), the fold models' test predictions averaged (and, for a member the run also fitted on all
rows, mixed half and half with that fit's), the members blended with the ensemble's weights,
and the result written in the sample submission's format.
"""
'''

IMPORTS = '''
from __future__ import annotations

import json
import random
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

'''

BODY = '''


# -- the harness's loop over folds --------------------------------------------------------


def module_from_source(name: str, source: str) -> types.ModuleType:
    """A member's module from the source held below (the harness loads the same file from its folder)."""
    module = types.ModuleType(name)
    exec(compile(source, f"<{name}>", "exec"), module.__dict__)
    return module


def cross_fit(member: dict, X: pd.DataFrame, y: np.ndarray, X_test: pd.DataFrame, folds: np.ndarray) -> np.ndarray:
    """The harness's folds (fold_fits, every repeat's) for one member, test predictions averaged."""
    features_mod = module_from_source("features", member["features"])
    model_mod = module_from_source("model", member["model"])
    params = member["params"]
    if getattr(features_mod.Features, "encode", None) is not None:  # computed once on train + test, as the harness does
        both = pd.concat([X, X_test], ignore_index=True)
        X, X_test = join_encoded(X, X_test, encode_rows(features_mod, TASK, PROFILE, params, both))
    folds = folds[:member["cuts"]]  # the cuts the run finished for this member (its time may have ended one early)
    n_folds = int(folds.max()) + 1
    n_fits = len(folds) * n_folds
    test_pred, cut_test = empty_prediction(TASK, len(X_test)), empty_prediction(TASK, len(X_test))
    for j, _, _, _, pred_test in fold_fits(features_mod, model_mod, TASK, PROFILE, params, X, y, X_test, folds):
        cut_test += pred_test / n_folds  # summed as the harness sums them, so the result is the same to the bit
        if (j + 1) % n_folds == 0:
            test_pred, cut_test = test_pred + cut_test, empty_prediction(TASK, len(X_test))
        print(f"  {member['name']}: fit {j + 1}/{n_fits} done", file=sys.stderr)
    test_pred = test_pred / len(folds)
    if member["full_fit"] is not None:  # the run fitted this member on all rows too, with these params
        _, (full_test,) = fit_fold(features_mod, model_mod, TASK, PROFILE, {**params, **member["full_fit"]}, X, y, None,
                                   None, [X_test])
        test_pred = with_full_fit(test_pred, full_test)
        print(f"  {member['name']}: fit on all rows done", file=sys.stderr)
    return test_pred
'''

MAIN = '''

def main(task_dir: Path, out: Path) -> None:
    random.seed(0)
    np.random.seed(0)
    TASK["task_dir"] = str(task_dir)
    with tempfile.TemporaryDirectory() as cache:  # a large table's columnar cache, as the run built its own
        train, test = plan_frames(TASK, cache, DATA)
    features = feature_columns(TASK, train.columns)
    X, X_test = train[features], test[features]
    y = encode_target(train, TASK)
    if ENSEMBLE_KIND == "baseline":
        test_pred = baseline_prediction(train, TASK, len(test))
    else:
        total = sum(m["weight"] for m in MEMBERS)
        # each member's own cuts of the folds (a bag has more than the run's; its first are the run's)
        preds = {m["name"]: cross_fit(m, X, y, X_test, make_fold_sets(attempt_scheme(VALIDATION, m["params"]), y, train,
                                                                      TASK["task_type"]))
                 for m in MEMBERS}
        if STACKER is not None:
            test_pred = stack_predict(STACKER, preds)
        elif len(MEMBERS) == 1:
            test_pred = preds[MEMBERS[0]["name"]]
        else:
            test_pred = sum(preds[m["name"]] * (m["weight"] / total) for m in MEMBERS)
    frame = submission_frame(TASK, test_pred, threshold=THRESHOLD, power=POWER)
    frame.to_csv(out, index=False)
    print(f"wrote {out} ({len(frame)} rows)", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python solution.py TASK_DIR OUT.csv")
    main(Path(sys.argv[1]), Path(sys.argv[2]))
'''
