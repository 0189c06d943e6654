"""CatBoost member of the traditional track, model: gradient boosting with ordered boosting and
native categoricals (columns named `cat__*`), early stopping on the fold's validation part.

Its loss is the metric's: Logloss / MultiClass for probabilities, RMSE, MAE for absolute
errors (and median absolute error; on log1p(y) when y is non-negative and right-skewed), RMSE
on log1p(y) for RMSLE. It never writes files
(allow_writing_files off) and runs on `thread_count` threads.

Params: runtime/params.py declares them (SPACES["catboost"]).
"""

import numpy as np
from catboost import CatBoostClassifier, CatBoostRegressor

from runtime.params import SPACES, Data, learns_log

LOSSES = {"mae": "MAE", "medae": "MAE"}


class Model:
    def __init__(self, task: dict, params: dict):
        self.task = task
        self.params = params
        self.kind = task["task_type"]
        self.log_target = False  # decided at fit time, from the training target

    def fit(self, X, y, X_valid=None, y_valid=None) -> "Model":
        r = self.resolved = SPACES["catboost"].resolve(self.params, Data(n=X.shape[0], columns=X.shape[1]))
        cats = [i for i, c in enumerate(X.columns) if str(c).startswith("cat__")]
        config = dict(
            iterations=r["iterations"],
            learning_rate=r["learning_rate"],
            depth=r["depth"],
            l2_leaf_reg=r["l2_leaf_reg"],
            random_seed=r["seed"],
            thread_count=r["thread_count"],
            allow_writing_files=False,
            verbose=False,
            cat_features=cats,
        )
        y = np.asarray(y)
        if self.kind == "regression":
            self.model = CatBoostRegressor(loss_function=LOSSES.get(self.task.get("metric"), "RMSE"), **config)
            y = y.astype(float)
            self.log_target = learns_log(self.task.get("metric", ""), r["log_target"], y)
            if self.log_target:
                y = np.log1p(np.clip(y, 0, None))
                y_valid = None if y_valid is None else np.log1p(np.clip(np.asarray(y_valid), 0, None))
        else:
            loss = "Logloss" if self.kind == "binary" else "MultiClass"
            self.model = CatBoostClassifier(loss_function=loss, **config)
        fit_args = {}
        if X_valid is not None and y_valid is not None and (self.kind == "regression" or len(np.unique(y_valid)) > 1):
            fit_args = dict(eval_set=(X_valid, np.asarray(y_valid)),
                            early_stopping_rounds=r["early_stopping_rounds"])
        self.model.fit(X, y, **fit_args)
        return self

    def full_fit_params(self) -> dict:
        """A fit on all rows has no validation part to stop on: it grows the trees early stopping chose."""
        best = self.model.get_best_iteration()
        return {"iterations": int(best + 1 if best is not None else self.model.tree_count_)}

    def predict(self, X) -> np.ndarray:
        if self.kind == "regression":
            pred = self.model.predict(X)
            return np.expm1(pred) if self.log_target else pred
        # A rare class can be absent from a fold's training part: place the columns the model
        # knows into the task's full class order.
        proba = np.zeros((X.shape[0], len(self.task["classes"])))
        proba[:, self.model.classes_.astype(int)] = self.model.predict_proba(X)
        return proba[:, 1] if self.kind == "binary" else proba
