"""The wall: every fastai internal that movierecs relies on lives in this module, and nowhere else. Each piece names the fastai
code it mirrors; tests/engine/test_fast.py pins them against stock fastai (the same weights, losses and schedule, bit for bit),
and importing this module under a fastai outside `FASTAI_RANGE` fails at once instead of training on changed internals.

What is here: the fast path's `FastLearner` (fastai's per-batch callback work without its attribute lookups, `Learner._split`
and `Learner._set_device` for tensor batches, `learn.__class__` swapped by `make_fast`), `_fast_sched` (the closure cells of
`combine_scheds`), `TensorLoader` (what fastai's `Learner` and `DataLoaders` read from a loader), `FASTAI_LOADER_ATTRS` (what only fastai's
own loaders have), and `LBFGSWrapper`
(`OptimWrapper._set_hyper`)."""
import ctypes, re

import numpy as np
from torch import nn
from fastai.callback.core import TrainEvalCallback, _inner_loop
from fastai.callback.schedule import ParamScheduler
from fastai.learner import Learner, Recorder
from fastai.losses import BaseLoss
from fastai.optimizer import Adam, OptimWrapper
import fastai
from .fast import FastAdam, FlatMSE
__all__ = ['FASTAI_RANGE', 'FASTAI_LOADER_ATTRS', 'TensorLoader', 'FastLearner', 'make_fast', 'LBFGSWrapper']

FASTAI_RANGE = ('2.8.8', '2.9')  # the fastai versions whose internals this module mirrors: from the first, up to the second (excluded)

def _version(v): return tuple(int(x) for x in re.findall(r'\d+', v)[:3])
if not _version(FASTAI_RANGE[0]) <= _version(fastai.__version__) < _version(FASTAI_RANGE[1]):
    raise ImportError(f"movierecs mirrors internals of fastai {FASTAI_RANGE[0]} up to {FASTAI_RANGE[1]} (excluded), but fastai "
                      f"{fastai.__version__} is installed: pip install 'fastai>={FASTAI_RANGE[0]},<{FASTAI_RANGE[1]}'.")

# What only fastai's own loader of collab rows has (a `TabDataLoader` of `CollabDataLoaders.from_df`, fastai 2.8): the fast
# path's `CollabRows` builds fastai's loaders, once, when one of these names is asked for (`show_batch`, `dataset`, `decode_batch`
# ...); any other unknown name is an AttributeError, with nothing built. tests/engine/test_loaders.py checks the list against
# stock fastai.
FASTAI_LOADER_ATTRS = frozenset({
    '_component_attr_filter', '_dbunch_type', '_decode_batch', '_default', '_dir', '_dl_type',
    '_is_showable', '_methods', '_n_inp', '_new', '_noop_methods', '_one_pass', '_pre_show_batch', '_retain_dl',
    '_types', 'add', 'after_batch', 'after_item', 'after_iter', 'all_col_names', 'all_cols', 'before_batch',
    'before_iter', 'categorify', 'cats', 'chunkify', 'cont_names', 'conts', 'copy', 'create_batch',
    'create_batches', 'create_item', 'dataloaders', 'dataset', 'decode', 'decode_batch', 'decode_row', 'decodes',
    'default', 'do_batch', 'do_item', 'encodes', 'fake_l', 'fs', 'iloc', 'indexed', 'loc', 'n_inp',
    'n_subsets', 'name', 'new_empty', 'num_workers', 'o', 'offs', 'order', 'partial_dataloaders', 'pin_memory',
    'prebatched', 'process', 'procs', 'randomize', 'retain', 'rng', 'sample', 'setup', 'setups', 'show',
    'show_batch', 'show_results', 'shuffle_fn', 'split', 'split_idx', 'subset', 'targ', 'timeout', 'to_device',
    'train', 'transform', 'valid', 'wif', 'with_cont', 'x_names', 'xs', 'ys'
})

class TensorLoader:
    "What fastai reads from a loader beyond iterating it, for loaders that are not fastai's (`TensorDataLoader`)."
    device = None  # where the batches go (`to`)
    @property
    def _device(self): return self.device  # `DataLoaders.device` reads `dl._device`, where fastai's `DataLoader` keeps it

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

def _libc_mallopt():
    "glibc's `mallopt`, or a no-op elsewhere."
    try: return ctypes.CDLL(None).mallopt
    except (OSError, AttributeError): return lambda param, value: 0

_mallopt, _M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = _libc_mallopt(), -1, -3

def keep_freed_memory(keep:bool):
    ("While `keep`, glibc keeps the memory freed at the top of its heap (up to 1 GB) instead of returning it, so each step's "
     "large buffers (below 32 MB) are reused rather than faulted in afresh: 7 ms of the 8 a 26 MB gradient cost at ML-25M size. "
     "Off, it returns what exceeds 64 MB (glibc's own bound for such buffers), and hands back the free pages at once.")
    if keep: _mallopt(_M_MMAP_THRESHOLD, 32 << 20); _mallopt(_M_TRIM_THRESHOLD, 1 << 30)
    else: _mallopt(_M_TRIM_THRESHOLD, 64 << 20); _malloc_trim()

# fastai's `Recorder` keeps a small tensor per batch; glibc places them in the holes large per-step buffers leave, and the
# heap grows without bound (1.4 MB/batch for ML-25M-sized embeddings). Returning the free pages keeps memory flat.
_malloc_trim = _libc_trim()

class FastLearner(Learner):
    ("A fastai `Learner` that calls, for each event, only the callbacks that define it, "
     "and does fastai's own per-batch callback work without its attribute lookups.")
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
        if isinstance(self.dl, TensorLoader) and all(t.device == self._device for t in b): return b
        return super()._set_device(b)

    def _split(self, b):
        "fastai's `Learner._split` with one input, without its `n_inp` lookup."
        if isinstance(self.dl, TensorLoader): self.xb, self.yb = b[:1], b[1:]
        else: super()._split(b)

def _is_mse_flat(f): return isinstance(f, BaseLoss) and isinstance(f.func, nn.MSELoss) and f.flatten and f.func.reduction == 'mean'

def make_fast(learn):
    "Turn a `Learner` on fast `DataLoaders` into a `FastLearner` (`MSELossFlat` into `FlatMSE`, `Adam` into `FastAdam`)."
    if isinstance(learn.dls.train, TensorLoader):
        learn.__class__ = FastLearner
        if _is_mse_flat(learn.loss_func): learn.loss_func = FlatMSE()
        if learn.opt_func is Adam and learn.opt is None: learn.opt_func = FastAdam
    return learn

class LBFGSWrapper(OptimWrapper):
    ("fastai's `OptimWrapper` of `torch.optim.LBFGS`, with a clear error for a hyper-parameter L-BFGS does not have "
     "(e.g. from `fit_one_cycle`).")
    def _set_hyper(self, k, v):  # fastai's `OptimWrapper._set_hyper`, refusing a hyper-parameter L-BFGS lacks
        if k not in self.bwd_map:
            raise TypeError(f"L-BFGS has no {k!r} to set: train with learn.fit(epochs, lr=1.), not fit_one_cycle, and without wd "
                            "(the model's own penalty regularises it).")
        super()._set_hyper(k, v)

    def step(self, closure=None):
        if closure is None: raise TypeError("L-BFGS steps with a closure: add the LBFGSStep() callback to the Learner (cbs=LBFGSStep()).")
        return self.opt.step(closure)
