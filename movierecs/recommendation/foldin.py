"Recommendations for someone new: fold the movies a person rated into a trained model, without retraining the movies."
import math
import numpy as np, pandas as pd, torch
from torch.func import functional_call
from ..models.parts import item_label, vocab, model_weights
from ..core.checks import positive_int
from .light import FOLDIN_RULE, FOLDIN_RULES, MAX_RATINGS, MIN_LAMBDA, parse_stars, ridge_dot, shrink_prior
from ..engine.feedback import RELEVANT, row_weights
from ..models.collab import DotProduct, DotProductBias, DotProductBiasParams, DotProductBiasImplicit, Ensemble
__all__ = ['MAX_RATINGS', 'MIN_LAMBDA', 'FOLDIN_RULES', 'FOLDIN_RULE', 'parse_ratings', 'fold_in', 'foldin_prior', 'foldin_lambdas',
           'recommend_for']

_USER = ('user_factors', 'user_bias', 'u_weight', 'u_bias', 'embeds.0')  # where each rating model keeps a user's weights

def star_range(learn):
    "The lowest and highest rating in the learner's training rows: the scale a new user's stars must be on."
    r = learn.dls.train.items[list(learn.dls.train.y_names)[0]]
    return float(r.min()), float(r.max())

def parse_ratings(learn, # A trained learner
                  ratings:dict # {title: stars} of one person
                 ) -> tuple:
    "The item codes and stars of `ratings`, each title and star checked; an error naming the problem otherwise."
    codes, stars = parse_stars(learn, ratings, star_range(learn) if hasattr(learn, 'dls') else (0, 0))
    return torch.tensor(codes), torch.tensor(stars)

def _members(model):
    "(name prefix, module) of each model that predicts a rating on its own: an `Ensemble`'s members, else the model."
    return [(f'members.{i}.', m) for i, m in enumerate(model.members)] if isinstance(model, Ensemble) else [('', model)]

def _user_names(m):
    "The names of the parameters that hold each user's own weights (a row per user)."
    if hasattr(m, 'user_params'): return list(m.user_params)
    return [n for n, _ in m.named_parameters() if n.removesuffix('.weight') in _USER]

def _dot_form(m):
    "(user factors, user bias or None, movie factors, movie biases, y_range) of a dot-product model; None for any other model."
    get = lambda n: m.get_parameter(n).detach()
    if hasattr(m, 'dot_form'): return m.dot_form()
    if type(m) is DotProduct: return 'user_factors.weight', None, get('movie_factors.weight'), None, m.y_range
    if type(m) is DotProductBias:
        return 'user_factors.weight', 'user_bias.weight', get('movie_factors.weight'), get('movie_bias.weight')[:, 0], m.y_range
    if type(m) is DotProductBiasParams: return 'user_factors', 'user_bias', get('movie_factors'), get('movie_bias')[:, 0], m.y_range
    from fastai.collab import EmbeddingDotBias
    if type(m) is EmbeddingDotBias: return 'u_weight.weight', 'u_bias.weight', get('i_weight.weight'), get('i_bias.weight')[:, 0], m.y_range
    return None

def _ridge_dot(form, codes, stars, prior):
    "Each new user's (factors, bias) by `light.ridge_dot` (closed-form ridge, then Gauss-Newton), as {tensor: weights}."
    uf, ub, M, mb, y_range = form
    M, mb = M.float().numpy(), None if mb is None else mb.float().numpy()
    fit = [ridge_dot(M, mb, y_range, prior[uf], prior[ub] if ub is not None else None, c.numpy(), s.numpy()) for c, s in zip(codes, stars)]
    out = {uf: torch.from_numpy(np.stack([f for f, _ in fit]))}
    if ub is not None: out[ub] = torch.tensor([[b] for _, b in fit])
    return out

def _buffers(m, codes):
    "The buffers that tell a model which movies each of the new users rated (SVD++'s implicit feedback); {} for other models."
    if not isinstance(m, DotProductBiasImplicit): return {}
    n = torch.tensor([len(c) for c in codes])
    return {'indptr': torch.cat([n.new_zeros(1), n.cumsum(0)]), 'rated_movies': torch.cat(codes)}

def predict_pairs(m, weights, movies, users=None):
    "The model's prediction for (user, movie) pairs: the users are rows 0.. of `weights` (the folded-in ones), or the model's own."
    users = torch.zeros_like(movies) if users is None else users
    x = torch.stack([users, movies], 1)
    with torch.no_grad() if not any(w.requires_grad for w in weights.values()) else torch.enable_grad():
        return functional_call(m, weights, (x,)).reshape(-1)

def _descend(m, codes, stars, prior, max_iter=200):
    ("Each user's weights minimising Σ (prediction - stars)² + Σ λ‖weights - μ‖² (`prior`: {tensor: (λ, μ)}), "
     "the movies frozen: L-BFGS from the mean user.")
    names = _user_names(m)
    w = {n: m.get_parameter(n).detach().mean(0, keepdim=True).repeat(len(codes), 1).requires_grad_() for n in names}
    users = torch.cat([torch.full((len(c),), b) for b, c in enumerate(codes)])
    movies, r, buf = torch.cat(codes), torch.cat(stars).float(), _buffers(m, codes)
    opt = torch.optim.LBFGS(list(w.values()), lr=1, max_iter=max_iter, tolerance_grad=1e-6, tolerance_change=1e-10,
                            history_size=20, line_search_fn='strong_wolfe')
    def closure():
        opt.zero_grad()
        loss = ((predict_pairs(m, {**w, **buf}, movies, users) - r)**2).sum() + sum(
            prior[n][0] * ((v - torch.from_numpy(prior[n][1]))**2).sum() for n, v in w.items())
        loss.backward()
        return loss
    opt.step(closure)
    return {n: v.detach() for n, v in w.items()}

def _fold_member(m, codes, stars, prior):
    form = _dot_form(m)
    weights = _ridge_dot(form, codes, stars, prior) if form is not None else _descend(m, codes, stars, prior)
    weights = {k: v.reshape(len(codes), *m.get_parameter(k).shape[1:]) for k, v in weights.items()}  # a bias vector stays a vector
    return {**weights, **_buffers(m, codes)}

def _training_rows(learn):
    it = learn.dls.train.items
    u, i = list(learn.dls.classes)[:2]
    # copies: a frame's arrays are read-only under pandas' copy-on-write, and torch warns on reading them
    return (it[u].to_numpy('int64', copy=True), it[i].to_numpy('int64', copy=True),
            it[list(learn.dls.train.y_names)[0]].to_numpy('float32', copy=True))

def foldin_prior(learn, # A trained rating learner
                 rule=None # One of `FOLDIN_RULES`; default `FOLDIN_RULE`
                ) -> dict:
    """What fold-in pulls a new user's weights toward: {member prefix: {user tensor: (λ, μ)}}, the penalty λ‖w - μ‖² of each
    user weight tensor of each member (`shrink_prior`: the gradient of Σ (prediction - rating)² over the training rows by
    autograd). Computed once per learner and rule."""
    rule = FOLDIN_RULE if rule is None else rule
    cache = learn.__dict__.setdefault('_foldin_prior', {})
    if rule in cache: return cache[rule]
    model = learn.model.eval()
    u, i, r = (torch.from_numpy(a) for a in _training_rows(learn))
    users = torch.unique(u).numpy()
    out = {}
    for prefix, m in _members(model):
        w = {n: m.get_parameter(n).detach().clone().requires_grad_() for n in _user_names(m)}
        err = predict_pairs(m, w, i, u) - r
        (err**2).sum().backward()
        err2 = float((err.detach().double()**2).mean())
        out[prefix] = {n: shrink_prior(v.detach().numpy(), v.grad.numpy(), err2, users, rule) for n, v in w.items()}
    cache[rule] = out
    return out

def foldin_lambdas(learn, # A trained rating learner
                   rule=None # One of `FOLDIN_RULES`; default `FOLDIN_RULE`
                  ) -> dict:
    "The ridge penalty λ of each user weight tensor of each member of the model: {member prefix: {tensor: λ}} (`foldin_prior`)."
    return {k: {n: lam for n, (lam, _) in d.items()} for k, d in foldin_prior(learn, rule).items()}

def fold_weights(learn, codes, stars, rule=None):
    "The weights of new users (lists of their codes and stars) for `functional_call` on the whole model."
    for _, m in _members(learn.model):
        if not _user_names(m):
            raise TypeError(f"{type(m).__name__} has no weights of its own per user to fit for someone new (GLocal-K's global kernel "
                            "also mixes neighbouring users' columns): fold-in cannot place a new person in it. Use a model that can, "
                            "e.g. 'collab', 'svdpp' or 'autorec', or retrain with their ratings.")
    prior = foldin_prior(learn, rule)
    return {prefix + k: v for prefix, m in _members(learn.model.eval()) for k, v in _fold_member(m, codes, stars, prior[prefix]).items()}

def _rating_scores(learn, codes, stars):
    "The predicted stars of one new user for every movie code (the `#na#` placeholder included)."
    movies = torch.arange(len(vocab(learn, 'movie')))
    return predict_pairs(learn.model.eval(), fold_weights(learn, [codes], [stars]), movies).float()

def foldin_rows(learn, codes, stars):
    """A ranking model's input rows for new users (lists of their codes and stars), weighted as in training. With no liked
    movie (>= `RELEVANT`) a row stays empty: low ratings say what not to watch, and alone must not ask for more of the same."""
    model = learn.model
    rows = torch.zeros(len(codes), model.history.shape[1])
    for b, (c, s) in enumerate(zip(codes, stars)):
        if (s >= RELEVANT).any(): rows[b, c] = row_weights(s, learn.model_spec.get('low_in', 1.))
    return rows.to(model.history.device)

def _ranking_scores(learn, codes, stars):
    "A ranking model's scores of every movie for one new user."
    with torch.no_grad(): return learn.model.eval().score_rows(foldin_rows(learn, [codes], [stars]))[0].cpu()

def fold_in(learn, # A trained learner: a rating model (predicted stars) or a ranking model (scores)
            ratings:dict # {title: stars} of someone the model has never seen
           ) -> pd.Series:
    "The model's prediction for a new person, from their `ratings`, for every movie (the rated ones too), by title."
    codes, stars = parse_ratings(learn, ratings)
    ranking = hasattr(learn.model, 'score_rows')
    scores = (_ranking_scores if ranking else _rating_scores)(learn, codes, stars)
    titles = vocab(learn, 'movie')
    return pd.Series(scores[1:].numpy(), index=pd.Index(titles[1:], name=item_label(learn)), name='score' if ranking else 'stars')

def _because(learn, cand, codes, stars):
    ("For each candidate code, the liked movie (rated >= `RELEVANT`) whose movie factors are most cosine-similar; "
     "None for all when nothing is liked.")
    liked = stars >= RELEVANT
    if not liked.any(): return [None] * len(cand)
    w = torch.nn.functional.normalize(model_weights(_members(learn.model)[0][1], 'movie', 'factors'), dim=1)  # an ensemble's first member's
    pool = codes[liked]
    return pool[(w[cand] @ w[pool].T).argmax(1)].tolist()

def recommend_for(learn, # A trained learner, e.g. `default_learner()`: a ranking model, or a rating model (`default_learner('rating')`)
                  ratings:dict, # {title: stars} of someone the model has never seen, e.g. {'Star Wars (1977)': 5}
                  n=10, # How many movies
                  stars=None # A rating learner on the same titles whose predicted stars are added to a ranking model's list
                 ) -> pd.DataFrame:
    """The `n` movies a new person has not rated that the model ranks first from their `ratings`, each with the liked movie it
    is most like ('because'; None when nothing is rated >= 4). Columns: title, score (a ranking model) or stars (a rating
    model's prediction), because. A ranking model given only low ratings recommends as for an empty row: its generic list."""
    positive_int(n, 'n')
    if hasattr(getattr(learn, 'model', None), 'score_windows'):
        raise TypeError("This is a next-item model: it reads a history in order, not stars. "
                        "Use recommend_next(learn, [titles, oldest first]).")
    codes, given = parse_ratings(learn, ratings)
    ranking = hasattr(learn.model, 'score_rows')
    if stars is not None:
        if not hasattr(stars, 'model') or not hasattr(stars, 'dls'):
            raise TypeError(f"stars must be a rating model's learner (e.g. default_learner('rating')), got {type(stars).__name__}.")
        if hasattr(stars.model, 'score_rows'): raise TypeError("stars must be a rating model's learner (e.g. default_learner('rating')), "
                                                               "not a ranking model's.")
        if not hasattr(learn.model, 'score_rows'): raise ValueError("stars adds predicted stars to a ranking model's list; "
                                                                    "a rating model's list has its own: leave stars out.")
        if vocab(stars, 'movie') != vocab(learn, 'movie'): raise ValueError("stars: the rating learner was trained "
                                                                            "on other titles than learn.")
    scores = (_ranking_scores if ranking else _rating_scores)(learn, codes, given)
    scores[0] = -math.inf  # fastai's `#na#` placeholder
    scores[codes] = -math.inf  # never what was rated
    k = min(n, int(torch.isfinite(scores).sum()))
    top = torch.argsort(-scores, stable=True)[:k]  # ties go to the lower code
    titles = vocab(learn, 'movie')
    out = pd.DataFrame({item_label(learn): [titles[i] for i in top.tolist()], 'score' if ranking else 'stars': scores[top].numpy()})
    if stars is not None and ranking: out['stars'] = _rating_scores(stars, codes, given)[top].numpy()
    out['because'] = [None if i is None else titles[i] for i in _because(learn, top, codes, given)]
    return out
