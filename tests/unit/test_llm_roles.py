"""The LLM in analyze and blueprint, with the rules as guard rails (no kernel needed)."""

import pytest
from stub_openai import Script, ScriptedChatModel

from graph.context import Settings
from graph.llm import LLMClient
from nodes.analyze import read_task_with_llm
from nodes.blueprint import make_blueprint, plan_with_llm
from runtime.data_profile import profile_data
from runtime.task_reader import read_task


def client(replies: dict) -> LLMClient:
    return LLMClient(ScriptedChatModel(script=Script(replies)))


def test_analyze_uses_what_the_files_confirm(make_task):
    task_dir = make_task("multiclass", description="Predict the outcome class. We score macro F1.")
    reading = {"target": "outcome", "id_column": "row_key", "metric": "macro f1", "task_type": "multiclass", "notes": "ordinal"}
    task, calls = read_task_with_llm(task_dir, Settings(), client({"TaskReading": [reading]}))
    assert (task.target, task.id_column, task.metric) == ("outcome", "row_key", "f1_macro")
    assert any("the LLM's reading" in r and "target" in r for r in task.reasons)
    assert any(r.startswith("LLM notes: ordinal") for r in task.reasons)
    assert [c.role for c in calls] == ["analyze"]


@pytest.mark.parametrize("reading, why", [
    ({"target": "price"}, "train.csv has no such column"),
    ({"target": "alpha"}, "test.csv has it too"),
    ({"id_column": "nope"}, "test.csv has no such column"),
    ({"metric": "vibes"}, "not a known metric"),
    ({"metric": "rmse"}, "rejected by the files"),  # a regression metric on class labels
    ({"task_type": "regression"}, "task type regression rejected"),
])
def test_analyze_corrects_what_cannot_be_true_and_says_why(make_task, reading, why):
    task_dir = make_task("binary")
    rules = read_task(task_dir, Settings())
    task, _ = read_task_with_llm(task_dir, Settings(), client({"TaskReading": [reading]}))
    assert (task.target, task.id_column, task.metric, task.task_type) == (rules.target, rules.id_column, rules.metric, rules.task_type)
    assert any(why in r for r in task.reasons), task.reasons


def test_flags_beat_the_llm(make_task):
    task_dir = make_task("binary")
    task, _ = read_task_with_llm(task_dir, Settings(metric="log_loss"), client({"TaskReading": [{"metric": "accuracy"}]}))
    assert task.metric == "log_loss" and "metric: log_loss from --metric" in task.reasons


def test_analyze_falls_back_to_the_rules_when_the_llm_never_answers(make_task):
    task_dir = make_task("binary")
    task, calls = read_task_with_llm(task_dir, Settings(), client({"TaskReading": ["garbage"] * 10}))
    assert task.target == "outcome" and any("no usable answer" in r for r in task.reasons)
    assert calls and all(c.outcome == "parse_error" for c in calls)


@pytest.fixture
def planned(make_task):
    task = read_task(make_task("binary"), Settings())
    profile = profile_data(task)
    return task, profile, make_blueprint(task, profile, Settings(), budget_s=100)


def proposal(**track) -> dict:
    base = {"track": "traditional", "reason": "trees suit 4 mixed columns", "model_family": "LightGBM",
            "feature_steps": ["colour as category"], "params": {"learning_rate": 0.03}, "time_share": 1.0}
    return {"tracks": [{**base, **track}], "validation": None, "notes": "smaller steps"}


def test_a_sound_llm_plan_is_used(planned):
    task, profile, draft = planned
    plan, calls = plan_with_llm(client({"PlanProposal": [proposal(drop_columns=["grade"])]}), task, profile, draft)
    [t] = plan.tracks
    assert t.params["learning_rate"] == 0.03
    assert all(t.params[k] == v for k, v in draft.tracks[0].params.items() if k != "learning_rate")  # the draft's stay
    assert t.params["drop_columns"] == ["grade"] and t.reason == "trees suit 4 mixed columns"
    assert plan.validation == draft.validation and plan.notes[-1].startswith("LLM plan accepted")
    assert [c.role for c in calls] == ["blueprint"]


@pytest.mark.parametrize("bad, why", [
    ({"track": "quantum"}, "not offered"),
    ({"drop_columns": ["no_such_column"]}, "do not exist"),
    ({"time_share": 0.0}, "time share"),
    ({"params": {"learning_rate": "fast"}}, "not a number"),
])
def test_an_llm_plan_that_does_not_fit_the_profile_leaves_the_rules_plan(planned, bad, why):
    task, profile, draft = planned
    plan, _ = plan_with_llm(client({"PlanProposal": [proposal(**bad)]}), task, profile, draft)
    assert plan.tracks == draft.tracks and plan.validation == draft.validation
    assert "rejected" in plan.notes[-1] and why in plan.notes[-1]


def test_validation_columns_are_checked(planned):
    task, profile, draft = planned
    bad = {**proposal(), "validation": "group", "group_column": "nowhere"}
    plan, _ = plan_with_llm(client({"PlanProposal": [bad]}), task, profile, draft)
    assert plan.validation.kind == draft.validation.kind and "group column" in plan.notes[-1]
    good = {**proposal(), "validation": "group", "group_column": "colour"}
    plan, _ = plan_with_llm(client({"PlanProposal": [good]}), task, profile, draft)
    assert (plan.validation.kind, plan.validation.group_column, plan.validation.n_folds) == ("group", "colour", draft.validation.n_folds)


def track_state(planned, tmp_path, sources: list[str]) -> dict:
    from runtime.records import AttemptResult

    task, profile, draft = planned
    attempts = [AttemptResult(track="traditional", attempt=i + 1, source=s, status="check_failed", error="model.py: boom",
                              dir=str(tmp_path)) for i, s in enumerate(sources)]
    return {"run_dir": str(tmp_path), "task": task, "profile": profile, "blueprint": draft, "plan": draft.tracks[0],
            "code": {"features": "class Features: pass\n", "model": "class Model: pass\n"}, "source": sources[-1],
            "attempt": len(sources), "attempts": attempts, "last_error": "model.py: boom", "fell_back": False}


@pytest.mark.parametrize("llm, sources, expected", [
    (False, ["recipe"], ("fallback", True, "fallback")),  # offline: the shared recipe at once, as always
    (True, ["llm"], ("debug", False, None)),  # a repair while repairs are left
    (True, ["llm", "debug", "debug"], ("fallback", False, "traditional")),  # repairs spent: the track's recipe
    (True, ["llm", "debug", "debug", "fallback"], ("fallback", True, "fallback")),  # that failed too: the shared one
    (True, ["recipe"], ("debug", False, None)),
    (True, ["recipe", "debug", "debug"], ("fallback", True, "fallback")),  # the track's recipe already failed
])
def test_debug_repairs_then_falls_back_to_the_tracks_recipe_then_the_shared_one(planned, tmp_path, llm, sources, expected):
    from langgraph.runtime import Runtime

    from graph.context import RunContext
    from nodes.debug import debug
    from prompts import render_recipe

    fixed = {"features": "class Features: fixed\n", "model": "class Model: fixed\n", "notes": "fixed"}
    ctx = RunContext(settings=Settings(max_debug_attempts=2),
                     llm=ScriptedChatModel(script=Script({"ModuleCode": [fixed]})) if llm else None)
    update = debug(track_state(planned, tmp_path, sources), Runtime(context=ctx))
    source, fell_back, recipe = expected
    assert (update["source"], update["fell_back"], update["attempt"]) == (source, fell_back, len(sources) + 1)
    if recipe is not None:
        assert update["code"] == render_recipe(recipe)
    else:
        assert update["code"]["model"] == "class Model: fixed\n" and [c.role for c in update["llm_usage"]] == ["debug"]
    assert ("llm_usage" in update) == (source == "debug")


def test_an_llm_naming_one_of_several_targets_does_not_shrink_the_task(tmp_path):
    from scripts.examples import make_example

    task_dir = make_example("digits_labels", tmp_path / "digits_labels")
    reading = {"target": "even", "metric": "auc", "task_type": "binary"}
    task, _ = read_task_with_llm(task_dir, Settings(), client({"TaskReading": [reading]}))
    assert (task.task_type, task.targets, task.metric) == ("multilabel", ["even", "large", "has_loop"], "mean_columnwise_auc")
    assert any("asks for 3 target columns" in r for r in task.reasons)
