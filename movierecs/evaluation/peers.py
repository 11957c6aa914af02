("Peers on the very rows movierecs trains and scores (`pip install movierecs[bench]`): "
 "Surprise's BaselineOnly, SVD and SVD++ for ratings, implicit's ALS and BPR for top-N.")
import time
import numpy as np
from ..models.baselines import TopN
from .rating import RATING_RANGE, item_column, record, split_frames
__all__ = ['PEERS', 'peer_predict', 'evaluate_peer', 'IMPLICIT', 'ImplicitTopN']

PEERS = ('BaselineOnly', 'SVD', 'SVDpp')  # Surprise's algorithms, each with its default settings

def _surprise():
    try: import surprise
    except ImportError: raise ImportError("The peers need scikit-surprise: pip install 'movierecs[bench]' "
                                          "(or pip install scikit-surprise).") from None
    return surprise

def peer_predict(name, # One of `PEERS`
                 base, # Training rows (user, item, rating)
                 test, # Rows to predict
                 seed=42, # Seeds the algorithm's initialisation
                 item_name='title' # The item column: the notebook's 'title', or 'movie' (the id) on the canonical splits
                ) -> tuple:
    "Fit Surprise's `name` on `base`; its rating for every test row and the fit seconds."
    if name not in PEERS: raise ValueError(f"Unknown peer {name!r}. Valid peers: {', '.join(PEERS)}.")
    surprise = _surprise()
    data = surprise.Dataset.load_from_df(base[['user', item_name, 'rating']], surprise.Reader(rating_scale=RATING_RANGE))
    algo = getattr(surprise, name)(**({} if name == 'BaselineOnly' else dict(random_state=seed)))
    start = time.perf_counter()
    algo.fit(data.build_full_trainset())
    fit_seconds = time.perf_counter() - start
    # an unknown user or item gets Surprise's own fallback (the global mean, plus any bias it knows)
    return np.array([algo.predict(u, i).est for u, i in zip(test.user, test[item_name])]), fit_seconds

def evaluate_peer(name, # One of `PEERS`
                  split='u1', # One of `SPLITS`, or a (base, test) pair of frames
                  seed=42, # Seeds the algorithm
                  item_name=None # 'movie' (the id) or 'title'; default: `item_column(split)`
                 ) -> dict:
    "`evaluate`'s record for Surprise's `name`: RMSE and MAE on the split's test file."
    base, test = split_frames(split)
    item_name = item_column(split) if item_name is None else item_name
    pred, fit_seconds = peer_predict(name, base, test, seed, item_name)
    return record(f'surprise.{name}', split, seed, pred, base, test, fit_seconds, item_name)

IMPLICIT = ('als', 'bpr')  # implicit's AlternatingLeastSquares and BayesianPersonalizedRanking, on the binary rated-or-not matrix

def _implicit():
    try: import implicit
    except ImportError: raise ImportError("The implicit peers need implicit: pip install 'movierecs[bench]' "
                                          "(or pip install implicit).") from None
    return implicit

class ImplicitTopN(TopN):
    ("implicit's ALS or BPR (Hu et al. 2008; Rendle et al. 2009) as a top-N method on the rated-or-not matrix; "
     "one thread, so seeded runs repeat.")
    def __init__(self, algorithm='als', # One of `IMPLICIT`
                 seed=42, # implicit's `random_state`
                 **params # Algorithm's arguments (`factors`, `regularization`, `alpha`, `iterations`, `learning_rate`); default: implicit's
                ):
        if algorithm not in IMPLICIT: raise ValueError(f"Unknown implicit algorithm {algorithm!r}. Valid: {', '.join(IMPLICIT)}.")
        self.algorithm, self.seed, self.kw = algorithm, seed, params
    def __repr__(self): return f"ImplicitTopN({self.algorithm!r}, {', '.join(f'{k}={v!r}' for k, v in self.kw.items())})"
    def _fit(self, ratings):
        _implicit()
        from threadpoolctl import threadpool_limits
        if self.algorithm == 'als': from implicit.cpu.als import AlternatingLeastSquares as cls
        else: from implicit.cpu.bpr import BayesianPersonalizedRanking as cls
        with threadpool_limits(1, 'blas'):  # implicit checks the BLAS threads when the model is built
            self.model = cls(random_state=self.seed, num_threads=1, **self.kw)
            self.model.fit(self.seen.astype('float32').tocsr(), show_progress=False)
    def _score(self, u): return self.model.user_factors[u] @ self.model.item_factors.T
