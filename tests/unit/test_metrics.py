"""The metric registry: values against sklearn, direction, aliases, text reading."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from runtime.metrics import (
    ALIASES,
    METRICS,
    UnknownMetricError,
    default_metric,
    get_metric,
    metric_from_text,
)

RNG = np.random.default_rng(0)
Y_BIN = np.array([0, 1, 1, 0, 1, 0, 0, 1, 1, 0])
P_BIN = np.array([0.1, 0.8, 0.45, 0.3, 0.9, 0.6, 0.2, 0.55, 0.7, 0.4])
Y_MC = np.array([0, 1, 2, 2, 1, 0, 2, 1, 0, 2])
P_MC = RNG.dirichlet(np.ones(3), size=len(Y_MC))
Y_REG = np.array([3.0, 5.5, 2.0, 7.25, 10.0, 0.5])
P_REG = np.array([2.5, 6.0, 2.5, 7.0, 9.0, 1.0])


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("rmse", math.sqrt(skm.mean_squared_error(Y_REG, P_REG))),
        ("mse", skm.mean_squared_error(Y_REG, P_REG)),
        ("mae", skm.mean_absolute_error(Y_REG, P_REG)),
        ("medae", skm.median_absolute_error(Y_REG, P_REG)),
        ("mape", skm.mean_absolute_percentage_error(Y_REG, P_REG)),
        ("r2", skm.r2_score(Y_REG, P_REG)),
        ("rmsle", math.sqrt(skm.mean_squared_log_error(Y_REG, P_REG))),
    ],
)
def test_regression_metrics_match_sklearn(name: str, expected: float) -> None:
    assert get_metric(name).score(Y_REG, P_REG) == pytest.approx(expected)


def test_rmsle_clips_negative_predictions_at_zero() -> None:
    pred = np.array([-1.0, 5.5, 2.0])
    got = get_metric("rmsle").score(np.array([0.0, 5.5, 2.0]), pred)
    assert got == pytest.approx(0.0)


def test_binary_metrics_threshold_probabilities_at_half() -> None:
    labels = (P_BIN >= 0.5).astype(int)
    assert get_metric("auc").score(Y_BIN, P_BIN) == pytest.approx(skm.roc_auc_score(Y_BIN, P_BIN))
    assert get_metric("accuracy").score(Y_BIN, P_BIN) == pytest.approx(skm.accuracy_score(Y_BIN, labels))
    assert get_metric("balanced_accuracy").score(Y_BIN, P_BIN) == pytest.approx(
        skm.balanced_accuracy_score(Y_BIN, labels)
    )
    assert get_metric("f1").score(Y_BIN, P_BIN) == pytest.approx(skm.f1_score(Y_BIN, labels))
    assert get_metric("f1_macro").score(Y_BIN, P_BIN) == pytest.approx(skm.f1_score(Y_BIN, labels, average="macro"))
    assert get_metric("mcc").score(Y_BIN, P_BIN) == pytest.approx(skm.matthews_corrcoef(Y_BIN, labels))
    assert get_metric("log_loss").score(Y_BIN, P_BIN) == pytest.approx(skm.log_loss(Y_BIN, P_BIN))


def test_binary_accepts_two_column_probabilities() -> None:
    two = np.column_stack([1 - P_BIN, P_BIN])
    for name in ("auc", "accuracy", "log_loss", "f1"):
        m = get_metric(name)
        assert m.score(Y_BIN, two) == pytest.approx(m.score(Y_BIN, P_BIN)), name


def test_multiclass_metrics_use_argmax_and_full_matrix() -> None:
    labels = P_MC.argmax(axis=1)
    assert get_metric("accuracy").score(Y_MC, P_MC) == pytest.approx(skm.accuracy_score(Y_MC, labels))
    assert get_metric("f1_macro").score(Y_MC, P_MC) == pytest.approx(skm.f1_score(Y_MC, labels, average="macro"))
    assert get_metric("f1").score(Y_MC, P_MC) == pytest.approx(skm.f1_score(Y_MC, labels, average="macro"))
    assert get_metric("mcc").score(Y_MC, P_MC) == pytest.approx(skm.matthews_corrcoef(Y_MC, labels))
    assert get_metric("log_loss").score(Y_MC, P_MC) == pytest.approx(skm.log_loss(Y_MC, P_MC))
    assert get_metric("auc").score(Y_MC, P_MC) == pytest.approx(skm.roc_auc_score(Y_MC, P_MC, multi_class="ovr"))


def test_multiclass_log_loss_with_a_class_missing_from_the_fold() -> None:
    y = np.array([0, 1, 0, 1])  # class 2 absent in this fold
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1]])
    expected = skm.log_loss(y, p, labels=[0, 1, 2])
    assert get_metric("log_loss").score(y, p) == pytest.approx(expected)


def test_log_loss_clips_certain_wrong_predictions() -> None:
    got = get_metric("log_loss").score(np.array([0, 1]), np.array([1.0, 0.0]))
    assert math.isfinite(got) and got > 10


def test_auc_on_a_single_class_fold_is_nan() -> None:
    assert math.isnan(get_metric("auc").score(np.ones(4, dtype=int), np.array([0.1, 0.5, 0.7, 0.9])))


def test_qwk_rounds_values_and_argmaxes_probabilities() -> None:
    y = np.array([0, 1, 2, 3, 2, 1])
    values = np.array([0.2, 1.4, 2.6, 3.9, 1.6, 0.6])
    expected = skm.cohen_kappa_score(y, np.array([0, 1, 3, 3, 2, 1]), weights="quadratic")
    assert get_metric("qwk").score(y, values) == pytest.approx(expected)
    proba = np.eye(4)[y]
    assert get_metric("qwk").score(y, proba) == pytest.approx(1.0)


def test_length_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="rows"):
        get_metric("rmse").score(Y_REG, P_REG[:-1])


# --------------------------------------------------------------------------- direction


@pytest.mark.parametrize("name", sorted(METRICS))
def test_direction_better_and_worst(name: str) -> None:
    m = METRICS[name]
    lo, hi = 0.2, 0.8
    assert m.better(hi, lo) is m.greater_is_better
    assert m.better(lo, hi) is not m.greater_is_better
    assert not m.better(lo, lo)
    assert m.better(lo, m.worst()) and m.better(hi, m.worst())
    assert not m.better(float("nan"), lo)
    assert m.better(lo, float("nan"))


def test_directions_of_known_metrics() -> None:
    up = {"auc", "accuracy", "balanced_accuracy", "f1", "f1_macro", "mcc", "qwk", "r2", "mean_columnwise_auc"}
    down = {"rmse", "rmsle", "mae", "mse", "medae", "mape", "log_loss", "mean_columnwise_log_loss", "mean_columnwise_rmse",
            "mean_columnwise_rmsle", "mean_columnwise_mae"}
    assert up | down == set(METRICS)
    assert all(METRICS[n].greater_is_better for n in up)
    assert not any(METRICS[n].greater_is_better for n in down)


def test_every_metric_is_described_and_typed() -> None:
    for name, m in METRICS.items():
        assert m.name == name
        assert m.description and "\n" not in m.description
        assert m.needs in {"label", "proba", "value"}
        assert m.task_types <= {"binary", "multiclass", "regression", "multilabel", "multitarget"} and m.task_types


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [
        ("roc_auc", "auc"),
        ("ROC-AUC", "auc"),
        ("AUROC", "auc"),
        ("Area under the ROC curve", "auc"),
        ("logloss", "log_loss"),
        ("Log Loss", "log_loss"),
        ("cross-entropy", "log_loss"),
        ("Root Mean Squared Error", "rmse"),
        ("RMSE", "rmse"),
        ("root-mean-squared-logarithmic-error", "rmsle"),
        ("Mean Absolute Error", "mae"),
        ("Quadratic Weighted Kappa", "qwk"),
        ("R2", "r2"),
        ("r^2", "r2"),
        ("coefficient of determination", "r2"),
        ("balanced accuracy", "balanced_accuracy"),
        ("macro-F1", "f1_macro"),
        ("F1_Macro", "f1_macro"),
        ("f1 score", "f1"),
        ("Matthews correlation coefficient", "mcc"),
        ("  Accuracy ", "accuracy"),
    ],
)
def test_aliases_resolve(alias: str, canonical: str) -> None:
    assert get_metric(alias).name == canonical


def test_aliases_point_at_registered_metrics() -> None:
    assert set(ALIASES.values()) <= set(METRICS)
    assert all(k == k.lower() for k in ALIASES)


def test_unknown_metric_message_is_one_line_listing_names() -> None:
    with pytest.raises(UnknownMetricError) as err:
        get_metric("foo")
    msg = str(err.value)
    assert "\n" not in msg
    assert "'foo'" in msg
    for name in METRICS:
        assert name in msg
    assert isinstance(err.value, ValueError)


def test_default_metric() -> None:
    assert default_metric("binary") == "auc"
    assert default_metric("multiclass") == "accuracy"
    assert default_metric("regression") == "rmse"
    with pytest.raises(ValueError):
        default_metric("ranking")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Submissions are evaluated on area under the ROC curve between the predicted probability and the observed target.", "auc"),
        (
            "Submissions are evaluated on Root-Mean-Squared-Error (RMSE) between the logarithm of the predicted value "
            "and the logarithm of the observed sales price. (Taking logs means that errors in predicting expensive "
            "houses and cheap houses will affect the result equally.)",
            "rmsle",
        ),
        ("The evaluation metric for this competition is Root Mean Squared Logarithmic Error.", "rmsle"),
        ("Submissions are scored on the root mean squared error. RMSE is defined as:", "rmse"),
        ("Your score is the percentage of passengers you correctly predict. This is known as accuracy.", "accuracy"),
        ("Submissions are evaluated using the multi-class logarithmic loss. Each image has been labeled with one true class.", "log_loss"),
        ("Submissions are evaluated on the macro F1 score across all classes.", "f1_macro"),
        ("Submissions will be evaluated based on their quadratic weighted kappa, which measures the agreement between two ratings.", "qwk"),
        ("The evaluation metric is balanced accuracy, the mean recall over classes.", "balanced_accuracy"),
        ("Submissions are evaluated on Mean Absolute Error (MAE) between the predicted loss and the actual loss.", "mae"),
        ("Submissions are evaluated using the F1 score between the predicted and expected answers.", "f1"),
        ("This competition is evaluated on the mean squared error.", "mse"),
        ("Submissions are evaluated using the Matthews correlation coefficient (MCC) between predicted and observed labels.", "mcc"),
        ("The metric is R^2 (coefficient of determination).", "r2"),
        ("Submissions are evaluated on log loss.", "log_loss"),
        ("Submissions are scored using AUC.", "auc"),
        ("Submissions are evaluated on Mean Absolute Percentage Error.", "mape"),
        ("Predictions are judged by the median absolute error.", "medae"),
        # "RMSE of the logs" in the ways Kaggle pages word it: the error of the logarithms is RMSLE
        ("The metric is RMSE between the log of predicted and log of observed values.", "rmsle"),
        ("Submissions are evaluated on the root mean squared error of log(1 + y).", "rmsle"),
        ("Submissions are scored by RMSE computed on log-transformed prices.", "rmsle"),
        ("Submissions are scored on the root mean squared error, computed on the natural log of the count.", "rmsle"),
        ("Evaluated on RMSE in log space.", "rmsle"),
        # a log that is not the target's stays RMSE
        ("Submissions are scored on RMSE. We also log every submission.", "rmse"),
        ("Evaluated on RMSE (logs are kept on the server for audit).", "rmse"),
    ],
)
def test_metric_from_text_on_description_snippets(text: str, expected: str) -> None:
    assert metric_from_text(text) == expected


def test_metric_from_text_prefers_the_evaluation_section() -> None:
    text = (
        "## Overview\n\nBanks care about accuracy when they flag customers, and analysts often quote F1.\n\n"
        "## Evaluation\n\nEntries are ranked by the area under the ROC curve computed on the hidden labels.\n\n"
        "## Data\n\nThe accuracy of the labels was checked by hand.\n"
    )
    assert metric_from_text(text) == "auc"


def test_metric_from_text_section_beats_a_cued_mention_elsewhere() -> None:
    text = (
        "## Overview\n\nSuch contests are usually evaluated on accuracy.\n\n"
        "## Evaluation\n\nWe use the multi-class log loss\nof your predicted probabilities.\n"
    )
    assert metric_from_text(text) == "log_loss"


def test_metric_from_text_reads_across_wrapped_lines() -> None:
    text = "Entries are ranked by\nthe mean absolute error; the root mean squared error is shown for reference only"
    assert metric_from_text(text) == "mae"


def test_metric_from_text_prefers_phrases_near_cue_words() -> None:
    text = "Submissions are scored on accuracy. Many teams also look at the F1 score and the log loss."
    assert metric_from_text(text) == "accuracy"


def test_metric_from_text_returns_none_without_a_metric() -> None:
    assert metric_from_text("Predict which customers will leave. Good luck!") is None
    assert metric_from_text("") is None


def test_column_wise_means_score_each_target_column_with_its_base_metric() -> None:
    y = np.array([[0, 1], [1, 0], [0, 1], [1, 1], [0, 0]])
    p = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.9, 0.1], [0.2, 0.4]])
    auc = get_metric("mean column-wise ROC AUC")
    per_column = [METRICS["auc"].score(y[:, j], p[:, j]) for j in range(2)]
    assert auc.score(y, p) == pytest.approx(np.mean(per_column)) and auc.base == "auc" and auc.greater_is_better
    # a fold where one label column has a single class: that column is left out of the mean
    assert auc.score(y[:2, :], p[:2, :]) == pytest.approx(METRICS["auc"].score(y[:2, 0], p[:2, 0]))
    values = np.array([[1.0, 10.0], [2.0, 20.0]])
    rmsle = get_metric("rmsle").columnwise()
    assert rmsle.name == "mean_columnwise_rmsle" and rmsle.score(values, values) == 0.0
    with pytest.raises(ValueError, match="has no column-wise mean"):
        get_metric("accuracy").columnwise()


def test_best_ranked_and_gain_follow_the_metrics_direction():
    auc, rmse = get_metric("auc"), get_metric("rmse")
    scores = {"a": 0.7, "b": float("nan"), "c": 0.9, "d": None, "e": 0.9}
    assert auc.best(scores, key=scores.get) == "c"  # the first of equals; nan and None never win
    assert rmse.best(scores, key=scores.get) == "a"
    assert auc.ranked(scores, key=scores.get) == ["c", "e", "a"]
    assert rmse.best([]) is None and auc.best([float("nan")]) is None
    assert auc.gain(0.9, 0.8) > 0 and rmse.gain(0.9, 0.8) < 0
