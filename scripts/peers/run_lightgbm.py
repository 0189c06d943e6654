"""Peer: LightGBM with its default parameters (object columns as categories)."""

import lightgbm as lgb
import numpy as np

from peer_io import as_categories, load, proba_in_order, save, to_contract


def main() -> None:
    spec, X, y, X_test, work = load()
    X, X_test = as_categories(X, X_test)
    seed = spec["seed"]
    if spec["task_type"] in ("multilabel", "multitarget"):
        # several targets: LightGBM defaults fitted one target column at a time
        columns = []
        for j in range(y.shape[1]):
            if spec["task_type"] == "multitarget":
                columns.append(lgb.LGBMRegressor(random_state=seed, verbose=-1).fit(X, y[:, j]).predict(X_test))
            else:
                model = lgb.LGBMClassifier(random_state=seed, verbose=-1).fit(X, y[:, j])
                columns.append(proba_in_order(model.predict_proba(X_test), model.classes_, 2)[:, 1])
        pred = to_contract(spec, values=np.column_stack(columns), proba=np.column_stack(columns))
    elif spec["task_type"] == "regression":
        model = lgb.LGBMRegressor(random_state=seed, verbose=-1).fit(X, y)
        pred = to_contract(spec, values=model.predict(X_test))
    else:
        model = lgb.LGBMClassifier(random_state=seed, verbose=-1).fit(X, y)
        proba = proba_in_order(model.predict_proba(X_test), model.classes_, len(spec["classes"]))
        pred = to_contract(spec, proba=proba, labels=proba.argmax(axis=1))
    save(work, pred, {"peer": "lightgbm", "version": lgb.__version__})


if __name__ == "__main__":
    main()
