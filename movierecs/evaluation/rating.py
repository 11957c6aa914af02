"Accuracy on ML-100k's canonical splits (u1-u5, ua, ub): `evaluate(name, split)` gives RMSE and MAE on the test file."
import time
import numpy as np
import pandas as pd
from ..data.ml100k import load_split
from ..train.experiments import train_model
from ..train.runs import get_experiment
__all__ = ['RATING_RANGE', 'split_frames', 'split_ratings', 'item_column', 'unseen', 'scores', 'predict', 'evaluate', 'fit_on', 'record']

RATING_RANGE = (1, 5)  # predictions are clipped to the ratings ML-100k allows before scoring

def split_ratings(base:pd.DataFrame, # Training rows, e.g. `load_split('u1')[0]`
                  test:pd.DataFrame # Rows to score
                 ) -> tuple:
    "One frame holding `base` then `test`, and the (train, valid) positions `dataloaders(splits=...)` takes."
    ratings = pd.concat([base, test], ignore_index=True)
    return ratings, (np.arange(len(base)), np.arange(len(base), len(ratings)))

def split_frames(split) -> tuple:
    "The (base, test) frames of `split`: a name from `SPLITS`, or a (base, test) pair given as is."
    if isinstance(split, str): return load_split(split)
    if not (isinstance(split, (tuple, list)) and len(split) == 2 and all(isinstance(f, pd.DataFrame) for f in split)):
        raise TypeError(f"split must be a name from SPLITS (e.g. 'u1') or a (base, test) pair of DataFrames, got {type(split).__name__}.")
    return tuple(split)

def item_column(split):
    "The item of `split`: the movie id on the canonical splits (as the published results and Surprise), else the notebook's title."
    return 'movie' if isinstance(split, str) else 'title'

def unseen(base, test, item_name='title') -> pd.Series:
    "True for the test rows whose user or item (`item_name`: the notebook's title, or the movie id) never appears in `base`."
    return ~test.user.isin(base.user) | ~test[item_name].isin(base[item_name])

def scores(pred, # Predicted ratings, one per test row
           target # True ratings
          ) -> dict:
    "RMSE and MAE of `pred`, clipped to `RATING_RANGE`, against `target`."
    err = np.clip(np.asarray(pred, dtype='float64'), *RATING_RANGE) - np.asarray(target, dtype='float64')
    return dict(rmse=float(np.sqrt(np.mean(err**2))), mae=float(np.mean(np.abs(err))))

def predict(learn, # A learner trained by `train_model(..., splits=...)` on `split_ratings(base, test)`
            base, test, # The frames it was trained and validated on
            preds=None # Its raw predictions for the test rows, if already made (e.g. averaged over epochs)
           ) -> np.ndarray:
    "The model's rating for every test row; rows with a user or movie unseen in `base` get `base`'s mean rating."
    if preds is None:
        with learn.no_bar(): preds = learn.get_preds(dl=learn.dls.valid)[0].reshape(-1).numpy().astype('float64')
    if len(preds) != len(test): raise ValueError(f"{len(preds)} predictions for {len(test)} test rows: train on split_ratings(base, test).")
    item = list(learn.dls.classes)[1]
    return np.where(unseen(base, test, item).to_numpy(), base.rating.mean(), preds)

def evaluate(name, # An experiment from `EXPERIMENTS` (its model, wd, epochs, lr)
             split='u1', # One of `SPLITS`, or a (base, test) pair of frames
             seed=42, # Seeds the initialisation and the shuffles
             item_name=None, # 'movie' (the id) or 'title'; default: `item_column(split)`
             **kwargs # Passed to `train_model` (`progress`, `fast`, `epochs`, `lr`, model arguments)
            ) -> dict:
    "Train experiment `name` on the split's base file, then score its clipped predictions on the test file."
    start = time.perf_counter()
    learn, base, test = fit_on(name, split, seed, item_name, **kwargs)
    return record(name, split, seed, predict(learn, base, test), base, test, time.perf_counter() - start, list(learn.dls.classes)[1])

def fit_on(name, split='u1', seed=42, item_name=None, **kwargs) -> tuple:
    "(learner, base, test): experiment `name` trained on the split's base file, the test rows its validation set."
    e = get_experiment(name)
    base, test = split_frames(split)
    ratings, splits = split_ratings(base, test)
    kwargs = {**dict(epochs=e.epochs, lr=e.lr, wd=e.wd, schedule=e.schedule, progress=False), **e.kwargs, **kwargs}
    item_name = item_column(split) if item_name is None else item_name
    return train_model(e.model, seed=seed, ratings=ratings, splits=splits, item_name=item_name, **kwargs), base, test

def record(method, split, seed, pred, base, test, fit_seconds, item_name='title') -> dict:
    "One result row: the scores of `pred` on `test`, and how many test rows hold a user or item `base` lacks."
    new_user, new_movie = ~test.user.isin(base.user), ~test[item_name].isin(base[item_name])
    return dict(method=method, split=split if isinstance(split, str) else 'custom', seed=seed,
                **scores(pred, test.rating), n_test=len(test), unseen_rows=int((new_user | new_movie).sum()),
                unseen_user_rows=int(new_user.sum()), unseen_movie_rows=int(new_movie.sum()), fit_seconds=round(fit_seconds, 1))
