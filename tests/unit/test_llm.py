"""graph/llm.py without a network: settings, prices, fences, and the structured-answer client
driven by an in-process scripted chat model."""

import pytest
from langchain_core.messages import HumanMessage
from stub_openai import Reply, Script, ScriptedChatModel

from graph.context import RunContext
from graph.llm import (
    OFFLINE,
    LLMClient,
    LLMConfigError,
    LLMError,
    ModuleCode,
    TaskReading,
    client_for,
    code_from_answer,
    cost_usd,
    describe,
    extract_json,
    price_of,
    resolve_settings,
    strip_fences,
    usage_summary,
)

GOOD = {"target": "outcome", "id_column": "row_key", "metric": "auc", "task_type": "binary"}


def test_no_model_anywhere_is_offline():
    assert resolve_settings(env={}) is None
    assert describe(None) == OFFLINE == "offline (no LLM configured)"


def test_flags_beat_the_environment_and_the_key_is_never_shown():
    env = {"IML_MODEL": "env-model", "OPENAI_BASE_URL": "http://127.0.0.1:1/v1", "OPENAI_API_KEY": "sk-secret"}
    s = resolve_settings(env=env)
    assert (s.model, s.base_url, s.api_key) == ("env-model", "http://127.0.0.1:1/v1", "sk-secret")
    s = resolve_settings(model="flag-model", base_url="http://127.0.0.1:2/v1", env=env)
    assert (s.model, s.base_url) == ("flag-model", "http://127.0.0.1:2/v1")
    assert "sk-secret" not in repr(s) and "sk-secret" not in str(s.public())
    assert s.describe() == "model flag-model at http://127.0.0.1:2/v1"


def test_openai_without_a_key_is_a_one_line_error_but_a_local_server_needs_none():
    with pytest.raises(LLMConfigError, match="OPENAI_API_KEY"):
        resolve_settings(model="gpt-4o-mini", env={})
    s = resolve_settings(model="llama3", base_url="http://127.0.0.1:11434/v1", env={})
    assert s.api_key  # a placeholder the local server ignores


def test_prices_are_known_only_for_openai_models_on_openai():
    assert price_of("gpt-4o-mini") == (0.15, 0.60)
    assert price_of("gpt-4o") == (2.50, 10.00)
    assert price_of("gpt-4o-2024-08-06") == price_of("gpt-4o")
    assert price_of("llama3.1:8b") is None
    assert cost_usd("gpt-4o-mini", None, 1_000_000, 1_000_000) == pytest.approx(0.75)
    assert cost_usd("gpt-4o-mini", "http://127.0.0.1:8000/v1", 1000, 1000) is None
    assert cost_usd("my-model", None, 1000, 1000) is None


@pytest.mark.parametrize("text", [
    "```python\nimport numpy as np\nx = 1\n```",
    "```\nimport numpy as np\nx = 1\n```\n",
    "Here is the code:\n```python\nimport numpy as np\nx = 1\n```\nIt works.",
    "```python\nimport numpy as np\nx = 1\n",
    "import numpy as np\nx = 1\n",
])
def test_markdown_fences_are_stripped(text):
    assert strip_fences(text) == "import numpy as np\nx = 1\n"


def test_an_answer_s_modules_lose_their_fences_and_an_empty_one_keeps_the_previous_source():
    previous = {"features": "class Features: ...\n", "model": "class Model: ...\n"}
    answer = ModuleCode(features="```python\nclass Features: pass\n```", model="  \n", notes="fixed the encoder")
    code, notes = code_from_answer(answer, previous)
    assert code == {"features": "class Features: pass\n", "model": previous["model"]}
    assert notes == "fixed the encoder (kept the previous model.py: the answer had none)"


def test_json_is_salvaged_from_fences_and_prose_but_never_guessed():
    assert extract_json('```json\n{"a": 1}\n```') == {"a": 1}
    assert extract_json('Sure! {"a": {"b": 2}} Hope this helps.') == {"a": {"b": 2}}
    for bad in ("{not json", "no json here", '{"a": 1'):
        with pytest.raises(ValueError):
            extract_json(bad)


def ask(script: Script, schema=TaskReading, **client_kw):
    client = LLMClient(ScriptedChatModel(script=script), **client_kw)
    return client.ask(schema, [HumanMessage("read the task")], role="analyze", node="analyze")


def test_malformed_json_is_re_asked_with_the_parse_error():
    script = Script({"TaskReading": ['{"target": "outcome", ', GOOD]})
    answer = ask(script)
    assert answer.value.target == "outcome" and answer.value.metric == "auc"
    assert [c.outcome for c in answer.calls] == ["parse_error", "ok"]
    assert "cut off" in answer.calls[0].error
    # the second request carries the first one's error and answer
    second = script.prompts[1][1]
    assert "could not be used" in second and "cut off" in second and '{"target": "outcome",' in second


def test_json_that_breaks_the_schema_is_re_asked():
    script = Script({"ModuleCode": [{"features": "x = 1"}, {"features": "x = 1", "model": "y = 2"}]})
    answer = ask(script, ModuleCode)
    assert answer.value.model == "y = 2"
    assert answer.calls[0].outcome == "parse_error" and "model" in answer.calls[0].error


def test_fenced_json_in_plain_text_is_accepted():
    answer = ask(Script({"TaskReading": ['```json\n{"target": "outcome"}\n```']}))
    assert answer.value.target == "outcome" and [c.outcome for c in answer.calls] == ["ok"]


def test_an_answer_that_never_parses_ends_in_llm_error_after_a_bounded_number_of_requests():
    script = Script({"TaskReading": ["nonsense"] * 20})
    with pytest.raises(LLMError) as err:
        ask(script, max_calls=5)
    assert len(err.value.calls) == 5 and {c.outcome for c in err.value.calls} == {"parse_error"}
    assert len(script.asked) == 5


def test_a_failing_model_is_not_retried_by_the_client():
    script = Script({"TaskReading": [Reply(status=500), GOOD]})
    with pytest.raises(LLMError) as err:
        ask(script)
    assert [c.outcome for c in err.value.calls] == ["error"] and len(script.asked) == 1


def test_every_call_records_role_track_model_and_tokens():
    client = LLMClient(ScriptedChatModel(script=Script({"TaskReading": ["this is not json at all", GOOD]})))
    answer = client.ask(TaskReading, [HumanMessage("x" * 400)], role="generate", node="generate", track="traditional")
    for call in answer.calls:
        assert (call.role, call.node, call.track, call.model) == ("generate", "generate", "traditional", "scripted")
        assert call.prompt_tokens >= 100 and call.completion_tokens > 0 and call.cost_usd is None
    line = usage_summary(answer.calls)
    assert "2 request(s)" in line and "1 ok" in line and "1 parse_error" in line and "cost unknown" in line


def test_client_for_is_none_offline_and_one_client_per_chat_model():
    assert client_for(RunContext()) is None
    model = ScriptedChatModel(script=Script())
    ctx = RunContext(llm=model)
    assert client_for(ctx).client is client_for(ctx).client  # one client: it remembers the method that worked
    given = LLMClient(model)
    assert client_for(RunContext(llm=given)).client is given
    assert client_for(ctx).budget is ctx.llm_budget  # every ask carries the run's caps


def test_a_chat_model_without_structured_output_is_unsupported_for_every_method():
    from langchain_core.language_models import FakeListChatModel

    client = LLMClient(FakeListChatModel(responses=["hello"]))
    with pytest.raises(LLMError) as err:
        client.ask(TaskReading, [HumanMessage("x")], role="analyze")
    assert [(c.method, c.outcome) for c in err.value.calls] == [
        ("json_schema", "unsupported"), ("function_calling", "unsupported"), ("json_mode", "unsupported")]
