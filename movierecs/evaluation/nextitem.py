"""Next-item evaluation: each user's last rating in time is the one to name; every movie the user has not rated is ranked (full
ranking, no sampled negatives), and the metrics of `evaluate_topn` score where the next movie lands."""
import time
import numpy as np, pandas as pd
from ..core.errors import DataError
from ..data.temporal import leave_last_out
from ..models.baselines import TopN
from .topn import KS, evaluate_topn, fit_topn
__all__ = ['next_split', 'next_carve_out', 'ListTopN', 'evaluate_next']

def next_split(ratings:pd.DataFrame, # Ratings like `load_ratings()`, with timestamps
               seed=42, # Seed of the rule that orders ratings made in the same second (`time_order`)
               item_name='title' # The item column
              ):
    "Leave one out in time: each user's last rating is the test, the rest is the training history (`leave_last_out(n=1)`)."
    return leave_last_out(ratings, 1, seed, item_name)

def next_carve_out(base:pd.DataFrame, # The training histories of `next_split`
                   seed=42, # As in `next_split`
                   item_name='title' # The item column
                  ):
    "The carve-out that choices are made on: each user's last training rating (their second-to-last), never the test one."
    return next_split(base, seed, item_name)  # the same split, one rating earlier

class ListTopN(TopN):
    "Ranked lists another program made (user, rank, item; rank 1 first) as a top-N method: unlisted items score -inf."
    def __init__(self, lists:pd.DataFrame # Columns user, rank and the item column
                ): self.lists = lists
    def _fit(self, ratings):
        missing = [c for c in ('user', 'rank', self.item_name) if c not in self.lists.columns]
        if missing: raise DataError(f"The lists lack column(s) {missing}: give user, rank and {self.item_name!r}.")
        u, i = pd.Index(self.users).get_indexer(self.lists.user), pd.Index(self.items).get_indexer(self.lists[self.item_name])
        bad = (u < 0) | (i < 0)
        if bad.any(): raise DataError(f"{int(bad.sum())} listed rows name a user or item outside the training rows: "
                                      "were the lists made from other rows?")
        self.table = np.full((len(self.users), len(self.items)), -np.inf)
        self.table[u, i] = -self.lists['rank'].to_numpy(float)
    def _score(self, u): return self.table[u]

def evaluate_next(method, # A baseline ('popular', 'recent_popular', 'markov', 'ease', ...), a run ('sasrec', 'mult_dae'), or a fitted TopN
                  split, # (train, test) from `next_split` (or any frames with user, item, rating, timestamp)
                  ks=KS, # List lengths to score
                  seed=42, # Seeds the method
                  item_name='title', # The item column
                  **params # The method's parameters, e.g. `lam` for 'ease', `days` for 'recent_popular', `epochs` for a run
                 ) -> list:
    ("Fit on the training histories (no validation rows: the test is read once, here), rank every movie each user has not "
     "rated, and score where their test movie lands: one row per k (hit_rate is HR@k; ndcg 1/log2(rank+1) when it is in the top k).")
    train, test = split
    if not isinstance(train, pd.DataFrame) or not isinstance(test, pd.DataFrame):
        raise DataError("split must be a (train, test) pair of frames, e.g. next_split(load_ratings()).")
    if isinstance(method, TopN): fitted, seconds = method, 0.
    else:
        start = time.perf_counter()
        fitted, _ = fit_topn(method, train, item_name, seed, **params)
        seconds = time.perf_counter() - start
    rows = evaluate_topn(fitted, (train, test), ks=ks, threshold=None, seed=seed, item_name=item_name)
    name = method if isinstance(method, str) else getattr(method, 'model', type(method).__name__)
    return [{**r, 'method': name, 'fit_seconds': round(seconds, 2)} for r in rows]
