"""The run's report: report.md and a self-contained report.html (plots inline, opens offline).

Sections: the task as understood (with analyze's reasons), the data (profile highlights,
warnings, a model-free association of each column with the target), the blueprint and why,
the results (leaderboard with per-fold scores, failures, score per attempt, the ensemble and
its weights, out-of-fold predictions against the truth), where the time went, the LLM's
token use, the winning code, and the files of the run.

Both formats come from one list of blocks, built by one function per section and rendered by
two Jinja2 templates (templates/report.md.j2, report.html.j2), so they say the same thing.
Everything is read from the state and the run folder on the host: no kernel, no generated
code runs here. The state is a mapping of records (graph.state.IMLState), so the report sits
below the graph and anything (submit, a script) can write it.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
from markupsafe import Markup

from runtime.association import ASSOCIATION_BINS, feature_association, read_association
from runtime.blend import member_attempts
from runtime.metrics import get_metric
from runtime.records import DataProfile, TaskSpec, TrackResult
from runtime.verdict import JUDGED_SOURCES

MAX_COLUMNS_LISTED = 40
MAX_ASSOCIATION_FEATURES = 20
PLOTS_DIR = "report_files"


# -- a tiny document model, rendered to markdown and to HTML ------------------------------------


@dataclass
class Doc:
    """The report's content as blocks (dicts with a `kind`); templates/report.{md,html}.j2 render them."""

    blocks: list[dict[str, Any]] = field(default_factory=list)

    def h(self, level: int, text: str, anchor: str | None = None) -> None:
        self.blocks.append({"kind": "h", "level": level, "text": text, "anchor": anchor})

    def p(self, text: str) -> None:
        self.blocks.append({"kind": "p", "text": text})

    def ul(self, items: list[str]) -> None:
        if items:
            self.blocks.append({"kind": "ul", "entries": list(items)})

    def table(self, headers: list[str], rows: list[list[Any]], align: str | None = None) -> None:
        self.blocks.append({"kind": "table", "headers": headers, "rows": [[_cell(v) for v in r] for r in rows],
                            "align": align or "l" * len(headers)})

    def code(self, text: str, lang: str = "python", title: str | None = None) -> None:
        self.blocks.append({"kind": "code", "text": text, "lang": lang, "title": title})

    def image(self, name: str, png: bytes, caption: str) -> None:
        self.blocks.append({"kind": "img", "name": name, "png": png, "caption": caption})


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text()) if path.exists() else {}
    except (OSError, json.JSONDecodeError):
        return {}


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.5g}"
    return str(value)


def _inline_html(text: str) -> Markup:
    """The markdown the report's text uses (`code`, **bold**), as HTML; everything else escaped."""
    out = html.escape(str(text), quote=False)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)
    return Markup(out)


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _alt(caption: str) -> str:
    return re.split(r"[(:]", caption, maxsplit=1)[0].strip()


@lru_cache(maxsize=2)
def _templates(autoescape: bool) -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
                             autoescape=autoescape, keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    env.filters.update(md_cell=_md_cell, inline=_inline_html, alt=_alt, trim_end=lambda t: str(t).rstrip(),
                       b64=lambda png: base64.b64encode(png).decode())
    return env


def to_markdown(doc: Doc) -> str:
    return _templates(False).get_template("report.md.j2").render(doc=doc, plots_dir=PLOTS_DIR)


CSS = """
body{font:15px/1.5 -apple-system,Segoe UI,Helvetica,Arial,sans-serif;color:#1d2330;max-width:1100px;margin:0 auto;padding:24px 32px 64px;background:#fff}
h1{font-size:26px;margin:0 0 4px}h2{font-size:20px;margin:36px 0 10px;padding-bottom:4px;border-bottom:1px solid #dde2ea}
h3{font-size:16px;margin:22px 0 6px}p{margin:8px 0}ul{margin:6px 0 10px;padding-left:22px}li{margin:2px 0}
code{font:13px/1.4 SFMono-Regular,Menlo,Consolas,monospace;background:#f2f4f8;padding:1px 4px;border-radius:3px}
pre{background:#f6f8fb;border:1px solid #e3e7ee;border-radius:6px;padding:10px 12px;overflow-x:auto;font:12.5px/1.45 SFMono-Regular,Menlo,Consolas,monospace}
pre code{background:none;padding:0}
table{border-collapse:collapse;margin:8px 0 14px;font-size:13.5px}th,td{border-bottom:1px solid #e6e9ef;padding:4px 10px;text-align:left;vertical-align:top}
th{background:#f4f6fa;font-weight:600}td.r,th.r{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:12px 0 18px}figure img{max-width:100%;border:1px solid #e3e7ee;border-radius:6px}figcaption{color:#5b6472;font-size:13px}
nav{background:#f6f8fb;border:1px solid #e3e7ee;border-radius:6px;padding:8px 14px;margin:14px 0}nav a{margin-right:14px;color:#2856b6;text-decoration:none}
details{margin:6px 0 12px}summary{cursor:pointer;color:#2856b6}
.lead{font-size:16px;color:#2c3442}.muted{color:#5b6472}
"""


def to_html(doc: Doc, title: str) -> str:
    return _templates(True).get_template("report.html.j2").render(doc=doc, title=title, css=Markup(CSS)) + "\n"


# -- reading the run ------------------------------------------------------------------------------


def read_events(run_dir: Path) -> list[dict]:
    path = run_dir / "events.jsonl"
    if not path.exists():
        return []
    events = []
    for line in path.read_text().splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut short by a crash
    return events


def run_times(events: list[dict]) -> list[tuple[dict, float]]:
    """Each event with its time on the run's clock: seconds used since the run began, across
    sessions (downtime between a crash and its resume is not counted)."""
    out, base, offset = [], None, 0.0
    for e in events:
        t = float(e.get("t", 0.0))
        if e.get("event") == "session":
            base, offset = t, float(e.get("used_before_s", 0.0))
        if base is None:
            base = t
        out.append((e, offset + t - base))
    return out


def stage_times(events: list[dict]) -> list[tuple[str, float]]:
    """(stage, seconds) from the events that end each stage, in order."""
    ends = {"task": "analyze", "profile": "profile", "blueprint": "blueprint", "track": "tracks", "ensemble": "ensemble",
            "submit": "submit"}
    marks: dict[str, float] = {}
    for e, at in run_times(events):
        kind = e.get("event", "")
        stage = ends.get(kind) or ("refine" if kind.startswith("refine") else None)
        if stage:
            marks[stage] = at  # the last event of a stage ends it
    order = ["analyze", "profile", "blueprint", "tracks", "refine", "ensemble", "submit"]
    out, previous = [], 0.0
    for stage in order:
        if stage in marks:
            out.append((stage, max(0.0, marks[stage] - previous)))
            previous = max(previous, marks[stage])
    return out


def _minutes(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{int(seconds // 60)} min {seconds % 60:02.0f} s"


# -- plots ----------------------------------------------------------------------------------------


def _figure_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.spines.top": False, "axes.spines.right": False})
    return plt


def plot_oof(task: TaskSpec, y: np.ndarray, oof: np.ndarray) -> tuple[bytes, str]:
    plt = _pyplot()
    if task.task_type == "regression":
        fig, ax = plt.subplots(figsize=(5.2, 4.6))
        n = len(y)
        idx = np.random.RandomState(0).choice(n, min(n, 5000), replace=False)
        ax.scatter(y[idx], oof[idx], s=8, alpha=0.45, color="#2f6fdb", edgecolors="none")
        lo, hi = float(min(y.min(), oof.min())), float(max(y.max(), oof.max()))
        ax.plot([lo, hi], [lo, hi], color="#d04a3a", lw=1, label="perfect prediction")
        ax.set_xlabel(f"actual {task.target}")
        ax.set_ylabel(f"predicted {task.target} (out of fold)")
        ax.legend(loc="upper left", frameon=False)
        caption = (f"Out-of-fold predictions against the truth ({len(idx)} of {n} training rows): every point was "
                   "predicted by a model that never saw it.")
        return _figure_png(fig), caption
    k = len(task.classes)
    pred = oof.argmax(axis=1) if oof.ndim == 2 else (oof >= 0.5).astype(int)
    matrix = np.zeros((k, k), dtype=int)
    np.add.at(matrix, (y.astype(int), pred.astype(int)), 1)
    share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = min(9.0, 2.2 + 0.55 * k)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    labels = [c if len(c) <= 14 else c[:13] + "…" for c in task.classes]
    ax.set_xticks(range(k), labels, rotation=45 if k > 4 else 0, ha="right" if k > 4 else "center")
    ax.set_yticks(range(k), labels)
    ax.set_xlabel("predicted class (out of fold)")
    ax.set_ylabel("true class")
    if k <= 15:
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if share[i, j] > 0.6 else "#1d2330")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    rule = "the most probable class" if oof.ndim == 2 else "probability ≥ 0.5"
    caption = (f"Confusion matrix of the out-of-fold predictions ({rule}); counts in the cells, "
               "colour = share of each true class.")
    return _figure_png(fig), caption


def plot_attempts(tracks: dict[str, TrackResult], task: TaskSpec) -> tuple[bytes, str] | None:
    rows = [(name, a) for name, t in tracks.items() for a in t.attempts]
    if not rows:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.0, 3.6))
    colours = ["#2f6fdb", "#e07b28", "#2a9d6f", "#9b59b6", "#c0392b"]
    at_bottom = ax.get_xaxis_transform()  # x in data, y as a fraction of the axes: failures have no score
    for i, (name, t) in enumerate(tracks.items()):
        colour = colours[i % len(colours)]
        xs = [a.attempt for a in t.attempts if a.score is not None]
        ys = [a.score for a in t.attempts if a.score is not None]
        ax.plot(xs, ys, "o-", color=colour, label=name, ms=7, lw=1.5)
        if t.best_attempt is not None and t.score is not None:
            ax.scatter([t.best_attempt], [t.score], s=220, facecolors="none", edgecolors=colour, linewidths=1.6, zorder=3)
        for a in t.attempts:
            folds = [s for s in a.fold_scores if not math.isnan(s)]
            if folds:
                ax.scatter([a.attempt + 0.08] * len(folds), folds, s=10, color=colour, alpha=0.35, zorder=1)
            if a.score is None:
                ax.scatter([a.attempt], [0.04], marker="x", s=50, color="#c0392b", zorder=3, transform=at_bottom,
                           clip_on=False)
                ax.annotate(f"{a.status} (no score)", (a.attempt, 0.04), xycoords=at_bottom, textcoords="offset points",
                            xytext=(7, -3), fontsize=7, color="#c0392b")
    ax.set_xlabel("attempt")
    ax.set_ylabel(f"{task.metric} ({'higher' if task.greater_is_better else 'lower'} is better)")
    last = max(a.attempt for _, a in rows)
    ax.set_xlim(0.5, last + 0.5)
    ax.set_xticks(range(1, last + 1))
    ax.legend(frameon=False, fontsize=8, loc="best")
    caption = ("Score of each attempt per track (large dots: out-of-fold score, ringed where it is the track's best; "
               "faint dots: the single folds; red crosses: attempts that failed, with their status).")
    return _figure_png(fig), caption


THUMBNAILS = 12


def image_summary(column) -> str:
    s = column.images
    sizes = (f"sizes {s.width['min']}..{s.width['max']} x {s.height['min']}..{s.height['max']} px (median "
             f"{s.width['median']} x {s.height['median']})" if s.width else "sizes unknown")
    modes = ", ".join(f"{k} {v}" for k, v in s.modes.items()) or "none"
    formats = ", ".join(f"{k} {v}" for k, v in s.formats.items()) or "none"
    return (f"{s.count:,} files, {s.missing:,} missing; of {s.sampled} sampled, {s.unreadable} do not decode; {sizes}; "
            f"modes: {modes}; formats: {formats}. A missing or broken file is a black image for the models.")


def plot_thumbnails(task: TaskSpec, column: str) -> tuple[bytes, str] | None:
    """A few training images with their labels: one of each class first, then the next rows."""
    from runtime.data import labelled, read_train
    from runtime.images import load_images

    train = labelled(read_train(task.model_dump()), task.target_columns)
    if train.empty:
        return None
    label = train[task.target].astype(str) if not task.targets else train[task.target_columns].astype(str).agg("/".join, axis=1)
    first = list(dict.fromkeys(label.drop_duplicates().index[:THUMBNAILS]))
    rest = [i for i in train.index if i not in set(first)]
    rows = (first + rest)[:THUMBNAILS]
    pixels = load_images(train.loc[rows, column], 96)
    plt = _pyplot()
    cols = min(6, len(rows))
    fig, axes = plt.subplots((len(rows) + cols - 1) // cols, cols, figsize=(1.6 * cols, 1.9 * ((len(rows) + cols - 1) // cols)),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, i in zip(axes.flat, pixels, rows):
        ax.imshow(image)
        ax.set_title(label[i][:18], fontsize=8)
    caption = f"{len(rows)} training images of `{column}` with their {task.target} (one of each class first)"
    return _figure_png(fig), caption


def plot_association(ranked: list[tuple[str, str, float]]) -> tuple[bytes, str]:
    plt = _pyplot()
    top = ranked[:MAX_ASSOCIATION_FEATURES][::-1]
    fig, ax = plt.subplots(figsize=(6.4, 0.8 + 0.28 * len(top)))
    colours = {"numeric": "#2f6fdb", "categorical": "#e07b28", "text": "#2a9d6f", "datetime": "#9b59b6"}
    ax.barh([n if len(n) <= 28 else n[:27] + "…" for n, _, _ in top], [v for _, _, v in top],
            color=[colours.get(k, "#888") for _, k, _ in top])
    ax.set_xlabel("mutual information with the target (nats)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for k, c in colours.items() if any(kk == k for _, kk, _ in top)]
    ax.legend(handles, [k for k in colours if any(kk == k for _, kk, _ in top)], frameon=False, fontsize=8, loc="lower right")
    shown = f"the {len(top)} strongest of {len(ranked)} columns" if len(ranked) > len(top) else f"all {len(ranked)} columns"
    caption = (f"How much each column tells about the target on its own ({shown}): mutual information on the "
               f"training data (numbers in up to {ASSOCIATION_BINS} quantile bins), a model-free measure. It is not "
               "the model's own importance: a column can matter more in combination with others, and text "
               "columns are measured by their length only.")
    return _figure_png(fig), caption


# -- the report -----------------------------------------------------------------------------------


def section_summary(r: ReportRun) -> None:
    """The title and the summary: what was asked, the score, the submission, time and LLM."""
    doc, task, ensemble, metric, direction, clock, budget, used_s, usage, run_dir, state = (
        r.doc, r.task, r.ensemble, r.metric, r.direction,
        r.clock, r.budget, r.used_s, r.usage, r.run_dir, r.state)
    task_name = Path(task.task_dir).name
    doc.h(1, f"iML report: {task_name}")
    sub = state.get("submission_path")
    score = ensemble.score if ensemble is not None else float("nan")
    parts = [f"A **{task.task_type}** task: predict `{', '.join(task.target_columns)}`, scored by **{metric.name}** ({direction})."]
    if ensemble is not None and ensemble.kind != "baseline":
        parts.append(f"Best out-of-fold {metric.name}: **{_cell(score)}** ({ensemble.kind}: {ensemble.reason}).")
    elif ensemble is not None:
        parts.append(f"No track produced a score; the submission is a constant baseline ({ensemble.reason}).")
    if sub:
        n_rows = sum(1 for _ in open(sub)) - 1 if Path(sub).exists() else 0
        parts.append(f"Submission: `{Path(sub).name}`, {n_rows} rows, validated against the task's format.")
    time_text = f"Time used: {_minutes(used_s)}" + (f" of a {_minutes(float(budget))} budget" if budget else "")
    sessions = clock.get("sessions", [])
    if len(sessions) > 1:
        time_text += f", over {len(sessions)} sessions (the run was resumed {len(sessions) - 1} time(s))"
    parts.append(time_text + ".")
    parts.append("LLM: " + (f"{usage[0].model}, {len(usage)} request(s)." if usage else "none; an offline run (rules and recipes)."))
    doc.p(" ".join(parts))
    doc.p(f"Run folder: `{run_dir}`. Reproduce the submission without iML: `python solution.py TASK_DIR OUT.csv`.")


def section_task(r: ReportRun) -> None:
    """1. The task as understood, with analyze's reasons."""
    doc, task, metric, direction = r.doc, r.task, r.metric, r.direction
    doc.h(2, "1. The task as understood", "task")
    rows = [["task type", task.task_type], ["target", ", ".join(f"`{c}`" for c in task.target_columns)], ["id column", f"`{task.id_column}`" if task.id_column else "none (rows in order)"],
            ["metric", f"{metric.name}: {metric.description} ({direction})"],
            ["submission", {"label": "class labels" if task.task_type != "regression" else "values", "proba": "the positive class's probability",
                            "proba_cols": "one probability column per class"}[task.submission_format] + f"; columns {', '.join(task.submission_columns)}"]]
    if task.classes:
        shown = ", ".join(task.classes[:12]) + (f", … ({len(task.classes)} in all)" if len(task.classes) > 12 else "")
        rows.append(["classes", shown + (" (positive: " + task.classes[-1] + ")" if task.task_type == "binary" else "")])
    files = [f for f in (task.train_file, task.test_file, task.sample_submission_file) if f]
    if task.images:
        files.append(f"images {task.images.train_pattern} / {task.images.test_pattern}"
                     + (f" (labels from the {task.images.labels_from.replace('_', ' ')}s)" if task.images.labels_from != "table" else ""))
    rows.append(["files", ", ".join(files)])
    doc.table(["", ""], rows)
    doc.p("How each decision was made:")
    doc.ul([r.replace(": ", " — ", 1) for r in task.reasons])


def section_data(r: ReportRun) -> None:
    """2. The data: profile highlights, warnings, columns, images, the association with the target."""
    doc, problems, task, profile, add_plot = r.doc, r.problems, r.task, r.profile, r.add_plot
    if profile is not None:
        doc.h(2, "2. The data", "data")
        kinds: dict[str, int] = {}
        for c in profile.columns:
            kinds[c.kind] = kinds.get(c.kind, 0) + 1
        doc.p(f"{profile.n_train:,} training rows and {profile.n_test:,} test rows; {len(profile.columns)} feature columns: "
              + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items(), key=lambda kv: -kv[1])) + ".")
        t = profile.target
        if t.kind == "classes":
            total = sum(t.class_counts.values()) or 1
            doc.p("Target classes: " + ", ".join(f"`{k}` {v:,} ({v / total:.0%})" for k, v in list(t.class_counts.items())[:15]) + ".")
        else:
            doc.p(f"Target: mean {_cell(t.mean)}, std {_cell(t.std)}, range {_cell(t.min)} to {_cell(t.max)}, skew {_cell(t.skew)}.")
        doc.h(3, "Warnings")
        if profile.warnings:
            doc.ul(profile.warnings)
        else:
            doc.p("None: no leakage, drift, duplicate or mostly-missing columns were found.")
        doc.h(3, "Columns")
        listed = profile.columns[:MAX_COLUMNS_LISTED]
        doc.table(["column", "kind", "type", "missing", "distinct", "examples"],
                  [[f"`{c.name}`", c.kind, c.dtype, f"{c.missing_share:.1%}", f"{c.cardinality:,}", ", ".join(e[:24] for e in c.examples[:3])]
                   for c in listed], align="lllrrl")
        if len(profile.columns) > len(listed):
            doc.p(f"… and {len(profile.columns) - len(listed)} more columns (profile.json has them all).")
        for c in profile.columns:
            if c.kind == "image" and c.images is not None:
                doc.h(3, f"Images: `{c.name}`")
                doc.p(image_summary(c))
                add_plot(f"images_{c.name}.png", lambda c=c: plot_thumbnails(task, c.name))
        ranked = read_association(r.run_dir) or []  # computed by the run's last kernel
        try:
            ranked = ranked or feature_association(task, profile, r.run_dir)
        except Exception as e:
            problems.append(f"feature association: {type(e).__name__}: {e}")
        if ranked:
            add_plot("association.png", lambda: plot_association(ranked))


def section_blueprint(r: ReportRun) -> None:
    """3. The blueprint: the validation scheme, each track's plan and why, the tracks not run."""
    doc, blueprint = r.doc, r.blueprint
    if blueprint is not None:
        doc.h(2, "3. The blueprint", "blueprint")
        v = blueprint.validation
        scheme = {"kfold": "k-fold", "stratified": "stratified k-fold", "group": f"group k-fold on `{v.group_column}`",
                  "time": f"time-ordered blocks on `{v.time_column}`"}[v.kind]
        cuts = f", cut {v.repeats} times (each row predicted once per cut, scored on the average)" if v.repeats > 1 else ""
        doc.p(f"Validation: {v.n_folds} folds, {scheme}, seed {v.seed}{cuts}. The harness owns the folds: every track is scored "
              "on the same ones, out of fold, and generated code never sees a validation label.")
        doc.p(f"Budget at planning time: {_minutes(blueprint.budget_s)}.")
        if blueprint.data is not None:
            data = blueprint.data
            doc.h(3, "A large table: the rows")
            doc.p(f"{data.summary()}. The kernels read the run's columnar cache (`cache/train.parquet`), the rows a seeded "
                  f"sample (seed {data.seed}) when fewer than all.")
            doc.ul(data.reasons[1:] + ([f"measured: {', '.join(f'{r:,}' for r in data.measured.rows)} rows fitted in "
                                        f"{', '.join(f'{s:.1f} s' for s in data.measured.fit_s)} ({', '.join(map(str, data.measured.trees))} "
                                        "rounds)"] if data.measured else []))
        if blueprint.bagging is not None or blueprint.stack:
            b = blueprint.bagging
            doc.p("A long budget: " + (f"refine's search stops with up to {_minutes(b.reserve_s)} left for the bags (the best "
                                       f"attempt of each of the {b.families} best model families fitted again with its folds "
                                       f"cut {b.cuts} times, a seed per cut, every fold model averaged for the test rows; "
                                       "each kept only when it beats the attempt it bags beyond fold noise)"
                                       if b is not None else "no bags")
                  + ("; the ensemble weighs a stacker over every model family's out-of-fold predictions, scored on its "
                     "own inner folds" if blueprint.stack else "") + ".")
        for plan in blueprint.tracks:
            doc.h(3, f"Track {plan.track}: {plan.model_family}")
            doc.p(f"Why: {plan.reason}. Time share: {plan.time_share:.0%}.")
            doc.ul(plan.feature_steps)
            if plan.params:
                doc.p("Parameters: " + ", ".join(f"`{k}={v}`" for k, v in plan.params.items()))
        if blueprint.skipped:
            doc.h(3, "Tracks not run")
            doc.ul([f"{name}: {why}" for name, why in blueprint.skipped.items()])


def section_results(r: ReportRun) -> None:
    """4. Results: every attempt, what failed, the ensemble and its out-of-fold predictions."""
    doc, task, tracks, ensemble, metric, direction, run_dir, add_plot = (
        r.doc, r.task, r.tracks, r.ensemble,
        r.metric, r.direction, r.run_dir, r.add_plot)
    doc.h(2, "4. Results", "results")
    board = []
    for name, t in tracks.items():
        for a in t.attempts:
            folds = [s for s in a.fold_scores if not math.isnan(s)]
            status = a.status + ((" (kept)" if a.kept else " (not kept)") if a.source in JUDGED_SOURCES and a.status == "ok" else "")
            board.append([f"{name}/attempt_{a.attempt}" + (" ★" if a.attempt == t.best_attempt else ""), a.source, status,
                          a.score, " ".join(f"{s:.4g}" for s in a.fold_scores) or "-",
                          float(np.std(folds)) if folds else None, f"{a.duration_s:.1f}",
                          f"{a.peak_memory_mb:.0f}" if a.peak_memory_mb else "-"])
    if board:
        doc.p(f"Every attempt, scored by the harness on the out-of-fold predictions ({metric.name}, {direction}); "
              "★ marks each track's best. A refine candidate or a bag (the folds cut several times) is kept only "
              "when it beats what it came from beyond fold noise.")
        doc.table(["attempt", "source", "status", "score", "per-fold scores", "fold std", "seconds", "peak MB"], board,
                  align="lllrlrrr")
    else:
        doc.p("No attempt ran.")
    failures = [f"{name}/attempt_{a.attempt} ({a.status}): {(a.error or '').strip().splitlines()[0][:300] if a.error else 'no message'}"
                for name, t in tracks.items() for a in t.attempts if a.status != "ok"]
    failed_tracks = [f"{name}: {t.reason[:300]}" for name, t in tracks.items() if t.status != "ok"]
    if failures or failed_tracks:
        doc.h(3, "What failed")
        doc.ul(failures + [f"track {x}" for x in failed_tracks])
    add_plot("attempts.png", lambda: plot_attempts(tracks, task))

    if ensemble is not None:
        doc.h(3, "Ensemble")
        if ensemble.weights:
            doc.p(f"{ensemble.kind.capitalize()}: {ensemble.reason}. Out-of-fold {metric.name}: **{_cell(ensemble.score)}**.")
            if ensemble.stacker is not None:
                doc.p(f"The stacker: {ensemble.stacker['link'].replace('identity', 'values')} space, bias "
                      + ", ".join(f"{b:.4g}" for b in ensemble.stacker["bias"]) + "; the weights below are its own, and "
                      "their shares of their sum.")
                doc.table(["member", "stacker weight", "share"],
                          [[n, f"{ensemble.stacker['weights'][n]:.4g}", f"{w:.4g}"] for n, w in ensemble.weights.items()],
                          align="lrr")
            else:
                doc.table(["member", "weight"], [[n, f"{w:.4g}"] for n, w in ensemble.weights.items()], align="lr")
        else:
            doc.p(ensemble.reason)
        if ensemble.candidates:
            doc.p("Weighed against the best single result, each kept only beyond fold noise:")
            doc.table(["candidate", metric.name, "kept"],
                      [[c["entry"], c["score"], "yes" if c["kept"] else "no"] for c in ensemble.candidates], align="lrl")
        y_path, oof_path = run_dir / "y.npy", Path(ensemble.oof_path) if ensemble.oof_path else None
        if oof_path is not None and oof_path.exists() and y_path.exists() and task.task_type not in ("multilabel", "multitarget"):
            add_plot("oof.png", lambda: plot_oof(task, np.load(y_path), np.load(oof_path)))


def section_time(r: ReportRun) -> None:
    """5. Where the time went: stages, attempts, sessions."""
    doc, tracks, events, sessions = r.doc, r.tracks, r.events, r.sessions
    doc.h(2, "5. Time", "time")
    stages = stage_times(events)
    if stages:
        total = sum(s for _, s in stages) or 1.0
        doc.table(["stage", "seconds", "share"], [[s, f"{v:.1f}", f"{v / total:.0%}"] for s, v in stages], align="lrr")
    attempts_time = [[f"{n}/attempt_{a.attempt}", f"{a.duration_s:.1f}"] for n, t in tracks.items() for a in t.attempts if a.duration_s]
    if attempts_time:
        doc.p("Cross-validation time of each attempt (inside the track's kernel): "
              + ", ".join(f"{e} {s} s" for e, s in attempts_time) + ".")
    if len(sessions) > 1:
        doc.p("Sessions (a run killed and resumed continues from its last finished step):")
        doc.table(["session", "started", "seconds", "budget left at start", "ended"],
                  [[s.get("kind"), time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(s.get("started", 0))), s.get("seconds"),
                    s.get("budget_left_s"), s.get("ended") or "killed"] for s in sessions], align="llrrl")


def section_llm(r: ReportRun) -> None:
    """6. LLM use: requests, tokens and cost by role, the cap."""
    doc, usage, run_dir = r.doc, r.usage, r.run_dir
    doc.h(2, "6. LLM use", "llm")
    if not usage:
        doc.p("No LLM was configured: rules read the task, the blueprint came from rules, and the code from the "
              "tracks' recipes. No tokens were used.")
    else:
        by_role: dict[str, list] = {}
        for call in usage:
            by_role.setdefault(call.role, []).append(call)
        rows = []
        for role, calls in by_role.items():
            costs = [c.cost_usd for c in calls]
            rows.append([role, len(calls), f"{sum(c.prompt_tokens for c in calls):,}", f"{sum(c.completion_tokens for c in calls):,}",
                         "unknown" if any(c is None for c in costs) else f"${sum(costs):.4f}", f"{sum(c.seconds for c in calls):.1f}",
                         ", ".join(sorted({c.outcome for c in calls}))])
        costs = [c.cost_usd for c in usage]
        rows.append(["**all**", len(usage), f"{sum(c.prompt_tokens for c in usage):,}", f"{sum(c.completion_tokens for c in usage):,}",
                     "unknown" if any(c is None for c in costs) else f"${sum(costs):.4f}", f"{sum(c.seconds for c in usage):.1f}", ""])
        doc.p(f"Model: `{usage[0].model}`.")
        doc.table(["role", "requests", "prompt tokens", "completion tokens", "cost", "seconds", "outcomes"], rows, align="lrrrrrl")
    budget = _read_json(run_dir / "llm.json").get("budget") or {}
    if budget.get("max_cost_usd") is not None or budget.get("max_tokens") is not None:
        caps = " and ".join(c for c in (f"${budget['max_cost_usd']:g}" if budget.get("max_cost_usd") is not None else "",
                                        f"{budget['max_tokens']:,} tokens" if budget.get("max_tokens") is not None else "") if c)
        doc.p(f"LLM cap: {caps}; spent ${budget.get('cost_usd', 0):.4f} and {budget.get('tokens', 0):,} tokens. "
              + ("**The cap was reached: from then on no request was made and the run went on offline** (rules and "
                 "recipes in the LLM's roles)." if budget.get("reached") else "The cap was not reached."))


def section_code(r: ReportRun) -> None:
    """7. The winning code: each ensemble member's modules."""
    doc, problems, tracks, ensemble, run_dir = r.doc, r.problems, r.tracks, r.ensemble, r.run_dir
    doc.h(2, "7. The winning code", "code")
    members = {}
    if ensemble is not None and ensemble.kind != "baseline":
        try:
            members = member_attempts(tracks, ensemble)
        except ValueError as e:
            problems.append(f"winning code: {e}")
    if members:
        doc.p("The modules of each ensemble member, as the harness executed them. `solution.py` holds the same code "
              "with the folds and the blend, and runs without iML.")
        for name, attempt in members.items():
            folder = Path(attempt.dir)
            weight = ensemble.weights.get(name)
            doc.h(3, f"{name}: attempt {attempt.attempt} ({attempt.source}), weight {weight:.4g}, score {_cell(attempt.score)}")
            for module in ("features", "model"):
                path = folder / f"{module}.py"
                if path.exists():
                    doc.code(path.read_text(), title=f"{folder.relative_to(run_dir) if folder.is_relative_to(run_dir) else folder}/{module}.py")
    else:
        doc.p("No member to show: the submission is a constant baseline.")


def section_files(r: ReportRun) -> None:
    """8. The files of the run, and the notes on this report."""
    doc, problems, run_dir = r.doc, r.problems, r.run_dir
    doc.h(2, "8. Files of the run", "files")
    doc.table(["file", "what it holds"], [[f"`{name}`", what] for name, what in FILES if (run_dir / name.split("/")[0]).exists()])
    if problems:
        doc.h(3, "Notes on this report")
        doc.ul(problems)


@dataclass
class ReportRun:
    """What every section reads, gathered once from the state and the run folder; the sections
    add their blocks to `doc`, their plots to `plots` and what went wrong to `problems`."""

    state: Mapping[str, Any]
    run_dir: Path
    used_s: float
    doc: Doc = field(default_factory=Doc)
    plots: dict[str, bytes] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        state, run_dir = self.state, self.run_dir
        self.task: TaskSpec = state["task"]
        self.profile: DataProfile | None = state.get("profile")
        self.blueprint = state.get("blueprint")
        self.tracks: dict[str, TrackResult] = state.get("tracks", {}) or {}
        self.ensemble = state.get("ensemble")
        self.metric = get_metric(self.task.metric)
        self.direction = "higher is better" if self.metric.greater_is_better else "lower is better"
        self.events = read_events(run_dir)
        self.clock = _read_json(run_dir / "run.json")
        self.settings = _read_json(run_dir / "settings.json")
        self.budget = self.clock.get("time_budget_s") or self.settings.get("time_budget_s")
        self.sessions = self.clock.get("sessions", [])
        self.usage = state.get("llm_usage") or []

    def add_plot(self, name: str, make) -> None:
        try:
            made = make()
        except Exception as e:  # a plot must never cost the report
            self.problems.append(f"plot {name}: {type(e).__name__}: {e}")
            return
        if made is not None:
            png, caption = made
            self.plots[name] = png
            self.doc.image(name, png, caption)


SECTIONS = (section_summary, section_task, section_data, section_blueprint, section_results, section_time, section_llm,
            section_code, section_files)


def build_report(state: Mapping[str, Any], run_dir: Path, used_s: float | None = None) -> tuple[Doc, dict[str, bytes], list[str]]:
    """The report's blocks, its plots (file name -> PNG) and the problems met while making it."""
    if used_s is None:
        times = run_times(read_events(run_dir))
        used_s = times[-1][1] if times else 0.0
    r = ReportRun(state, run_dir, used_s)
    for section in SECTIONS:
        section(r)
    return r.doc, r.plots, r.problems


FILES = [
    ("submission.csv", "the predictions, in the sample submission's format (validated)"),
    ("solution.py", "standalone reproduction: `python solution.py TASK_DIR OUT.csv`, no iML needed"),
    ("report.md", "this report (plots in report_files/)"),
    ("report.html", "this report, self-contained"),
    ("leaderboard.csv", "every attempt with its score, fold spread and time"),
    ("task.json", "the task as understood, with reasons"),
    ("profile.json", "the data profile"),
    ("blueprint.json", "the plan: validation scheme and tracks"),
    ("settings.json", "the run's settings"),
    ("run.json", "the run's clock: time used and sessions (resumes)"),
    ("events.jsonl", "one line per event of the run"),
    ("checkpoints.sqlite", "LangGraph checkpoints: `iml resume` continues from them"),
    ("y.npy", "the encoded training target"),
    ("folds.npy", "the fold of each training row"),
    ("ensemble_oof.npy", "the blend's out-of-fold predictions, before the threshold and power in model.json"),
    ("tracks/", "tracks/<track>/attempt_<n>/: features.py, model.py, log.txt, result.json, oof.npy, test.npy"),
]


def write_report(state: Mapping[str, Any], run_dir: str | Path, used_s: float | None = None) -> tuple[Path, Path]:
    run_dir = Path(run_dir)
    doc, plots, _ = build_report(state, run_dir, used_s)
    if plots:
        folder = run_dir / PLOTS_DIR
        folder.mkdir(exist_ok=True)
        for name, png in plots.items():
            (folder / name).write_bytes(png)
    md, page = run_dir / "report.md", run_dir / "report.html"
    md.write_text(to_markdown(doc))
    page.write_text(to_html(doc, f"iML report: {Path(state['task'].task_dir).name}"))
    return md, page
