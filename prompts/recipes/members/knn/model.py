"""k-nearest-neighbours member of the traditional track, model: scikit-learn's neighbours,
weighted by distance. Its errors are those of a local vote, not of axis-aligned splits, so it
adds most to a blend of trees where the classes are clusters (digits, measurements of species).
A vote of five neighbours says 0 or 1 where it should not: the probabilities are mixed with the
class shares by the amount that minimises the log loss of each training row's vote by its
neighbours without itself (leave-one-out, one more neighbours query at fit time).

Params: runtime/params.py declares them (SPACES["knn"]).
"""

import numpy as np
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

from runtime.params import SPACES, Data


class Model:
    def __init__(self, task: dict, params: dict):
        self.task = task
        self.params = params
        self.kind = task["task_type"]
        self.log_target = task.get("metric") == "rmsle"

    def fit(self, X, y, X_valid=None, y_valid=None) -> "Model":
        r = self.resolved = SPACES["knn"].resolve(self.params, Data(n=X.shape[0], columns=X.shape[1]))
        config = dict(n_neighbors=min(r["n_neighbors"], X.shape[0]), weights=r["weights"], n_jobs=r["n_jobs"])
        y = np.asarray(y)
        if self.kind == "regression":
            self.model = KNeighborsRegressor(**config).fit(X, np.log1p(np.clip(y, 0, None)) if self.log_target else y)
        else:
            self.model = KNeighborsClassifier(**config).fit(X, y.astype(int))
            self.prior = np.bincount(y.astype(int), minlength=len(self.task["classes"])) / len(y)
            self.mix = self._loo_mix(X, y.astype(int), config["n_neighbors"])
        return self

    def _loo_mix(self, X, y: np.ndarray, k: int) -> float:
        if len(y) <= k + 1:
            return 0.5
        dist, idx = self.model.kneighbors(X, n_neighbors=k + 1)
        dist, idx = dist[:, 1:], idx[:, 1:]  # each row's neighbours but itself
        w = 1.0 / np.maximum(dist, 1e-9) if self.model.weights == "distance" else np.ones_like(dist)
        votes = np.zeros((len(y), len(self.prior)))
        np.add.at(votes, (np.repeat(np.arange(len(y)), idx.shape[1]), y[idx].ravel()), w.ravel())
        votes /= votes.sum(axis=1, keepdims=True)
        truth = np.arange(len(y)), y
        losses = {m: -np.log(np.maximum((1 - m) * votes[truth] + m * self.prior[y], 1e-15)).mean()
                  for m in (0.01, 0.03, 0.1, 0.2, 0.3, 0.5)}
        return float(min(losses, key=losses.get))

    def full_fit_params(self) -> dict:
        """Nothing to carry over: the fit uses no validation part, so one on all rows is the same fit."""
        return {}

    def predict(self, X) -> np.ndarray:
        if self.kind == "regression":
            pred = self.model.predict(X)
            return np.expm1(pred) if self.log_target else pred
        proba = np.zeros((X.shape[0], len(self.task["classes"])))
        proba[:, self.model.classes_] = self.model.predict_proba(X)
        proba = (1 - self.mix) * proba + self.mix * self.prior
        return proba[:, 1] if self.kind == "binary" else proba
