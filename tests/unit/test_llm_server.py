"""The real ChatOpenAI client over HTTP against a scripted OpenAI-compatible server on
127.0.0.1: each structured-output method, the fallback between them, parse retries, a 500
that is retried, and a slow answer that times out. Every case is bounded in requests and time."""

import time

import pytest
from langchain_core.messages import HumanMessage
from machine_speed import scaled
from stub_openai import Reply, Script, StubOpenAIServer

from graph.llm import LLMClient, LLMError, LLMSettings, ModuleCode, PlanProposal, TaskReading, build_chat_model

GOOD = {"target": "outcome", "id_column": "row_key", "metric": "auc", "task_type": "binary"}
# A slow answer's delay: far past the client's timeout, so that not waiting for it shows however busy
# the machine is. Nothing waits for it: the server answers from a daemon thread the test leaves behind.
SLOW_S = 60.0


def client(server: StubOpenAIServer, timeout_s: float = 10.0, max_retries: int = 2) -> LLMClient:
    settings = LLMSettings(model="stub-model", base_url=server.url, api_key="not-needed", timeout_s=timeout_s, max_retries=max_retries)
    return LLMClient(build_chat_model(settings), model_name=settings.model, base_url=settings.base_url)


def ask(c: LLMClient, schema=TaskReading):
    return c.ask(schema, [HumanMessage("Read the task.")], role="analyze", node="analyze")


def test_json_schema_answer_over_http_with_token_usage():
    with StubOpenAIServer(Script({"TaskReading": [GOOD]})) as server:
        answer = ask(client(server))
    assert answer.value.target == "outcome"
    [call] = answer.calls
    assert (call.outcome, call.method, call.model) == ("ok", "json_schema", "stub-model")
    assert call.prompt_tokens > 0 and call.completion_tokens > 0 and call.cost_usd is None
    [body] = server.requests
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["name"] == "TaskReading"
    assert body["model"] == "stub-model"


def test_a_server_without_json_schema_gets_tool_calls_and_the_client_remembers():
    with StubOpenAIServer(Script({"TaskReading": [GOOD, GOOD]}), reject=("json_schema",)) as server:
        c = client(server)
        first = ask(c)
        second = ask(c)
    assert [x.outcome for x in first.calls] == ["unsupported", "ok"]
    assert first.calls[1].method == "function_calling" and first.value.metric == "auc"
    assert [x.method for x in second.calls] == ["function_calling"]  # no second 400
    assert server.requests[1]["tools"][0]["function"]["name"] == "TaskReading"
    assert server.requests[1]["tool_choice"]["function"]["name"] == "TaskReading"


def test_a_server_with_json_mode_only_gets_the_schema_in_the_prompt():
    plan = {"tracks": [{"track": "traditional", "reason": "r", "model_family": "LightGBM", "time_share": 1.0}]}
    with StubOpenAIServer(Script({"PlanProposal": [plan]}), reject=("json_schema", "tools")) as server:
        answer = ask(client(server), PlanProposal)
    assert [x.outcome for x in answer.calls] == ["unsupported", "unsupported", "ok"]
    assert answer.calls[-1].method == "json_mode" and answer.value.tracks[0].track == "traditional"
    last = server.requests[-1]
    assert last["response_format"] == {"type": "json_object"}
    assert "PlanProposal" in last["messages"][-1]["content"] and '"time_share"' in last["messages"][-1]["content"]


def test_malformed_json_over_http_then_a_valid_answer():
    with StubOpenAIServer(Script({"TaskReading": ['{"target": "outcome", "metric": ', GOOD]})) as server:
        answer = ask(client(server))
    assert [x.outcome for x in answer.calls] == ["parse_error", "ok"]
    assert "could not be used" in server.requests[1]["messages"][-1]["content"]


def test_malformed_tool_call_arguments_then_valid_ones():
    with StubOpenAIServer(Script({"ModuleCode": ['{"features": "x = 1", "model": ', {"features": "x = 1", "model": "y = 2"}]}),
                          reject=("json_schema",)) as server:
        answer = ask(client(server), ModuleCode)
    assert [(x.method, x.outcome) for x in answer.calls] == [
        ("json_schema", "unsupported"), ("function_calling", "parse_error"), ("function_calling", "ok")]
    assert answer.value.model == "y = 2"


def test_a_500_is_retried_by_the_client_and_the_answer_arrives():
    with StubOpenAIServer(Script({"TaskReading": [Reply(status=500), GOOD]})) as server:
        started = time.time()
        answer = ask(client(server, max_retries=2))
    assert answer.value.target == "outcome" and [x.outcome for x in answer.calls] == ["ok"]
    assert server.hits["TaskReading"] == 2 and time.time() - started < 10


def test_a_server_that_keeps_failing_is_a_clear_http_error_after_the_retries():
    with StubOpenAIServer(Script({"TaskReading": [Reply(status=503)] * 5})) as server:
        with pytest.raises(LLMError, match="503") as err:
            ask(client(server, max_retries=1))
    assert [x.outcome for x in err.value.calls] == ["http_error"]
    assert server.hits["TaskReading"] == 2  # one request and one retry, no more


def test_a_slow_answer_times_out_and_the_retry_gets_the_answer():
    with StubOpenAIServer(Script({"TaskReading": [Reply(GOOD, delay_s=SLOW_S), GOOD]})) as server:
        # the retry's answer is prompt, but must come inside the timeout however busy the machine is
        timeout_s = scaled(1.0)
        started = time.time()
        answer = ask(client(server, timeout_s=timeout_s, max_retries=1))
    assert answer.value.target == "outcome" and server.hits["TaskReading"] == 2
    assert time.time() - started < SLOW_S  # did not wait for the slow answer


def test_an_answer_that_is_always_too_slow_is_a_timeout():
    with StubOpenAIServer(Script({"TaskReading": [Reply(GOOD, delay_s=SLOW_S)] * 3})) as server:
        started = time.time()
        with pytest.raises(LLMError) as err:
            ask(client(server, timeout_s=0.5, max_retries=0))
    assert [x.outcome for x in err.value.calls] == ["timeout"]
    assert time.time() - started < SLOW_S and server.hits["TaskReading"] == 1
