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

from runtime.params import SPACES, Data
from runtime.recipe_steps import EstimatorModel, TargetScale

LOSSES = {"mae": "MAE", "medae": "MAE"}


class Model(EstimatorModel):
    """CatBoostRegressor / CatBoostClassifier with early stopping on the validation part
    (predict: runtime.recipe_steps.EstimatorModel)."""

    def settings(self, X) -> dict:
        """CatBoost's keyword arguments for this training frame (its `cat__*` columns are categorical)."""
        r = self.resolved = SPACES["catboost"].resolve(self.params, Data(n=X.shape[0], columns=X.shape[1]))
        return dict(
            iterations=r["iterations"],
            learning_rate=r["learning_rate"],
            depth=r["depth"],
            l2_leaf_reg=r["l2_leaf_reg"],
            random_seed=r["seed"],
            thread_count=r["thread_count"],
            allow_writing_files=False,
            verbose=False,
            cat_features=[i for i, c in enumerate(X.columns) if str(c).startswith("cat__")],
        )

    def fit(self, X, y, X_valid=None, y_valid=None) -> "Model":
        """Fit with the metric's loss; stop early on the validation part when it has two classes."""
        config = self.settings(X)
        r = self.resolved
        y = np.asarray(y)
        if self.kind == "regression":
            self.model = CatBoostRegressor(loss_function=LOSSES.get(self.task.get("metric"), "RMSE"), **config)
            self.target = TargetScale.fitted(self.task, r["log_target"], y)
            y, y_valid = self.target.forward(y), self.target.forward(y_valid)
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
