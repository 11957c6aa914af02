"A packaged, faithful reproduction of fastai's collaborative filtering on MovieLens 100k."
__version__ = '0.1.0'

import importlib

# The public names come from these modules (each one's `__all__`) and `cli.default_learner`. They are imported on first
# use, not by `import movierecs`: the `movierecs` command starts without torch and can take a Ctrl-C while torch loads.
_MODULES = ('data', 'datasets', 'fast', 'sparse', 'models', 'optim', 'learners', 'autoencoders', 'rankers', 'experiments', 'analysis', 'scoring', 'blend', 'saving',
            'feedback', 'baselines', 'ranking', 'foldin')

def _load():
    "Import the modules of `_MODULES` and bring their public names into the package (once)."
    if '__all__' in globals(): return
    names = {}
    for m in _MODULES:
        mod = importlib.import_module(f'{__name__}.{m}')
        names.update({n: getattr(mod, n) for n in mod.__all__})
    names['default_learner'] = importlib.import_module(f'{__name__}.cli').default_learner
    globals().update(names)
    globals()['__all__'] = list(names)

_loading = False

def __getattr__(name):
    global _loading
    if (name.startswith('__') and name != '__all__') or _loading:  # while loading: a submodule not imported yet (`from . import x`)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    _loading = True
    try: _load()
    finally: _loading = False
    try: return globals()[name]
    except KeyError: raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None

def __dir__():
    _load()
    return sorted(globals())
