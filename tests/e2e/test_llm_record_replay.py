"""Record and replay of a whole run's LLM requests.

`iml run --llm-record` against the scripted OpenAI-compatible server (every role asks: analyze,
blueprint, generate, a debug after broken code, refine), then `iml run --llm-replay` with no
server at all: the same submission, byte for byte, and every recorded answer used. A recording
that lacks a role replays the rest and says once that the role falls back. And resume: a
recorded run interrupted in the middle of a step, resumed, then replayed; a replayed run
interrupted the same way, resumed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from stub_openai import DemoAnswers, Script, ScriptedChatModel, StubOpenAIServer

from graph.context import Settings
from graph.llm import LLMClient
from graph.recording import INDEX, REPLAY_LOG, Recorder, Replay, index_text, read_recording
from graph.runner import resume_run, run_task
from runtime.task_reader import read_task
from runtime.submission_file import validate_submission

pytestmark = pytest.mark.slow

RUN_ARGS = ["--time-budget", "4m", "--folds", "3", "--refine-candidates", "1"]


def events(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]


def replayed(run: Path) -> list[int]:
    return [e["replayed"] for e in events(run) if e["event"] == "llm" and "replayed" in e]


@pytest.fixture
def recorded(make_task, tmp_path):
    """(task, recording, the recorded run) of a real `iml run` against the scripted server."""
    from scripts.cli import main

    task = make_task("multiclass")
    recording, run = tmp_path / "recording", tmp_path / "recorded"
    with StubOpenAIServer(Script(default=DemoAnswers(first_code_broken=True))) as server:
        code = main(["run", str(task), "--model", "stub-model", "--base-url", server.url, "--out", str(run),
                     "--llm-record", str(recording), "--quiet", *RUN_ARGS])
        asked = len(server.requests)
    assert code == 0
    _, entries = read_recording(recording)
    assert len(entries) == asked and [e.n for e in entries] == list(range(1, asked + 1))
    return task, recording, run


def test_a_recorded_run_replays_to_the_same_submission_with_no_server(recorded, tmp_path, capsys):
    from scripts.cli import main

    task, recording, run = recorded
    index, entries = read_recording(recording)
    assert {e.role for e in entries} == {"analyze", "blueprint", "generate", "debug", "refine"}
    assert index["model"] == "stub-model" and all(e.outcome == "ok" for e in entries)
    debug = next(e for e in entries if e.role == "debug")
    assert "syntax error" in (recording / f"{debug.n:04d}.json").read_text()  # its prompt carried the failure
    assert json.loads((run / "llm.json").read_text())["record"] == str(recording.resolve())
    capsys.readouterr()

    again = tmp_path / "replayed"
    code = main(["run", str(task), "--llm-replay", str(recording), "--out", str(again), "--quiet", *RUN_ARGS])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert printed.splitlines()[0].startswith(f"iml: replaying {recording.resolve()} ({len(entries)} recorded answers")
    assert (again / "submission.csv").read_bytes() == (run / "submission.csv").read_bytes()
    assert sorted(replayed(again)) == [e.n for e in entries]  # every recorded answer, each once
    assert f"llm replay: {len(entries)} of {len(entries)} recorded answers used" in printed
    was = [(c["role"], c.get("track"), c["outcome"], c["prompt_tokens"]) for c in events(run) if c["event"] == "llm"]
    now = [(c["role"], c.get("track"), c["outcome"], c["prompt_tokens"]) for c in events(again) if c["event"] == "llm"]
    assert now == was  # the same requests, in the same order, with the recorded token counts


def test_a_replay_whose_recording_lacks_a_role_falls_back_for_it_and_says_so_once(recorded, tmp_path, capsys):
    from scripts.cli import main

    task, recording, _ = recorded
    lacking = tmp_path / "lacking"
    shutil.copytree(recording, lacking)
    index, entries = read_recording(lacking)
    kept = [e for e in entries if e.role != "refine"]
    assert len(kept) < len(entries)
    (lacking / INDEX).write_text(index_text(index["model"], index["base_url"], kept))
    capsys.readouterr()

    run = tmp_path / "replayed"
    code = main(["run", str(task), "--llm-replay", str(lacking), "--out", str(run), *RUN_ARGS])  # with progress
    printed = capsys.readouterr().out
    assert code == 0, printed
    said = [line for line in printed.splitlines() if "LLM replay:" in line]
    assert len(said) == 1 and "holds no answer for refine (track traditional)" in said[0]
    assert [e["role"] for e in events(run) if e["event"] == "llm_replay_missing"] == ["refine"]
    assert sorted(replayed(run)) == [e.n for e in kept]
    assert [e for e in events(run) if e["event"] == "refine_llm" and e.get("gave_up")]  # refine went on without it
    assert validate_submission(read_task(task, Settings()), run / "submission.csv") == []


# -- resume ---------------------------------------------------------------------------------


class Killed(BaseException):
    """An interrupt in the middle of a step (as a kill would be): no handler of the run catches it."""


def kill(prompt: str):
    raise Killed()


def settings() -> Settings:
    return Settings(time_budget_s=240, n_folds=3, max_debug_attempts=2, refine_max_candidates=1)


class KillingReplay(Replay):
    """A replay interrupted when it is about to give out the answer numbered `at`."""

    def __init__(self, *args, at: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.at = at

    def take(self, role, track, task=None):
        fresh = [e.n for e in self.queues.get((role, track), []) if e.n not in self.used]
        if fresh and fresh[0] == self.at:
            raise Killed()
        return super().take(role, track, task)


def test_resume_goes_on_recording_and_a_resumed_replay_gives_the_step_its_answers_again(make_task, tmp_path):
    task = make_task("multiclass")
    recording, run = tmp_path / "recording", tmp_path / "recorded"
    broken = DemoAnswers(first_code_broken=True)
    # generate writes broken code; debug's first answer is not JSON, and the run is interrupted
    # at its re-ask: the step never finishes
    script = Script({"ModuleCode": [lambda p: broken("ModuleCode", p).payload, '{"features": ', kill]})
    client = LLMClient(ScriptedChatModel(script=script), recorder=Recorder(recording, model="scripted"))
    with pytest.raises(Killed):
        run_task(task, run, settings(), llm=client)
    _, entries = read_recording(recording)
    assert [(e.role, e.outcome, e.session) for e in entries[-2:]] == [("generate", "ok", 1), ("debug", "parse_error", 1)]
    interrupted = entries[-1].n

    # resumed: debug runs again as the same graph task; its first try, now dropped, is not replayed
    script = Script({"ModuleCode": ['{"features": ']})  # then the demo's repair
    client = LLMClient(ScriptedChatModel(script=script), recorder=Recorder(recording, model="scripted"))
    final = resume_run(run, llm=client)
    assert validate_submission(final["task"], final["submission_path"]) == []
    _, entries = read_recording(recording)
    debug = [e for e in entries if e.role == "debug"]
    assert [(e.outcome, e.session) for e in debug] == [("parse_error", 2), ("ok", 2)]
    assert [p.name for p in (recording / "dropped").glob("*.json")] == [f"{interrupted:04d}.json"]
    assert [(c.role, c.outcome) for c in final["llm_usage"]] == [(e.role, e.outcome) for e in entries]

    # a replay interrupted at debug's second answer (its first was given out in the same step)
    replay_run = tmp_path / "replayed"
    replay_run.mkdir()
    killing = KillingReplay(recording, log=replay_run / REPLAY_LOG, at=debug[1].n)
    with pytest.raises(Killed):
        run_task(task, replay_run, settings(), llm=LLMClient(None, replay=killing))
    assert debug[0].n in killing.used and debug[1].n not in killing.used
    resumed = Replay(recording, log=replay_run / REPLAY_LOG)
    final = resume_run(replay_run, llm=LLMClient(None, replay=resumed))
    assert resumed.unused() == []  # the interrupted step got debug's first answer again, then its second
    assert Path(final["submission_path"]).read_bytes() == (run / "submission.csv").read_bytes()
    assert [(c.role, c.outcome) for c in final["llm_usage"]] == [(e.role, e.outcome) for e in entries]
