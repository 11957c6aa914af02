("Each user's history in time order, for the sequential models: left-padded windows of item codes, "
 "served as a true permutation of the users every epoch.")
import numpy as np
import torch
from fastai.data.core import DataLoaders
from ..core.checks import positive_int
from ..core.errors import DataError
from ..data.temporal import time_order
from .tensors import TensorDataLoader
__all__ = ['PAD', 'MAX_LEN', 'WINDOWS', 'histories', 'window', 'windows_of', 'sequence_dataloaders']

PAD = 0  # the padding code: fastai's '#na#' item, which no rating holds

MAX_LEN = 200  # the longest history a sequential model reads (SASRec's ML-1M setting); older items are left out

def histories(dl, # A collab loader (`dls.train` or `dls.valid`): its items keep the ratings' timestamp column
              seed=42 # Seed of the tie rule: ratings with the same timestamp, ordered by a seeded rank of the item
             ) -> dict:
    "{user code: the item codes the user rated in `dl`, oldest first}; the order is `data.temporal.time_order`'s."
    items = dl.items
    user, item = list(dl.classes)
    if items.empty: return {}
    if 'timestamp' not in items.columns:
        raise DataError("The ratings have no timestamp column: a sequential model needs each rating's time (u.data's 4th column).")
    rows = items.iloc[time_order(items, seed=seed, item=item)]
    u, i = rows[user].to_numpy('int64'), rows[item].to_numpy('int64')
    cuts = np.flatnonzero(np.diff(u)) + 1
    return {int(us[0]): its for us, its in zip(np.split(u, cuts), np.split(i, cuts)) if len(us)}

def window(seq, # Item codes, oldest first
           max_len=MAX_LEN # Window length
          ) -> torch.Tensor:
    "The last `max_len` codes of `seq`, left-padded with `PAD`: the newest item is always at the last position."
    out = torch.full((max_len,), PAD, dtype=torch.long)
    seq = torch.tensor(np.asarray(seq, dtype='int64')[-max_len:])  # a copy: the frame's arrays may be read-only
    if len(seq): out[-len(seq):] = seq
    return out

WINDOWS = ('last', 'all')  # what a training epoch reads of each user: the newest `max_len` items, or every item

def windows_of(seq, # Item codes, oldest first (two or more)
               max_len=MAX_LEN, # Window length
               which='last' # 'last': the newest `max_len` items; 'all': every item, in consecutive windows, the newest last
              ) -> tuple:
    ("(x, y) stacks of left-padded windows: y is the item after each of x's. 'all' cuts the pairs into consecutive windows "
     "ending at the newest, so each (item, next item) pair is in exactly one window.")
    seq = np.asarray(seq, dtype='int64')
    x, y = seq[:-1], seq[1:]
    ends = [len(x)] if which == 'last' else list(range(len(x), 0, -max_len))
    return (torch.stack([window(x[max(0, e - max_len):e], max_len) for e in ends]),
            torch.stack([window(y[max(0, e - max_len):e], max_len) for e in ends]))

def sequence_dataloaders(dls, # Collab `DataLoaders` from `movierecs.dataloaders` (their vocabulary and split are kept)
                         max_len=MAX_LEN, # The window a model reads: each user's newest `max_len` items
                         bs=128, # Windows per batch (one a user with `windows='last'`)
                         seed=None, # Seed of the permutations; default: torch's initial seed (set by `train_model`)
                         tie_seed=42, # Seed of the rule that orders ratings made in the same second (`histories`)
                         windows='last' # 'last': each user's newest `max_len` items (SASRec's paper); 'all': every training
                                        # rating once an epoch, a long history cut into consecutive windows of `max_len`
                        ) -> DataLoaders:
    """Next-item training on each user's time-ordered training ratings: x is a window of items, y the item after each one
    (`PAD` where there is none). Every user with two or more training ratings comes once per epoch (each of their windows
    once, with `windows='all'`), in a new order each epoch.
    Validation: each user's training window as x, and the first of their validation items in time as y (fastai's `accuracy`
    is then the hit rate at 1). `dls.history` holds every user's training window (for scoring), by user code."""
    positive_int(max_len, 'max_len'); positive_int(bs, 'bs')
    if windows not in WINDOWS: raise ValueError(f"windows must be one of {WINDOWS}, got {windows!r}.")
    n_users = len(dls.classes[list(dls.classes)[0]])
    train, valid = histories(dls.train, tie_seed), histories(dls.valid, tie_seed)
    history = torch.full((n_users, max_len), PAD, dtype=torch.long)
    for u, s in train.items(): history[u] = window(s, max_len)
    users = [u for u in sorted(train) if len(train[u]) >= 2]
    if not users: raise DataError("No user has two training ratings: there is no next item to learn from.")
    xs, ys = zip(*(windows_of(train[u], max_len, windows) for u in users))
    x, y = torch.cat(xs), torch.cat(ys)
    vu = [u for u in sorted(valid) if u in train]
    vx = history[vu] if vu else torch.zeros((0, max_len), dtype=torch.long)
    vy = torch.as_tensor([int(valid[u][0]) for u in vu], dtype=torch.long)
    out = DataLoaders(TensorDataLoader(x, y, bs=bs, shuffle=True, drop_last=False, seed=seed, src=dls.train),
                      TensorDataLoader(vx, vy, bs=bs, drop_last=False, src=dls.valid), path=dls.path)
    out.history, out.max_len = history, max_len
    return out
