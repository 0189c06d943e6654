"""Pretrained track, model: a linear head on the sentence embeddings, stacked with the table.

The head reads the embedding columns (`enc_*`): LogisticRegression, or Ridge on the
standardised target (log1p first where runtime.recipe_steps.log_target says so). Its C is picked from `C_grid` by out-of-fold
loss over `inner_folds` folds of the training rows. When the table has other columns,
LightGBM (with the metric's objective: L1 for MAE) then combines the head's prediction (out of fold on the training rows, so it is as
noisy there as on new rows) with them, with early stopping on the fold's validation part;
with nothing else, the head's prediction is the answer. Without embedding columns (no text)
LightGBM reads the table alone.

Fine-tuning (`finetune`, set by the blueprint when its estimate fits the time): the fit is
prompts/recipes/pretrained/finetune.py's FineTuned instead, the encoders trained on the fold's
rows with early stopping on its validation part; the Features then hand over token ids, image
files and the table as numbers rather than embeddings.

Params: runtime/params.py declares them (SPACES["pretrained"]); `resolved` records the C the
inner folds chose, so refine moves it from there.
"""


import lightgbm as lgb
import numpy as np
from sklearn.linear_model import LogisticRegression, Ridge
from threadpoolctl import threadpool_limits

from runtime.params import SPACES, Data
from runtime.recipe_steps import (
    TargetScale,
    TaskModel,
    as_prediction,
    class_probabilities,
    in_class_order,
    inner_folds,
)

TREE_KEYS = ("n_estimators", "learning_rate", "num_leaves", "min_child_samples", "n_jobs", "early_stopping_rounds")


class Model(TaskModel):
    """A linear head on the embeddings (enc_*), then LightGBM on its prediction beside the table;
    or, with `finetune`, the encoders fine-tuned on the fold (FineTuned)."""

    def __init__(self, task: dict, params: dict):
        super().__init__(task, params)
        self.resolved = SPACES["pretrained"].resolve(params, Data(n=0))
        self.seed = self.resolved["seed"]
        self.tuned = None

    def fit(self, X, y, X_valid=None, y_valid=None) -> "Model":
        """Fit the head (C chosen over inner folds), then the trees on its out-of-fold
        prediction and the other columns, early stopping on the validation part; or, with
        `finetune`, the fine-tuned encoders (FineTuned)."""
        self.tuned = None
        if self.resolved["finetune"]:
            from prompts.recipes.pretrained.finetune import FineTuned

            self.tuned = FineTuned(self.task, self.params, frozen=Model).fit(X, y, X_valid, y_valid)
            self.resolved = self.tuned.resolved
            return self
        y = np.asarray(y)
        self.enc = [c for c in X.columns if str(c).startswith("enc_")]
        self.rest = [c for c in X.columns if c not in self.enc]
        self.head = self.trees = None
        self.target = TargetScale.fitted(self.task, self.resolved["log_target"], y, standardise=True) \
            if self.kind == "regression" else None
        stacked = X[self.rest]
        if self.enc:
            E = X[self.enc].to_numpy(dtype=np.float64)
            with threadpool_limits(limits=1):  # many small solver steps: threads only add hand-offs
                oof = self._fit_head(E, y)
            if not self.rest:
                return self  # the head is the whole model
            stacked = self._with_head(X[self.rest], oof)
        valid = None
        if X_valid is not None and y_valid is not None:
            valid = X_valid[self.rest]
            if self.enc:
                valid = self._with_head(valid, self._head_predict(X_valid[self.enc].to_numpy(dtype=np.float64)))
        self.trees = self._fit_trees(stacked, y, valid, y_valid)
        return self

    def predict(self, X) -> np.ndarray:
        """Regression: values on the target's scale; classification: probabilities in the task's order."""
        if self.tuned is not None:
            return self.tuned.predict(X)
        head = self._head_predict(X[self.enc].to_numpy(dtype=np.float64)) if self.enc else None
        if self.trees is None:
            if self.kind == "regression":
                return self.target.unlogged(head[:, 0])
            return head[:, 0] if self.kind == "binary" else head
        data = X[self.rest] if head is None else self._with_head(X[self.rest], head)
        if self.kind == "regression":
            return self.target.unlogged(self.trees.predict(data))
        return as_prediction(self.kind, class_probabilities(self.trees, data, self.k))

    # -- the linear head ------------------------------------------------------------------

    def _fit_head(self, E: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Fit the head on all rows; return its out-of-fold predictions for those rows."""
        target = self._head_target(y)
        folds = inner_folds(len(y), y, self.resolved["inner_folds"], self.kind, self.seed)
        r = SPACES["pretrained"].resolve(self.params, Data(n=len(y)))
        grid = [r["C"]] if r["C"] is not None else [float(c) for c in r["C_grid"]]
        best = None
        for C in grid:
            oof = np.zeros((len(y), self.k if self.kind == "multiclass" else 1))
            for tr, va in folds:
                self.head = self._linear(C).fit(E[tr], target[tr])
                oof[va] = self._head_predict(E[va])
            loss = self._head_loss(target, oof)
            if best is None or loss < best[0]:
                best = (loss, C, oof)
        _, self.C, oof = best
        self.resolved["C"] = self.C
        self.head = self._linear(self.C).fit(E, target)
        return oof

    def _head_target(self, y: np.ndarray) -> np.ndarray:
        """The head's target: class codes, or the value on the standardised (logged) scale."""
        return self.target.forward(y) if self.kind == "regression" else y.astype(int)

    def _linear(self, C: float):
        """Ridge (alpha = 1 / C) or LogisticRegression (C)."""
        return Ridge(alpha=1.0 / C) if self.kind == "regression" else LogisticRegression(C=C, max_iter=1000)

    def _head_predict(self, E: np.ndarray) -> np.ndarray:
        """Regression: (n, 1) on the training scale (log1p where the target is logged); binary:
        (n, 1) P(class 1); multiclass: (n, k) probabilities in the task's class order."""
        if self.kind == "regression":
            return self.target.unstandardised(self.head.predict(E)).reshape(-1, 1)
        proba = in_class_order(self.head.predict_proba(E), self.head.classes_, max(self.k, 2))
        return proba[:, 1:2] if self.kind == "binary" else proba

    def _head_loss(self, target: np.ndarray, pred: np.ndarray) -> float:
        """Squared error on the training scale, or log loss: what picks C."""
        if self.kind == "regression":
            return float(np.mean((self.target.unstandardised(target) - pred[:, 0]) ** 2))
        if self.kind == "binary":
            p = np.where(target == 1, pred[:, 0], 1 - pred[:, 0])
        else:
            p = pred[np.arange(len(target)), target]
        return float(-np.mean(np.log(np.clip(p, 1e-7, 1))))

    @staticmethod
    def _with_head(table, head: np.ndarray):
        """The table with the head's prediction as columns text_pred0.."""
        table = table.reset_index(drop=True).copy()
        for j in range(head.shape[1]):
            table[f"text_pred{j}"] = head[:, j]
        return table

    # -- LightGBM on the head's prediction + the table ------------------------------------

    def _fit_trees(self, X, y, X_valid, y_valid):
        """LightGBM (the metric's objective for regression, on the logged scale where the target
        is logged), early stopping on the validation part."""
        n = X.shape[0]
        p = SPACES["pretrained"].resolve(self.params, Data(n=n))
        self.resolved.update({k: p[k] for k in TREE_KEYS})
        config = dict(
            **{k: p[k] for k in TREE_KEYS if k != "early_stopping_rounds"},
            subsample=0.8, subsample_freq=1, reg_lambda=1.0,
            min_data_per_group=min(100, max(10, n // 50)), cat_smooth=10,
            random_state=self.seed, deterministic=True, force_col_wise=True, verbose=-1,
        )
        if self.kind == "regression":
            # the metric's own loss: absolute errors are scored by the median, not the mean
            objective = {"mae": "l1", "medae": "l1", "mape": "mape"}.get(self.task.get("metric"), "regression")
            trees = lgb.LGBMRegressor(objective=objective, **config)
            y = self.target.logged(y)
            y_valid = None if y_valid is None else self.target.logged(y_valid)
        else:
            trees = lgb.LGBMClassifier(**config)
        fit_args = {}
        if X_valid is not None and y_valid is not None:
            rounds = p["early_stopping_rounds"]
            stop = lgb.early_stopping(rounds, verbose=False, min_delta=0.0 if self.kind == "regression" else 1e-4)
            fit_args = dict(eval_X=(X_valid,), eval_y=(y_valid,), callbacks=[stop])
        return trees.fit(X, y, **fit_args)
