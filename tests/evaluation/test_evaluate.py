"The canonical splits, `evaluate`, the peers and `make benchmark`'s tables."
import shutil, sys

import numpy as np, pandas as pd, pytest
import movierecs
from movierecs import DataError, SPLITS, load_split
from movierecs.evaluation.rating import evaluate, predict, scores, split_ratings, unseen
from movierecs.studies.benchmark import benchmark, benchmark_markdown
from movierecs.studies.reproduce import environment

@pytest.fixture(scope='module')
def pair(synth):
    "A (base, test) pair from the synthetic ratings whose test rows hold one unseen user and one unseen movie."
    test = synth.sample(frac=0.2, random_state=0)
    base = synth.drop(test.index)
    new_user = base[base.user == base.user.max()].head(2).assign(user=999)
    new_movie = base[base.movie == 1].head(3).assign(movie=999, title='Movie 999 (1990)')
    return base.reset_index(drop=True), pd.concat([test, new_user, new_movie], ignore_index=True)

@pytest.mark.realdata
@pytest.mark.parametrize('split', SPLITS)
def test_canonical_splits(split, ratings):
    base, test = load_split(split)
    assert list(base.columns) == list(test.columns) == list(ratings.columns)
    assert len(base) + len(test) == 100_000 and len(test) == (9_430 if split in ('ua', 'ub') else 20_000)
    assert base.title.notna().all() and test.title.notna().all()
    # the files' rows, in the files' order, are ratings of u.data
    both = pd.concat([base, test]).sort_values(['user', 'movie']).reset_index(drop=True)
    assert both.equals(ratings.sort_values(['user', 'movie']).reset_index(drop=True))

def test_bad_split_names_the_valid_ones():
    with pytest.raises(DataError, match="Unknown split 'u6'. Valid splits: u1, u2, u3, u4, u5, ua, ub"): load_split('u6')

@pytest.mark.realdata
def test_split_files_are_verified(ratings, tmp_path):
    d = tmp_path/'ml-100k'; d.mkdir()
    for f in ('u.item', 'u1.base', 'u1.test'): shutil.copy(movierecs.data_source()/f, d/f)
    with open(d/'u1.test', 'ab') as f: f.write(b'1\t1\t5\t874965758\n')
    with pytest.raises(DataError, match=r'u1\.test has the wrong checksum'): load_split('u1', path=d)
    (d/'u1.base').unlink()
    with pytest.raises(DataError, match=r'u1\.base is missing'): load_split('u1', path=d)
    shutil.copy(movierecs.data_source()/'u1.base', d/'u1.base')
    (d/'u1.test').write_bytes((movierecs.data_source()/'u1.test').read_bytes() + b'1\t1\tx\t1\n')
    with pytest.raises(DataError, match=r'u1\.test is malformed at line 20001'): load_split('u1', path=d, verify=False)

def test_scores_clip_to_the_rating_range():
    s = scores([0.0, 6.0, 3.5], [1, 5, 3])
    assert s['rmse'] == pytest.approx(np.sqrt(0.25/3)) and s['mae'] == pytest.approx(0.5/3)

def test_unseen_rows_are_counted_and_given_the_base_mean(pair, seed):
    base, test = pair
    assert unseen(base, test).sum() == 5
    r = evaluate('dot_bias_wd', (base, test), seed=seed)
    assert (r['n_test'], r['unseen_rows'], r['unseen_user_rows'], r['unseen_movie_rows']) == (len(test), 5, 2, 3)
    mean = scores(np.full(len(test), base.rating.mean()), test.rating)['rmse']  # 1.033 here
    # measured, 5 epochs over 3 draws of the pair x seeds 42, 0, 1: RMSE 0.66-0.76, 0.27-0.33 below the mean rating's (2 epochs: 0.00-0.05)
    assert 0 < r['rmse'] < mean - 0.15 and 0 < r['mae'] < r['rmse'] and r['fit_seconds'] > 0, (r['rmse'], mean)
    learn = movierecs.train_model('dot_bias', epochs=1, seed=seed, ratings=split_ratings(base, test)[0],
                                  splits=split_ratings(base, test)[1], progress=False)
    p = predict(learn, base, test)
    assert len(p) == len(test) and np.allclose(p[-5:], base.rating.mean()) and not np.allclose(p[:-5], base.rating.mean())

def test_evaluate_is_seeded(pair, seed):
    a, b = (evaluate('collab', pair, seed=seed, epochs=1) for _ in range(2))
    assert a['rmse'] == b['rmse'] and evaluate('collab', pair, seed=seed+1, epochs=1)['rmse'] != a['rmse']

def test_evaluate_rejects_unknown_names(pair):
    with pytest.raises(ValueError, match='Unknown experiment'): evaluate('svd', pair)

def test_peers_say_how_to_install_surprise(pair, monkeypatch):
    from movierecs.evaluation.peers import peer_predict
    monkeypatch.setitem(sys.modules, 'surprise', None)  # as if not installed
    with pytest.raises(ImportError, match=r"pip install 'movierecs\[bench\]'"): peer_predict('SVD', *pair)
    with pytest.raises(ValueError, match='Valid peers: BaselineOnly, SVD, SVDpp'): peer_predict('KNN', *pair)

def test_peers_on_the_same_rows(pair, seed):
    pytest.importorskip('surprise')
    from movierecs.evaluation.peers import evaluate_peer
    base, test = pair
    mean = scores(np.full(len(test), base.rating.mean()), test.rating)['rmse']  # 1.033 here
    for name in ('BaselineOnly', 'SVD'):
        r = evaluate_peer(name, pair, seed=seed)
        assert r['method'] == f'surprise.{name}' and r['n_test'] == len(pair[1]) and r['unseen_rows'] == 5
        # measured over 3 draws of the pair x seeds 42, 0, 1: BaselineOnly 0.126-0.138 below the mean rating's RMSE, SVD 0.15-0.19
        assert 0 < r['rmse'] < mean - 0.07, (name, r['rmse'], mean)

@pytest.mark.slow
@pytest.mark.realdata
def test_benchmark_tables(ratings, seed):
    df = benchmark(['collab'], splits=('u1', 'notebook'), peers=[], seed=seed)
    assert df.split.tolist() == ['u1', 'notebook'] and (df.method == 'collab').all()
    u1 = df.set_index('split').rmse['u1']
    assert 0.88 < u1 < 0.93, u1  # the issue measured 0.913 for 5 epochs of collab on u1
    md = benchmark_markdown(df, environment(seed))
    assert f'| collab | {u1:.4f} |' in md and 'GLocal-K reports 0.8889' in md and "## The notebook's split" in md

def test_tuned_is_the_best_row_of_the_tuning_table():
    "`make tune` wrote results/tuning.csv on a carve-out of u1.base; the `tuned` experiment is its best row."
    from pathlib import Path
    best = pd.read_csv(Path(__file__).parents[2]/'results'/'tuning.csv').iloc[0]
    e = movierecs.EXPERIMENTS['tuned']
    assert (e.model, e.wd, e.epochs, e.lr, e.kwargs['n_factors']) == (best.model, best.wd, best.epochs, best.lr, best.n_factors)
