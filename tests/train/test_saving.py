"save / load: weights as a state_dict plus JSON, no pickle, and a clear error for every way the files can be wrong."
import json
import numpy as np
import pytest, torch
from fastai.learner import Learner
from fastai.losses import MSELossFlat
import movierecs
from movierecs import ModelFileError, load, save, train_model

@pytest.fixture(scope='module')
def learners(synth, seed):
    return {name: train_model(name, epochs=1, wd=None if movierecs.trains_by_lbfgs(name) else 0.1, seed=seed, ratings=synth, progress=False)
            for name in movierecs.list_models()}

@pytest.fixture
def saved(learners, tmp_path):
    return save(learners['dot_bias'], tmp_path/'m')

def _weights(saved): return saved/json.loads((saved/'model.json').read_text())['weights']  # the file model.json names

@pytest.mark.parametrize('name', movierecs.list_models())
def test_round_trip(name, learners, tmp_path):
    learn = learners[name]
    back = load(save(learn, tmp_path/name))
    assert isinstance(back, Learner) and type(back.model) is type(learn.model) and back.model_spec == learn.model_spec
    assert back.train_spec == (dict(epochs=1, lr=1., wd=None, seed=42, schedule='fit') if movierecs.trains_by_lbfgs(name)
                               else dict(epochs=1, lr=5e-3, wd=0.1, seed=42))
    assert back.dls.classes == learn.dls.classes
    assert torch.equal(back.get_preds()[0], learn.get_preds()[0])  # same weights, same validation rows
    assert back.validate()[0] == pytest.approx(learn.validate()[0])
    if name in ('dot_bias', 'collab'):
        pd_eq = movierecs.recommend(back, 5, n=5).equals(movierecs.recommend(learn, 5, n=5))
        assert pd_eq and movierecs.biases(back).equals(movierecs.biases(learn))

def test_files_are_json_and_plain_weights(saved):
    meta = json.loads((saved/'model.json').read_text())
    assert meta['format'] == 'movierecs-model' and meta['model_spec']['model'] == 'dot_bias' and meta['bs'] == 64
    assert len(meta['classes']['title']) == 60 and meta['classes']['user'][:2] == [1, 2]
    with np.load(_weights(saved), allow_pickle=False) as z: keys = set(z.files)  # plain arrays: no pickle
    assert keys == {'described_sha256', 'rows', 'ratings', 'valid'} | {f'state/{k}' for k in load(saved).model.state_dict()}
    assert _weights(saved).suffix == '.npz'
    assert sorted(p.name for p in saved.iterdir()) == ['.model.lock', _weights(saved).name, 'model.json']

def test_tampered_weights(saved):
    data = bytearray(_weights(saved).read_bytes()); data[-100] ^= 0xFF
    _weights(saved).write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match='does not match the sha256.*modified, truncated'): load(saved)

def test_truncated_weights(saved):
    _weights(saved).write_bytes(_weights(saved).read_bytes()[:1000])
    with pytest.raises(ModelFileError, match='does not match the sha256'): load(saved)

def test_truncated_description(saved):
    (saved/'model.json').write_text((saved/'model.json').read_text()[:200])
    with pytest.raises(ModelFileError, match='not valid JSON.*truncated or edited'): load(saved)

def _edit(saved, **changes):
    meta = json.loads((saved/'model.json').read_text()); meta.update(changes)
    (saved/'model.json').write_text(json.dumps(meta))

EDITED = 'does not describe the model .* was saved with: it was edited'

@pytest.mark.parametrize('changes', [
    dict(model_spec={'model': 'dot', 'n_factors': 50, 'y_range': [0, 5.5]}),  # another model type
    dict(model_spec={'model': 'dot_bias', 'n_factors': 50, 'y_range': [0, 55]}),  # stars ten times larger
    dict(bs=7), dict(train_spec=None), dict(classes={'title': [], 'user': []}),
])
def test_an_edited_description_is_refused(saved, changes):
    _edit(saved, **changes)
    with pytest.raises(ModelFileError, match=EDITED): load(saved)

def test_dot_edited_into_dot_raw_is_refused(learners, tmp_path):
    "Dropping the sigmoid by renaming the model would give the same weights a different meaning."
    saved = save(learners['dot'], tmp_path/'dot')
    meta = json.loads((saved/'model.json').read_text())
    _edit(saved, model_spec={**meta['model_spec'], 'model': 'dot_raw'})
    with pytest.raises(ModelFileError, match=EDITED): load(saved)

@pytest.mark.parametrize('name', ['../model.npz', '/etc/passwd', 'model.npz', 'model-0123456789abcdef.npz/../x',
                                  'model-0123456789abcdef.pt', 7])
def test_weights_outside_the_folder_are_refused(saved, name):
    _edit(saved, weights=name)
    with pytest.raises(ModelFileError, match='not a file of the form model-<hash>.npz'): load(saved)

def test_a_loaded_model_saves_again(learners, tmp_path):
    first = save(learners['collab'], tmp_path/'a')
    back = load(first)
    again = load(save(back, tmp_path/'b'))
    trained = [float(v) for v in learners['collab'].recorder.values[-1]]  # the losses the training itself recorded
    assert again.final_losses == back.final_losses == trained
    assert torch.equal(again.get_preds()[0], learners['collab'].get_preds()[0])

def _resign(saved, **changes):
    "Change model.json and sign the weights for it, as a save by another movierecs (one with other models) would."
    import hashlib
    from movierecs.train.modelfile import _DESCRIBED, _digest, weights_bytes
    meta = {**json.loads((saved/'model.json').read_text()), **changes}
    with np.load(_weights(saved), allow_pickle=False) as z: blob = {k: z[k] for k in z.files}
    blob['described_sha256'] = np.array(_digest({k: meta[k] for k in _DESCRIBED}))
    data = weights_bytes(blob)
    _weights(saved).write_bytes(data)
    meta['weights_sha256'] = hashlib.sha256(data).hexdigest()
    (saved/'model.json').write_text(json.dumps(meta))

def test_unknown_model_and_version(saved):
    _resign(saved, model_spec={'model': 'svd'})
    with pytest.raises(ModelFileError, match="names model 'svd'.*Known: dot"): load(saved)
    _edit(saved, version=99)
    with pytest.raises(ModelFileError, match='format version 99'): load(saved)
    _edit(saved, format='something')
    with pytest.raises(ModelFileError, match='not a movierecs model description'): load(saved)

def test_missing_files(saved, tmp_path):
    with pytest.raises(ModelFileError, match='No saved model.*model.json is missing'): load(tmp_path/'nothing')
    _weights(saved).unlink()
    with pytest.raises(ModelFileError, match=r'model-[0-9a-f]{16}\.npz is missing: model.json names it'): load(saved)

def test_vocabulary_that_does_not_belong(saved):
    meta = json.loads((saved/'model.json').read_text())
    meta['classes']['title'][0] = 'Another Movie (2001)'
    (saved/'model.json').write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match=EDITED): load(saved)

def test_only_registry_learners_can_be_saved(learners, tmp_path):
    learn = learners['dot']
    plain = Learner(learn.dls, movierecs.DotProduct(944, 1665, 5), loss_func=MSELossFlat())
    with pytest.raises(ValueError, match=r'not built by a movierecs factory.*learn.export\(\)'): save(plain, tmp_path/'x')

def test_fastai_export_still_works(learners, tmp_path):
    "fastai's pickle export beside `save`: the reloaded learner predicts what the trained one does."
    from fastai.learner import load_learner
    learn = learners['collab']
    want = learn.get_preds()[0]
    learn.export(tmp_path/'export.pkl')
    back = load_learner(tmp_path/'export.pkl')
    assert type(back) is type(learn) and torch.equal(back.get_preds(dl=learn.dls.valid)[0], want)

def test_object_ids_seen_only_in_validation_round_trip(tmp_path):
    # fastai codes an object column of ids as a categorical of every row's ids, so the vocabulary holds a movie only validation
    # rates; load must rebuild that vocabulary, not refuse the files as not belonging together
    import numpy as np
    r = movierecs.synthetic_ratings(40, 25, seed=1)
    splits = (np.flatnonzero(r.movie != 3), np.flatnonzero(r.movie == 3))
    r = r.assign(movie=r.movie.astype(object))
    learn = train_model('dot_bias', epochs=1, ratings=r, item_name='movie', splits=splits, progress=False, bs=8)
    assert 3 in list(learn.dls.classes['movie'])
    save(learn, tmp_path/'m')
    again = load(tmp_path/'m')
    assert list(again.dls.classes['movie']) == list(learn.dls.classes['movie'])
    assert all(torch.equal(a, b) for a, b in zip(again.model.state_dict().values(), learn.model.state_dict().values()))

def _edit_arrays(saved, edit):
    "Edit the weights file's arrays with `edit(arrays)` and record its new sha256 in model.json, as an editor who knows the format would."
    import hashlib
    from movierecs.train.modelfile import weights_bytes
    with np.load(_weights(saved), allow_pickle=False) as z: arrays = {k: z[k] for k in z.files}
    edit(arrays)
    data = weights_bytes(arrays)
    _weights(saved).write_bytes(data)
    meta = json.loads((saved/'model.json').read_text())
    meta['weights_sha256'] = hashlib.sha256(data).hexdigest()
    (saved/'model.json').write_text(json.dumps(meta))

@pytest.mark.parametrize('edit, problem', [
    (lambda a: a['rows'].__setitem__((0, 1), 10_000), r'its rows hold title codes from 1 to 10000, outside the 60 titles'),
    (lambda a: a['rows'].__setitem__((3, 0), 0), r'its rows hold user codes from 0 to 100, outside the 100 users'),
    (lambda a: a.pop('rows'), r'it lacks the rated rows \(rows\)'),
    (lambda a: a.pop('ratings'), r'it lacks the rated rows \(ratings\)'),
    (lambda a: a.__setitem__('rows', a['rows'][:, :1]), r'its rows are int64 of shape \(\d+, 1\), not \(n, 2\) codes'),
    (lambda a: a.__setitem__('ratings', a['ratings'][:5]), r'its ratings \(5,\) and valid flags \(\d+,\) do not match'),
    (lambda a: a['ratings'].__setitem__(2, np.nan), 'its ratings hold NaN or inf values'),
    (lambda a: a['state/movie_bias.weight'].__setitem__((3, 0), np.nan), r'its weights movie_bias.weight hold NaN or inf values'),
    (lambda a: a.__setitem__('state/movie_bias.weight', a['state/movie_bias.weight'].astype(str)),
     r'its weights movie_bias.weight are <U\d+, not numbers'),
])
def test_edited_rows_in_resigned_weights_are_model_file_errors(saved, edit, problem):
    "A weights file edited and re-hashed, whose rated rows point past the vocabularies or are gone: one clear error, not an IndexError."
    from movierecs.recommendation.light import read_light
    _edit_arrays(saved, edit)
    for reader in (load, read_light):
        with pytest.raises(ModelFileError, match=rf"model-[0-9a-f]{{16}}\.npz: {problem}.*it was edited\. Save the model again"):
            reader(saved)

def test_a_model_spec_that_names_no_model_is_a_model_file_error(saved):
    "model.json edited and its weights re-signed for it: a model_spec that is not a description is one clear error from both readers."
    from movierecs.recommendation.light import read_light
    _resign(saved, model_spec=['dot_bias'])
    for reader in (load, read_light):
        with pytest.raises(ModelFileError, match="model.json's model_spec names no model: it was edited"): reader(saved)

def test_edited_weights_of_another_shape_are_model_file_errors(saved):
    from movierecs.recommendation.light import read_light
    _edit_arrays(saved, lambda a: a.__setitem__('state/movie_bias.weight', a['state/movie_bias.weight'][:7]))
    with pytest.raises(ModelFileError, match="do not fit a 'dot_bias' model"): load(saved)
    with pytest.raises(ModelFileError, match="do not fit a 'dot_bias' model"): read_light(saved).item_bias()[59]
