"Answers from a saved model with numpy alone: the same lists and numbers as the `Learner`, for every registry model."
import subprocess, sys
import numpy as np, pandas as pd, pytest
import movierecs
from movierecs import save, train_model
from movierecs.recommendation import light
from movierecs.recommendation.light import NoLightForm, read_light

TOL = 2e-5  # float32 sums in another order (numpy's against torch's): measured differences are below 2e-6

FOLDABLE = {'dot', 'dot_raw', 'dot_bias', 'dot_bias_params', 'collab', 'autorec', 'mult_dae'}  # closed-form fold-in, or a row

@pytest.fixture(scope='module')
def saved(synth, seed, tmp_path_factory):
    "{model: (learner, folder)}: every registry model trained an epoch on synthetic ratings and saved."
    out = {}
    for name in movierecs.list_models():
        learn = train_model(name, epochs=2, wd=None if movierecs.trains_by_lbfgs(name) else 0.1, seed=seed, ratings=synth, progress=False)
        out[name] = learn, save(learn, tmp_path_factory.mktemp(name))
    return out

def _same(a:pd.Series, b:pd.Series):
    assert a.index.name == b.index.name and a.name == b.name
    assert list(a.index) == list(b.index), (list(a.index), list(b.index))
    np.testing.assert_allclose(a.to_numpy(np.float64), b.to_numpy(np.float64), atol=TOL, rtol=0)

@pytest.mark.parametrize('name', movierecs.list_models())
def test_every_model_answers_as_its_learner(name, saved):
    learn, folder = saved[name]
    if name == 'glocal_k':
        with pytest.raises(NoLightForm, match='no numpy form'): read_light(folder)
        return
    m = read_light(folder)
    if name == 'sasrec':  # what comes after a history of titles; a user of the data's list needs the Learner (their window)
        longer = [f'Movie {i} (1990)' for i in range(1, 56)]  # past max_len (50): the newest 50 are read
        for history in (['Movie 3 (1990)'], ['Movie 9 (1990)', 'Movie 3 (1990)', 'Movie 7 (1990)'], longer):
            want, got = movierecs.recommend_next(learn, history, n=20), movierecs.recommend_next(m, history, n=20)
            assert got.title.tolist() == want.title.tolist(), history
            np.testing.assert_allclose(got.score, want.score, atol=TOL, rtol=0)
        with pytest.raises(NoLightForm, match="needs the model's Learner"): light.recommend(m, 1)
    for user in (1, '7', 60) if name != 'sasrec' else ():
        _same(light.recommend(m, user, n=20), movierecs.recommend(learn, user, n=20))
    title = 'Movie 3 (1990)'
    try: want = movierecs.similar_movies(learn, title, n=10)
    except TypeError: want = None
    if want is not None: _same(light.similar_movies(m, title, n=10), want)
    try: want = movierecs.biases(learn, n=10), movierecs.biases(learn, n=10, lowest=False)
    except TypeError as e:
        with pytest.raises(TypeError, match='no movie bias'): light.biases(m)
        assert 'bias' in str(e)
    else:
        _same(light.biases(m, n=10), want[0]); _same(light.biases(m, n=10, lowest=False), want[1])

@pytest.mark.parametrize('edit', ['a block missing', 'an array of a block missing', 'a block more', 'positions fewer', 'positions more',
                                  'items fewer', 'items more', 'a bias short', 'a norm of one'])
def test_sasrec_weights_that_do_not_fit_are_refused(saved, monkeypatch, edit):
    "Arrays that `load` refuses (missing, extra, another shape) are refused by the numpy form too: never an answer from them."
    import movierecs.recommendation.light as lt
    folder, real = saved['sasrec'][1], lt.read_model
    def tampered(path):
        meta, a = real(path)
        a = dict(a)
        if edit == 'a block missing': a = {k: v for k, v in a.items() if not k.startswith('state/blocks.1.')}
        if edit == 'an array of a block missing': del a['state/blocks.1.qkv.weight']
        if edit == 'a block more': a.update({k.replace('blocks.1.', 'blocks.2.'): v for k, v in a.items() if 'blocks.1.' in k})
        if edit == 'positions fewer': a['state/pos.weight'] = a['state/pos.weight'][:3]
        if edit == 'positions more': a['state/pos.weight'] = np.concatenate([a['state/pos.weight']] * 2)
        if edit == 'items fewer': a['state/items.weight'] = a['state/items.weight'][:-5]
        if edit == 'items more': a['state/items.weight'] = np.concatenate([a['state/items.weight'], a['state/items.weight'][:5]])
        if edit == 'a bias short': a['state/blocks.0.qkv.bias'] = a['state/blocks.0.qkv.bias'][:1]
        if edit == 'a norm of one': a['state/norm.weight'] = a['state/norm.weight'][:1]
        return meta, a
    monkeypatch.setattr(lt, 'read_model', tampered)
    with pytest.raises(movierecs.ModelFileError, match="do not fit a 'sasrec' model .*(is missing|has shape|is not an array)"):
        read_light(folder)

@pytest.mark.parametrize('name', movierecs.list_models())
def test_fold_in_answers_as_its_learner(name, saved):
    learn, folder = saved[name]
    if name in ('glocal_k', 'sasrec'): return  # no numpy form; no fold-in (test_foldin.py), or a history in order (test_sequential.py)
    m, rates = read_light(folder), {'Movie 3 (1990)': 5, 'Movie 7 (1990)': 4, 'Movie 9 (1990)': 1}
    if name not in FOLDABLE:
        with pytest.raises(NoLightForm, match='needs the model.s Learner'): light.recommend_for(m, rates)
        return
    want, got = movierecs.recommend_for(learn, rates, n=15), light.recommend_for(m, rates, n=15)
    assert list(got.columns) == list(want.columns) and list(got.iloc[:, 0]) == list(want.iloc[:, 0])
    assert list(got.because) == list(want.because)
    np.testing.assert_allclose(got.iloc[:, 1].to_numpy(np.float64), want.iloc[:, 1].to_numpy(np.float64), atol=1e-4, rtol=0)

@pytest.mark.parametrize('rule', light.FOLDIN_RULES)
def test_fold_in_prior_is_the_learners(saved, rule):
    "The penalty and centre of each user tensor, from the gradient written out, equal the ones autograd gives."
    for name in ('collab', 'dot', 'autorec'):
        learn, folder = saved[name]
        m = read_light(folder)
        got, want = light.foldin_prior(m.form, *m.train_rows(), rule=rule), movierecs.foldin_prior(learn, rule)['']
        assert got.keys() == want.keys()
        for k in got:
            assert got[k][0] == pytest.approx(want[k][0], rel=1e-4), (name, k)
            np.testing.assert_allclose(got[k][1], want[k][1], atol=1e-6)
            assert (not got[k][1].any()) == (rule == 'zero')

def test_bad_questions_get_the_learners_errors(saved):
    m = read_light(saved['collab'][1])
    with pytest.raises(KeyError, match='Did you mean'): light.similar_movies(m, 'Movie 3 (199)')
    with pytest.raises(KeyError, match='not in the training data'): light.recommend(m, 100000)
    with pytest.raises(ValueError, match='stars must be numbers from 1 to 5'): light.recommend_for(m, {'Movie 3 (1990)': 6})
    with pytest.raises(ValueError, match='ratings is empty'): light.recommend_for(m, {})
    with pytest.raises(ValueError, match='n must be'): light.biases(m, n=0)

def test_answering_from_a_saved_model_imports_neither_torch_nor_fastai(saved):
    folder = saved['mult_dae'][1]
    code = (f"import sys, movierecs\nfrom movierecs.recommendation import light\nm = light.read_light({str(folder)!r})\n"
            "light.recommend(m, 1); light.similar_movies(m, 'Movie 3 (1990)'); light.recommend_for(m, {'Movie 3 (1990)': 5})\n"
            f"movierecs.recommend_next(light.read_light({str(saved['sasrec'][1])!r}), ['Movie 3 (1990)', 'Movie 9 (1990)'])\n"
            "heavy = [k for k in ('torch', 'fastai', 'torchvision', 'matplotlib', 'IPython') if k in sys.modules]\n"
            "assert not heavy, heavy\nprint('ok')")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout == 'ok\n' and r.stderr == '', r.stderr
