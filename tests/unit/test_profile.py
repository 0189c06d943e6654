import numpy as np
import pandas as pd

from graph.context import Settings
from runtime.data_profile import column_kind, profile_data
from runtime.task_reader import read_task


def test_column_kinds():
    n = 200
    rng = np.random.RandomState(0)
    assert column_kind(pd.Series(rng.normal(size=n), name="x")) == "numeric"
    assert column_kind(pd.Series(rng.choice(["a", "b"], n), name="c")) == "categorical"
    assert column_kind(pd.Series(np.arange(n), name="user_id")) == "id"
    assert column_kind(pd.Series([7] * n, name="k")) == "constant"
    assert column_kind(pd.Series(pd.date_range("2020-01-01", periods=n).astype(str), name="d")) == "datetime"
    words = ["good", "bad", "plot", "actor", "film", "boring", "great", "scene"]
    text = [" ".join(rng.choice(words, 12)) for _ in range(n)]
    assert column_kind(pd.Series(text, name="review")) == "text"


def test_profile_of_a_task(make_task):
    task = read_task(make_task("binary"), Settings())
    prof = profile_data(task)
    kinds = {c.name: c.kind for c in prof.columns}
    assert kinds == {"alpha": "numeric", "beta": "numeric", "colour": "categorical", "grade": "categorical"}
    grade = next(c for c in prof.columns if c.name == "grade")
    assert 0.2 < grade.missing_share < 0.5 and grade.cardinality == 2
    assert sum(prof.target.class_counts.values()) == prof.n_train


def test_warnings_for_leakage_and_duplicates(make_task):
    folder = make_task("binary")
    train = pd.read_csv(folder / "train.csv")
    test = pd.read_csv(folder / "test.csv")
    train["leak"] = train.outcome.map({"yes": "Y", "no": "N"})
    test["leak"] = "Y"
    train = pd.concat([train, train.head(5)])
    train.to_csv(folder / "train.csv", index=False)
    test.to_csv(folder / "test.csv", index=False)
    warnings = profile_data(read_task(folder, Settings())).warnings
    assert any("leakage: 'leak'" in w for w in warnings)
    assert any("repeat another row" in w for w in warnings)


def test_the_stages_before_the_tracks_leave_sklearn_out_of_the_framework_s_process(make_task):
    """sklearn + scipy are ~70 MB of the framework's process: imported before a kernel computes,
    they add to the run's peak memory (the kernels hold their own copy). The first score in this
    process is the ensemble's, after the kernels have closed."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys\n"
        "from graph.builder import build_graph\n"
        "from graph.context import Settings\n"
        "from runtime.task_reader import read_task\n"
        "from runtime.data_profile import profile_data\n"
        "from nodes.blueprint import make_blueprint\n"
        "build_graph().compile()\n"
        "from pathlib import Path\n"
        f"task = read_task(Path({str(make_task('binary'))!r}), Settings())\n"
        "make_blueprint(task, profile_data(task), Settings(), 60.0, gpu=False)\n"
        "print(sorted(m for m in ('sklearn', 'scipy', 'lightgbm', 'torch') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
