"""The positive class of a binary task when the description quotes both labels: the one quoted
where the page says what the submitted probability is of, not the minority class."""

from __future__ import annotations

import pandas as pd

from runtime.task_rules import order_binary

# the controls are the minority here, as in pd_speech (64 of 252): a guess by counts inverts the AUC
Y = pd.Series(["PD"] * 188 + ["control"] * 64)


def test_the_label_quoted_beside_the_probability_is_positive_though_it_is_the_majority():
    description = ("# Parkinson's disease from speech\n\nEach row is a speaker, labelled \"PD\" or \"control\".\n\n"
                   "## Evaluation\n\nSubmissions are scored on the area under the ROC curve. For each speaker, "
                   "predict the probability that the class is \"PD\".\n")
    reasons: list[str] = []
    assert order_binary(["PD", "control"], Y, description, reasons) == ["control", "PD"]
    assert "speaks of the probability" in reasons[-1]


def test_without_a_probability_sentence_the_rules_before_stand():
    reasons: list[str] = []
    both = "Each row is a speaker, labelled 'PD' or 'control'. Scored on AUC."
    assert order_binary(["PD", "control"], Y, both, reasons) == ["PD", "control"]  # the minority, as before
    assert order_binary(["PD", "control"], Y, "Predict whether a speaker is 'PD'.", []) == ["control", "PD"]
    both_there = "Predict the probability of 'PD' against 'control'."
    assert order_binary(["PD", "control"], Y, both_there, []) == ["PD", "control"]  # both beside it: no way to tell
