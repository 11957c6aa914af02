"Surprise's BaselineOnly, SVD and SVD++ on the very rows movierecs trains and scores (`pip install movierecs[bench]`)."
import time

import numpy as np

from .evaluate import RATING_RANGE, record, split_frames

__all__ = ['PEERS', 'peer_predict', 'evaluate_peer']

PEERS = ('BaselineOnly', 'SVD', 'SVDpp')  # Surprise's algorithms, each with its default settings

def _surprise():
    try: import surprise
    except ImportError: raise ImportError("The peers need scikit-surprise: pip install 'movierecs[bench]' "
                                          "(or pip install scikit-surprise).") from None
    return surprise

def peer_predict(name, # One of `PEERS`
                 base, # Training rows (user, title, rating): the notebook's item is the title
                 test, # Rows to predict
                 seed=42 # Seeds the algorithm's initialisation
                ) -> tuple:
    "Fit Surprise's `name` on `base`; its rating for every test row and the fit seconds."
    if name not in PEERS: raise ValueError(f"Unknown peer {name!r}. Valid peers: {', '.join(PEERS)}.")
    surprise = _surprise()
    data = surprise.Dataset.load_from_df(base[['user', 'title', 'rating']], surprise.Reader(rating_scale=RATING_RANGE))
    algo = getattr(surprise, name)(**({} if name == 'BaselineOnly' else dict(random_state=seed)))
    start = time.perf_counter()
    algo.fit(data.build_full_trainset())
    fit_seconds = time.perf_counter() - start
    # an unknown user or item gets Surprise's own fallback (the global mean, plus any bias it knows)
    return np.array([algo.predict(u, i).est for u, i in zip(test.user, test.title)]), fit_seconds

def evaluate_peer(name, # One of `PEERS`
                  split='u1', # One of `SPLITS`, or a (base, test) pair of frames
                  seed=42 # Seeds the algorithm
                 ) -> dict:
    "`evaluate`'s record for Surprise's `name`: RMSE and MAE on the split's test file."
    base, test = split_frames(split)
    pred, fit_seconds = peer_predict(name, base, test, seed)
    return record(f'surprise.{name}', split, seed, pred, base, test, fit_seconds)
