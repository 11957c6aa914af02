"Shared fixtures: the test seed, synthetic and real ratings, and experiments trained at most once per run."
import os
import pytest
import movierecs

SEED = 42  # the one seed of the test suite

def under_ci():
    "True when the environment says this is CI (CI=true, as GitHub Actions, GitLab and .ci/run set it)."
    return os.environ.get('CI', '').strip().lower() not in ('', '0', 'false', 'no')

def pytest_configure(config):
    "Under CI, ML-100k must load: without it every real-data test would skip and the run would still pass."
    if under_ci() and not config.option.help and not config.option.version:
        try: movierecs.load_ratings()
        except Exception as e:
            pytest.exit(f"CI is set but ML-100k cannot be loaded, so the real-data tests cannot run: {' '.join(str(e).split())}", returncode=3)

@pytest.fixture(scope='session')
def seed(): return SEED

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
