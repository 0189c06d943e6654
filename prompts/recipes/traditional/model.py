"""Traditional track, model: LightGBM with early stopping on the fold's validation part.

For RMSLE the model learns log1p(target), the scale the metric measures errors on.
"""

import lightgbm as lgb
import numpy as np


class Model:
    def __init__(self, task: dict, params: dict):
        self.task = task
        self.params = params
        self.log_target = task["metric"] == "rmsle"

    def fit(self, X, y, X_valid=None, y_valid=None) -> "Model":
        p = self.params
        kind = self.task["task_type"]
        common = dict(
            n_estimators=p.get("n_estimators", 2000),
            learning_rate=p.get("learning_rate", 0.05),
            num_leaves=p.get("num_leaves", 31),
            min_child_samples=p.get("min_child_samples", 20),
            subsample=p.get("subsample", 0.8),
            subsample_freq=1,
            colsample_bytree=p.get("colsample_bytree", 0.8),
            reg_lambda=p.get("reg_lambda", 1.0),
            random_state=p.get("seed", 0),
            deterministic=True,
            force_col_wise=True,
            verbose=-1,
        )
        if kind == "regression":
            self.model = lgb.LGBMRegressor(**common)
            y = np.log1p(np.clip(y, 0, None)) if self.log_target else y
            if y_valid is not None and self.log_target:
                y_valid = np.log1p(np.clip(y_valid, 0, None))
        else:
            self.model = lgb.LGBMClassifier(**common)
        callbacks = []
        eval_set = None
        if X_valid is not None and y_valid is not None:
            eval_set = [(X_valid, y_valid)]
            callbacks.append(lgb.early_stopping(p.get("early_stopping_rounds", 100), verbose=False))
        self.model.fit(X, y, eval_set=eval_set, callbacks=callbacks)
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
