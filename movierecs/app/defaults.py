"The default models of the command line and the web page: trained once on every rating with recorded settings, cached in `cache_dir()`."
import json, os, sys
from pathlib import Path
from .args import writable
__all__ = ['cache_dir', 'DEFAULT_MODEL', 'BY', 'default_ranker', 'default_next', 'default_learner', 'default_folder', 'default_light',
           'default_vocabs']

DEFAULT_MODEL = dict(model='collab', epochs=5, lr=5e-3, wd=0.1, seed=42)  # the notebook's collab_learner run

def default_ranker() -> dict:
    "`train_model` arguments of the default recommender: the best ranking run of results/topn.md (`RANKERS`), seed 42."
    from ..train.runs import DEFAULT_RANKER, RANKERS
    r = RANKERS[DEFAULT_RANKER]
    return dict(model=r.model, epochs=r.epochs, lr=r.lr, wd=r.wd, seed=42, **r.kwargs)

def default_next() -> dict:
    "`train_model` arguments of the default next-item model: SASRec's run of results/next_item.md (`NEXT_RUNS`), seed 42."
    from ..train.runs import NEXT_RUNS
    r = NEXT_RUNS['sasrec']
    return dict(model=r.model, epochs=r.epochs, lr=r.lr, wd=r.wd, seed=42, **r.kwargs)

BY = ('ranking', 'rating', 'next')  # the default models: what recommends, what predicts stars, what comes next

def cache_dir() -> Path:
    "Where trained models are cached: env `MOVIERECS_CACHE`, else `$XDG_CACHE_HOME/movierecs`, else `~/.cache/movierecs`."
    if os.environ.get('MOVIERECS_CACHE'):
        try: return Path(os.environ['MOVIERECS_CACHE']).expanduser()
        except RuntimeError as e: raise ValueError(f"MOVIERECS_CACHE={os.environ['MOVIERECS_CACHE']!r}: {e} Give a folder path.") from None
    return Path(os.environ.get('XDG_CACHE_HOME') or Path.home()/'.cache')/'movierecs'

def _cache_hint() -> str:
    "cache_dir() for a help text; the variable as given when it cannot be resolved (the error comes when the cache is used)."
    try: return str(cache_dir())
    except ValueError: return os.environ.get('MOVIERECS_CACHE', '')

def _cached(by):
    "(folder, `train_model` arguments, why it must be trained or None) of the default model `by`, from its model.json alone."
    from ..train.modelfile import VERSION
    if by not in BY: raise ValueError(f"by must be one of {', '.join(map(repr, BY))}, got {by!r}.")
    spec, path = {'rating': lambda: (DEFAULT_MODEL, cache_dir()/'default'),
                  'ranking': lambda: (default_ranker(), cache_dir()/'default-ranking'),
                  'next': lambda: (default_next(), cache_dir()/'default-next')}[by]()
    if not (path/'model.json').is_file(): return path, spec, 'once'
    meta = _meta(path)
    if meta is None or not isinstance(meta.get('model_spec'), dict): return path, spec, None  # unreadable: reading it says why
    if meta.get('version') != VERSION: return path, spec, 'again: the cached one was saved by another movierecs version'
    from types import SimpleNamespace
    if not _trained_as(SimpleNamespace(model_spec=meta.get('model_spec'), train_spec=meta.get('train_spec')), spec):
        return path, spec, 'again: the cached one was trained with other settings'
    return path, spec, None

def _train(by, path, spec, why):
    "Train the default model `by` and save it to the cache folder `path`: its `Learner`."
    from ..train.experiments import EpochLines, train_model
    from ..train.saving import save
    with writable(path, 'cache folder (set MOVIERECS_CACHE)'):
        rows = all_ratings()
        print(f"movierecs: training the default {by} model ({spec['model']}, {spec['epochs']} epochs on all {len(rows['ratings']):,} "
              f"ratings of ML-100k) {why}; it is then cached in {path}. The time left shows below.", file=sys.stderr, flush=True)
        learn = train_model(**spec, **rows, progress=False, cbs=[EpochLines()])
        learn.train_spec = {**learn.train_spec, 'rows': 'all'}  # recorded: a cache of the notebook's 80/20 run is retrained
        save(learn, path)
    return learn

def all_ratings() -> dict:
    "`train_model` arguments that train on every rating of ML-100k (no validation rows): the defaults are for recommending."
    import numpy as np
    from ..data.movielens import load_ratings
    ratings = load_ratings()
    return dict(ratings=ratings, splits=(np.arange(len(ratings)), np.arange(0)))

def _retrain_hint(path):
    from ..core.errors import ModelFileError
    return lambda e: ModelFileError(f'{e} (The cached default model: delete {path} to retrain it.)')

def default_learner(by='ranking' # 'ranking': the recommender that ranks best (results/topn.md); 'rating': the notebook's collab run;
                                 # 'next': the next-item model (results/next_item.md)
                   ):
    ("The default model on ML-100k, trained once on every rating (it is for recommending: the notebook's 80/20 runs are "
     "`reproduce`'s) with its recorded settings, and cached in `cache_dir()`.")
    from ..train.saving import load
    from ..core.errors import ModelFileError
    path, spec, why = _cached(by)
    if why is not None: return _train(by, path, spec, why)
    try: return load(path)
    except ModelFileError as e: raise _retrain_hint(path)(e) from None

def default_folder(by='ranking' # as in `default_learner`
                  ) -> Path:
    "The cache folder of the default model `by`, trained and saved there first when the cache lacks it (what the command answers from)."
    path, spec, why = _cached(by)
    if why is not None: _train(by, path, spec, why)
    return path

def default_light(by='ranking' # as in `default_learner`
                 ):
    "The default model `by` as numpy arrays (`recommendation.light.Light`): answers without torch or fastai; trained first if need be."
    from ..recommendation.light import read_light
    from ..core.errors import ModelFileError
    path = default_folder(by)
    try: return read_light(path)
    except ModelFileError as e: raise _retrain_hint(path)(e) from None

def default_vocabs(by='ranking' # as in `default_learner`
                  ) -> dict:
    ("The default model `by`'s vocabularies {user: [...], item: [...]} (fastai's `#na#` first), without loading or training it: "
     "from its cached model.json, else from the ratings it would be trained on. A title can be checked before a first run trains.")
    path, _, why = _cached(by)
    meta = _meta(path) if why is None else None
    if meta is not None and isinstance(meta.get('classes'), dict) and len(meta['classes']) == 2:
        return {k: ['#na#', *v] for k, v in meta['classes'].items()}
    ratings = all_ratings()['ratings']
    return {c: ['#na#', *sorted(ratings[c].unique())] for c in ('user', 'title')}

def _meta(path):
    "A saved model's model.json as a dict (None if it cannot be read: reading the model then says why)."
    try:
        meta = json.loads((path/'model.json').read_text(encoding='utf-8'))
        return meta if isinstance(meta, dict) else None
    except (OSError, ValueError): return None

def _trained_as(learn, spec):
    "True if `learn` (loaded from the cache) was built and trained with `spec`, the `train_model` arguments of a default."
    fit = ('epochs', 'lr', 'wd', 'seed')
    model = getattr(learn, 'model_spec', None) or {}
    trained = getattr(learn, 'train_spec', None) or {}
    return (model.get('model') == spec['model'] and trained == {**{k: spec[k] for k in fit}, 'rows': 'all'}
            and all(model.get(k) == v for k, v in spec.items() if k not in fit and k != 'model'))
