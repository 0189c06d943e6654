"""Extra-trees member of the traditional track, model: scikit-learn's extremely randomised
trees, averaged, so its errors differ from boosting's (strongest in a blend on small tables).
Probabilities are clipped away from 0 and 1 for log loss (a leaf of one class says 0).

Params: runtime/params.py declares them (SPACES["extratrees"]).
"""

import numpy as np
from sklearn.ensemble import ExtraTreesClassifier, ExtraTreesRegressor

from runtime.params import SPACES, Data


class Model:
    def __init__(self, task: dict, params: dict):
        self.task = task
        self.params = params
        self.kind = task["task_type"]
        self.log_target = task.get("metric") == "rmsle"

    def fit(self, X, y, X_valid=None, y_valid=None) -> "Model":
        r = self.resolved = SPACES["extratrees"].resolve(self.params, Data(n=X.shape[0], columns=X.shape[1]))
        config = dict(n_estimators=r["n_estimators"], min_samples_leaf=r["min_samples_leaf"],
                      max_features=r["max_features"], n_jobs=r["n_jobs"], random_state=r["seed"])
        y = np.asarray(y)
        if self.kind == "regression":  # squared error even for MAE: sklearn's absolute error is quadratic in n
            self.model = ExtraTreesRegressor(**config)
            self.model.fit(X, np.log1p(np.clip(y, 0, None)) if self.log_target else y)
        else:
            self.model = ExtraTreesClassifier(**config).fit(X, y.astype(int))
        return self

    def full_fit_params(self) -> dict:
        """Nothing to carry over: the fit uses no validation part, so one on all rows is the same fit."""
        return {}

    def predict(self, X) -> np.ndarray:
        if self.kind == "regression":
            pred = self.model.predict(X)
            return np.expm1(pred) if self.log_target else pred
        proba = np.zeros((X.shape[0], len(self.task["classes"])))
        proba[:, self.model.classes_] = self.model.predict_proba(X)
        proba = np.clip(proba, 1e-3, 1.0)
        proba /= proba.sum(axis=1, keepdims=True)
        return proba[:, 1] if self.kind == "binary" else proba
