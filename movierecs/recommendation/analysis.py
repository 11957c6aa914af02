"What a trained model learned, and what people ask a recommender: biases, similar movies and users, recommendations, a map."
import numpy as np, pandas as pd, torch
from torch import nn
from ..core.checks import positive_int
from ..core.files import png_bytes, write_atomic
from ..models.parts import item_label, model_weights, rated_pairs, title_index, user_index, vocab
__all__ = ['movie_factors', 'movie_bias', 'biases', 'similar_movies', 'similar_users', 'recommend', 'pca_map', 'loss_curves']

def _series(values, labels, name, label='title'):
    return pd.Series(np.asarray(values), index=pd.Index(labels, name=label), name=name)

def movie_factors(learn) -> pd.DataFrame:
    "The learned factors of every movie, one row per title (fastai's `#na#` placeholder left out)."
    return pd.DataFrame(model_weights(learn, 'movie', 'factors').numpy(),
                        index=pd.Index(vocab(learn, 'movie'), name=item_label(learn))).iloc[1:]

def movie_bias(learn) -> pd.Series:
    "The learned bias of every movie, by title (fastai's `#na#` placeholder left out)."
    return _series(model_weights(learn, 'movie', 'bias')[:, 0].numpy(), vocab(learn, 'movie'), 'bias').iloc[1:]

def biases(learn, # A trained learner of a model with movie biases
           n=5, # How many movies
           lowest=True # The lowest biases (disliked even by fitting users), else the highest
          ) -> pd.Series:
    "The `n` movies with the lowest (or highest) learned bias, with their values."
    positive_int(n, 'n')
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
    positive_int(n, 'n')
    return _most_similar(model_weights(learn, 'movie', 'factors'), vocab(learn, 'movie'), title_index(learn, title), n, item_label(learn))

def similar_users(learn, # A trained learner
                  user, # A user id, e.g. 196
                  n=5 # How many users
                 ) -> pd.Series:
    "The `n` users whose factors have the highest cosine similarity to `user`'s, the user left out."
    positive_int(n, 'n')
    return _most_similar(model_weights(learn, 'user', 'factors'), vocab(learn, 'user'), user_index(learn, user), n, 'user')

def recommend(learn, # A trained learner
              user, # A user id, e.g. 196
              n=10 # How many movies
             ) -> pd.Series:
    "The `n` movies the user has not rated with the highest predicted rating (a rating model) or score (a ranking model)."
    positive_int(n, 'n')
    u, n_titles = user_index(learn, user), len(vocab(learn, 'movie'))
    rated = rated_pairs(learn)
    seen = set(rated[rated[:, 0] == u, 1].tolist())
    cand = torch.tensor([i for i in range(1, n_titles) if i not in seen], dtype=torch.long)
    model = learn.model.eval()
    dev = next(model.parameters()).device
    with torch.no_grad():
        if hasattr(model, 'scores'): pred, name = model.scores(torch.tensor([u], device=dev))[0, cand.to(dev)], 'score'
        else: pred, name = model(torch.stack([torch.full_like(cand, u), cand], 1).to(dev)), 'predicted_rating'
    titles = vocab(learn, 'movie')
    return _series(pred.view(-1).cpu().numpy(), [titles[i] for i in cand.tolist()], name, item_label(learn)).sort_values(
        ascending=False, kind='stable').head(n)

def pca_map(learn, # A trained learner with movie factors
            n_movies=50, # How many of the most-rated movies to place on the map
            n_top=1000, # The PCA is fitted on this many most-rated movies (fastbook's choice)
            path=None # Save the figure here as PNG (written atomically)
           ):
    "fastbook's picture: PCA of the factors of the most-rated movies, titles placed on components 1 and 3."
    import matplotlib
    from matplotlib.figure import Figure  # not pyplot: no global backend or figure state is touched
    positive_int(n_movies, 'n_movies'); positive_int(n_top, 'n_top')
    if n_top < 3: raise ValueError(f"n_top must be at least 3 (the map shows components 1 and 3), got {n_top}.")
    titles, w = vocab(learn, 'movie'), model_weights(learn, 'movie', 'factors')
    counts = np.bincount(rated_pairs(learn)[:, 1], minlength=len(titles))
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
