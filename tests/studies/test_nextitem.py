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

def _stand_in_peer(monkeypatch, calls):
    "RecTools' SASRec needs its own venv, which CI does not build: a stand-in that returns empty lists and a timing."
    def peer(train, seed, extra=(), **kw):
        calls.append((seed, tuple(map(str, extra))))
        return study.ListTopN(pd.DataFrame({'user': [], 'title': [], 'rank': []})).fit(train, 'title'), \
            dict(seconds_per_epoch=seed / 10, fit_seconds=seed, epochs=1, threads=1, settings={'seed': seed})
    monkeypatch.setattr(study, 'run_peer', peer)

def test_the_peer_runs_a_few_seeds_at_a_time_and_keeps_the_others(cyc, tmp_path, monkeypatch):
    """`make next-peer SEED_LIST=...`: the listed seeds' rows are written or replaced, the other seeds' rows are kept; then
    `make next-timing` times both in turns and `make next-render` puts the peer's rows and the timing in the table."""
    import json, pytest
    r = cyc.assign(title=cyc.title + ' (1990)')
    _ml1m(tmp_path/'ml-1m', r)
    monkeypatch.setenv(movierecs.ENV_VAR, str(tmp_path))
    calls = []
    _stand_in_peer(monkeypatch, calls)
    out, args = tmp_path/'out', ['--data', 'ml-1m', '--out', str(tmp_path/'out'), '--no-verify']
    with pytest.raises(SystemExit): study.main([*args, '--render'])  # nothing to render yet
    study.main([*args, '--peer', '--seed-list', '42,43'])
    study.main([*args, '--peer', '--seed-list', '43,44'])
    assert [c[0] for c in calls] == [42, 43, 43, 44]
    rows = pd.read_csv(out/'next_peer.csv')
    assert sorted(rows.seed.unique()) == [42, 43, 44] and len(rows) == 3 * rows.k.nunique() and (rows.method == study.PEER).all()
    for bad in ('42,x', '42,42', '-1'):
        with pytest.raises(SystemExit): study.main([*args, '--peer', '--seed-list', bad])
    with pytest.raises(SystemExit): study.main([*args, '--seed-list', '42'])  # only with --peer
    monkeypatch.setattr(study, 'NEXT_RUNS', {'sasrec': movierecs.RankingRun('sasrec', epochs=2, lr=3e-3, wd=0.01,
                                                                            kwargs=dict(n_factors=8, max_len=10))})
    monkeypatch.setattr(study, 'SEEDS', (42,)); monkeypatch.setattr(study, 'RANKERS', {})
    calls.clear()
    study.main([*args, '--timing'])
    t = pd.read_csv(out/'next_timing.csv')
    assert t.model.tolist() == ['movierecs sasrec', study.PEER] * 2 and (t.threads == 1).all()  # in turns, one thread each
    assert [c[1] for c in calls] == [('--epochs', '3', '--threads', '1', '--quiet')] * 2
    study.main([*args, '--seeds', '1'])  # make next: its rows, the peer's, the timing
    md, table = (out/'next_item_ml-1m.md').read_text(), pd.read_csv(out/'next_item_ml-1m.csv')
    assert f'| {study.PEER} |' in md and 'Time per epoch, side by side' in md and set(table.method) >= {study.PEER, 'sasrec'}
    assert json.loads((out/'next_item_ml-1m.json').read_text())['wall_seconds'] > 0
    rows.assign(ndcg=0.5).to_csv(out/'next_peer.csv', index=False)  # the peer's rows change (e.g. more seeds): render again
    study.main([*args, '--render'])
    again = pd.read_csv(out/'next_item_ml-1m.csv')
    assert (again[again.method == study.PEER].ndcg == 0.5).all() and len(again) == len(table)
    assert again[again.method != study.PEER].equals(table[table.method != study.PEER])  # our rows untouched
