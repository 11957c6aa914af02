"What a trained model learned, and what people ask a recommender: biases, similar movies and users, recommendations, a map."
import difflib, re
import numpy as np, pandas as pd, torch
from torch import nn

from .data import _positive_int
from .files import png_bytes, write_atomic

__all__ = ['movie_factors', 'movie_bias', 'biases', 'similar_movies', 'similar_users', 'recommend', 'pca_map', 'loss_curves']

# Where each registered model keeps its weights: notebook modules, then fastai's EmbeddingDotBias and EmbeddingNN
_WEIGHTS = {('movie', 'factors'): ('movie_factors', 'item_factors', 'i_weight', 'embeds.1', 'decoder'),
            ('movie', 'bias'): ('movie_bias', 'i_bias'),
            ('user', 'factors'): ('user_factors', 'u_weight', 'embeds.0')}

def _weights(learn, side, kind):
    "The (n, k) tensor of the `side` ('movie' or 'user') `kind` ('factors' or 'bias') of the learner's model (or of a model)."
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

def _vocab(learn, side):
    if not hasattr(learn, 'dls') or not hasattr(learn, 'model'):
        raise TypeError(f"learn must be a trained Learner (from train_model, load or default_learner), got {type(learn).__name__}.")
    return list(learn.dls.classes[list(learn.dls.classes)[0 if side == 'user' else 1]])

def _title_index(learn, title):
    "Position of `title` in the title vocabulary; an error suggesting the closest titles when it is not there."
    titles = _vocab(learn, 'movie')
    if _item_label(learn) == 'movie' and isinstance(title, str) and title.strip().isascii() and title.strip().isdigit() and len(title.strip()) < 19:
        title = int(title)  # a movie id typed on the command line
    try: return titles.index(title, 1)  # never fastai's `#na#` placeholder at 0
    except ValueError: pass
    if _item_label(learn) == 'movie':  # a model trained on movie ids (the canonical splits)
        raise KeyError(f"{title!r} is not a movie id the model was trained on: it keys movies by id (from {titles[1]} to {titles[-1]}), "
                       f"e.g. {titles[1]}.")
    close = difflib.get_close_matches(str(title), titles[1:], n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ' Titles carry their year, e.g. "Toy Story (1995)".'
    raise KeyError(f"{title!r} is not a movie the model was trained on.{hint}")

def _user_index(learn, user):
    "Position of `user` (an id such as 196, or '196') in the user vocabulary; an error giving the valid ids otherwise."
    users = _vocab(learn, 'user')
    shown = repr(user) if len(repr(user)) <= 60 else repr(user)[:56] + '...'
    if isinstance(user, (bool, np.bool_)) or not isinstance(user, (int, np.integer, str)):
        raise KeyError(f"User {shown} is not a user id: give an id such as 196.")
    for u in (user, *([int(user)] if isinstance(user, str) and re.fullmatch(r'\s*-?[0-9]{1,18}\s*', user) else [])):
        hit = next((i for i, v in enumerate(users) if i and type(v) is not bool and isinstance(v, str) == isinstance(u, str) and v == u), None)
        if hit is not None: return hit
    known = users[1:]
    span = f'{min(known)} to {max(known)}' if all(isinstance(u, (int, np.integer)) for u in known) else f'e.g. {known[:3]}'
    raise KeyError(f"User {shown} is not in the training data: valid users are {span} ({len(known)} users).")

def _series(values, labels, name, label='title'):
    return pd.Series(np.asarray(values), index=pd.Index(labels, name=label), name=name)

def movie_factors(learn) -> pd.DataFrame:
    "The learned factors of every movie, one row per title (fastai's `#na#` placeholder left out)."
    return pd.DataFrame(_weights(learn, 'movie', 'factors').numpy(), index=pd.Index(_vocab(learn, 'movie'), name=_item_label(learn))).iloc[1:]

def movie_bias(learn) -> pd.Series:
    "The learned bias of every movie, by title (fastai's `#na#` placeholder left out)."
    return _series(_weights(learn, 'movie', 'bias')[:, 0].numpy(), _vocab(learn, 'movie'), 'bias').iloc[1:]

def biases(learn, # A trained learner of a model with movie biases
           n=5, # How many movies
           lowest=True # The lowest biases (disliked even by fitting users), else the highest
          ) -> pd.Series:
    "The `n` movies with the lowest (or highest) learned bias, with their values."
    _positive_int(n, 'n')
    if not isinstance(lowest, (bool, np.bool_)): raise TypeError(f"lowest must be True or False, got {lowest!r}.")
    return movie_bias(learn).sort_values(ascending=lowest, kind='stable').head(n)

def _most_similar(w, labels, i, n, label):
    "The `n` rows of `w` with the highest cosine similarity to row `i`, leaving out row `i` and the `#na#` row 0."
    sim = _series(nn.CosineSimilarity(dim=1)(w, w[i][None]).numpy(), labels, 'cosine', label)
    return sim.iloc[[j for j in range(1, len(labels)) if j != i]].sort_values(ascending=False, kind='stable').head(n)

def similar_movies(learn, # A trained learner
                   title, # A title as in `dls.classes['title']`, e.g. 'Silence of the Lambs, The (1991)'
                   n=5 # How many movies
                  ) -> pd.Series:
    "The `n` movies whose factors have the highest cosine similarity to `title`'s, the title itself left out."
    _positive_int(n, 'n')
    return _most_similar(_weights(learn, 'movie', 'factors'), _vocab(learn, 'movie'), _title_index(learn, title), n, _item_label(learn))

def similar_users(learn, # A trained learner
                  user, # A user id, e.g. 196
                  n=5 # How many users
                 ) -> pd.Series:
    "The `n` users whose factors have the highest cosine similarity to `user`'s, the user left out."
    _positive_int(n, 'n')
    return _most_similar(_weights(learn, 'user', 'factors'), _vocab(learn, 'user'), _user_index(learn, user), n, 'user')

def _rated(learn):
    "(user code, title code) of every rating the learner's `dls` hold, training and validation."
    return np.concatenate([dl.items[list(learn.dls.classes)].to_numpy('int64') for dl in (learn.dls.train, learn.dls.valid)])

def recommend(learn, # A trained learner
              user, # A user id, e.g. 196
              n=10 # How many movies
             ) -> pd.Series:
    "The `n` movies the user has not rated with the highest predicted rating (a rating model) or score (a ranking model)."
    _positive_int(n, 'n')
    u, n_titles = _user_index(learn, user), len(_vocab(learn, 'movie'))
    rated = _rated(learn)
    seen = set(rated[rated[:, 0] == u, 1].tolist())
    cand = torch.tensor([i for i in range(1, n_titles) if i not in seen], dtype=torch.long)
    model = learn.model.eval()
    dev = next(model.parameters()).device
    with torch.no_grad():
        if hasattr(model, 'scores'): pred, name = model.scores(torch.tensor([u], device=dev))[0, cand.to(dev)], 'score'
        else: pred, name = model(torch.stack([torch.full_like(cand, u), cand], 1).to(dev)), 'predicted_rating'
    titles = _vocab(learn, 'movie')
    return _series(pred.view(-1).cpu().numpy(), [titles[i] for i in cand.tolist()], name, _item_label(learn)).sort_values(
        ascending=False, kind='stable').head(n)

def _item_label(learn): return list(learn.dls.classes)[1]  # 'title', or 'movie' for a model keyed by movie id

def pca_map(learn, # A trained learner with movie factors
            n_movies=50, # How many of the most-rated movies to place on the map
            n_top=1000, # The PCA is fitted on this many most-rated movies (fastbook's choice)
            path=None # Save the figure here as PNG (written atomically)
           ):
    "fastbook's picture: PCA of the factors of the most-rated movies, titles placed on components 1 and 3."
    import matplotlib
    from matplotlib.figure import Figure  # not pyplot: no global backend or figure state is touched
    _positive_int(n_movies, 'n_movies'); _positive_int(n_top, 'n_top')
    if n_top < 3: raise ValueError(f"n_top must be at least 3 (the map shows components 1 and 3), got {n_top}.")
    titles, w = _vocab(learn, 'movie'), _weights(learn, 'movie', 'factors')
    counts = np.bincount(_rated(learn)[:, 1], minlength=len(titles))
    counts[0] = -1  # never the placeholder
    top = np.argsort(-counts, kind='stable')[:min(n_top, len(titles)-1)]
    x = w[top] - w[top].mean(0)
    _, _, v = torch.linalg.svd(x, full_matrices=False)
    v = v * torch.where(v.sum(1, keepdim=True) < 0, -1., 1.)  # fix each component's sign
    pcs = (x @ v[:3].T).numpy()
    k = min(n_movies, len(top))
    fig = Figure(figsize=(12, 12)); ax = fig.subplots()
    ax.scatter(pcs[:k, 0], pcs[:k, -1], s=12, color='0.4')
    colors = matplotlib.colormaps['tab10']
    for j in range(k): ax.text(pcs[j, 0], pcs[j, -1], titles[top[j]], fontsize=10, color=colors(j % 10))
    ax.set_xlabel('principal component 1'); ax.set_ylabel(f'principal component {pcs.shape[1]}')
    ax.set_title(f'Movie factors of the {k} most-rated movies ({type(learn.model).__name__})')
    if path is not None: write_atomic({path: png_bytes(fig)})
    return fig

def loss_curves(learn, # A trained learner
                title='' # Title of the figure
               ):
    "fastai's learning curve of the last fit (smoothed training loss per batch, validation loss per epoch) as a figure."
    from matplotlib.figure import Figure
    fig = Figure(figsize=(7, 4.5)); ax = fig.subplots()
    learn.recorder.plot_loss(skip_start=5, ax=ax)
    ax.set_title(title or 'learning curve')
    return fig
