"fastai's `TabWeightedDL` resamples with replacement; every movierecs training path must visit each row once per epoch."
import random
import pytest, torch
from fastai.collab import CollabDataLoaders
from fastai.tabular.core import TabWeightedDL
import movierecs
from movierecs import DataError, dataloaders, shuffle_stats, check_dls

def _assert_permutation(s):
    full = s['rows'] // s['bs'] * s['bs']  # fastai drops the last partial batch when shuffling
    assert s['drop_last'] and s['per_epoch'] == [full, full]
    assert s['excess'] == [0, 0], 'some rows were visited more often than stored: sampling with replacement'
    assert not s['same_order'], 'the same order twice: not reshuffled each epoch'

@pytest.mark.parametrize('fast', [True, False])
def test_true_permutation_synthetic(synth, fast):
    _assert_permutation(shuffle_stats(dataloaders(synth, bs=16, fast=fast).train))

@pytest.mark.realdata
@pytest.mark.parametrize('fast', [True, False])
def test_true_permutation_ml100k(ratings, fast):
    _assert_permutation(shuffle_stats(dataloaders(ratings, fast=fast).train))

def test_fastai_default_resamples_and_the_check_sees_it(synth):
    "The bug this project guards against, still in fastai: the check above fails on fastai's default loader."
    dls = CollabDataLoaders.from_df(synth, item_name='title', bs=16, seed=0)
    assert type(dls.train) is TabWeightedDL
    s = shuffle_stats(dls.train)
    assert s['excess'][0] > 0.2 * s['rows']  # ≈ 37% of the visits are repeats
    with pytest.raises(AssertionError): _assert_permutation(s)

def test_fastai_default_refused(synth):
    dls = CollabDataLoaders.from_df(synth, item_name='title', bs=16, seed=0)
    with pytest.raises(DataError, match='TabWeightedDL.*with replacement.*dl_type=TabDataLoader'): check_dls(dls)
    with pytest.raises(DataError, match='TabWeightedDL'): dataloaders(synth, bs=16, dl_type=TabWeightedDL)
    for name in movierecs.list_models():
        with pytest.raises(DataError, match='TabWeightedDL'): movierecs.get_learner(name, dls)

def test_weighted_sampling_on_purpose_is_allowed(synth):
    "Non-uniform weights are a deliberate choice, not the bug: `check_dls` lets them through."
    n_train = len(synth) - int(0.2*len(synth))
    w = [2. if i % 2 else 1. for i in range(n_train)]
    dls = CollabDataLoaders.from_df(synth, item_name='title', bs=16, seed=0, dl_kwargs=[{'wgts': w}, {}])
    assert check_dls(dls) is dls
    assert type(dataloaders(synth, bs=16, fast=False, dl_type=TabWeightedDL, dl_kwargs=[{'wgts': w}, {}]).train) is TabWeightedDL
    with pytest.raises(DataError, match='uniform permutation.*fast=False'):  # the fast path would drop the weights
        dataloaders(synth, bs=16, dl_type=TabWeightedDL, dl_kwargs=[{'wgts': w}, {}])

@pytest.mark.parametrize('fast', [True, False])
def test_seed_fixes_the_shuffles(synth, fast):
    "`dataloaders(seed=...)` seeds the training order itself, whatever the global random state."
    random.seed(1); torch.manual_seed(1); a = dataloaders(synth, bs=16, seed=3, fast=fast).train.one_batch()
    random.seed(2); torch.manual_seed(2); b = dataloaders(synth, bs=16, seed=3, fast=fast).train.one_batch()
    c = dataloaders(synth, bs=16, seed=4, fast=fast).train.one_batch()
    assert all(torch.equal(x, y) for x, y in zip(a, b)) and not torch.equal(a[0], c[0])
