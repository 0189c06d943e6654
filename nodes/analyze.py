"""analyze: the task folder -> TaskSpec.

Offline the rules decide everything (runtime/task_reader.py reads the task from its files);
with an LLM they check its answer against the files. Every rule records why it decided, so the
report can say how the task was read.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from langgraph.runtime import Runtime

from graph.context import RunContext, Settings
from graph.llm import client_for
from graph.state import IMLState
from runtime.data import TaskInputError, read_header, read_table
from runtime.metrics import get_metric, metric_from_text
from runtime.records import TaskSpec
from runtime.task_files import locate_files
from runtime.task_reader import read_task


def analyze(state: IMLState, runtime: Runtime[RunContext]) -> dict:
    client = client_for(runtime.context)
    llm_update: dict = {}
    given = state.get("task")
    if client is None and given is not None and Path(given.task_dir) == Path(state["task_dir"]).resolve():
        task = given  # read by the caller with these settings (iml run, before the run folder): not read twice
    elif client is None:
        task = read_task(Path(state["task_dir"]), runtime.context.settings)
    else:
        task, calls = read_task_with_llm(Path(state["task_dir"]), runtime.context.settings, client, runtime.context.events)
        llm_update = {"llm_usage": calls}
    runtime.context.events.emit("task", **task.model_dump(include={"task_type", "target", "metric", "id_column", "warnings"}))
    Path(state["run_dir"], "task.json").write_text(task.model_dump_json(indent=2))
    return {"task": task, **llm_update}


# -- with an LLM: it reads the description, the rules check it against the files ----------------


def read_task_with_llm(task_dir: Path, settings: Settings, client, events=None) -> tuple[TaskSpec, list]:
    """The LLM names target, id and metric from the description; each is used only when the
    files allow it (the target a train column absent from test, the id a test column, the
    metric a known one that fits the task), and the rules decide the rest. Flags beat both.
    Every correction is a reason in the TaskSpec."""
    import dataclasses

    from graph.llm import LLMError, TaskReading
    from prompts.render import analyze_messages

    files = locate_files(task_dir)
    sample_cols = read_header(files.sample, "sample submission") if files.sample is not None else None
    # image files without a table (labels in their names): the columns iml builds for them
    train_cols = read_header(files.train, "train file") if files.train is not None else [*(sample_cols or ["id"])[:1], "label"]
    test_cols = read_header(files.test, "test file") if files.test is not None else list((sample_cols or ["id"])[:1])
    description = files.description
    candidates = candidate_values(files.train, train_cols, test_cols, sample_cols) if files.train is not None else {}
    try:
        answer = client.ask(TaskReading, analyze_messages(task_dir, description, train_cols, test_cols, sample_cols, candidates),
                            role="analyze", node="analyze", events=events)
    except LLMError as e:
        task = read_task(task_dir, settings)
        task.reasons.append(f"LLM: no usable answer ({str(e)[:200]}); the rules decided alone")
        return task, e.calls
    reading = answer.value
    hints, notes = _verified_hints(reading, train_cols, test_cols, sample_cols, settings)
    trials = [hints]
    if "metric" in hints:
        trials.append({k: v for k, v in hints.items() if k != "metric"})
    if hints:
        trials.append({})
    task = None
    for trial in trials:
        try:
            task = read_task(task_dir, dataclasses.replace(settings, **trial))
            break
        except TaskInputError as e:
            if not trial:
                raise
            notes.append(f"LLM: {', '.join(f'{k} {v!r}' for k, v in trial.items())} rejected by the files: {e}")
    assert task is not None
    flag = {"target": ("target", "--target"), "id_column": ("id", "--id"), "metric": ("metric", "--metric")}
    for key, value in trial.items():
        name, option = flag[key]
        shown = f"'{value}'" if key != "metric" else value
        task.reasons = [r.replace(f"{name}: {shown} from {option}", f"{name}: {shown}, the LLM's reading of the description"
                                  + {"target": " (checked: a train column that test lacks)", "id_column": " (checked: a test column)",
                                     "metric": " (checked: a known metric that fits the task)"}[key])
                        for r in task.reasons]
    if reading.task_type and reading.task_type != task.task_type:
        notes.append(f"LLM: task type {reading.task_type} rejected: the target's values and the metric make it {task.task_type}")
    text_metric = metric_from_text(description)
    if "metric" in trial and text_metric and text_metric != task.metric:
        notes.append(f"LLM: chose {task.metric} where the rules read {text_metric} in the description")
    if reading.notes.strip():
        notes.append(f"LLM notes: {reading.notes.strip()[:300]}")
    task.reasons += notes
    return task, answer.calls


CANDIDATE_ROWS = 20_000  # rows read for the candidate targets' values: a sample, never the whole table
CANDIDATES = 10  # candidate target columns whose values the analyst sees


def candidate_values(train: Path, train_cols: list[str], test_cols: list[str],
                     sample_cols: list[str] | None) -> dict[str, pd.Series]:
    """The columns that may be the target (in train but not test, and the sample submission's
    other columns that train holds), each with its value counts on the first CANDIDATE_ROWS rows:
    what tells the analyst binary from multiclass from regression."""
    wanted = [c for c in train_cols if c not in test_cols]
    wanted += [c for c in (sample_cols or [])[1:] if c in train_cols and c not in wanted]
    wanted = wanted[:CANDIDATES]
    if not wanted:
        return {}
    try:
        frame = read_table(train, "train file", nrows=CANDIDATE_ROWS, columns=wanted)
    except TaskInputError:
        return {}  # read_task reports the file in its own words
    return {c: frame[c].value_counts(dropna=False) for c in wanted if c in frame.columns}


def _verified_hints(reading, train_cols: list[str], test_cols: list[str], sample_cols: list[str] | None,
                    settings: Settings) -> tuple[dict, list[str]]:
    """The parts of the LLM's reading that can be true of these files, and why the rest cannot."""
    hints: dict = {}
    notes: list[str] = []

    def column(name: str, among: list[str]) -> str | None:
        if name in among:
            return name
        folded = [c for c in among if c.lower() == name.strip().lower()]
        return folded[0] if len(folded) == 1 else None

    values = [c for c in (sample_cols or []) if c not in test_cols]
    several = len(values) > 1 and all(c in train_cols for c in values)
    if reading.target and not settings.target and several:
        # the files name several targets (the sample's value columns): one named by the LLM
        # would turn the task into something else
        notes.append(f"LLM: target '{reading.target}' not used: the sample submission asks for {len(values)} target "
                     f"columns ({', '.join(values[:6])})")
    elif reading.target and not settings.target:
        name = column(reading.target, train_cols)
        if name is None:
            notes.append(f"LLM: target '{reading.target}' rejected: train.csv has no such column")
        elif name in test_cols:
            notes.append(f"LLM: target '{name}' rejected: test.csv has it too, so it cannot be what is predicted")
        else:
            hints["target"] = name
    if reading.id_column and not settings.id_column:
        name = column(reading.id_column, test_cols)
        if name is None:
            notes.append(f"LLM: id '{reading.id_column}' rejected: test.csv has no such column")
        elif sample_cols is not None and name not in sample_cols:
            notes.append(f"LLM: id '{name}' rejected: sample_submission.csv has no such column")
        elif name == hints.get("target"):
            notes.append(f"LLM: id '{name}' rejected: it is also the target")
        else:
            hints["id_column"] = name
    if reading.metric and not settings.metric:
        try:
            hints["metric"] = get_metric(reading.metric).name
        except ValueError:
            notes.append(f"LLM: metric '{reading.metric}' rejected: not a known metric")
    return hints, notes
