"""`make bench-scale` (part of `make bench`): movierecs at MovieLens 25M size on this machine, measured side by side in one
run — loading an ML-25M-format file, building `dataloaders`, ratings per second of the dense default path and of the
sparse path (`train_model(sparse=True)`), memory over 5 epochs, Surprise's SVD and a compiled SGD loop (mf_loop.c, the
yardstick) on ML-1M-sized data next to the sparse path (with its kernel, on one thread, and on PyTorch's steps), the
memory-bandwidth bound, issue 26's targets, and the accuracy on ML-100k of the sparse path against the dense path's seed
spread, and of the compiled loop.
Rewrites the "## Scale" section of results/bench.md. Each measurement runs in its own process (its peak memory is its own)."""
import json, os, resource, statistics, subprocess, sys, tempfile, threading, time
from pathlib import Path

ML25M = dict(n=25_000_095, users=162_541, movies=59_047)  # ML-25M's ratings and users (README), movies rated (not all listed are)
ML1M = dict(n=1_000_209, users=6_040, movies=3_706)       # ML-1M's ratings, users and movies rated
FACTORS = 50               # DotProductBias's factors everywhere here
BATCHES = 300              # dense path: timed batches (a dense step updates all 11M parameters: an epoch would take hours)
SPARSE_BS = (4096, 16384, 65536)  # sparse path batch sizes
EPOCHS = 5                 # sparse path epochs over all of ML-25M-sized data, memory noted after each
SVD_EPOCHS = 20            # Surprise SVD's default epochs; its factors are set to FACTORS
SIDE_REPEATS = 3           # side by side on ML-1M size: Surprise and each batch size alternately, the best of this many runs
SVD_25M_EPOCHS = 2         # Surprise SVD's epochs at ML-25M size (its rate per epoch is steady; 20 would take 10 min)
ACCURACY_SEEDS = (42, 43, 44)
RAW = Path('results/scale.json')  # the measurements behind bench.md's Scale section (`--md-only` rewrites it from them)

def _peak_mb(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
def _rss_mb(): return int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20

def synthetic(n, users, movies, seed=0):
    "A ratings frame of `n` rows, ids drawn with a long tail (Zipf-like, as real logs), half-star ratings, int ids like ML-25M's."
    import numpy as np, pandas as pd
    g = np.random.default_rng(seed)
    def ids(k, size):  # rank r drawn with weight 1/(r+10): popular ids dominate, every id occurs
        w = 1 / (np.arange(k) + 10.); w /= w.sum()
        out = g.choice(k, size=size, p=w); out[:k] = np.arange(k)
        return g.permutation(out) + 1
    return pd.DataFrame({'user': ids(users, n).astype('int32'), 'movie': ids(movies, n).astype('int32'),
                         'rating': (g.integers(1, 11, n) / 2).astype('float32'), 'timestamp': g.integers(8e8, 1.6e9, n)})

LOOP_FLAGS = ('-O3', '-march=native', '-ffast-math', '-shared', '-fPIC')  # the yardstick may reassociate sums: its dot products vectorize
LOOP = dict(lr=0.005, reg=0.02, init_sd=0.1)  # Surprise's SVD defaults, for the compiled loop too

class CompiledLoop:
    ("The yardstick (benchmarks/mf_loop.c): biased matrix factorisation by SGD one rating at a time, in plain C on one thread, "
     "a new permutation every epoch; fitted on (n, 2) codes and (n, 1) ratings, as the sparse path's loader holds them.")
    def __init__(self, n_users, n_items, k=FACTORS, seed=0, lr=LOOP['lr'], reg=LOOP['reg'], init_sd=LOOP['init_sd']):
        import ctypes, torch
        from movierecs.engine.compiled import build
        self.lib = lib = ctypes.CDLL(str(build(Path(__file__).with_name('mf_loop.c'), LOOP_FLAGS)))
        P, I, F, U = ctypes.c_void_p, ctypes.c_int64, ctypes.c_float, ctypes.c_uint64
        lib.mf_init.restype, lib.mf_init.argtypes = ctypes.c_double, [P, P, P, P, I, I, I, F, P, I, U]
        lib.mf_fit.restype, lib.mf_fit.argtypes = None, [P, P, P, P, I, F, P, P, P, I, P, ctypes.c_int, F, F, U]
        lib.mf_predict.restype, lib.mf_predict.argtypes = None, [P, P, P, P, I, F, P, P, I, P]
        self.p, self.q = torch.empty(n_users, k), torch.empty(n_items, k)
        self.bu, self.bi = torch.empty(n_users), torch.empty(n_items)
        self.k, self.seed, self.lr, self.reg, self.init_sd = k, seed, lr, reg, init_sd

    def _ptrs(self): return [t.data_ptr() for t in (self.p, self.q, self.bu, self.bi)]

    def fit(self, x, y, epochs) -> float:
        "Initialise, then `epochs` epochs over the rows; the seconds the epochs took."
        import torch
        u, i, r = x[:, 0].contiguous(), x[:, 1].contiguous(), y.reshape(-1).float().contiguous()
        if int(u.max()) >= len(self.p) or int(i.max()) >= len(self.q): raise ValueError('codes beyond the tables')
        self.mu = self.lib.mf_init(*self._ptrs(), len(self.p), len(self.q), self.k, self.init_sd, r.data_ptr(), len(r), self.seed)
        order = torch.empty(len(r), dtype=torch.long)
        t = time.perf_counter()
        self.lib.mf_fit(*self._ptrs(), self.k, self.mu, u.data_ptr(), i.data_ptr(), r.data_ptr(), len(r), order.data_ptr(), epochs,
                        self.lr, self.reg, self.seed)
        return time.perf_counter() - t

    def predict(self, x):
        import torch
        u, i, out = x[:, 0].contiguous(), x[:, 1].contiguous(), torch.empty(len(x))
        self.lib.mf_predict(*self._ptrs(), self.k, self.mu, u.data_ptr(), i.data_ptr(), len(x), out.data_ptr())
        return out

class _Peak:
    "Resident memory before, at most during (a thread samples it every 2 ms) and after a block, in MB."
    def __enter__(self):
        self.before = self.peak = _rss_mb(); self.done = False
        self.thread = threading.Thread(target=self._watch, daemon=True); self.thread.start()
        return self
    def _watch(self):
        while not self.done: self.peak = max(self.peak, _rss_mb()); time.sleep(0.002)
    def __exit__(self, *exc):
        self.done = True; self.thread.join()
        self.after = _rss_mb(); self.peak = max(self.peak, self.after)
    def row(self): return dict(before_mb=self.before, peak_mb=self.peak, after_mb=self.after)

def load():
    "Write an ML-25M-format folder, then time `load_dataset` on it: seconds and memory."
    import warnings; warnings.filterwarnings('ignore')
    import movierecs as m
    df = synthetic(**ML25M)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)/'ml-25m'; d.mkdir()
        df.to_csv(d/'ratings.csv', index=False, header=['userId', 'movieId', 'rating', 'timestamp'])
        with open(d/'movies.csv', 'w') as f:
            f.write('movieId,title,genres\n' + ''.join(f'{i},Movie {i} (2000),Drama\n' for i in range(1, ML25M['movies'] + 1)))
        del df
        with _Peak() as mem:
            t = time.perf_counter(); r = m.load_dataset('ml-25m', d, verify=False); secs = time.perf_counter() - t
    print(json.dumps(dict(rows=len(r), seconds=secs, **mem.row())))

def build(how):
    "Time `dataloaders(item_name='movie')` on an ML-25M-sized frame, built directly (the default) or through fastai's TabularPandas."
    import warnings; warnings.filterwarnings('ignore')
    import movierecs as m
    from fastai.tabular.core import TabDataLoader
    r = synthetic(**ML25M)[['user', 'movie', 'rating']]
    kw = {} if how == 'direct' else dict(dl_type=TabDataLoader)  # a fastai-only option: fastai builds the rows, the fast path wraps them
    with _Peak() as mem:
        t = time.perf_counter(); dls = m.dataloaders(r, item_name='movie', seed=0, bs=4096, **kw); secs = time.perf_counter() - t
    print(json.dumps(dict(seconds=secs, train_rows=len(dls.train.x), frame_mb=r.memory_usage().sum() / 2**20, **mem.row())))

def _codes(spec, seed=0):
    "(x, y) tensors of codes for `spec`-sized synthetic data (ids already factorized: the loader's output)."
    import numpy as np, torch
    df = synthetic(**spec, seed=seed)
    # row-major, as the library's loader holds them (pandas gives column-major 2-d arrays)
    return (torch.from_numpy(np.ascontiguousarray(df[['user', 'movie']].to_numpy('int64'))),
            torch.from_numpy(np.ascontiguousarray(df[['rating']].to_numpy('float32'))))

def _learner(x, y, bs, spec, sparse, factors=FACTORS):
    from fastai.data.core import DataLoaders
    from fastai.learner import Learner
    from fastai.losses import MSELossFlat
    import movierecs as m
    from movierecs.engine.tensors import TensorDataLoader
    from movierecs.engine.fastai_glue import make_fast
    dls = DataLoaders(TensorDataLoader(x, y, bs=bs, shuffle=True, seed=0), TensorDataLoader(x[:bs], y[:bs], bs=bs))
    learn = make_fast(Learner(dls, m.DotProductBias(spec['users'] + 1, spec['movies'] + 1, factors, y_range=(0, 5.5)),
                              loss_func=MSELossFlat()))
    return m.make_sparse(learn) if sparse else learn

def train_rate(which, bs):
    "Ratings/s of the dense path (BATCHES batches) or the sparse path (EPOCHS epochs, resident memory after each) at ML-25M size."
    import warnings; warnings.filterwarnings('ignore')
    from fastai.callback.core import Callback
    x, y = _codes(ML25M)
    bs = int(bs)
    if which == 'dense': x, y = x[:BATCHES*bs], y[:BATCHES*bs]
    learn = _learner(x, y, bs, ML25M, which == 'sparse')
    rss = []
    class Note(Callback):
        def after_epoch(self): rss.append(round(_rss_mb()))
    t = time.perf_counter()
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(EPOCHS if which == 'sparse' else 1, 5e-3 * (bs/64)**0.5, wd=0.1,
                                                                 cbs=Note())
    secs = time.perf_counter() - t
    print(json.dumps(dict(ratings_per_s=len(x) * (EPOCHS if which == 'sparse' else 1) / secs, seconds=secs, rss_mb=rss,
                          peak_mb=_peak_mb())))

def side_by_side():
    ("ML-1M-sized data: Surprise's SVD (SVD_EPOCHS epochs, FACTORS factors), the compiled loop, and the sparse path at each "
     "SPARSE_BS (and at bs 4096 on one thread, and on PyTorch's steps as without a compiler), alternately, SIDE_REPEATS times.")
    import warnings; warnings.filterwarnings('ignore')
    import surprise, torch
    from movierecs.engine import compiled
    df = synthetic(**ML1M)
    x, y = _codes(ML1M)
    data = surprise.Dataset.load_from_df(df[['user', 'movie', 'rating']], surprise.Reader(rating_scale=(0.5, 5))).build_full_trainset()
    runs = [*(str(bs) for bs in SPARSE_BS), '4096/1 thread', '4096/pytorch']
    out, threads = {'svd': [], 'loop': [], **{k: [] for k in runs}}, torch.get_num_threads()
    for _ in range(SIDE_REPEATS):
        algo = surprise.SVD(n_factors=FACTORS, n_epochs=SVD_EPOCHS, random_state=0)
        t = time.perf_counter(); algo.fit(data); out['svd'].append(len(df) * SVD_EPOCHS / (time.perf_counter() - t))
        out['loop'].append(len(x) * SVD_EPOCHS / CompiledLoop(ML1M['users'] + 1, ML1M['movies'] + 1).fit(x, y, SVD_EPOCHS))
        for k in runs:
            bs = int(k.split('/')[0])
            torch.set_num_threads(1 if k.endswith('1 thread') else threads)
            os.environ['MOVIERECS_COMPILE'] = '0' if k.endswith('pytorch') else '1'; compiled.reset()
            learn = _learner(x, y, bs, ML1M, True)
            t = time.perf_counter()
            with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(2, 5e-3 * (bs/64)**0.5, wd=0.1)
            out[k].append(len(x) * 2 / (time.perf_counter() - t))
    torch.set_num_threads(threads)
    print(json.dumps({**{k: max(v) for k, v in out.items()}, 'threads': threads, 'kernel': compiled.kernel_status()}))

def surprise_25m():
    "Surprise's SVD on the ML-25M-sized data: building its trainset, then SVD_25M_EPOCHS epochs; seconds, ratings/s and peak memory."
    import warnings; warnings.filterwarnings('ignore')
    import surprise
    df = synthetic(**ML25M)[['user', 'movie', 'rating']]
    with _Peak() as mem:
        t = time.perf_counter()
        data = surprise.Dataset.load_from_df(df, surprise.Reader(rating_scale=(0.5, 5))).build_full_trainset()
        build_s = time.perf_counter() - t
        algo = surprise.SVD(n_factors=FACTORS, n_epochs=SVD_25M_EPOCHS, random_state=0)
        t = time.perf_counter(); algo.fit(data); fit_s = time.perf_counter() - t
    print(json.dumps(dict(build_s=build_s, fit_s=fit_s, ratings_per_s=len(df) * SVD_25M_EPOCHS / fit_s, **mem.row())))

def loop_25m():
    "The compiled loop on the ML-25M-sized data: SVD_25M_EPOCHS epochs, ratings/s and peak memory."
    x, y = _codes(ML25M)
    with _Peak() as mem:
        secs = CompiledLoop(ML25M['users'] + 1, ML25M['movies'] + 1).fit(x, y, SVD_25M_EPOCHS)
    print(json.dumps(dict(seconds=secs, ratings_per_s=len(x) * SVD_25M_EPOCHS / secs, **mem.row())))

def bandwidth():
    "This machine's memory bandwidth: bytes read plus written per second by a 512 MB copy (best of 5)."
    import numpy as np
    a = np.ones(2**27, dtype='float32'); b = np.empty_like(a)
    best = min(_time(lambda: np.copyto(b, a)) for _ in range(5))
    print(json.dumps(dict(bytes_per_s=2 * a.nbytes / best)))

def _time(f):
    t = time.perf_counter(); f(); return time.perf_counter() - t

def accuracy():
    "ML-100k, dot_bias_wd's recipe (5 epochs, lr 5e-3, wd 0.1, bs 64): final valid MSE of the dense and the sparse path over seeds."
    import warnings; warnings.filterwarnings('ignore')
    import movierecs as m
    import torch
    r = m.load_ratings()
    out = {}
    for sparse in (False, True):
        for s in ACCURACY_SEEDS:
            learn = m.train_model('dot_bias', epochs=5, lr=5e-3, wd=0.1, seed=s, ratings=r, progress=False, sparse=sparse)
            out.setdefault('sparse' if sparse else 'dense', []).append(float(learn.loss_table.df.valid_loss.iloc[-1]))
            if sparse: continue
            tr, va = learn.dls.train, learn.dls.valid  # the compiled loop on the very same rows, Surprise's defaults
            loop = CompiledLoop(len(learn.model.user_factors.weight), len(learn.model.movie_factors.weight), seed=s)
            loop.fit(tr.x, tr.y, SVD_EPOCHS)
            out.setdefault('loop', []).append(float(torch.mean((loop.predict(va.x) - va.y.reshape(-1))**2)))
    print(json.dumps(out))

def child(*args):
    r = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if r.returncode: sys.exit(f'benchmark child {args} failed:\n{r.stderr[-3000:]}')
    return json.loads(r.stdout.strip().splitlines()[-1])

def _two_processes():
    "The 2-process table of results/distributed.md (`make distributed`), as it stands there."
    import importlib.util, pandas as pd
    csv, env = Path('results/distributed.csv'), Path('results/distributed.json')
    if not (csv.exists() and env.exists()): return ['### Data-parallel training', '',
                                                    'Not run yet: `make distributed` writes the 2-process table.', '']
    spec = importlib.util.spec_from_file_location('distributed_bench', Path(__file__).parent/'distributed.py')
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    table = [l for l in mod.markdown(pd.read_csv(csv), json.loads(env.read_text())).splitlines() if l.startswith('|')]
    return ['### Data-parallel training: the 2-process table', '',
            "From [results/distributed.md](distributed.md) (`make distributed`, which explains the columns): collab on ML-100k, "
            "one process against 2 CPU processes (torch DDP, gloo), final valid MSE over 5 seeds.", '', *table, '']

def _mb(r): return ' | '.join(f'{r[k]:,.0f}' for k in ('before_mb', 'peak_mb', 'after_mb'))

def bytes_per_rating(factors=FACTORS):
    """Bytes the sparse path must move per rating, at the least: the user's and the movie's rows (factors + bias, float32) are
    read in the forward pass, their gradients written and read, and the optimizer reads the weights, both moments and the
    gradient and writes the weights and both moments (7 passes) — 9 passes over 2 rows."""
    return 9 * 2 * (factors + 1) * 4

def _targets(raw, bound):
    "Issue 26's targets against this run's numbers: met, or by how much not."
    sbs, sparse = raw['side_by_side'], {int(k): v for k, v in raw['sparse'].items()}
    ratio = sbs['4096'] / sbs['svd']
    best_bs = max(sparse, key=lambda bs: sparse[bs]['ratings_per_s'])
    best = sparse[best_bs]['ratings_per_s']
    growth = max((r['rss_mb'][-1] - r['rss_mb'][1]) / r['rss_mb'][1] for r in sparse.values())  # epoch 2 to the last, relative
    def mark(ok): return '**met**' if ok else '**not met**'
    return ['### The targets (issue 26)', '',
            '| target | this run | |', '|---|---|---|',
            f"| sparse path ≥ 2× Surprise's SVD at bs 4096 on ML-1M size | {ratio:.2f}× | "
            f"{mark(ratio >= 2)}{'' if ratio >= 2 else f', {2 / ratio:.2f}× short'} |",
            f"| ≥ 3M ratings/s (40 % of the bound) on ML-25M size at some bs ≤ 65,536 | {best:,.0f} at bs {best_bs} "
            f"({best / bound:.0%} of the bound) | {mark(best >= 3e6)}{'' if best >= 3e6 else f', {3e6 / best:.2f}× short'} |",
            f"| resident memory flat over {EPOCHS} epochs (within 10 % from epoch 2 on) | largest change from epoch 2 to {EPOCHS}: "
            f"{growth:+.1%} | {mark(abs(growth) < 0.1)} |"]

def main():
    sys.path.insert(0, str(Path(__file__).parent.parent))
    from movierecs.studies.reproduce import environment
    start = time.perf_counter()
    if '--md-only' in sys.argv: raw = json.loads(RAW.read_text())
    else:
        raw = dict(load=child('load'))
        raw['builds'] = {how: child('build', how) for how in ('direct', 'fastai')}
        raw['dense'] = child('train', 'dense', '4096')
        raw['sparse'] = {str(bs): child('train', 'sparse', str(bs)) for bs in SPARSE_BS}
        raw['surprise_25m'] = child('surprise_25m')
        raw['loop_25m'] = child('loop_25m')
        raw['side_by_side'] = child('side_by_side')
        raw['bandwidth'] = child('bandwidth')
        raw['accuracy'] = child('accuracy')
        raw['env'] = environment(seed=0)
        raw['minutes'] = (time.perf_counter() - start) / 60
        print(raw, flush=True)
    write_markdown(raw)

def write_markdown(raw):
    "Rewrite bench.md's Scale section (and results/scale.json) from the measurements `raw`."
    from movierecs.core.files import write_atomic
    from movierecs.studies.reproduce import cpu_label
    ld, builds, dense, sbs, bw, acc, env = (raw[k] for k in ('load', 'builds', 'dense', 'side_by_side', 'bandwidth', 'accuracy', 'env'))
    sparse, sv = {int(k): v for k, v in raw['sparse'].items()}, raw['surprise_25m']
    bound = bw['bytes_per_s'] / bytes_per_rating()
    d, s = acc['dense'], acc['sparse']
    md = ['## Scale: MovieLens 25M size', '',
          f"Regenerated by `make bench-scale` (also run by `make bench`) — do not edit. {cpu_label(env)}, {env['cpu_count']} CPUs, "
          f"torch {env['packages']['torch']}, {raw['minutes']:.0f} min. Synthetic data of ML-25M's size "
          f"({ML25M['n']:,} ratings, {ML25M['users']:,} users, {ML25M['movies']:,} movies, ids drawn with a long tail), "
          f"`DotProductBias` with {FACTORS} factors, `fit_one_cycle` with wd 0.1 and lr 5e-3 × √(bs/64). Each row is its own process.", '',
          '### Loading and building', '',
          f"Resident memory before, at most during (sampled every 2 ms) and after each step; the frame of user, movie and rating "
          f"the loaders are built from holds {builds['direct']['frame_mb']:,.0f} MB.", '',
          '| step | seconds | before MB | peak MB | after MB |', '|---|---:|---:|---:|---:|',
          f"| `load_dataset('ml-25m')` of an ML-25M-format folder | {ld['seconds']:.1f} | {_mb(ld)} |",
          f"| `dataloaders(item_name='movie')`: ids factorized straight into int64 tensors (the default) | "
          f"{builds['direct']['seconds']:.1f} | {_mb(builds['direct'])} |",
          f"| the same rows through fastai's `TabularPandas` (`dl_type=TabDataLoader`; the default until now) | "
          f"{builds['fastai']['seconds']:.1f} | {_mb(builds['fastai'])} |", '',
          f"Both give the same rows, codes and vocabulary (tests/test_loaders.py); {builds['direct']['train_rows']:,} training rows.", '',
          '### Training', '',
          '| path | bs | ratings/s | resident MB after each epoch | peak MB |', '|---|---:|---:|---|---:|',
          f"| dense (default: `FastAdam` steps all {(ML25M['users'] + ML25M['movies'] + 2) * (FACTORS + 1) / 1e6:.1f}M parameters), "
          f"{BATCHES} batches | 4096 | {dense['ratings_per_s']:,.0f} | "
          f"{' / '.join(f'{v:,}' for v in dense['rss_mb'])} | {dense['peak_mb']:,.0f} |",
          *[f"| sparse (`sparse=True`), {EPOCHS} epochs | {bs} | {r['ratings_per_s']:,.0f} | "
            f"{' / '.join(f'{v:,}' for v in r['rss_mb'])} | {r['peak_mb']:,.0f} |"
            for bs, r in sparse.items()],
          f"| Surprise's SVD (Cython SGD, one rating at a time), {SVD_25M_EPOCHS} epochs | 1 | "
          f"{sv['ratings_per_s']:,.0f} | | {sv['peak_mb']:,.0f} |",
          *([f"| compiled loop (benchmarks/mf_loop.c: the same SGD in C, one thread), {SVD_25M_EPOCHS} epochs | 1 | "
             f"{raw['loop_25m']['ratings_per_s']:,.0f} | | {raw['loop_25m']['peak_mb']:,.0f} |"] if 'loop_25m' in raw else []), '',
          f"Sparse over dense at bs 4096: **{sparse[4096]['ratings_per_s'] / dense['ratings_per_s']:.0f}×**. Surprise first builds its "
          f"trainset (dicts of Python tuples, one per rating): {sv['build_s']:.0f} s here, "
          "and its peak memory is that of those tuples.", '',
          '### Side by side with Surprise and a compiled loop on ML-1M-sized data', '',
          f"{ML1M['n']:,} ratings, {ML1M['users']:,} users, {ML1M['movies']:,} movies; "
          f"in one process, alternately, best of {SIDE_REPEATS}. "
          f"Surprise's SVD with {FACTORS} factors and its {SVD_EPOCHS} epochs (Cython SGD, one rating at a time); the compiled loop "
          f"(benchmarks/mf_loop.c, a yardstick, not part of the library) runs the same algorithm in C on the same rows, "
          f"{', '.join(f'{k} {v}' for k, v in LOOP.items())}. The sparse path steps fastai's Adam in a `Learner` "
          f"(`fit_one_cycle`, 2 epochs) with its compiled kernel ({sbs.get('kernel', 'compiled')}).", '',
          '| method | threads | ratings/s | / Surprise SVD |', '|---|---:|---:|---:|',
          f"| Surprise SVD | 1 | {sbs['svd']:,.0f} | 1.00× |",
          *([f"| compiled loop (C, SGD one rating at a time) | 1 | {sbs['loop']:,.0f} | {sbs['loop'] / sbs['svd']:.2f}× |"]
            if 'loop' in sbs else []),
          *[f"| movierecs sparse path, bs {bs} | {sbs.get('threads', env['cpu_count'])} | {sbs[str(bs)]:,.0f} | "
            f"**{sbs[str(bs)] / sbs['svd']:.2f}×** |" for bs in SPARSE_BS],
          *([f"| movierecs sparse path, bs 4096, one thread | 1 | {sbs['4096/1 thread']:,.0f} | {sbs['4096/1 thread'] / sbs['svd']:.2f}× |",
             f"| movierecs sparse path, bs 4096, PyTorch's steps (no compiler) | {sbs['threads']} | {sbs['4096/pytorch']:,.0f} | "
             f"{sbs['4096/pytorch'] / sbs['svd']:.2f}× |"] if '4096/pytorch' in sbs else []), '',
          *_targets(raw, bound), '',
          '### The physical bound', '',
          f"A rating moves at least {bytes_per_rating():,} bytes on the sparse path (`bytes_per_rating`: 9 passes over the user's "
          f"and the movie's {FACTORS} factors and bias in float32). This machine copies {bw['bytes_per_s'] / 1e9:.1f} GB/s "
          f"(read + write, a 512 MB numpy copy), so no implementation of this model and optimizer can exceed about "
          f"**{bound:,.0f} ratings/s** here; the sparse path reaches {max(r['ratings_per_s'] for r in sparse.values()) / bound:.0%} of it "
          '(the rest: reading and writing rows scattered over tables larger than the caches, the catch-up of skipped rows, '
          "fastai's loop per batch).", '',
          '### Accuracy on ML-100k', '',
          f"dot_bias_wd's recipe (5 epochs, lr 5e-3, wd 0.1, bs 64), final valid MSE, seeds {', '.join(map(str, ACCURACY_SEEDS))}:", '',
          '| path | valid MSE per seed | mean | sd |', '|---|---|---:|---:|',
          f"| dense | {' / '.join(f'{v:.4f}' for v in d)} | {statistics.mean(d):.4f} | {statistics.stdev(d):.4f} |",
          f"| sparse | {' / '.join(f'{v:.4f}' for v in s)} | {statistics.mean(s):.4f} | {statistics.stdev(s):.4f} |",
          *([f"| compiled loop ({SVD_EPOCHS} epochs, {', '.join(f'{k} {v}' for k, v in LOOP.items())}) | "
             f"{' / '.join(f'{v:.4f}' for v in acc['loop'])} | {statistics.mean(acc['loop']):.4f} | {statistics.stdev(acc['loop']):.4f} |"]
            if 'loop' in acc else []), '',
          f"Sparse minus dense, seed by seed: {', '.join(f'{b - a:+.4f}' for a, b in zip(d, s))}; the dense path's seed spread (sd) "
          f"is {statistics.stdev(d):.4f}.", '',
          *_two_processes()]
    bench = Path('results/bench.md')
    text = bench.read_text() if bench.exists() else ''
    head = text.split('## Scale')[0].rstrip('\n') + '\n\n' if '## Scale' in text else text
    write_atomic({bench: head + '\n'.join(md), RAW: json.dumps(raw, indent=1) + '\n'})
    print('\n'.join(md))

if __name__ == '__main__':
    sys.path.insert(0, str(Path(__file__).parent.parent))
    cmd = sys.argv[1:2]
    if cmd == ['load']: load()
    elif cmd == ['build']: build(sys.argv[2])
    elif cmd == ['train']: train_rate(*sys.argv[2:4])
    elif cmd == ['side_by_side']: side_by_side()
    elif cmd == ['surprise_25m']: surprise_25m()
    elif cmd == ['bandwidth']: bandwidth()
    elif cmd == ['loop_25m']: loop_25m()
    elif cmd == ['accuracy']: accuracy()
    else: main()
