"""graph/recording.py through LLMClient.ask, in process: a scripted chat model answers while a
Recorder keeps every request; a Replay answers the same asks from the folder with no model at
all, failures and re-asks included; what a replay lacks, a resumed recording drops, and a
resumed replay gives back."""

from __future__ import annotations

import json

import pytest
from langchain_core.messages import HumanMessage
from stub_openai import Reply, Script, ScriptedChatModel

from graph.context import EventLog
from graph.llm import LLMClient, LLMError, LLMReplayMissing, ModuleCode, TaskReading
from graph.recording import INDEX, Recorder, Replay, read_recording
from runtime.errors import TaskInputError

READING = {"target": "outcome", "id_column": "row_key", "metric": "auc", "task_type": "binary", "notes": ""}
CODE = {"features": "class Features:\n    pass\n", "model": "class Model:\n    pass\n", "notes": "n"}


def recording_client(script: Script, folder) -> LLMClient:
    c = LLMClient(ScriptedChatModel(script=script))
    c.recorder = Recorder(folder, model=c.model_name, base_url=c.base_url)
    return c


def asks(c: LLMClient, events=None) -> list:
    """analyze (a bad answer, then a good one), then generate for two tracks, then a 500."""
    out = [c.ask(TaskReading, [HumanMessage("read")], role="analyze", events=events)]
    for track in ("traditional", "neural"):
        out.append(c.ask(ModuleCode, [HumanMessage(f"write {track}")], role="generate", track=track, events=events))
    try:
        c.ask(ModuleCode, [HumanMessage("repair")], role="debug", track="traditional", events=events)
    except LLMError as e:
        out.append(e)
    return out


def script() -> Script:
    return Script({"TaskReading": ['{"target": "outcome", ', READING],
                   "ModuleCode": [CODE, {**CODE, "notes": "neural"}, Reply(status=500)]})


def test_a_recording_replays_the_same_answers_failures_and_re_asks_with_no_model(tmp_path):
    folder = tmp_path / "rec"
    recorded = asks(recording_client(script(), folder))
    index, entries = read_recording(folder)
    assert [(e.role, e.track, e.outcome) for e in entries] == [
        ("analyze", None, "parse_error"), ("analyze", None, "ok"), ("generate", "traditional", "ok"),
        ("generate", "neural", "ok"), ("debug", "traditional", "error")]
    assert index["model"] == "scripted" and [line["file"] for line in index["entries"]] == [f"000{n}.json" for n in range(1, 6)]
    first = json.loads((folder / "0001.json").read_text())
    assert first["raw"] == '{"target": "outcome", ' and first["answer"] is None and first["messages"][0] == {
        "role": "user", "content": "read"}
    assert json.loads((folder / "0002.json").read_text())["answer"]["target"] == "outcome"
    # the index is one line per request: a diff shows which changed
    assert len((folder / INDEX).read_text().splitlines()) == 1 + 5 + 1

    replay = Replay(folder)
    log = EventLog(tmp_path / "events.jsonl")
    replayed = asks(LLMClient(None, replay=replay), events=log)
    for was, now in zip(recorded[:3], replayed[:3]):
        assert now.value == was.value
        assert [(c.outcome, c.method, c.prompt_tokens, c.completion_tokens, c.model) for c in now.calls] == [
            (c.outcome, c.method, c.prompt_tokens, c.completion_tokens, c.model) for c in was.calls]
    assert isinstance(replayed[3], LLMError) and [c.outcome for c in replayed[3].calls] == ["error"]
    assert replay.unused() == []
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [e["replayed"] for e in events if e["event"] == "llm"] == [1, 2, 3, 4, 5]


def test_a_tool_call_answer_replays_through_the_same_parsing(tmp_path):
    folder = tmp_path / "rec"
    s = Script({"ModuleCode": ['{"features": "x = 1", "model": ', CODE]})
    was = recording_client(s, folder).ask(ModuleCode, [HumanMessage("write")], role="generate", track="t")
    assert [c.outcome for c in was.calls] == ["parse_error", "ok"]
    now = LLMClient(None, replay=Replay(folder)).ask(ModuleCode, [HumanMessage("write")], role="generate", track="t")
    assert [c.outcome for c in now.calls] == ["parse_error", "ok"] and now.value == was.value


def test_a_request_the_recording_lacks_falls_back_and_is_said_once_per_role(tmp_path):
    folder = tmp_path / "rec"
    recording_client(Script({"TaskReading": [READING]}), folder).ask(TaskReading, [HumanMessage("read")], role="analyze")
    log = EventLog(tmp_path / "events.jsonl")
    c = LLMClient(None, replay=Replay(folder))
    assert c.ask(TaskReading, [HumanMessage("read")], role="analyze", events=log).value.target == "outcome"
    for track in ("traditional", "neural", "traditional"):
        with pytest.raises(LLMReplayMissing) as info:
            c.ask(ModuleCode, [HumanMessage("write")], role="generate", track=track, events=log)
        assert info.value.calls == []  # no request was made
    with pytest.raises(LLMReplayMissing):
        c.ask(TaskReading, [HumanMessage("read again")], role="analyze", events=log)
    said = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    said = [e for e in said if e["event"] == "llm_replay_missing"]
    assert [(e["role"], e["track"]) for e in said] == [("generate", "traditional"), ("analyze", None)]
    assert "holds no answer for generate (track traditional)" in said[0]["why"] and "rules and recipes" in said[0]["why"]


def test_a_resumed_recording_drops_what_an_interrupted_step_asked_before(tmp_path):
    """A step killed after some requests runs again on resume as the same graph task: the
    earlier session's requests of that task never reached the run's state, so a replay must
    not see them. Other tasks' requests stay."""
    folder = tmp_path / "rec"
    first = Recorder(folder, model="m")
    c = LLMClient(ScriptedChatModel(script=Script({"ModuleCode": [CODE, '{"bad', CODE]})))
    for task, prompt in (("track:1|generate:a", "write"), ("track:1|debug:b", "repair")):
        first.add(c.ask(ModuleCode, [HumanMessage(prompt)], role="x").calls[-1], answer_schema="ModuleCode",
                  messages=[HumanMessage(prompt)], raw=None, value=None, task=task)
    second = Recorder(folder, model="m")  # the resumed session
    assert second.session == 2
    again = c.ask(ModuleCode, [HumanMessage("repair")], role="x")
    second.add(again.calls[-1], answer_schema="ModuleCode", messages=[HumanMessage("repair")], raw=None, value=None,
               task="track:1|debug:b")
    _, entries = read_recording(folder)
    assert [(e.n, e.task, e.session) for e in entries] == [(1, "track:1|generate:a", 1), (3, "track:1|debug:b", 2)]
    assert (folder / "dropped" / "0002.json").exists() and not (folder / "0002.json").exists()
    assert Recorder(folder, model="m")._next == 4  # numbers are never reused


def test_a_resumed_replay_gives_an_interrupted_step_its_answers_again(tmp_path):
    folder = tmp_path / "rec"
    c = recording_client(Script({"ModuleCode": [CODE, {**CODE, "notes": "second"}, {**CODE, "notes": "third"}]}), folder)
    for _ in range(3):
        c.ask(ModuleCode, [HumanMessage("write")], role="generate", track="t")
    log = tmp_path / "run" / "llm_replay.jsonl"
    log.parent.mkdir()
    first = Replay(folder, log=log)
    assert first.take("generate", "t", "task-a").n == 1  # a step that finished
    assert first.take("generate", "t", "task-b").n == 2  # the step a kill interrupted
    resumed = Replay(folder, log=log)
    assert resumed.take("generate", "t", "task-b").n == 2  # asked again: the same answer
    assert resumed.take("generate", "t", "task-c").n == 3  # the next step: the next answer
    assert resumed.take("generate", "t", "task-d") is None
    assert resumed.unused() == []


def test_a_broken_recording_is_one_line(tmp_path):
    folder = tmp_path / "rec"
    recording_client(Script({"TaskReading": [READING]}), folder).ask(TaskReading, [HumanMessage("read")], role="analyze")
    (folder / "0001.json").unlink()
    with pytest.raises(TaskInputError, match="0001.json is listed in .* but missing"):
        Replay(folder)
    with pytest.raises(TaskInputError, match="not an LLM recording"):
        Replay(tmp_path)
