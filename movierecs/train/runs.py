"""The training runs movierecs publishes: the notebook's experiments, the accuracy runs and the ranking runs, with the bars the
regression tests hold them to. Plain data: reading them imports neither torch nor fastai (`movierecs models` lists them)."""
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional
from ..core.checks import check_schedule
from ..models.registry import list_models, trains_by_lbfgs
__all__ = ['USER_BAR', 'SLACK', 'SPREAD_K', 'MIN_SEEDS', 'SEEDS_CSV', 'spread_bars', 'SCHEDULES', 'GROUPS', 'Experiment', 'EXPERIMENTS',
           'group_names', 'get_experiment', 'RankingRun', 'RANKERS', 'DEFAULT_RANKER', 'NEXT_RUNS']

USER_BAR = 0.85  # the user's bar for the weight-decayed dot-product models and fastai's collab_learner

SLACK = 0.03     # every other run must beat its published value (the notebook's, else fastbook's) + SLACK

SPREAD_K = 3     # and every run must beat its seeds' mean + SPREAD_K sd (results/seeds.csv) ...

MIN_SEEDS = 5    # ... measured over at least MIN_SEEDS seeds

# package data: the seed-spread table `make reproduce SEEDS=5` writes with results/seeds.csv
SEEDS_CSV = Path(__file__).with_name('seeds.csv')

@functools.lru_cache(maxsize=None)
def spread_bars(path=SEEDS_CSV) -> dict:
    "{experiment: mean + `SPREAD_K` sd of its final valid MSE over the seeds of a seed-spread table (`make reproduce SEEDS=5`)}."
    import pandas as pd
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

@dataclass(frozen=True)
class RankingRun:
    "One `fit_one_cycle(epochs, lr, wd=wd)` run of a registered ranking or next-item model, its settings chosen on a carve-out."
    model: str                  # Name in the learner registry (`list_models('ranking')`)
    epochs: int                 # Epochs of the one-cycle schedule
    lr: float                   # Peak learning rate
    wd: float                   # Weight decay
    kwargs: dict = field(default_factory=dict)  # Passed to the model's factory

# the ranking runs of the top-N table; `make tune-topn` chose their settings on a carve-out of u1.base (results/topn_tuning.md)
RANKERS = {
    'mult_dae': RankingRun('mult_dae', epochs=75, lr=1e-3, wd=0.01, kwargs=dict(low=0.25, low_in=0.25)),
}

DEFAULT_RANKER = 'mult_dae'  # `recommend` and `movierecs recommend` use it: the best NDCG@10 of results/topn.md

# the next-item runs of results/next_item.md; `make tune-next` chose their settings on a carve-out in time of ML-100k's training
# histories (each user's second-to-last rating, never the last): results/next_tuning.md
NEXT_RUNS = {
    'sasrec': RankingRun('sasrec', epochs=100, lr=3e-3, wd=0.01,
                         kwargs=dict(n_factors=64, n_blocks=2, n_heads=1, dropout=0.2, max_len=50, batch=128, windows='all')),
}
