"""Blends of rating models fitted honestly: the members' weights are least-squares fitted on a carve-out of the base file,
never on the test file; optional epoch averaging (the mean prediction of the last epochs) and seed averaging."""
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from fastai.callback.core import Callback

from .scoring import fit_on, item_column, predict, record, scores, split_frames

__all__ = ['CARVE', 'carve', 'EpochAverage', 'member_predictions', 'Blend', 'fit_weights', 'evaluate_blend']

CARVE = 0.1  # the share of the base file a blend (and `make tune`) holds out to fit its weights and choose its settings

def carve(base:pd.DataFrame, # A base file's rows, e.g. `load_split('u1')[0]`
          frac=CARVE, # Share of the rows held out
          seed=42 # Seeds the rows drawn
         ) -> tuple:
    "(train, valid) rows of `base`: a seeded random `frac` held out, both re-indexed from 0."
    if not 0 < frac < 1: raise ValueError(f"frac must be between 0 and 1, e.g. {CARVE}, got {frac!r}.")
    valid = base.sample(frac=frac, random_state=seed)
    return base.drop(valid.index).reset_index(drop=True), valid.reset_index(drop=True)

class EpochAverage(Callback):
    "The mean of the model's validation-set predictions over the last `last` epochs of a fit (`self.preds`): epoch averaging."
    order = 60
    def __init__(self, last=1): self.last, self.preds = last, None
    def before_fit(self): self.total, self.count = None, 0
    def after_epoch(self):
        if self.epoch < self.n_epoch - self.last or getattr(self.learn, 'lr_finder', False): return
        training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad(): p = torch.cat([self.model(*b[:1]).reshape(-1) for b in self.dls.valid]).double()
        finally: self.model.train(training)
        self.total, self.count = (p if self.total is None else self.total + p), self.count + 1
        self.preds = (self.total / self.count).numpy()

def member_predictions(name, # An experiment from `EXPERIMENTS`
                       base, test, # Training rows, and the rows to predict
                       seeds=(42,), # Train once per seed; the predictions are averaged (seed averaging)
                       average_epochs=1, # Average each run's predictions over its last epochs (epoch averaging)
                       item_name='movie' # The item column
                      ) -> np.ndarray:
    "Experiment `name`'s rating for every row of `test` (unseen users or movies: `base`'s mean), averaged over seeds and epochs."
    runs = []
    for s in seeds:
        avg = EpochAverage(average_epochs)
        learn, base_, test_ = fit_on(name, (base, test), s, item_name, cbs=[avg])
        runs.append(predict(learn, base_, test_, avg.preds))
    return np.mean(runs, axis=0)

def fit_weights(preds, # (rows, members) predictions on held-out rows
                target # Their true ratings
               ) -> np.ndarray:
    "Least-squares weights (intercept first, then one per member) of the members' clipped predictions against `target`."
    X = np.column_stack([np.ones(len(target)), np.clip(preds, 1, 5)])
    return np.linalg.lstsq(X, np.asarray(target, dtype='float64'), rcond=None)[0]

@dataclass(frozen=True)
class Blend:
    "A weighted sum of experiments' predictions, the weights fitted on a carve-out of the base file."
    members: tuple              # Experiment names
    seeds: int = 1              # Runs per member, seeds seed, seed+1, ...; their predictions are averaged
    average_epochs: object = 1  # Each run predicts with the mean of its last k epochs: one k for all, or {member: k}
    refit: bool = True          # Retrain the members on the whole base file for the test rows (False: keep the carve-out's models)
    frac: float = CARVE         # Share of the base file held out to fit the weights

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
    "Fit the blend's weights on a carve-out of the split's base file, then score it once on the test file: `evaluate`'s row, plus the weights."
    base, test = split_frames(split)
    item_name = item_column(split) if item_name is None else item_name
    start, seeds = time.perf_counter(), tuple(range(seed, seed + blend.seeds))
    train, held = carve(base, blend.frac, seed)
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
