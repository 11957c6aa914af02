"The notebook's collaborative-filtering modules, as it wrote them."
import torch
from torch import nn
from fastai.layers import Embedding, sigmoid_range
from fastai.torch_core import Module

__all__ = ['DotProduct', 'DotProductBias', 'create_params', 'DotProductBiasParams', 'CollabNN', 'DotProductBiasImplicit', 'Ensemble']

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
