"""Fallback model: scikit-learn's histogram gradient boosting, which accepts missing values."""

from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
)

from runtime.recipe_steps import EstimatorModel


class Model(EstimatorModel):
    """HistGradientBoostingRegressor / HistGradientBoostingClassifier, 200 iterations, seed 0
    (predict and full_fit_params: runtime.recipe_steps.EstimatorModel)."""

    def fit(self, X, y, X_valid=None, y_valid=None) -> "Model":
        """Fit on the training part (the validation part is not used)."""
        if self.kind == "regression":
            self.model = HistGradientBoostingRegressor(max_iter=200, random_state=0)
        else:
            self.model = HistGradientBoostingClassifier(max_iter=200, random_state=0)
        self.model.fit(X, y)
        return self
