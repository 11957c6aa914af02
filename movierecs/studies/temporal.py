"""`make temporal`: the rating and top-N tables again, on a global split in time beside a random split of the same sizes:
results/temporal.{md,csv}."""
import argparse, json, statistics, time
from pathlib import Path
import numpy as np, pandas as pd
from ..core.files import write_atomic
from ..data.movielens import load_ratings
from ..data.temporal import time_split
from ..evaluation.rating import evaluate, record, split_frames
from ..evaluation.topn import carve_out, evaluate_topn
from ..engine.feedback import RELEVANT
from ..train.runs import RANKERS
from .reproduce import cpu_label, environment
__all__ = ['QUANTILE', 'RATING_RUNS', 'TOPN_METHODS', 'GRIDS', 'SEEDS', 'splits', 'choose', 'temporal_table', 'temporal_markdown']

QUANTILE = 0.8  # the cut: 80% of the ratings are before it, as the canonical splits hold 80% in the base file

RATING_RUNS = ('dot_bias_wd', 'collab', 'svdpp')  # the notebook's weight-decayed runs and SVD++ (the user's 0.85 bar)

TOPN_METHODS = ('popular', 'recent_popular', 'itemknn', 'ease', 'mult_dae')

GRIDS = {  # chosen on a carve-out of each split's training rows: in time, the ratings before a second cut inside them
    'ease': [dict(lam=l) for l in (50, 100, 200, 500, 1000, 2000)],
    'itemknn': [dict(k=k) for k in (20, 50, 100, 200)],
    'recent_popular': [dict(days=d) for d in (7, 14, 28, 56, 112)],
}

SEEDS = (42, 43, 44, 45, 46)  # the trained models' seeds

def splits(ratings, seed=42) -> dict:
    ("{'time': the global split at `QUANTILE`, 'random': as many training rows drawn at random, and as many test rows drawn "
     "from the others (of users and movies in training)} of `ratings`.")
    t = time_split(ratings, QUANTILE)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(ratings))
    train, rest = ratings.iloc[np.sort(perm[:len(t[0])])], ratings.iloc[np.sort(perm[len(t[0]):])]
    rest = rest[rest.user.isin(train.user) & rest.movie.isin(train.movie)]
    test = rest.iloc[np.sort(rng.permutation(len(rest))[:len(t[1])])]
    return {'time': t, 'random': (train.reset_index(drop=True), test.reset_index(drop=True))}

def _carve(name, train, seed=42):
    "The carve-out of a split's training rows that settings are chosen on: in time for 'time', random for 'random'."
    return tuple(time_split(train, QUANTILE)) if name == 'time' else carve_out(train, 0.2, seed)

def choose(name, train, seed=42) -> dict:
    "{method: the parameters of `GRIDS` with the best NDCG@10 on the carve-out of the split `name`'s training rows}."
    held = _carve(name, train, seed)
    out = {}
    for m, grid in GRIDS.items():
        rows = [evaluate_topn(m, held, ks=(10,), seed=seed, **_at(m, held[0], name), **p)[0]['ndcg'] for p in grid]
        out[m] = grid[int(np.argmax(rows))]
    return out

def _at(method, train, name):
    "Recent popularity on the time split: the window ends at the cut (the latest training rating) for everyone."
    return dict(at=int(train.timestamp.max())) if method == 'recent_popular' and name == 'time' else {}

def _movie_mean(base, test):
    "Each test row's movie's mean training rating (the global mean for a movie without one): the baseline every model must beat."
    m = base.groupby('movie').rating.mean()
    return test.movie.map(m).fillna(base.rating.mean()).to_numpy()

def _task(t):
    import torch
    kind, name, method, seed, split, params = t
    torch.set_num_threads(1)
    start = time.perf_counter()
    if kind == 'rating':
        r = record('movie mean', split, seed, _movie_mean(*split), *split, 0.) if method == 'movie mean' else evaluate(method, split, seed)
        return [{**r, 'kind': kind, 'split': name, 'method': method, 'seconds': round(time.perf_counter() - start, 1)}]
    res = evaluate_topn(method, split, ks=(10, 20), seed=seed, **_at(method, split[0], name), **params)
    return [{**r, 'kind': kind, 'split': name, 'method': method, 'params': json.dumps(params),
             'seconds': round(time.perf_counter() - start, 1)} for r in res]

def temporal_table(ratings=None, seeds=SEEDS, workers=2, log=print) -> tuple:
    "(rows, the splits' descriptions): every run of the two tables on both splits."
    from concurrent.futures import ProcessPoolExecutor
    ratings = load_ratings() if ratings is None else ratings
    sp = splits(ratings, seeds[0])
    info = {n: (s.describe() if hasattr(s, 'describe') else f'train {len(s[0]):,} rows; test {len(s[1]):,} rows (seeded random draws)')
            for n, s in sp.items()}
    tasks = []
    for name, split in sp.items():
        split = tuple(split_frames(tuple(split)))
        chosen = choose(name, split[0], seeds[0])
        log(f'{name}: {info[name]}; chosen on its carve-out: {chosen}')
        tasks += [('rating', name, 'movie mean', seeds[0], split, {})]
        tasks += [('rating', name, m, s, split, {}) for m in RATING_RUNS for s in seeds]
        tasks += [('topn', name, m, s, split, chosen.get(m, {})) for m in TOPN_METHODS for s in (seeds if m in RANKERS else seeds[:1])]
    rows = []
    with ProcessPoolExecutor(workers) as pool:
        for t, res in zip(tasks, pool.map(_task, tasks)):
            rows += res
            r = res[0]
            log(f"{t[1]:6} {t[2]:15} seed {t[3]}  " + (f"RMSE {r['rmse']:.4f}" if t[0] == 'rating' else f"NDCG@10 {r['ndcg']:.4f}"))
    return pd.DataFrame(rows), info

def _cell(v, f='{:.4f}'): return (f.format(statistics.mean(v)) + (f' ± {statistics.stdev(v):.4f}' if len(v) > 1 else '')) if len(v) else ''

def temporal_markdown(df, info, env) -> str:
    "The tables of results/temporal.md."
    md = ['# In time: the tables on a global split in time, beside a random split', '',
          f"Regenerated by `make temporal` — do not edit. fastai {env['packages']['fastai']}, torch {env['packages']['torch']}, "
          f"{cpu_label(env)}, runs two at a time, one thread each, {env['wall_seconds'] / 60:.0f} minutes.", '',
          f"**Splits.** *time*: every rating before the cut (the {QUANTILE:.0%} quantile of u.data's timestamps) trains; the test is "
          "every later rating of a user and a movie seen before the cut (the rest is dropped and counted). *random*: as many "
          "training rows drawn at random from u.data, and as many test rows drawn from the others. Movie ids are the items. "
          "The settings of EASE^R, item-kNN and "
          "recent popularity are chosen on a carve-out of each split's training rows (in time: a second cut inside them; random: 20% "
          "at random), never on the test. The rating runs keep the notebook's settings. Trained models: mean ± sd over seeds "
          f"{', '.join(map(str, sorted(df.seed.unique())))}.", '']
    md += [f"- **{n}**: {d}" for n, d in info.items()] + ['']
    r = df[df.kind == 'rating']
    md += ['## Rating models: RMSE on the test rows', '', '| method | random | time | time − random |', '|---|---:|---:|---:|']
    for m, g in r.groupby('method', sort=False):
        a, b = g[g.split == 'random'].rmse.tolist(), g[g.split == 'time'].rmse.tolist()
        md.append(f"| {m} | {_cell(a)} | {_cell(b)} | {statistics.mean(b) - statistics.mean(a):+.4f} |")
    t = df[df.kind == 'topn']
    for k in (10, 20):
        d = t[t.k == k]
        md += ['', f'## Top-N at k = {k}: NDCG@{k} and recall@{k} (relevant: a test rating ≥ {RELEVANT}; every unrated movie ranked)', '',
               '| method | NDCG random | NDCG time | recall random | recall time | settings (time) |', '|---|---:|---:|---:|---:|---|']
        for m, g in d.groupby('method', sort=False):
            a, b = g[g.split == 'random'], g[g.split == 'time']
            md.append(f"| {m} | {_cell(a.ndcg.tolist())} | {_cell(b.ndcg.tolist())} | {_cell(a.recall.tolist())} | "
                      f"{_cell(b.recall.tolist())} | {b.params.iloc[0] if len(b) and b.params.iloc[0] != '{}' else ''} |")
    ten = t[t.k == 10].groupby(['split', 'method']).ndcg.mean()
    order = {s: ten[s].sort_values(ascending=False).index.tolist() for s in ('random', 'time') if s in ten}
    if len(order) == 2:
        md += ['', f"**Order by NDCG@10.** random: {' > '.join(order['random'])}; time: {' > '.join(order['time'])}."
               + (' The order changes with the split.' if order['random'] != order['time'] else ' The same order on both.')]
    users = t[t.k == 10].groupby('split').users.first().astype(int)
    md += ['', 'Users scored: ' + ', '.join(f'{s} {n:,}' for s, n in users.items()) + '.', '']
    return '\n'.join(md)

def main(argv=None):
    p = argparse.ArgumentParser(prog='python -m movierecs.studies.temporal', description=__doc__.split(': ', 1)[1].replace('\n', ' '))
    p.add_argument('--seeds', type=int, default=len(SEEDS), help='how many of the seeds 42, 43, ... (default: 5)')
    p.add_argument('--out', default='results')
    a = p.parse_args(argv)
    start = time.perf_counter()
    df, info = temporal_table(seeds=SEEDS[:a.seeds])
    env = {**environment(42), 'wall_seconds': round(time.perf_counter() - start, 1)}
    out = Path(a.out)
    write_atomic({out/'temporal.csv': df.to_csv(index=False, float_format='%.6f'), out/'temporal.md': temporal_markdown(df, info, env)})
    print(f'Wrote {out}/temporal.md and .csv in {(time.perf_counter() - start) / 60:.0f} minutes.')

if __name__ == '__main__': main()
