("Closed-form top-N baselines that every ranking table needs: most popular, item-based kNN (cosine), EASE^R; and the two that "
 "read time: recent popularity and the next-item Markov chain.")
import numpy as np, pandas as pd
import scipy.sparse as sp
from ..core.errors import DataError
from ..core.checks import positive_int
from ..data.temporal import time_order
__all__ = ['TopN', 'Popular', 'ItemKNN', 'EASE', 'RecentPopular', 'Markov', 'BASELINES', 'TIME_BASELINES', 'interactions']

def interactions(ratings:pd.DataFrame, # Rows with `user`, the item column and `rating`
                 users, # User keys: the matrix's rows, in order
                 items, # Item keys: its columns, in order
                 item_name='movie' # The item column
                ) -> sp.csr_matrix:
    "The binary users x items matrix of who rated what in `ratings`; rows of unknown users or items are dropped."
    u, i = pd.Index(users).get_indexer(ratings.user), pd.Index(items).get_indexer(ratings[item_name])
    keep = (u >= 0) & (i >= 0)
    m = sp.csr_matrix((np.ones(int(keep.sum())), (u[keep], i[keep])), shape=(len(users), len(items)))
    m.sum_duplicates()
    m.data[:] = 1
    return m

class TopN:
    "A top-N method: `fit(ratings)` on (user, item) rows, then `score(users)` ranks every item it knows for those users."
    def fit(self, ratings:pd.DataFrame, # Training rows: `user`, the item column, `rating`
            item_name='movie' # The item column: 'movie' (the id, as on the canonical splits) or 'title'
           ):
        "Learn from `ratings`; every rated pair counts as an interaction, whatever its rating."
        if not isinstance(ratings, pd.DataFrame): raise DataError(f"ratings must be a pandas DataFrame, got {type(ratings).__name__}.")
        missing = [c for c in ('user', item_name) if c not in ratings.columns]
        if missing: raise DataError(f"ratings lacks column(s) {missing}; it has {list(ratings.columns)}.")
        if ratings.empty: raise DataError("ratings is empty: there is nothing to fit.")
        self.item_name, self.users, self.items = item_name, np.unique(ratings.user), np.unique(ratings[item_name])
        self.seen = interactions(ratings, self.users, self.items, item_name)
        self._fit(ratings)
        return self

    def _codes(self, users):
        if not hasattr(self, 'users'): raise ValueError(f"{type(self).__name__} is not fitted: call fit(base) first.")
        u = pd.Index(self.users).get_indexer(np.atleast_1d(users))
        if (u < 0).any():
            bad = np.atleast_1d(users)[u < 0][:3].tolist()
            raise KeyError(f"User(s) {bad} not in the training data ({len(self.users)} users, e.g. {self.users[:3].tolist()}).")
        return u

    def score(self, users) -> np.ndarray:
        "Scores of every item in `self.items` (columns) for each user key in `users` (rows): higher is better."
        return self._score(self._codes(users))

    def recommend(self, user, # A user key, e.g. 196
                  n=10 # How many items
                 ) -> pd.Series:
        "The `n` best-scored items the user has not rated, with their scores."
        positive_int(n, 'n')
        if np.ndim(user) != 0: raise TypeError(f"recommend takes one user, got {user!r}: call it once per user, or use score().")
        u = self._codes(user)
        s = self._score(u)[0].astype('float64')
        s[self.seen[u[0]].indices] = -np.inf
        top = np.argsort(-s, kind='stable')[:n]
        top = top[np.isfinite(s[top])]
        return pd.Series(s[top], index=pd.Index(self.items[top], name=self.item_name), name='score')

    def __repr__(self):
        params = ', '.join(f'{k}={v!r}' for k, v in vars(self).items() if k in self.params)
        return f'{type(self).__name__}({params})'
    params = ()

class Popular(TopN):
    "The items rated by the most users in training, the same list for everyone."
    def _fit(self, ratings): self.counts = np.asarray(self.seen.sum(0)).ravel()
    def _score(self, u): return np.broadcast_to(self.counts.astype('float64'), (len(u), len(self.items))).copy()

class ItemKNN(TopN):
    ("Item-based kNN (Deshpande & Karypis 2004): cosine similarity of the items' user sets, the `k` nearest kept per item; "
     "a user's score is the sum over what they rated.")
    params = ('k',)
    def __init__(self, k=50 # Neighbours kept per item; None keeps them all
                ):
        if k is not None: positive_int(k, 'k', ' (neighbours per item) or None for all')
        self.k = k
    def _fit(self, ratings):
        x = self.seen.tocsc().astype('float64')
        co = (x.T @ x).toarray()
        norm = np.sqrt(np.diag(co)).clip(min=1e-12)
        sim = co / norm[:, None] / norm[None, :]
        np.fill_diagonal(sim, 0)
        if self.k is not None and self.k < len(sim) - 1:  # keep, for each target item (column), its k most similar items
            drop = np.argsort(-sim, axis=0, kind='stable')[self.k:]  # ties go to the lower item index
            np.put_along_axis(sim, drop, 0, axis=0)
        self.sim = sim
    def _score(self, u): return np.asarray(self.seen[u] @ self.sim)

class EASE(TopN):
    ("EASE^R (Steck, WWW 2019): a linear item-item autoencoder with a zero diagonal, in closed form: "
     "B = I - P diagMat(1/diag(P)), P = (XᵀX + λI)⁻¹.")
    params = ('lam',)
    def __init__(self, lam=500. # L2 regularisation λ; choose it on a carve-out of the training rows (`tune_topn`)
                ):
        if isinstance(lam, bool) or not isinstance(lam, (int, float, np.number)) or not (np.isfinite(lam) and lam > 0):
            raise ValueError(f"lam must be a finite positive number, got {lam!r}.")
        self.lam = lam
    def _fit(self, ratings):
        x = self.seen.astype('float64')
        g = (x.T @ x).toarray()
        g[np.diag_indices_from(g)] += self.lam
        p = np.linalg.inv(g)
        b = p / -np.diag(p)[None, :]
        np.fill_diagonal(b, 0)
        self.weights = b
    def _score(self, u): return np.asarray(self.seen[u] @ self.weights)

def _check_times(ratings):
    if 'timestamp' not in ratings.columns:
        raise DataError("ratings has no timestamp column: this method reads the time of each rating (u.data's 4th column).")

def _timed(ratings, item_name, seed=42):
    "`ratings` in `time_order`: each user's rows together, oldest first."
    _check_times(ratings)
    return ratings.iloc[time_order(ratings, seed=seed, item=item_name)]

class RecentPopular(TopN):
    ("The items rated most in the `days` before each user's latest training rating (Sun, SIGIR 2023: popularity at the time "
     "of the interaction), ties broken by popularity over all training time.")
    params = ('days', 'at')
    def __init__(self, days=28, # The window, in days before the user's latest rating; choose it on a carve-out
                 at=None # A timestamp where the window ends for every user (a global split's cut); None: each user's latest rating
                ):
        if isinstance(days, bool) or not isinstance(days, (int, float, np.number)) or not (np.isfinite(days) and days > 0):
            raise ValueError(f"days must be a finite positive number of days, got {days!r}.")
        if at is not None and (isinstance(at, bool) or not isinstance(at, (int, np.integer))):
            raise ValueError(f"at must be a timestamp (whole seconds) or None, got {at!r}.")
        self.days, self.at = days, at
    def _fit(self, ratings):
        _check_times(ratings)
        t = ratings.timestamp.to_numpy('int64')
        by_time = np.argsort(t, kind='stable')  # counts in a window of time: the order within a user does not matter here
        self.times, self.codes = t[by_time], pd.Index(self.items).get_indexer(ratings[self.item_name])[by_time]
        self.last = ratings.groupby('user').timestamp.max().reindex(self.users).to_numpy('int64')
        self.counts = np.asarray(self.seen.sum(0)).ravel()
    def _score(self, u):
        end = self.last[u] if self.at is None else np.full(len(u), self.at, 'int64')
        lo = np.searchsorted(self.times, end - self.days * 86400, 'left')
        hi = np.searchsorted(self.times, end, 'right')
        out = np.empty((len(u), len(self.items)))
        tie = self.counts / (self.counts.max() + 1)  # < 1: only breaks ties among equal recent counts
        for j, (a, b) in enumerate(zip(lo, hi)): out[j] = np.bincount(self.codes[a:b], minlength=len(self.items)) + tie
        return out

class Markov(TopN):
    ("A first-order Markov chain of what comes next: how often each item followed the user's latest one in the training "
     "histories (Rendle et al. 2010's transition counts), ties broken by popularity.")
    def _fit(self, ratings):
        r = _timed(ratings, self.item_name)
        u, i = r.user.to_numpy(), pd.Index(self.items).get_indexer(r[self.item_name])
        same = u[1:] == u[:-1]  # consecutive rows of one user: item i[k] followed by i[k+1]
        n = len(self.items)
        self.next = sp.csr_matrix((np.ones(int(same.sum())), (i[:-1][same], i[1:][same])), shape=(n, n))
        self.next.sum_duplicates()
        last = pd.Series(i, index=u).groupby(level=0).last()
        self.latest = last.reindex(self.users).to_numpy('int64')
        self.counts = np.asarray(self.seen.sum(0)).ravel()
    def _score(self, u):
        return self.next[self.latest[u]].toarray() + self.counts / (self.counts.max() + 1)

BASELINES = {'popular': Popular, 'itemknn': ItemKNN, 'ease': EASE}

TIME_BASELINES = {'recent_popular': RecentPopular, 'markov': Markov}  # the baselines that read the ratings' time
