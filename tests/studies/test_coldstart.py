"How good fold-in is (`make foldin`): the held-out split, one run end to end on synthetic ratings, the committed table."
from pathlib import Path
import numpy as np, pandas as pd, pytest
import movierecs
from movierecs.studies.foldin import FOLDIN_RUNS, foldin_markdown, foldin_run, foldin_split
from movierecs.evaluation.rating import scores

ROOT = Path(__file__).resolve().parents[2]

def test_split_holds_out_whole_users_and_halves_them(synth):
    p = foldin_split(synth, frac=0.1, seed=42)
    allpos = np.concatenate(list(p.values()))
    assert len(allpos) == len(synth) == len(set(allpos.tolist()))  # a partition of the rows
    held = set(synth.user.iloc[np.concatenate([p['given'], p['hidden']])])
    assert len(held) == 10 and not held & set(synth.user.iloc[np.concatenate([p['train'], p['valid']])])
    g, h = (synth.iloc[p[k]].groupby('user').size() for k in ('given', 'hidden'))
    assert (g.index == h.index).all() and ((h - g) >= 0).all() and ((h - g) <= 1).all()
    assert abs(len(p['train']) / (len(p['train']) + len(p['valid'])) - 0.8) < 0.01
    again, other = foldin_split(synth, 0.1, 42), foldin_split(synth, 0.1, 43)
    assert all((again[k] == p[k]).all() for k in p) and not (other['given'].shape == p['given'].shape
                                                             and (other['given'] == p['given']).all())
    with pytest.raises(ValueError, match='frac must be between 0 and 1'): foldin_split(synth, 1.0)

@pytest.mark.parametrize('name', ['collab', 'collab_nn', 'mult_dae'])
def test_one_run_end_to_end(synth, name):
    "Folded-in users score near the trained-in ones and, on the planted tastes, far above the most popular list."
    parts = foldin_split(synth, 0.2, 42)
    r = foldin_run(name, synth, parts)
    assert r['users'] == 20 and (r['given'], r['hidden']) == (len(parts['given']), len(parts['hidden']))  # every movie is known here
    if r['task'] == 'rating':
        train, hidden = synth.iloc[parts['train']], synth.iloc[parts['hidden']]
        mean = scores(np.full(len(hidden), train.rating.mean()), hidden.rating)['rmse']  # 1.057 here
        # measured over splits 42, 0, 1: fold-in RMSE 0.29-0.33 (collab) and 0.09-0.20 (collab_nn) below the mean rating's;
        # folded in from one rating per user instead of the given half: 0.04 below to 0.26 above it
        assert r['rmse_foldin'] < r['rmse_trained'] + 0.1 and 0 < r['rmse_foldin'] < mean - 0.05, (r['rmse_foldin'], mean)
    # measured over splits 42, 0, 1, NDCG@10 fold-in minus popular: collab +0.11 to +0.26, collab_nn +0.05 to +0.17, mult_dae
    # +0.02 to +0.16 (on this split +0.11 to +0.26); scores given to the wrong titles (the title order reversed): below popular's
    assert r['ndcg_foldin'] > r['ndcg_popular'] + 0.05 and 0 < r['ndcg_trained'] <= 1, (r['ndcg_foldin'], r['ndcg_popular'])

def test_runs_are_the_recorded_settings():
    assert {n: FOLDIN_RUNS[n]['model'] for n in ('collab', 'tuned', 'mult_dae')} == {'collab': 'collab', 'tuned': 'ensemble',
                                                                                     'mult_dae': 'mult_dae'}
    assert FOLDIN_RUNS['collab']['wd'] == movierecs.EXPERIMENTS['collab'].wd

def test_committed_table_is_the_csv():
    "results/foldin.md's rows are what `foldin_markdown` writes from results/foldin.csv (both by `make foldin`)."
    df = pd.read_csv(ROOT/'results'/'foldin.csv', dtype={'penalty': str})
    md = (ROOT/'results'/'foldin.md').read_text().splitlines()
    rows = [l for l in foldin_markdown(df, dict(seed=42, packages=dict(fastai='', torch=''), cpu_count=0, wall_seconds=0)).splitlines()
            if l.startswith('| ') or l.startswith("Fold-in's RMSE")]
    assert rows and all(r in md for r in rows)
    assert set(df.run) == set(FOLDIN_RUNS)

