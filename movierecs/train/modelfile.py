"""The saved-model format, read with numpy alone: model.json (what the model is, its vocabularies) and the weights file it
names, an `.npz` of plain arrays (no pickle), tied together by hashes. `train.saving` writes and loads it as a `Learner`;
`recommendation.light` answers from it without torch or fastai."""
import contextlib, hashlib, io, json, re, time
from pathlib import Path
import numpy as np
from ..core.checks import regular_size
from ..core.errors import ModelFileError
__all__ = ['FORMAT', 'VERSION', 'META', 'check_folder', 'weights_bytes', 'read_model']

FORMAT, VERSION = 'movierecs-model', 3  # 3: the weights as .npz (2: torch.save)

META, LOCK = 'model.json', '.model.lock'

MAX_META, MAX_WEIGHTS = 2**28, 2**33  # bytes: far above any model of MovieLens (ML-100k's: 0.2 MB and 2 MB)

_WEIGHTS_NAME = re.compile(r'model-[0-9a-f]{16}\.npz')  # the weights file model.json names: in the folder, named by its sha256

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

def check_folder(path):
    "Raise ValueError, before anything is written, if a model cannot be saved to the folder `path`."
    if not str(path).strip(): raise ValueError("The folder to save to is empty: give one, e.g. 'models/collab'.")
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir(): raise ValueError(f"Cannot save to {path}: it is a file, not a folder. Choose a folder.")
    up = next((p for p in path.parents if p.exists()), None)
    if up is not None and not up.is_dir(): raise ValueError(f"Cannot save to {path}: {up} is a file, not a folder. Choose a folder.")
    for f in (path/LOCK, path/META):
        if f.exists() and not f.is_file(): raise ValueError(f"Cannot save to {path}: {f.name} there is not a regular file. "
                                                            "Choose another folder.")

def _read_meta(path):
    f = path/META
    if f.exists() and not f.is_file():
        raise ModelFileError(f"{f} is not a regular file (a folder or a pipe?): save the model there again, or give another folder.")
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
        raise ModelFileError(f"{f} names weights {meta['weights']!r}, not a file of the form model-<hash>.npz in its folder: "
                             "it was edited.")
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


def weights_bytes(arrays:dict) -> bytes:
    "The weights file's bytes: `arrays` ({name: numpy array}) as an uncompressed `.npz`."
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()

def read_model(path # Folder written by `movierecs.save`
              ) -> tuple:
    "(model.json as a dict, {name: array} of the weights file it names), each checked against the hashes that tie them."
    path = Path(path).expanduser()
    meta, weights = _read(path)
    wf = path/meta['weights']
    if hashlib.sha256(weights).hexdigest() != meta['weights_sha256']:
        raise ModelFileError(f"{wf} does not match the sha256 recorded in {META}: it was modified, truncated or comes "
                             f"from another save. Save the model again.")
    try:
        with np.load(io.BytesIO(weights), allow_pickle=False) as z: arrays = {k: z[k] for k in z.files}
    except Exception as e: raise ModelFileError(f"{wf} cannot be read as weights ({type(e).__name__}: {e}).") from None
    if str(arrays.get('described_sha256', '')) != _digest({k: meta[k] for k in _DESCRIBED}):
        raise ModelFileError(f"{path/META} does not describe the model {wf} was saved with: it was edited (its model, "
                             f"settings or vocabularies changed), or the files do not belong together. Save the model again.")
    problem = _arrays_problem(meta, arrays)
    if problem: raise ModelFileError(f"{wf}: {problem}: it was edited. Save the model again.")
    return meta, arrays

def _arrays_problem(meta, arrays):
    "What is wrong with a weights file's arrays (rated rows against model.json's vocabularies, the weights) or its model_spec, or ''."
    missing = [k for k in ('rows', 'ratings', 'valid') if k not in arrays]
    if missing: return f"it lacks the rated rows ({', '.join(missing)})"
    rows, ratings, valid = arrays['rows'], arrays['ratings'], arrays['valid']
    if rows.ndim != 2 or rows.shape[1] != 2 or rows.dtype.kind not in 'iu':
        return f'its rows are {rows.dtype} of shape {rows.shape}, not (n, 2) codes'
    if ratings.shape != (len(rows),) or ratings.dtype.kind != 'f' or valid.shape != (len(rows),) or valid.dtype.kind not in 'bu':
        return f'its ratings {ratings.shape} and valid flags {valid.shape} do not match its {len(rows)} rows'
    classes = meta['classes']
    if not isinstance(classes, dict) or len(classes) != 2 or not all(isinstance(c, list) for c in classes.values()):
        return 'model.json\'s classes are not two vocabularies'
    for j, (side, vocab) in enumerate(classes.items()):
        c = rows[:, j]
        if len(c) and (c.min() < 1 or c.max() > len(vocab)):
            return f"its rows hold {side} codes from {c.min()} to {c.max()}, outside the {len(vocab)} {side}s of its vocabulary"
    if not np.isfinite(ratings).all(): return 'its ratings hold NaN or inf values'
    t = arrays.get('timestamps')
    if t is not None and (t.shape != (len(rows),) or t.dtype.kind not in 'iu'):
        return f'its timestamps {t.dtype} {t.shape} are not one time per row of its {len(rows)} rows'
    spec = meta['model_spec']
    if not isinstance(spec, dict) or not isinstance(spec.get('model'), str): return "model.json's model_spec names no model"
    for k, v in arrays.items():
        if not k.startswith('state/'): continue
        if v.dtype.kind not in 'fiub': return f'its weights {k[6:]} are {v.dtype}, not numbers'
        if v.dtype.kind == 'f' and not np.isfinite(v).all(): return f'its weights {k[6:]} hold NaN or inf values'
    return ''
