"""The whole graph with an LLM, and no network: a scripted chat model drives every role, and
the real ChatOpenAI client talks to a stub server on 127.0.0.1 through the `iml` command.

Bad answers are part of the script: malformed JSON, code with a syntax error, code that breaks
the contract, code that is never fixed, a refinement that makes the score worse. Every run must
still end with a valid submission. Refine is limited to a candidate or none (it would otherwise
search for the whole time left)."""

import json
from pathlib import Path

import pytest
from stub_openai import DemoAnswers, Script, ScriptedChatModel, StubOpenAIServer, broken_syntax
from machine_speed import scaled_duration

from graph.context import Settings
from graph.runner import run_task
from runtime.submission_file import validate_submission
from prompts import render_recipe

pytestmark = pytest.mark.slow

RECIPE = render_recipe("traditional")
# Parses and has the right signatures, but its "probabilities" break the contract.
OUT_OF_RANGE = """import numpy as np


class Model:
    def __init__(self, task, params):
        self.task = task

    def fit(self, X, y, X_valid=None, y_valid=None):
        return self

    def predict(self, X):
        return np.full(len(X), 1.5)
"""
# Deterministic and in range, so it passes the check, but it knows nothing: AUC 0.5.
CONSTANT = OUT_OF_RANGE.replace("np.full(len(X), 1.5)", "np.full(len(X), 0.5)")
READING = {"target": "outcome", "id_column": "row_key", "metric": "auc", "task_type": "binary", "notes": "plain binary task"}


def settings(refine_candidates: int = 1) -> Settings:
    return Settings(time_budget_s=240, n_folds=3, max_debug_attempts=2, refine_max_candidates=refine_candidates)


def attempts_of(final: dict, track: str = "traditional"):
    return final["tracks"][track].attempts


def test_scripted_llm_recovers_from_bad_json_bad_syntax_and_a_broken_contract(make_task, tmp_path, monkeypatch):
    task_dir = make_task("binary")
    script = Script({
        "TaskReading": ['{"target": "outcome", "metric": ', READING],
        "ModuleCode": [
            {"features": RECIPE["features"], "model": broken_syntax(RECIPE["model"]), "notes": "first draft"},
            {"features": RECIPE["features"], "model": OUT_OF_RANGE, "notes": "fixed the colon"},
            {**RECIPE, "notes": "binary predictions are the positive class's probability"},
        ],
        "ModuleRewrite": [{"module": "model", "code": CONSTANT, "notes": "simpler is better"}],
    })
    final = run_task(task_dir, tmp_path / "run", settings(), llm=ScriptedChatModel(script=script))

    task = final["task"]
    assert (task.target, task.metric) == ("outcome", "auc")
    assert any("the LLM's reading" in r for r in task.reasons)
    attempts = attempts_of(final)
    assert [(a.source, a.status) for a in attempts] == [
        ("llm", "check_failed"), ("debug", "check_failed"), ("debug", "ok"), ("refine", "ok")]
    assert "syntax error" in attempts[0].error and attempts[0].error.startswith("model.py")
    assert "outside [0, 1]" in attempts[1].error and attempts[1].error.startswith("model.py")
    # the refinement made it worse (AUC 0.5): it stays on the leaderboard, but is not kept
    assert attempts[3].score == pytest.approx(0.5) and attempts[2].score > 0.6
    assert final["tracks"]["traditional"].best_attempt == 3 and final["tracks"]["traditional"].score == attempts[2].score
    assert (Path(attempts[3].dir) / "model.py").read_text() == CONSTANT
    [refine_prompt] = [p for schema, p in script.prompts if schema == "ModuleRewrite"]
    # the best code (the recipe, unchanged: shown as the library it is) and its score
    assert f"auc {attempts[2].score:.6g}" in refine_prompt
    assert "the recipe module `prompts.recipes.traditional.model`, unchanged" in refine_prompt

    # the debug prompts carried the failing code and its error
    debug_prompts = [p for schema, p in script.prompts if schema == "ModuleCode" and "The failing attempt" in p]
    assert len(debug_prompts) == 2
    assert "syntax error" in debug_prompts[0] and "outside [0, 1]" in debug_prompts[1] and "np.full(len(X), 1.5)" in debug_prompts[1]

    # every attempt's code is on disk, as generated
    for a in attempts:
        folder = Path(a.dir)
        assert (folder / "features.py").exists() and (folder / "model.py").exists()
    assert (Path(attempts[0].dir) / "model.py").read_text() == broken_syntax(RECIPE["model"])

    usage = final["llm_usage"]
    assert [(c.role, c.outcome) for c in usage] == [
        ("analyze", "parse_error"), ("analyze", "ok"), ("blueprint", "ok"), ("generate", "ok"), ("debug", "ok"), ("debug", "ok"),
        ("refine", "ok")]
    assert all(c.prompt_tokens > 0 for c in usage) and {c.track for c in usage if c.role in ("generate", "debug", "refine")} == {"traditional"}
    assert validate_submission(task, final["submission_path"]) == []
    events = [json.loads(line) for line in (tmp_path / "run" / "events.jsonl").read_text().splitlines()]
    assert sum(e["event"] == "llm" for e in events) == len(usage)


def test_code_that_is_never_fixed_falls_back_to_the_recipe_and_the_run_stays_valid(make_task, tmp_path, monkeypatch):
    task_dir = make_task("regression")
    broken = {"features": "import numpy as np\n\nclass Features:\n    pass\n", "model": "class Model:\n    pass\n", "notes": "hm"}
    script = Script({"ModuleCode": [broken] * 10})
    final = run_task(task_dir, tmp_path / "run", settings(0), llm=ScriptedChatModel(script=script))

    attempts = attempts_of(final)
    assert [a.source for a in attempts] == ["llm", "debug", "debug", "fallback"]
    assert [a.status for a in attempts[:3]] == ["check_failed"] * 3 and attempts[3].status == "ok"
    assert (Path(attempts[3].dir) / "model.py").read_text() == RECIPE["model"]  # the track's own recipe
    assert "class Features" in attempts[0].error or "Features.__init__ is missing" in attempts[0].error
    assert script.asked.count("ModuleCode") == 3  # one generate, then max_debug_attempts repairs, no more
    assert validate_submission(final["task"], final["submission_path"]) == []


def test_iml_run_against_a_stub_openai_server(make_task, tmp_path, capsys, monkeypatch):
    from scripts.cli import main

    task_dir = make_task("multiclass")
    out = tmp_path / "run"
    with StubOpenAIServer(Script(default=DemoAnswers(first_code_broken=True))) as server:
        code = main(["run", str(task_dir), "--model", "stub-model", "--base-url", server.url, "--out", str(out),
                     "--time-budget", "4m", "--folds", "3", "--refine-candidates", "1", "--quiet"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    first = printed.strip().splitlines()[0]
    assert first.startswith(f"iml: model stub-model at {server.url}")
    assert "llm calls" in printed and "llm: " in printed and "parse_error" not in printed
    for role in ("analyze", "blueprint", "generate", "debug", "refine"):
        assert role in printed
    # the real client went over HTTP with the structured-output request
    assert all(r["response_format"]["type"] == "json_schema" for r in server.requests)
    kept = json.loads((out / "llm.json").read_text())
    assert {k: kept[k] for k in ("model", "base_url", "timeout_s", "max_retries")} == {
        "model": "stub-model", "base_url": server.url, "timeout_s": 180.0, "max_retries": 2}
    assert kept["budget"]["max_tokens"] is None and kept["budget"]["tokens"] > 0 and not kept["budget"]["reached"]
    assert "api_key" not in (out / "llm.json").read_text()
    attempts = sorted(p.name for p in (out / "tracks" / "traditional").iterdir())
    assert attempts[:2] == ["attempt_1", "attempt_2"]
    assert "syntax error" in (out / "tracks" / "traditional" / "attempt_1" / "log.txt").read_text()
    assert (out / "submission.csv").exists()


def test_an_llm_that_never_answers_leaves_the_rules_and_recipes_in_charge(make_task, tmp_path, monkeypatch):
    from stub_openai import Reply

    task_dir = make_task("multiclass_proba")
    script = Script({name: [Reply(status=500)] * 10 for name in ("TaskReading", "PlanProposal", "ModuleCode")})
    final = run_task(task_dir, tmp_path / "run", settings(0), llm=ScriptedChatModel(script=script))
    assert any("no usable answer" in r for r in final["task"].reasons)
    assert any("no usable plan" in n for n in final["blueprint"].notes)
    attempts = [(a.source, a.status) for a in attempts_of(final)]
    assert attempts[0] == ("recipe", "ok") and all(src == "member" for src, _ in attempts[1:]), attempts  # the zoo's members
    assert [(c.role, c.outcome) for c in final["llm_usage"]] == [("analyze", "error"), ("blueprint", "error"), ("generate", "error")]
    assert validate_submission(final["task"], final["submission_path"]) == []


def test_a_capped_run_stops_asking_at_the_cap_and_still_ends_valid(make_task, tmp_path, capsys, monkeypatch):
    from scripts.cli import main

    task_dir = make_task("binary")
    out = tmp_path / "run"
    with StubOpenAIServer(Script(default=DemoAnswers())) as server:
        # one request (analyze's) uses more than 50 tokens: every later role finds the cap reached
        code = main(["run", str(task_dir), "--model", "stub-model", "--base-url", server.url, "--out", str(out),
                     "--time-budget", scaled_duration(20), "--folds", "3", "--refine-candidates", "1",
                     "--max-llm-tokens", "50"])
        asked = len(server.requests)
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert asked == 1, f"{asked} requests were made past the cap"
    assert "the LLM token cap of 50 is reached" in printed and "goes on offline" in printed
    kept = json.loads((out / "llm.json").read_text())["budget"]
    assert kept["max_tokens"] == 50 and kept["reached"] and kept["tokens"] > 50
    report = (out / "report.md").read_text()
    assert "The cap was reached" in report
    task = json.loads((out / "task.json").read_text())
    assert task["target"] == "outcome"
    from runtime.task_reader import read_task
    from graph.context import Settings as S

    assert validate_submission(read_task(task_dir, S()), out / "submission.csv") == []
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert {e["role"] for e in events if e["event"] == "llm_limit"} >= {"blueprint", "generate"}
    sources = [e.get("source") for e in events if e["event"] == "generate"]
    assert sources == ["recipe"]  # the code came from the recipe, offline (the zoo's members are "member" events)


def test_a_request_is_bounded_by_the_time_the_run_has_left(tmp_path):
    """A server slower than the run's remaining time: the ask gives up when the run's time ends,
    not at the client's own timeout."""
    import time

    from langchain_core.messages import HumanMessage
    from stub_openai import Reply

    from graph.llm import LLMClient, LLMError, LLMSettings, TaskReading, build_chat_model

    # the run has 7 s left, the answer takes 20 s, the client would wait 60 s (the abandoned request
    # waits for the answer in the background, so a longer one would hold the process's exit)
    with StubOpenAIServer(Script({"TaskReading": [Reply(payload={"target": "outcome"}, delay_s=20)]})) as server:
        settings = LLMSettings(model="stub-model", base_url=server.url, api_key="x", timeout_s=60, max_retries=0)
        client = LLMClient(build_chat_model(settings))
        deadline = time.time() + 7
        started = time.time()
        with pytest.raises(LLMError) as info:
            client.ask(TaskReading, [HumanMessage("read")], role="analyze", remaining_s=lambda: deadline - time.time())
        took = time.time() - started
    assert took < 20, took  # gave up before the answer came, however long the machine took to get there
    assert info.value.calls[0].outcome == "timeout"


@pytest.mark.parametrize("kept", [True, False])
def test_refines_progress_and_the_submission_agree_on_what_a_rewrite_kept(make_task, tmp_path, kept):
    """A scripted LLM rewrite that refine keeps (a constant model rewritten to the recipe's) and one
    it does not (the recipe rewritten to a constant): the progress lines a user reads, the anytime
    submission's record and the final submission say the same of which attempt the run submits."""
    import io

    from rich.console import Console

    from scripts.progress import Progress

    task_dir = make_task("binary")
    first, rewrite = (CONSTANT, RECIPE["model"]) if kept else (RECIPE["model"], CONSTANT)
    script = Script({
        "TaskReading": [READING],
        "ModuleCode": [{"features": RECIPE["features"], "model": first, "notes": "the first draft"}],
        "ModuleRewrite": [{"module": "model", "code": rewrite, "notes": "another model"}],
    })
    out = io.StringIO()
    run = tmp_path / "run"
    with Progress(Console(file=out, force_terminal=False, width=300), budget_s=240) as progress:
        final = run_task(task_dir, run, settings(), llm=ScriptedChatModel(script=script), on_update=progress)
    lines = out.getvalue().splitlines()

    attempts = attempts_of(final)
    [candidate] = [a for a in attempts if a.source == "refine"]
    assert candidate.status == "ok" and candidate.kept is kept
    [done] = [line for line in lines if "changes kept" in line]
    assert f"traditional: {int(kept)} of 1 changes kept" in done, done
    [verdict] = [line for line in lines if f"refine: traditional attempt {candidate.attempt} (" in line]
    assert ("kept, the best so far" in verdict) is kept, verdict

    # the submission holds the attempt the progress called the best: the rewrite exactly when it was kept
    best = final["tracks"]["traditional"]
    assert (best.best_attempt == candidate.attempt) is kept
    blend = json.loads((run / "ensemble.json").read_text())
    submitted = json.loads((run / "submission.json").read_text())
    assert submitted["kind"] == "final" and submitted["source"] == f"ensemble ({blend['kind']})"
    if blend["kind"] == "single":
        assert list(blend["weights"]) == [f"traditional/attempt_{best.best_attempt}"]
        assert submitted["score"] == pytest.approx(best.score)
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    anytime = [e["source"] for e in events if e["event"] == "submission" and e["kind"] == "anytime"]
    assert (f"traditional/attempt_{candidate.attempt}" in anytime) is kept, anytime
    # the progress's table shows the same best score for the track
    assert progress.tracks["traditional"].score == pytest.approx(best.score)
    assert validate_submission(final["task"], final["submission_path"]) == []
