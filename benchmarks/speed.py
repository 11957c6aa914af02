"""`make bench`: seconds per epoch of every registry model on ML-100k, three ways, in one run:
a bare PyTorch loop (written here), the faithful CollabDataLoaders path (`fast=False`), and the movierecs default
path (`dataloaders()`: in-memory tensors, `FastLearner`, `FastAdam`).
Each measurement runs in its own process, so its peak memory (max RSS) is its own. Writes results/bench.md."""
import json, os, resource, statistics, subprocess, sys, time
from pathlib import Path

EPOCHS = 3  # timed epochs of each path in its own process, after one untimed warm-up epoch; the median is reported
PAIRS = 5   # bare and default epochs timed alternately in one process, after a warm-up of each; their medians give the ratio

def bare_epochs(name, ratings, epochs):
    "The reference: index tensors, AdamW (fastai's betas, eps, wd), a one-cycle schedule, no fastai in the loop; a function running one epoch."
    import torch, torch.nn.functional as F
    import movierecs as m
    dls = m.dataloaders(ratings)  # the split, the vocabulary as tensors; the model built by the registry
    model = m.get_learner(name, dls).model
    x, y = dls.train.x, dls.train.y
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3, betas=(0.9, 0.99), eps=1e-5, weight_decay=0.01, foreach=True)
    bs, n = 64, len(x)
    nb = n // bs
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=5e-3, total_steps=nb*epochs)
    def epoch():
        perm = torch.randperm(n); X, Y = x[perm], y[perm]
        model.train()
        for i in range(nb):
            out, yb = model(X[i*bs:(i+1)*bs]), Y[i*bs:(i+1)*bs]
            # MSE; an ensemble's members each on their own MSE, as its `EnsembleMSE` does
            loss = F.mse_loss(out.view(-1), yb.view(-1)) if out.numel() == len(yb) else ((out - yb.view(-1, 1))**2).mean()
            opt.zero_grad(); loss.backward(); opt.step(); sched.step()
        model.eval()
        with torch.no_grad(): F.mse_loss(model(dls.valid.x).view(-1), dls.valid.y.view(-1))
    return epoch

def fastai_epochs(name, ratings, fast):
    "A function running one `fit_one_cycle(1, 5e-3)` of the registry's learner on the default (fast) or faithful path."
    import movierecs as m
    learn = m.get_learner(name, m.dataloaders(ratings, fast=fast))
    def epoch():
        with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(1, 5e-3)
    return epoch

def _timed(f):
    t = time.perf_counter(); f(); return time.perf_counter() - t

def measure(name, path):
    "Run in a child process: seconds per epoch and peak RSS of one (model, path); path 'pair' alternates bare and default epochs."
    import warnings; warnings.filterwarnings('ignore')
    import torch, movierecs as m
    torch.manual_seed(0)
    ratings = m.load_ratings()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if path == 'pair':
        bare, fast = bare_epochs(name, ratings, PAIRS + 1), fastai_epochs(name, ratings, fast=True)
        bare(); fast()  # warm-up
        times = [(_timed(bare), _timed(fast)) for _ in range(PAIRS)]
        out = dict(bare=statistics.median(b for b, _ in times), fast=statistics.median(f for _, f in times), times=times)
    else:
        f = bare_epochs(name, ratings, EPOCHS + 1) if path == 'bare' else fastai_epochs(name, ratings, fast=path == 'fast')
        times = [_timed(f) for _ in range(EPOCHS + 1)][1:]
        out = dict(seconds=statistics.median(times), times=times)
    print(json.dumps(dict(out, peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024, base_mb=rss0/1024)))

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
        rss = RSS()
        learn = make_fast(Learner(dls, m.DotProductBias(n_users, n_movies, 50), loss_func=m.learners.MSELossFlat(), cbs=rss))
        t = time.perf_counter()
        with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(1, 5e-3)
        out[bs] = dict(ratings_per_s=k / (time.perf_counter() - t), rss_mb=rss.mb)
    print(json.dumps(dict(runs=out, peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024,
                          n=n, users=n_users, movies=n_movies, data_mb=(x.numel()*8 + y.numel()*4)/2**20)))

def _rss_mb(): return int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20

def RSS():
    "A callback noting the resident memory (MB) after every 10% of the training batches: flat means no per-batch growth."
    from fastai.callback.core import Callback
    class _RSS(Callback):
        def before_fit(self): self.mb = {}
        def after_batch(self):
            if self.training and (self.iter + 1) % max(1, self.n_iter // 10) == 0: self.mb[self.iter + 1] = round(_rss_mb())
    return _RSS()

def _rss_row(mb):
    ks = sorted(mb, key=int)
    return ' / '.join(f"{mb[k]:,}" for k in (ks[0], ks[len(ks)//2 - 1], ks[-1])) if ks else '-'

def child(*args):
    r = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if r.returncode: sys.exit(f'benchmark child {args} failed:\n{r.stderr[-3000:]}')
    return json.loads(r.stdout.strip().splitlines()[-1])

def main():
    sys.path.insert(0, str(Path(__file__).parent.parent))
    import movierecs as m
    from movierecs.files import write_atomic
    from movierecs.reproduce import environment
    names = sys.argv[1:] or m.list_models('rating')  # the bare loop trains on MSE: the rating models
    rows = []
    for name in names:
        r = {p: child('measure', name, p) for p in ('bare', 'faithful', 'fast', 'pair')}
        rows.append((name, r))
        pr = r['pair']
        print(f"{name:16} bare {r['bare']['seconds']:.2f}s  faithful {r['faithful']['seconds']:.2f}s  fast {r['fast']['seconds']:.2f}s;"
              f"  side by side: bare {pr['bare']:.2f}s fast {pr['fast']:.2f}s ({pr['fast']/pr['bare']:.2f}x)", flush=True)
    sc = child('scale')
    env = environment(seed=0)
    md = ['# Training speed: seconds per epoch on ML-100k (bs 64, 1,250 batches)', '',
          f"Regenerated by `make bench` — do not edit. {env['cpu']}, {env['cpu_count']} CPUs, {env['torch_threads']} "
          f"torch threads, torch {env['packages']['torch']}, fastai {env['packages']['fastai']}, Python {env['python']}.", '',
          f"**Side by side** (the target): one process per model trains the bare PyTorch loop and the movierecs default "
          f"path alternately, epoch by epoch ({PAIRS} timed epochs each after a warm-up of each), so both see the same "
          f"machine; the ratio is of their medians. This machine's speed drifts by up to ±20% from process to process, "
          f"which would swamp a ratio of separate runs.", '',
          '| model | bare PyTorch loop | movierecs default | **default / bare** | default / bare, epoch by epoch |',
          '|---|---:|---:|---:|---:|']
    for name, r in rows:
        pr = r['pair']
        md.append(f"| {name} | {pr['bare']:.2f} s | {pr['fast']:.2f} s | **{pr['fast']/pr['bare']:.2f}×** | "
                  f"{', '.join(f'{f/b:.2f}' for b, f in pr['times'])} |")
    md += ['', f"**Each path in its own process** (median of {EPOCHS} epochs after a warm-up), with its peak memory "
           '(max RSS, the data and fastai included):', '',
           '| model | bare PyTorch loop | faithful (CollabDataLoaders) | movierecs default | faithful / bare | default / bare | peak MB bare / faithful / default |',
           '|---|---:|---:|---:|---:|---:|---:|']
    for name, r in rows:
        b, f, d = (r[p]['seconds'] for p in ('bare', 'faithful', 'fast'))
        md.append(f"| {name} | {b:.2f} s | {f:.2f} s | {d:.2f} s | {f/b:.2f}× | {d/b:.2f}× | "
                  f"{r['bare']['peak_mb']:.0f} / {r['faithful']['peak_mb']:.0f} / {r['fast']['peak_mb']:.0f} |")
    md += ['', "## Scale: a synthetic data set the size of MovieLens 25M", '',
           f"{sc['n']:,} ratings, {sc['users']:,} users, {sc['movies']:,} movies, held as two tensors "
           f"({sc['data_mb']:.0f} MB: no Python object per rating). `DotProductBias` (50 factors) trained by the default "
           f"path (`FastLearner` on `TensorDataLoader`) for up to 2,000 batches.", '',
           '| bs | ratings/s | resident MB after 10% / 50% / 100% of the batches |', '|---:|---:|---:|',
           *[f"| {bs} | {r['ratings_per_s']:,.0f} | {_rss_row(r['rss_mb'])} |" for bs, r in sc['runs'].items()],
           '', f"Peak memory of the scale process: {sc['peak_mb']:,.0f} MB.", '']
    write_atomic({Path('results/bench.md'): '\n'.join(md)})
    print('\n'.join(md))

if __name__ == '__main__':
    if sys.argv[1:2] == ['measure']: measure(*sys.argv[2:4])
    elif sys.argv[1:2] == ['scale']: scale()
    else: main()
