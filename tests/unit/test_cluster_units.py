"""The pieces of the Ray path that need no cluster: resources per track, which files travel
between the driver and an actor, the one-line errors, and the batch's bookkeeping."""

from __future__ import annotations

import json
import sys
import time

import pytest

from runtime.cluster import changed, connect, require_ray, snapshot, track_resources, write_files
from runtime.data import TaskInputError
from scripts.batch import BatchSpec, new_batch, read_state, task_command


def test_cpus_split_over_the_tracks_and_gpus_go_to_the_tracks_that_use_them():
    res = track_resources(["traditional", "pretrained", "neural"], {"CPU": 8.0, "GPU": 2.0})
    assert {t: r.num_cpus for t, r in res.items()} == {"traditional": 2.0, "pretrained": 2.0, "neural": 2.0}
    assert {t: r.num_gpus for t, r in res.items()} == {"traditional": 0.0, "pretrained": 1.0, "neural": 1.0}
    assert res["neural"].threads == 2


def test_fewer_gpus_than_gpu_tracks_are_shared_and_no_gpus_are_asked_for_when_there_are_none():
    shared = track_resources(["pretrained", "neural"], {"CPU": 4.0, "GPU": 1.0})
    assert shared["pretrained"].num_gpus == shared["neural"].num_gpus == 0.5
    none = track_resources(["pretrained", "neural"], {"CPU": 4.0})
    assert all(r.num_gpus == 0 for r in none.values())


def test_cpus_per_track_and_thread_caps_are_kept():
    res = track_resources(["traditional", "neural"], {"CPU": 16.0}, cpus_per_track=3, max_threads=2)
    assert res["traditional"].num_cpus == 3 and res["traditional"].threads == 2
    small = track_resources(["traditional", "pretrained", "neural"], {"CPU": 1.0})
    assert all(0 < r.num_cpus < 1 and r.threads == 1 for r in small.values())  # three tracks fit one CPU


def test_only_the_tracks_own_files_travel_and_only_what_changed(tmp_path):
    files = {"task.json": b"{}", "events.jsonl": b"x", "checkpoints.sqlite": b"db", "cache/encode_1.npy": b"big",
             "tracks/traditional/attempt_1/model.py": b"m", "tracks/neural/attempt_1/model.py": b"n"}
    write_files(tmp_path, files)
    before = snapshot(tmp_path, "traditional")
    assert set(before) == {"task.json", "tracks/traditional/attempt_1/model.py"}
    time.sleep(0.01)
    write_files(tmp_path, {"tracks/traditional/attempt_1/result.json": b"{}", "tracks/neural/attempt_1/oof.npy": b"o"})
    new, after = changed(tmp_path, before, "traditional")
    assert new == {"tracks/traditional/attempt_1/result.json": b"{}"}
    assert changed(tmp_path, after, "traditional")[0] == {}
    assert not list(tmp_path.rglob(".*.part"))  # written through a temporary name, none left


def test_without_ray_the_answer_is_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(TaskInputError, match=r"pip install -e '\.\[cluster\]'"):
        require_ray()


def test_an_address_nothing_answers_on_is_one_line_at_once():
    started = time.time()
    with pytest.raises(TaskInputError, match="nothing answers on 127.0.0.1:1"):
        connect("127.0.0.1:1")
    assert time.time() - started < 10  # ray.init alone retries such an address for minutes


def test_a_batch_names_its_runs_once_each_and_refuses_to_start_over(tmp_path):
    a, b = tmp_path / "x" / "task", tmp_path / "y" / "task"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    spec = new_batch([a, b], tmp_path / "batch", 60, parallel=2, ray_address=None, ray_cpus=None, run_args=["--seed", "3"])
    assert [t.name for t in spec.tasks] == ["task", "task-2"]
    assert BatchSpec.load(tmp_path / "batch").tasks[1].run_dir.endswith("runs/task-2")
    with pytest.raises(TaskInputError, match="--resume"):
        new_batch([a], tmp_path / "batch", 60, parallel=1, ray_address=None, ray_cpus=None, run_args=[])
    with pytest.raises(TaskInputError, match="not a folder"):
        new_batch([tmp_path / "nope"], tmp_path / "other", 60, parallel=1, ray_address=None, ray_cpus=None, run_args=[])
    cmd = task_command(spec, spec.tasks[0], "127.0.0.1:6379", 1.0)
    assert cmd[3] == "run" and cmd[-6:] == ["--seed", "3", "--ray", "127.0.0.1:6379", "--ray-cpus", "1.0"]


def test_a_task_is_done_only_when_its_run_finished_with_a_submission(tmp_path):
    spec = new_batch([tmp_path], tmp_path / "batch", 60, parallel=1, ray_address=None, ray_cpus=None, run_args=[])
    task = spec.tasks[0]
    assert read_state(task).status == "queued"
    run = tmp_path / "batch" / "runs" / task.name
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"used_s": 12.5, "sessions": [{"ended": "interrupted"}]}))
    assert read_state(task).status == "stopped"
    (run / "checkpoints.sqlite").write_bytes(b"")
    assert task_command(spec, task, None, None)[3] == "resume"  # a run with a checkpoint is resumed, not restarted
    (run / "run.json").write_text(json.dumps({"used_s": 30.0, "sessions": [{"ended": "interrupted"}, {"ended": "finished"}]}))
    (run / "submission.csv").write_text("id,y\n1,0\n")
    (run / "submission.json").write_text(json.dumps({"kind": "final", "score": 0.5}))
    (run / "task.json").write_text(json.dumps({"metric": "auc"}))
    state = read_state(task)
    assert (state.status, state.score, state.metric, state.seconds) == ("done", 0.5, "auc", 30.0)
