"""CatBoost member of the traditional track, model: gradient boosting with ordered boosting and
native categoricals (columns named `cat__*`), early stopping on the fold's validation part.

Its loss is the metric's: Logloss / MultiClass for probabilities, RMSE, MAE for absolute
errors (and median absolute error), RMSE on log1p(y) for RMSLE. It never writes files
(allow_writing_files off) and runs on `thread_count` threads.

Params (all optional; n = training rows):
  iterations             2000   upper bound; early stopping picks the number of trees
  learning_rate          0.05 (n < 2k), 0.08 (< 20k), 0.12 above
  depth                  6
  l2_leaf_reg            3.0
  early_stopping_rounds  100 (n < 2k), 50 above
  thread_count           OMP_NUM_THREADS (the kernel's cores)
  seed                   0
"""

import os

import numpy as np
from catboost import CatBoostClassifier, CatBoostRegressor

LOSSES = {"mae": "MAE", "medae": "MAE"}


class Model:
    def __init__(self, task: dict, params: dict):
        self.task = task
        self.params = params
        self.kind = task["task_type"]
        self.log_target = task.get("metric") == "rmsle"

    def fit(self, X, y, X_valid=None, y_valid=None) -> "Model":
        p, n = self.params, X.shape[0]
        cats = [i for i, c in enumerate(X.columns) if str(c).startswith("cat__")]
        config = dict(
            iterations=int(p.get("iterations", 2000)),
            learning_rate=float(p.get("learning_rate", 0.05 if n < 2_000 else 0.08 if n < 20_000 else 0.12)),
            depth=int(p.get("depth", 6)),
            l2_leaf_reg=float(p.get("l2_leaf_reg", 3.0)),
            random_seed=int(p.get("seed", 0)),
            thread_count=int(p.get("thread_count", os.environ.get("OMP_NUM_THREADS", 1))),
            allow_writing_files=False,
            verbose=False,
            cat_features=cats,
        )
        y = np.asarray(y)
        if self.kind == "regression":
            self.model = CatBoostRegressor(loss_function=LOSSES.get(self.task.get("metric"), "RMSE"), **config)
            if self.log_target:
                y = np.log1p(np.clip(y, 0, None))
                y_valid = None if y_valid is None else np.log1p(np.clip(np.asarray(y_valid), 0, None))
        else:
            loss = "Logloss" if self.kind == "binary" else "MultiClass"
            self.model = CatBoostClassifier(loss_function=loss, **config)
        fit_args = {}
        if X_valid is not None and y_valid is not None and (self.kind == "regression" or len(np.unique(y_valid)) > 1):
            fit_args = dict(eval_set=(X_valid, np.asarray(y_valid)),
                            early_stopping_rounds=int(p.get("early_stopping_rounds", 100 if n < 2_000 else 50)))
        self.model.fit(X, y, **fit_args)
        return self

    def predict(self, X) -> np.ndarray:
        if self.kind == "regression":
            pred = self.model.predict(X)
            return np.expm1(pred) if self.log_target else pred
        # A rare class can be absent from a fold's training part: place the columns the model
        # knows into the task's full class order.
        proba = np.zeros((X.shape[0], len(self.task["classes"])))
        proba[:, self.model.classes_.astype(int)] = self.model.predict_proba(X)
        return proba[:, 1] if self.kind == "binary" else proba
