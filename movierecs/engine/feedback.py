("Implicit feedback for the ranking models: each user's row of rated movies, "
 "served from tensors as a true permutation of the users every epoch.")
import torch
from fastai.data.core import DataLoaders
from .tensors import VAL_BS, TensorDataLoader
__all__ = ['RELEVANT', 'row_weights', 'user_rows', 'rows_dataloaders']

RELEVANT = 4  # a rating at or above this is a movie the user liked

def row_weights(ratings, # Ratings, any shape
                low=1., # Weight of a rating below `RELEVANT` (a liked movie weighs 1); 1 treats every rating alike
                name='low' # The argument's name in error messages
               ):
    "The weight each rating carries in a user's row: 1 for a liked movie (rating >= `RELEVANT`), `low` for the others."
    if not 0 <= low <= 1: raise ValueError(f"{name} must be between 0 and 1, got {low!r}.")
    r = torch.as_tensor(ratings, dtype=torch.float32)
    return torch.where(r >= RELEVANT, torch.ones_like(r), torch.full_like(r, low))

def _codes(dl):
    "The (user code, item code) pairs and ratings of a collab loader's rows (fast or fastai's)."
    items = dl.items
    return (torch.from_numpy(items[list(dl.classes)].to_numpy('int64', copy=True)),
            torch.from_numpy(items[list(dl.y_names)].to_numpy('float32', copy=True)).reshape(-1))

def user_rows(dl, # A collab loader: `dls.train` or `dls.valid`
              shape, # (users, items) of the vocabulary, `#na#` included
              low=1., # Weight of a rating below `RELEVANT`
              name='low' # The argument's name in error messages
             ) -> torch.Tensor:
    "The dense (users, items) matrix of `dl`'s rows: each rated pair holds its `row_weights`, every other entry 0."
    x, r = _codes(dl)
    m = torch.zeros(shape)
    m.index_put_((x[:, 0], x[:, 1]), row_weights(r, low, name), accumulate=False)
    return m

def rows_dataloaders(dls, # Collab `DataLoaders` from `movierecs.dataloaders` (their vocabulary and split are kept)
                     bs=64, # Users per training batch
                     low=1., # Weight of a rating below `RELEVANT` in the target rows (0: only liked movies are targets)
                     low_in=1., # Weight of a rating below `RELEVANT` in the input rows (`history`)
                     seed=None # Seed of the permutations; default: torch's initial seed (set by `train_model`)
                    ) -> DataLoaders:
    """User rows for the ranking models: x is a batch of user codes, y their target rows (from the training rows for
    training, the validation rows for validation). Every user with a nonzero training target comes once per epoch (no
    `drop_last`), in a new order each epoch. `dls.history` is the training matrix the models read their input from."""
    shape = tuple(len(c) for c in dls.classes.values())
    train, valid = user_rows(dls.train, shape, low), user_rows(dls.valid, shape, low)
    history = train if low_in == low else user_rows(dls.train, shape, low_in, 'low_in')
    tu, vu = (torch.nonzero(m.sum(1)).reshape(-1) for m in (train, valid))
    out = DataLoaders(TensorDataLoader(tu, train[tu], bs=bs, shuffle=True, drop_last=False, seed=seed, src=dls.train),
                      TensorDataLoader(vu, valid[vu], bs=max(VAL_BS, bs), drop_last=False, src=dls.valid), path=dls.path)
    out.history = history
    return out
