"""Traditional track, model: LightGBM with early stopping on the fold's validation part.

Categorical columns arrive as pandas categories and are split on natively. For RMSLE the
model learns log1p(target), the scale the metric measures errors on. Defaults follow the
number of training rows n: small data gets smaller trees and a slower rate, large data a
faster rate so that five folds stay within seconds. MAE on a non-negative, right-skewed target
learns log1p(target) with the Huber loss (`huber_delta` on the log scale): robust like L1, so it
still aims at the median, but its small residuals move the trees by their size, not their sign,
so it converges in fewer trees; a signed target keeps L1 (on 3 splits each, test MAE: hotel_rates
7.59 against L1's 7.86 at the default rate, and 8.13-8.69 against 8.67-9.41 at the 10 s plan's
rate 0.3; diamonds_mae 3% behind L1 at rate 0.05, level at 0.1, 2-9% ahead at 0.3).

Params: runtime/params.py declares them (SPACES["traditional"]), with their data-aware defaults;
`resolved` holds the values the last fit used.
"""

import lightgbm as lgb
import numpy as np

from runtime.params import SPACES, Data, folds_side_by_side
from runtime.recipe_steps import EstimatorModel, TargetScale

# LightGBM's own parameters among the declared ones (the rest are read by this module)
LGBM_KEYS = ("learning_rate", "num_leaves", "min_child_samples", "n_estimators", "subsample", "colsample_bytree",
             "reg_lambda", "min_data_per_group", "max_bin")
# regression metrics whose loss is not the squared error, and LightGBM's objective for each
OBJECTIVES = {"mae": "l1", "medae": "l1", "mape": "mape"}


def concurrent_folds(task: dict, profile: dict, params: dict, n_rows: int) -> int:
    """Folds the harness may fit side by side (see runtime.params.folds_side_by_side): each fit
    here shares no state with another and, below SINGLE_THREAD_ROWS, uses one thread."""
    kinds = {c.get("kind") for c in profile.get("columns", [])}
    data = Data(n=n_rows, task_type=task["task_type"], metric=task.get("metric", ""))
    if SPACES["traditional"].resolve(params, data)["n_jobs"] != 1:
        return 1
    return folds_side_by_side(n_rows, text="text" in kinds, images="image" in kinds)


class Model(EstimatorModel):
    """LGBMRegressor / LGBMClassifier with the metric's objective and early stopping (predict:
    runtime.recipe_steps.EstimatorModel)."""

    def settings(self, n: int, columns: list, positives: int = 0) -> dict:
        """LightGBM parameters for n training rows (`positives` of them the rarer class's, binary)
        and these columns; params override each default."""
        # A text model's prediction (features' text_pred*) is one strong, smooth column:
        # small trees use it without fitting its noise. Wide data (image features, pixels):
        # a third of the columns per tree and coarser bins cut a fold's time ~5x at no loss.
        text = any(str(c).startswith("text_pred") for c in columns)
        data = Data(n=n, columns=len(columns), task_type=self.task["task_type"], metric=self.task.get("metric", ""),
                    text_pred=text, positives=positives)
        self.resolved = SPACES["traditional"].resolve(self.params, data)
        r = self.resolved
        chosen = {k: r[k] for k in LGBM_KEYS}
        return dict(
            **chosen,
            subsample_freq=1,
            cat_smooth=10,
            random_state=r["seed"],
            n_jobs=r["n_jobs"],
            deterministic=True,
            force_col_wise=True,
            verbose=-1,
        )

    def objective(self) -> str:
        """The regression objective: the `objective` param, else the metric's own loss (absolute
        errors are scored by the median, not the mean: Huber on a logged target, L1 on any
        other), else squared error."""
        metric = self.task.get("metric")
        if self.resolved["objective"]:
            return self.resolved["objective"]
        if metric in ("mae", "medae") and self.target is not None and self.target.log:
            return "huber"
        return OBJECTIVES.get(metric, "regression")

    def loss_settings(self, objective: str) -> dict:
        """LightGBM's settings of that objective: Huber's delta (its `alpha`) from `huber_delta`."""
        return {"alpha": self.resolved["huber_delta"]} if objective == "huber" else {}

    def fit(self, X, y, X_valid=None, y_valid=None) -> "Model":
        """Fit LightGBM on the training part (on log1p(y) where the target scale says so), early
        stopping on the validation part."""
        positives = int(np.bincount(np.asarray(y).astype(int)).min()) if self.kind == "binary" and len(y) else 0
        config = self.settings(X.shape[0], list(getattr(X, "columns", range(X.shape[1]))), positives)
        if self.kind == "regression":
            self.target = TargetScale.fitted(self.task, self.resolved["log_target"], y)
            objective = self.objective()
            self.model = lgb.LGBMRegressor(objective=objective, **self.loss_settings(objective), **config)
            y, y_valid = self.target.forward(y), self.target.forward(y_valid)
        else:
            self.model = lgb.LGBMClassifier(**config)
        self.model.fit(X, y, **self.early_stopping(X_valid, y_valid))
        return self

    def early_stopping(self, X_valid, y_valid) -> dict:
        """The fit's keyword arguments that stop on the validation part ({} without one)."""
        if X_valid is None or y_valid is None:
            return {}
        # On separable classes log loss creeps down for ever; stop once it gains < min_delta.
        stop = lgb.early_stopping(self.resolved["early_stopping_rounds"], verbose=False, min_delta=self.resolved["min_delta"])
        return dict(eval_X=(X_valid,), eval_y=(y_valid,), callbacks=[stop])

    def full_fit_params(self) -> dict:
        """A fit on all rows has no validation part to stop on: it grows the trees early stopping chose."""
        return {"n_estimators": int(self.model.best_iteration_ or self.model.n_estimators)}
