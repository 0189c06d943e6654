import argparse

import pytest

from scripts.cli import parse_duration, shown_rows


@pytest.mark.parametrize("text, seconds", [("90", 90), ("60s", 60), ("10m", 600), ("1h", 3600), ("1h30m", 5400), ("1.5m", 90)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "ten minutes", "0", "-5m"])
def test_bad_durations_say_what_to_write(text):
    with pytest.raises(argparse.ArgumentTypeError):
        parse_duration(text)


def test_the_end_of_run_leaderboard_keeps_the_best_refine_rows():

    board = [{"entry": "traditional/attempt_1", "source": "recipe", "score": 0.80}]
    board += [{"entry": f"traditional/attempt_{i}", "source": "refine", "score": s}
              for i, s in enumerate([0.70, 0.90, 0.85, 0.60, 0.88, None], start=2)]
    board += [{"entry": "ensemble (single)", "source": "traditional", "score": 0.90}]
    rows, hidden = shown_rows(board, greater_is_better=True)
    assert [r["score"] for r in rows] == [0.80, 0.90, 0.85, 0.88, 0.90] and hidden == 3
    rows, _ = shown_rows(board, greater_is_better=False)
    assert [r["score"] for r in rows if r["source"] == "refine"] == [0.70, 0.85, 0.60]


def test_iml_run_can_start_its_kernel_before_the_heavy_imports():
    # `iml run` starts the first track's kernel as soon as it has its settings: what it imports
    # up to then is all the kernel's start can overlap, so pandas and LangGraph must not be in it
    import subprocess
    import sys
    from pathlib import Path

    probe = ("import sys, scripts.cli, graph.settings\n"
             "heavy = sorted(m for m in ('pandas', 'langgraph', 'sklearn', 'langchain_core') if m in sys.modules)\n"
             "print(','.join(heavy))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
