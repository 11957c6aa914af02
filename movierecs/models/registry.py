"""Every model as a fastai `Learner` factory, in one registry: `get_learner(name, dls)`.
The registry answers what models there are (`list_models`, `model_task`, `describe_model`) from its index without importing
torch or fastai; a family's module is imported, and registers its factories, when one of its learners is asked for."""
import functools, importlib, inspect, math
from ..core.checks import check_lr, check_wd, plain_value
__all__ = ['TASKS', 'register', 'list_models', 'model_task', 'describe_model', 'trains_by_lbfgs', 'get_learner', 'check_model']

_models, _tasks, _lbfgs = {}, {}, set()

TASKS = ('rating', 'ranking', 'next')  # a rating model predicts stars (trained on MSE); a ranking model scores every movie for a user;
# a next-item model scores every movie as what the user watches next, from their ratings in time order

MAX_WIDTH = 100_000  # n_factors, n_act, n_hidden: ML-100k's 1,665 titles x 100,000 factors already take 0.7 GB

# The index of the built-in models: name -> (family module in movierecs.models, task, trains by L-BFGS, the docstring's first line).
# `register` checks each built-in factory against it when its family is imported (tests/models import every family).
_INDEX = {
    'dot': ('collab', 'rating', False, "The notebook's `DotProduct`: user · movie factors through `sigmoid_range`."),
    'dot_raw': ('collab', 'rating', False, "fastbook's first `DotProduct`: the raw dot product, no `sigmoid_range`."),
    'dot_bias': ('collab', 'rating', False, "The notebook's `DotProductBias`: factors and biases as `Embedding`s."),
    'dot_bias_params': ('collab', 'rating', False, "The notebook's `DotProductBias` rewritten with `create_params`."),
    'collab': ('collab', 'rating', False, "fastai's `collab_learner(dls, n_factors=50, y_range=(0,5.5))`: an `EmbeddingDotBias`."),
    'collab_nn': ('collab', 'rating', False, "The notebook's `CollabNN`, embedding sizes from `get_emb_sz(dls)`."),
    'collab_emb_nn': ('collab', 'rating', False, "fastbook's `collab_learner(dls, use_nn=True, layers=[100,50])`: an `EmbeddingNN`."),
    'svdpp': ('collab', 'rating', False, "SVD++ as a fastai model: `DotProductBias` plus implicit factors of the movies each user "
              "rated in `dls.train`."),
    'ensemble': ('collab', 'rating', False, "Registry models trained side by side, each on its own MSE; the prediction is their mean "
                 "(the train loss is the members' mean MSE)."),
    'autorec': ('autoencoders', 'rating', True, "I-AutoRec: each movie's ratings through a 500-unit sigmoid autoencoder; half SSE + L2, "
                "full-batch L-BFGS."),
    'glocal_k': ('autoencoders', 'rating', True, "GLocal-K with the paper's ML-100k settings: 30 pre-training epochs, then fine-tuning, "
                 "of 5 full-batch L-BFGS iterations each."),
    'mult_dae': ('rankers', 'ranking', False, "Mult-DAE reading each user's rated movies and trained, on the multinomial likelihood, "
                 "to put the liked ones first."),
    'sasrec': ('sequential', 'next', False, "SASRec reading each user's rated movies in time order, trained with full softmax "
               "cross-entropy to name the next one."),
}

def _first_line(f): return ' '.join((f.__doc__ or '').strip().split('\n\n')[0].split())

def register(f=None, *, task='rating', lbfgs=False # True: its learners train by full-batch L-BFGS, `learn.fit(epochs, lr=1.)`
            ):
    "Add the learner factory `f` to the registry under its function name; its learners record it in `learn.model_spec`."
    if f is None: return lambda f: register(f, task=task, lbfgs=lbfgs)
    if task not in TASKS: raise ValueError(f"task must be one of {TASKS}, got {task!r}.")
    from fastai.learner import Learner  # a family registering its factories has imported fastai already
    takes = set(inspect.signature(Learner.__init__).parameters)
    own = [p for p in inspect.signature(f).parameters.values() if p.name != 'dls' and p.name not in takes and p.kind is not p.VAR_KEYWORD]
    known = _INDEX.get(f.__name__)
    if known is not None and f.__module__ == f'{__package__}.{known[0]}' and known[1:] != (task, lbfgs, _first_line(f)):
        raise ValueError(f"{f.__name__}: the registry's index says {known[1:]}, the factory {(task, lbfgs, _first_line(f))}: "
                         f"update _INDEX in {__name__}.")
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
    return [n for n in _names() if task is None or model_task(n) == task]

def _names(): return [*_INDEX, *(n for n in _models if n not in _INDEX)]  # the built-in ones first, then any registered later

def _factory(name):
    "The registered factory `name`, its family imported (and so registered) on first use."
    if name not in _models and name in _INDEX: importlib.import_module(f'{__package__}.{_INDEX[name][0]}')
    return _models[name]

def model_task(name):
    "'rating' or 'ranking': what the registered model `name` is trained for."
    check_model(name)
    return _INDEX[name][1] if name in _INDEX else _tasks[name]

def describe_model(name):
    "The first line of the registered model `name`'s docstring: what it is."
    check_model(name)
    return _INDEX[name][3] if name in _INDEX else _first_line(_models[name])

def trains_by_lbfgs(name):
    "True when the registered model `name` trains by full-batch L-BFGS (`learn.fit(epochs, lr=1.)`), not by `fit_one_cycle`."
    check_model(name)
    return _INDEX[name][2] if name in _INDEX else name in _lbfgs

def get_learner(name, # A name from `list_models()`
                dls, # `DataLoaders` from `movierecs.dataloaders`
                **kwargs # Passed to the factory: `n_factors`, `y_range`, and `Learner` arguments such as `wd`, `cbs`
               ):
    "The `Learner` of the registered model `name` on `dls`."
    check_model(name)
    if not hasattr(dls, 'train') or not hasattr(dls, 'classes'):
        raise TypeError(f"dls must be the DataLoaders of movierecs.dataloaders(ratings), got {type(dls).__name__}.")
    return _factory(name)(dls, **_check_kwargs(name, kwargs))

def _check_kwargs(name, kw):
    "A clear error for a model argument no factory can use: n_factors, y_range, members; or one `name`'s factory does not take."
    from ..core.checks import positive_int
    takes = [k for k in inspect.signature(_factory(name)).parameters if k != 'dls']
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
    from fastai.callback.core import Callback
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
            if x not in _names() or x == name or model_task(x) != 'rating':
                raise ValueError(f"members: {x!r} cannot be a member; use rating models other than {name!r}: "
                                 f"{', '.join(n for n in list_models('rating') if n != name)}.")
    return kw

def check_model(name):
    "Return `name` if it is registered, else raise an error listing the valid names."
    if name not in _INDEX and name not in _models: raise ValueError(f"Unknown model {name!r}. Valid names: {', '.join(_names())}.")
    return name
