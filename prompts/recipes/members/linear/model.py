"""Linear member of the traditional track, model: LogisticRegression (classification) or Ridge
on the standardised target (log1p first for RMSLE), on the sparse design matrix. Unlike
trees it extrapolates and adds smoothly, which is what a blend of trees lacks on small tables.

Params: runtime/params.py declares them (SPACES["linear"]).
"""

import numpy as np
from sklearn.linear_model import LogisticRegression, Ridge
from threadpoolctl import threadpool_limits

from runtime.params import SPACES, Data


class Model:
    def __init__(self, task: dict, params: dict):
        self.task = task
        self.kind = task["task_type"]
        self.log_target = task.get("metric") == "rmsle"
        r = self.resolved = SPACES["linear"].resolve(params, Data(n=0))
        self.C, self.seed = r["C"], r["seed"]

    def fit(self, X, y, X_valid=None, y_valid=None) -> "Model":
        y = np.asarray(y)
        with threadpool_limits(limits=1):  # many small solver steps: threads only add hand-offs
            if self.kind == "regression":
                v = np.log1p(np.clip(y.astype(float), 0, None)) if self.log_target else y.astype(float)
                self.y_mean, self.y_std = float(v.mean()), float(v.std()) or 1.0
                self.model = Ridge(alpha=1.0 / self.C).fit(X, (v - self.y_mean) / self.y_std)
            else:
                self.model = LogisticRegression(C=self.C, max_iter=2000, random_state=self.seed).fit(X, y.astype(int))
        return self

    def full_fit_params(self) -> dict:
        """Nothing to carry over: the fit uses no validation part, so one on all rows is the same fit."""
        return {}

    def predict(self, X) -> np.ndarray:
        if self.kind == "regression":
            pred = self.model.predict(X) * self.y_std + self.y_mean
            return np.expm1(pred) if self.log_target else pred
        proba = np.zeros((X.shape[0], len(self.task["classes"])))
        proba[:, self.model.classes_] = self.model.predict_proba(X)
        return proba[:, 1] if self.kind == "binary" else proba
