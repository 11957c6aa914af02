"""What a trained learner holds, by name: its vocabularies, its weights, the rated pairs, a title's or a user's place.
The vocabulary helpers read a `Learner` or a saved model's numpy form (`recommendation.light.Light`) and import no torch."""
import difflib, functools, re, unicodedata
import numpy as np
from ..core.checks import shown

__all__ = ['model_weights', 'vocab', 'title_index', 'user_index', 'rated_pairs', 'item_label']

# Where each registered model keeps its weights: notebook modules, then fastai's EmbeddingDotBias and EmbeddingNN
_WEIGHTS = {('movie', 'factors'): ('movie_factors', 'item_factors', 'i_weight', 'embeds.1', 'decoder', 'items'),
            ('movie', 'bias'): ('movie_bias', 'i_bias'),
            ('user', 'factors'): ('user_factors', 'u_weight', 'embeds.0')}

def model_weights(learn, side, kind):
    "The (n, k) tensor of the `side` ('movie' or 'user') `kind` ('factors' or 'bias') of the learner's model (or of a model)."
    import torch
    from torch import nn
    m, names = getattr(learn, 'model', learn), _WEIGHTS[side, kind]  # a learner, or a model
    if kind == 'factors' and hasattr(m, 'factors'):  # an autoencoder: its movies' hidden codes and its users' output weights
        with torch.no_grad(): return m.factors(side).detach().cpu().float()
    if (side, kind) == ('user', 'factors') and hasattr(m, 'user_embedding'):  # an autoencoder: its code of each user's row
        with torch.no_grad(): return m.user_embedding(torch.arange(len(m.history), device=m.history.device)).cpu().float()
    for name in names:
        try: w = m.get_parameter(name) if isinstance(getattr(m, name, None), nn.Parameter) else m.get_submodule(name).weight
        except AttributeError: continue
        return w.detach().cpu().float()
    raise TypeError(f"{type(m).__name__} has no {side} {kind} (looked for {', '.join(names)}): "
                    f"use a model with {'biases' if kind == 'bias' else 'factors'}, e.g. 'dot_bias' or 'collab'.")

def _classes(learn):
    "The {user: vocabulary, item: vocabulary} of a trained `Learner`, of a saved model's numpy form, or given as such a dict."
    if hasattr(learn, 'dls') and hasattr(learn, 'model'): return learn.dls.classes
    if isinstance(getattr(learn, 'classes', None), dict) and hasattr(learn, 'form'): return learn.classes
    if isinstance(learn, dict) and len(learn) == 2 and all(hasattr(v, '__len__') and not isinstance(v, str) for v in learn.values()):
        return learn
    raise TypeError(f"learn must be a trained Learner (from train_model, load or default_learner), got {type(learn).__name__}.")

def vocab(learn, side):
    "The `side` ('user' or 'movie') vocabulary of a trained learner, fastai's `#na#` placeholder at 0."
    classes = _classes(learn)
    return list(classes[list(classes)[0 if side == 'user' else 1]])

def _typed(title): return unicodedata.normalize('NFC', title).strip()

@functools.lru_cache(maxsize=8)
def _typed_index(titles:tuple) -> dict:
    "{title as typed: its code} of a vocabulary, the first code where two titles are typed alike (built once per vocabulary)."
    out = {}
    for i, t in enumerate(titles):
        if i and isinstance(t, str): out.setdefault(_typed(t), i)
    return out

def title_index(learn, title):
    "Position of `title` in the title vocabulary; an error suggesting the closest titles when it is not there."
    titles = vocab(learn, 'movie')
    if (item_label(learn) == 'movie' and isinstance(title, str) and title.strip().isascii() and title.strip().isdigit()
            and len(title.strip()) < 19):
        title = int(title)  # a movie id typed on the command line
    try: return titles.index(title, 1)  # never fastai's `#na#` placeholder at 0
    except ValueError: pass
    if isinstance(title, str) and item_label(learn) != 'movie':  # as typed: accents in one code point or two, spaces around
        hit = _typed_index(tuple(titles)).get(_typed(title))
        if hit is not None: return hit
    quoted = shown(title)
    if item_label(learn) == 'movie':  # a model trained on movie ids (the canonical splits)
        raise KeyError(f"{quoted} is not a movie id the model was trained on: it keys movies by id (from {titles[1]} to {titles[-1]}), "
                       f"e.g. {titles[1]}.")
    if not isinstance(title, str): raise KeyError(f"{quoted} is not a title: give titles as text, e.g. 'Toy Story (1995)'.")
    close = difflib.get_close_matches(title[:200], titles[1:], n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ' Titles carry their year, e.g. "Toy Story (1995)".'
    raise KeyError(f"{quoted} is not a movie the model was trained on.{hint}")

def user_index(learn, user):
    "Position of `user` (an id such as 196, or '196') in the user vocabulary; an error giving the valid ids otherwise."
    users = vocab(learn, 'user')
    quoted = shown(user, 60)
    if isinstance(user, (bool, np.bool_)) or not isinstance(user, (int, np.integer, str)):
        raise KeyError(f"User {quoted} is not a user id: give an id such as 196.")
    for u in (user, *([int(user)] if isinstance(user, str) and re.fullmatch(r'\s*-?[0-9]{1,18}\s*', user) else [])):
        hit = next((i for i, v in enumerate(users)
                    if i and type(v) is not bool and isinstance(v, str) == isinstance(u, str) and v == u), None)
        if hit is not None: return hit
    known = users[1:]
    span = f'{min(known)} to {max(known)}' if all(isinstance(u, (int, np.integer)) for u in known) else f'e.g. {known[:3]}'
    raise KeyError(f"User {quoted} is not in the training data: valid users are {span} ({len(known)} users).")

def rated_pairs(learn):
    "(user code, title code) of every rating the learner's `dls` hold, training and validation."
    return np.concatenate([dl.items[list(learn.dls.classes)].to_numpy('int64') for dl in (learn.dls.train, learn.dls.valid)])

def item_label(learn): return list(_classes(learn))[1]  # 'title', or 'movie' for a model keyed by movie id
