"""Answers from a saved model with numpy alone: a user's recommendations, someone new's (fold-in), similar movies and biases,
what comes after a history (SASRec, through `recommend_next`), without importing torch or fastai, so `movierecs recommend`,
`similar` and `biases` answer in a fraction of a second. Each
registry model's prediction is written out here in numpy; tests/recommendation/test_light.py holds every one to its
`Learner`'s numbers. GLocal-K (its global kernel) has no numpy form: `read_light` says so and the caller loads the `Learner`."""
import math
from collections.abc import Mapping
import numpy as np
from ..core.checks import positive_int, shown
from ..models.parts import item_label, title_index, user_index, vocab
from ..train.modelfile import read_model
from ..core.errors import ModelFileError
__all__ = ['MAX_RATINGS', 'MIN_LAMBDA', 'FOLDIN_RULES', 'FOLDIN_RULE', 'RELEVANT', 'NoLightForm', 'Light', 'read_light', 'parse_stars',
           'shrink_prior', 'foldin_prior', 'ridge_dot']

MAX_RATINGS = 5000  # more ratings than any one person gives; a bigger request is refused

MIN_LAMBDA = 1e-2  # the smallest penalty fold-in uses, for a model whose training left its users far from any stationary point

FOLDIN_RULES = ('zero', 'mean', 'prior')  # what fold-in shrinks a new user toward: see `shrink_prior`

FOLDIN_RULE = 'mean'  # the rule fold-in uses, chosen on a carve-out of the users (results/foldin_tuning.md)

RELEVANT = 4  # a rating at or above this is a movie the user liked (as engine.feedback.RELEVANT, which the ranking models train on)

class NoLightForm(ValueError):
    "The model has no numpy form for this question: load its `Learner` (`movierecs.load`) to ask it."

def _sigmoid(x): return 1 / (1 + np.exp(-x))

def _squash(x, y_range):
    "fastai's `sigmoid_range`: sigmoid(x) * (high - low) + low; x itself when `y_range` is None."
    if y_range is None: return x
    lo, hi = y_range
    return (_sigmoid(x) * np.float32(hi - lo) + np.float32(lo)).astype(np.float32)

class _Dot:
    "A prediction squash(P[u]·Q[i] + pb[u] + qb[i]): the dot-product models, SVD++ (P holds the implicit sum) and I-AutoRec."
    def __init__(self, P, pb, Q, qb, y_range, user=None, foldable=True):
        self.P, self.pb, self.Q, self.qb, self.y_range = P, pb, Q, qb, y_range
        self.user = user  # (factors name, bias name or None): the weights fold-in fits for someone new
        self.foldable = foldable
    def raw(self, users, items):
        z = (self.P[users] * self.Q[items]).sum(-1, dtype=np.float32)
        if self.pb is not None: z = z + self.pb[users]
        if self.qb is not None: z = z + self.qb[items]
        return z
    def predict(self, users, items): return _squash(self.raw(users, items), self.y_range)

class _MLP:
    "A prediction from the user's and the movie's embeddings concatenated, through linear layers (`CollabNN`, fastai's `EmbeddingNN`)."
    def __init__(self, U, I, layers, y_range): self.U, self.I, self.layers, self.y_range = U, I, layers, y_range
    def predict(self, users, items):
        x = np.concatenate([self.U[users], self.I[items]], -1)
        for f in self.layers: x = f(x)
        return _squash(x[..., 0], self.y_range)

class _Mean:
    "An ensemble: the mean of its members' predictions."
    def __init__(self, members): self.members = members
    def predict(self, users, items):
        return np.stack([m.predict(users, items) for m in self.members], -1).mean(-1, dtype=np.float32)

class _Rows:
    "Mult-DAE: every movie's logit from the user's row of rated movies, L2-normalised, through tanh(Linear) and Linear."
    def __init__(self, We, be, Wd, bd, history, low_in):
        self.We, self.be, self.Wd, self.bd, self.history, self.low_in = We, be, Wd, bd, history, low_in
    def score_rows(self, rows):
        rows = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
        return np.tanh(rows @ self.We.T + self.be) @ self.Wd.T + self.bd

def _layer_norm(x, w, b):
    "torch's `LayerNorm` (eps 1e-5) over the last axis."
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + np.float32(1e-5)) * w + b

_erf = np.vectorize(math.erf, otypes=[np.float64])

def _gelu(x): return (0.5 * x * (1 + _erf(x / math.sqrt(2)))).astype(np.float32)  # torch's exact GELU

class _Seq:
    ("SASRec: the history's items and positions through causal self-attention blocks (pre-norm, each residual: attention, then "
     "Linear-GELU-Linear), a last LayerNorm; every item's logit is the last state · its embedding.")
    def __init__(self, s, spec, n_items, prefix=''):
        d, L, B, self.n_heads = (int(spec[k]) for k in ('n_factors', 'max_len', 'n_blocks', 'n_heads'))
        block = {'norm1.weight': (d,), 'norm1.bias': (d,), 'qkv.weight': (3*d, d), 'qkv.bias': (3*d,), 'out.weight': (d, d),
                 'out.bias': (d,), 'norm2.weight': (d,), 'norm2.bias': (d,), 'ff.0.weight': (d, d), 'ff.0.bias': (d,),
                 'ff.3.weight': (d, d), 'ff.3.bias': (d,)}
        want = {'items.weight': (n_items, d), 'pos.weight': (L, d), 'norm.weight': (d,), 'norm.bias': (d,),
                **{f'blocks.{b}.{k}': v for b in range(B) for k, v in block.items()}}
        have = {k[len(prefix):]: v for k, v in s.items() if k.startswith(prefix)}
        odd = sorted(set(want) ^ set(have)) or [k for k in want if have[k].shape != want[k]]
        if odd:  # what load_state_dict refuses: the weights are those of the model its settings describe, every one of them
            k = odd[0]
            raise ValueError(f"{prefix + k} " + (f"has shape {have[k].shape}, not {want[k]}" if k in want and k in have else
                             'is missing' if k in want else f'is not an array of a {B}-block SASRec of width {d}'))
        if d % self.n_heads: raise ValueError(f"{d} factors do not split into {self.n_heads} heads")
        self.items, self.pos, self.norm = have['items.weight'], have['pos.weight'], (have['norm.weight'], have['norm.bias'])
        self.blocks = [{k: have[f'blocks.{b}.{k}'] for k in block} for b in range(B)]

    def score_history(self, codes):
        "Every item's logit as what comes after `codes` (item codes, oldest first; the newest `max_len` are read); PAD (0) is -inf."
        x = np.asarray(codes, np.int64)[-len(self.pos):]
        n, d = len(x), self.items.shape[1]
        h = self.items[x] * np.float32(math.sqrt(d)) + self.pos[-n:]
        later = np.triu(np.ones((n, n), bool), 1)  # position i reads j <= i
        dh = d // self.n_heads
        for w in self.blocks:
            q, k, v = (_linear(w['qkv.weight'], w['qkv.bias'])(_layer_norm(h, w['norm1.weight'], w['norm1.bias']))
                       .reshape(n, 3, self.n_heads, dh).transpose(1, 2, 0, 3))  # (3, heads, n, dh)
            a = q @ k.transpose(0, 2, 1) / np.float32(math.sqrt(dh))
            a[:, later] = -np.inf
            a = np.exp(a - a.max(-1, keepdims=True)); a /= a.sum(-1, keepdims=True)
            h = h + _linear(w['out.weight'], w['out.bias'])((a @ v).transpose(1, 0, 2).reshape(n, d))
            f = _gelu(_linear(w['ff.0.weight'], w['ff.0.bias'])(_layer_norm(h, w['norm2.weight'], w['norm2.bias'])))
            h = h + _linear(w['ff.3.weight'], w['ff.3.bias'])(f)
        out = (_layer_norm(h[-1], *self.norm) @ self.items.T).astype(np.float32)
        out[0] = -np.inf
        return out

def _linear(W, b=None): return lambda x: x @ W.T + b if b is not None else x @ W.T
def _relu(x): return np.maximum(x, 0)
def _batchnorm(s, k):
    scale = s[f'{k}.weight'] / np.sqrt(s[f'{k}.running_var'] + np.float32(1e-5))
    return lambda x: (x - s[f'{k}.running_mean']) * scale + s[f'{k}.bias']

def _y_range(spec): return tuple(spec['y_range']) if spec.get('y_range') is not None else None

def _form(name, spec, s, light, prefix=''):
    "The numpy form of registry model `name` with settings `spec` from its state `s` (names under `prefix`)."
    n_users, n_items = light.shape()
    def g(k, side=None):
        "The state array `k`; with `side` ('u' or 'i'), checked to hold a row (or an entry) per user or per item."
        v = s[prefix + k]
        n = {'u': n_users, 'i': n_items}.get(side)
        if n is not None and (v.ndim == 0 or len(v) != n): raise ValueError(f"{prefix + k} has shape {v.shape}, not {n} rows")
        return v
    yr = _y_range(spec) if name != 'dot_raw' else None
    if name in ('dot', 'dot_raw'):
        return _Dot(g('user_factors.weight', 'u'), None, g('movie_factors.weight', 'i'), None, yr, ('user_factors.weight', None))
    if name == 'dot_bias':
        return _Dot(g('user_factors.weight', 'u'), g('user_bias.weight', 'u')[:, 0], g('movie_factors.weight', 'i'),
                    g('movie_bias.weight', 'i')[:, 0], yr, ('user_factors.weight', 'user_bias.weight'))
    if name == 'dot_bias_params':
        return _Dot(g('user_factors', 'u'), g('user_bias', 'u')[:, 0], g('movie_factors', 'i'), g('movie_bias', 'i')[:, 0], yr,
                    ('user_factors', 'user_bias'))
    if name == 'collab':
        return _Dot(g('u_weight.weight', 'u'), g('u_bias.weight', 'u')[:, 0], g('i_weight.weight', 'i'), g('i_bias.weight', 'i')[:, 0],
                    yr, ('u_weight.weight', 'u_bias.weight'))
    if name == 'svdpp':  # each user's vector plus |N(u)|^-1/2 Σ y_j over the movies they rated in training
        u, i = light.train_rows()[:2]
        Y, n = g('implicit_factors.weight', 'i'), np.bincount(u, minlength=len(g('user_factors.weight', 'u')))
        imp = np.zeros_like(g('user_factors.weight', 'u'))
        np.add.at(imp, u, Y[i] * (np.maximum(n, 1).astype(np.float32) ** -0.5)[u, None])
        return _Dot(g('user_factors.weight', 'u') + imp, g('user_bias.weight', 'u')[:, 0], g('movie_factors.weight', 'i'),
                    g('movie_bias.weight', 'i')[:, 0], yr, foldable=False)
    if name == 'autorec':  # each movie's hidden code from its row of training ratings; a user's output unit reads it
        H = _sigmoid(light.rating_matrix() @ g('encoder.weight').T + g('encoder.bias')).astype(np.float32)
        return _Dot(g('decoder.weight', 'u'), g('decoder.bias', 'u'), H, None, None, ('decoder.weight', 'decoder.bias'))
    if name == 'collab_nn':
        return _MLP(g('user_factors.weight', 'u'), g('item_factors.weight', 'i'),
                    [_linear(g('layers.0.weight'), g('layers.0.bias')), _relu, _linear(g('layers.2.weight'), g('layers.2.bias'))], yr)
    if name == 'collab_emb_nn':  # fastai's LinBnDrop blocks, linear first: Linear, ReLU, BatchNorm; the last one Linear alone
        layers, b = [], 0
        while prefix + f'layers.{b}.0.weight' in s:
            k = f'layers.{b}'
            layers.append(_linear(g(f'{k}.0.weight'), s.get(prefix + f'{k}.0.bias')))
            if prefix + f'{k}.2.running_mean' in s: layers += [_relu, _batchnorm(s, prefix + f'{k}.2')]
            b += 1
        return _MLP(g('embeds.0.weight', 'u'), g('embeds.1.weight', 'i'), layers, yr)
    if name == 'ensemble':
        own = {k: v for k, v in spec.items() if k in ('n_factors', 'y_range')}
        members = [_form(m, own, s, light, f'{prefix}members.{j}.') for j, m in enumerate(spec['members'])]
        return _Mean(members) if all(f is not None for f in members) else None
    if name == 'sasrec': return _Seq(s, spec, n_items, prefix)
    if name == 'mult_dae':
        return _Rows(g('encoder.weight'), g('encoder.bias'), g('decoder.weight', 'i'), g('decoder.bias', 'i'),
                     light.history(spec.get('low_in', 1.)), spec.get('low_in', 1.))
    return None

class Light:
    "A model saved by `movierecs.save`, as numpy arrays: what `recommend`, `similar`, `biases` and fold-in read."
    def __init__(self, meta, arrays):
        spec = dict(meta['model_spec'])
        self.name, self.spec, self.final_losses = spec.pop('model'), spec, meta.get('final_losses')
        self.classes = {k: ['#na#', *v] for k, v in meta['classes'].items()}
        self.rows, self.ratings, self.valid = arrays['rows'], arrays['ratings'], arrays['valid'].astype(bool)
        self.state = {k.removeprefix('state/'): v for k, v in arrays.items() if k.startswith('state/')}
        from ..models.registry import model_task
        self.task = model_task(self.name)
        self.form = _form(self.name, spec, self.state, self)
        if self.form is None:
            why = {'glocal_k': "GLocal-K's global kernel mixes every user's column"}
            raise NoLightForm(f"{self.name} has no numpy form ({why.get(self.name, 'not written out')}).")
        # a forward through every array: one of another shape fails here, not in an answer
        if isinstance(self.form, _Seq): self.form.score_history([1])
        else: self.user_scores(1)

    def train_rows(self):
        "(user codes, item codes, ratings) of the training rows, in their saved order."
        t = ~self.valid
        return self.rows[t, 0], self.rows[t, 1], self.ratings[t]

    def shape(self): return tuple(len(c) for c in self.classes.values())

    def rating_matrix(self):
        "The (movies, users) matrix of the training ratings, 0 where unrated (the mean where a pair is rated twice)."
        u, i, r = self.train_rows()
        total, count = np.zeros(self.shape()[::-1], np.float32), np.zeros(self.shape()[::-1], np.float32)
        np.add.at(total, (i, u), r); np.add.at(count, (i, u), 1)
        return total / np.maximum(count, 1)

    def history(self, low_in):
        "The (users, movies) rows a ranking model reads: a liked movie weighs 1, another `low_in` (the last row of a pair wins)."
        u, i, r = self.train_rows()
        h = np.zeros(self.shape(), np.float32)
        h[u, i] = np.where(r >= RELEVANT, np.float32(1), np.float32(low_in))
        return h

    def star_range(self):
        r = self.train_rows()[2]
        return float(r.min()), float(r.max())

    def item_factors(self):
        "Each movie's factors: its embedding, hidden code (I-AutoRec) or output weights (Mult-DAE)."
        f = self.form if not isinstance(self.form, _Mean) else self.form.members[0]
        if isinstance(f, _Dot): return f.Q
        if isinstance(f, _MLP): return f.I
        if isinstance(f, _Seq): return f.items
        return f.Wd

    def item_bias(self):
        f = self.form
        if not isinstance(f, _Dot) or f.qb is None:
            raise TypeError(f"{self.name} has no movie bias: use a model with biases, e.g. 'dot_bias' or 'collab'.")
        return f.qb

    def user_scores(self, u):
        "Every movie's prediction (a rating model) or score (a ranking model) for user code `u`."
        n = self.shape()[1]
        if isinstance(self.form, _Rows): return self.form.score_rows(self.form.history[[u]])[0]
        if isinstance(self.form, _Seq):
            raise NoLightForm(f"{self.name}'s list for a user of the data needs the model's Learner (each user's window in time "
                              "order); from a history of titles it answers here (recommend_next).")
        return self.form.predict(np.full(n, u), np.arange(n))

def read_light(path # Folder written by `movierecs.save` or `movierecs train`
              ) -> Light:
    "The model saved at `path` as numpy arrays (`Light`); `NoLightForm` for a model without one (GLocal-K)."
    meta, arrays = read_model(path)
    try: m = Light(meta, arrays)
    except (KeyError, IndexError, ValueError, TypeError, AttributeError) as e:
        if isinstance(e, NoLightForm): raise
        raise ModelFileError(f"The weights in {path} do not fit a {meta['model_spec']['model']!r} model "
                             f"({type(e).__name__}: {e}): they were edited or come from another model. Save the model again.") from None
    m.folder = path
    return m

def _series(values, labels, name, label):
    import pandas as pd
    return pd.Series(np.asarray(values), index=pd.Index(labels, name=label), name=name)

def recommend(m:Light, user, n=10):
    "The `n` movies `user` has not rated with the highest prediction: `movierecs.recommend` for a saved model."
    positive_int(n, 'n')
    u = user_index(m, user)
    seen = np.zeros(m.shape()[1], bool); seen[0] = True
    seen[m.rows[m.rows[:, 0] == u, 1]] = True
    cand = np.flatnonzero(~seen)
    pred = m.user_scores(u)[cand]
    titles = vocab(m, 'movie')
    s = _series(pred, [titles[i] for i in cand], 'score' if m.task == 'ranking' else 'predicted_rating', item_label(m))
    return s.sort_values(ascending=False, kind='stable').head(n)

def _cosine_to(w, i):
    "Cosine similarity of every row of `w` to row `i` (torch's `CosineSimilarity`, eps 1e-8)."
    w = w.astype(np.float32)
    return (w @ w[i]) / np.maximum(np.linalg.norm(w, axis=1) * np.linalg.norm(w[i]), np.float32(1e-8))

def similar_movies(m:Light, title, n=5):
    "The `n` movies whose factors are most cosine-similar to `title`'s: `movierecs.similar_movies` for a saved model."
    positive_int(n, 'n')
    i, titles = title_index(m, title), vocab(m, 'movie')
    sim = _series(_cosine_to(m.item_factors(), i), titles, 'cosine', item_label(m))
    return sim.iloc[[j for j in range(1, len(titles)) if j != i]].sort_values(ascending=False, kind='stable').head(n)

def biases(m:Light, n=5, lowest=True):
    "The `n` movies with the lowest (or highest) bias: `movierecs.biases` for a saved model."
    positive_int(n, 'n')
    if not isinstance(lowest, (bool, np.bool_)): raise TypeError(f"lowest must be True or False, got {lowest!r}.")
    return _series(m.item_bias(), vocab(m, 'movie'), 'bias', item_label(m)).iloc[1:].sort_values(ascending=lowest, kind='stable').head(n)

def parse_stars(learn, # A trained learner or a `Light` model
                ratings:dict, # {title: stars} of one person
                star_range # (lowest, highest) star of the training ratings
               ) -> tuple:
    "The item codes and stars of `ratings` as two lists, each title and star checked; an error naming the problem otherwise."
    titles = vocab(learn, 'movie')  # a TypeError first if `learn` is not a trained model
    if hasattr(ratings, 'index') and hasattr(ratings, 'to_dict'):  # a pandas Series
        twice = ratings.index[ratings.index.duplicated()].unique().tolist()
        if twice: raise ValueError(f"{twice[0]!r} is rated twice: rate each movie once.")
        ratings = ratings.to_dict()
    if not isinstance(ratings, Mapping): raise TypeError(f"ratings must be a dict {{title: stars}}, got {type(ratings).__name__}.")
    if not ratings: raise ValueError("ratings is empty: rate at least one movie, e.g. {'Star Wars (1977)': 5}.")
    if len(ratings) > MAX_RATINGS: raise ValueError(f"{len(ratings):,} ratings are more than {MAX_RATINGS:,}: give one person's ratings.")
    lo, hi = star_range
    index = {t: i for i, t in enumerate(titles) if i}  # once, not a list scan per title (never `#na#` at 0)
    given = {}  # code: stars, in the order given
    for title, s in ratings.items():
        try: finite = math.isfinite(s)
        except (TypeError, OverflowError): finite = False  # not a number, or an int past any float
        if (isinstance(s, (bool, np.bool_, np.timedelta64)) or not isinstance(s, (int, float, np.integer, np.floating))
                or not finite or not lo <= s <= hi):
            raise ValueError(f"{shown(title)} is rated {shown(s, 40)}: stars must be numbers from {lo:g} to {hi:g}.")
        c = index[title] if title in index else title_index(learn, title)  # a miss: its error, with the closest titles
        if c in given:  # one movie under two spellings (accents composed or not, spaces around)
            raise ValueError(f"{titles[c]!r} is rated twice ({given[c]:g} and {float(s):g}, as {shown(title)}): rate each movie once.")
        given[c] = float(s)
    return list(given), list(given.values())

def shrink_prior(P, # (users, ...) trained weights of one user tensor
                 g, # ∂Σerr²/∂P over the training rows, the same shape
                 err2, # The mean squared training error per rating
                 users, # Codes of the users with training rows
                 rule=None # One of `FOLDIN_RULES`; default `FOLDIN_RULE`
                ) -> tuple:
    """(λ, μ): the penalty λ‖w - μ‖² fold-in puts on a new user's weights w of this tensor. 'zero': μ = 0, λ the one under which
    the trained users are a stationary point of Σ err² + λ‖P‖²; 'mean': μ the trained users' mean, λ the stationary one around
    it; 'prior': μ the mean, λ = err2 / the users' variance around it (a Gaussian prior fitted to the users). λ >= `MIN_LAMBDA`."""
    rule = FOLDIN_RULE if rule is None else rule
    if rule not in FOLDIN_RULES: raise ValueError(f"rule must be one of {FOLDIN_RULES}, got {rule!r}.")
    Pt, gt = P[users].astype(np.float64), g[users].astype(np.float64)
    mu = np.zeros(P.shape[1:]) if rule == 'zero' else Pt.mean(0)
    D = Pt - mu
    lam = err2 / (D**2).mean() if rule == 'prior' else -(gt * D).sum() / (2 * (D**2).sum())
    return max(MIN_LAMBDA, float(lam)), mu.astype(np.float32)

def foldin_prior(f:_Dot, u, i, r, rule=None) -> dict:
    """{user tensor: (λ, μ)} of dot form `f` from its training rows `u`, `i`, `r` (`shrink_prior`, the gradient written out):
    what `movierecs.foldin_prior` computes by autograd."""
    z = f.raw(u, i)
    p = _squash(z, f.y_range)
    d = 2 * (p - r)
    if f.y_range is not None:
        s = _sigmoid(z).astype(np.float32)
        d = d * np.float32(f.y_range[1] - f.y_range[0]) * s * (1 - s)
    users, err2 = np.unique(u), float(((p - r).astype(np.float64)**2).mean())
    gP = np.zeros_like(f.P); np.add.at(gP, u, d[:, None] * f.Q[i])
    out = {f.user[0]: shrink_prior(f.P, gP, err2, users, rule)}
    if f.user[1] is not None:
        gb = np.zeros_like(f.pb); np.add.at(gb, u, d)
        out[f.user[1]] = shrink_prior(f.pb, gb, err2, users, rule)
    return out

def ridge_dot(Q, # (movies, k) movie factors
              qb, # (movies,) movie biases, or None
              y_range, # (low, high) of `sigmoid_range`, or None
              factors:tuple, # (λ, μ) of the user's factors
              bias:tuple, # (λ, μ) of the user's bias, or None for a model without one
              codes, stars, iters=50, tol=1e-6):
    ("""One new user's (factors, bias) minimising Σ (prediction - stars)² + λ‖weights - μ‖², the movies fixed: ridge least
    squares in closed form, then Gauss-Newton steps (each a closed-form ridge solve, halved until the loss falls) through
    `sigmoid_range`.""")
    X = Q.astype(np.float64)[codes]
    if bias is not None: X = np.concatenate([X, np.ones_like(X[:, :1])], 1)
    R = np.asarray(stars, np.float64)
    o = np.zeros_like(R) if qb is None else qb.astype(np.float64)[codes]
    lam = np.array([factors[0]] * Q.shape[1] + ([bias[0]] if bias is not None else []))
    mu = np.concatenate([np.broadcast_to(np.asarray(factors[1], np.float64), (Q.shape[1],)),
                         np.ravel(np.asarray(bias[1], np.float64))[:1] if bias is not None else []])
    def solve(J, t): return np.linalg.solve(J.T @ J + np.diag(lam), J.T @ t + lam * mu)
    if y_range is None: p = solve(X, R - o)
    else:
        lo, hi = y_range
        fx = lambda p: lo + (hi - lo) * _sigmoid(X @ p + o)
        loss = lambda p: ((fx(p) - R)**2).sum() + (lam * (p - mu)**2).sum()
        q = np.clip((R - lo) / (hi - lo), 1e-4, 1 - 1e-4)
        p = solve(X, np.log(q / (1 - q)) - o)  # ridge on the logit of the stars: the start
        for _ in range(iters):
            s = _sigmoid(X @ p + o)
            J = ((hi - lo) * s * (1 - s))[:, None] * X
            step = solve(J, R - fx(p) + J @ p) - p  # the Gauss-Newton target, as a step from p
            t, before = 1., loss(p)
            for _ in range(20):
                after = loss(p + t*step)
                if after <= before: break
                t /= 2
            if after <= before: p = p + t*step
            if np.abs(t*step).max() < tol: break
    return p[:Q.shape[1]].astype(np.float32), (np.float32(p[-1]) if bias is not None else None)

def fold_in_scores(m:Light, codes, stars, rule=None):
    "Every movie's prediction (a rating model) or score (a ranking model) for someone new from their codes and stars."
    f = m.form
    if isinstance(f, _Rows):
        row = np.zeros((1, m.shape()[1]), np.float32)
        s = np.asarray(stars, np.float32)
        if (s >= RELEVANT).any(): row[0, codes] = np.where(s >= RELEVANT, np.float32(1), np.float32(f.low_in))
        return f.score_rows(row)[0]
    if not isinstance(f, _Dot) or not f.foldable:
        raise NoLightForm(f"fold-in into {m.name} fits its weights by gradient descent: it needs the model's Learner.")
    rule = FOLDIN_RULE if rule is None else rule
    priors = m.__dict__.setdefault('_priors', {})
    if rule not in priors: priors[rule] = foldin_prior(f, *m.train_rows(), rule=rule)
    pr = priors[rule]
    p, b = ridge_dot(f.Q, f.qb, f.y_range, pr[f.user[0]], pr.get(f.user[1]), codes, stars)
    z = (f.Q * p).sum(-1, dtype=np.float32) + (b if b is not None else 0) + (f.qb if f.qb is not None else 0)
    return _squash(z, f.y_range)

def recommend_for(m:Light, ratings:dict, n=10, rule=None):
    ("The `n` movies someone new has not rated that the model ranks first, with the liked movie each is most like: "
     "`movierecs.recommend_for` for a saved model.")
    positive_int(n, 'n')
    import pandas as pd
    codes, given = parse_stars(m, ratings, m.star_range())
    scores = fold_in_scores(m, codes, given, rule).astype(np.float32)
    scores[0] = -np.inf; scores[codes] = -np.inf
    k = min(n, int(np.isfinite(scores).sum()))
    top = np.argsort(-scores, kind='stable')[:k]
    titles = vocab(m, 'movie')
    out = pd.DataFrame({item_label(m): [titles[i] for i in top], 'score' if m.task == 'ranking' else 'stars': scores[top]})
    liked = np.asarray(given) >= RELEVANT
    if liked.any():
        w = m.item_factors().astype(np.float32)
        w = w / np.maximum(np.linalg.norm(w, axis=1, keepdims=True), 1e-12)
        pool = np.asarray(codes)[liked]
        out['because'] = [titles[j] for j in pool[(w[top] @ w[pool].T).argmax(1)]]
    else: out['because'] = [None] * len(top)
    return out
