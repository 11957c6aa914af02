"Training a registry model (`train_model`), the notebook's runs (`train_experiment`, `run_experiment`) and what a run records and shows."
import hashlib, sys, time
from contextlib import ExitStack
import numpy as np
import pandas as pd
from fastai.callback.core import Callback
from fastai.callback.progress import ProgressCallback  # noqa: F401 (adds Learner.no_bar)
from fastai.callback.schedule import fit_one_cycle  # noqa: F401 (adds Learner.fit_one_cycle)
from fastai.learner import Learner
from fastai.torch_core import set_seed
from fastprogress.core import format_time
from ..core.checks import check_seed, positive_int
from ..engine.loaders import dataloaders
from ..data.movielens import load_ratings
from ..models.registry import check_model, get_learner, trains_by_lbfgs
from ..engine.sparse import make_sparse
from ..core.checks import check_schedule
from .runs import SCHEDULES, get_experiment
__all__ = ['LossTable', 'EpochLines', 'train_model', 'train_experiment', 'run_experiment']

class LossTable(Callback):
    "Collect the per-epoch table fastai prints (epoch, train_loss, valid_loss, time) as `self.df`; `self.seconds` per epoch."
    order = 55  # after `Recorder` has computed the epoch's losses
    def __init__(self): self.rows, self.seconds, self.new_fit, self.in_train, self.active = [], [], False, False, False
    def before_fit(self):
        self.new_fit, self.in_train = True, False
        self.active = not hasattr(self.learn, 'lr_finder')  # `lr_find` is a fit too, but not one to tabulate
    def before_train(self):
        if not self.active: return
        if self.new_fit: self.rows, self.seconds, self.new_fit = [], [], False  # a fit that trains starts a new table
        self.in_train, self.start = True, time.perf_counter()
    def after_epoch(self):
        if not self.in_train: return  # `learn.validate()` fires fit and epoch events without training
        self.in_train = False
        train_loss, valid_loss = self.learn.recorder.values[-1][:2]
        self.seconds.append(time.perf_counter() - self.start)
        self.rows.append((self.epoch, float(train_loss), float('nan') if valid_loss is None else float(valid_loss),  # no valid rows: NaN
                          format_time(self.seconds[-1])))
    @property
    def df(self): return pd.DataFrame(self.rows, columns=['epoch', 'train_loss', 'valid_loss', 'time'])

class EpochLines(Callback):
    ("A line per epoch on stderr (`stream`): the epoch, its train loss and about how long the rest takes; on a terminal, one "
     "line rewritten in place. What a command shows while it trains, apart from its answer on stdout.")
    order = 56  # after `LossTable`
    def __init__(self, stream=None): self.stream = stream
    def before_fit(self): self.start, self.shown = time.perf_counter(), False
    def after_epoch(self):
        if getattr(self.learn, 'lr_finder', False) or not self.learn.recorder.values: return
        out = self.stream or sys.stderr
        done, n = self.epoch + 1, self.n_epoch
        spent = time.perf_counter() - self.start
        losses = self.learn.recorder.values[-1]
        valid = f', valid loss {float(losses[1]):.4f}' if len(losses) > 1 and losses[1] is not None else ''
        line = (f'  epoch {done}/{n}: train loss {float(losses[0]):.4f}{valid}, {spent:.0f} s'
                + (f', about {spent / done * (n - done):.0f} s left' if done < n else ', done'))
        tty = hasattr(out, 'isatty') and out.isatty()
        out.write(('\r' + line + '\033[K' + ('\n' if done == n else '')) if tty else line + '\n')
        out.flush()

_trained = {}  # train_model(..., cache=True): learners already trained in this process

def fingerprint(ratings):
    "A key of a frame's rows in their order (the same rows reordered are another frame: the positions in `splits` change meaning)."
    return hashlib.sha256(pd.util.hash_pandas_object(ratings, index=False).to_numpy().tobytes()).hexdigest(), ratings.shape

def train_model(model, # A name from `list_models()`
                epochs=5, # Epochs of the one-cycle schedule
                lr=None, # Peak learning rate; default 5e-3 (an L-BFGS model's step: 1)
                wd=None, # Weight decay; None is fastai's default (0.01)
                seed=42, # Seeds the train/valid split, the initialisation and the shuffling
                ratings=None, # Ratings frame; `load_ratings()` when None
                progress=True, # Show fastai's progress bar and loss table while training
                cache=False, # Reuse the learner an identical call already trained in this process
                fast=True, # Train from in-memory tensors with `FastLearner` (`movierecs.fast`); False: fastai's loaders and `Learner`
                splits=None, # (train, valid) row positions in `ratings`, instead of the seeded random 80/20 split
                item_name='title', # The item column: the notebook's 'title', or 'movie' (the id) as on the canonical splits
                schedule=None, # 'one_cycle': `fit_one_cycle(epochs, lr, wd=wd)`; 'fit': `fit(epochs, lr, wd=wd)`; default: the model's
                bs=64, # Training batch size (the notebook's 64); on the sparse path, scale `lr` with it
                sparse=False, # The sparse path (`movierecs.sparse`): sparse embedding gradients and a row-wise Adam
                **kwargs # Passed to `get_learner` (e.g. `n_factors`, `cbs`)
               ) -> Learner:
    "Seed, build `dls` and the learner of `model`, then `fit_one_cycle(epochs, lr, wd=wd)`; `learn.loss_table.df` has the losses."
    lbfgs = trains_by_lbfgs(model)  # also checks the name
    if lr is None: lr = 1. if lbfgs else 5e-3
    if schedule is None: schedule = 'fit' if lbfgs else 'one_cycle'
    if lbfgs and wd == 0: wd = None  # no weight decay is what it has
    if lbfgs and (schedule != 'fit' or wd is not None):
        raise ValueError(f"{model} trains by full-batch L-BFGS with a constant step: schedule='fit' and no wd (its own l2 "
                         f"argument regularises it), got schedule={schedule!r}, wd={wd!r}.")
    check_schedule(epochs, lr, wd)
    check_seed(seed)
    # numpy scalars as Python values (model.json)
    seed, epochs, lr, wd = int(seed), int(epochs), float(lr), None if wd is None else float(wd)
    check_model(model)  # before loading any data
    if schedule not in SCHEDULES: raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}.")
    if not isinstance(sparse, bool): raise TypeError(f"sparse must be True or False, got {sparse!r}.")
    if sparse and lbfgs: raise ValueError(f"{model} trains by full-batch L-BFGS: the sparse path (a row-wise Adam) does not apply.")
    positive_int(bs, 'bs'); bs = int(bs)
    if ratings is None: ratings = load_ratings()
    split_key = None if splits is None else tuple(hash(np.asarray(p).tobytes()) for p in splits)
    key = (model, epochs, lr, wd, seed, fast, fingerprint(ratings), split_key, item_name, schedule, bs, sparse,
           repr(sorted(kwargs.items())))
    if cache and key in _trained: return _trained[key]
    set_seed(seed, reproducible=True)
    learn = get_learner(model, dataloaders(ratings, seed=seed, fast=fast, splits=splits, item_name=item_name, bs=bs), **kwargs)
    if sparse: make_sparse(learn)
    learn.train_spec = dict(epochs=epochs, lr=lr, wd=wd, seed=seed, **({} if schedule == 'one_cycle' else dict(schedule=schedule)),
                            **({} if bs == 64 else dict(bs=bs)), **(dict(sparse=True) if sparse else {}))
    learn.add_cb(LossTable())
    with ExitStack() as quiet:
        if not progress: quiet.enter_context(learn.no_bar()); quiet.enter_context(learn.no_logging())
        (learn.fit_one_cycle if schedule == 'one_cycle' else learn.fit)(epochs, lr, wd=wd)
    if cache: _trained[key] = learn
    return learn

def train_experiment(name, # A name from `EXPERIMENTS`
                     seed=42, # Seeds the train/valid split, the initialisation and the shuffling
                     ratings=None, # Ratings frame; `load_ratings()` when None
                     epochs=None, # Override the experiment's epochs
                     lr=None, # Override the experiment's learning rate
                     **kwargs # Passed to `train_model` (`progress`, `cache`) and `get_learner` (`n_factors`, `cbs`)
                    ) -> Learner:
    "Train experiment `name` as the notebook did: its model, `fit_one_cycle(epochs, lr, wd=wd)`."
    e = get_experiment(name)
    return train_model(e.model, epochs=e.epochs if epochs is None else epochs, lr=e.lr if lr is None else lr,
                       wd=e.wd, seed=seed, ratings=ratings, schedule=e.schedule, **{**e.kwargs, **kwargs})

def run_experiment(name, seed=42, ratings=None, **kwargs) -> pd.DataFrame:
    "The per-epoch loss table (epoch, train_loss, valid_loss, time) of experiment `name`, as fastai prints it."
    return train_experiment(name, seed=seed, ratings=ratings, **kwargs).loss_table.df
