"""Peer: FLAML AutoML at the bench's time budget, told the task's metric where it knows it."""

import numpy as np

from peer_io import as_categories, load, proba_in_order, save, to_contract

METRICS = {
    "auc": "roc_auc", "accuracy": "accuracy", "log_loss": "log_loss", "f1_macro": "macro_f1",
    "rmse": "rmse", "rmsle": "rmse", "mae": "mae", "mse": "mse", "r2": "r2", "mape": "mape",
}


def main() -> None:
    import flaml
    from flaml import AutoML

    spec, X, y, X_test, work = load()
    X, X_test = as_categories(X, X_test)
    kind, metric = spec["task_type"], spec["metric"]
    flaml_metric = METRICS.get(metric, "auto")
    if metric == "f1":
        flaml_metric = "f1" if kind == "binary" else "macro_f1"
    if metric == "auc" and kind == "multiclass":
        flaml_metric = "roc_auc_ovr"
    log_target = metric == "rmsle"  # FLAML has no RMSLE: fit log1p(y) on RMSE
    automl = AutoML()
    target = np.log1p(np.clip(y, 0, None)) if log_target else y
    automl.fit(X, target, task="regression" if kind == "regression" else "classification", metric=flaml_metric,
               time_budget=spec["time_budget"], seed=spec["seed"], verbose=0)
    if kind == "regression":
        values = automl.predict(X_test)
        pred = to_contract(spec, values=np.expm1(values) if log_target else values)
    else:
        proba = proba_in_order(automl.predict_proba(X_test), automl.classes_, len(spec["classes"]))
        pred = to_contract(spec, proba=proba, labels=np.asarray(automl.predict(X_test)).astype(int))
    save(work, pred, {"peer": "flaml", "version": flaml.__version__, "metric": flaml_metric,
                      "best_estimator": automl.best_estimator})


if __name__ == "__main__":
    main()
