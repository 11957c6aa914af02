"`make next` on a file written in ML-1M's format (the real ML-1M cannot be downloaded here), and its settings tied to make tune-next."
import pandas as pd
import movierecs
from movierecs.studies import nextitem as study

def _ml1m(folder, r):
    "`r` (user, movie, rating, timestamp, title) written as ML-1M's ratings.dat and movies.dat ('::'-separated, latin-1)."
    folder.mkdir(parents=True)
    (folder/'ratings.dat').write_text(''.join(f'{u}::{m}::{s}::{t}\n' for u, m, s, t in r[['user', 'movie', 'rating', 'timestamp']]
                                              .itertuples(index=False)), encoding='latin-1')
    movies = r.drop_duplicates('movie').sort_values('movie')
    (folder/'movies.dat').write_text(''.join(f'{m}::{t}::Drama\n' for m, t in movies[['movie', 'title']].itertuples(index=False)),
                                     encoding='latin-1')

def test_next_on_the_ml1m_format(cyc, tmp_path, monkeypatch):
    r = cyc.assign(title=cyc.title + ' (1990)')
    _ml1m(tmp_path/'ml-1m', r)
    monkeypatch.setenv(movierecs.ENV_VAR, str(tmp_path))  # a folder holding the release
    monkeypatch.setattr(study, 'SEEDS', (42,))
    monkeypatch.setattr(study, 'NEXT_RUNS', {'sasrec': movierecs.RankingRun('sasrec', epochs=20, lr=3e-3, wd=0.01,
                                                                            kwargs=dict(n_factors=16, max_len=20))})
    monkeypatch.setattr(study, 'RANKERS', {})
    study.main(['--data', 'ml-1m', '--out', str(tmp_path/'out'), '--seeds', '1', '--no-verify'])
    df = pd.read_csv(tmp_path/'out'/'next_item_ml-1m.csv')
    assert set(df.method) == {'popular', 'recent_popular', 'markov', 'ease', 'sasrec'} and set(df.k) == {10, 20}
    assert (df.users == r.user.nunique()).all() and (df.data == 'ml-1m').all()
    ten = df[df.k == 10].set_index('method')
    assert ten.hit_rate['markov'] == 1 and ten.hit_rate['sasrec'] > ten.hit_rate['popular']  # the planted sequence
    md = (tmp_path/'out'/'next_item_ml-1m.md').read_text()
    assert '## ml-1m' in md and '| sasrec |' in md and 'SASRec (movierecs) NDCG@10' in md

def test_the_settings_are_the_carve_outs_best():
    "NEXT_SETTINGS and NEXT_RUNS hold the best rows of results/next_tuning.csv (make tune-next), never a test-set choice."
    t = pd.read_csv('results/next_tuning.csv')
    best = t[t.chosen].set_index('method').params
    for m, p in study.NEXT_SETTINGS.items():
        if m in best: assert best[m] == repr(p), m
    run = movierecs.NEXT_RUNS['sasrec']
    import ast, re
    chosen = ast.literal_eval(best['sasrec'])  # epochs, lr and (when tuned) windows
    assert (chosen.pop('epochs'), chosen.pop('lr')) == (run.epochs, run.lr)
    md = open('results/next_tuning.md').read()
    fixed = ast.literal_eval(re.search(r"SASRec's fixed settings: `(\{.*?\})`", md)[1])
    assert {**fixed, **chosen} == run.kwargs and f'weight decay {run.wd:g}' in md

def test_temporal_tables_on_a_small_frame(monkeypatch):
    "`make temporal`'s code on synthetic ratings: both splits, every method, the markdown's tables; the time split's test is later."
    from movierecs.studies import temporal
    r = movierecs.synthetic_ratings(120, 50, seed=1)
    sp = temporal.splits(r)
    assert sp['time'][0].timestamp.max() < sp['time'][1].timestamp.min() and len(sp['random'][1]) <= len(sp['time'][1])
    assert len(sp['random'][0]) == len(sp['time'][0])  # as many training rows
    monkeypatch.setattr(temporal, 'RATING_RUNS', ('dot_bias_wd',))
    monkeypatch.setattr(temporal, 'TOPN_METHODS', ('popular', 'recent_popular', 'ease'))
    df, info = temporal.temporal_table(r, seeds=(42, 43), workers=1, log=lambda *a: None)
    assert set(df.split) == {'time', 'random'} and set(df.method) == {'movie mean', 'dot_bias_wd', 'popular', 'recent_popular', 'ease'}
    assert len(df[(df.method == 'dot_bias_wd') & (df.split == 'time')]) == 2  # a trained model at each seed
    md = temporal.temporal_markdown(df, info, {'packages': {'fastai': 'x', 'torch': 'y'}, 'wall_seconds': 60})
    assert '## Rating models: RMSE on the test rows' in md and '| ease |' in md and '**Order by NDCG@10.**' in md

def test_the_peer_runs_a_few_seeds_at_a_time_and_keeps_the_others(cyc, tmp_path, monkeypatch):
    """`make next-peer --seed-list`: the listed seeds' rows are written or replaced, the other seeds' rows are kept, and every
    run times movierecs' SASRec beside the peer (a stand-in for RecTools, whose venv CI does not build, returns popular lists)."""
    import pytest
    r = cyc.assign(title=cyc.title + ' (1990)')
    _ml1m(tmp_path/'ml-1m', r)
    monkeypatch.setenv(movierecs.ENV_VAR, str(tmp_path))
    calls = []
    def peer(train, seed, **kw):
        calls.append(seed)
        return study.ListTopN(pd.DataFrame({'user': [], 'title': [], 'rank': []})).fit(train, 'title'), \
            dict(seconds_per_epoch=seed / 100, fit_seconds=seed, epochs=1, threads=1, settings={'seed': seed})
    monkeypatch.setattr(study, 'run_peer', peer)
    monkeypatch.setattr(study, '_epoch_seconds', lambda ratings: 0.5)
    out, args = tmp_path/'out', ['--peer', '--data', 'ml-1m', '--out', str(tmp_path/'out'), '--no-verify']
    study.main([*args, '--seed-list', '42,43'])
    study.main([*args, '--seed-list', '43,44'])
    assert calls == [42, 43, 43, 44]
    rows, timing = pd.read_csv(out/'next_peer.csv'), pd.read_csv(out/'next_peer_timing.csv')
    assert sorted(rows.seed.unique()) == [42, 43, 44] and len(rows) == 3 * rows.k.nunique() and (rows.method == study.PEER).all()
    peer_t = timing[timing.model == study.PEER]
    assert sorted(peer_t.seed) == [42, 43, 44] and (timing.model == 'movierecs sasrec').sum() == 2  # one a run, side by side
    for bad in ('42,x', '42,42', '-1'):
        with pytest.raises(SystemExit): study.main([*args, '--seed-list', bad])
    with pytest.raises(SystemExit): study.main(['--data', 'ml-1m', '--seed-list', '42'])  # only with --peer
