"The `Learner` every registry factory returns: the notebook's `Learner`, or fastai's `collab_learner`, checked and made fast."
import math
from fastai.callback.core import Callback
from fastai.collab import collab_learner
from fastai.learner import Learner
from fastai.losses import MSELossFlat
from fastcore.basics import listify
from ..engine.loaders import check_dls
from ..engine.fastai_glue import make_fast
from ..core.errors import NaNLossError
__all__ = ['RaiseOnNaN']

class RaiseOnNaN(Callback):
    "Stop training with a clear error the moment the training loss is not finite."
    order = -10
    def after_loss(self):
        loss = self.learn.loss.item()
        if not math.isfinite(loss):
            raise NaNLossError(f"The training loss became {loss} at epoch {self.epoch}, batch {self.iter}. Lower the "
                               f"learning rate (or the weight decay), or check the ratings and the model's weights for NaN or inf values.")

def _learner(dls, model=None, cbs=None, **kwargs):
    ("The notebook's `Learner(dls, model, loss_func=MSELossFlat())`, or fastai's `collab_learner` when `model` is None; "
     "checked `dls`, `RaiseOnNaN`.")
    dls, cbs = check_dls(dls), [RaiseOnNaN()] + listify(cbs)
    kwargs.setdefault('loss_func', MSELossFlat())
    learn = collab_learner(dls, cbs=cbs, **kwargs) if model is None else Learner(dls, model, cbs=cbs, **kwargs)
    _check_y_range(learn)
    return make_fast(learn)

def _check_y_range(learn):
    "A clear error when training ratings lie outside a model's y_range: its predictions could never reach them."
    r = learn.dls.train.items[list(learn.dls.train.y_names)[0]]
    lo, hi = float(r.min()), float(r.max())
    for m in learn.model.modules():
        yr = getattr(m, 'y_range', None)
        if yr is not None and not (yr[0] <= lo and hi <= yr[1]):
            raise ValueError(f"The ratings run from {lo:g} to {hi:g}, outside the model's y_range {tuple(yr)}: its predictions "
                             f"cannot reach them. Pass y_range=(low, high) covering the ratings, e.g. ({lo:g}, {hi * 1.1:g}).")
