"""Linear member of the traditional track, model: LogisticRegression (classification) or Ridge
on the standardised target (log1p first where runtime.recipe_steps.log_target says so: RMSLE,
skewed targets under absolute errors), on the sparse design matrix. Unlike trees it
extrapolates and adds smoothly, which is what a blend of trees lacks on small tables.

Params: runtime/params.py declares them (SPACES["linear"]).
"""

import numpy as np
from sklearn.linear_model import LogisticRegression, Ridge
from threadpoolctl import threadpool_limits

from runtime.params import SPACES, Data
from runtime.recipe_steps import EstimatorModel, TargetScale


class Model(EstimatorModel):
    """Ridge (alpha = 1 / C) or LogisticRegression (C), one BLAS thread (predict and
    full_fit_params: runtime.recipe_steps.EstimatorModel)."""

    def __init__(self, task: dict, params: dict):
        super().__init__(task, params)
        r = self.resolved = SPACES["linear"].resolve(params, Data(n=0))
        self.C, self.seed = r["C"], r["seed"]

    def fit(self, X, y, X_valid=None, y_valid=None) -> "Model":
        """Fit on the training part (the validation part is not used)."""
        y = np.asarray(y)
        with threadpool_limits(limits=1):  # many small solver steps: threads only add hand-offs
            if self.kind == "regression":
                self.target = TargetScale.fitted(self.task, self.resolved["log_target"], y, standardise=True)
                self.model = Ridge(alpha=1.0 / self.C).fit(X, self.target.forward(y))
            else:
                self.model = LogisticRegression(C=self.C, max_iter=2000, random_state=self.seed).fit(X, y.astype(int))
        return self
