"Recommendations for someone new: fold the movies a person rated into a trained ranking model, without retraining it."
import math

import numpy as np, pandas as pd, torch

from .analysis import _item_label, _title_index, _vocab, _weights
from .data import _positive_int
from .feedback import RELEVANT, row_weights

__all__ = ['MAX_RATINGS', 'parse_ratings', 'recommend_for']

MAX_RATINGS = 5000  # more ratings than any one person gives; a bigger request is refused

def _star_range(learn):
    "The lowest and highest rating in the learner's training rows: the scale a new user's stars must be on."
    r = learn.dls.train.items[list(learn.dls.train.y_names)[0]]
    return float(r.min()), float(r.max())

def parse_ratings(learn, # A trained learner
                  ratings:dict # {title: stars} of one person
                 ) -> tuple:
    "The item codes and stars of `ratings`, each title and star checked; an error naming the problem otherwise."
    if not isinstance(ratings, dict): raise TypeError(f"ratings must be a dict {{title: stars}}, got {type(ratings).__name__}.")
    if not ratings: raise ValueError("ratings is empty: rate at least one movie, e.g. {'Star Wars (1977)': 5}.")
    if len(ratings) > MAX_RATINGS: raise ValueError(f"{len(ratings):,} ratings are more than {MAX_RATINGS:,}: give one person's ratings.")
    lo, hi = _star_range(learn)
    codes, stars = [], []
    for title, s in ratings.items():
        if isinstance(s, bool) or not isinstance(s, (int, float, np.number)) or not math.isfinite(s) or not lo <= s <= hi:
            raise ValueError(f"{title!r} is rated {s!r}: stars must be numbers from {lo:g} to {hi:g}.")
        codes.append(_title_index(learn, title)); stars.append(float(s))
    return torch.tensor(codes), torch.tensor(stars)

def _because(learn, cand, codes, stars):
    "For each candidate code, the rated movie (a liked one if there are any) whose movie factors are most cosine-similar."
    w = torch.nn.functional.normalize(_weights(learn, 'movie', 'factors'), dim=1)
    liked = stars >= RELEVANT
    pool = codes[liked] if liked.any() else codes
    return pool[(w[cand] @ w[pool].T).argmax(1)]

def recommend_for(learn, # A trained ranking learner, e.g. `default_learner()`
                  ratings:dict, # {title: stars} of someone the model has never seen, e.g. {'Star Wars (1977)': 5}
                  n=10 # How many movies
                 ) -> pd.DataFrame:
    "The `n` movies a new person has not rated that the model ranks first from their `ratings`, each with the rated movie it is most like."
    _positive_int(n, 'n')
    model = learn.model
    if not hasattr(model, 'score_rows'):
        raise TypeError(f"{type(model).__name__} cannot take a new user yet: fold-in works with the ranking models "
                        f"({', '.join(_ranking_models())}): movierecs.default_learner(), or `movierecs recommend` without --by rating.")
    codes, stars = parse_ratings(learn, ratings)
    row = torch.zeros(1, model.history.shape[1])
    row[0, codes] = row_weights(stars, learn.model_spec.get('low_in', 1.))
    with torch.no_grad(): scores = model.score_rows(row.to(model.history.device))[0].cpu()
    scores[0] = -math.inf  # fastai's `#na#` placeholder
    scores[codes] = -math.inf  # never what was rated
    k = min(n, int(torch.isfinite(scores).sum()))
    top = torch.argsort(-scores, stable=True)[:k]  # ties go to the lower code
    titles = _vocab(learn, 'movie')
    return pd.DataFrame({_item_label(learn): [titles[i] for i in top.tolist()], 'score': scores[top].numpy(),
                         'because': [titles[i] for i in _because(learn, top, codes, stars).tolist()]})

def _ranking_models():
    from .learners import list_models
    return list_models('ranking')
