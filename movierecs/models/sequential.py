"Sequential models: what a user watches next, from the items they rated in time order, trained by a fastai `Learner`."
import math
import torch
import torch.nn.functional as F
from torch import nn
from fastai.learner import Learner
from fastai.torch_core import Module
from fastcore.meta import delegates
from ..core.checks import positive_int
from ..engine.loaders import check_dls
from ..engine.sequences import MAX_LEN, PAD, sequence_dataloaders
from .base import _learner
from .registry import register
__all__ = ['SequenceCE', 'causal_mask', 'SASRecBlock', 'SASRec', 'sasrec']

class SequenceCE:
    ("Full softmax cross-entropy over every item (Klenitskiy & Vasilev, RecSys 2023): in training at each position that has a "
     "next item, its logits made there only, from the model's states; in evaluation, the item after the window.")
    def __init__(self, model): self.model = model
    def __call__(self, out, targ):
        if out.dim() == 2: return F.cross_entropy(out, targ if targ.dim() == 1 else targ[:, -1])  # eval mode: logits after each window
        targ = targ[:, -out.shape[1]:]  # the model leaves out the columns no window reaches (all `PAD`)
        has = targ != PAD
        return F.cross_entropy(self.model.logits(out[has]), targ[has])
    def __repr__(self): return 'SequenceCE()'

def causal_mask(x # (batch, length) item codes, `PAD` on the left
               ) -> torch.Tensor:
    ("(batch, 1, length, length) bool, True where position i may attend to position j: j <= i and j holds an item; "
     "each position always sees itself, so a padded one attends to nothing else.")
    n = x.shape[1]
    past = torch.ones(n, n, dtype=torch.bool, device=x.device).tril()
    m = past & (x != PAD)[:, None, :]
    return (m | torch.eye(n, dtype=torch.bool, device=x.device))[:, None]

def _additive(mask): return torch.zeros(mask.shape, device=mask.device).masked_fill_(~mask, -torch.inf)  # SDPA's faster form

class SASRecBlock(Module):
    "A pre-norm Transformer block: causal multi-head self-attention, then a position-wise feed-forward network, each residual."
    def __init__(self, d, n_heads, dropout):
        if d % n_heads: raise ValueError(f"n_factors ({d}) must be a multiple of n_heads ({n_heads}).")
        self.n_heads, self.p = n_heads, dropout
        self.norm1, self.qkv, self.out = nn.LayerNorm(d), nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.norm2, self.ff = nn.LayerNorm(d), nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Dropout(dropout), nn.Linear(d, d))
        self.drop = nn.Dropout(dropout)

    def forward(self, h, mask):
        b, n, d = h.shape
        q, k, v = self.qkv(self.norm1(h)).view(b, n, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.p if self.training else 0.)
        h = h + self.drop(self.out(a.transpose(1, 2).reshape(b, n, d)))
        return h + self.drop(self.ff(self.norm2(h)))

class SASRec(Module):
    ("SASRec (Kang & McAuley, ICDM 2018): item and position embeddings through causal self-attention blocks; "
     "each position's logits are its state · every item's embedding.")
    def __init__(self, history, # (users, max_len) each user's training window (`sequence_dataloaders(...).history`)
                 n_items, # Items in the vocabulary, `PAD` included
                 n_factors=64, # Width of the embeddings and the blocks
                 n_blocks=2, # Self-attention blocks
                 n_heads=1, # Attention heads per block
                 dropout=0.2 # Dropout on the embeddings, the attention and the feed-forward layers while training
                ):
        for v, k in ((n_factors, 'n_factors'), (n_blocks, 'n_blocks'), (n_heads, 'n_heads')): positive_int(v, k)
        if not 0 <= dropout < 1: raise ValueError(f"dropout must be in [0, 1), got {dropout!r}.")
        self.register_buffer('history', history, persistent=False)
        self.max_len, self.scale = history.shape[1], math.sqrt(n_factors)
        self.items, self.pos = nn.Embedding(n_items, n_factors, padding_idx=PAD), nn.Embedding(self.max_len, n_factors)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(SASRecBlock(n_factors, n_heads, dropout) for _ in range(n_blocks))
        self.norm = nn.LayerNorm(n_factors)
        nn.init.normal_(self.items.weight, std=n_factors ** -0.5)
        with torch.no_grad(): self.items.weight[PAD] = 0
        nn.init.normal_(self.pos.weight, std=0.02)

    def states(self, x):
        ("(batch, length, n_factors): each position's state, from the items at that position and before it; the leading "
         "columns that are `PAD` in every row are left out (they change nothing: no position attends to them).")
        if x.shape[1] > self.max_len: x = x[:, -self.max_len:]
        used = (x != PAD).any(0).nonzero()
        x = x[:, int(used[0]) if len(used) else x.shape[1] - 1:]
        keep = (x != PAD)[..., None]
        h = self.drop(self.items(x) * self.scale + self.pos.weight[-x.shape[1]:]) * keep
        mask = _additive(causal_mask(x))
        for b in self.blocks: h = b(h, mask) * keep
        return self.norm(h)

    def forward(self, x):
        "Training: the states (`SequenceCE` makes logits where there is a next item); evaluation: every item's logit after each window."
        h = self.states(x)
        return h if self.training else self.logits(h[:, -1])

    def logits(self, states): return states @ self.items.weight.T  # (..., items): every item's logit from each state

    def score_windows(self, x):
        "Every item's logit for what comes after each window of `x` (no dropout); `PAD` scores -inf."
        training = self.training
        self.eval()
        try:
            with torch.no_grad(): out = self.logits(self.states(x)[:, -1])
        finally: self.train(training)
        out[:, PAD] = -torch.inf
        return out

    def scores(self, users):
        "Every item's logit for each user code in `users`, after their training history: higher ranks first."
        return self.score_windows(self.history[users.reshape(-1)])

@register(task='next')
@delegates(Learner.__init__)
def sasrec(dls, n_factors=64, n_blocks=2, n_heads=1, dropout=0.2,
           max_len=MAX_LEN, # The longest history read: each user's newest max_len items
           batch=128, # Windows per batch (`bs` is the ratings loader's, which `train_model` sets)
           windows='last', # What an epoch trains on: each user's newest `max_len` items ('last') or every rating ('all')
           **kwargs):
    "SASRec reading each user's rated movies in time order, trained with full softmax cross-entropy to name the next one."
    positive_int(batch, 'batch')
    seqs = sequence_dataloaders(check_dls(dls), max_len=max_len, bs=batch, windows=windows)
    model = SASRec(seqs.history, len(dls.classes[list(dls.classes)[1]]), n_factors, n_blocks, n_heads, dropout)
    kwargs.setdefault('loss_func', SequenceCE(model))
    return _learner(seqs, model, **kwargs)
