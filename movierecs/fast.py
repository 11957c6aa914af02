"An opt-in faster training path (`dataloaders(fast=True)`): fastai's `Learner`, fed by in-memory tensors, with cheaper callback dispatch."
import math
import torch
import torch.nn.functional as F
from torch import nn
from fastai.data.core import DataLoaders
from fastai.learner import Learner
from fastai.losses import BaseLoss
from fastai.optimizer import Adam, Optimizer, debias

__all__ = ['TensorDataLoader', 'fast_dataloaders', 'FlatMSE', 'FastAdam', 'FastLearner', 'make_fast']

class TensorDataLoader:
    "Batches of (user, item) codes and ratings sliced from tensors: a new permutation every epoch, `drop_last` like fastai."
    def __init__(self, x, # (n, 2) int64 codes of user and item
                 y, # (n, 1) float32 ratings
                 bs=64, # Batch size
                 shuffle=False, # A new random order every epoch (training)
                 drop_last=None, # Drop the last partial batch; default: `shuffle`, as fastai does
                 seed=None, # Seed of the permutations
                 src=None # The fastai loader holding the same rows: classes, items, show methods are its
                ):
        self.x, self.y, self.bs, self.shuffle, self.src = x, y, bs, shuffle, src
        self.drop_last = shuffle if drop_last is None else drop_last
        self.gen = torch.Generator()
        self.gen.manual_seed(torch.initial_seed() if seed is None else seed)
        self.device = None

    @property
    def n(self): return len(self.x)
    def __len__(self): return self.n // self.bs if self.drop_last else math.ceil(self.n / self.bs)

    def __iter__(self):
        x, y = self.x, self.y
        if self.shuffle:
            perm = torch.randperm(self.n, generator=self.gen)
            x, y = x[perm], y[perm]  # one gather per epoch; each batch is then a view
        if self.device is not None: x, y = x.to(self.device), y.to(self.device)
        for i in range(len(self)): yield x[i*self.bs:(i+1)*self.bs], y[i*self.bs:(i+1)*self.bs]

    def one_batch(self): return next(iter(self))
    def to(self, device): self.device = device; return self
    def new(self, dataset=None, shuffle=None, drop_last=None, bs=None, **kwargs):
        "A loader over the same rows (no rows when given `dataset`, as fastai's `new_empty` does); the permutations continue."
        x, y = (self.x, self.y) if dataset is None else (self.x[:0], self.y[:0])
        dl = TensorDataLoader(x, y, bs or self.bs, self.shuffle if shuffle is None else shuffle, drop_last, src=self.src)
        dl.gen, dl.device = self.gen, self.device
        return dl

    def __getattr__(self, k):
        if k.startswith('__') or k == 'src': raise AttributeError(k)
        return getattr(self.src, k)  # classes, items, dataset, cat_names, show_batch ...

def _tensors(dl):
    "The (user, item) codes and ratings of a fastai tabular loader's rows, in storage order."
    items = dl.items
    x = torch.from_numpy(items[list(dl.cat_names)].to_numpy('int64'))
    y = torch.from_numpy(items[list(dl.y_names)].to_numpy('float32'))
    return x, y

def fast_dataloaders(dls, # The faithful `DataLoaders` (their split and vocabulary are kept)
                     seed=None # Seed of the training permutations
                    ) -> DataLoaders:
    "`DataLoaders` over the same rows as `dls`, as in-memory tensors."
    train, valid = (TensorDataLoader(*_tensors(dl), bs=dl.bs, shuffle=dl.shuffle, drop_last=dl.drop_last, seed=seed, src=dl)
                    for dl in (dls.train, dls.valid))
    return DataLoaders(train, valid, path=dls.path)

class FlatMSE:
    "`MSELossFlat`'s maths on plain tensors (fastai's wraps them in `TensorBase`, whose dispatch costs time per batch)."
    def __call__(self, inp, targ): return F.mse_loss(inp.reshape(-1), targ.reshape(-1).float())
    def __repr__(self): return 'FlatMSE()'

class FastAdam(Optimizer):
    "fastai's `Adam` (decoupled weight decay, its defaults and state), stepping all parameters at once with `torch._foreach_*`."
    def __init__(self, params, lr, mom=0.9, sqr_mom=0.99, eps=1e-5, wd=0.01):
        super().__init__(params, Adam(params, lr).cbs, lr=lr, mom=mom, sqr_mom=sqr_mom, eps=eps, wd=wd)

    def zero_grad(self):
        grads = [p.grad for pg in self.param_lists for p in pg if getattr(p, 'grad', None) is not None]
        for g in grads: g.detach_()
        if grads: torch._foreach_zero_(grads)

    def step(self, closure=None):
        if closure is not None: raise NotImplementedError("fastai optimizers do not support closure")
        for pg, h in zip(self.param_lists, self.hypers):
            ps = [p for p in pg if getattr(p, 'grad', None) is not None]
            if not ps: continue
            sts = [self.state[p] for p in ps]
            decay = [p.data for p, st in zip(ps, sts) if st.get('do_wd', True)]  # fastai's `weight_decay`
            if h['wd'] != 0 and decay: torch._foreach_mul_(decay, 1 - h['lr']*h['wd'])
            for p, st in zip(ps, sts):
                if 'grad_avg' not in st: st.update(grad_avg=torch.zeros_like(p.grad.data), sqr_avg=torch.zeros_like(p.grad.data), step=0)
                st['step'] += 1
            steps = {st['step'] for st in sts}
            for step in sorted(steps):  # one group in practice: every parameter has stepped as often
                sel = [i for i, st in enumerate(sts) if st['step'] == step]
                data, grads = [ps[i].data for i in sel], [ps[i].grad.data for i in sel]
                avg, sqr = [sts[i]['grad_avg'] for i in sel], [sts[i]['sqr_avg'] for i in sel]
                torch._foreach_mul_(avg, h['mom']); torch._foreach_add_(avg, grads, alpha=1-h['mom'])  # `average_grad`
                torch._foreach_mul_(sqr, h['sqr_mom']); torch._foreach_addcmul_(sqr, grads, grads, value=1-h['sqr_mom'])
                debias1, debias2 = debias(h['mom'], 1-h['mom'], step), debias(h['sqr_mom'], 1-h['sqr_mom'], step)
                denom = torch._foreach_div(sqr, debias2); torch._foreach_sqrt_(denom); torch._foreach_add_(denom, h['eps'])
                torch._foreach_addcdiv_(data, avg, denom, value=-h['lr']/debias1)  # `adam_step`

class FastLearner(Learner):
    "A fastai `Learner` that calls, for each event, only the callbacks that define it."
    def __call__(self, event_name):
        for e in ([event_name] if isinstance(event_name, str) else event_name): self._call_one(e)

    def _call_one(self, event_name):
        key = (event_name, tuple(map(id, self.cbs)))
        cache = self.__dict__.setdefault('_event_cbs', {})
        if key not in cache:
            cbs = self.cbs.sorted('order')
            # every callback sees `after_fit` (fastai resets `cb.run` there); otherwise only those with the method
            cache[key] = cbs if event_name == 'after_fit' else [cb for cb in cbs if getattr(type(cb), event_name, None) is not None]
            if len(cache) > 1000: cache.clear()
        for cb in cache[key]: cb(event_name)

def _is_mse_flat(f): return isinstance(f, BaseLoss) and isinstance(f.func, nn.MSELoss) and f.flatten and f.func.reduction == 'mean'

def make_fast(learn):
    "Turn a `Learner` on fast `DataLoaders` into a `FastLearner` (`MSELossFlat` into `FlatMSE`, `Adam` into `FastAdam`)."
    if isinstance(learn.dls.train, TensorDataLoader):
        learn.__class__ = FastLearner
        if _is_mse_flat(learn.loss_func): learn.loss_func = FlatMSE()
        if learn.opt_func is Adam and learn.opt is None: learn.opt_func = FastAdam
    return learn
