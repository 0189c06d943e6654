"""The offline debug's repairs of a failing recipe: which columns, read how, and when to stop."""

from __future__ import annotations

from nodes.debug import MAX_REPAIRS, column_repairs
from runtime.fold_loop import repaired
from runtime.records import AttemptResult, ColumnProfile, DataProfile, TargetProfile


def state(error: str, tmp_path, repairs=None, earlier_repairs: int = 0):
    columns = [ColumnProfile(name=n, kind=k, dtype="object", missing_share=0, cardinality=10, examples=[])
               for n, k in (("age", "numeric"), ("signup", "datetime"), ("city", "categorical"), ("note", "text"))]
    profile = DataProfile(n_train=10, n_test=5, columns=columns, target=TargetProfile(kind="values"))
    attempts = [AttemptResult(track="traditional", attempt=i + 1, source="repair", status="error", dir=str(tmp_path))
                for i in range(earlier_repairs)]
    attempts.append(AttemptResult(track="traditional", attempt=len(attempts) + 1, source="recipe", status="error",
                                  error=error, dir=str(tmp_path)))
    return {"profile": profile, "attempts": attempts, "last_error": error, "repairs": repairs or {}}


def test_a_named_column_is_read_another_way_then_left_out(tmp_path):
    first = column_repairs(state("ValueError: could not parse 'signup' at row 3", tmp_path))
    assert first == {"coerce_columns": {"signup": "categorical"}}
    second = column_repairs(state("TypeError: bad value in 'signup'", tmp_path, repairs=first, earlier_repairs=1))
    assert second == {"drop_columns": ["signup"]}


def test_a_categorical_column_named_in_a_key_error_is_left_out(tmp_path):
    assert column_repairs(state("KeyError: 'city'", tmp_path)) == {"drop_columns": ["city"]}


def test_the_failing_step_names_the_kind_when_no_column_is_named(tmp_path):
    error = "Traceback ...\n  in _text_matrix\n    M = vectorizer.transform(docs)\nValueError: empty vocabulary"
    assert column_repairs(state(error, tmp_path)) == {"coerce_columns": {"note": "categorical"}}


def test_a_retry_s_cheaper_params_survive_a_column_repair_after_it(tmp_path):
    """A too slow attempt's retry carries plain params (a learning rate, a row cap) in its
    repairs; a column repair of that retry keeps them beside its own."""
    earlier = {"learning_rate": 0.3, "max_train_rows": 800, "coerce_columns": {"signup": "categorical"}}
    out = column_repairs(state("KeyError: 'city'", tmp_path, repairs=earlier, earlier_repairs=1))
    assert out == {"learning_rate": 0.3, "max_train_rows": 800, "coerce_columns": {"signup": "categorical"},
                   "drop_columns": ["city"]}


def test_nothing_to_repair_and_a_bounded_number_of_repairs(tmp_path):
    assert column_repairs(state("MemoryError", tmp_path)) is None
    assert column_repairs(state("KeyError: 'city'", tmp_path, earlier_repairs=MAX_REPAIRS)) is None


def test_the_harness_applies_repairs_to_frames_and_profile():
    import pandas as pd

    profile = {"columns": [{"name": "a", "kind": "datetime"}, {"name": "b", "kind": "numeric"}]}
    frame = pd.DataFrame({"a": ["x"], "b": [1.0]})
    fixed, (out,) = repaired(profile, {"coerce_columns": {"a": "categorical"}, "drop_columns": ["b"]}, [frame])
    assert fixed["columns"] == [{"name": "a", "kind": "categorical"}] and list(out.columns) == ["a"]
    assert repaired(profile, {}, [frame]) == (profile, [frame])


def test_a_too_slow_fine_tuning_retries_with_the_frozen_encoder(tmp_path):
    """Fine-tuning that could not end in its time retreats to the pretrained track's frozen path
    (not the bare fallback), with the time the frozen path's estimate needs."""
    from nodes.debug import frozen_retreat
    from runtime.costs import pretrained_estimate
    from runtime.records import Blueprint, TaskSpec, ValidationScheme

    task = TaskSpec(task_dir=str(tmp_path), task_type="binary", target="y", id_column="id", metric="auc",
                    greater_is_better=True, submission_format="proba", submission_columns=["id", "y"], classes=["0", "1"])
    profile = DataProfile(n_train=2000, n_test=500, target=TargetProfile(kind="classes"), columns=[
        ColumnProfile(name="note", kind="text", dtype="object", missing_share=0, cardinality=2000, examples=[], mean_length=600)])
    bp = Blueprint(validation=ValidationScheme(kind="stratified", n_folds=5), tracks=[], budget_s=600)
    change, needs = frozen_retreat({"task": task, "profile": profile, "blueprint": bp}, {"finetune": True, "max_length": 64},
                                   gpu=False)
    assert change == {"finetune": False}
    frozen = pretrained_estimate(task, profile, 5, lambda _: True, max_length=64)
    assert needs > frozen.seconds  # the harness's margin on top of the frozen path's estimate
