"Every notebook model as a fastai `Learner` factory, in one registry: `get_learner(name, dls)`."
import functools, inspect, math
from fastai.callback.core import Callback
from fastai.collab import collab_learner
from fastai.learner import Learner
from fastai.losses import MSELossFlat
from fastcore.basics import listify
from ..engine.loaders import check_dls
from ..engine.fastai_glue import make_fast
from ..core.errors import NaNLossError
from ..core.checks import check_lr, check_wd, plain_value
__all__ = ['RaiseOnNaN', 'TASKS', 'register', 'list_models', 'model_task', 'describe_model', 'trains_by_lbfgs', 'get_learner',
           'check_model']

_models, _tasks, _lbfgs = {}, {}, set()

TASKS = ('rating', 'ranking')  # a rating model predicts stars (trained on MSE); a ranking model scores every movie for a user

MAX_WIDTH = 100_000  # n_factors, n_act, n_hidden: ML-100k's 1,665 titles x 100,000 factors already take 0.7 GB

_LEARNER_ARGS = set(inspect.signature(Learner.__init__).parameters)

def register(f=None, *, task='rating', lbfgs=False # True: its learners train by full-batch L-BFGS, `learn.fit(epochs, lr=1.)`
            ):
    "Add the learner factory `f` to the registry under its function name; its learners record it in `learn.model_spec`."
    if f is None: return lambda f: register(f, task=task, lbfgs=lbfgs)
    if task not in TASKS: raise ValueError(f"task must be one of {TASKS}, got {task!r}.")
    own = [p for p in inspect.signature(f).parameters.values()
           if p.name != 'dls' and p.name not in _LEARNER_ARGS and p.kind is not p.VAR_KEYWORD]
    @functools.wraps(f)
    def factory(dls, **kwargs):
        learn = f(dls, **kwargs)
        learn.model_spec = dict(model=f.__name__, **{p.name: kwargs.get(p.name, p.default) for p in own})
        return learn
    _models[f.__name__], _tasks[f.__name__] = factory, task
    if lbfgs: _lbfgs.add(f.__name__)
    return factory

def list_models(task=None # 'rating' or 'ranking' for the models of one task; None for all
               ):
    "Names of the registered learner factories."
    if task is not None and task not in TASKS: raise ValueError(f"Unknown task {task!r}. Valid tasks: {', '.join(TASKS)}.")
    return [n for n in _models if task is None or _tasks[n] == task]

def model_task(name):
    "'rating' or 'ranking': what the registered model `name` is trained for."
    return _tasks[check_model(name)]

def describe_model(name):
    "The first line of the registered model `name`'s docstring: what it is."
    return (_models[check_model(name)].__doc__ or '').strip().splitlines()[0]

def trains_by_lbfgs(name):
    "True when the registered model `name` trains by full-batch L-BFGS (`learn.fit(epochs, lr=1.)`), not by `fit_one_cycle`."
    return check_model(name) in _lbfgs

def get_learner(name, # A name from `list_models()`
                dls, # `DataLoaders` from `movierecs.dataloaders`
                **kwargs # Passed to the factory: `n_factors`, `y_range`, and `Learner` arguments such as `wd`, `cbs`
               ) -> Learner:
    "The `Learner` of the registered model `name` on `dls`."
    check_model(name)
    if not hasattr(dls, 'train') or not hasattr(dls, 'classes'):
        raise TypeError(f"dls must be the DataLoaders of movierecs.dataloaders(ratings), got {type(dls).__name__}.")
    return _models[name](dls, **_check_kwargs(name, kwargs))

def _check_kwargs(name, kw):
    "A clear error for a model argument no factory can use: n_factors, y_range, members; or one `name`'s factory does not take."
    from ..core.checks import positive_int
    takes = [k for k in inspect.signature(_models[name]).parameters if k != 'dls']
    bad = [k for k in kw if k not in takes]
    if bad: raise TypeError(f"Model {name!r} takes no argument {', '.join(map(repr, bad))}: it takes {', '.join(takes)}.")
    kw = {k: plain_value(v) for k, v in kw.items()}  # numpy scalars and arrays as Python values: model.json can hold them
    def width(v, k):
        positive_int(v, k)
        if v > MAX_WIDTH: raise ValueError(f"{k} must be at most {MAX_WIDTH:,} (a wider layer does not fit in memory), got {v:,}.")
    for k in ('n_factors', 'n_act', 'n_hidden'):
        if k in kw: width(kw[k], k)
    if 'layers' in kw:
        if not isinstance(kw['layers'], (list, tuple)) or not kw['layers']:
            raise ValueError(f"layers must be a list of layer widths, e.g. (100, 50), got {kw['layers']!r}.")
        for w in kw['layers']: width(w, 'every width in layers')
    if kw.get('lr') is not None: check_lr(kw['lr'])
    check_wd(kw.get('wd'))
    for k in ('loss_func', 'opt_func', 'splitter'):
        if k in kw and kw[k] is not None and not callable(kw[k]): raise TypeError(f"{k} must be callable, got {kw[k]!r}.")
    for k, ok, what in (('cbs', lambda c: isinstance(c, Callback) or (isinstance(c, type) and issubclass(c, Callback)), 'fastai Callbacks'),
                        ('metrics', callable, 'callables such as fastai.metrics.rmse')):
        v = kw.get(k)
        if v is not None and not all(ok(c) for c in (v if isinstance(v, (list, tuple)) else [v])):
            raise TypeError(f"{k} must be one or a list of {what}, got {v!r}.")
    if 'moms' in kw and not (isinstance(kw['moms'], (list, tuple)) and len(kw['moms']) == 3):
        raise ValueError(f"moms must be three momentums, e.g. (0.95, 0.85, 0.95), got {kw['moms']!r}.")
    if kw.get('y_range') is not None:
        yr = kw['y_range']
        ok = isinstance(yr, (tuple, list)) and len(yr) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                                    and math.isfinite(v) for v in yr) and yr[0] < yr[1]
        if not ok: raise ValueError(f"y_range must be a pair (low, high) of numbers with low < high, e.g. (0, 5.5), or None; got {yr!r}.")
    if 'members' in kw:
        m = kw['members']
        if isinstance(m, str) or not isinstance(m, (tuple, list)) or not m:
            raise ValueError(f"members must be a non-empty list of model names, e.g. ('collab', 'svdpp'); got {m!r}.")
        for x in m:
            if x not in _models or x == name or model_task(x) != 'rating':
                raise ValueError(f"members: {x!r} cannot be a member; use rating models other than {name!r}: "
                                 f"{', '.join(n for n in list_models('rating') if n != name)}.")
    return kw

def check_model(name):
    "Return `name` if it is registered, else raise an error listing the valid names."
    if name not in _models: raise ValueError(f"Unknown model {name!r}. Valid names: {', '.join(_models)}.")
    return name

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
