"""The command line's LLM flags: --llm-timeout (and what `iml resume` keeps of it), and the
record/replay flags' misuses, each one line that says what to do."""

from __future__ import annotations

import json

import pytest
from langchain_core.messages import HumanMessage
from stub_openai import Script, ScriptedChatModel

from graph.llm import LLMClient, TaskReading
from graph.recording import Recorder
from runtime.errors import TaskInputError
from scripts.cli import build_parser, open_replay, resolve_llm, run_llm_settings

LOCAL = ["--model", "m", "--base-url", "http://127.0.0.1:9/v1"]


def run_args(*extra):
    return build_parser().parse_args(["run", "task", *extra])


def test_llm_timeout_takes_a_duration_and_beats_the_environment(monkeypatch):
    monkeypatch.setenv("IML_LLM_TIMEOUT", "30")
    assert resolve_llm(run_args(*LOCAL)).timeout_s == 30
    assert resolve_llm(run_args(*LOCAL, "--llm-timeout", "15m")).timeout_s == 900
    monkeypatch.delenv("IML_LLM_TIMEOUT")
    assert resolve_llm(run_args(*LOCAL)).timeout_s == 180


def test_resume_keeps_the_runs_timeout_unless_given_another(tmp_path, monkeypatch):
    monkeypatch.delenv("IML_MODEL", raising=False)
    monkeypatch.delenv("IML_LLM_TIMEOUT", raising=False)
    (tmp_path / "llm.json").write_text(json.dumps({"model": "m", "base_url": "http://127.0.0.1:9/v1", "timeout_s": 900}))
    resume = build_parser().parse_args(["resume", str(tmp_path)])
    assert (resolve_llm(resume, tmp_path).model, resolve_llm(resume, tmp_path).timeout_s) == ("m", 900)
    resume = build_parser().parse_args(["resume", str(tmp_path), "--llm-timeout", "1h"])
    assert resolve_llm(resume, tmp_path).timeout_s == 3600


@pytest.mark.parametrize("extra, says", [
    (["--llm-record", "a", "--llm-replay", "b", *LOCAL], "do not go together"),
    (["--llm-replay", "b", "--model", "m"], "give no --model or --base-url"),
    (["--llm-record", "a"], "needs a model to record"),
])
def test_misused_record_and_replay_flags_are_one_line(extra, says, monkeypatch):
    monkeypatch.delenv("IML_MODEL", raising=False)
    with pytest.raises(TaskInputError, match=says):
        run_llm_settings(run_args(*extra))


def test_a_recording_is_never_overwritten_and_a_replay_needs_one(tmp_path):
    folder = tmp_path / "rec"
    client = LLMClient(ScriptedChatModel(script=Script({"TaskReading": [{"target": "y"}]})))
    client.recorder = Recorder(folder, model="m")
    client.ask(TaskReading, [HumanMessage("read")], role="analyze")
    with pytest.raises(TaskInputError, match="holds a recording already; give a new folder"):
        run_llm_settings(run_args("--llm-record", str(folder), *LOCAL))
    assert run_llm_settings(run_args("--llm-record", str(tmp_path / "new"), *LOCAL)).model == "m"
    with pytest.raises(TaskInputError, match="no recording at"):
        open_replay(tmp_path / "missing", tmp_path / "run")
    with pytest.raises(TaskInputError, match="not an LLM recording"):
        open_replay(tmp_path, tmp_path / "run")
    assert open_replay(folder, tmp_path / "run").model == "m"
