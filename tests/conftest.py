"""Shared fixtures: the test seed, synthetic and real ratings, and experiments trained at most once per run.

`make test` runs the suite on two pytest-xdist workers, one a core. The tests whose numbers are held to saved ones (the
notebooks' outputs, the notebook experiments' losses, the faithful path) run together on one worker (`xdist_group`), which
shares their trained learners, with the machine's torch threads: a network's losses depend on how many threads sum its
matrix products (measured: notebook 05's final valid MSE 0.8707 on 2 threads, 0.8802 on 1; the same on AVX2 and AVX-512
kernels). Every other test takes one thread, so the two workers never ask for more cores than there are."""
import os
if os.environ.get('PYTEST_XDIST_WORKER'):  # before torch starts OpenMP: idle threads sleep instead of spinning on a shared core
    os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
import pytest
import movierecs

PARALLEL = int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', '1')) > 1
SAVED_NUMBERS = {'test_notebooks.py'}  # with the tests that use `trained`: runs held to saved numbers, on the machine's threads

SEED = 42  # the one seed of the test suite

def under_ci():
    "True when the environment says this is CI (CI=true, as GitHub Actions, GitLab and .ci/run set it)."
    return os.environ.get('CI', '').strip().lower() not in ('', '0', 'false', 'no')

def pytest_configure(config):
    "Under CI, ML-100k must load: without it every real-data test would skip and the run would still pass."
    if under_ci() and not config.option.help and not config.option.version:
        try: movierecs.load_ratings()
        except Exception as e:
            pytest.exit(f"CI is set but ML-100k cannot be loaded, so the real-data tests cannot run: {' '.join(str(e).split())}",
                        returncode=3)

@pytest.fixture(scope='session')
def seed(): return SEED

def cycle_ratings(n_users=120, n_items=30, seed=0):
    "Each user walks the items in one cycle (i, i+1, ...) from a random start, one a minute: the next item is always the one after."
    import numpy as np, pandas as pd
    rng = np.random.default_rng(seed)
    rows = [(u, (s + t) % n_items + 1, 4, 880_000_000 + 60 * t + u) for u, s, n in
            zip(range(1, n_users + 1), rng.integers(0, n_items, n_users), rng.integers(8, 20, n_users)) for t in range(n)]
    r = pd.DataFrame(rows, columns=['user', 'movie', 'rating', 'timestamp'])
    return r.assign(title='Movie ' + r.movie.astype(str).str.zfill(2)).sample(frac=1, random_state=seed).reset_index(drop=True)

@pytest.fixture(scope='session')
def cyc():
    "A planted sequence (`cycle_ratings`): what a next-item model must learn and a popularity list cannot."
    return cycle_ratings()

@pytest.fixture(scope='session')
def synth():
    "A small ratings frame from a known low-rank model (100 users, 60 movies)."
    return movierecs.synthetic_ratings(seed=0)

@pytest.fixture(scope='session')
def ratings():
    "ML-100k; skipped with the reason when it cannot be had (an error under CI), an error when MOVIERECS_DATA points at a bad copy."
    if not os.environ.get(movierecs.ENV_VAR) and not under_ci():
        try: return movierecs.load_ratings()
        except Exception as e: pytest.skip(f'ML-100k unavailable (set {movierecs.ENV_VAR}): {e}')
    return movierecs.load_ratings()

@pytest.fixture(scope='session')
def trained(ratings):
    "`trained(name)` -> the experiment's learner on ML-100k, trained once per test run (the notebooks share it)."
    return lambda name: movierecs.train_experiment(name, seed=SEED, ratings=ratings, progress=False, cache=True)

@pytest.fixture(scope='session')
def default_cache(tmp_path_factory, ratings):
    """A MOVIERECS_CACHE holding the two default models on ML-100k, trained once per test run and shared by the workers (under
    a file lock): the docs' blocks and the command's tests answer from it, and never touch the real cache."""
    import fcntl, torch
    from movierecs.app.defaults import default_folder
    root = tmp_path_factory.getbasetemp()
    if os.environ.get('PYTEST_XDIST_WORKER'): root = root.parent  # the run's root, which every worker's folder is in
    cache = root/'movierecs-defaults'
    with open(root/'movierecs-defaults.lock', 'a') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        before, threads = os.environ.get('MOVIERECS_CACHE'), torch.get_num_threads()
        os.environ['MOVIERECS_CACHE'] = str(cache)
        if PARALLEL: torch.set_num_threads(1)  # the other worker goes on meanwhile
        try:
            for by in ('ranking', 'rating'): default_folder(by)  # trained by the first worker to get here, found by the other
        finally:
            torch.set_num_threads(threads)
            if before is None: os.environ.pop('MOVIERECS_CACHE', None)
            else: os.environ['MOVIERECS_CACHE'] = before
    return cache

def _held_to_saved_numbers(item):
    return 'trained' in item.fixturenames or item.path.name in SAVED_NUMBERS

@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the groups into the test ids: later marks are ignored
def pytest_collection_modifyitems(config, items):
    "One xdist group for the runs held to saved numbers: they share learners and the machine's threads."
    for item in items:
        if _held_to_saved_numbers(item): item.add_marker(pytest.mark.xdist_group('saved_numbers'))

_MACHINE_THREADS = []

@pytest.fixture(autouse=True)
def _threads(request, monkeypatch):
    "On two workers: the machine's torch threads for runs held to saved numbers, one for the rest (subprocesses too)."
    if not PARALLEL: yield; return
    import torch
    if not _MACHINE_THREADS: _MACHINE_THREADS.append(torch.get_num_threads())
    n = _MACHINE_THREADS[0] if _held_to_saved_numbers(request.node) else 1
    monkeypatch.setenv('OMP_NUM_THREADS', str(n))
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    yield
    torch.set_num_threads(before)
