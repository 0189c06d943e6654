"""Prompts carry the facts of the data and stay bounded, even on a 500-column table."""

import re

import pandas as pd

from graph.context import Settings
from nodes.blueprint import make_blueprint
from prompts import PROMPTS_DIR
from prompts.render import (
    PLACEHOLDER,
    PROFILE_CHARS,
    analyze_messages,
    blueprint_messages,
    debug_messages,
    generate_messages,
    load_template,
    memory_summary,
    profile_summary,
    prompt_chars,
    refine_messages,
)
from runtime.data_profile import profile_data
from runtime.records import AttemptResult, ColumnProfile, DataProfile, TargetProfile
from runtime.task_reader import read_task

ROLES = ("analyze", "blueprint", "generate", "debug", "refine")
# characters, about 12k tokens: the contract carries the one list of imports and the surface of
# the recipes' shared steps, and code is shown whole (whole functions left out by name)
PROMPT_BOUND = 48_000


def text(msgs) -> str:
    return "\n".join(m.content for m in msgs)


def test_every_role_has_a_template_file_with_system_and_user_sections():
    for role in ROLES:
        assert (PROMPTS_DIR / f"{role}.md").exists()
        sections = load_template(role)
        assert sections["system"].strip() and sections["user"].strip()
    generate = load_template("generate")
    assert {"track:traditional", "track:pretrained", "track:neural", "track:default"} <= set(generate)


def test_prompts_carry_the_facts_of_the_data(grounded):
    task_dir, task, profile, blueprint = grounded
    plan = blueprint.tracks[0]
    code = {"features": "class Features: ...\n", "model": "class Model: ...\n"}
    attempt = AttemptResult(track="traditional", attempt=1, source="llm", status="error", error="KeyError: 'colour'", dir=str(task_dir))
    prompts = {
        "blueprint": blueprint_messages(task, profile, blueprint, ["traditional"]),
        "generate": generate_messages(task, profile, plan),
        "debug": debug_messages(task, profile, plan, code, "KeyError: 'colour'\nTraceback ...", [attempt], attempt=1, status="error"),
        "refine": refine_messages(task, profile, plan, code, 0.91, attempts=[attempt]),
    }
    for role, msgs in prompts.items():
        body = text(msgs)
        assert not PLACEHOLDER.search(body), role
        assert "'outcome'" in body and "auc" in body, role  # target and metric
        for column in ("alpha", "beta", "colour", "grade"):  # the real feature columns
            assert column in body, (role, column)
        assert "yes:" in body or "'yes'" in body, role  # the target distribution / classes
    gen = text(prompts["generate"])
    assert "class Features" in gen and "def transform(self, X" in gen  # the contract
    # the traditional recipe as a library: its modules by import name, their hooks, its params
    assert "### prompts.recipes.traditional.model" in gen and "def settings(self, n: int, columns: list, positives: int=0) -> dict:" in gen
    assert "learning_rate" in gen and "[searched 0.005..0.3, log]" in gen
    assert "Gradient-boosted trees" in gen  # the track's own section
    dbg = text(prompts["debug"])
    assert "KeyError: 'colour'" in dbg and "class Model: ..." in dbg and "attempt 1 (llm): error" in dbg

    desc = (task_dir / "description.md").read_text()
    analysis = text(analyze_messages(task_dir, desc, list(pd.read_csv(task_dir / "train.csv", nrows=0).columns),
                                     list(pd.read_csv(task_dir / "test.csv", nrows=0).columns), ["row_key", "outcome"]))
    assert "area under the ROC curve" in analysis and "Columns only in train.csv: outcome" in analysis
    assert "train.csv" in analysis and "sample_submission.csv columns: row_key, outcome" in analysis


def wide_profile(n_columns: int = 500) -> DataProfile:
    kinds = ["numeric", "categorical", "text", "datetime"]
    columns = [
        ColumnProfile(name=f"feature_{i:03d}_{'x' * 20}", kind=kinds[i % 4], dtype="float64", missing_share=(i % 7) / 10,
                      cardinality=100 + i, examples=["a" * 80, "b" * 80, "c" * 80], mean_length=120.0 if i % 4 == 2 else None)
        for i in range(n_columns)
    ]
    target = TargetProfile(kind="classes", class_counts={f"class_{k}": 10 + k for k in range(200)})
    return DataProfile(n_train=50_000, n_test=10_000, columns=columns, target=target,
                       warnings=[f"drift: 'feature_{i:03d}' moved " + "far " * 80 for i in range(100)])


def test_prompts_stay_bounded_on_a_500_column_table(grounded):
    task_dir, task, _, blueprint = grounded
    profile = wide_profile()
    summary = profile_summary(profile)
    assert len(summary) <= PROFILE_CHARS
    assert "500 feature columns" in summary and "feature_000_" in summary and "more" in summary
    task = task.model_copy(update={"classes": [f"class_{k}" for k in range(200)], "task_type": "multiclass"})
    plan = blueprint.tracks[0]
    big_code = {"features": "x = 1\n" * 20_000, "model": "y = 2\n" * 20_000}
    attempts = [AttemptResult(track="t", attempt=i, source="debug", status="error", error="E" * 5000 + "\n" * 3, dir=".")
                for i in range(50)]
    sizes = {
        "blueprint": prompt_chars(blueprint_messages(task, profile, blueprint, ["traditional"])),
        "generate": prompt_chars(generate_messages(task, profile, plan, attempts)),
        "debug": prompt_chars(debug_messages(task, profile, plan, big_code, "Traceback\n" * 10_000, attempts)),
        "refine": prompt_chars(refine_messages(task, profile, plan, big_code, 0.5, attempts=attempts)),
        "analyze": prompt_chars(analyze_messages(task_dir, "word " * 100_000, [c.name for c in profile.columns] + ["y"],
                                                 [c.name for c in profile.columns], None)),
    }
    for role, size in sizes.items():
        assert size < PROMPT_BOUND, (role, size)
    assert len(memory_summary(attempts)) <= 3_000


def test_the_memory_of_attempts_is_bounded_and_keeps_the_latest():
    attempts = [AttemptResult(track="t", attempt=i, source="debug", status="ok", score=0.5 + i / 100, dir=".") for i in range(1, 21)]
    memory = memory_summary(attempts)
    assert "attempt 20 (debug): ok, score 0.7" in memory and "attempt 1 " not in memory and "earlier attempts not shown" in memory
    assert memory_summary([]).startswith("None yet")


def test_templates_use_only_the_placeholders_the_renderer_fills():
    for role in ROLES:
        names = set(PLACEHOLDER.findall((PROMPTS_DIR / f"{role}.md").read_text()))
        assert names, role
        assert all(re.fullmatch(r"[a-z_]+", n) for n in names)


def test_image_task_prompts_describe_the_image_column_and_the_recipes(tmp_path):
    """The LLM path on an image task: each track's generate prompt and the debug prompt say what
    the image column is, how to read it (runtime.images in encode), and show the image recipe."""
    from PIL import Image

    ids = [f"x{i:03d}" for i in range(40)]
    for part, rows in (("train", ids[:30]), ("test", ids[30:])):
        (tmp_path / part).mkdir()
        for i in rows:
            Image.new("RGB", (40, 30), (10, 200, 10)).save(tmp_path / part / f"{i}.jpg")
    pd.DataFrame({"id": ids[:30], "label": ["a", "b", "c"] * 10}).to_csv(tmp_path / "labels.csv", index=False)
    pd.DataFrame({"id": ids[30:], "label": "a"}).to_csv(tmp_path / "sample_submission.csv", index=False)
    task = read_task(tmp_path, Settings())
    profile = profile_data(task)
    plan = make_blueprint(task, profile, Settings(), budget_s=600, gpu=False)
    hints = {"traditional": "hog", "pretrained": "EfficientNet", "neural": "CNN"}
    for name in hints:  # 30 rows plan no network; each track's prompt is asked for all the same
        track = plan.tracks[0].model_copy(update={"track": name})
        body = text(generate_messages(task, profile, track))
        assert "image: image (each row's file path" in body and "40x30 px median" in body and "'JPEG'" in body
        assert "runtime.images" in body and "load_images" in body, track.track
        assert hints[track.track] in body, track.track
    code = {"features": "class Features: ...\n", "model": "class Model: ...\n"}
    debug = text(debug_messages(task, profile, plan.tracks[0], code, "RuntimeError: shape", [], attempt=1, status="error"))
    assert "runtime.images.load_images" in debug and "(n, 3, size, size)" in debug
