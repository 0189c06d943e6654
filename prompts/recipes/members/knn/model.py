"""k-nearest-neighbours member of the traditional track, model: scikit-learn's neighbours,
weighted by distance. Its errors are those of a local vote, not of axis-aligned splits, so it
adds most to a blend of trees where the classes are clusters (digits, measurements of species).
A vote of five neighbours says 0 or 1 where it should not: the probabilities are mixed with the
class shares by the amount that minimises the log loss of each training row's vote by its
neighbours without itself (leave-one-out, one more neighbours query at fit time). A regression
target is averaged on log1p(y) for RMSLE only (runtime.recipe_steps.log_target, absolute=False):
under absolute errors an average of logs, a geometric mean, falls below the median.

Params: runtime/params.py declares them (SPACES["knn"]).
"""

import numpy as np
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

from runtime.params import SPACES, Data
from runtime.recipe_steps import EstimatorModel, TargetScale


class Model(EstimatorModel):
    """KNeighborsRegressor / KNeighborsClassifier, probabilities mixed with the class shares
    (predict and full_fit_params: runtime.recipe_steps.EstimatorModel)."""

    def fit(self, X, y, X_valid=None, y_valid=None) -> "Model":
        """Index the training rows; for classification, choose the mix with the class shares."""
        r = self.resolved = SPACES["knn"].resolve(self.params, Data(n=X.shape[0], columns=X.shape[1]))
        config = dict(n_neighbors=min(r["n_neighbors"], X.shape[0]), weights=r["weights"], n_jobs=r["n_jobs"])
        y = np.asarray(y)
        if self.kind == "regression":
            self.target = TargetScale.fitted(self.task, r["log_target"], y, absolute=False)  # it averages: RMSLE only
            self.model = KNeighborsRegressor(**config).fit(X, self.target.forward(y))
        else:
            self.model = KNeighborsClassifier(**config).fit(X, y.astype(int))
            self.prior = np.bincount(y.astype(int), minlength=len(self.task["classes"])) / len(y)
            self.mix = self._loo_mix(X, y.astype(int), config["n_neighbors"])
        return self

    def _loo_mix(self, X, y: np.ndarray, k: int) -> float:
        """The share of the class prior (of 0.01..0.5) that minimises the leave-one-out log loss."""
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

    def probabilities(self, X) -> np.ndarray:
        """The neighbours' vote mixed with the class shares by the fitted amount."""
        return (1 - self.mix) * super().probabilities(X) + self.mix * self.prior
