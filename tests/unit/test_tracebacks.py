"""A failing attempt's traceback, as debug reads it: the framework's frames around the user's
modules (the Harness and the fold loop it runs) are dropped when the user's code failed, and
kept when the framework itself raised (a broken contract)."""

from runtime.cell_output import clean_traceback

RULER = "-" * 75
HEADER = "KeyError                                  Traceback (most recent call last)"
CELL = "Cell In[4], line 1\n----> 1 H.run_attempt('/runs/r/tracks/t/attempt_1', {})"
HARNESS = "File /repo/runtime/harness.py:210, in Harness._run_attempt(self, attempt_dir, params)\n--> 210 for j, va in fold_fits(...):"
FOLD_LOOP = "File /repo/runtime/fold_loop.py:160, in fit_fold(features_mod, model_mod)\n--> 160 model.fit(F_tr, yu_tr, F_va, yu_va)"
USER = "File /runs/r/tracks/t/attempt_1/model.py:12, in Model.fit(self, X, y)\n---> 12 raise KeyError('price')"


def test_the_fold_loop_s_frames_go_when_the_user_s_module_failed():
    text = clean_traceback([RULER, HEADER, CELL, HARNESS, FOLD_LOOP, USER, "KeyError: 'price'"])
    assert "model.py" in text and "KeyError: 'price'" in text
    assert "fold_loop.py" not in text and "harness.py" not in text


def test_the_fold_loop_s_frames_stay_when_it_raised_itself():
    raised = "File /repo/runtime/fold_loop.py:240, in checked_prediction(task, pred, rows)\n--> 240 raise ContractError(...)"
    text = clean_traceback([RULER, HEADER, CELL, HARNESS, raised, "ContractError: model.py: Model.predict returned NaN"])
    assert "fold_loop.py" in text and "checked_prediction" in text and "harness.py" in text
