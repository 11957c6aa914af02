"""Save a trained learner as a `state_dict` plus JSON, and load it back as a `Learner` — no pickle anywhere.
A save is one atomic step: the weights go to a new file named by their hash, then model.json (which names it) replaces the
old one in a single rename, so a crash at any point leaves the old model or the new one, and a reader never sees a mix."""
import hashlib, json
from pathlib import Path
import numpy as np, pandas as pd, torch
from ..engine.loaders import dataloaders
from ..engine.sparse import make_sparse
from ..core.files import write_atomic
from ..core.checks import plain_value
from ..models.registry import get_learner, list_models, model_task
from ..core.errors import ModelFileError
from .modelfile import FORMAT, META, VERSION, _digest, _locked, _read_meta, check_folder, read_model, weights_bytes
__all__ = ['save', 'load']

def save(learn, # A learner from `get_learner` / `train_model`
         path # Folder to write the weights (model-<hash>.npz) and model.json to (created)
        ) -> Path:
    ("Write `learn`'s weights, how to rebuild it, its vocabularies and its ratings (the rated pairs) to `path` "
     "(not its `cbs`, `metrics` or `wd`).")
    spec = getattr(learn, 'model_spec', None)
    if spec is None: raise ValueError("This learner was not built by a movierecs factory (get_learner), so it cannot be "
                                      "rebuilt on load: use learn.export() for fastai's pickle format.")
    check_folder(path)
    dls, path = learn.dls, Path(path).expanduser()
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
    blob = {**{f'state/{k}': v.detach().cpu().numpy() for k, v in learn.model.state_dict().items()},
            'rows': codes[keep],
            'ratings': np.concatenate([it['rating'].to_numpy('float32') for it, _ in parts])[keep],
            'valid': np.concatenate([np.full(len(it), v) for it, v in parts])[keep]}
    if spec.get('model') in list_models() and model_task(spec['model']) == 'next':  # a sequential model reads each rating's time
        blob['timestamps'] = np.concatenate([it['timestamp'].to_numpy('int64') for it, _ in parts])[keep]
    import fastai
    described = dict(format=FORMAT, version=VERSION, model_spec=spec, train_spec=getattr(learn, 'train_spec', None),
                     bs=dls.train.bs, classes=classes)
    blob['described_sha256'] = np.array(_digest(described))  # ties everything model.json says about the model to these weights
    weights = weights_bytes(blob)
    sha = hashlib.sha256(weights).hexdigest()
    values = getattr(getattr(learn, 'recorder', None), 'values', None)
    losses = [None if x is None else float(x) for x in values[-1]] if values else getattr(learn, 'final_losses', None)
    meta = dict(described, weights=f'model-{sha[:16]}.npz', weights_sha256=sha, final_losses=losses,
                versions=dict(torch=torch.__version__, fastai=fastai.__version__))
    path.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        try: before = _read_meta(path)['weights'] if (path/META).is_file() else None
        except ModelFileError: before = None  # not a model of ours: nothing in the folder is ours to remove
        write_atomic({path/meta['weights']: weights})
        write_atomic({path/META: json.dumps(meta, indent=1, ensure_ascii=False) + '\n'})  # the one step that switches models
        if before and before != meta['weights']: (path/before).unlink(missing_ok=True)  # the weights the old model.json named
    return path

def load(path # Folder written by `save`
        ):
    "The `Learner` saved at `path`, rebuilt from its description and vocabularies, weights loaded with `weights_only=True`."
    path = Path(path).expanduser()
    meta, blob = read_model(path)
    wf = path/meta['weights']
    spec = dict(meta['model_spec'])
    name = spec.pop('model', None)
    if name not in list_models(): raise ModelFileError(f"{path/META} names model {name!r}, which this movierecs does not "
                                                       f"have. Known: {', '.join(list_models())}.")
    for k in ('y_range', 'layers', 'members'):  # JSON has no tuples
        if isinstance(spec.get(k), list): spec[k] = tuple(spec[k])
    (user_name, users), (item_name, items) = ((k, np.array(c, dtype=object)) for k, c in meta['classes'].items())
    rows, valid = blob['rows'], blob['valid']
    ratings = pd.DataFrame({'user': users[rows[:, 0]-1], item_name: items[rows[:, 1]-1], 'rating': blob['ratings']})
    if 'timestamps' in blob: ratings['timestamp'] = blob['timestamps']
    elif model_task(name) == 'next': raise ModelFileError(f"{wf} holds no timestamps, which a {name!r} model reads: save the model again.")
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
    state = {k.removeprefix('state/'): torch.from_numpy(v.copy()) for k, v in blob.items() if k.startswith('state/')}
    try: learn.model.load_state_dict(state)
    except RuntimeError as e:
        raise ModelFileError(f"The weights in {wf} do not fit a {name!r} model with {spec} (written by another model "
                             f"type?): {str(e).splitlines()[0]}") from None
    learn.train_spec, learn.final_losses = meta.get('train_spec'), meta.get('final_losses')
    if (learn.train_spec or {}).get('sparse'): make_sparse(learn)  # trained on the sparse path: further fits stay on it
    return learn
