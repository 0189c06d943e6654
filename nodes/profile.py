"""profile: pandas over the real data -> DataProfile (runtime/data_profile.py), written to
profile.json. No LLM; every prompt is grounded on it.

A large table (Settings.large_table_mb) is first converted once to the run folder's columnar
cache (runtime/columnar.py; a resumed run finds it there), then profiled from it: the kernels
read the same cache."""

from __future__ import annotations

from pathlib import Path

from langgraph.runtime import Runtime

from graph.context import RunContext
from graph.state import IMLState
from runtime.columnar import build_cache, takes_large_path
from runtime.data_profile import profile_data
from runtime.memory import release_memory


def profile(state: IMLState, runtime: Runtime[RunContext]) -> dict:
    task, settings, events = state["task"], runtime.context.settings, runtime.context.events
    if takes_large_path(task.model_dump(), settings.large_table_mb):
        manifest = build_cache(task.model_dump(), state["run_dir"])
        events.emit("cache", rows=manifest["rows"], columns=len(manifest["columns"]), seconds=manifest["seconds"],
                    read=manifest["read"], what=f"{task.train_file} ({Path(manifest['source']).stat().st_size / 2 ** 20:,.0f} MB) "
                    f"read once into the run's columnar cache: {manifest['rows']:,} rows, {len(manifest['columns'])} columns "
                    f"in compact dtypes, in {manifest['seconds']:.0f} s")
    result = profile_data(task, state["run_dir"], settings.profile_sample_rows)
    release_memory()  # the frames read for it: not carried by the framework's process through the tracks
    events.emit("profile", rows=result.n_train, columns=len(result.columns), warnings=result.warnings,
                sampled_rows=result.sampled_rows)
    Path(state["run_dir"], "profile.json").write_text(result.model_dump_json(indent=2))
    return {"profile": result}
