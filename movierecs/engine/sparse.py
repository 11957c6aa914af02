"""The sparse training path (`train_model(..., sparse=True)`): embeddings with sparse gradients and a row-wise Adam that
touches only the rows of the batch, so a step costs the batch, not the model (fastai's Adam updates every row at every
step). Unlike the lazy Adams (TensorFlow's LazyAdam, torch's SparseAdam), a row absent from batches is not frozen: when it
comes back it is moved as fastai's dense Adam would have moved it meanwhile (weight decay, decaying moments, momentum)."""
import math
import torch
from torch import nn
from fastai.callback.core import Callback
from fastai.optimizer import Adam, debias
from . import compiled
from .fast import FastAdam
from .fastai_glue import keep_freed_memory
__all__ = ['WINDOW', 'SparseAdam', 'SparseFlush', 'make_sparse', 'sparse_embeddings', 'dot_rows']

CACHE_AGES = 4096  # the compiled kernel keeps a step's catch-up factors for rows last updated up to this many steps before
WINDOW = 300  # steps a row's momentum is followed after its last batch: (0.95/0.995)^300 < 1e-6, the rest is dropped

def _log(v): return math.log(v) if v > 0 else -1e300  # beta = 0: nothing survives a step (and exp(-1e300 + 1e300) = 1 for none)

class _Catchup:
    "Per parameter: the cumulative logs of each step's beta1, beta2 and weight-decay factor, and each past step's momentum coefficient."
    def __init__(self, n_rows):
        self.last = torch.zeros(n_rows, dtype=torch.long)  # the step each row was last brought up to date (0: the start)
        self.mark = torch.zeros(n_rows, dtype=torch.bool)  # scratch: the rows of a gradient (all False between steps)
        self.pos = torch.zeros(n_rows, dtype=torch.long)  # scratch: a gradient's row -> its place among the gradient's rows
        self.t, self.logs = 0, torch.zeros(1, 3, dtype=torch.float64)  # logs[k]: sum over steps <= k of log beta1, log beta2, log decay
        # per step s: running A/sqrt(B), its coefficient
        # the rows last up to date at step 0 keep moving along their moments from there (zero at the start; restored after a load)
        self.a, self.coef = torch.ones(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)
        # the compiled path's scratch: each row's place in a gradient (-1 between steps), buffers, their pointers and room
        self.slot, self.bufs, self.ptrs, self.room = None, [], [], (0, 0)

    def scratch(self, n, D) -> list:
        ("The compiled kernel's scratch for a gradient of `n` rows of `D` values, kept between steps (grown when too small: no "
         "allocation per step): pointers to rows, start, list (n int64 each), acc (a row per thread), fac (4n float32), and "
         "the catch-up factors per age (`CACHE_AGES` of them, stamped with the step they are for).")
        threads = max(torch.get_num_threads(), 1)
        if n > self.room[0] or threads * D > self.room[1]:
            n, nD = max(n, 2 * self.room[0]), max(threads * D, self.room[1])
            self.bufs = [torch.empty(3*n, dtype=torch.long), torch.empty(nD), torch.empty(4*n), torch.zeros(4*CACHE_AGES),
                         torch.full((CACHE_AGES,), -1, dtype=torch.long)]
            ints = self.bufs[0].data_ptr()
            self.ptrs, self.room = [ints, ints + 8*n, ints + 16*n, *(b.data_ptr() for b in self.bufs[1:])], (n, nD)
        return self.ptrs

    def advance(self, b1, b2, shrink, lr_term, lib=None):
        ("Record step t+1 for the rows it did not touch: their moments decay and they keep moving along their old moments "
         "(in `lib`, the compiled kernel, when given).")
        t, n = self.t + 1, len(self.a)
        if t >= n:  # grow the per-step arrays
            self.logs = torch.cat([self.logs, self.logs.new_zeros(n, 3)])
            self.a, self.coef = (torch.cat([v, v.new_zeros(n)]) for v in (self.a, self.coef))
        if lib is not None:
            lib.mr_advance(self.logs.data_ptr(), self.a.data_ptr(), self.coef.data_ptr(), t, WINDOW, _log(b1), _log(b2), _log(shrink),
                           0. if b1 == 0 else float(b1 / math.sqrt(b2)), float(shrink), float(lr_term))
            self.t = t
            return
        self.logs[t] = self.logs[t-1] + torch.tensor([_log(b1), _log(b2), _log(shrink)], dtype=torch.float64)
        w = slice(max(0, t - WINDOW), t)  # the steps s whose rows still move noticeably
        self.a[w] *= 0. if b1 == 0 else b1 / math.sqrt(b2)
        self.coef[w] = self.coef[w] * shrink + self.a[w] * lr_term
        self.a[t], self.coef[t], self.t = 1., 0., t

    def catch_up(self, p, st, rows, T):
        "Bring `rows` (None: all) from their last step to step T as fastai's dense Adam would: decay, moments, and the momentum's moves."
        s = self.last if rows is None else self.last.index_select(0, rows)
        stale = s != T
        if not bool(stale.any()): return
        if rows is not None: rows, s = rows[stale], s[stale]  # a row listed twice is computed twice, to the same values
        d = torch.exp(self.logs[T] - self.logs[s])  # (rows, 3): the products of beta1, beta2 and decay over steps s+1..T
        coef = self.coef[s] * torch.exp(self.logs[T, 2] - self.logs[torch.clamp(s + WINDOW, max=T), 2])
        shape = (-1,) + (1,)*(p.dim() - 1)
        sel = (lambda v: v) if rows is None else (lambda v: v.index_select(0, rows))
        w, avg, sqr = sel(p.data), sel(st['grad_avg']), sel(st['sqr_avg'])
        w = w * d[:, 2].to(w.dtype).view(shape) - (coef.to(w.dtype).view(shape) * avg / (sqr.sqrt() + st['eps']))
        avg, sqr = avg * d[:, 0].to(w.dtype).view(shape), sqr * d[:, 1].to(w.dtype).view(shape)
        if rows is None: p.data.copy_(w); st['grad_avg'].copy_(avg); st['sqr_avg'].copy_(sqr); self.last.fill_(T)
        else:
            for v, new in ((p.data, w), (st['grad_avg'], avg), (st['sqr_avg'], sqr)): v.index_copy_(0, rows, new)
            self.last.index_fill_(0, rows, T)

    def bring_up_compiled(self, lib, p, st, idx):
        "`catch_up` of the rows `idx` (repeats allowed) to the current step in the compiled kernel."
        idx, n = idx.contiguous(), len(idx)
        rows, _, _, _, fac, cache, stamp = self.scratch(n, 1)
        r = lib.mr_bring_up(p.data_ptr(), st['grad_avg'].data_ptr(), st['sqr_avg'].data_ptr(), p.shape[0], p.numel() // p.shape[0],
                            idx.data_ptr(), n, self.last.data_ptr(), self.logs.data_ptr(), self.coef.data_ptr(), self.t, WINDOW,
                            float(st['eps']), rows, fac, cache, stamp, CACHE_AGES, torch.get_num_threads())
        if r < 0: raise IndexError(f"index {int(idx[-1 - r])} is out of range for an embedding of {p.shape[0]} rows")

    def step_compiled(self, lib, p, st, g, h, shrink, d1, d2):
        "The sparse gradient `g` summed per row, the catch-up and fastai's Adam of those rows, in one pass of the compiled kernel."
        idx, vals = g._indices()[0].contiguous(), g._values().contiguous()
        n, D = len(idx), p.numel() // p.shape[0]
        if self.slot is None: self.slot = torch.full((p.shape[0],), -1, dtype=torch.long)
        k = lib.mr_step(p.data_ptr(), st['grad_avg'].data_ptr(), st['sqr_avg'].data_ptr(), p.shape[0], D, idx.data_ptr(),
                        vals.data_ptr(), n, self.last.data_ptr(), self.logs.data_ptr(), self.coef.data_ptr(), self.t, WINDOW,
                        self.slot.data_ptr(), *self.scratch(n, D), CACHE_AGES, float(-h['lr']/d1), float(h['mom']), float(1-h['mom']),
                        float(h['sqr_mom']), float(1-h['sqr_mom']), float(h['eps']), float(shrink), int(shrink != 1), float(d2),
                        torch.get_num_threads())
        if k < 0: raise IndexError(f"index {int(idx[-1 - k])} is out of range for an embedding of {p.shape[0]} rows")
        self.advance(h['mom'], h['sqr_mom'], shrink, h['lr'] * math.sqrt(d2) / d1, lib)

    def rows_of(self, idx, vals):
        "The distinct rows of a sparse gradient's (uncoalesced) indices `idx`, in order, and its `vals` summed per row."
        self.mark.index_fill_(0, idx, True)
        rows = self.mark.nonzero().squeeze(1)
        self.mark.index_fill_(0, rows, False)
        self.pos.index_copy_(0, rows, torch.arange(len(rows)))  # each row's place in `rows` (other entries are stale, never read)
        return rows, vals.new_zeros((len(rows),) + vals.shape[1:]).index_add_(0, self.pos.index_select(0, idx), vals)

class SparseAdam(FastAdam):
    """fastai's `Adam` (its hypers, decoupled weight decay, defaults) on sparse gradients, row by row: a row absent from a batch
    is brought up to date when it is next in one (or when the epoch ends) as fastai's dense step would have moved it — exactly
    for the decay and the moments, and for the momentum's moves up to Adam's eps (the denominator of a row's missed steps
    keeps the eps of its last one). Dense gradients step as fastai's."""
    # FastAdam's hypers, defaults and `zero_grad` (set_to_none: sparse gradients would otherwise pile up)
    def step(self, closure=None):
        if closure is not None: raise NotImplementedError("fastai optimizers do not support closure")
        for pg, h in zip(self.param_lists, self.hypers):
            for p in pg:
                st = self.state[p]
                shrink = 1 - h['lr']*h['wd'] if h['wd'] != 0 and st.get('do_wd', True) else 1.
                if shrink <= 0: raise ValueError("lr*wd must be below 1 (a step would flip every weight's sign), "
                                                 f"got lr={h['lr']}, wd={h['wd']}.")
                if h['mom'] > 0 and h['sqr_mom'] <= 0: raise ValueError("The sparse path needs sqr_mom > 0 when mom > 0 "
                                                                        "(a skipped row's steps divide by it).")
                if p.grad is None: continue  # as fastai's: a parameter without a gradient is not stepped
                if 'grad_avg' not in st: st.update(grad_avg=torch.zeros_like(p.data), sqr_avg=torch.zeros_like(p.data), step=0)
                if p.grad.is_sparse and p not in self.catchups: self.catchups[p] = _Catchup(p.shape[0])  # every row up to date now
                c, step = self.catchups.get(p), st['step'] + 1  # counted once stepped: a refused gradient (a row out of range) is none
                st['eps'] = h['eps']
                d1, d2 = debias(h['mom'], 1-h['mom'], step), debias(h['sqr_mom'], 1-h['sqr_mom'], step)
                if c is None:
                    _adam(p.data, st['grad_avg'], st['sqr_avg'], p.grad.data, h, shrink, d1, d2)
                    st['step'] = step
                    continue
                g = p.grad if p.grad.is_sparse else p.grad.to_sparse(1)
                if g.sparse_dim() != 1: g = g.coalesce().to_dense().to_sparse(1)  # rows of values, as an embedding's gradient has
                lib = _compiled_for(p, st)
                if lib is not None:
                    c.step_compiled(lib, p, st, g, h, shrink, d1, d2)  # (the kernel refuses a row out of range before any change)
                    st['step'] = step
                    continue
                _check_rows(g._indices()[0], p.shape[0])
                st['step'] = step
                rows, g = c.rows_of(g._indices()[0], g._values())  # no sort: coalesce() would cost more than the step
                c.catch_up(p, st, rows, c.t)
                w, avg, sqr = (v.index_select(0, rows) for v in (p.data, st['grad_avg'], st['sqr_avg']))
                _adam(w, avg, sqr, g, h, shrink, d1, d2)
                for v, new in ((p.data, w), (st['grad_avg'], avg), (st['sqr_avg'], sqr)): v.index_copy_(0, rows, new)
                c.advance(h['mom'], h['sqr_mom'], shrink, h['lr'] * math.sqrt(d2) / d1)
                c.last.index_fill_(0, rows, c.t)

    def bring_up(self, p, rows):
        "Bring `rows` of `p` up to date before a forward pass reads them (`make_sparse` hooks this onto each embedding)."
        c = self.catchups.get(p)
        if c is None: return
        st, rows = self.state[p], rows.reshape(-1).long()
        lib = _compiled_for(p, st)
        if lib is not None: c.bring_up_compiled(lib, p, st, rows)  # (the kernel refuses a row out of range before any change)
        else:
            _check_rows(rows, p.shape[0])
            c.catch_up(p, st, rows, c.t)  # a row listed twice gets the same values twice

    def settle(self):
        "Bring every row up to date: the weights then equal what fastai's dense Adam gives (up to eps), for validation and saving."
        for pg in self.param_lists:
            for p in pg:
                c = self.catchups.get(p)
                if c is not None: c.catch_up(p, self.state[p], None, c.t)

    @property
    def catchups(self) -> dict:
        ("Each sparse parameter's `_Catchup`, kept out of `state` so that `state_dict` holds tensors and numbers only "
         "(torch.load's weights_only).")
        return self.__dict__.setdefault('_catchups', {})

    def load_state_dict(self, sd):
        "fastai's, then every row counts as up to date at the loaded state (saved between epochs, after `SparseFlush` settled it)."
        super().load_state_dict(sd)
        self.catchups.clear()

def _check_rows(idx, n_rows):
    "A gradient's or a lookup's rows must lie in the table: an IndexError naming the first one that does not, before anything changes."
    lo, hi = torch.aminmax(idx) if len(idx) else (0, 0)
    if len(idx) and not (0 <= int(lo) and int(hi) < n_rows):
        bad = int(idx[(idx < 0) | (idx >= n_rows)][0])
        raise IndexError(f"index {bad} is out of range for an embedding of {n_rows} rows")

def _compiled_for(p, st):
    ("The compiled kernel when it is built and `p` is what it steps (a float32 table of rows on the CPU, contiguous, each row laid "
     "out after the other), else None: PyTorch's steps.")
    if p.dtype != torch.float32 or p.device.type != 'cpu' or p.dim() < 1 or p.numel() == 0 or not p.is_contiguous(): return None
    if not (st['grad_avg'].is_contiguous() and st['sqr_avg'].is_contiguous()): return None
    return compiled.kernel()

def _adam(w, avg, sqr, g, h, shrink, d1, d2):
    "fastai's `weight_decay`, `average_grad`, `average_sqr_grad` and `adam_step`, in place."
    if shrink != 1: w.mul_(shrink)
    avg.mul_(h['mom']).add_(g, alpha=1-h['mom'])
    sqr.mul_(h['sqr_mom']).addcmul_(g, g, value=1-h['sqr_mom'])
    w.addcdiv_(avg, (sqr/d2).sqrt_().add_(h['eps']), value=-h['lr']/d1)

class SparseFlush(Callback):
    ("Settle `SparseAdam`'s owed weight decay after each epoch's training and at the end of fitting, before anything reads the "
     "weights; while fitting, freed memory is kept for the next step's buffers (`keep_freed_memory`).")
    order = -10  # before the recorder validates
    def before_fit(self): keep_freed_memory(True)
    def after_train(self): self._settle()
    def after_fit(self):
        self._settle()
        keep_freed_memory(False)
    def _settle(self):
        if isinstance(self.learn.opt, SparseAdam): self.learn.opt.settle()

def sparse_embeddings(model:nn.Module) -> int:
    "Make every `nn.Embedding` of `model` give sparse gradients; the number of them."
    embs = [m for m in model.modules() if isinstance(m, nn.Embedding)]
    for e in embs: e.sparse = True
    return len(embs)

class _BringUp:
    "An embedding's forward pre-hook: `learn.opt` brings the rows about to be read up to date (a class, so `learn.export` can pickle it)."
    def __init__(self, learn): self.learn = learn
    def __call__(self, emb, inp):
        if isinstance(self.learn.opt, SparseAdam): self.learn.opt.bring_up(emb.weight, inp[0])

def make_sparse(learn):
    ("Put `learn` on the sparse path: sparse embedding gradients, "
     "`SparseAdam` (each embedding brings its rows up to date before it reads them), and `SparseFlush`.")
    if any(isinstance(cb, SparseFlush) for cb in learn.cbs): return learn  # already on the sparse path
    if learn.opt is not None: raise ValueError("make_sparse must come before the first fit: the optimizer already exists.")
    if learn.opt_func not in (Adam, FastAdam, SparseAdam):
        raise ValueError(f"The sparse path steps with SparseAdam, a row-wise Adam; this learner's opt_func is {learn.opt_func!r}.")
    if not sparse_embeddings(learn.model):
        raise ValueError(f"{type(learn.model).__name__} has no nn.Embedding: the sparse path has nothing to make sparse.")
    learn.opt_func = SparseAdam
    variant = getattr(type(learn.model), 'sparse_variant', None)  # a subclass that reads its tables in place (`dot_rows`)
    if variant is not None and issubclass(variant, type(learn.model)): learn.model.__class__ = variant
    for e in learn.model.modules():
        if isinstance(e, nn.Embedding): e.register_forward_pre_hook(_BringUp(learn))
    learn.add_cb(SparseFlush())
    return learn

class _DotBias(torch.autograd.Function):
    "U[u]·M[m] + (bu[u] + bm[m]) per pair, the rows read in place by the compiled kernel; sparse gradients for the four tables."
    @staticmethod
    def forward(ctx, U, M, bu, bm, u, m):
        lib, n, D = compiled.kernel(), len(u), U.shape[1]
        out = U.new_empty(n, 1)
        lib.mr_dot_bias(U.data_ptr(), M.data_ptr(), bu.data_ptr(), bm.data_ptr(), u.data_ptr(), m.data_ptr(), n, D, out.data_ptr(),
                        torch.get_num_threads())
        ctx.save_for_backward(U, M, u, m)
        ctx.shapes = U.shape, M.shape, bu.shape, bm.shape
        return out

    @staticmethod
    def backward(ctx, g):
        U, M, u, m = ctx.saved_tensors
        g, (n, D) = g.reshape(-1, 1).contiguous(), (len(u), U.shape[1])
        gu, gm = U.new_empty(n, D), U.new_empty(n, D)
        compiled.kernel().mr_dot_bias_grad(U.data_ptr(), M.data_ptr(), u.data_ptr(), m.data_ptr(), g.data_ptr(), n, D, gu.data_ptr(),
                                           gm.data_ptr(), torch.get_num_threads())
        su, sm, sbu, sbm = ctx.shapes
        def coo(idx, vals, shape): return torch.sparse_coo_tensor(idx[None], vals, shape, check_invariants=False)
        return coo(u, gu, su), coo(m, gm, sm), coo(u, g, sbu), coo(m, g.clone(), sbm), None, None

def _plain_sparse(e) -> bool:
    "An `nn.Embedding` on the sparse path with a float32 table on the CPU and none of the options that change its lookup."
    w = e.weight
    return (isinstance(e, nn.Embedding) and e.sparse and e.padding_idx is None and e.max_norm is None and not e.scale_grad_by_freq
            and w.dtype == torch.float32 and w.device.type == 'cpu' and w.is_contiguous() and w.requires_grad)

def dot_rows(user_emb:nn.Module, # Users' factors, an `nn.Embedding`
             item_emb:nn.Module, # Items' factors, as many per row
             user_bias:nn.Module, # Users' biases, one per row
             item_bias:nn.Module, # Items' biases
             users, items # (n,) codes
            ):
    ("user·item + (user bias + item bias) per pair, as `(users * items).sum(1, keepdim=True) + (ub + ib)` gives it (up to the order "
     "of the dot's sum), in one pass of the compiled kernel when training on the sparse path; None elsewhere (compute it as usual).")
    embs = (user_emb, item_emb, user_bias, item_bias)
    if not torch.is_grad_enabled() or not all(_plain_sparse(e) for e in embs): return None
    if user_emb.weight.shape[1] != item_emb.weight.shape[1] or user_bias.weight.shape[1] != 1 or item_bias.weight.shape[1] != 1: return None
    if users.dim() != 1 or compiled.kernel() is None: return None
    users, items = users.long().contiguous(), items.long().contiguous()
    _check_rows(users, min(len(user_emb.weight), len(user_bias.weight)))
    _check_rows(items, min(len(item_emb.weight), len(item_bias.weight)))
    for e, idx in zip(embs, (users, items, users, items)):
        for hook in e._forward_pre_hooks.values(): hook(e, (idx,))  # what the lookup runs first: the sparse path's bring-up
    return _DotBias.apply(*(e.weight for e in embs), users, items)
