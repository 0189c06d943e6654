"""Extra-trees member of the traditional track, model: scikit-learn's extremely randomised
trees, averaged, so its errors differ from boosting's (strongest in a blend on small tables).
Probabilities are clipped away from 0 and 1 for log loss (a leaf of one class says 0).

Params (all optional; n = training rows):
  n_estimators       300
  min_samples_leaf   1 (n < 2k), 3 above
  max_features       0.5    share of the columns each split considers
  n_jobs             OMP_NUM_THREADS (the kernel's cores)
  seed               0
"""

import os

import numpy as np
from sklearn.ensemble import ExtraTreesClassifier, ExtraTreesRegressor


class Model:
    def __init__(self, task: dict, params: dict):
        self.task = task
        self.params = params
        self.kind = task["task_type"]
        self.log_target = task.get("metric") == "rmsle"

    def fit(self, X, y, X_valid=None, y_valid=None) -> "Model":
        p, n = self.params, X.shape[0]
        config = dict(n_estimators=int(p.get("n_estimators", 300)),
                      min_samples_leaf=int(p.get("min_samples_leaf", 1 if n < 2_000 else 3)),
                      max_features=float(p.get("max_features", 0.5)),
                      n_jobs=int(p.get("n_jobs", os.environ.get("OMP_NUM_THREADS", 1))),
                      random_state=int(p.get("seed", 0)))
        y = np.asarray(y)
        if self.kind == "regression":  # squared error even for MAE: sklearn's absolute error is quadratic in n
            self.model = ExtraTreesRegressor(**config)
            self.model.fit(X, np.log1p(np.clip(y, 0, None)) if self.log_target else y)
        else:
            self.model = ExtraTreesClassifier(**config).fit(X, y.astype(int))
        return self

    def predict(self, X) -> np.ndarray:
        if self.kind == "regression":
            pred = self.model.predict(X)
            return np.expm1(pred) if self.log_target else pred
        proba = np.zeros((X.shape[0], len(self.task["classes"])))
        proba[:, self.model.classes_] = self.model.predict_proba(X)
        proba = np.clip(proba, 1e-3, 1.0)
        proba /= proba.sum(axis=1, keepdims=True)
        return proba[:, 1] if self.kind == "binary" else proba
