"""Collab loaders straight from a ratings frame (the default `dataloaders` path): user and item ids factorized into int64
tensors with fastai's split, vocabulary and codes, without its `TabularPandas` (which copies the frame, shrinks its dtypes
and lists every row position as a Python int). fastai's own loaders are built only when something asks for what they
alone have (`show_batch`, `dataset`, ...)."""
import random, warnings
import numpy as np, pandas as pd, torch
from fastai.data.core import DataLoaders
from fastai.data.transforms import CategoryMap
from fastai.tabular.core import df_shrink_dtypes
from .fastai_glue import FASTAI_LOADER_ATTRS
from .tensors import VAL_BS, TensorDataLoader
__all__ = ['direct_ok', 'snapshot', 'random_split', 'encode', 'CollabRows', 'tensor_dataloaders']

def direct_ok(ratings, cols) -> bool:
    "Whether `cols` hold numpy integers or text, whose codes `encode` gives as fastai does (other dtypes take fastai's path)."
    def plain(t): return t == object or isinstance(t, pd.StringDtype) or isinstance(t, np.dtype) and np.issubdtype(t, np.signedinteger)  # noqa: E721 (a dtype equals object)
    return all(plain(ratings[c].dtype) for c in cols)

def snapshot(df:pd.DataFrame) -> pd.DataFrame:
    ("`df` as it is now, kept by later loaders' reads whatever the caller then does to it: "
     "a shallow copy where pandas copies on write (pandas >= 3), else a copy.")
    try: cow = int(pd.__version__.split('.')[0]) >= 3 or pd.get_option('mode.copy_on_write') is True
    except (ValueError, KeyError, pd.errors.OptionError): cow = False
    return df.copy(deep=not cow)

def random_split(n, valid_pct, seed) -> tuple:
    "fastai's `RandomSplitter(valid_pct, seed)` on `n` rows as two int64 arrays (the same rows, the same global torch seeding)."
    if seed is not None: torch.manual_seed(seed)
    idx = torch.randperm(n).numpy()
    cut = int(valid_pct * n)
    return idx[cut:], idx[:cut]

def encode(col:pd.Series, # A user or item column
           train:np.ndarray # Positions of the training rows
          ) -> tuple:
    "(codes of every row as int64, fastai's `CategoryMap`): what `Categorify` gives after `TabularPandas` shrinks the column."
    codes, uniq = pd.factorize(col)  # one hash pass; `uniq` in order of first appearance
    uniq = np.asarray(uniq)
    if col.dtype == object or pd.api.types.is_string_dtype(col):  # text: TabularPandas makes it categorical, all rows' values sorted
        cats = pd.Series(uniq).astype('category')
        vocab = CategoryMap(cats, add_na=True)
        lut = cats.cat.categories.get_indexer(uniq) + 1
    else:  # integers: the sorted ids the training rows hold, in the shrunk dtype; an id only in validation gets 0 ('#na#')
        uniq = uniq.astype(df_shrink_dtypes(col.to_frame('c')).get('c', col.dtype))  # fastai's own choice of the smallest int
        seen = np.bincount(codes[train], minlength=len(uniq)) > 0
        vocab = CategoryMap(pd.Series(uniq[seen]), add_na=True)
        lut = np.where(seen, np.searchsorted(np.sort(uniq[seen]), uniq) + 1, 0)
    return torch.from_numpy(lut.astype('int64')).index_select(0, torch.from_numpy(codes)), vocab  # torch's gather: on every core

class CollabRows:
    """One side (train or valid) of the rows, as the fast loaders' `src`: the vocabulary (`classes`), `cat_names`, `y_names`
    and `items` (the frame's rows in loader order, ids replaced by their codes); the names of `FASTAI_LOADER_ATTRS` come from
    fastai's own loader, built once on first use; any other name is an AttributeError."""
    def __init__(self, ratings, pos, codes, classes, y_name, build, side):
        self.ratings, self.pos, self.codes, self.classes, self.build, self.side = ratings, pos, codes, classes, build, side
        self.cat_names, self.y_names = list(classes), [y_name]

    @property
    def items(self) -> pd.DataFrame:
        it = self.__dict__.get('_items')
        if it is None:
            it = self.ratings.iloc[self.pos]  # a copy
            for j, c in enumerate(self.cat_names): it[c] = self.codes[:, j]
            self._items = it
        return it

    def fastai_loader(self):
        "fastai's loader of these rows (`CollabDataLoaders.from_df`'s), built once for both sides; the global RNGs are left as they were."
        shared = self.build
        if shared.get('dls') is None:
            state = random.getstate()
            with torch.random.fork_rng(devices=[]): shared['dls'] = shared['make']()
            random.setstate(state)
        return shared['dls'][self.side]

    def __getattr__(self, k):
        if k.startswith('__') or 'build' not in self.__dict__: raise AttributeError(k)  # not set up yet (unpickling): nothing to ask
        if k not in FASTAI_LOADER_ATTRS:  # a name fastai's loader lacks too: no build to find that out
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {k!r} "
                                 "(fastai's own loader, built on demand, has only FASTAI_LOADER_ATTRS)")
        return getattr(self.fastai_loader(), k)

def tensor_dataloaders(ratings, # A checked ratings frame
                       bs, # Training batch size
                       valid_pct, # Share of rows held out, when `splits` is None
                       seed, # Seed of the split and of the training permutations
                       splits, # (train, valid) positions, or None
                       item_name, # The item column
                       make, # A function of no argument returning fastai's `DataLoaders` of the same rows (built on demand)
                       val_bs=None, # Validation batch size; default: the larger of `VAL_BS` and bs
                       path='.' # `dls.path`
                      ) -> DataLoaders:
    ("The fast path's `DataLoaders` built from `ratings` directly: "
     "the rows, codes and vocabulary fastai's `CollabDataLoaders.from_df` gives.")
    train, valid = random_split(len(ratings), valid_pct, seed) if splits is None else (np.asarray(splits[0]), np.asarray(splits[1]))
    cols = ['user', item_name]
    with warnings.catch_warnings():  # pandas >= 3 hands out read-only arrays; they are only read (gathered into new tensors)
        warnings.filterwarnings('ignore', message='The given NumPy array is not writable', category=UserWarning)
        y = torch.from_numpy(ratings['rating'].to_numpy('float32', copy=True))
        ps = [torch.from_numpy(p.astype('int64', copy=False)) for p in (train, valid)]
    xs, classes = [torch.empty(len(p), len(cols), dtype=torch.long) for p in ps], {}
    for j, c in enumerate(cols):  # a column at a time: one column's codes in memory at once
        codes, classes[c] = encode(ratings[c], train)
        for x, p in zip(xs, ps): x[:, j] = codes.index_select(0, p)
        del codes
    shared = dict(make=make, dls=None)
    out = []
    for side, (pos, p, x, shuffle) in enumerate(((train, ps[0], xs[0], True), (valid, ps[1], xs[1], False))):
        src = CollabRows(ratings, pos, x.numpy(), classes, 'rating', shared, side)
        out.append(TensorDataLoader(x, y.index_select(0, p).reshape(-1, 1), bs=bs if shuffle else (val_bs or max(VAL_BS, bs)),
                                    shuffle=shuffle, drop_last=shuffle, seed=seed if shuffle else None, src=src))
    return DataLoaders(*out, path=path)
