"""Fallback model: scikit-learn's histogram gradient boosting, which accepts missing values."""

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor


class Model:
    def __init__(self, task: dict, params: dict):
        self.task = task

    def fit(self, X, y, X_valid=None, y_valid=None) -> "Model":
        if self.task["task_type"] == "regression":
            self.model = HistGradientBoostingRegressor(max_iter=200, random_state=0)
        else:
            self.model = HistGradientBoostingClassifier(max_iter=200, random_state=0)
        self.model.fit(X, y)
        return self

    def full_fit_params(self) -> dict:
        """Nothing to carry over: the fit uses no validation part, so one on all rows is the same fit."""
        return {}

    def predict(self, X) -> np.ndarray:
        if self.task["task_type"] == "regression":
            return self.model.predict(X)
        # A rare class can be absent from a fold's training part: place the columns the
        # model knows into the task's full class order.
        proba = np.zeros((X.shape[0], len(self.task["classes"])))
        proba[:, self.model.classes_] = self.model.predict_proba(X)
        return proba[:, 1] if self.task["task_type"] == "binary" else proba
