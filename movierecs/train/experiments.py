"The notebook's training runs as data, and `run_experiment` to repeat any of them."
import functools, hashlib, time
from contextlib import ExitStack
from pathlib import Path
from dataclasses import dataclass, field
from typing import Optional
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
from ..models.registry import check_model, get_learner, list_models, trains_by_lbfgs
from ..engine.sparse import make_sparse
from ..core.checks import check_schedule
__all__ = ['USER_BAR', 'SLACK', 'SPREAD_K', 'MIN_SEEDS', 'SEEDS_CSV', 'spread_bars', 'SCHEDULES', 'GROUPS', 'Experiment', 'EXPERIMENTS',
           'group_names', 'get_experiment', 'LossTable', 'train_model', 'train_experiment', 'run_experiment']

USER_BAR = 0.85  # the user's bar for the weight-decayed dot-product models and fastai's collab_learner

SLACK = 0.03     # every other run must beat its published value (the notebook's, else fastbook's) + SLACK

SPREAD_K = 3     # and every run must beat its seeds' mean + SPREAD_K sd (results/seeds.csv) ...

MIN_SEEDS = 5    # ... measured over at least MIN_SEEDS seeds

# package data: the seed-spread table `make reproduce SEEDS=5` writes with results/seeds.csv
SEEDS_CSV = Path(__file__).with_name('seeds.csv')

@functools.lru_cache(maxsize=None)
def spread_bars(path=SEEDS_CSV) -> dict:
    "{experiment: mean + `SPREAD_K` sd of its final valid MSE over the seeds of a seed-spread table (`make reproduce SEEDS=5`)}."
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the regression bars come from the seed-spread table of a movierecs checkout; "
                                f"write it with `make reproduce SEEDS={MIN_SEEDS}`.")
    g = pd.read_csv(path).groupby('experiment', sort=False).valid_loss
    few = {k: int(v) for k, v in g.count().items() if v < MIN_SEEDS}
    if few: raise ValueError(f"{path}: {few} seeds per experiment, fewer than {MIN_SEEDS}: the sd would mean little. "
                             f"Run `make reproduce SEEDS={MIN_SEEDS}`.")
    return {k: float(m + SPREAD_K*sd) for (k, m), sd in zip(g.mean().items(), g.std(ddof=1))}

SCHEDULES = ('one_cycle', 'fit')  # `learn.fit_one_cycle(epochs, lr, wd=wd)`, or `learn.fit(epochs, lr, wd=wd)` (a constant lr: L-BFGS)

GROUPS = ('notebook', 'accuracy')  # `make reproduce` runs the first (the notebook's story and its kin); `make accuracy` the second

@dataclass(frozen=True)
class Experiment:
    "One `learn.fit_one_cycle(epochs, lr, wd=wd)` (or `learn.fit`) run of a registered model, with the losses published for it."
    name: str                       # The run's name in the notebook story
    model: str                      # Name in the learner registry (`list_models()`)
    wd: Optional[float] = None      # Weight decay; None is fastai's default (0.01)
    notebook: Optional[float] = None  # Final valid MSE in the seed notebook
    book: Optional[float] = None      # Final valid MSE in fastbook chapter 8
    bar: Optional[float] = None       # The user's bar for the final valid MSE; default: published value + SLACK
    epochs: int = 5                 # Epochs of the one-cycle schedule
    lr: float = 5e-3                # Peak learning rate
    kwargs: dict = field(default_factory=dict)  # Passed to the model's factory, e.g. `n_factors`
    schedule: str = field(default='one_cycle', repr=False)  # One of `SCHEDULES`
    group: str = field(default='notebook', repr=False)      # One of `GROUPS`

    @property
    def published_bar(self):
        "The bar from outside: the user's `bar`, else the published value + `SLACK`."
        if self.bar is not None: return self.bar
        return (self.notebook if self.notebook is not None else self.book) + SLACK

    @property
    def threshold(self):
        "The final valid MSE the regression tests and notebooks require this run to beat: the lower of `published_bar` and `spread_bars()`."
        bars = spread_bars()
        if self.name not in bars: raise KeyError(f"{self.name} has no row in {SEEDS_CSV}: run `make reproduce SEEDS={MIN_SEEDS}`.")
        return min(self.published_bar, bars[self.name])

    def __post_init__(self):
        if self.model not in list_models(): raise ValueError(f"{self.name}: unknown model {self.model!r}; valid: {list_models()}")
        check_schedule(self.epochs, self.lr, self.wd)
        if self.schedule not in SCHEDULES: raise ValueError(f"{self.name}: schedule must be one of {SCHEDULES}, got {self.schedule!r}.")
        if trains_by_lbfgs(self.model) and (self.schedule != 'fit' or self.wd):
            raise ValueError(f"{self.name}: {self.model} trains by full-batch L-BFGS: "
                             "give schedule='fit' and no wd (its l2 argument regularises it).")
        if self.group not in GROUPS: raise ValueError(f"{self.name}: group must be one of {GROUPS}, got {self.group!r}.")
        if self.bar is None and self.notebook is None and self.book is None:
            raise ValueError(f"{self.name}: give a published loss (notebook or book) or a bar to hold the run to.")

EXPERIMENTS = {e.name: e for e in [
    Experiment('dot',             'dot',             None, notebook=0.8777, book=0.8776),
    Experiment('dot_bias',        'dot_bias',        None, notebook=0.8971, book=0.8926),
    Experiment('dot_bias_wd',     'dot_bias',        0.1,  notebook=0.8261, book=0.8231, bar=USER_BAR),
    Experiment('dot_bias_params', 'dot_bias_params', 0.1,  notebook=0.8254, book=0.8243, bar=USER_BAR),
    Experiment('collab',          'collab',          0.1,  notebook=0.8226, book=0.8217, bar=USER_BAR),
    Experiment('collab_nn',       'collab_nn',       0.1,  notebook=0.8791),
    Experiment('dot_raw',         'dot_raw',         None, book=0.8842),
    Experiment('collab_emb_nn',   'collab_emb_nn',   0.1,  book=0.8649),
    Experiment('svdpp',           'svdpp',           0.3,  bar=USER_BAR),  # SVD++ in a fastai model; wd from results/tuning.md
    # the best of `make tune` (results/tuning.md, on a carve-out of u1.base): collab + svdpp + collab_nn side by side
    Experiment('tuned',           'ensemble',        0.2,  bar=USER_BAR, kwargs=dict(n_factors=50)),
    # autoencoders trained by full-batch L-BFGS, one "epoch" = 5 iterations from a fresh history (results/accuracy_tuning.md)
    Experiment('autorec',  'autorec',  None, bar=USER_BAR, epochs=40, lr=1., schedule='fit', group='accuracy'),
    # 30 pre-training + 38 fine-tuning
    Experiment('glocal_k', 'glocal_k', None, bar=USER_BAR, epochs=68, lr=1., schedule='fit', group='accuracy'),
]}

def group_names(group='notebook'):
    "The names of the experiments of `group` (one of `GROUPS`)."
    if group not in GROUPS: raise ValueError(f"Unknown group {group!r}. Valid groups: {', '.join(GROUPS)}.")
    return [n for n, e in EXPERIMENTS.items() if e.group == group]

def get_experiment(name):
    "The `Experiment` called `name`; a clear error listing the valid names otherwise."
    if name not in EXPERIMENTS: raise ValueError(f"Unknown experiment {name!r}. Valid names: {', '.join(EXPERIMENTS)}.")
    return EXPERIMENTS[name]

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
