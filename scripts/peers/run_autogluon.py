"""Peer: AutoGluon TabularPredictor at the bench's time budget, presets medium_quality, or the
spec's `presets` (the bench's autogluon_best peer: best_quality)."""

import numpy as np

from peer_io import load, proba_in_order, save, to_contract

METRICS = {
    "auc": "roc_auc", "accuracy": "accuracy", "balanced_accuracy": "balanced_accuracy", "log_loss": "log_loss",
    "f1_macro": "f1_macro", "mcc": "mcc", "qwk": "quadratic_kappa", "rmse": "root_mean_squared_error",
    "rmsle": "root_mean_squared_error", "mae": "mean_absolute_error", "mse": "mean_squared_error", "r2": "r2",
    "mape": "mean_absolute_percentage_error", "medae": "median_absolute_error",
}
LABEL = "__target__"


def main() -> None:
    import autogluon.tabular
    from autogluon.tabular import TabularPredictor

    spec, X, y, X_test, work = load()
    kind, metric = spec["task_type"], spec["metric"]
    ag_metric = METRICS.get(metric)
    if metric == "f1":
        ag_metric = "f1" if kind == "binary" else "f1_macro"
    log_target = metric == "rmsle"  # RMSE on log1p(y) is RMSLE
    train = X.copy()
    train[LABEL] = np.log1p(np.clip(y, 0, None)) if log_target else y
    predictor = TabularPredictor(label=LABEL, problem_type=kind, eval_metric=ag_metric, path=str(work / "ag_models"),
                                 verbosity=0)
    presets = spec.get("presets", "medium_quality")
    predictor.fit(train, time_limit=spec["time_budget"], presets=presets)
    if kind == "regression":
        values = np.asarray(predictor.predict(X_test), dtype=float)
        pred = to_contract(spec, values=np.expm1(values) if log_target else values)
    else:
        proba = predictor.predict_proba(X_test)
        proba = proba_in_order(proba.to_numpy(), list(proba.columns), len(spec["classes"]))
        pred = to_contract(spec, proba=proba, labels=np.asarray(predictor.predict(X_test)).astype(int))
    save(work, pred, {"peer": "autogluon", "version": autogluon.tabular.__version__, "metric": ag_metric, "presets": presets,
                      "best_model": predictor.model_best})


if __name__ == "__main__":
    main()
