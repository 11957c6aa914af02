"What to watch next: a next-item model's list for a history of titles in the order they were watched."
import numpy as np, pandas as pd
from ..core.checks import positive_int
from ..models.parts import item_label, title_index, vocab
__all__ = ['MAX_HISTORY', 'parse_history', 'recommend_next']

MAX_HISTORY = 5000  # more titles than anyone watches in a row; a longer history is refused (a model reads its newest `max_len`)

def parse_history(learn, # A trained next-item learner, e.g. `train_model('sasrec', ...)`, or its vocabularies {user: [...], item: [...]}
                  history # Titles, oldest first, e.g. ['Star Wars (1977)', 'Alien (1979)']
                 ) -> list:
    "The item codes of `history`, oldest first, each title checked; an error naming the problem and the fix otherwise."
    if isinstance(history, str): raise TypeError(f"history must be a list of titles, oldest first, e.g. [{history!r}], not one string.")
    if isinstance(history, (dict, set)) or not hasattr(history, '__iter__'):
        raise TypeError(f"history must be a list of titles in the order watched, got {type(history).__name__}.")
    history = list(history)
    if not history: raise ValueError("history is empty: give at least one title watched, e.g. ['Star Wars (1977)'].")
    if len(history) > MAX_HISTORY: raise ValueError(f"{len(history):,} titles are more than {MAX_HISTORY:,}: give one person's history.")
    titles = vocab(learn, 'movie')
    index = {t: i for i, t in enumerate(titles) if i}
    codes, seen = [], {}
    for k, t in enumerate(history):
        if isinstance(t, bool) or not isinstance(t, (str, int, np.integer)):
            raise TypeError(f"history[{k}] is {type(t).__name__}: give each title as text, e.g. 'Star Wars (1977)'.")
        c = index[t] if t in index else title_index(learn, t)  # a miss: its error, with the closest titles
        if c in seen: raise ValueError(f"{titles[c]!r} is in the history twice (places {seen[c] + 1} and {k + 1}): list each title once.")
        seen[c] = k
        codes.append(c)
    return codes

def recommend_next(learn, # A trained next-item learner (e.g. 'sasrec'), or its saved numpy form (`read_light`)
                   history, # Titles, oldest first: what the person watched, in order
                   n=10 # How many titles
                  ) -> pd.DataFrame:
    "The `n` titles not in `history` the model ranks first as what comes next. Columns: title, score (the model's logit)."
    positive_int(n, 'n')
    model, form = getattr(learn, 'model', None), getattr(learn, 'form', None)
    if not hasattr(model, 'score_windows') and not hasattr(form, 'score_history'):
        got = type(model).__name__ if model is not None else type(form or learn).__name__
        raise TypeError(f"recommend_next needs a next-item model's learner (e.g. train_model('sasrec')), got {got}: "
                        "use recommend_for for someone new's {title: stars}.")
    codes = parse_history(learn, history)
    if model is None: scores = form.score_history(codes).astype('float64')  # numpy alone (recommendation.light)
    else:
        import torch
        dev = next(model.parameters()).device
        scores = model.score_windows(torch.tensor([codes[-model.max_len:]], device=dev))[0].cpu().numpy().astype('float64')
    scores[codes] = -np.inf
    k = min(n, int(np.isfinite(scores).sum()))
    top = np.argsort(-scores, kind='stable')[:k]  # ties go to the lower code
    titles = vocab(learn, 'movie')
    return pd.DataFrame({item_label(learn): [titles[i] for i in top], 'score': scores[top]})
