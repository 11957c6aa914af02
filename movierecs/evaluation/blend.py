"""Blends of rating models fitted honestly: the members' weights are least-squares fitted on a carve-out of the base file,
never on the test file; optional epoch averaging (the mean prediction of the last epochs) and seed averaging."""
import time
from dataclasses import dataclass
import numpy as np
import pandas as pd
import torch
from fastai.callback.core import Callback
from ..core.checks import check_seed, positive_int
from ..train.experiments import fingerprint
from ..train.runs import get_experiment
from .rating import fit_on, item_column, predict, record, scores, split_frames
__all__ = ['CARVE', 'carve', 'EpochAverage', 'member_predictions', 'Blend', 'fit_weights', 'evaluate_blend']

CARVE = 0.1  # the share of the base file a blend (and `make tune`) holds out to fit its weights and choose its settings

def _check_frac(frac, kinds=(int, float, np.integer, np.floating)):
    "A clear error unless `frac` is a number of `kinds` strictly between 0 and 1."
    if isinstance(frac, bool) or not isinstance(frac, kinds) or not 0 < frac < 1:
        raise ValueError(f"frac must be a number between 0 and 1, e.g. {CARVE}, got {frac!r}.")

def carve(base:pd.DataFrame, # A base file's rows, e.g. `load_split('u1')[0]`
          frac=CARVE, # Share of the rows held out
          seed=42 # Seeds the rows drawn
         ) -> tuple:
    "(train, valid) rows of `base`: a seeded random `frac` held out, both re-indexed from 0."
    if not isinstance(base, pd.DataFrame): raise TypeError(f"base must be a DataFrame of ratings, got {type(base).__name__}.")
    _check_frac(frac)
    check_seed(seed)
    valid = base.sample(frac=frac, random_state=int(seed))
    return base.drop(valid.index).reset_index(drop=True), valid.reset_index(drop=True)

class EpochAverage(Callback):
    ("The mean of the model's validation-set predictions over the last `last` epochs of a fit (`self.preds`): epoch averaging. "
     "`self.history`: each of those epochs' own.")
    order = 60
    def __init__(self, last=1): positive_int(last, 'average_epochs'); self.last, self.preds = last, None
    def before_fit(self): self.history = []
    def after_epoch(self):
        if self.epoch < self.n_epoch - self.last or getattr(self.learn, 'lr_finder', False): return
        training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad(): self.history.append(torch.cat([self.model(*b[:1]).reshape(-1) for b in self.dls.valid]).double().numpy())
        finally: self.model.train(training)
        self.preds = np.mean(self.history, axis=0)

def member_predictions(name, # An experiment from `EXPERIMENTS`
                       base, test, # Training rows, and the rows to predict
                       seeds=(42,), # Train once per seed; the predictions are averaged (seed averaging)
                       average_epochs=1, # Average each run's predictions over its last epochs (epoch averaging)
                       item_name='movie' # The item column
                      ) -> np.ndarray:
    "Experiment `name`'s rating for every row of `test` (unseen users or movies: `base`'s mean), averaged over seeds and epochs."
    positive_int(average_epochs, 'average_epochs')
    if not seeds: raise ValueError("seeds must hold at least one seed, e.g. (42,).")
    runs, key = [], (name, average_epochs, item_name, fingerprint(base), fingerprint(test))
    for s in seeds:
        if (key, s) not in _runs:
            avg = EpochAverage(average_epochs)
            learn, base_, test_ = fit_on(name, (base, test), s, item_name, cbs=[avg])
            _runs[key, s] = predict(learn, base_, test_, avg.preds)
        runs.append(_runs[key, s])
    return np.mean(runs, axis=0)

_runs = {}  # the predictions of every member run in this process: blends that share a member, seed and rows train it once

def fit_weights(preds, # (rows, members) predictions on held-out rows
                target # Their true ratings
               ) -> np.ndarray:
    "Least-squares weights (intercept first, then one per member) of the members' clipped predictions against `target`."
    preds, target = np.asarray(preds, dtype='float64'), np.asarray(target, dtype='float64')
    if preds.ndim == 1: preds = preds[:, None]
    if preds.ndim != 2 or len(preds) != len(target): raise ValueError("preds must be (rows, members) with a row per target, "
                                                                      f"got {preds.shape} for {len(target)} targets.")
    if len(target) < MIN_ROWS_PER_WEIGHT * (preds.shape[1] + 1):
        raise ValueError(f"{len(target)} held-out rows cannot fit {preds.shape[1] + 1} weights "
                         f"(at least {MIN_ROWS_PER_WEIGHT} rows per weight): "
                         "hold out more rows (a larger frac) or blend fewer members.")
    if not (np.isfinite(preds).all() and np.isfinite(target).all()):
        raise ValueError("preds and target must be finite: a member predicted NaN or inf, or a rating is missing.")
    X = np.column_stack([np.ones(len(target)), np.clip(preds, 1, 5)])
    return np.linalg.lstsq(X, target, rcond=None)[0]

MIN_ROWS_PER_WEIGHT = 50  # the least held-out rows per fitted weight

@dataclass(frozen=True)
class Blend:
    "A weighted sum of experiments' predictions, the weights fitted on a carve-out of the base file."
    members: tuple              # Experiment names
    seeds: int = 1              # Runs per member, seeds seed, seed+1, ...; their predictions are averaged
    average_epochs: object = 1  # Each run predicts with the mean of its last k epochs: one k for all, or {member: k}
    refit: bool = True          # Retrain the members on the whole base file for the test rows (False: keep the carve-out's models)
    frac: float = CARVE         # Share of the base file held out to fit the weights

    def __post_init__(self):
        m = self.members
        if isinstance(m, str) or not isinstance(m, (tuple, list)) or not m:
            raise ValueError(f"members must be a non-empty list of experiment names, e.g. ('glocal_k', 'autorec'); got {m!r}.")
        for name in m: get_experiment(name)  # an unknown name fails here, before any training (every experiment rates)
        if len(set(m)) != len(m): raise ValueError(f"members: {m!r} names an experiment twice; use seeds= to average one over seeds.")
        positive_int(self.seeds, 'seeds')
        if isinstance(self.average_epochs, dict):
            odd = [k for k in self.average_epochs if k not in m]
            if odd: raise ValueError(f"average_epochs: {odd[0]!r} is not a member ({', '.join(m)}).")
        for name in m:
            k = self.average(name)
            positive_int(k, f'average_epochs of {name}')
            if k > get_experiment(name).epochs: raise ValueError(f"average_epochs {k} is more epochs than {name} trains for "
                                                                 f"({get_experiment(name).epochs}).")
        if not isinstance(self.refit, bool): raise TypeError(f"refit must be True or False, got {self.refit!r}.")
        _check_frac(self.frac, (int, float))

    @property
    def name(self): return 'blend(' + ' + '.join(self.members) + ')'

    def average(self, member):
        "The epochs `member`'s predictions are averaged over."
        return self.average_epochs.get(member, 1) if isinstance(self.average_epochs, dict) else self.average_epochs

def evaluate_blend(blend:Blend, # The blend's members and options
                   split='u1', # One of `SPLITS`, or a (base, test) pair of frames
                   seed=42, # Seeds the carve-out and every member
                   item_name=None # 'movie' (the id) or 'title'; default: `item_column(split)`
                  ) -> dict:
    ("Fit the blend's weights on a carve-out of the split's base file, then score it once on the test file: "
     "`evaluate`'s row, plus the weights.")
    if not isinstance(blend, Blend): raise TypeError("blend must be a Blend, e.g. Blend(('glocal_k', 'autorec')), "
                                                     f"got {type(blend).__name__}.")
    check_seed(seed)
    base, test = split_frames(split)
    item_name = item_column(split) if item_name is None else item_name
    start, seeds = time.perf_counter(), tuple(range(seed, seed + blend.seeds))
    train, held = carve(base, blend.frac, seed)
    if len(held) < MIN_ROWS_PER_WEIGHT * (len(blend.members) + 1):  # before any training
        raise ValueError(f"frac={blend.frac} holds out {len(held)} of {len(base)} base rows, too few to fit {len(blend.members) + 1} "
                         f"weights (at least {MIN_ROWS_PER_WEIGHT} rows per weight): hold out more rows or blend fewer members.")
    def preds(b, t): return np.column_stack([member_predictions(m, b, t, seeds, blend.average(m), item_name) for m in blend.members])
    if blend.refit:
        w = fit_weights(preds(train, held), held.rating)  # the test file is not touched before this line
        p = preds(base, test)
    else:  # one run per member predicts the held-out rows and the test rows; only the former fit the weights
        both = preds(train, pd.concat([held, test], ignore_index=True))
        w, p = fit_weights(both[:len(held)], held.rating), both[len(held):]
    pred = w[0] + np.clip(p, 1, 5) @ w[1:]
    row = record(blend.name, split, seed, pred, base, test, time.perf_counter() - start, item_name)
    return dict(row, weights=[round(float(v), 6) for v in w], member_rmse=[round(scores(c, test.rating)['rmse'], 6) for c in p.T])
