("`dls` for every model: `dataloaders(ratings)`, a true permutation every epoch (fastai's own loaders or in-memory tensors), "
 "and the checks that guard it.")
import random, warnings
from functools import partial
from collections import Counter
import numpy as np, pandas as pd, torch
from fastai.collab import CollabDataLoaders, TabularCollab
from fastai.data.block import TransformBlock
from fastai.tabular.core import Categorify, TabDataLoader, TabWeightedDL
from .tensors import fast_dataloaders
from .direct import direct_ok, snapshot, tensor_dataloaders
from ..core.errors import DataError
from ..core.checks import check_seed, positive_int
from ..data.movielens import load_ratings
__all__ = ['dataloaders', 'check_dls', 'epoch_rows', 'shuffle_stats']

def _check_splits(splits, n):
    "`splits` as two integer arrays of distinct row positions in 0..n-1, neither empty; a DataError naming the problem otherwise."
    try: train, valid = (np.asarray(p) for p in splits)
    except (TypeError, ValueError): raise DataError("splits must be a pair (train positions, valid positions).") from None
    for what, p in (('train', train), ('valid', valid)):
        if p.ndim != 1 or not (p.size == 0 or np.issubdtype(p.dtype, np.integer)):
            raise DataError(f"splits: the {what} positions must be a list of integer row positions, got dtype {p.dtype}.")
        if p.size == 0:
            if what == 'train': raise DataError("splits: the train set is empty: give it some rows (or use valid_pct).")
            continue  # training on every row (no validation) is allowed: `fit_topn` does it
        if p.min() < 0 or p.max() >= n:
            raise DataError(f"splits: {what} position {int(p.min() if p.min() < 0 else p.max())} is outside the {n} rows of ratings.")
        if len(np.unique(p)) != len(p): raise DataError(f"splits: the {what} positions repeat a row.")
    both = np.intersect1d(train, valid)
    if len(both): raise DataError(f"splits: {len(both)} rows are in both train and valid (e.g. row {int(both[0])}): they must not overlap.")
    return train, valid

def _check_ratings(ratings, item_name='title'):
    if not isinstance(ratings, pd.DataFrame):
        raise DataError(f"ratings must be a pandas DataFrame, got {type(ratings).__name__}: use load_ratings().")
    if item_name not in ('title', 'movie'): raise DataError(f"item_name must be 'title' or 'movie', got {item_name!r}.")
    dup = sorted({c for c in ratings.columns if list(ratings.columns).count(c) > 1}, key=str)
    if dup: raise DataError(f"ratings has more than one column named {', '.join(map(repr, dup))}: keep one of each.")
    missing = [c for c in ('user', item_name, 'rating') if c not in ratings.columns]
    if missing: raise DataError(f"ratings lacks column(s) {missing}; it has {list(ratings.columns)}. "
                                f"Build it with load_ratings() or give it user, {item_name} and rating columns"
                                + (" (or pass item_name='movie' to key movies by id)."
                                   if item_name == 'title' and 'movie' in ratings.columns else '.'))
    if ratings.empty: raise DataError("ratings is empty: there is nothing to train on. Check the filter that built it.")
    for col in ('user', item_name):
        kinds = {type(v).__name__ for v in ratings[col].drop_duplicates()}
        if len({'int' if k in ('int', 'int64', 'int32') else k for k in kinds}) > 1:
            raise DataError(f"ratings' {col} column mixes {' and '.join(sorted(kinds))} values: give every {col} the same type, "
                            f"e.g. ratings.assign({col}=ratings.{col}.astype(str)).")
    if (not pd.api.types.is_numeric_dtype(ratings.rating) or pd.api.types.is_bool_dtype(ratings.rating)
            or pd.api.types.is_complex_dtype(ratings.rating)):
        raise DataError(f"ratings' rating column holds {ratings.rating.dtype} values, not numbers: convert it, e.g. "
                        f"ratings.assign(rating=ratings.rating.astype(float)).")
    r = pd.to_numeric(ratings.rating, errors='coerce')
    if not np.isfinite(r.to_numpy(dtype=float)).all() or ratings[['user', item_name]].isna().any().any():
        raise DataError(f"ratings has missing or non-numeric values in user, {item_name} or rating: drop or fix those rows.")

LOADER_ARGS = ('val_bs', 'dl_type', 'dl_kwargs', 'device', 'num_workers', 'pin_memory', 'path')  # what `dataloaders` passes on to fastai

def dataloaders(ratings=None, # Ratings frame like `load_ratings()`; loaded when None
                bs=64, # Batch size
                valid_pct=0.2, # Fraction of rows held out for validation
                seed=42, # Seed of the random train/valid split and of the training shuffles
                splits=None, # (train, valid) row positions, instead of a random `valid_pct` split
                fast=True, # Serve batches from in-memory tensors (`loaders.tensor_dataloaders`); False: fastai's loaders, the faithful path
                item_name='title', # The item column: 'title' as in the notebook, or 'movie' (the id) as on the canonical splits
                **kwargs # Passed to `CollabDataLoaders.from_df` (its dl_type is TabDataLoader unless given), e.g. `val_bs`
               ):
    ("`CollabDataLoaders.from_df(ratings, item_name='title', dl_type=TabDataLoader)`, a true permutation every epoch; "
     "unless `fast=False`, the same rows and codes as tensors, built without fastai's `TabularPandas` (`loaders.tensor_dataloaders`).")
    odd = [k for k in kwargs if k not in LOADER_ARGS]
    if odd: raise TypeError(f"dataloaders() takes no argument {', '.join(map(repr, odd))}: it takes ratings, bs, valid_pct, seed, "
                            f"splits, fast, item_name and fastai's {', '.join(LOADER_ARGS)}.")
    if ratings is None: ratings = load_ratings()
    _check_ratings(ratings, item_name)
    if isinstance(valid_pct, bool) or not isinstance(valid_pct, (int, float, np.integer, np.floating)) or not 0 < valid_pct < 1:
        raise DataError(f"valid_pct must be a number between 0 and 1, e.g. 0.2, got {valid_pct!r}.")
    positive_int(bs, 'bs')
    check_seed(seed)
    seed = int(seed)  # numpy integers too: fastai's and Python's generators take only int
    if kwargs.get('val_bs') is not None: positive_int(kwargs['val_bs'], 'val_bs')
    if kwargs.get('device') is not None:
        try: dev = torch.device(kwargs['device'])
        except (RuntimeError, TypeError) as e: raise ValueError(f"device {kwargs['device']!r} is not a torch device ({e}): "
                                                                "give e.g. 'cpu' or 'cuda'.") from None
        if dev.type == 'cuda' and not torch.cuda.is_available(): raise ValueError(f"device {kwargs['device']!r}: "
                                                                                  "this machine has no CUDA device; use 'cpu'.")
    if splits is not None: splits = _check_splits(splits, len(ratings))
    n_train = len(ratings) - int(valid_pct*len(ratings)) if splits is None else len(splits[0])  # fastai's RandomSplitter's cut
    if n_train < bs:
        raise DataError(f"{len(ratings)} ratings leave fewer than bs={bs} training rows, and fastai drops the last "
                        f"partial batch: lower bs or give more ratings.")
    if fast and not any(k in kwargs for k in FASTAI_ONLY) and direct_ok(ratings, ['user', item_name]):
        ratings = snapshot(ratings)  # fastai's loaders and `items` are built later, from the rows as they are now
        make = partial(_fastai_dls, ratings, bs, valid_pct, seed, splits, item_name, **kwargs)
        return tensor_dataloaders(ratings, bs, valid_pct, seed, splits, item_name, make, val_bs=kwargs.get('val_bs'),
                                  path=kwargs.get('path', '.'))
    dls = _fastai_dls(ratings, bs, valid_pct, seed, splits, item_name, **kwargs)
    if not fast: return dls
    if type(dls.train) is not TabDataLoader:
        raise DataError(f"The fast path serves a uniform permutation and cannot replace dl_type={type(dls.train).__name__}: "
                        f"pass fast=False to keep fastai's loader (e.g. for weighted sampling).")
    return fast_dataloaders(dls, seed=seed, val_bs=kwargs.get('val_bs'))

# options only fastai's loaders take: the fast path wraps them
FASTAI_ONLY = ('dl_type', 'dl_kwargs', 'device', 'num_workers', 'pin_memory')

def _fastai_dls(ratings, bs, valid_pct, seed, splits, item_name, **kwargs):
    "fastai's `DataLoaders` of `ratings` (checked arguments): `CollabDataLoaders.from_df`, or its steps after the split for `splits`."
    dl_type = kwargs.pop('dl_type', TabDataLoader)  # not fastai's default TabWeightedDL, which samples with replacement
    with warnings.catch_warnings():
        # fastai makes its batches with torch.as_tensor(frame.values), which pandas >= 3 (copy-on-write) hands out read-only.
        # fastai only reads them, and torch says so once per process: here, where it first happens, not in a user's notebook.
        warnings.filterwarnings('ignore', message='The given NumPy array is not writable', category=UserWarning)
        if splits is None:
            dls = CollabDataLoaders.from_df(ratings, dl_type=dl_type, valid_pct=valid_pct, user_name='user',
                                            item_name=item_name, rating_name='rating', seed=seed, bs=bs, **kwargs)
        else:  # what `from_df` does after its `RandomSplitter`
            to = TabularCollab(ratings, [Categorify], ['user', item_name], y_names=['rating'], y_block=TransformBlock(),
                               splits=[list(splits[0]), list(splits[1])])
            dls = to.dataloaders(path=kwargs.pop('path', '.'), bs=bs, dl_type=dl_type, **kwargs)
    if seed is not None: dls.train.rng = random.Random(seed)  # the shuffles too, not only the split
    return check_dls(dls)

def check_dls(dls):
    "Return `dls` if its training loader visits every row once per epoch; raise on fastai's resampling `TabWeightedDL`."
    dl = dls.train
    if isinstance(dl, TabWeightedDL) and np.allclose(dl.wgts, dl.wgts[0]):
        raise DataError("dls.train is fastai's TabWeightedDL, which samples training rows with replacement "
                        "(about 63% distinct rows per epoch) and costs accuracy. Build dls with movierecs.dataloaders(), "
                        "or pass dl_type=TabDataLoader to CollabDataLoaders.from_df.")
    return dls

def epoch_rows(dl) -> np.ndarray:
    "The (user, item, rating) rows one pass over `dl` yields, in order: shape (rows, 3)."
    return np.concatenate([np.column_stack([x.cpu().numpy(), y.cpu().numpy().reshape(len(y), -1)]) for x, y in dl])

def shuffle_stats(dl, # A training loader, e.g. `dls.train`
                  epochs=2 # Passes to make over `dl`
                 ) -> dict:
    "How `epochs` passes over `dl` cover its dataset: rows per pass, rows seen more often than stored, orders repeated."
    ds = dl.dataset
    stored = Counter(map(tuple, np.column_stack([ds.xs.to_numpy(), ds.ys.to_numpy()]).astype(float).tolist()))
    passes = [epoch_rows(dl).astype(float) for _ in range(epochs)]
    def excess(rows): return sum((Counter(map(tuple, rows.tolist())) - stored).values())
    return dict(rows=len(ds), bs=dl.bs, drop_last=dl.drop_last, per_epoch=[len(p) for p in passes],
                distinct=[len(np.unique(p, axis=0)) for p in passes],
                excess=[excess(p) for p in passes],  # visits beyond a row's multiplicity: 0 for a permutation
                same_order=any(np.array_equal(a, b) for a, b in zip(passes, passes[1:])))
