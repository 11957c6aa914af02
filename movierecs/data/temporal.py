"Temporal splits of a ratings frame: the global cut in time, each user's last n ratings, each user's last fraction."
import numpy as np, pandas as pd
from ..core.checks import check_seed, finite, plain_value
from ..core.errors import DataError
__all__ = ['ITEM_COLS', 'DROPPED', 'TimeSplit', 'time_order', 'history_position', 'time_split', 'leave_last_out', 'last_fraction']

ITEM_COLS = ('movie', 'item', 'title')  # the item column when none is named: the first of these the frame has

DROPPED = {  # the keys of `TimeSplit.dropped`; every split has all of them
    'new_user_rows': "test rows of users with no training row (dropped)",
    'new_users': "the users of those rows",
    'new_movie_rows': "test rows of known users whose movie has no training row (dropped; a row of a new user counts only above)",
    'new_movies': "the movies of those rows",
    'unscored_users': "users with too few ratings to hold any out: all their rows are in train, none in test",
}

class TimeSplit(tuple):
    ("`(train, test)`, unpacked like `load_split` or `stratified_split`, with the `dropped` counts (see `DROPPED`), the `cut`, and "
     "`repeats`: test rows whose user has the same item in train too (rated again, or two movies of one title), kept and counted.")
    def __new__(cls, train, test, dropped, cut=None, how='', repeats=0):
        self = super().__new__(cls, (train, test))
        self.dropped, self.cut, self.how, self.repeats = dropped, cut, how, repeats
        return self
    def __getnewargs__(self): return (*self, self.dropped, self.cut, self.how, self.repeats)
    @property
    def n_dropped(self) -> int:
        "Rows of the input in neither train nor test: len(train) + len(test) + n_dropped == len(ratings)."
        return self.dropped['new_user_rows'] + self.dropped['new_movie_rows']
    def describe(self) -> str:
        "One line: the sizes, the rule, and what was dropped."
        d, (train, test) = self.dropped, self
        s = f"train {len(train):,} rows{' ' + self.how if self.cut is not None else ''}; test {len(test):,} rows"
        if self.cut is None: s += f" ({self.how})"
        if d['unscored_users']: s += f"; {d['unscored_users']:,} users unscored (all their rows in train)"
        if self.repeats: s += f"; {self.repeats:,} test rows repeat a (user, item) pair of train"
        return (s + f"; dropped {d['new_user_rows']:,} rows of {d['new_users']:,} new users, "
                f"{d['new_movie_rows']:,} rows of {d['new_movies']:,} new movies")
    def __repr__(self): return f'TimeSplit({self.describe()})'

def _check(ratings, item):
    "The item column's name, once `ratings` is checked to be a non-empty frame with user, item and numeric timestamps."
    if not isinstance(ratings, pd.DataFrame):
        raise DataError(f"ratings must be a pandas DataFrame like load_ratings(), got {type(ratings).__name__}.")
    cols = list(ratings.columns)
    twice = sorted({str(c) for c in ratings.columns[ratings.columns.duplicated()]})
    if twice: raise DataError(f"ratings has the column(s) {', '.join(twice)} more than once: keep one of each "
                              "(e.g. ratings.loc[:, ~ratings.columns.duplicated()]).")
    if item is None: item = next((c for c in ITEM_COLS if c in cols), None)
    for c, what in (('user', "'user' column"), ('timestamp', "'timestamp' column (Unix seconds, as u.data holds)"),
                    (item, f"item column ({' or '.join(map(repr, ITEM_COLS))}; or name yours with item=...)")):
        if c is None or c not in cols:
            raise DataError(f"ratings has no {what}: its columns are {cols}. Rename or add it (load_ratings() has them).")
    if ratings.empty: raise DataError("ratings is empty: there is nothing to split. Pass a frame with rows, like load_ratings().")
    ts = ratings.timestamp
    if not pd.api.types.is_numeric_dtype(ts) or pd.api.types.is_bool_dtype(ts) or pd.api.types.is_complex_dtype(ts):
        raise DataError(f"ratings.timestamp must be numeric (Unix seconds), got dtype {ts.dtype}: convert it, "
                        "e.g. pd.to_numeric(...) for strings or .astype('int64') // 10**9 for datetimes.")
    base = getattr(ts.dtype, 'numpy_dtype', None) or getattr(ts.dtype, 'subtype', None) or ts.dtype  # pandas' Float32, Sparse[...]
    if np.dtype(base) in (np.float16, np.float32):
        raise DataError(f"ratings.timestamp is {ts.dtype}, whose 11 or 24 bits of mantissa cannot hold times like Unix seconds (1e9 needs "
                        "30) exactly: ratings change order and ties. Read the timestamps as int64 (load_ratings does) or float64.")
    bad = ~np.isfinite(ts.to_numpy(float))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"ratings.timestamp has {int(bad.sum()):,} NaN or infinite value(s) (the first at row position {i}): "
                        "drop those rows or fill in their times.")
    for c in ('user', item):
        if ratings[c].isna().any(): raise DataError(f"ratings.{c} has {int(ratings[c].isna().sum()):,} missing value(s): drop those rows.")
    return item

def _places(ratings, seed, item):
    "(order, position in its user's history, size of its user's history): `time_order` and, per row, the other two."
    check_seed(seed)
    users = pd.factorize(ratings.user, sort=True)[0]
    ids, items = np.unique(ratings[item].to_numpy(), return_inverse=True)
    rank = np.random.default_rng(seed).permutation(len(ids))[items.ravel()]  # the seeded tie-break, a function of the item id only
    order = np.lexsort((rank, ratings.timestamp.to_numpy(), users))  # last key first; stable: full duplicates keep the frame's order
    u = users[order]
    pos, size = np.empty(len(u), 'int64'), np.bincount(users)[users]
    pos[order] = np.arange(len(u)) - np.searchsorted(u, u)  # a row's place minus its user's first place
    return order, pos, size

def time_order(ratings:pd.DataFrame, # Ratings like `load_ratings()`: user, an item column, timestamp
               seed=42, # Seed of the tie-break
               item=None # The item column; default the first of `ITEM_COLS` the frame has
              ) -> np.ndarray:
    ("The row positions of `ratings` sorted by user, then timestamp, then a seeded rank of the item: the ranks are "
     "`np.random.default_rng(seed).permutation(k)` given to the k sorted unique item ids, so the order does not depend on the frame's "
     "row order.")
    return _places(ratings, seed, _check(ratings, item))[0]

def history_position(ratings:pd.DataFrame, # Ratings like `load_ratings()`: user, an item column, timestamp
                     seed=42, # Seed of the tie-break
                     item=None # The item column; default the first of `ITEM_COLS` the frame has
                    ) -> np.ndarray:
    "Each row's place in its user's history in `time_order` (0: the user's first rating), in the frame's row order."
    return _places(ratings, seed, _check(ratings, item))[1]

def _split(ratings, test, item, cut=None, how='', unscored=0):
    "The `TimeSplit` of `ratings` into rows not in `test` and rows of `test` whose user and item are in train, the rest counted."
    train = ~test
    if not test.any():
        raise DataError(f"The split holds nothing out ({how}): no user has enough ratings for it. Hold out fewer ratings, or pass a "
                        "frame with longer histories.")
    new_user = test & ~ratings.user.isin(ratings.user[train]).to_numpy()
    new_item = test & ~new_user & ~ratings[item].isin(ratings[item][train]).to_numpy()
    keep = test & ~new_user & ~new_item
    if not keep.any():
        raise DataError(f"The split leaves nothing to score: all {int(test.sum()):,} held-out rows are of users or movies with no "
                        f"training row ({how}). Hold out fewer ratings, or pass a frame with longer histories.")
    dropped = {'new_user_rows': int(new_user.sum()), 'new_users': ratings.user[new_user].nunique(),
               'new_movie_rows': int(new_item.sum()), 'new_movies': ratings[item][new_item].nunique(), 'unscored_users': int(unscored)}
    users, items = pd.factorize(ratings.user)[0].astype('int64'), pd.factorize(ratings[item])[0].astype('int64')
    pairs = users * (int(items.max()) + 1) + items
    repeats = int(np.isin(pairs[keep], pairs[train]).sum())
    return TimeSplit(ratings[train].reset_index(drop=True), ratings[keep].reset_index(drop=True), dropped, cut, how, repeats)

def _date(t):
    "A timestamp (Unix seconds) as 'YYYY-MM-DD UTC (timestamp t)'."
    try: return f"{pd.Timestamp(t, unit='s'):%Y-%m-%d} UTC (timestamp {t:,})"
    except (ValueError, OverflowError): return f"timestamp {t:,}"

def time_split(ratings:pd.DataFrame, # Ratings like `load_ratings()`: user, an item column, timestamp
               quantile=0.8, # Share of the timestamps before the cut: the cut is the timestamp at this quantile
               cut=None, # The cut timestamp itself (Unix seconds); given, it overrides `quantile`
               item=None # The item column; default the first of `ITEM_COLS` the frame has
              ) -> TimeSplit:
    ("The global temporal split: train = rows before `cut` (default the timestamp at `quantile`, numpy's method='higher'), test = rows "
     "at or after it whose user and movie are in train; the other rows at or after it are dropped and counted in `.dropped`.")
    item = _check(ratings, item)
    ts = ratings.timestamp.to_numpy()
    if cut is None:
        if not (finite(quantile) and 0 < quantile < 1):
            raise DataError(f"quantile must be a number between 0 and 1 (e.g. 0.8), got {quantile!r}.")
        cut = np.quantile(ts, quantile, method='higher')
    elif not finite(cut): raise DataError(f"cut must be a finite timestamp (a number, Unix seconds), got {cut!r}.")
    cut = plain_value(cut)
    if not (ts < cut).any():
        raise DataError(f"cut {cut!r} leaves train empty: no rating is before it (the first is at {plain_value(ts.min())!r}). "
                        "Choose a later cut or a higher quantile.")
    if not (ts >= cut).any():
        raise DataError(f"cut {cut!r} leaves test empty: no rating is at or after it (the last is at {plain_value(ts.max())!r}). "
                        "Choose an earlier cut or a lower quantile.")
    return _split(ratings, ts >= cut, item, cut, f'before {_date(cut)}')

def leave_last_out(ratings:pd.DataFrame, # Ratings like `load_ratings()`: user, an item column, timestamp
                   n=1, # How many of each user's last ratings go to test
                   seed=42, # Seed of the tie-break of `time_order`
                   item=None # The item column; default the first of `ITEM_COLS` the frame has
                  ) -> TimeSplit:
    ("Each user's last `n` ratings in `time_order` to test, the rest to train; users with at most `n` ratings stay whole in train "
     "(counted as unscored), test rows of movies not in train are dropped and counted.")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise DataError(f"n must be a positive integer (how many of each user's last ratings to hold out, e.g. 1), got {n!r}.")
    item = _check(ratings, item)
    _, pos, size = _places(ratings, seed, item)
    return _split(ratings, (size > n) & (pos >= size - n), item, how=f"each user's last {n}",
                  unscored=ratings.user[size <= n].nunique())

def last_fraction(ratings:pd.DataFrame, # Ratings like `load_ratings()`: user, an item column, timestamp
                  frac=0.2, # Share of each user's ratings, the latest, that goes to test
                  seed=42, # Seed of the tie-break of `time_order`
                  item=None # The item column; default the first of `ITEM_COLS` the frame has
                 ) -> TimeSplit:
    ("Each user's last round-half-up(frac·n) ratings in `time_order` to test (at least 1 and at most n-1 of a user's n >= 2), the rest "
     "to train; users with one rating stay in train (counted as unscored), test rows of movies not in train are dropped and counted.")
    if not (finite(frac) and 0 < frac < 1): raise DataError(f"frac must be a number between 0 and 1 (e.g. 0.2), got {frac!r}.")
    item = _check(ratings, item)
    _, pos, size = _places(ratings, seed, item)
    k = np.floor(np.round(frac * size, 9) + 0.5)  # round(…, 9) first: 0.29·50 is 14.499999999999998 in floats
    k = np.where(size >= 2, np.clip(k, 1, np.maximum(size - 1, 1)), 0)
    return _split(ratings, pos >= size - k, item, how=f"each user's last {frac*100:g}%", unscored=ratings.user[size == 1].nunique())
