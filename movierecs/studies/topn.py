"`make topn`: every top-N method on ML-100k's canonical splits and on Microsoft Recommenders' protocol: results/topn.{md,csv}."
import argparse, statistics, time
from pathlib import Path
import pandas as pd
from ..models.baselines import BASELINES
from ..data.ml100k import SPLITS, load_split
from ..data.movielens import load_ratings, stratified_split
from ..core.files import write_atomic
from ..evaluation.topn import KS, evaluate_topn, tune_topn
from .reproduce import cpu_label
__all__ = ['TUNE_GRIDS', 'RUNS', 'MSR', 'MSR_PUBLISHED', 'topn_methods', 'topn_benchmark', 'seed_spread', 'topn_markdown']

MSR = 'msr'  # Microsoft Recommenders' protocol: u.data stratified 75/25 by movie, seed 42, every test rating relevant, k 10

TUNE_GRIDS = {  # the closed-form baselines' parameter, chosen per split on a carve-out of its base file
    'ease': [dict(lam=l) for l in (50, 100, 200, 300, 500, 800, 1000, 1500, 2000)],
    'itemknn': [dict(k=k) for k in (10, 20, 50, 100, 200, None)],
}

# the methods of the table beyond the baselines: name -> (method for `fit_topn`, parameters). The tuned settings were chosen
# on a carve-out of u1.base by `make tune-topn` (results/topn_tuning.md); a test holds these to its best rows.
RUNS = {
    'implicit.als': ('implicit.als', {}),
    'implicit.als tuned': ('implicit.als', dict(factors=128, regularization=50.0, alpha=10.0, iterations=15)),
    'implicit.bpr': ('implicit.bpr', {}),
    'implicit.bpr tuned': ('implicit.bpr', dict(factors=128, learning_rate=0.01, regularization=0.01, iterations=100)),
    'collab': ('collab', {}),  # the notebook's fastai collab_learner run (MSE on ratings), ranked by predicted rating
}

# Microsoft Recommenders' published ML-100k table (examples/06_benchmarks/movielens.ipynb, the run of 2022-10-19, commit
# f193adc0): their split (`python_stratified_split(ratio=0.75, filter_by='item', seed=42)`), k 10, every test rating
# relevant, seen items removed; MAP divided by the number of relevant items.
MSR_PUBLISHED = pd.DataFrame([
    ('als', 0.004697, 0.046619, 0.049629, 0.016688), ('svd', 0.012873, 0.095930, 0.091198, 0.032783),
    ('sar', 0.113028, 0.388321, 0.333828, 0.183179), ('ncf', 0.108609, 0.398754, 0.349735, 0.181576),
    ('fastai', 0.025896, 0.151481, 0.131813, 0.054491), ('bpr', 0.132478, 0.441997, 0.388229, 0.212522),
    ('bivae', 0.146126, 0.475077, 0.411771, 0.219145), ('lightgcn', 0.121633, 0.417629, 0.360976, 0.196052),
], columns=['method', 'map_msr', 'ndcg', 'precision', 'recall'])

def topn_methods(implicit=None):
    "The table's methods: the baselines, implicit's (when installed), the notebook's collab run and the ranking runs."
    from ..train.runs import RANKERS
    if implicit is None:
        try: import implicit as _  # noqa: F401
        except ImportError: implicit = False
        else: implicit = True
    runs = {k: v for k, v in RUNS.items() if implicit or not k.startswith('implicit.')}
    return [*BASELINES, *runs, *RANKERS]

def _fit_args(method):
    if method in RUNS: return RUNS[method]
    return (method, {})

def topn_benchmark(methods=None, # Names from `topn_methods()`; default: all
                   splits=SPLITS + (MSR,), # Canonical splits, and 'msr' for Microsoft Recommenders' protocol
                   seed=42, # Seeds every method
                   log=print # Where progress lines go
                  ) -> pd.DataFrame:
    "One row per (method, split, k): precision, recall, ndcg, map, mrr, hit_rate, coverage, popularity, users, fit_seconds."
    methods = topn_methods() if methods is None else list(methods)
    rows = []
    for split in splits:
        if split == MSR: (base, test), ks, threshold = stratified_split(load_ratings()), (10,), None
        else: (base, test), ks, threshold = load_split(split), KS, 4
        for m in methods:
            method, params = _fit_args(m)
            chosen = ''
            if method in TUNE_GRIDS:
                best, _ = tune_topn(method, TUNE_GRIDS[method], base, seed=seed, threshold=threshold)
                params, chosen = {**params, **best}, ', '.join(f'{k}={v}' for k, v in best.items())
            start = time.perf_counter()
            res = evaluate_topn(method, (base, test), ks=ks, threshold=threshold, seed=seed, **params)
            for r in res: rows.append({**r, 'method': m, 'split': split, 'params': chosen})
            log(f"{split:4} {m:20} NDCG@10 {res[0]['ndcg']:.4f}  fit {res[0]['fit_seconds']:.1f} s  "
                f"({time.perf_counter() - start:.0f} s){'  ' + chosen if chosen else ''}")
    return pd.DataFrame(rows)

def seed_spread(methods=None, # Names from `topn_methods()`; default: the fastai ranking runs
                split='u1', # The split to repeat them on
                seeds=(42, 43, 44, 45, 46), # Seeds of the repeats
                log=print
               ) -> pd.DataFrame:
    "NDCG@10 and the rest of each method on `split` at every seed: the spread the regression bars come from."
    from ..train.runs import RANKERS
    methods = list(RANKERS) if methods is None else list(methods)
    base, test = load_split(split)
    rows = []
    for m in methods:
        method, params = _fit_args(m)
        for seed in seeds:
            rows.append({**evaluate_topn(method, (base, test), ks=(10,), seed=seed, **params)[0],
                         'method': m, 'split': split, 'params': ''})
            log(f"{split:4} {m:20} seed {seed}  NDCG@10 {rows[-1]['ndcg']:.4f}")
    return pd.DataFrame(rows)

def _mean_sd(v): return f'{statistics.mean(v):.3f} ± {statistics.stdev(v):.3f}' if len(v) > 1 else f'{v[0]:.3f}'

def topn_markdown(df:pd.DataFrame, env:dict, seeds:pd.DataFrame=None) -> str:
    "The tables of results/topn.md."
    folds = [s for s in SPLITS[:5] if s in set(df.split)]
    others = [s for s in ('ua', 'ub') if s in set(df.split)]
    md = ['# Top-N recommendations on ML-100k: movierecs, its baselines and peers on the same rows', '',
          f"Regenerated by `make topn` — do not edit. Seed {env['seed']}, fastai {env['packages']['fastai']}, "
          f"torch {env['packages']['torch']}, {env.get('implicit') or 'implicit not installed'}, "
          f"{cpu_label(env)}, {env['cpu_count']} CPUs, "
          f"{env['threads']} thread(s) per method, "
          f"{env['wall_seconds'] / 60:.0f} minutes.", '',
          '**Protocol.** Each method is fitted on the base file. For every test user with at least one relevant test movie '
          '(test rating >= 4), every movie the user did not rate in the base file is ranked — no sampled negatives; a movie '
          'absent from the base file is scored by no method and never recommended. '
          'Items are movie ids (titles merge 18 pairs of distinct movies). Metrics are '
          'averaged over those users: precision, recall, NDCG (binary gains), MAP (÷ min(relevant, k)), MRR, hit rate; '
          'coverage is the share of the catalogue recommended to anyone; popularity the mean number of base-file ratings of '
          'what is recommended. EASE^R\'s λ and item-kNN\'s k are chosen per split on a seeded 20% carve-out of its base '
          'file, never on the test file; the other settings once, on a carve-out of u1.base (results/topn_tuning.md).', '']
    for k in sorted(set(df.k)):
        d = df[(df.k == k) & df.split.isin(folds + others)]
        if d.empty: continue
        head = ['method', *folds, *(['u1–u5 mean ± sd'] if len(folds) > 1 else []), *others, 'fit s (mean)']
        md += [f'## k = {k}: NDCG@{k} per split', '', '| ' + ' | '.join(head) + ' |', '|---|' + '---:|' * (len(head) - 1)]
        for method, g in d.groupby('method', sort=False):
            v = g.set_index('split').ndcg
            cells = [f'{v[s]:.3f}' if s in v else '' for s in folds]
            if len(folds) > 1: cells.append(_mean_sd([v[s] for s in folds if s in v]))
            cells += [f'{v[s]:.3f}' if s in v else '' for s in others]
            md.append(f"| {method} | {' | '.join(cells)} | {g.fit_seconds.mean():.1f} |")
        md += ['', f"## k = {k}: every metric, mean over {'u1–u5' if len(folds) == 5 else ', '.join(folds)}", '',
               '| method | precision | recall | ndcg | map | mrr | hit_rate | coverage | popularity |',
               '|---|' + '---:|' * 8]
        f = d[d.split.isin(folds)]
        for method, g in f.groupby('method', sort=False):
            md.append(f'| {method} | ' + ' | '.join(f'{g[c].mean():.3f}' if c != 'popularity' else f'{g[c].mean():.0f}'
                                                   for c in ('precision', 'recall', 'ndcg', 'map', 'mrr', 'hit_rate',
                                                             'coverage', 'popularity')) + ' |')
        md.append('')
    ten = df[(df.k == 10) & df.split.isin(folds)].groupby('method', sort=False).ndcg.mean()
    if len(ten) and 'ease' in ten:
        rankers = [m for m in ten.index if m not in BASELINES and m not in RUNS]
        if rankers:
            best = max(rankers, key=lambda m: ten[m])
            gap = ten[best] - ten['ease']
            md += ['## The best movierecs model against EASE^R', '',
                   f"NDCG@10, mean over u1–u5: **{best} {ten[best]:.3f}**, EASE^R {ten['ease']:.3f}: "
                   + (f'{best} is ahead by {gap:.3f}.' if gap >= 0 else f'{best} is behind by {-gap:.3f}.'), '']
    if seeds is not None and len(seeds):
        md += [f'## Seed spread on {seeds.split.iloc[0]}', '',
               f"Each fastai ranking run repeated at seeds {', '.join(map(str, seeds.seed.unique()))} (initialisation and "
               'shuffles); the slow tests hold each run to its mean − 3 sd here.', '',
               '| method | NDCG@10 per seed | mean ± sd | P@10 mean | R@10 mean |', '|---|---|---:|---:|---:|']
        for method, g in seeds.groupby('method', sort=False):
            md.append(f"| {method} | {' '.join(f'{v:.4f}' for v in g.ndcg)} | {statistics.mean(g.ndcg):.4f} ± "
                      f"{statistics.stdev(g.ndcg):.4f} | {g.precision.mean():.3f} | {g.recall.mean():.3f} |")
        md.append('')
    msr = df[df.split == MSR]
    if len(msr):
        d = msr.iloc[0]
        md += ["## Microsoft Recommenders' protocol", '',
               "u.data split 75/25 stratified by movie (their `python_stratified_split(ratio=0.75, filter_by='item', "
               f"seed=42)`, reimplemented), k = 10, every test rating relevant ({d.users} users), seen movies removed; "
               'MAP as they compute it (÷ the number of relevant movies). The published rows are copied from their '
               '`examples/06_benchmarks/movielens.ipynb` (run of 2022-10-19): their numbers, their code, not rerun here.', '',
               '| method | MAP | nDCG@10 | Precision@10 | Recall@10 | source |', '|---|---:|---:|---:|---:|---|']
        md += [f'| {r.method} | {r.map_msr:.3f} | {r.ndcg:.3f} | {r.precision:.3f} | {r.recall:.3f} | measured here |'
               for r in msr.itertuples()]
        md += [f'| {r.method} | {r.map_msr:.3f} | {r.ndcg:.3f} | {r.precision:.3f} | {r.recall:.3f} | published |'
               for r in MSR_PUBLISHED.sort_values('ndcg', ascending=False).itertuples()]
        md.append('')
    chosen = df[(df.params != '') & (df.k == df.k.min())][['method', 'split', 'params']]
    if len(chosen):
        md += ['## Parameters chosen on the carve-outs', '', '| method | ' + ' | '.join(chosen.split.unique()) + ' |',
               '|---|' + '---|' * chosen.split.nunique()]
        for method, g in chosen.groupby('method', sort=False):
            p = g.set_index('split').params
            md.append(f'| {method} | ' + ' | '.join(p.get(s, '') for s in chosen.split.unique()) + ' |')
        md.append('')
    return '\n'.join(md)

def main(argv=None):
    p = argparse.ArgumentParser(prog='python -m movierecs.topn', description=__doc__.split(': ', 1)[1])
    p.add_argument('methods', nargs='*', help='methods (default: all of topn_methods())')
    p.add_argument('--splits', nargs='+', default=list(SPLITS) + [MSR], choices=list(SPLITS) + [MSR])
    p.add_argument('--seed', type=int, default=42)
    p.add_argument('--out', default='results', help='folder for topn.md, topn.csv and topn_seeds.csv (default: results)')
    p.add_argument('--seeds', type=int, default=5, help="repeats of each fastai ranking run on u1 at seeds 42, 43, ... (default: 5)")
    a = p.parse_args(argv)
    valid = topn_methods()
    bad = [m for m in a.methods if m not in valid]
    if bad: p.error(f"unknown method(s) {', '.join(bad)}; valid: {', '.join(valid)}")
    from .reproduce import environment
    start = time.perf_counter()
    df = topn_benchmark(a.methods or None, splits=tuple(a.splits), seed=a.seed)
    from ..train.runs import RANKERS
    rankers = [m for m in (a.methods or RANKERS) if m in RANKERS]  # only the fastai ranking runs asked for
    seeds = seed_spread(rankers, seeds=tuple(range(a.seed, a.seed + a.seeds))) if a.seeds > 1 and rankers else None
    env = environment(a.seed)
    try: import implicit; env['implicit'] = f'implicit {implicit.__version__}'
    except ImportError: env['implicit'] = None
    env['wall_seconds'] = round(time.perf_counter() - start, 1)
    import torch; env['threads'] = torch.get_num_threads()
    out = Path(a.out)
    cols = ['method', 'split', 'k', 'precision', 'recall', 'ndcg', 'map', 'mrr', 'hit_rate', 'coverage', 'popularity',
            'map_msr', 'users', 'skipped_users', 'threshold', 'seed', 'fit_seconds', 'params']
    files = {out/'topn.csv': df[cols].to_csv(index=False, float_format='%.6f'), out/'topn.md': topn_markdown(df, env, seeds)}
    if seeds is not None: files[out/'topn_seeds.csv'] = seeds[cols].to_csv(index=False, float_format='%.6f')
    write_atomic(files)
    print(f"Wrote {', '.join(str(f) for f in files)} in {env['wall_seconds']:.0f} s.")

if __name__ == '__main__': main()
