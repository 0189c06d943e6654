"""Traditional track, model: LightGBM with early stopping on the fold's validation part.

Categorical columns arrive as pandas categories and are split on natively. For RMSLE the
model learns log1p(target), the scale the metric measures errors on. Defaults follow the
number of training rows n: small data gets smaller trees and a slower rate, large data a
faster rate so that five folds stay within seconds.

Params (all optional):
  learning_rate          0.05 (n < 50k), 0.1 above
  num_leaves             15 (n < 2k), 31 (n < 50k), 63 above; 7 with a text_pred* column
  min_child_samples      10 (n < 2k), 20 above; 30 with a text_pred* column
  n_estimators           2000   upper bound; early stopping picks the number of trees
  early_stopping_rounds  100 (n < 2k), 50 above
  min_delta              1e-4 (classification), 0 (regression): the least validation-loss
                         gain that counts as an improvement for early stopping
  subsample              0.8    row share per tree (bagging every iteration)
  colsample_bytree       1.0 (< 20 columns), 0.8 (<= 200), 0.3 above   column share per tree
  reg_lambda             1.0    L2 on leaf values
  objective              the metric's: l1 for MAE / median AE, mape for MAPE, else squared error
                         (regression; RMSLE learns log1p(y) with squared error)
  min_data_per_group     min(100, max(10, n // 50))  rows per category in a categorical split
  max_bin                255 (<= 200 columns), 63 above
  n_jobs                 1 (n < 100k), else OMP_NUM_THREADS: LightGBM's threads; on small data
                         (and on busy cores) more threads cost far more than they give
  seed                   0
"""

import os

import lightgbm as lgb
import numpy as np

WIDE = 200  # columns beyond which the data is wide (image features, pixels)
# regression metrics whose loss is not the squared error, and LightGBM's objective for each
OBJECTIVES = {"mae": "l1", "medae": "l1", "mape": "mape"}


class Model:
    def __init__(self, task: dict, params: dict):
        self.task = task
        self.params = params
        self.log_target = task["metric"] == "rmsle"

    def settings(self, n: int, columns: list) -> dict:
        """LightGBM parameters for n training rows and these columns; params override each default."""
        p = self.params
        # A text model's prediction (features' text_pred*) is one strong, smooth column:
        # small trees use it without fitting its noise.
        text = any(str(c).startswith("text_pred") for c in columns)
        defaults = dict(
            learning_rate=0.05 if n < 50_000 else 0.1,
            num_leaves=7 if text else 15 if n < 2_000 else 31 if n < 50_000 else 63,
            min_child_samples=30 if text else 10 if n < 2_000 else 20,
            n_estimators=2000,
            subsample=0.8,
            # wide data (image features, pixels): a third of the columns per tree and coarser bins
            # cut a fold's time ~5x at no loss (measured on 424 image features: 39 s -> 7 s)
            colsample_bytree=1.0 if len(columns) < 20 else 0.8 if len(columns) <= WIDE else 0.3,
            reg_lambda=1.0,
            min_data_per_group=min(100, max(10, n // 50)),
            max_bin=255 if len(columns) <= WIDE else 63,
        )
        chosen = {k: p.get(k, v) for k, v in defaults.items()}
        return dict(
            **chosen,
            subsample_freq=1,
            cat_smooth=10,
            random_state=int(p.get("seed", 0)),
            n_jobs=int(p.get("n_jobs", 1 if n < 100_000 else int(os.environ.get("OMP_NUM_THREADS", 1)))),
            deterministic=True,
            force_col_wise=True,
            verbose=-1,
        )

    def fit(self, X, y, X_valid=None, y_valid=None) -> "Model":
        kind = self.task["task_type"]
        n = X.shape[0]
        config = self.settings(n, list(getattr(X, "columns", range(X.shape[1]))))
        if kind == "regression":
            # the metric's own loss: absolute errors are scored by the median, not the mean
            objective = self.params.get("objective", OBJECTIVES.get(self.task.get("metric"), "regression"))
            self.model = lgb.LGBMRegressor(objective=objective, **config)
            if self.log_target:
                y = np.log1p(np.clip(y, 0, None))
                y_valid = None if y_valid is None else np.log1p(np.clip(y_valid, 0, None))
        else:
            self.model = lgb.LGBMClassifier(**config)
        fit_args = {}
        if X_valid is not None and y_valid is not None:
            rounds = int(self.params.get("early_stopping_rounds", 100 if n < 2_000 else 50))
            # On separable classes log loss creeps down for ever; stop once it gains < min_delta.
            delta = float(self.params.get("min_delta", 0.0 if kind == "regression" else 1e-4))
            stop = lgb.early_stopping(rounds, verbose=False, min_delta=delta)
            fit_args = dict(eval_X=(X_valid,), eval_y=(y_valid,), callbacks=[stop])
        self.model.fit(X, y, **fit_args)
        return self

    def predict(self, X) -> np.ndarray:
        kind = self.task["task_type"]
        if kind == "regression":
            pred = self.model.predict(X)
            return np.expm1(pred) if self.log_target else pred
        # A rare class can be absent from a fold's training part: place the columns the
        # model knows into the task's full class order.
        proba = np.zeros((X.shape[0], len(self.task["classes"])))
        proba[:, self.model.classes_] = self.model.predict_proba(X)
        return proba[:, 1] if kind == "binary" else proba
