"The fast path's loss and optimizer: fastai's `MSELossFlat` and `Adam` maths on plain tensors, all parameters stepped at once."
import torch
import torch.nn.functional as F
from fastai.optimizer import Adam, Optimizer, debias
__all__ = ['FlatMSE', 'FastAdam']

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
