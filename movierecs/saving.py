"Save a trained learner as a `state_dict` plus JSON, and load it back as a `Learner` — no pickle anywhere."
import hashlib, io, json
from pathlib import Path

import numpy as np, pandas as pd, torch

from .data import dataloaders
from .files import write_atomic
from .learners import get_learner, list_models

__all__ = ['ModelFileError', 'save', 'load']

FORMAT, VERSION = 'movierecs-model', 1
WEIGHTS, META = 'model.pt', 'model.json'

class ModelFileError(ValueError):
    "A saved model that is missing, corrupt, tampered with, or does not fit its description."

def _plain(v): return v.item() if hasattr(v, 'item') else v
def _digest(classes): return hashlib.sha256(json.dumps(classes, ensure_ascii=False).encode()).hexdigest()

def save(learn, # A learner from `get_learner` / `train_model`
         path # Folder to write model.pt and model.json to (created)
        ) -> Path:
    "Write `learn`'s weights, how to rebuild it, its vocabularies and its ratings (the rated pairs) to `path`."
    spec = getattr(learn, 'model_spec', None)
    if spec is None: raise ValueError("This learner was not built by a movierecs factory (get_learner), so it cannot be "
                                      "rebuilt on load: use learn.export() for fastai's pickle format.")
    dls, path = learn.dls, Path(path)
    parts = [(dl.items, i == 1) for i, dl in enumerate([dls.train, dls.valid])]
    codes = np.concatenate([it[list(dls.classes)].to_numpy('int64') for it, _ in parts])
    keep = (codes > 0).all(1)  # a valid-set row whose user or title the model never saw carries nothing to keep
    classes = {k: [_plain(v) for v in c[1:]] for k, c in dls.classes.items()}
    blob = {'state_dict': {k: v.detach().cpu() for k, v in learn.model.state_dict().items()},
            'classes_sha256': _digest(classes),  # ties the vocabularies in model.json to these weights
            'rows': torch.from_numpy(codes[keep]),
            'ratings': torch.from_numpy(np.concatenate([it['rating'].to_numpy('float32') for it, _ in parts])[keep]),
            'valid': torch.from_numpy(np.concatenate([np.full(len(it), v) for it, v in parts])[keep])}
    buf = io.BytesIO(); torch.save(blob, buf); weights = buf.getvalue()
    import fastai
    meta = dict(format=FORMAT, version=VERSION, model_spec=spec, train_spec=getattr(learn, 'train_spec', None),
                bs=dls.train.bs, classes=classes,
                weights=WEIGHTS, weights_sha256=hashlib.sha256(weights).hexdigest(),
                final_losses=[float(x) for x in learn.recorder.values[-1]] if learn.recorder.values else None,
                versions=dict(torch=torch.__version__, fastai=fastai.__version__))
    write_atomic({path/WEIGHTS: weights, path/META: json.dumps(meta, indent=1, ensure_ascii=False) + '\n'})
    return path

def _read_meta(path):
    f = path/META
    if not f.is_file(): raise ModelFileError(f"No saved model at {path}: {META} is missing. Save one with movierecs.save(learn, path) "
                                             f"or `movierecs train MODEL --out {path}`.")
    try: meta = json.loads(f.read_text(encoding='utf-8'))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelFileError(f"{f} is not valid JSON ({e}): it was truncated or edited. Save the model again.") from None
    if not isinstance(meta, dict) or meta.get('format') != FORMAT:
        raise ModelFileError(f"{f} is not a movierecs model description (no \"format\": \"{FORMAT}\").")
    if meta.get('version') != VERSION:
        raise ModelFileError(f"{f} has format version {meta.get('version')!r}; this movierecs reads version {VERSION}. "
                             f"Save the model again with this version.")
    missing = [k for k in ('model_spec', 'classes', 'bs', 'weights_sha256') if k not in meta]
    if missing: raise ModelFileError(f"{f} lacks {', '.join(missing)}: it was edited. Save the model again.")
    return meta

def load(path # Folder written by `save`
        ):
    "The `Learner` saved at `path`, rebuilt from its description and vocabularies, weights loaded with `weights_only=True`."
    path = Path(path)
    meta = _read_meta(path)
    wf = path/WEIGHTS
    if not wf.is_file(): raise ModelFileError(f"{wf} is missing: a saved model needs both {WEIGHTS} and {META}.")
    weights = wf.read_bytes()
    if hashlib.sha256(weights).hexdigest() != meta['weights_sha256']:
        raise ModelFileError(f"{wf} does not match the sha256 recorded in {META}: it was modified, truncated or comes "
                             f"from another save. Save the model again.")
    try: blob = torch.load(io.BytesIO(weights), weights_only=True)
    except Exception as e: raise ModelFileError(f"{wf} cannot be read as weights ({type(e).__name__}: {e}).") from None
    if not isinstance(blob, dict) or blob.get('classes_sha256') != _digest(meta['classes']):
        raise ModelFileError(f"The vocabularies in {path/META} are not the ones {wf} was saved with: the files do not "
                             f"belong together, or model.json was edited. Save the model again.")
    spec = dict(meta['model_spec'])
    name = spec.pop('model', None)
    if name not in list_models(): raise ModelFileError(f"{path/META} names model {name!r}, which this movierecs does not "
                                                       f"have. Known: {', '.join(list_models())}.")
    for k in ('y_range', 'layers', 'members'):  # JSON has no tuples
        if isinstance(spec.get(k), list): spec[k] = tuple(spec[k])
    (user_name, users), (item_name, items) = ((k, np.array(c, dtype=object)) for k, c in meta['classes'].items())
    rows, valid = blob['rows'].numpy(), blob['valid'].numpy()
    ratings = pd.DataFrame({'user': users[rows[:, 0]-1], item_name: items[rows[:, 1]-1], 'rating': blob['ratings'].numpy()})
    for col, vals in (('user', users), (item_name, items)):
        if len(vals): ratings[col] = ratings[col].astype(type(vals[0]))
    dls = dataloaders(ratings, bs=meta['bs'], splits=(np.flatnonzero(~valid), np.flatnonzero(valid)), item_name=item_name)
    if [[_plain(v) for v in c[1:]] for c in dls.classes.values()] != list(meta['classes'].values()):
        raise ModelFileError(f"The ratings in {wf} do not rebuild the vocabularies in {META}: the files do not belong together.")
    learn = get_learner(name, dls, **spec)
    try: learn.model.load_state_dict(blob['state_dict'])
    except RuntimeError as e:
        raise ModelFileError(f"The weights in {wf} do not fit a {name!r} model with {spec} (written by another model "
                             f"type?): {str(e).splitlines()[0]}") from None
    learn.train_spec = meta.get('train_spec')
    return learn
