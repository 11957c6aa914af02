"""Save a trained learner as a `state_dict` plus JSON, and load it back as a `Learner` — no pickle anywhere.
A save is one atomic step: the weights go to a new file named by their hash, then model.json (which names it) replaces the
old one in a single rename, so a crash at any point leaves the old model or the new one, and a reader never sees a mix."""
import contextlib, hashlib, io, json, re, time
from pathlib import Path
import numpy as np, pandas as pd, torch
from ..engine.loaders import dataloaders
from ..core.files import write_atomic
from ..core.checks import plain_value, regular_size
from ..models.registry import get_learner, list_models
from ..core.errors import ModelFileError
__all__ = ['save', 'load']

FORMAT, VERSION = 'movierecs-model', 2

META, LOCK = 'model.json', '.model.lock'

MAX_META, MAX_WEIGHTS = 2**28, 2**33  # bytes: far above any model of MovieLens (ML-100k's: 0.2 MB and 2 MB)

_WEIGHTS_NAME = re.compile(r'model-[0-9a-f]{16}\.pt')  # the weights file model.json names: in the folder, named by its sha256

_DESCRIBED = ('format', 'version', 'model_spec', 'train_spec', 'bs', 'classes')  # what load rebuilds the learner from

def _digest(obj): return hashlib.sha256(json.dumps(obj, ensure_ascii=False).encode()).hexdigest()  # key order counts

@contextlib.contextmanager
def _locked(path, shared=False):
    "Hold the folder's lock: exclusive for a save (two saves take turns), shared for a load (no save lands while it reads)."
    import fcntl
    with open(path/LOCK, 'rb' if shared else 'a') as f:
        fcntl.flock(f, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        try: yield
        finally: fcntl.flock(f, fcntl.LOCK_UN)

def save(learn, # A learner from `get_learner` / `train_model`
         path # Folder to write model.pt and model.json to (created)
        ) -> Path:
    ("Write `learn`'s weights, how to rebuild it, its vocabularies and its ratings (the rated pairs) to `path` "
     "(not its `cbs`, `metrics` or `wd`).")
    spec = getattr(learn, 'model_spec', None)
    if spec is None: raise ValueError("This learner was not built by a movierecs factory (get_learner), so it cannot be "
                                      "rebuilt on load: use learn.export() for fastai's pickle format.")
    check_folder(path)
    dls, path = learn.dls, Path(path)
    bad = [k for k, v in learn.model.state_dict().items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad: raise ValueError(f"The model's weights {', '.join(bad[:3])} hold NaN or inf values (training diverged): "
                             f"retrain it with a lower learning rate before saving.")
    parts = [(dl.items, i == 1) for i, dl in enumerate([dls.train, dls.valid])]
    codes = np.concatenate([it[list(dls.classes)].to_numpy('int64') for it, _ in parts])
    keep = (codes > 0).all(1)  # a valid-set row whose user or title the model never saw carries nothing to keep
    classes = {k: [plain_value(v) for v in c[1:]] for k, c in dls.classes.items()}
    for k, c in classes.items():
        odd = next((v for v in c if not isinstance(v, (int, float, str)) or isinstance(v, bool)), None)
        if odd is not None:
            raise ValueError(f"The {k} ids include {odd!r} ({type(odd).__name__}): model.json keeps ids that are numbers or text. "
                             f"Convert the column, e.g. ratings['{k}'] = ratings['{k}'].astype(str), and train again.")
    blob = {'state_dict': {k: v.detach().cpu() for k, v in learn.model.state_dict().items()},
            'rows': torch.from_numpy(codes[keep]),
            'ratings': torch.from_numpy(np.concatenate([it['rating'].to_numpy('float32') for it, _ in parts])[keep]),
            'valid': torch.from_numpy(np.concatenate([np.full(len(it), v) for it, v in parts])[keep])}
    import fastai
    described = dict(format=FORMAT, version=VERSION, model_spec=spec, train_spec=getattr(learn, 'train_spec', None),
                     bs=dls.train.bs, classes=classes)
    blob['described_sha256'] = _digest(described)  # ties everything model.json says about the model to these weights
    buf = io.BytesIO(); torch.save(blob, buf); weights = buf.getvalue()
    sha = hashlib.sha256(weights).hexdigest()
    values = getattr(getattr(learn, 'recorder', None), 'values', None)
    losses = [float(x) for x in values[-1]] if values else getattr(learn, 'final_losses', None)
    meta = dict(described, weights=f'model-{sha[:16]}.pt', weights_sha256=sha, final_losses=losses,
                versions=dict(torch=torch.__version__, fastai=fastai.__version__))
    path.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        try: before = _read_meta(path)['weights'] if (path/META).is_file() else None
        except ModelFileError: before = None  # not a model of ours: nothing in the folder is ours to remove
        write_atomic({path/meta['weights']: weights})
        write_atomic({path/META: json.dumps(meta, indent=1, ensure_ascii=False) + '\n'})  # the one step that switches models
        if before and before != meta['weights']: (path/before).unlink(missing_ok=True)  # the weights the old model.json named
    return path

def check_folder(path):
    "Raise ValueError, before anything is written, if a model cannot be saved to the folder `path`."
    if not str(path).strip(): raise ValueError("The folder to save to is empty: give one, e.g. 'models/collab'.")
    path = Path(path)
    if path.exists() and not path.is_dir(): raise ValueError(f"Cannot save to {path}: it is a file, not a folder. Choose a folder.")
    for f in (path/LOCK, path/META):
        if f.exists() and not f.is_file(): raise ValueError(f"Cannot save to {path}: {f.name} there is not a regular file. "
                                                            "Choose another folder.")

def _read_meta(path):
    f = path/META
    if not f.is_file(): raise ModelFileError(f"No saved model at {path}: {META} is missing. Save one with movierecs.save(learn, path) "
                                             f"or `movierecs train MODEL --out {path}`.")
    _check_size(f, MAX_META)
    try: meta = json.loads(f.read_text(encoding='utf-8'))
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise ModelFileError(f"{f} is not valid JSON ({e}): it was truncated or edited. Save the model again.") from None
    if not isinstance(meta, dict) or meta.get('format') != FORMAT:
        raise ModelFileError(f"{f} is not a movierecs model description (no \"format\": \"{FORMAT}\").")
    if meta.get('version') != VERSION:
        raise ModelFileError(f"{f} has format version {meta.get('version')!r}; this movierecs reads version {VERSION}. "
                             f"Save the model again with this version.")
    missing = [k for k in (*_DESCRIBED, 'weights', 'weights_sha256') if k not in meta]
    if missing: raise ModelFileError(f"{f} lacks {', '.join(missing)}: it was edited. Save the model again.")
    if not isinstance(meta['weights'], str) or not _WEIGHTS_NAME.fullmatch(meta['weights']):
        raise ModelFileError(f"{f} names weights {meta['weights']!r}, not a file of the form model-<hash>.pt in its folder: it was edited.")
    return meta

def _check_size(f, cap):
    "Refuse a model file that is not a regular file, or is larger than any model this movierecs writes, before reading it."
    if not f.exists(): raise FileNotFoundError(f)
    size = regular_size(f)
    if size is None: raise ModelFileError(f"{f} is not a regular file (a folder, a device or a pipe?): save the model again.")
    if size > cap: raise ModelFileError(f"{f} is {size:,} bytes, more than a saved model's {cap:,}: "
                                                    "it is not one. Save the model again.")

def _read(path):
    "model.json and the weights it names, under the folder's shared lock when it has one (a folder from before locks: retried)."
    lock = path/LOCK
    if lock.is_file():
        try:
            with _locked(path, shared=True): return _read_retried(path)
        except PermissionError: pass  # a lock file this user cannot open: read without it
    return _read_retried(path)

def _read_retried(path, tries=20):
    "model.json and the bytes of the weights it names; retried when a save in another process replaces them meanwhile."
    missing = 0
    for attempt in range(tries):
        meta = _read_meta(path)
        w = path/meta['weights']
        try:
            _check_size(w, MAX_WEIGHTS)
            return meta, w.read_bytes()
        except FileNotFoundError:  # another process saved meanwhile and removed them: read again, its model
            missing = missing + 1 if _read_meta(path) == meta else 0
            if missing == 3: raise ModelFileError(f"{w} is missing: {META} names it. Save the model again.") from None
            time.sleep(0.01 * (attempt + 1))
    raise ModelFileError(f"{path} keeps changing while it is read: another process is saving to it again and again.")

def load(path # Folder written by `save`
        ):
    "The `Learner` saved at `path`, rebuilt from its description and vocabularies, weights loaded with `weights_only=True`."
    path = Path(path)
    meta, weights = _read(path)
    wf = path/meta['weights']
    if hashlib.sha256(weights).hexdigest() != meta['weights_sha256']:
        raise ModelFileError(f"{wf} does not match the sha256 recorded in {META}: it was modified, truncated or comes "
                             f"from another save. Save the model again.")
    try: blob = torch.load(io.BytesIO(weights), weights_only=True)
    except Exception as e: raise ModelFileError(f"{wf} cannot be read as weights ({type(e).__name__}: {e}).") from None
    if not isinstance(blob, dict) or blob.get('described_sha256') != _digest({k: meta[k] for k in _DESCRIBED}):
        raise ModelFileError(f"{path/META} does not describe the model {wf} was saved with: it was edited (its model, "
                             f"settings or vocabularies changed), or the files do not belong together. Save the model again.")
    spec = dict(meta['model_spec'])
    name = spec.pop('model', None)
    if name not in list_models(): raise ModelFileError(f"{path/META} names model {name!r}, which this movierecs does not "
                                                       f"have. Known: {', '.join(list_models())}.")
    for k in ('y_range', 'layers', 'members'):  # JSON has no tuples
        if isinstance(spec.get(k), list): spec[k] = tuple(spec[k])
    (user_name, users), (item_name, items) = ((k, np.array(c, dtype=object)) for k, c in meta['classes'].items())
    rows, valid = blob['rows'].numpy(), blob['valid'].numpy()
    ratings = pd.DataFrame({'user': users[rows[:, 0]-1], item_name: items[rows[:, 1]-1], 'rating': blob['ratings'].numpy()})
    typed = ratings.copy()
    for col, vals in (('user', users), (item_name, items)):
        if len(vals): typed[col] = ratings[col].astype(type(vals[0]))
    splits = (np.flatnonzero(~valid), np.flatnonzero(valid))
    # ids typed as numbers, else as Python objects: fastai's vocabulary of an object column also holds ids only validation has
    for frame in (typed, ratings):
        dls = dataloaders(frame, bs=meta['bs'], splits=splits, item_name=item_name)
        if [[plain_value(v) for v in c[1:]] for c in dls.classes.values()] == list(meta['classes'].values()): break
    else: raise ModelFileError(f"The ratings in {wf} do not rebuild the vocabularies in {META}: the files do not belong together.")
    learn = get_learner(name, dls, **spec)
    try: learn.model.load_state_dict(blob['state_dict'])
    except RuntimeError as e:
        raise ModelFileError(f"The weights in {wf} do not fit a {name!r} model with {spec} (written by another model "
                             f"type?): {str(e).splitlines()[0]}") from None
    learn.train_spec, learn.final_losses = meta.get('train_spec'), meta.get('final_losses')
    return learn
