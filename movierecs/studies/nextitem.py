"""`make next`: what each method names as the next movie, leave-one-out in time, full ranking: results/next_item.{md,csv}.
`make next-peer`: RecTools' SASRec on the very same rows, in its own venv (hours): results/next_peer.csv, which `make next` reads.
`make next-timing`: an epoch of each, in turns on the same rows: results/next_timing.csv, which `make next` reads too."""
import argparse, json, statistics, subprocess, tempfile, time
from pathlib import Path
import numpy as np, pandas as pd
from ..core.files import write_atomic
from ..data.movielens import load_ratings
from ..data.temporal import time_order
from ..evaluation.nextitem import ListTopN, evaluate_next, next_split
from ..evaluation.topn import KS
from ..train.runs import NEXT_RUNS, RANKERS
from .reproduce import cpu_label, environment
__all__ = ['NEXT_SETTINGS', 'SEEDS', 'PEER', 'PEER_VENV', 'next_item_table', 'peer_rows', 'run_peer', 'next_markdown']

# the baselines' settings, chosen on the carve-out in time by `make tune-next` (results/next_tuning.md); a test ties them to it
NEXT_SETTINGS = {'popular': {}, 'recent_popular': dict(days=28), 'markov': {}, 'ease': dict(lam=100)}

SEEDS = (42, 43, 44, 45, 46)  # the trained models' seeds: the table gives their mean ± sd

PEER = 'rectools.sasrec'  # the established library's SASRec: RecTools 0.19, its published settings (benchmarks/peers/rectools_sasrec.py)

PEER_VENV = Path('.venv-rectools')  # its own venv (`bash benchmarks/peers/setup_rectools.sh`): it cannot share .venv

def peer_rows(train:pd.DataFrame, # The training histories of `next_split`
              item_name='title', seed=42 # As in `next_split`
             ) -> pd.DataFrame:
    ("The rows handed to the peer: user, item, order, where `order` ranks every rating by (time, user, the tie rule of "
     "`time_order`), so each user's history comes out in exactly our order.")
    pos = np.empty(len(train), 'int64')
    by_user = time_order(train, seed, item_name)
    pos[by_user] = np.arange(len(train))  # each row's place in (user, time, tie) order
    order = np.lexsort((pos, train.timestamp.to_numpy()))  # then by time across users: a user's rows keep their relative order
    rank = np.empty(len(train), 'int64'); rank[order] = np.arange(len(train))
    return pd.DataFrame({'user': train.user.to_numpy(), 'item': train[item_name].to_numpy(), 'order': rank})

def run_peer(train:pd.DataFrame, seed=42, item_name='title', k=100, python=None, log=print,
             extra=() # More arguments of the peer's script, e.g. ('--epochs', '3', '--threads', '1')
            ) -> tuple:
    "RecTools' SASRec trained on `train` in its own venv: (its lists as a fitted `ListTopN`, its timing dict)."
    python = Path(python or PEER_VENV/'bin'/'python')
    if not python.exists(): raise FileNotFoundError(f"{python} is missing: run `bash benchmarks/peers/setup_rectools.sh` first.")
    script = Path(__file__).resolve().parents[2]/'benchmarks'/'peers'/'rectools_sasrec.py'
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        peer_rows(train, item_name, seed).to_csv(d/'train.csv', index=False)
        subprocess.run([str(python), str(script), '--train', str(d/'train.csv'), '--out', str(d/'top.csv'), '--seed', str(seed),
                        '--k', str(k), '--timing', str(d/'timing.json'), *map(str, extra)], check=True)
        lists = pd.read_csv(d/'top.csv', dtype={'item': train[item_name].dtype}).rename(columns={'item': item_name})
        timing = json.loads((d/'timing.json').read_text())
    log(f"{PEER} seed {seed}: {timing['seconds_per_epoch']:.2f} s an epoch, {timing['fit_seconds']:.0f} s in all")
    return ListTopN(lists).fit(train, item_name), timing

def _evaluate(task):
    "One (method, seed) of the table, in a worker process of one thread: two at once on two cores give the same numbers."
    import torch
    m, seed, split, ks, data = task
    torch.set_num_threads(1)
    start = time.perf_counter()
    res = evaluate_next(m, split, ks=ks, seed=seed, **NEXT_SETTINGS.get(m, {}))
    return [{**r, 'data': data, 'seed': seed, 'seconds': round(time.perf_counter() - start, 1),
             'params': json.dumps(NEXT_SETTINGS.get(m, {}))} for r in res]

def next_item_table(ratings:pd.DataFrame, # Ratings with timestamps, e.g. `load_ratings()`
                    seeds=SEEDS, # Seeds of the trained models
                    methods=None, # Names to run (default: the baselines, mult_dae and sasrec)
                    ks=KS, data='ml-100k',
                    workers=2, # Processes at once, one thread each
                    log=print) -> pd.DataFrame:
    "One row per (method, seed, k) on `next_split(ratings)`: every method ranks every movie a user has not rated."
    from concurrent.futures import ProcessPoolExecutor
    split = next_split(ratings)
    log(f'{data}: {split.describe()}')
    methods = methods or [*NEXT_SETTINGS, *RANKERS, *NEXT_RUNS]
    tasks = [(m, seed, tuple(split), ks, data) for m in methods for seed in (seeds if m in RANKERS or m in NEXT_RUNS else seeds[:1])]
    rows = []
    with ProcessPoolExecutor(workers) as pool:
        for (m, seed, *_), res in zip(tasks, pool.map(_evaluate, tasks)):
            rows += res
            log(f"{data} {m:15} seed {seed}  NDCG@10 {res[0]['ndcg']:.4f}  HR@10 {res[0]['hit_rate']:.4f}  ({res[0]['seconds']:.0f} s)")
    return pd.DataFrame(rows)

def _cell(v): return f'{statistics.mean(v):.4f} ± {statistics.stdev(v):.4f}' if len(v) > 1 else f'{v[0]:.4f}'

def next_markdown(df:pd.DataFrame, env:dict, epochs:pd.DataFrame=None) -> str:
    "The tables of results/next_item.md."
    md = ['# What comes next: leave-one-out in time, full ranking', '',
          f"Regenerated by `make next` — do not edit. fastai {env['packages']['fastai']}, torch {env['packages']['torch']}, "
          f"{cpu_label(env)}, {env['threads']} thread(s), {env['wall_seconds'] / 60:.0f} minutes.", '',
          "**Protocol.** Each user's ratings are put in time order (ties in the same second broken by a seeded rank of the movie, "
          "`time_order`); the last one is the test item, the rest is the training history (`next_split`). Every method is fitted "
          "on the histories alone and ranks every movie the user has not rated (no sampled negatives); the metrics score where the "
          "test movie lands: HR@k (is it in the top k), NDCG@k (1/log2(rank + 1) when it is), MRR. A user whose test title is "
          "already in their history (titles merge 18 pairs of movies) cannot be scored and is counted. The settings were chosen "
          "on each user's second-to-last rating (results/next_tuning.md), never on the last. Trained models: mean ± sd over seeds "
          f"{', '.join(map(str, sorted(df.seed.unique())))}.", '']
    for data, d in df.groupby('data', sort=False):
        u = d.iloc[0]
        md += [f'## {data}', '', f"{u.users:,} users scored, {u.skipped_users} skipped.", '',
               '| method | NDCG@10 | HR@10 | NDCG@20 | HR@20 | MRR@20 | seeds | fit s (mean) |', '|---|---:|---:|---:|---:|---:|---:|---:|']
        for method, g in d.groupby('method', sort=False):
            t, w = g[g.k == 10], g[g.k == 20]
            md.append(f"| {method} | {_cell(t.ndcg.tolist())} | {_cell(t.hit_rate.tolist())} | {_cell(w.ndcg.tolist())} | "
                      f"{_cell(w.hit_rate.tolist())} | {_cell(w.mrr.tolist())} | {len(t)} | {t.fit_seconds.mean():.0f} |")
        ten = d[d.k == 10].groupby('method', sort=False).ndcg
        if 'sasrec' in ten.groups:
            mean, sd = ten.mean(), ten.std()
            others = [m for m in mean.index if m != 'sasrec']
            best = max(others, key=lambda m: mean[m])
            md += ['', f"**SASRec (movierecs) NDCG@10 {mean['sasrec']:.4f}**; the best other method, {best}, {mean[best]:.4f}: "
                   + (f"ahead by {mean['sasrec'] - mean[best]:.4f}" if mean['sasrec'] > mean[best] else
                      f"behind by {mean[best] - mean['sasrec']:.4f}") + f" (SASRec's seed sd {sd['sasrec']:.4f})."]
            hr = d[d.k == 20].groupby('method', sort=False).hit_rate.mean()
            md.append(f"At k = 20, HR@20: SASRec {hr['sasrec']:.4f}, the best other method {hr.drop('sasrec').idxmax()} "
                      f"{hr.drop('sasrec').max():.4f}.")
            if PEER not in mean:
                md.append(f"{PEER} (RecTools' SASRec, its published settings) has not been run on these rows: `make next-peer` "
                          "(about an hour a seed here) writes results/next_peer.csv, which this table then includes.")
            if PEER in mean:
                gap, n = mean['sasrec'] - mean[PEER], ten.count()
                missing = sorted(set(d[d.method == 'sasrec'].seed) - set(d[d.method == PEER].seed))
                if n[PEER] < 2 or missing:
                    which = f"seed {missing[0]} is" if len(missing) == 1 else f"seeds {', '.join(map(str, missing))} are"
                    md.append(f"Against {PEER}: {gap:+.4f} at its {n[PEER]} seed(s) so far; {which} to come "
                              f"(`make next-peer SEED_LIST={','.join(map(str, missing))}`, then `make next-render`): "
                              "the comparison with the two seed spreads waits for them.")
                else:
                    spread = sd['sasrec'] + sd[PEER]
                    md.append(f"Against {PEER}: {gap:+.4f}, the two seed spreads (sd) summing to {spread:.4f}: "
                              + ('more than the spreads.' if gap > spread else 'within them, or behind.'))
        md.append('')
    if epochs is not None and len(epochs):
        md += ['## Time per epoch, side by side (`make next-timing`: in turns, one thread each, on these rows)', '',
               '| model | settings | s per epoch (mean) | epochs a turn | turns | threads |', '|---|---|---:|---:|---:|---:|']
        md += [f"| {r.model} | `{r.settings}` | {r.seconds_per_epoch:.2f} | {r.epochs} | {r.rounds} | {r.threads} |"
               for r in epochs.itertuples()]
        if len(epochs) == 2: md.append(f"\n{epochs.model[1]} / {epochs.model[0]}: "
                                       f"**{epochs.seconds_per_epoch[1] / epochs.seconds_per_epoch[0]:.1f}×** the time an epoch.")
        md.append('')
    return '\n'.join(md)

def _epoch_seconds(train, epochs=3, seed=42) -> float:
    "Seconds per training epoch of movierecs' SASRec run on the histories `train` (its LossTable's times)."
    from ..train.experiments import train_model
    r = NEXT_RUNS['sasrec']
    learn = train_model('sasrec', epochs=epochs, lr=r.lr, wd=r.wd, seed=seed, ratings=train, splits=(np.arange(len(train)), []),
                        progress=False, **r.kwargs)
    return float(np.mean(learn.loss_table.seconds))

def time_side_by_side(train:pd.DataFrame, # The histories of `next_split`
                      epochs=3, rounds=2, # Epochs a turn, turns each
                      python=None, log=print) -> pd.DataFrame:
    ("Seconds per epoch of movierecs' SASRec run and the peer's, in turns (ours, the peer's, ours, ...), one thread each, "
     "on the same rows: the machine's drift falls on both.")
    import torch
    threads, rows = torch.get_num_threads(), []
    torch.set_num_threads(1)
    try:
        for turn in range(rounds):
            rows.append(dict(model='movierecs sasrec', round=turn, settings=json.dumps(NEXT_RUNS['sasrec'].kwargs),
                             epochs=epochs, seconds_per_epoch=_epoch_seconds(train, epochs), threads=1))
            _, t = run_peer(train, 42, python=python, log=log, extra=('--epochs', epochs, '--threads', 1, '--quiet'))
            rows.append(dict(model=PEER, round=turn, settings=json.dumps(t.get('settings', {})), epochs=epochs,
                             seconds_per_epoch=t['seconds_per_epoch'], threads=t['threads']))
            log(f"round {turn}: movierecs {rows[-2]['seconds_per_epoch']:.2f} s, {PEER} {rows[-1]['seconds_per_epoch']:.2f} s an epoch")
    finally: torch.set_num_threads(threads)
    return pd.DataFrame(rows)

def _seed_list(p, text):
    "'44,45' -> (44, 45), or the parser's error naming the problem."
    try: seeds = tuple(int(t) for t in text.split(','))
    except ValueError: p.error(f"--seed-list takes seeds separated by commas, e.g. '44,45', got {text!r}")
    if len(set(seeds)) != len(seeds) or any(s < 0 for s in seeds): p.error(f"--seed-list needs distinct seeds >= 0, got {text!r}")
    return seeds

def _kept(path:Path, data, seeds=None) -> list:
    "The rows of a results file that this run does not replace: other data, or (given `seeds`) other seeds."
    if not path.is_file(): return []
    d = pd.read_csv(path)
    return d[(d.data != data) | (False if seeds is None else ~d.seed.isin(seeds))].to_dict('records')

def main(argv=None):
    p = argparse.ArgumentParser(prog='python -m movierecs.studies.nextitem', description=__doc__.split(': ', 1)[1].split('\n')[0])
    p.add_argument('--data', default='ml-100k', help="a release name ('ml-100k', 'ml-1m') or an ml-100k folder")
    p.add_argument('--peer', action='store_true', help=f'run {PEER} (its own venv) at every seed: results/next_peer.csv')
    p.add_argument('--seeds', type=int, default=len(SEEDS), help='how many of the seeds 42, 43, ... (default: 5)')
    p.add_argument('--timing', action='store_true', help=f"time an epoch of movierecs' SASRec and of {PEER} in turns, one thread "
                                                         "each, on make next's rows: results/next_timing.csv (run it alone)")
    p.add_argument('--render', action='store_true', help="write next_item.md again from the CSVs (after the peer's seeds or the "
                                                         "timing), training nothing")
    p.add_argument('--seed-list', help="with --peer: these seeds only, e.g. '44,45,46'; rows of the other seeds already in "
                                        "results/next_peer.csv are kept (the peer's seeds can be run an hour at a time)")
    p.add_argument('--out', default='results')
    p.add_argument('--no-verify', action='store_true', help="load the release without checking its md5 and README counts (a sample)")
    a = p.parse_args(argv)
    import torch
    start, out = time.perf_counter(), Path(a.out)
    seeds = SEEDS[:a.seeds] if a.seed_list is None else _seed_list(p, a.seed_list)
    if a.seed_list is not None and not a.peer: p.error('--seed-list is for --peer: the table runs every seed of --seeds')
    name = 'next_item' if a.data == 'ml-100k' else f'next_item_{a.data}'
    if a.render:  # the tables again from the CSVs: the peer's seeds and the timing may have come after `make next`
        if not (out/f'{name}.csv').is_file() or not (out/f'{name}.json').is_file():
            p.error(f"--render needs {out}/{name}.csv and .json: run `make next` first")
        df, env = pd.read_csv(out/f'{name}.csv'), json.loads((out/f'{name}.json').read_text())
        return _write(out, name, a.data, df[df.method != PEER], env)
    ratings = load_ratings(None if a.data == 'ml-100k' else a.data, verify=not a.no_verify)
    if a.peer:  # the peer at every seed (its rows of other seeds kept)
        train, test = next_split(ratings)
        rows = _kept(out/'next_peer.csv', a.data, seeds)
        for seed in seeds:
            fitted, timing = run_peer(train, seed)
            rows += [{**r, 'method': PEER, 'data': a.data, 'seed': seed, 'seconds': round(timing['fit_seconds'], 1),
                      'fit_seconds': round(timing['fit_seconds'], 1), 'params': json.dumps(timing.get('settings', {}))}
                     for r in evaluate_next(fitted, (train, test), seed=seed)]
            write_atomic({out/'next_peer.csv': pd.DataFrame(rows).to_csv(index=False, float_format='%.6f')})
        return
    if a.timing:
        t = time_side_by_side(next_split(ratings)[0]).assign(data=a.data)
        t = pd.concat([pd.DataFrame(_kept(out/'next_timing.csv', a.data)), t], ignore_index=True)  # another release's is kept
        write_atomic({out/'next_timing.csv': t.to_csv(index=False, float_format='%.4f')})
        return
    df = next_item_table(ratings, seeds, data=a.data)
    env = {**environment(42), 'threads': torch.get_num_threads(), 'wall_seconds': round(time.perf_counter() - start, 1)}
    _write(out, name, a.data, df, env)

def _write(out, name, data, df, env):
    "results/{name}.{csv,md,json}: `df`'s rows with the peer's (results/next_peer.csv), the timing table, the environment."
    peer = out/'next_peer.csv'
    if peer.is_file():
        pr = pd.read_csv(peer)
        df = pd.concat([df, pr[pr.data == data]], ignore_index=True)
    pt = out/'next_timing.csv'  # measured side by side by `make next-timing`
    agg = dict(seconds_per_epoch=('seconds_per_epoch', 'mean'), epochs=('epochs', 'first'), threads=('threads', 'first'),
               rounds=('round', 'nunique'))
    epochs = None
    if pt.is_file():
        t = pd.read_csv(pt)
        epochs = t[t.data == data].groupby(['model', 'settings'], sort=False).agg(**agg).reset_index()
    write_atomic({out/f'{name}.csv': df.to_csv(index=False, float_format='%.6f'), out/f'{name}.json': json.dumps(env, indent=2),
                  out/f'{name}.md': next_markdown(df, env, pd.DataFrame(epochs))})
    print(f"Wrote {out}/{name}.md, .csv and .json ({env['wall_seconds'] / 60:.0f} minutes of make next).")

if __name__ == '__main__': main()
