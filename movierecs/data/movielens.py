"Ratings frames: the notebook's `ratings` (or any release by name), Microsoft Recommenders' stratified split, synthetic ratings."
import re
from pathlib import Path
import numpy as np, pandas as pd
from ..core.errors import DataError
from .ml100k import _check_movies, _parse_udata, _parse_uitem, data_source, read_file
from ..core.checks import check_seed, positive_int
__all__ = ['load_ratings', 'stratified_split', 'synthetic_ratings']

def load_ratings(path=None, # ml-100k folder or zip (default: env `MOVIERECS_DATA`, else fastai's download); or a release name like 'ml-25m'
                 verify=True # Check the files' sha256 (a release: its md5 and README counts)
                ) -> pd.DataFrame:
    ("The notebook's `ratings`: `u.data` (user, movie, rating, timestamp) merged with titles from `u.item`; "
     "given a release name, `load_dataset(name)`.")
    if isinstance(path, str) and re.fullmatch(r'\s*ml[-_ ]\S*\s*', path, re.IGNORECASE):  # a release's name
        from .releases import DATASETS, load_dataset, _release
        here = Path(path).exists()  # e.g. the folder unzipping the release here leaves
        # keyed by movie id: titles repeat
        if path in DATASETS and path != 'ml-100k': return load_dataset(path, path if here else None, verify)
        if not here:
            if path != 'ml-100k': _release(path)  # not a release's name: the error names the valid ones
            path = None  # 'ml-100k': the notebook's frame, from MOVIERECS_DATA or fastai's download
    src = data_source(path)
    ratings, movies = _parse_udata(read_file(src, 'u.data', verify)), _parse_uitem(read_file(src, 'u.item', verify))
    _check_movies(ratings, movies, 'u.data')
    ratings = ratings.merge(movies)
    # pandas < 2.2 (the notebook's) grouped an inner merge's rows by key in order of first appearance; keep that order,
    # so `ratings.head()` and the rows a seeded split holds out match the notebook's
    return ratings.iloc[np.argsort(pd.factorize(ratings.movie)[0], kind='stable')].reset_index(drop=True)

def stratified_split(ratings:pd.DataFrame, # Ratings like `load_ratings()` (each movie's rows in u.data's order)
                     ratio=0.75, # Share of each group's rows that goes to training
                     by='movie', # The column to stratify by: 'movie' (Microsoft Recommenders' benchmark) or 'user'
                     seed=42 # Seed of the shuffle of each group
                    ) -> tuple:
    ("Microsoft Recommenders' `python_stratified_split` as their benchmark ran it: each group's rows shuffled by `RandomState(seed)`, "
     "the first round(ratio·n) to training.")
    if not 0 < ratio < 1: raise DataError(f"ratio must be between 0 and 1, got {ratio!r}.")
    if by not in ('movie', 'user') or by not in ratings.columns:
        raise DataError(f"by must be 'movie' or 'user', a column of ratings; got {by!r} (columns: {list(ratings.columns)}).")
    train = np.zeros(len(ratings), bool)
    for _, pos in ratings.groupby(by, sort=True).indices.items():
        perm = np.random.RandomState(seed).permutation(len(pos))  # pandas' sample(frac=1, random_state=seed)
        train[pos[perm[:round(ratio * len(pos))]]] = True  # Python's round: half to even, like theirs
    return ratings[train].reset_index(drop=True), ratings[~train].reset_index(drop=True)

def synthetic_ratings(n_users=100, # Number of users
                      n_movies=60, # Number of movies
                      n_factors=3, # Rank of the hidden taste model
                      density=0.5, # Fraction of (user, movie) pairs rated
                      noise=0.3, # Std of the rating noise
                      seed=0 # Seed of the generator
                     ) -> pd.DataFrame:
    "A ratings frame shaped like `load_ratings`, drawn from a known low-rank model with biases."
    for v, k in ((n_users, 'n_users'), (n_movies, 'n_movies'), (n_factors, 'n_factors')): positive_int(v, k)
    if n_users * n_movies > 10**8 or n_factors > 10**4:
        raise ValueError("n_users x n_movies must be at most 100,000,000 and n_factors at most 10,000, "
                         f"got {n_users:,} x {n_movies:,}, {n_factors:,}.")
    check_seed(seed)
    if not (isinstance(density, (int, float)) and 0 < density <= 1): raise ValueError(f"density must be in (0, 1], got {density!r}.")
    if not (isinstance(noise, (int, float)) and noise >= 0 and np.isfinite(noise)): raise ValueError(f"noise must be >= 0, got {noise!r}.")
    rng = np.random.default_rng(seed)
    u, m = rng.normal(0, 0.7, (n_users, n_factors)), rng.normal(0, 0.7, (n_movies, n_factors))
    ub, mb = rng.normal(0, 0.4, n_users), rng.normal(0, 0.5, n_movies)
    pairs = np.argwhere(rng.random((n_users, n_movies)) < density)
    ui, mi = pairs[:,0], pairs[:,1]
    score = 3.5 + ub[ui] + mb[mi] + (u[ui]*m[mi]).sum(1) + rng.normal(0, noise, len(pairs))
    return pd.DataFrame({'user': ui+1, 'movie': mi+1, 'rating': np.clip(np.rint(score), 1, 5).astype('int64'),
                         'timestamp': 880_000_000 + rng.integers(0, 10**7, len(pairs)),
                         'title': [f'Movie {i+1} (1990)' for i in mi]})
