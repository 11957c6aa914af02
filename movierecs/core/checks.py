"Argument checks shared by every layer: one rule, and one message, for each kind of argument."
import math, os, stat
import numpy as np

__all__ = ['MAX_EPOCHS', 'MAX_RATE', 'positive_int', 'check_seed', 'finite', 'check_penalty', 'check_lr', 'check_wd', 'check_schedule',
           'plain_value', 'regular_size', 'shown']

def shown(v, width=80) -> str:
    "`repr(v)`, cut to `width` characters with '...' when longer: a value quoted in an error, however long it came."
    r = repr(v)
    return r if len(r) <= width else r[:width - 4] + '...'

def positive_int(v, name, what=''):
    "Raise a ValueError naming `name` unless `v` is an integer >= 1 (not a bool)."
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{name} must be a positive integer{what}, got {v!r}.")

def check_seed(seed):
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer from 0 to 2**32-1, got {seed!r}: "
                         "every result is seeded (the same seed gives the same numbers).")

def plain_value(v):
    "A numpy scalar or array as the Python value or list it holds; anything else as is."
    if isinstance(v, np.ndarray): return v.tolist()
    if isinstance(v, np.generic): return v.item()
    if isinstance(v, tuple) and any(isinstance(x, np.generic) for x in v): return tuple(plain_value(x) for x in v)
    return v

MAX_EPOCHS = 100_000

MAX_RATE = 1e6  # lr and wd: far past any that trains (float32 overflows near 3.4e38)

def finite(v) -> bool:
    "True for a finite real number (Python's or numpy's), never a bool."
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_)) and math.isfinite(v)

def check_penalty(v, name):
    "Raise a ValueError naming `name` unless `v` is a finite number >= 0 (an L2 weight, a sparsity penalty)."
    if not (finite(v) and v >= 0): raise ValueError(f"{name} must be a finite number >= 0, got {v!r}.")

def check_lr(lr):
    "The learning rate: positive, finite, at most `MAX_RATE`."
    if not (finite(lr) and 0 < lr <= MAX_RATE): raise ValueError(f"lr must be positive (a finite number up to {MAX_RATE:g}, e.g. 5e-3), "
                                                                 f"got {lr!r}.")

def check_wd(wd):
    "The weight decay: None (fastai's default) or zero or positive, finite, at most `MAX_RATE`."
    if wd is not None and not (finite(wd) and 0 <= wd <= MAX_RATE):
        raise ValueError(f"wd must be zero or positive (a finite number up to {MAX_RATE:g}, e.g. 0.1; None for fastai's default), "
                         f"got {wd!r}.")

def check_schedule(epochs, lr, wd):
    "Epochs, learning rate and weight decay of a fit: the one rule every layer applies."
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or not 0 < epochs <= MAX_EPOCHS:
        raise ValueError(f"epochs must be a positive integer (at most {MAX_EPOCHS:,}), got {epochs!r}.")
    check_lr(lr); check_wd(wd)

def regular_size(f) -> int | None:
    """The size in bytes of `f` when it is a regular file, the one kind movierecs reads whole (each caller refuses one over
    its cap before reading it); None when it is missing, or a folder, a device, a pipe or a socket."""
    try: st = os.stat(f)
    except (OSError, ValueError): return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None

