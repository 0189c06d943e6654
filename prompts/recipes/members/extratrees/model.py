"""Extra-trees member of the traditional track, model: scikit-learn's extremely randomised
trees, averaged, so its errors differ from boosting's (strongest in a blend on small tables).
Probabilities are clipped away from 0 and 1 for log loss (a leaf of one class says 0).
A regression target is learnt on log1p(y) where runtime.recipe_steps.log_target says so.

Params: runtime/params.py declares them (SPACES["extratrees"]).
"""

import numpy as np
from sklearn.ensemble import ExtraTreesClassifier, ExtraTreesRegressor

from runtime.params import SPACES, Data
from runtime.recipe_steps import EstimatorModel, TargetScale


class Model(EstimatorModel):
    """ExtraTreesRegressor / ExtraTreesClassifier with the declared settings (predict and
    full_fit_params: runtime.recipe_steps.EstimatorModel)."""

    def settings(self, n: int, columns: int) -> dict:
        """The estimator's keyword arguments for n training rows and this many columns."""
        r = self.resolved = SPACES["extratrees"].resolve(self.params, Data(n=n, columns=columns))
        return dict(n_estimators=r["n_estimators"], min_samples_leaf=r["min_samples_leaf"],
                    max_features=r["max_features"], n_jobs=r["n_jobs"], random_state=r["seed"])

    def fit(self, X, y, X_valid=None, y_valid=None) -> "Model":
        """Fit on the training part (no early stopping: the validation part is not used)."""
        config = self.settings(X.shape[0], X.shape[1])
        y = np.asarray(y)
        if self.kind == "regression":  # squared error even for MAE: sklearn's absolute error is quadratic in n
            self.target = TargetScale.fitted(self.task, self.resolved["log_target"], y)
            self.model = ExtraTreesRegressor(**config).fit(X, self.target.forward(y))
        else:
            self.model = ExtraTreesClassifier(**config).fit(X, y.astype(int))
        return self

    def probabilities(self, X) -> np.ndarray:
        """The trees' class shares clipped to [1e-3, 1] and renormalised: a leaf of one class says 0."""
        proba = np.clip(super().probabilities(X), 1e-3, 1.0)
        return proba / proba.sum(axis=1, keepdims=True)
