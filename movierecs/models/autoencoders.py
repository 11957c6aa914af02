"""Autoencoder rating models trained by full-batch L-BFGS in a fastai `Learner`: I-AutoRec (Sedhain et al., WWW 2015)
and GLocal-K (Han et al., CIKM 2021). Each reads the movie x user matrix of the training ratings and predicts any
(user, movie) pair, so `evaluate`, `recommend` and the benchmark treat them like every other rating model."""
import math
from functools import partial
import torch
import torch.nn.functional as F
from torch import nn
from fastai.callback.core import Callback
from fastai.data.core import DataLoaders
from fastai.learner import Learner
from fastai.torch_core import Module
from fastcore.basics import listify
from fastcore.meta import delegates
from ..core.checks import check_penalty, positive_int
from ..engine.loaders import check_dls
from ..engine.tensors import TensorDataLoader, loader_tensors
from ..engine.lbfgs import LBFGSStep, lbfgs
from .base import _learner
from .registry import register
__all__ = ['rating_matrix', 'full_batch', 'AutoencoderLoss', 'AutoRec', 'KernelLayer', 'GLocalK', 'FineTuneAfter', 'autorec', 'glocal_k']

def rating_matrix(dl, # A collab loader (`dls.train`): its rows fill the matrix
                  shape # (users, movies) of the vocabulary, `#na#` included
                 ) -> torch.Tensor:
    "The dense (movies, users) matrix of `dl`'s ratings, 0 where a user did not rate a movie (the mean where a title is rated twice)."
    x, y = loader_tensors(dl)
    total, count = torch.zeros(shape[::-1]), torch.zeros(shape[::-1])
    total.index_put_((x[:, 1], x[:, 0]), y.reshape(-1), accumulate=True)
    count.index_put_((x[:, 1], x[:, 0]), torch.ones(len(x)), accumulate=True)
    return total / count.clamp(min=1)

def full_batch(dls) -> DataLoaders:
    "The rows of `dls` as one training batch and one validation batch, in storage order: what full-batch L-BFGS steps on."
    src = [dl.src if isinstance(dl, TensorDataLoader) else dl for dl in (dls.train, dls.valid)]  # the fast path wraps fastai's
    (x, y), (vx, vy) = (loader_tensors(dl) for dl in src)
    return DataLoaders(TensorDataLoader(x, y, bs=max(len(x), 1), shuffle=False, drop_last=False, src=src[0]),
                       TensorDataLoader(vx, vy, bs=max(len(vx), 1), drop_last=False, src=src[1]), path=dls.path)

class AutoencoderLoss:
    "Training: half the sum of squared errors on the observed ratings plus `model.penalty()`, the papers' objective. Validation: the MSE."
    def __init__(self, model): self.model = model
    def __call__(self, pred, targ):
        err = pred.reshape(-1) - targ.reshape(-1).float()
        if not self.model.training: return (err**2).mean()  # the valid loss reads as every other model's
        return 0.5*(err**2).sum() + self.model.penalty()
    def __repr__(self): return 'AutoencoderLoss()'

def _glorot_(t):
    "TensorFlow's default `glorot_uniform` initializer, which both papers' code used (a vector counts as fan_in = fan_out = its length)."
    fan_in, fan_out = (t.shape[0], t.shape[1]) if t.dim() == 2 else (t.shape[0], t.shape[0])
    a = math.sqrt(6 / (fan_in + fan_out))
    with torch.no_grad(): return t.uniform_(-a, a)

class AutoRec(Module):
    "I-AutoRec: each movie's row of training ratings (one per user) through sigmoid(Linear) and Linear, back to a rating per user."
    def __init__(self, ratings, # (movies, users) training matrix, 0 where unrated (`rating_matrix`)
                 n_hidden=500, # Width of the hidden layer
                 l2=100. # L2 penalty on both weight matrices, added to half the sum of squared errors as l2/2 * ||W||^2
                ):
        positive_int(n_hidden, 'n_hidden'); check_penalty(l2, 'l2')
        n_users = ratings.shape[1]
        self.register_buffer('ratings', ratings, persistent=False)
        self.encoder, self.decoder = nn.Linear(n_users, n_hidden), nn.Linear(n_hidden, n_users)
        for l in (self.encoder, self.decoder): _glorot_(l.weight.T); nn.init.zeros_(l.bias)
        self.l2 = l2

    user_params = ('decoder.weight', 'decoder.bias')  # a user's own weights: their output unit (fold-in fits one for someone new)

    def reconstruct(self, movies): return self.decoder(torch.sigmoid(self.encoder(self.ratings[movies])))
    def forward(self, x):
        movies, pos = torch.unique(x[:, 1], return_inverse=True)  # only the rows asked for
        return self.reconstruct(movies)[pos, x[:, 0]][:, None]
    def penalty(self): return self.l2/2 * (self.encoder.weight.pow(2).sum() + self.decoder.weight.pow(2).sum())

    def factors(self, side):
        "Each movie's hidden code ('movie'), or each user's output weights ('user'): the rating is their dot product plus the user's bias."
        return torch.sigmoid(self.encoder(self.ratings)) if side == 'movie' else self.decoder.weight

    def dot_form(self):
        "For fold-in: (user factors, user bias, movie factors, movie biases, y_range) of the output layer, the movies' codes fixed."
        return 'decoder.weight', 'decoder.bias', self.factors('movie').detach(), None, None

class KernelLayer(Module):
    ("GLocal-K's local kernel layer: `activation(x @ (W * K(u, v)) + b)`, K(u, v) = max(0, 1 - ||u_i - v_j||^2) "
     "on learned points of `n_dim` dimensions.")
    def __init__(self, n_in, n_out, n_dim=5, activation=torch.sigmoid):
        self.W, self.b = nn.Parameter(_glorot_(torch.empty(n_in, n_out))), nn.Parameter(_glorot_(torch.empty(n_out)))
        self.u = nn.Parameter(nn.init.trunc_normal_(torch.empty(n_in, 1, n_dim), 0., 1e-3, -2e-3, 2e-3))
        self.v = nn.Parameter(nn.init.trunc_normal_(torch.empty(1, n_out, n_dim), 0., 1e-3, -2e-3, 2e-3))
        self.activation = activation

    def kernel(self): return (1 - (self.u - self.v).pow(2).sum(2)).clamp(min=0)
    def forward(self, x): return self.activation(x @ (self.W * self.kernel()) + self.b)
    def penalty(self, l2, sparsity): return l2/2 * self.W.pow(2).sum() + sparsity/2 * self.kernel().pow(2).sum()

class GLocalK(Module):
    """GLocal-K: a local-kernel autoencoder of each movie's row (pre-training), then the same autoencoder reading the rating
    matrix convolved by a global kernel pooled from its own reconstruction (fine-tuning, once `fine_tune` is set)."""
    def __init__(self, ratings, # (movies, users) training matrix, 0 where unrated (`rating_matrix`)
                 n_hidden=500, # Width of each hidden layer
                 n_layers=2, # Hidden kernel layers
                 n_dim=5, # Dimensions of the points the local kernels compare
                 gk_size=3, # The global kernel is gk_size x gk_size
                 dot_scale=1., # Scales the global kernel
                 l2=20., # L2 penalty on the weights (l2/2 * ||W||^2 per layer)
                 sparsity=0.006 # Penalty on the local kernels (sparsity/2 * ||K||^2 per layer)
                ):
        for v, k in ((n_hidden, 'n_hidden'), (n_layers, 'n_layers'), (n_dim, 'n_dim'), (gk_size, 'gk_size')): positive_int(v, k)
        if gk_size % 2 == 0: raise ValueError(f"gk_size must be odd (the kernel is centred on each entry), e.g. 3; got {gk_size}.")
        check_penalty(l2, 'l2'); check_penalty(sparsity, 'sparsity')
        if isinstance(dot_scale, bool) or not isinstance(dot_scale, (int, float)) or not math.isfinite(dot_scale) or dot_scale == 0:
            raise ValueError(f"dot_scale must be a finite nonzero number, e.g. 1, got {dot_scale!r}.")
        n_movies, n_users = ratings.shape
        self.register_buffer('ratings', ratings, persistent=False)
        self.register_buffer('fine_tune', torch.tensor(False))  # saved with the weights: the stage the model is in
        self.register_buffer('epochs_trained', torch.tensor(0))  # saved too: a model saved while pre-training resumes where it was
        sizes = [n_users] + [n_hidden]*n_layers
        self.layers = nn.ModuleList([KernelLayer(i, o, n_dim) for i, o in zip(sizes, sizes[1:])] +
                                    [KernelLayer(n_hidden, n_users, n_dim, activation=nn.Identity())])
        self.conv_kernel = nn.Parameter(nn.init.trunc_normal_(torch.empty(n_movies, gk_size**2), 0., 0.1, -0.2, 0.2))
        self.gk_size, self.dot_scale, self.l2, self.sparsity = gk_size, dot_scale, l2, sparsity

    def local(self, x):
        for l in self.layers: x = l(x)
        return x

    def global_kernel(self):
        "The gk_size x gk_size kernel: each movie's mean reconstructed rating, dotted with learned weights."
        pooled = self.local(self.ratings).mean(1)
        return (pooled @ self.conv_kernel * self.dot_scale).reshape(1, 1, self.gk_size, self.gk_size)

    def full(self):
        "The predicted (movies, users) matrix."
        if not self.fine_tune: return self.local(self.ratings)
        conv = F.relu(F.conv2d(self.ratings[None, None], self.global_kernel(), padding='same'))[0, 0]
        return self.local(conv)

    def forward(self, x): return self.full()[x[:, 1], x[:, 0]][:, None]
    def penalty(self): return sum(l.penalty(self.l2, self.sparsity) for l in self.layers)

    def factors(self, side):
        ("Each movie's last hidden code ('movie'), or each user's kernelised output weights ('user'): "
         "the rating is their dot product plus a bias.")
        out = self.layers[-1]
        if side == 'user': return (out.W * out.kernel()).T
        x = self.ratings if not self.fine_tune else F.relu(F.conv2d(self.ratings[None, None], self.global_kernel(), padding='same'))[0, 0]
        for l in self.layers[:-1]: x = l(x)
        return x

class FineTuneAfter(Callback):
    "Switch a `GLocalK` model to fine-tuning once it has been trained for `epochs` epochs (its pre-training), counted on the model."
    def __init__(self, epochs):
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
            raise ValueError(f"pretrain must be a whole number of epochs >= 0, got {epochs!r}.")
        self.epochs = epochs
    def before_train(self):
        if int(self.model.epochs_trained) >= self.epochs and not self.model.fine_tune: self.model.fine_tune.fill_(True)
    def after_train(self):
        if not getattr(self.learn, 'lr_finder', False): self.model.epochs_trained += 1

def _autoencoder_learner(dls, model, max_iter, cbs=None, **kwargs):
    "A `Learner` of `model(rating_matrix)` on `full_batch(dls)`: its objective, L-BFGS restarted every epoch (as SciPy's, each call)."
    positive_int(max_iter, 'max_iter')
    full = full_batch(check_dls(dls))
    m = model(rating_matrix(full.train, tuple(len(c) for c in dls.classes.values())))
    kwargs.setdefault('loss_func', AutoencoderLoss(m))
    kwargs.setdefault('opt_func', partial(lbfgs, max_iter=max_iter, max_eval=15_000, history_size=10, line_search_fn='strong_wolfe'))
    return _learner(full, m, cbs=[LBFGSStep(restart=True)] + list(listify(cbs)), **kwargs)

@register(lbfgs=True)
@delegates(Learner.__init__)
def autorec(dls, n_hidden=500, l2=100.,
            max_iter=5, # L-BFGS iterations per epoch (`learn.fit(epochs, lr=1.)`)
            **kwargs):
    "I-AutoRec: each movie's ratings through a 500-unit sigmoid autoencoder; half SSE + L2, full-batch L-BFGS."
    return _autoencoder_learner(dls, lambda r: AutoRec(r, n_hidden, l2), max_iter, **kwargs)

@register(lbfgs=True)
@delegates(Learner.__init__)
def glocal_k(dls, n_hidden=500, n_layers=2, n_dim=5, gk_size=3, dot_scale=1., l2=20., sparsity=0.006,
             pretrain=30, # Epochs of pre-training before the global kernel joins (fine-tuning)
             max_iter=5, # L-BFGS iterations per epoch
             **kwargs):
    "GLocal-K with the paper's ML-100k settings: 30 pre-training epochs, then fine-tuning, of 5 full-batch L-BFGS iterations each."
    cbs = [FineTuneAfter(pretrain)] + list(listify(kwargs.pop('cbs', None)))
    return _autoencoder_learner(dls, lambda r: GLocalK(r, n_hidden, n_layers, n_dim, gk_size, dot_scale, l2, sparsity),
                                max_iter, cbs=cbs, **kwargs)
