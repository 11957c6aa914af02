("The default loaders are built from the frame directly (`loaders.tensor_dataloaders`): "
 "fastai's rows, codes and vocabulary, without its TabularPandas.")
import pickle, random, tempfile

import numpy as np, pytest, torch
from fastai.tabular.core import TabDataLoader

import movierecs as m
from movierecs.engine.direct import CollabRows

def _both(r, **kw):
    "(direct, fastai's wrapped): `dataloaders` as it is, and with `dl_type` given, which keeps fastai's TabularPandas path."
    states = []
    out = []
    for extra in ({}, dict(dl_type=TabDataLoader)):
        torch.manual_seed(123)
        out.append(m.dataloaders(r, **kw, **extra))
        states.append(torch.get_rng_state())
    return (*out, states)

def _assert_same(a, b, states):
    assert isinstance(a.train.src, CollabRows) and not isinstance(b.train.src, CollabRows)  # the two paths really differ
    for da, db in ((a.train, b.train), (a.valid, b.valid)):
        assert torch.equal(da.x, db.x) and torch.equal(da.y, db.y)
        assert (da.bs, da.shuffle, da.drop_last) == (db.bs, db.shuffle, db.drop_last)
        assert list(da.items.index) == list(db.items.index)
        assert (da.items[da.cat_names].to_numpy('int64') == db.items[db.cat_names].to_numpy('int64')).all()
    for k in b.classes:  # the same ids, of the same types, in the same order
        assert [(v, type(v)) for v in a.classes[k]] == [(v, type(v)) for v in b.classes[k]]
        assert a.classes[k].o2i == b.classes[k].o2i
    assert torch.equal(*states)  # the global torch seeding of fastai's RandomSplitter too: a model built next starts the same

def _synth(**assign): return m.synthetic_ratings(40, 25, seed=1).assign(**assign)

FRAMES = {  # each a frame and dataloaders' arguments: text ids, ints of every width, half stars, ids seen only in validation
    'text users': (lambda: _synth(user=lambda d: 'u' + d.user.astype(str)), dict(bs=8)),
    'object ints': (lambda: _synth(movie=lambda d: d.movie.astype(object)), dict(bs=8, item_name='movie')),
    'wide ints': (lambda: _synth(user=lambda d: d.user * 10**6, movie=lambda d: d.movie * 10**11), dict(bs=8, item_name='movie')),
    'int8 ids, half stars': (lambda: _synth(movie=lambda d: d.movie.astype('int8'), rating=lambda d: d.rating / 2 + .25),
                             dict(bs=16, item_name='movie', seed=3)),
    'valid-only ids': (lambda: _synth(), dict(bs=8, item_name='movie', splits=(np.arange(0, 300), np.arange(300, 450)))),
}

@pytest.mark.parametrize('name', list(FRAMES))
def test_same_rows_codes_and_vocabulary_as_fastai(name):
    frame, kw = FRAMES[name]
    r = frame()
    _assert_same(*_both(r, **kw))

@pytest.mark.parametrize('item_name', ['title', 'movie'])
def test_ml100k_same_as_fastai(ratings, item_name):
    _assert_same(*_both(ratings, item_name=item_name))

def test_valid_only_ids_are_coded_na():
    r = _synth()
    train, valid = np.flatnonzero(r.movie != 3), np.flatnonzero(r.movie == 3)
    dls = m.dataloaders(r, bs=8, item_name='movie', splits=(train, valid))
    assert 3 not in list(dls.classes['movie']) and (dls.valid.x[:, 1] == 0).all()

@pytest.mark.parametrize('col,dtype', [('user', 'category'), ('movie', 'float64'), ('movie', 'uint32'), ('movie', 'Int64')])
def test_other_dtypes_take_fastais_path(col, dtype):
    r = _synth(**{col: lambda d: d[col].astype(dtype)})
    dls = m.dataloaders(r, bs=8, item_name='movie')
    assert isinstance(dls.train.src, TabDataLoader)

def _shared(dls): return dls.train.src.build

def test_training_saving_and_analysis_never_build_fastais_loaders(ratings):
    learn = m.train_model('dot_bias', epochs=1, ratings=ratings, progress=False)
    learn.get_preds(); m.recommend(learn, 196); m.biases(learn); m.similar_movies(learn, 'Star Wars (1977)')
    with tempfile.TemporaryDirectory() as d:
        m.save(learn, d); again = m.load(d)
        m.recommend(again, 196)
    assert _shared(learn.dls)['dls'] is None and _shared(again.dls)['dls'] is None

def test_fastais_loader_on_demand_leaves_the_rngs_alone():
    dls = m.dataloaders(_synth(user=lambda d: 'u' + d.user.astype(str)), bs=8)
    torch.manual_seed(5); random.seed(5)
    t, p = torch.get_rng_state(), random.getstate()
    ds = dls.train.dataset  # fastai's alone: built now
    assert _shared(dls)['dls'] is not None and len(ds) == len(dls.train.x)
    assert list(dls.train.fastai_loader().items.index) == list(dls.train.items.index)
    assert torch.equal(t, torch.get_rng_state()) and p == random.getstate()
    b = pickle.loads(pickle.dumps(dls.train.src))  # learn.export pickles it
    assert list(b.classes['title']) == list(dls.classes['title'])

def test_later_changes_to_the_frame_do_not_reach_the_loaders():
    r = _synth(user=lambda d: 'u' + d.user.astype(str))
    dls = m.dataloaders(r, bs=8)
    ratings, users = r.rating.copy(), r.user.copy()
    r.loc[:, 'rating'] = 1; r['user'] = 'someone'; r.drop(index=r.index[:5], inplace=True)  # edits in place, after the build
    it = dls.train.items
    assert (it.rating == ratings.loc[it.index]).all() and (dls.train.y.reshape(-1).numpy() == it.rating.to_numpy('float32')).all()
    assert list(dls.train.fastai_loader().items.index) == list(it.index)  # fastai's loader, built now, from the rows as they were
    assert sorted(dls.classes['user'][1:]) == sorted(set(users))

@pytest.mark.parametrize('extra', [{}, dict(dl_type=TabDataLoader)])
def test_test_dl_predicts_every_row(extra):
    # fastai's inference idiom on the fast loaders: a frame of ids (with or without ratings), unknown ids coded '#na#'
    r = _synth(user=lambda d: 'u' + d.user.astype(str))
    learn = m.get_learner('dot_bias', m.dataloaders(r, bs=8, **extra))
    rows = r.iloc[:7]
    preds, targs = learn.get_preds(dl=learn.dls.test_dl(rows))
    assert preds.shape == (7, 1) and torch.equal(targs.reshape(-1), torch.tensor(rows.rating.to_numpy('float32')))
    with torch.no_grad():
        codes = torch.tensor([[learn.dls.classes['user'].o2i[u], learn.dls.classes['title'].o2i[t]] for u, t in zip(rows.user, rows.title)])
        assert torch.allclose(preds, learn.model(codes))
    preds, targs = learn.get_preds(dl=learn.dls.test_dl(rows[['user', 'title']].assign(user=['nobody'] + list(rows.user[1:]))))
    assert preds.shape == (7, 1) and targs is None
    assert learn.dls.test_dl(rows[['user', 'title']].assign(user='nobody')).x[:, 0].eq(0).all()
    with pytest.raises(ValueError, match=r"lack column\(s\) \['title'\]"): learn.dls.test_dl(rows[['user']])

def test_bs_check_counts_the_training_rows_as_the_split_does():
    r = _synth().iloc[:10]
    assert len(m.dataloaders(r, bs=8, valid_pct=0.25, item_name='movie').train.x) == 8  # 10 - int(2.5)
    with pytest.raises(m.DataError, match='fewer than bs=9'): m.dataloaders(r, bs=9, valid_pct=0.25, item_name='movie')

def test_only_fastais_own_names_build_its_loaders(synth):
    ("A name fastai's loader lacks is an AttributeError with nothing built; "
     "each name of FASTAI_LOADER_ATTRS is one stock fastai's loader has.")
    from fastai.collab import CollabDataLoaders
    from fastai.tabular.core import TabDataLoader
    from movierecs.engine.fastai_glue import FASTAI_LOADER_ATTRS
    dls = m.dataloaders(synth, seed=0)
    for dl in (dls.train, dls.valid):
        assert not hasattr(dl, 'no_such_attribute') and not hasattr(dl.src, 'shwo_batch')
    assert dls.train.src.build['dls'] is None  # nothing asked for fastai's loaders yet
    assert dls.train.dataset is not None and dls.train.src.build['dls'] is not None  # `dataset` is fastai's: built now
    stock = CollabDataLoaders.from_df(synth, item_name='title', dl_type=TabDataLoader, seed=0)
    missing = sorted(k for k in FASTAI_LOADER_ATTRS if not any(hasattr(dl, k) for dl in stock.loaders))
    assert not missing, missing
