"""Top-N evaluation: rank every movie a user has not rated in the base file (no sampled negatives), then score the top k
against the test file's relevant movies with the metrics LensKit and Microsoft Recommenders use."""
import inspect, time
import numpy as np, pandas as pd
import scipy.sparse as sp
from ..models.parts import rated_pairs
from ..models.baselines import BASELINES, TIME_BASELINES, TopN, interactions
from ..core.errors import DataError
from ..core.checks import positive_int
from .rating import split_frames
from ..engine.feedback import RELEVANT
from ..train.runs import DEFAULT_RANKER, EXPERIMENTS, NEXT_RUNS, RANKERS, RankingRun  # noqa: F401 (DEFAULT_RANKER: the module's documented default)
__all__ = ['RELEVANT', 'KS', 'METRICS', 'top_k', 'ranking_metrics', 'carve_out', 'LearnerTopN',
           'fit_topn', 'evaluate_topn', 'tune_topn']

KS = (10, 20)  # the list lengths scored by default

METRICS = ('precision', 'recall', 'ndcg', 'map', 'mrr', 'hit_rate')  # per-user metrics, averaged over the scored users

def _check_k(k): positive_int(k, 'k', ' (a list length)')

def top_k(scores:np.ndarray, # (users, items) scores, higher is better
          exclude, # (users, items) bool array or sparse matrix: items that may not be recommended (the user's base items)
          k=10 # List length
         ) -> np.ndarray:
    ("The `k` best-scored items of each row that are not excluded, best first; ties go to the lower column; "
     "-1 pads a row with fewer candidates.")
    _check_k(k)
    s = np.array(scores, dtype='float64')
    ex = exclude.toarray() if sp.issparse(exclude) else np.asarray(exclude, dtype=bool)
    s[ex.astype(bool) | np.isnan(s)] = -np.inf
    top = np.argsort(-s, axis=1, kind='stable')[:, :k]
    return np.where(np.isfinite(np.take_along_axis(s, top, 1)), top, -1)

def ranking_metrics(top:np.ndarray, # (users, >= k) recommended columns, best first (-1: none), as from `top_k`
                    relevant, # (users, items) bool sparse matrix or array: the relevant test items of each user
                    k=10 # Cut-off
                   ) -> pd.DataFrame:
    """One row per user, with binary relevance rel_i of the item at rank i and R the user's relevant items:
    precision = Σ_{i≤k} rel_i / k; recall = Σ_{i≤k} rel_i / |R|; hit_rate = 1 if any rel_i;
    ndcg = Σ_{i≤k} rel_i/log2(i+1) ÷ Σ_{i≤min(|R|,k)} 1/log2(i+1) (Järvelin & Kekäläinen 2002);
    map = Σ_{i≤k} rel_i·precision@i ÷ min(|R|, k) (implicit's and Spark's); map_msr = the same sum ÷ |R| (Microsoft
    Recommenders' published MAP); mrr = 1/(rank of the first relevant item), 0 if none in the top k."""
    _check_k(k)
    rel = sp.csr_matrix(relevant, dtype=bool)
    n_rel = np.asarray(rel.sum(1)).ravel()
    if (n_rel == 0).any(): raise ValueError("Every user scored needs at least one relevant item: drop the users without one.")
    top = np.asarray(top)[:, :k]
    rows = np.repeat(np.arange(len(top)), top.shape[1])
    hit = np.asarray(rel[rows, np.maximum(top.ravel(), 0)]).reshape(top.shape) & (top >= 0)
    ranks = np.arange(1, top.shape[1] + 1)
    disc = 1 / np.log2(ranks + 1)
    ideal = np.cumsum(1 / np.log2(np.arange(1, k + 1) + 1))[np.minimum(n_rel, k) - 1]
    n_hit = hit.sum(1)
    first = np.where(hit.any(1), hit.argmax(1) + 1, np.inf)
    ap = (hit * np.cumsum(hit, 1) / ranks).sum(1)
    return pd.DataFrame(dict(precision=n_hit / k, recall=n_hit / n_rel, ndcg=(hit * disc).sum(1) / ideal,
                             map=ap / np.minimum(n_rel, k), map_msr=ap / n_rel,
                             mrr=1 / first, hit_rate=(n_hit > 0).astype(float)))

def carve_out(base:pd.DataFrame, # The training rows to carve from
              frac=0.2, # Fraction of rows held out, as u1-u5 hold out 20% of the ratings
              seed=42 # Seed of the random draw
             ) -> tuple:
    "A seeded random (train, validation) split of `base`'s rows: choices are made on it, never on the test file."
    if not 0 < frac < 1: raise ValueError(f"frac must be between 0 and 1, got {frac!r}.")
    held = np.random.default_rng(seed).permutation(len(base))[:round(frac * len(base))]
    mask = np.zeros(len(base), bool); mask[held] = True
    return base[~mask].reset_index(drop=True), base[mask].reset_index(drop=True)

class LearnerTopN(TopN):
    "A trained fastai learner as a top-N method: a ranking model's scores, or a rating model's predicted ratings, for every item."
    def __init__(self, learn, chunk=2**20):
        self.learn, self.chunk = learn, chunk
        (_, users), (self.item_name, items) = learn.dls.classes.items()
        self.users, self.items = np.asarray(users[1:]), np.asarray(items[1:])  # fastai's `#na#` placeholder left out
        codes = rated_pairs(learn)
        codes = codes[(codes > 0).all(1)] - 1  # every pair the learner's rows hold (for `recommend`), `#na#` left out
        self.seen = sp.csr_matrix((np.ones(len(codes)), (codes[:, 0], codes[:, 1])), shape=(len(self.users), len(self.items)))
        self.seen.sum_duplicates(); self.seen.data[:] = 1

    def _score(self, u):
        import torch
        model = self.learn.model.eval()
        dev = next(model.parameters()).device
        codes = torch.as_tensor(u + 1, dtype=torch.long, device=dev)
        with torch.no_grad():
            if hasattr(model, 'scores'): out = model.scores(codes)[:, 1:]  # a ranking model scores every item at once
            else:  # a rating model predicts the rating of each (user, item) pair
                items = torch.arange(1, len(self.items) + 1, device=dev)
                per = max(1, self.chunk // len(self.items))
                out = torch.cat([model(torch.stack([c.repeat_interleave(len(items)), items.repeat(len(c))], 1)).reshape(len(c), -1)
                                 for c in codes.split(per)])
        return out.float().cpu().numpy()

def fit_topn(method, # A baseline ('popular', ...), a peer ('implicit.als', ...), a `RANKERS` name or `RankingRun`, an experiment
             base:pd.DataFrame, # Training rows
             item_name='movie', # The item column
             seed=42, # Seeds the method
             valid:pd.DataFrame=None, # Rows a fastai learner shows its validation loss on (never used to choose anything)
             **params # The method's parameters, e.g. `lam` for 'ease', `epochs` for an experiment
            ) -> tuple:
    "The method fitted on `base` (a `TopN`), and the seconds its fit took."
    start = time.perf_counter()
    if isinstance(method, RankingRun): method, run = '', method
    else: run = None
    known = {**BASELINES, **TIME_BASELINES}
    if method in known:
        takes = list(inspect.signature(known[method]).parameters)
        bad = [k for k in params if k not in takes]
        if bad: raise TypeError(f"{method!r} takes no parameter {', '.join(map(repr, bad))}; it takes "
                                f"{', '.join(takes) or 'none'} (list lengths go in ks=, e.g. ks=(10,)).")
        fitted = known[method](**params).fit(base, item_name)
    elif method.startswith('implicit.'):
        from .peers import ImplicitTopN
        fitted = ImplicitTopN(method.split('.', 1)[1], seed=seed, **params).fit(base, item_name)
    else:
        from ..train.experiments import train_model
        from .rating import split_ratings
        if run is None and method not in EXPERIMENTS and method not in RANKERS and method not in NEXT_RUNS:
            from .peers import IMPLICIT
            raise ValueError(f"Unknown top-N method {method!r}. Valid: {', '.join(known)}, "
                             f"{', '.join('implicit.' + m for m in IMPLICIT)}, a ranking run ({', '.join([*RANKERS, *NEXT_RUNS])}) "
                             f"or a rating experiment ({', '.join(EXPERIMENTS)}).")
        e = run or RANKERS.get(method) or NEXT_RUNS.get(method) or EXPERIMENTS[method]
        valid = base.iloc[:0] if valid is None else valid
        ratings, splits = split_ratings(base, valid[valid.user.isin(base.user) & valid[item_name].isin(base[item_name])])
        kw = {**dict(epochs=e.epochs, lr=e.lr, wd=e.wd, progress=False), **e.kwargs, **params}
        fitted = LearnerTopN(train_model(e.model, seed=seed, ratings=ratings, splits=splits, item_name=item_name, **kw))
    return fitted, time.perf_counter() - start

def _relevant(test, threshold):
    return test if threshold is None else test[test.rating >= threshold]

def evaluate_topn(method, # A name `fit_topn` knows, or a fitted `TopN` (then `fit_seconds` is 0)
                  split='u1', # One of `SPLITS`, or a (base, test) pair of frames
                  ks=KS, # List lengths to score
                  threshold=RELEVANT, # A test rating >= threshold is relevant; None: every test rating is
                  seed=42, # Seeds the method
                  item_name='movie', # Items are movie ids on the canonical splits (titles merge 18 pairs of movies)
                  chunk=1024, # Users scored at a time
                  **params # Passed to `fit_topn`
                 ) -> list:
    "Fit on the split's base file, rank every movie each test user has not rated there, score the top k: one row per k."
    base, test = split_frames(split)
    for what, f in (('base', base), ('test', test)):
        missing = [c for c in ('user', item_name, 'rating') if not isinstance(f, pd.DataFrame) or c not in f.columns]
        if missing: raise DataError(f"The {what} frame lacks column(s) {missing}: give frames like load_split()'s.")
    if base.empty: raise DataError("The base frame is empty: there is nothing to fit.")
    ks = list(np.atleast_1d(ks)) if not isinstance(ks, (int, np.integer)) else [ks]
    for k in ks: _check_k(k)
    ks = sorted({int(k) for k in ks})
    if not ks: raise ValueError("ks is empty: give at least one list length, e.g. ks=(10,).")
    if threshold is not None and not (isinstance(threshold, (int, float, np.number)) and np.isfinite(threshold)):
        raise ValueError(f"threshold must be a rating (e.g. 4) or None for every test rating, got {threshold!r}.")
    if not isinstance(method, (str, TopN, RankingRun)):
        raise TypeError(f"method must be a name, a RankingRun or a fitted TopN, got {type(method).__name__}.")
    if isinstance(method, TopN): fitted, fit_seconds, name = method, 0.0, type(method).__name__
    else: (fitted, fit_seconds), name = fit_topn(method, base, item_name, seed, valid=test, **params), getattr(method, 'model', method)
    catalog = np.union1d(base[item_name].unique(), test[item_name].unique())  # a movie only in the test file is a candidate too
    rel = _relevant(test, threshold)
    tested = np.unique(test.user)
    users = np.intersect1d(np.unique(rel.user), base.user.unique())
    exclude = interactions(base, users, catalog, item_name).astype(bool)
    # a test pair the base holds too is no candidate
    relevant = (interactions(rel, users, catalog, item_name).astype(bool) > exclude).tocsr()
    relevant.eliminate_zeros()
    keep = np.asarray(relevant.sum(1)).ravel() > 0
    users, exclude, relevant = users[keep], exclude[keep], relevant[keep]
    if not len(users):
        what = 'a test rating' if threshold is None else f'a test rating >= {threshold}'
        raise ValueError(f"No test user has a relevant movie ({what} of a movie they did not rate in the base file) among "
                         f"{len(tested)} test users: check the split (a test row repeating a pair of the base file is not scored)"
                         + ('' if threshold is None else ' and the threshold') + ".")
    counts = np.asarray(interactions(base, np.unique(base.user), catalog, item_name).sum(0)).ravel()
    cols = pd.Index(catalog).get_indexer(fitted.items)  # the method's items in the catalog; the rest score -inf
    if (cols < 0).any(): raise ValueError(f"{name} knows items outside the split: was it fitted on another data set?")
    tops = []
    for i in range(0, len(users), chunk):
        s = np.full((len(users[i:i+chunk]), len(catalog)), -np.inf)
        s[:, cols] = fitted.score(users[i:i+chunk])
        if np.isnan(s).any(): raise ValueError(f"{name} gave NaN scores: its fit failed (check its parameters).")
        tops.append(top_k(s, exclude[i:i+chunk], ks[-1]))
    top = np.concatenate(tops) if tops else np.zeros((0, ks[-1]), int)
    rows = []
    for k in ks:
        m, rec = ranking_metrics(top, relevant, k), top[:, :k][top[:, :k] >= 0]
        rows.append(dict(method=name, split=split if isinstance(split, str) else 'custom', k=k, **m.mean().to_dict(),
                         coverage=len(np.unique(rec)) / len(catalog), popularity=float(counts[rec].mean()) if len(rec) else 0.0,
                         users=len(users), skipped_users=len(tested) - len(users),  # no relevant test item, or absent from base
                         threshold=threshold, seed=seed, fit_seconds=round(fit_seconds, 2),
                         sd_ndcg=float(m.ndcg.std(ddof=1)) if len(m) > 1 else float('nan')))  # the spread over users
    return rows

def tune_topn(method, # A name `fit_topn` knows
              grid:list, # Parameter dicts to try, e.g. [dict(lam=100), dict(lam=500)]
              base:pd.DataFrame, # The training rows: the choice is made on a carve-out of them
              k=10, # The list length of the metric
              metric='ndcg', # The metric to maximise
              frac=0.2, # The carve-out's share of `base`
              seed=42, # Seeds the carve-out and the method
              **kwargs # Passed to `evaluate_topn` (`threshold`, `item_name`)
             ) -> tuple:
    "The parameters of `grid` with the best `metric`@k on a seeded carve-out of `base` (never a test file), and every row tried."
    if not grid: raise ValueError("grid is empty: give at least one parameter dict.")
    if metric not in METRICS: raise ValueError(f"Unknown metric {metric!r}. Valid: {', '.join(METRICS)}.")
    train, held = carve_out(base, frac, seed)
    rows = [{**evaluate_topn(method, (train, held), ks=(k,), seed=seed, **kwargs, **p)[0], 'params': p} for p in grid]
    best = max(range(len(rows)), key=lambda i: (rows[i][metric], -i))
    return grid[best], rows
