"save / load: weights as a state_dict plus JSON, no pickle, and a clear error for every way the files can be wrong."
import json
import pytest, torch
from fastai.learner import Learner
from fastai.losses import MSELossFlat
import movierecs
from movierecs import ModelFileError, load, save, train_model

@pytest.fixture(scope='module')
def learners(synth, seed):
    return {name: train_model(name, epochs=1, wd=0.1, seed=seed, ratings=synth, progress=False) for name in movierecs.list_models()}

@pytest.fixture
def saved(learners, tmp_path):
    return save(learners['dot_bias'], tmp_path/'m')

@pytest.mark.parametrize('name', movierecs.list_models())
def test_round_trip(name, learners, tmp_path):
    learn = learners[name]
    back = load(save(learn, tmp_path/name))
    assert isinstance(back, Learner) and type(back.model) is type(learn.model) and back.model_spec == learn.model_spec
    assert back.train_spec == dict(epochs=1, lr=5e-3, wd=0.1, seed=42)
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
    blob = torch.load(saved/'model.pt', weights_only=True)  # loads without pickle
    assert set(blob) == {'state_dict', 'classes_sha256', 'rows', 'ratings', 'valid'}

def test_tampered_weights(saved):
    data = bytearray((saved/'model.pt').read_bytes()); data[-100] ^= 0xFF
    (saved/'model.pt').write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match='does not match the sha256.*modified, truncated'): load(saved)

def test_truncated_weights(saved):
    (saved/'model.pt').write_bytes((saved/'model.pt').read_bytes()[:1000])
    with pytest.raises(ModelFileError, match='does not match the sha256'): load(saved)

def test_truncated_description(saved):
    (saved/'model.json').write_text((saved/'model.json').read_text()[:200])
    with pytest.raises(ModelFileError, match='not valid JSON.*truncated or edited'): load(saved)

def _edit(saved, **changes):
    meta = json.loads((saved/'model.json').read_text()); meta.update(changes)
    (saved/'model.json').write_text(json.dumps(meta))

def test_written_by_another_model_type(saved):
    _edit(saved, model_spec={'model': 'dot', 'n_factors': 50, 'y_range': [0, 5.5]})
    with pytest.raises(ModelFileError, match="do not fit a 'dot' model.*another model type"): load(saved)

def test_unknown_model_and_version(saved):
    _edit(saved, model_spec={'model': 'svd'})
    with pytest.raises(ModelFileError, match="names model 'svd'.*Known: dot"): load(saved)
    _edit(saved, version=99)
    with pytest.raises(ModelFileError, match='format version 99'): load(saved)
    _edit(saved, format='something')
    with pytest.raises(ModelFileError, match='not a movierecs model description'): load(saved)

def test_missing_files(saved, tmp_path):
    with pytest.raises(ModelFileError, match='No saved model.*model.json is missing'): load(tmp_path/'nothing')
    (saved/'model.pt').unlink()
    with pytest.raises(ModelFileError, match='model.pt is missing'): load(saved)

def test_vocabulary_that_does_not_belong(saved):
    meta = json.loads((saved/'model.json').read_text())
    meta['classes']['title'][0] = 'Another Movie (2001)'
    (saved/'model.json').write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match='vocabularies in .*model.json are not the ones'): load(saved)

def test_only_registry_learners_can_be_saved(learners, tmp_path):
    learn = learners['dot']
    plain = Learner(learn.dls, movierecs.DotProduct(944, 1665, 5), loss_func=MSELossFlat())
    with pytest.raises(ValueError, match=r'not built by a movierecs factory.*learn.export\(\)'): save(plain, tmp_path/'x')

def test_fastai_export_still_works(learners, tmp_path):
    learners['collab'].export(tmp_path/'export.pkl')
    assert (tmp_path/'export.pkl').stat().st_size > 0
