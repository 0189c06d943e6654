"""profile: pandas over the real data -> DataProfile (runtime/data_profile.py), written to
profile.json. No LLM; every prompt is grounded on it."""

from __future__ import annotations

from pathlib import Path

from langgraph.runtime import Runtime

from graph.context import RunContext
from graph.state import IMLState
from runtime.data_profile import profile_data


def profile(state: IMLState, runtime: Runtime[RunContext]) -> dict:
    task = state["task"]
    result = profile_data(task)
    runtime.context.events.emit("profile", rows=result.n_train, columns=len(result.columns), warnings=result.warnings)
    Path(state["run_dir"], "profile.json").write_text(result.model_dump_json(indent=2))
    return {"profile": result}
