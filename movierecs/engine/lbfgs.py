"Full-batch L-BFGS inside a fastai `Learner`: the optimizer the autoencoders (I-AutoRec, GLocal-K) train with."
import torch
from fastai.callback.core import Callback, CancelBackwardException, CancelStepException
from fastai.optimizer import OptimWrapper  # noqa: F401 (what `lbfgs` returns)
from .fastai_glue import LBFGSWrapper
__all__ = ['lbfgs', 'LBFGSWrapper', 'LBFGSStep']

def lbfgs(params, # The parameters fastai's `Learner` hands its `opt_func` (groups from its splitter)
          lr=1., # L-BFGS's step length (fastai's `fit(lr=...)` sets it)
          max_iter=5, # L-BFGS iterations per batch (per `opt.step`)
          history_size=100, # Correction pairs L-BFGS keeps
          line_search_fn=None, # None or 'strong_wolfe', as `torch.optim.LBFGS`
          **kwargs # Other `torch.optim.LBFGS` arguments
         ) -> OptimWrapper:
    "An `opt_func`: `torch.optim.LBFGS` in fastai's `OptimWrapper`; train with the `LBFGSStep` callback, which gives it its closure."
    if line_search_fn not in (None, 'strong_wolfe'): raise ValueError("line_search_fn must be None or 'strong_wolfe', "
                                                                      f"got {line_search_fn!r}.")
    return LBFGSWrapper(params, torch.optim.LBFGS, lr=lr, max_iter=max_iter, history_size=history_size,
                        line_search_fn=line_search_fn, **kwargs)

class LBFGSStep(Callback):
    "Replace fastai's backward and step by `opt.step(closure)`: L-BFGS re-evaluates the loss on the batch as often as it needs."
    def __init__(self, restart=False # Forget L-BFGS's history at every epoch, as a new `scipy.optimize.minimize` call does
                ): self.restart = restart

    def before_train(self):  # not before_fit: `get_preds` fires that too, on a learner with no optimizer yet
        if not isinstance(getattr(self.opt, 'opt', None), torch.optim.LBFGS):
            raise TypeError(f"LBFGSStep needs the optimizer of opt_func=lbfgs, got {type(getattr(self.opt, 'opt', self.opt)).__name__}.")
        if hasattr(self.learn, 'lr_finder'):
            raise TypeError("lr_find does not apply to L-BFGS, which takes steps of length lr=1 with its own line search: "
                            "train with learn.fit(epochs, lr=1.).")
        if self.restart: self.opt.opt.state.clear()  # each epoch's training starts L-BFGS afresh

    def before_backward(self): raise CancelBackwardException  # the closure computes the gradients, at every point L-BFGS tries

    def before_step(self):
        learn = self.learn
        def closure():
            learn.opt.zero_grad()
            loss = learn.loss_func(learn.model(*learn.xb), *learn.yb)
            loss.backward()
            return loss
        learn.opt.opt.step(closure)
        raise CancelStepException
