"""`make bench`: seconds per epoch of every registry model on ML-100k, three ways, in one run:
a bare PyTorch loop (written here), the faithful CollabDataLoaders path, and the fast path
(`dataloaders(fast=True)`: in-memory tensors, `FastLearner`, `FastAdam`).
Each measurement runs in its own process, so its peak memory (max RSS) is its own. Writes results/bench.md."""
import json, os, platform, resource, statistics, subprocess, sys, time
from pathlib import Path

EPOCHS = 3  # timed epochs, after one untimed warm-up epoch; the median is reported

def bare_loop(name, ratings, epochs):
    "The reference: index tensors, AdamW (fastai's betas, eps, wd), a one-cycle schedule; no fastai in the loop."
    import torch, torch.nn.functional as F
    import movierecs as m
    dls = m.dataloaders(ratings, fast=True)  # the split, the vocabulary as tensors; the model built by the registry
    learn = m.get_learner(name, dls)
    model = learn.model
    x, y = dls.train.x, dls.train.y
    wd = 0.01
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3, betas=(0.9, 0.99), eps=1e-5, weight_decay=wd, foreach=True)
    bs, n = 64, len(x)
    nb = n // bs
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=5e-3, total_steps=nb*(epochs+1))
    times = []
    for e in range(epochs+1):
        t = time.perf_counter()
        perm = torch.randperm(n); X, Y = x[perm], y[perm]
        model.train()
        for i in range(nb):
            loss = F.mse_loss(model(X[i*bs:(i+1)*bs]).view(-1), Y[i*bs:(i+1)*bs].view(-1))
            opt.zero_grad(); loss.backward(); opt.step(); sched.step()
        model.eval()
        with torch.no_grad(): F.mse_loss(model(dls.valid.x).view(-1), dls.valid.y.view(-1))
        times.append(time.perf_counter() - t)
    return times[1:]

def fastai_path(name, ratings, epochs, fast):
    import movierecs as m
    learn = m.get_learner(name, m.dataloaders(ratings, fast=fast))
    times = []
    for e in range(epochs+1):
        t = time.perf_counter()
        with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(1, 5e-3)
        times.append(time.perf_counter() - t)
    return times[1:]

def measure(name, path):
    "Run in a child process: seconds per epoch and peak RSS of one (model, path)."
    import warnings; warnings.filterwarnings('ignore')
    import torch, movierecs as m
    torch.manual_seed(0)
    ratings = m.load_ratings()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = bare_loop(name, ratings, EPOCHS) if path == 'bare' else fastai_path(name, ratings, EPOCHS, fast=path == 'fast')
    print(json.dumps(dict(seconds=statistics.median(times), times=times,
                          peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024, base_mb=rss0/1024)))

def scale(bs_list=(64, 4096), n=25_000_000, n_users=162_000, n_movies=59_000, batches=2000):
    "ML-25M-sized synthetic codes: ratings/s of the default training loop (FastLearner + TensorDataLoader) and peak memory."
    import warnings; warnings.filterwarnings('ignore')
    import numpy as np, torch
    from fastai.data.core import DataLoaders
    from fastai.learner import Learner
    import movierecs as m
    from movierecs.fast import TensorDataLoader, make_fast
    g = np.random.default_rng(0)
    x = torch.from_numpy(np.stack([g.integers(1, n_users, n), g.integers(1, n_movies, n)], 1))
    y = torch.from_numpy(g.integers(1, 6, (n, 1)).astype('float32'))
    out = {}
    for bs in bs_list:
        k = min(n, batches*bs)
        dls = DataLoaders(TensorDataLoader(x[:k], y[:k], bs=bs, shuffle=True, seed=0),
                          TensorDataLoader(x[:bs], y[:bs], bs=bs))
        learn = make_fast(Learner(dls, m.DotProductBias(n_users, n_movies, 50), loss_func=m.learners.MSELossFlat()))
        t = time.perf_counter()
        with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(1, 5e-3)
        out[bs] = k / (time.perf_counter() - t)
    print(json.dumps(dict(ratings_per_s=out, peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024,
                          n=n, users=n_users, movies=n_movies, data_mb=(x.numel()*8 + y.numel()*4)/2**20)))

def child(*args):
    r = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if r.returncode: sys.exit(f'benchmark child {args} failed:\n{r.stderr[-3000:]}')
    return json.loads(r.stdout.strip().splitlines()[-1])

def main():
    sys.path.insert(0, str(Path(__file__).parent.parent))
    import torch, fastai, movierecs as m
    from movierecs.files import write_atomic
    from movierecs.reproduce import environment
    names = sys.argv[1:] or m.list_models()
    rows = []
    for name in names:
        r = {p: child('measure', name, p) for p in ('bare', 'faithful', 'fast')}
        rows.append((name, r))
        print(f"{name:16} bare {r['bare']['seconds']:.2f}s  faithful {r['faithful']['seconds']:.2f}s "
              f"({r['faithful']['seconds']/r['bare']['seconds']:.2f}x)  fast {r['fast']['seconds']:.2f}s "
              f"({r['fast']['seconds']/r['bare']['seconds']:.2f}x)", flush=True)
    sc = child('scale')
    env = environment(seed=0)
    md = ['# Training speed: seconds per epoch on ML-100k (bs 64, 1,250 batches)', '',
          f"Regenerated by `make bench` — do not edit. {env['cpu']}, {env['cpu_count']} CPUs, {env['torch_threads']} "
          f"torch threads, torch {env['packages']['torch']}, fastai {env['packages']['fastai']}, Python {env['python']}. "
          f"Median of {EPOCHS} epochs after a warm-up epoch; each cell is its own process, peak memory is its max RSS.", '',
          '| model | bare PyTorch loop | faithful (CollabDataLoaders) | fast path | faithful / bare | fast / bare | peak MB bare / faithful / fast |',
          '|---|---:|---:|---:|---:|---:|---:|']
    for name, r in rows:
        b, f, d = (r[p]['seconds'] for p in ('bare', 'faithful', 'fast'))
        md.append(f"| {name} | {b:.2f} s | {f:.2f} s | {d:.2f} s | {f/b:.2f}× | **{d/b:.2f}×** | "
                  f"{r['bare']['peak_mb']:.0f} / {r['faithful']['peak_mb']:.0f} / {r['fast']['peak_mb']:.0f} |")
    md += ['', f"## Scale: a synthetic data set the size of MovieLens 25M", '',
           f"{sc['n']:,} ratings, {sc['users']:,} users, {sc['movies']:,} movies, held as two tensors "
           f"({sc['data_mb']:.0f} MB: no Python object per rating). `DotProductBias` (50 factors) trained by the fast "
           f"path (`FastLearner` on `TensorDataLoader`) for up to 2,000 batches.", '',
           '| bs | ratings/s |', '|---:|---:|', *[f'| {bs} | {v:,.0f} |' for bs, v in sc['ratings_per_s'].items()],
           '', f"Peak memory of the scale process: {sc['peak_mb']:,.0f} MB.", '']
    write_atomic({Path('results/bench.md'): '\n'.join(md)})
    print('\n'.join(md))

if __name__ == '__main__':
    if sys.argv[1:2] == ['measure']: measure(*sys.argv[2:4])
    elif sys.argv[1:2] == ['scale']: scale()
    else: main()
