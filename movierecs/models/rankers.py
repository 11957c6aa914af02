"Ranking-trained models: each scores every movie for a user from the user's row of rated movies, trained by a fastai `Learner`."
import torch
import torch.nn.functional as F
from torch import nn
from fastai.learner import Learner
from fastai.torch_core import Module
from fastcore.meta import delegates
from ..core.checks import positive_int
from ..engine.loaders import check_dls
from ..engine.feedback import rows_dataloaders
from .base import _learner
from .registry import register
__all__ = ['MultinomialNLL', 'MultDAE', 'mult_dae']

class MultinomialNLL:
    "The multinomial log-likelihood loss of Liang et al. (2018): -Σ_i y_i log softmax(logits)_i per user, averaged over users."
    def __call__(self, logits, targ): return -(F.log_softmax(logits, 1) * targ).sum(1).mean()
    def __repr__(self): return 'MultinomialNLL()'

class MultDAE(Module):
    "Mult-DAE (Liang et al., WWW 2018): the user's row, L2-normalised, dropped out, through tanh(Linear) and Linear to a logit per movie."
    def __init__(self, history, # (users, movies) training matrix the input rows come from (`rows_dataloaders(...).history`)
                 n_hidden=600, # Width of the hidden layer
                 dropout=0.5 # Input dropout while training (the 'denoising')
                ):
        positive_int(n_hidden, 'n_hidden')
        if not 0 <= dropout < 1: raise ValueError(f"dropout must be in [0, 1), got {dropout!r}: 1 would drop every input.")
        n = history.shape[1]
        self.register_buffer('history', history, persistent=False)
        self.drop, self.encoder, self.decoder = nn.Dropout(dropout), nn.Linear(n, n_hidden), nn.Linear(n_hidden, n)
        for l in (self.encoder, self.decoder): nn.init.xavier_normal_(l.weight); nn.init.normal_(l.bias, std=1e-3)

    def forward(self, users): return self.decoder(torch.tanh(self.encoder(self.drop(F.normalize(self.history[users.reshape(-1)], dim=1)))))

    def user_embedding(self, users):
        "The hidden code of each user's row (no dropout): the user's factors, for `similar_users`."
        return torch.tanh(self.encoder(F.normalize(self.history[users.reshape(-1)], dim=1)))

    def score_rows(self, rows):
        "Every movie's logit for users given by their rows (no dropout): how a user the model never saw is folded in."
        return self.decoder(torch.tanh(self.encoder(F.normalize(rows, dim=1))))

    def scores(self, users):
        "Every movie's logit for each user code in `users` (no dropout): higher ranks first."
        training = self.training
        self.eval()
        try: return self(users)
        finally: self.train(training)

def _ranker(dls, model, bs, low, low_in, **kwargs):
    "A `Learner` of `model(rows.history)` on the user rows of `dls`, with the multinomial loss."
    positive_int(bs, 'bs')
    rows = rows_dataloaders(check_dls(dls), bs=bs, low=low, low_in=low_in)
    kwargs.setdefault('loss_func', MultinomialNLL())
    return _learner(rows, model(rows.history), **kwargs)

@register(task='ranking')
@delegates(Learner.__init__)
def mult_dae(dls, n_hidden=600, dropout=0.5,
             low=0.25, # Target weight of a movie rated below 4 (a liked one weighs 1): 0 learns only what users like
             low_in=0.25, # Input weight of a movie rated below 4 (a liked one weighs 1)
             bs=128, **kwargs):
    "Mult-DAE reading each user's rated movies and trained, on the multinomial likelihood, to put the liked ones first."
    return _ranker(dls, lambda h: MultDAE(h, n_hidden, dropout), bs, low, low_in, **kwargs)
