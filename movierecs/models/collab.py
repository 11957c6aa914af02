"The notebook's collaborative-filtering modules, as it wrote them, and their `Learner` factories in the registry."
import torch
from torch import nn
from fastai.layers import Embedding, sigmoid_range
from fastai.torch_core import Module
import inspect
from fastai.learner import Learner
from fastai.tabular.model import get_emb_sz
from fastcore.meta import delegates
from ..engine.sparse import dot_rows
from .base import _learner
from .registry import _factory, check_model, register

__all__ = ['DotProduct', 'DotProductBias', 'create_params', 'DotProductBiasParams', 'CollabNN', 'DotProductBiasImplicit', 'Ensemble', 'dot',
           'dot_raw', 'dot_bias', 'dot_bias_params', 'collab', 'collab_nn', 'collab_emb_nn', 'svdpp', 'ensemble', 'EnsembleMSE']

def _squash(x, y_range): return x if y_range is None else sigmoid_range(x, *y_range)

class DotProduct(Module):
    "User and movie factor `Embedding`s; the rating is their dot product, through `sigmoid_range` unless `y_range` is None."
    def __init__(self, n_users, # Number of users (`len(dls.classes['user'])`)
                 n_movies, # Number of movies (`len(dls.classes['title'])`)
                 n_factors, # Latent factors per user and per movie
                 y_range=(0,5.5) # Range of the predictions; None for the raw dot product
                ):
        self.user_factors = Embedding(n_users, n_factors)
        self.movie_factors = Embedding(n_movies, n_factors)
        self.y_range = y_range

    def forward(self, x):
        users, movies = self.user_factors(x[:,0]), self.movie_factors(x[:,1])
        return _squash((users * movies).sum(dim=1), self.y_range)

class DotProductBias(Module):
    "`DotProduct` plus a learned bias per user and per movie, all `Embedding`s."
    def __init__(self, n_users, n_movies, n_factors, y_range=(0,5.5)):
        self.user_factors = Embedding(n_users, n_factors)
        self.user_bias = Embedding(n_users, 1)
        self.movie_factors = Embedding(n_movies, n_factors)
        self.movie_bias = Embedding(n_movies, 1)
        self.y_range = y_range

    def forward(self, x):
        users, movies = self.user_factors(x[:,0]), self.movie_factors(x[:,1])
        res = (users * movies).sum(dim=1, keepdim=True)
        res += self.user_bias(x[:,0]) + self.movie_bias(x[:,1])
        return _squash(res, self.y_range)

class SparseDotProductBias(DotProductBias):
    "`DotProductBias` on the sparse path (`make_sparse` turns one into this): training reads its four tables in place (`dot_rows`)."
    def forward(self, x):
        res = dot_rows(self.user_factors, self.movie_factors, self.user_bias, self.movie_bias, x[:,0], x[:,1])
        return super().forward(x) if res is None else _squash(res, self.y_range)

DotProductBias.sparse_variant = SparseDotProductBias  # what `make_sparse` makes of one

def create_params(size):
    "A trainable tensor of `size`, drawn from N(0, 0.01)."
    return nn.Parameter(torch.zeros(*size).normal_(0, 0.01))

class DotProductBiasParams(Module):
    "`DotProductBias` built from `create_params` tensors, indexed directly instead of through `Embedding`."
    def __init__(self, n_users, n_movies, n_factors, y_range=(0,5.5)):
        self.user_factors = create_params([n_users, n_factors])
        self.user_bias = create_params([n_users, 1])
        self.movie_factors = create_params([n_movies, n_factors])
        self.movie_bias = create_params([n_movies, 1])
        self.y_range = y_range

    def forward(self, x):
        users, movies = self.user_factors[x[:,0]], self.movie_factors[x[:,1]]
        res = (users * movies).sum(dim=1, keepdim=True)
        res += self.user_bias[x[:,0]] + self.movie_bias[x[:,1]]
        return _squash(res, self.y_range)

class CollabNN(Module):
    "User and item `Embedding`s concatenated, then Linear → ReLU → Linear(1), through `sigmoid_range`."
    def __init__(self, user_sz, # (n_users, size), e.g. from `get_emb_sz(dls)[0]`
                 item_sz, # (n_movies, size), e.g. from `get_emb_sz(dls)[1]`
                 y_range=(0,5.5), # Range of the predictions; None for no squashing
                 n_act=100 # Width of the hidden layer
                ):
        self.user_factors = Embedding(*user_sz)
        self.item_factors = Embedding(*item_sz)
        self.layers = nn.Sequential(nn.Linear(user_sz[1] + item_sz[1], n_act), nn.ReLU(), nn.Linear(n_act, 1))
        self.y_range = y_range

    def forward(self, x):
        embs = self.user_factors(x[:,0]), self.item_factors(x[:,1])
        return _squash(self.layers(torch.cat(embs, dim=1)), self.y_range)

class DotProductBiasImplicit(Module):
    "`DotProductBias` whose user vector adds the normalised sum of implicit factors of the movies the user rated (SVD++)."
    def __init__(self, n_users, n_movies, n_factors,
                 rated, # (user code, movie code) pairs of the training rows: the implicit feedback N(u)
                 y_range=(0,5.5)):
        self.user_factors, self.user_bias = Embedding(n_users, n_factors), Embedding(n_users, 1)
        self.movie_factors, self.movie_bias = Embedding(n_movies, n_factors), Embedding(n_movies, 1)
        self.implicit_factors = Embedding(n_movies, n_factors)
        rated = torch.as_tensor(rated).long()
        rated = rated[torch.argsort(rated[:,0], stable=True)]
        counts = torch.bincount(rated[:,0], minlength=n_users)
        self.register_buffer('indptr', torch.cat([counts.new_zeros(1), counts.cumsum(0)]), persistent=False)
        self.register_buffer('rated_movies', rated[:,1].contiguous(), persistent=False)
        self.y_range = y_range

    def implicit(self, users):
        "|N(u)|^-1/2 Σ_{j in N(u)} y_j for each user in `users`."
        start, n = self.indptr[users], self.indptr[users+1] - self.indptr[users]
        offsets = n.cumsum(0) - n
        flat = torch.repeat_interleave(start - offsets, n) + torch.arange(int(n.sum()), device=users.device)
        w = torch.repeat_interleave(n.clamp(min=1).float().rsqrt(), n)
        return nn.functional.embedding_bag(self.rated_movies[flat], self.implicit_factors.weight, offsets,
                                           mode='sum', per_sample_weights=w)

    def forward(self, x):
        users = self.user_factors(x[:,0]) + self.implicit(x[:,0])
        res = (users * self.movie_factors(x[:,1])).sum(dim=1, keepdim=True)
        res += self.user_bias(x[:,0]) + self.movie_bias(x[:,1])
        return _squash(res, self.y_range)

class Ensemble(Module):
    "Member models trained side by side on the same batches, each on its own loss (`EnsembleMSE`); the prediction is their mean."
    def __init__(self, *members): self.members = nn.ModuleList(members)

    def forward(self, x):
        preds = torch.cat([m(x).reshape(-1, 1) for m in self.members], dim=1)
        return preds if self.training else preds.mean(dim=1, keepdim=True)

def _sizes(dls): return [len(c) for c in dls.classes.values()]  # n_users, n_movies

@register
@delegates(Learner.__init__)
def dot(dls, n_factors=50, y_range=(0,5.5), **kwargs):
    "The notebook's `DotProduct`: user · movie factors through `sigmoid_range`."
    return _learner(dls, DotProduct(*_sizes(dls), n_factors, y_range=y_range), **kwargs)

@register
@delegates(Learner.__init__)
def dot_raw(dls, n_factors=50, **kwargs):
    "fastbook's first `DotProduct`: the raw dot product, no `sigmoid_range`."
    return _learner(dls, DotProduct(*_sizes(dls), n_factors, y_range=None), **kwargs)

@register
@delegates(Learner.__init__)
def dot_bias(dls, n_factors=50, y_range=(0,5.5), **kwargs):
    "The notebook's `DotProductBias`: factors and biases as `Embedding`s."
    return _learner(dls, DotProductBias(*_sizes(dls), n_factors, y_range=y_range), **kwargs)

@register
@delegates(Learner.__init__)
def dot_bias_params(dls, n_factors=50, y_range=(0,5.5), **kwargs):
    "The notebook's `DotProductBias` rewritten with `create_params`."
    return _learner(dls, DotProductBiasParams(*_sizes(dls), n_factors, y_range=y_range), **kwargs)

@register
@delegates(Learner.__init__)
def collab(dls, n_factors=50, y_range=(0,5.5), **kwargs):
    "fastai's `collab_learner(dls, n_factors=50, y_range=(0,5.5))`: an `EmbeddingDotBias`."
    return _learner(dls, n_factors=n_factors, y_range=y_range, **kwargs)

@register
@delegates(Learner.__init__)
def collab_nn(dls, y_range=(0,5.5), n_act=100, **kwargs):
    "The notebook's `CollabNN`, embedding sizes from `get_emb_sz(dls)`."
    return _learner(dls, CollabNN(*get_emb_sz(dls), y_range=y_range, n_act=n_act), **kwargs)

@register
@delegates(Learner.__init__)
def collab_emb_nn(dls, y_range=(0,5.5), layers=(100,50), **kwargs):
    "fastbook's `collab_learner(dls, use_nn=True, layers=[100,50])`: an `EmbeddingNN`."
    return _learner(dls, use_nn=True, layers=list(layers), y_range=y_range, **kwargs)

@register
@delegates(Learner.__init__)
def svdpp(dls, n_factors=50, y_range=(0,5.5), **kwargs):
    "SVD++ as a fastai model: `DotProductBias` plus implicit factors of the movies each user rated in `dls.train`."
    rated = dls.train.items[list(dls.classes)].to_numpy('int64')
    return _learner(dls, DotProductBiasImplicit(*_sizes(dls), n_factors, rated, y_range=y_range), **kwargs)

class EnsembleMSE:
    "The mean of every column's MSE against the target: the members of an `Ensemble` learn independently; one column is MSE."
    def __call__(self, inp, targ): return ((inp - targ.reshape(-1, 1).float())**2).mean()
    def __repr__(self): return 'EnsembleMSE()'

@register
@delegates(Learner.__init__)
def ensemble(dls, members=('collab', 'svdpp', 'collab_nn'), n_factors=50, y_range=(0,5.5), **kwargs):
    "Registry models trained side by side, each on its own MSE; the prediction is their mean (the train loss is the members' mean MSE)."
    for m in members: check_model(m)
    def model(name):
        takes = inspect.signature(_factory(name)).parameters
        own = dict(n_factors=n_factors, y_range=y_range)
        return _factory(name)(dls, **{k: v for k, v in own.items() if k in takes}).model
    kwargs.setdefault('loss_func', EnsembleMSE())
    return _learner(dls, Ensemble(*[model(m) for m in members]), **kwargs)
