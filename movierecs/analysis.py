"What a trained model learned: movies ranked by bias, and the movies nearest a title in factor space."
import difflib
import pandas as pd
from torch import nn

__all__ = ['movie_factors', 'movie_bias', 'biases', 'similar_movies']

# Where each registered model keeps its movie weights: notebook modules, then fastai's EmbeddingDotBias / EmbeddingNN
_MOVIE = {'factors': ('movie_factors', 'item_factors', 'i_weight', 'embeds.1'), 'bias': ('movie_bias', 'i_bias')}

def _movie_weights(learn, kind):
    "The (n_movies, k) tensor of the model's movie `kind` ('factors' or 'bias')."
    m = learn.model
    for name in _MOVIE[kind]:
        try: w = m.get_parameter(name) if isinstance(getattr(m, name, None), nn.Parameter) else m.get_submodule(name).weight
        except AttributeError: continue
        return w.detach().cpu().float()
    raise TypeError(f"{type(m).__name__} has no movie {kind} (looked for {', '.join(_MOVIE[kind])}): "
                    f"use a model with {'biases' if kind == 'bias' else 'movie factors'}, e.g. 'dot_bias' or 'collab'.")

def _titles(learn): return list(learn.dls.classes[list(learn.dls.classes)[1]])

def movie_factors(learn) -> pd.DataFrame:
    "The learned factors of every movie, one row per title (fastai's `#na#` placeholder left out)."
    return pd.DataFrame(_movie_weights(learn, 'factors').numpy(), index=pd.Index(_titles(learn), name='title')).iloc[1:]

def movie_bias(learn) -> pd.Series:
    "The learned bias of every movie, by title (fastai's `#na#` placeholder left out)."
    return pd.Series(_movie_weights(learn, 'bias')[:, 0].numpy(), index=pd.Index(_titles(learn), name='title'),
                     name='bias').iloc[1:]

def biases(learn, # A trained learner of a model with movie biases
           n=5, # How many movies
           lowest=True # The lowest biases (disliked even by fitting users), else the highest
          ) -> pd.Series:
    "The `n` movies with the lowest (or highest) learned bias, with their values."
    return movie_bias(learn).sort_values(ascending=lowest, kind='stable').head(n)

def _title_index(titles, title):
    try: return titles.index(title)
    except ValueError: pass
    close = difflib.get_close_matches(title, titles[1:], n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ' Titles carry their year, e.g. "Toy Story (1995)".'
    raise KeyError(f"{title!r} is not a movie the model was trained on.{hint}")

def similar_movies(learn, # A trained learner
                   title, # A title as in `dls.classes['title']`, e.g. 'Silence of the Lambs, The (1991)'
                   n=5 # How many movies
                  ) -> pd.Series:
    "The `n` movies whose factors have the highest cosine similarity to `title`'s, the title itself left out."
    titles, w = _titles(learn), _movie_weights(learn, 'factors')
    i = _title_index(titles, title)
    sim = pd.Series(nn.CosineSimilarity(dim=1)(w, w[i][None]).numpy(), index=pd.Index(titles, name='title'), name='cosine')
    others = [j for j in range(1, len(titles)) if j != i]  # not the `#na#` placeholder, not the movie itself
    return sim.iloc[others].sort_values(ascending=False, kind='stable').head(n)
