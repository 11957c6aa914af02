"""The default training path (`dataloaders(fast=True)`): fastai's `Learner` fed by in-memory tensors, with cheaper callback
dispatch and a foreach Adam. The same optimizer maths, schedule, recorder and callbacks as fastai, bit for bit on the same
batches; only the shuffling generator differs from fastai's loaders (`dataloaders(fast=False)`, the faithful path)."""
import ctypes, math
import numpy as np, pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from fastai.data.core import DataLoaders
from fastai.callback.core import TrainEvalCallback, _inner_loop
from fastai.callback.schedule import ParamScheduler
from fastai.learner import Learner, Recorder
from fastai.losses import BaseLoss
from fastai.optimizer import Adam, Optimizer, debias
from fastai.torch_core import to_detach

__all__ = ['VAL_BS', 'TensorDataLoader', 'fast_dataloaders', 'FlatMSE', 'FastAdam', 'FastLearner', 'make_fast']

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
        ts = [self.x] if self.y is None else [self.x, self.y]  # no ratings (a test set): batches of codes alone
        if self.shuffle:
            perm = torch.randperm(self.n, generator=self.gen)
            ts = [t.index_select(0, perm) for t in ts]  # one gather per epoch; each batch is then a view
        if self.device is not None: ts = [t.to(self.device) for t in ts]
        for i in range(len(self)): yield tuple(t[i*self.bs:(i+1)*self.bs] for t in ts)

    def one_batch(self):
        if len(self) == 0: raise ValueError(f'This loader has no batch: {self.n} rows, bs={self.bs}, drop_last={self.drop_last}.')
        return next(iter(self))
    def to(self, device): self.device = device; return self
    @property
    def _device(self): return self.device  # what `dls.device` reads (fastai's loaders keep it there)
    def to_detach(self, b, cpu=True, gather=True): return to_detach(b, cpu, gather)  # fastai's, asked of the loader by `Learner.to_detach`
    def get_idxs(self): return list(range(self.n))  # `get_preds(reorder=True)`: the rows come in storage order unless shuffled
    def new(self, dataset=None, shuffle=None, drop_last=None, bs=None, **kwargs):
        "A loader over the same rows, or over `dataset`'s (`dls.test_dl(frame)`, fastai's `new_empty`); the permutations continue."
        x, y = (self.x, self.y) if dataset is None else self._rows_of(dataset)
        dl = TensorDataLoader(x, y, bs or self.bs, self.shuffle if shuffle is None else shuffle,
                              self.drop_last if drop_last is None else drop_last, src=self.src)
        dl.gen, dl.device = self.gen, self.device
        return dl

    def _rows_of(self, ds):
        "Codes and ratings (None when it has none) of a frame of ids, coded with this loader's vocabulary ('#na#' for an id it lacks), or of fastai's processed tabular rows."
        frame = ds if isinstance(ds, pd.DataFrame) else getattr(ds, 'items', None)
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(f"A loader of these rows is made from a DataFrame of ids (dls.test_dl(frame)), not a {type(ds).__name__}.")
        if len(frame) == 0: return self.x[:0], (None if self.y is None else self.y[:0])
        names, y_names = list(self.cat_names), list(self.y_names)
        if self.x.dim() != 2 or self.x.shape[1] != len(names):
            raise TypeError(f"This loader serves rows of another shape than ({', '.join(names)}) codes: it cannot make a test set of a frame.")
        missing = [c for c in names if c not in frame.columns]
        if missing: raise ValueError(f"The test items lack column(s) {missing}: give a frame with {names} columns.")
        if ds is frame:  # ids, as the training frame held them
            codes = [pd.Index(list(self.classes[c])[1:]).get_indexer(frame[c]) + 1 for c in names]
            x = torch.from_numpy(np.stack(codes, 1).astype('int64'))
        else: x = torch.from_numpy(frame[names].to_numpy('int64'))  # fastai's processed rows: codes already
        y = torch.from_numpy(frame[y_names].to_numpy('float32')) if y_names and all(c in frame.columns for c in y_names) else None
        return x, y

    def __getattr__(self, k):
        if k.startswith('__') or k == 'src': raise AttributeError(k)
        return getattr(self.src, k)  # classes, items, dataset, cat_names, show_batch ...

def _tensors(dl):
    "The (user, item) codes and ratings of a fastai tabular loader's rows, in storage order."
    items = dl.items
    x = torch.from_numpy(items[list(dl.cat_names)].to_numpy('int64'))
    y = torch.from_numpy(items[list(dl.y_names)].to_numpy('float32'))
    return x, y

VAL_BS = 4096  # validation rows per batch on the fast path: the valid loss is a row-weighted mean, so only rounding differs

def fast_dataloaders(dls, # The faithful `DataLoaders` (their split and vocabulary are kept)
                     seed=None, # Seed of the training permutations
                     val_bs=None # Validation batch size; default: the larger of `VAL_BS` and the training bs
                    ) -> DataLoaders:
    "`DataLoaders` over the same rows as `dls`, as in-memory tensors."
    train, valid = dls.train, dls.valid
    return DataLoaders(TensorDataLoader(*_tensors(train), bs=train.bs, shuffle=train.shuffle, drop_last=train.drop_last, seed=seed, src=train),
                       TensorDataLoader(*_tensors(valid), bs=val_bs or max(VAL_BS, valid.bs), drop_last=False, src=valid),
                       path=dls.path)

class FlatMSE:
    "`MSELossFlat`'s maths on plain tensors (fastai's wraps them in `TensorBase`, whose dispatch costs time per batch)."
    def __call__(self, inp, targ): return F.mse_loss(inp.reshape(-1), targ.reshape(-1).float())
    def __repr__(self): return 'FlatMSE()'

class FastAdam(Optimizer):
    "fastai's `Adam` (decoupled weight decay, its defaults and state), stepping all parameters at once with `torch._foreach_*`."
    def __init__(self, params, lr, mom=0.9, sqr_mom=0.99, eps=1e-5, wd=0.01):
        super().__init__(params, Adam(params, lr).cbs, lr=lr, mom=mom, sqr_mom=sqr_mom, eps=eps, wd=wd)

    def zero_grad(self):
        "Drop the gradients, as PyTorch's `set_to_none`: the next backward writes them afresh (the values fastai's zeroing gives)."
        for pg in self.param_lists:
            for p in pg: p.grad = None

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

_fast_events = {}  # (callback class, event) -> f(cb, learn): that method's work without fastai's per-call lookups

def _replaces(cls, event):
    "Register `f` as the per-batch work of `cls.event` for `FastLearner` (exactly `cls`, not its subclasses)."
    def deco(f): _fast_events[cls, event] = f; return f
    return deco

@_replaces(TrainEvalCallback, 'after_batch')
def _train_eval_after_batch(cb, learn):
    learn.pct_train += 1./(learn.n_iter*learn.n_epoch)
    learn.train_iter += 1

@_replaces(Recorder, 'after_batch')
def _recorder_after_batch(cb, learn):
    if len(learn.yb) == 0: return
    d = cb.__dict__
    if learn.training:
        if not d.get('cancel_train', False):
            cb.smooth_loss.accumulate(learn)
            if cb.train_metrics:
                for met in learn.metrics: met.accumulate(learn)
        cb.lrs.append(learn.opt.hypers[-1]['lr'])
        cb.losses.append(v := cb.smooth_loss.value)
        learn.smooth_loss = v
    elif not d.get('cancel_valid', False) and cb.valid_metrics:
        for met in [cb.loss, *learn.metrics]: met.accumulate(learn)

@_replaces(ParamScheduler, 'before_batch')
def _param_scheduler_before_batch(cb, learn):
    pct, opt = learn.pct_train, learn.opt
    for n, f in cb.scheds.items(): opt.set_hyper(n, _fast_sched(f)(pct))

@_replaces(ParamScheduler, 'after_batch')
def _param_scheduler_after_batch(cb, learn):
    h = learn.opt.hypers[-1]
    for p in cb.scheds: cb.hps[p].append(h[p])

def _fast_sched(f):
    "fastai's `combine_scheds` function `f` computed with numpy float32 scalars instead of torch ops (the same values); other `f` as is."
    if getattr(f, '__qualname__', '') != 'combine_scheds.<locals>._inner': return f
    fast = f.__dict__.get('_fast')
    if fast is None:
        cells = dict(zip(f.__code__.co_freevars, (c.cell_contents for c in f.__closure__)))
        pcts, scheds, lim = cells['pcts'].numpy(), cells['scheds'], cells['pct_lim']
        def fast(pos):
            idx = min(int(np.flatnonzero(np.float32(pos) >= pcts).max()), lim)
            return scheds[idx](float((np.float32(pos) - pcts[idx]) / (pcts[idx+1] - pcts[idx])))
        f._fast = fast
    return fast

def _runner(cb, event):
    "A callable of `learn` that does what `cb(event)` does."
    f = _fast_events.get((type(cb), event))
    if f is None: return lambda learn: cb(event)
    inner = event in _inner_loop
    def run(learn):  # `Callback.__call__`'s conditions
        if cb.run and (not inner or (cb.run_train if learn.training else cb.run_valid)): f(cb, learn)
    return run

TRIM_EVERY = 100  # batches between two `malloc_trim` calls

def _libc_trim():
    "glibc's `malloc_trim`, or a no-op elsewhere."
    try: trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError): return lambda: None
    return lambda: trim(0)
# fastai's `Recorder` keeps a small tensor per batch; glibc places them in the holes large per-step buffers leave, and the
# heap grows without bound (1.4 MB/batch for ML-25M-sized embeddings). Returning the free pages keeps memory flat.
_malloc_trim = _libc_trim()

class FastLearner(Learner):
    "A fastai `Learner` that calls, for each event, only the callbacks that define it, and does fastai's own per-batch callback work without its attribute lookups."
    def __call__(self, event_name):
        for e in ([event_name] if isinstance(event_name, str) else event_name): self._call_one(e)

    def _call_one(self, event_name):
        key = (event_name, tuple(map(id, self.cbs)))
        cache = self.__dict__.setdefault('_event_cbs', {})
        if key not in cache:
            cbs = self.cbs.sorted('order')
            # every callback sees `after_fit` (fastai resets `cb.run` there); otherwise only those with the method
            if event_name != 'after_fit': cbs = [cb for cb in cbs if getattr(type(cb), event_name, None) is not None]
            cache[key] = [_runner(cb, event_name) for cb in cbs]
            if len(cache) > 1000: cache.clear()
        for run in cache[key]: run(self)

    def one_batch(self, i, b):
        super().one_batch(i, b)
        if i % TRIM_EVERY == TRIM_EVERY - 1: _malloc_trim()

    def all_batches(self):
        self._device = next(self.model.parameters()).device
        super().all_batches()

    def _set_device(self, b):
        "Tensors already on the model's device pass as they are (fastai would copy them to the same device)."
        if type(self.dl) is TensorDataLoader and all(t.device == self._device for t in b): return b
        return super()._set_device(b)

    def _split(self, b):
        if type(self.dl) is TensorDataLoader: self.xb, self.yb = b[:1], b[1:]
        else: super()._split(b)

def _is_mse_flat(f): return isinstance(f, BaseLoss) and isinstance(f.func, nn.MSELoss) and f.flatten and f.func.reduction == 'mean'

def make_fast(learn):
    "Turn a `Learner` on fast `DataLoaders` into a `FastLearner` (`MSELossFlat` into `FlatMSE`, `Adam` into `FastAdam`)."
    if isinstance(learn.dls.train, TensorDataLoader):
        learn.__class__ = FastLearner
        if _is_mse_flat(learn.loss_func): learn.loss_func = FlatMSE()
        if learn.opt_func is Adam and learn.opt is None: learn.opt_func = FastAdam
    return learn
