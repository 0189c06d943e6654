"""What `iml bench` reports: its runs reduced to one score per split, the mean and standard
error over splits, iml against each peer paired split by split, and the tables.

The statistics. Every system of a bench runs on the same K train/test splits of an example
(`iml bench --repeats K`), so the comparison is paired: for each split the difference of the
two scores, signed so that positive means iml is better whatever the metric's direction; then
the mean of those K differences and its standard error (their standard deviation over sqrt K).
A peer is beaten, or beats iml, only when that mean lies beyond t(0.975, K-1) standard errors of
zero, a two-sided paired t-test at 5%; anything nearer is "within noise". Pairing removes what
the splits share (a hard test set is hard for every system), so it sees differences an unpaired
comparison of two means would call noise; the t quantile, not 2, keeps the false alarms at 5%
when K is 3 or 5. With one split there is no noise estimate and no verdict. A noisy peer run
with several seeds on a split (`--seeds`) counts with its mean over those seeds, one number
per split, so the pairing stays one pair per split.

The normalised score puts examples with different metrics on one scale: per split, the
example's constant predictor (its sample submission, graded like any other) is 0 and the best
system of this bench on that split is 1; a run that wrote nothing gradable counts 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

LEVEL = 0.05  # the paired test's two-sided level
Verdict = Literal["better", "worse", "within noise", "no verdict"]


@dataclass(frozen=True)
class Estimate:
    """A mean over splits and its standard error (NaN below two values)."""

    mean: float
    se: float
    n: int


@dataclass(frozen=True)
class Paired:
    """iml minus a peer over the splits both scored, positive when iml is better."""

    diff: float
    se: float
    n: int
    verdict: Verdict


def estimate(values) -> Estimate:
    v = np.asarray([x for x in values if x is not None and not math.isnan(x)], dtype=float)
    if len(v) == 0:
        return Estimate(math.nan, math.nan, 0)
    se = float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else math.nan
    return Estimate(float(v.mean()), se, len(v))


def paired(iml: pd.Series, peer: pd.Series, higher: bool, level: float = LEVEL) -> Paired:
    """The paired comparison of two systems' scores, each a Series indexed by split."""
    both = pd.concat([iml.rename("iml"), peer.rename("peer")], axis=1).dropna()
    diffs = (both["iml"] - both["peer"]) * (1.0 if higher else -1.0)
    e = estimate(diffs)
    if e.n < 2:
        return Paired(e.mean, e.se, e.n, "no verdict")
    margin = float(stats.t.ppf(1 - level / 2, e.n - 1)) * e.se
    verdict: Verdict = "better" if e.mean > margin else "worse" if e.mean < -margin else "within noise"
    return Paired(e.mean, e.se, e.n, verdict)


def split_scores(runs: pd.DataFrame) -> pd.DataFrame:
    """One score per (task, system, split): the mean over that split's seeds, NaN when none of
    its runs was gradable."""
    frame = runs.assign(score=pd.to_numeric(runs["score"], errors="coerce"))
    return frame.groupby(["task", "system", "split"], sort=False, as_index=False)["score"].mean()


def normalised(runs: pd.DataFrame, constants: dict[tuple[str, int], float]) -> dict[str, Estimate]:
    """Each system's normalised score, its mean over every (task, split) it ran on: the constant
    predictor's score 0, the best system's 1 on that split. A (task, split) without a constant's
    score, or where no system beat the constant, is left out."""
    scores = split_scores(runs)
    higher = runs.groupby("task")["greater_is_better"].first().astype(bool)
    values: dict[str, list[float]] = {}
    for (task, split), group in scores.groupby(["task", "split"], sort=False):
        constant = constants.get((task, int(split)))
        found = group["score"].dropna()
        if constant is None or math.isnan(constant) or found.empty:
            continue
        best = found.max() if higher[task] else found.min()
        if best == constant or (best < constant if higher[task] else best > constant):
            continue
        for system, score in zip(group["system"], group["score"]):
            values.setdefault(system, []).append(0.0 if math.isnan(score) else (score - constant) / (best - constant))
    return {system: estimate(v) for system, v in values.items()}


# --------------------------------------------------------------------------- the table


def summarize(runs: pd.DataFrame, systems: list[str]) -> pd.DataFrame:
    """One row per task: per system the mean score over splits, its standard error and how many
    splits scored, valid runs of all runs, mean wall seconds and the largest peak memory; per
    peer iml's paired difference, its standard error, the verdict, and the ratio of the means
    (> 1 means iml is better, whatever the metric's direction)."""
    scores = split_scores(runs)
    rows = []
    for task, group in runs.groupby("task", sort=False):
        higher = bool(group.greater_is_better.iloc[0])
        row: dict[str, object] = {"task": task, "metric": group.metric.iloc[0], "greater_is_better": higher,
                                  "splits": int(group.split.nunique())}
        by_system = {s: scores[(scores.task == task) & (scores.system == s)].set_index("split")["score"] for s in systems}
        for s in systems:
            g = group[group.system == s]
            e = estimate(by_system[s])
            row.update({f"{s}_score": e.mean, f"{s}_se": e.se, f"{s}_n": e.n,
                        f"{s}_valid": f"{int(g.valid.sum())}/{len(g)}",
                        f"{s}_s": float(g.wall_s.mean()) if len(g) else math.nan,
                        f"{s}_mb": float(g.peak_mb.max()) if len(g) else math.nan})
        for s in systems:
            if s == "iml":
                continue
            p = paired(by_system["iml"], by_system[s], higher)
            row.update({f"iml-{s}": p.diff, f"iml-{s}_se": p.se, f"iml-{s}_n": p.n, f"iml-{s}_verdict": p.verdict,
                        f"iml/{s}": ratio(row["iml_score"], row[f"{s}_score"], higher)})
        rows.append(row)
    return pd.DataFrame(rows)


def ratio(iml: float, peer: float, higher: bool) -> float:
    if any(math.isnan(v) for v in (iml, peer)) or (iml == 0 if not higher else peer == 0):
        return math.nan
    return iml / peer if higher else peer / iml


def summary_lines(table: pd.DataFrame, systems: list[str], norm: dict[str, Estimate]) -> list[str]:
    """The issue's targets and the verdicts, counted over the table."""
    lines = []
    complete = lambda v: v.split("/")[0] == v.split("/")[1]
    invalid = table.loc[[not complete(v) for v in table["iml_valid"]], "task"].tolist()
    lines.append("every iml submission valid: " + ("yes" if not invalid else "NO (" + ", ".join(invalid) + ")"))
    for s in systems[1:]:
        bad = table.loc[[not complete(v) for v in table[f"{s}_valid"]], "task"].tolist()
        if bad:
            lines.append(f"{s}: an invalid or missing submission on " + ", ".join(bad))
    for s in systems[1:]:
        verdicts = table[f"iml-{s}_verdict"].tolist()
        if all(v == "no verdict" for v in verdicts):
            lines.append(f"iml vs {s}: no verdict on one split per example (--repeats 3 or more to test differences)")
            continue
        count = {v: verdicts.count(v) for v in ("better", "within noise", "worse", "no verdict")}
        lines.append(f"iml vs {s} (paired over splits, t-test at 5%): better on {count['better']}, within noise on "
                     f"{count['within noise']}, worse on {count['worse']}"
                     + (f", no verdict on {count['no verdict']}" if count["no verdict"] else "")
                     + f" of {len(table)}")
    if "autogluon" in systems:
        beats = int((table["iml/autogluon"] >= 1.0).sum())
        need = math.ceil(5 * len(table) / 6)  # the zoo issue's target: 10 of 12, five sixths of any count
        lines.append(f"iml's mean >= AutoGluon's on {beats}/{len(table)} tasks (target: {need}); "
                     f"not worse beyond noise on {int((table['iml-autogluon_verdict'] != 'worse').sum())}/{len(table)}")
        lighter = int((table["iml_mb"] <= table["autogluon_mb"]).sum())
        lines.append(f"iml peak memory <= AutoGluon's on {lighter}/{len(table)} tasks")
    if "lightgbm" in systems:
        below = table.loc[table["iml/lightgbm"] < 1.0, "task"].tolist()
        lines.append("iml's mean below LightGBM defaults on: " + (", ".join(below) if below else "no task"))
    if norm:
        lines.append("normalised score (constant predictor 0, best system 1), mean ± se over tasks x splits: "
                     + ", ".join(f"{s} {fmt_pm(norm[s].mean, norm[s].se)}" for s in systems if s in norm))
    return lines


def fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.5g}"


def fmt_pm(mean: float, se: float, signed: bool = False) -> str:
    """"mean ± se", the standard error to two significant digits and the mean to the same place."""
    if math.isnan(mean):
        return "-"
    sign = "+" if signed else ""
    if math.isnan(se) or se == 0:
        return (f"{mean:{sign}.5g}") + ("" if math.isnan(se) else " ± 0")
    places = max(0, 1 - math.floor(math.log10(se)))
    return f"{mean:{sign}.{places}f} ± {se:.{places}f}"


def score_cell(row: pd.Series, system: str) -> str:
    cell = fmt_pm(row[f"{system}_score"], row[f"{system}_se"])
    n, splits = int(row[f"{system}_n"]), int(row["splits"])
    return cell + (f" ({n} of {splits} splits)" if 0 < n < splits else "")


def peer_verdict(row: pd.Series, peer: str) -> str:
    """The verdict against one peer and iml's mean paired difference ± its se (positive: iml better)."""
    v, n = row[f"iml-{peer}_verdict"], int(row[f"iml-{peer}_n"])
    if v == "no verdict":
        return f"no verdict ({n} split{'s' if n != 1 else ''})"
    return f"{v} ({fmt_pm(row[f'iml-{peer}'], row[f'iml-{peer}_se'], signed=True)})"


def verdict_cell(row: pd.Series, systems: list[str]) -> str:
    return "; ".join(f"vs {s}: {peer_verdict(row, s)}" for s in systems[1:])


def arrow(row: pd.Series) -> str:
    return f"{row.metric} {'↑' if row.greater_is_better else '↓'}"


def to_markdown(table: pd.DataFrame, systems: list[str], budget_s: float, command: str, lines: list[str]) -> str:
    """The scores table a README can paste, the resources table under it, then the summary lines."""
    splits = int(table["splits"].max()) if len(table) else 0
    upto = "" if table["splits"].nunique() <= 1 else "up to "
    head = ["example", "metric", *systems, "iml vs peer (mean paired difference ± se)"]
    out = [(f"Budget {budget_s:g} s per system, example and split; {upto}{splits} split(s) per example (split seeds "
            f"0..{splits - 1}). Command: `{command}`"), "",
           ("Scores: mean ± standard error over the splits (↑ higher is better, ↓ lower). iml vs peer: the per-split "
            "differences (positive: iml better) paired over the same splits; better or worse only beyond "
            "t(0.975, n-1) standard errors (a paired t-test at 5%), otherwise within noise."), "",
           "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in table.iterrows():
        out.append("| " + " | ".join([r.task, arrow(r), *[score_cell(r, s) for s in systems], verdict_cell(r, systems)])
                   + " |")
    who = " / ".join(systems)
    out += ["", f"| example | valid ({who}) | mean seconds | max peak MB |", "|---|---|---|---|"]
    for _, r in table.iterrows():
        out.append(f"| {r.task} | " + " / ".join(r[f"{s}_valid"] for s in systems) + " | "
                   + " / ".join(f"{r[f'{s}_s']:.0f}" for s in systems) + " | "
                   + " / ".join(f"{r[f'{s}_mb']:.0f}" for s in systems) + " |")
    return "\n".join(out + [""] + [f"- {line}" for line in lines]) + "\n"


def print_table(table: pd.DataFrame, systems: list[str], lines: list[str], console) -> None:
    from rich.table import Table

    peers = systems[1:]
    out = Table(box=None, title="iml bench (mean ± se over splits; vs peer: paired, + means iml better)")
    for col in ["task", "metric", *systems, *[f"vs {p}" for p in peers], "valid", "seconds", "peak MB"]:
        out.add_column(col, justify="left" if col in ("task", "metric") or col.startswith("vs ") else "right")
    for _, r in table.iterrows():
        out.add_row(r.task, arrow(r), *[score_cell(r, s) for s in systems], *[peer_verdict(r, p) for p in peers],
                    " / ".join(r[f"{s}_valid"] for s in systems),
                    " / ".join(f"{r[f'{s}_s']:.0f}" for s in systems),
                    " / ".join(f"{r[f'{s}_mb']:.0f}" for s in systems))
    console.print(out)
    for line in lines:
        console.print(line)
