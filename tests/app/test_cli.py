"The `movierecs` command, in-process and as the installed console script."
import json, os, re, subprocess, sys
from pathlib import Path
import numpy as np, pytest
import movierecs, movierecs.train.experiments
from movierecs.__main__ import main

@pytest.fixture(scope='module')
def model_dir(synth, seed, tmp_path_factory):
    learn = movierecs.train_model('collab', epochs=2, wd=0.1, seed=seed, ratings=synth, progress=False)
    return str(movierecs.save(learn, tmp_path_factory.mktemp('cli')/'collab')), learn

def _run(capsys, *argv):
    main(list(argv))
    return capsys.readouterr().out

def test_models(capsys):
    out = _run(capsys, 'models')
    assert out.splitlines()[0].startswith('dot ') and 'dot_bias  ' in out and 'experiments: dot_bias, dot_bias_wd' in out
    rows = json.loads(_run(capsys, 'models', '--json'))
    assert [r['model'] for r in rows] == movierecs.list_models()
    assert all(r['experiments'] for r in rows)  # every model has a recorded run: the notebook's, top-N's or next-item's

def test_recommend(model_dir, capsys):
    path, learn = model_dir
    expected = movierecs.recommend(learn, 5, n=3)
    lines = _run(capsys, 'recommend', '--user', '5', '-n', '3', '--model', path).splitlines()
    assert lines[0].split() == ['#', 'title', 'stars'] and len(lines) == 4  # a rating model: its predicted stars, on the 1-5 scale
    assert lines[1].split(None, 1)[1].rsplit(None, 1) == [expected.index[0], f'{min(max(expected.iloc[0], 1), 5):.1f}']
    rows = json.loads(_run(capsys, 'recommend', '--user', '5', '-n', '3', '--model', path, '--json'))
    assert [r['title'] for r in rows] == expected.index.tolist()
    assert [r['stars'] for r in rows] == pytest.approx(expected.clip(1, 5).tolist(), abs=2e-5)

def test_similar_and_biases(model_dir, capsys):
    path, learn = model_dir
    rows = json.loads(_run(capsys, 'similar', 'Movie 3 (1990)', '--model', path, '--json'))
    assert [r['title'] for r in rows] == movierecs.similar_movies(learn, 'Movie 3 (1990)').index.tolist()
    low = json.loads(_run(capsys, 'biases', '--model', path, '--json'))
    high = json.loads(_run(capsys, 'biases', '--highest', '-n', '2', '--model', path, '--json'))
    assert [r['title'] for r in low] == movierecs.biases(learn).index.tolist()
    assert [r['title'] for r in high] == movierecs.biases(learn, n=2, lowest=False).index.tolist()

@pytest.mark.parametrize('argv, code, problem', [
    (['recommend', '--user', '5000'], 1, "User '5000' is not in the training data: valid users are 1 to 100"),
    (['similar', 'Movie 3'], 1, "'Movie 3' is not a movie the model was trained on. Did you mean"),
    (['recommend', '--user', '5', '-n', '0'], 2, 'argument -n: must be positive, got 0'),
    (['recommend'], 1, 'give one of --user ID (someone in the data), your own ratings'),
    (['recommend', '--user', '5', '--history', 'Movie 3 (1990)'], 1, 'give one of --user ID'),
    (['recommend', '--history', 'Movie 3 (1990)'], 1, 'does not read a history in order: give a next-item model'),
    (['train', 'svd'], 2, "argument MODEL: invalid choice: 'svd'"),
    (['train', 'dot', '--lr', '-1'], 2, 'argument --lr: must be positive'),
    (['train', 'dot', '--epochs', 'x'], 2, "argument --epochs: 'x' is not a number"),
    (['biases', '--lowest', '--highest'], 2, 'not allowed with argument'),
    (['fly'], 2, "invalid choice: 'fly'"),
    (['recommend', '--user', '5', '--by', 'stars'], 2, "argument --by: invalid choice: 'stars'"),
    (['recommend', '--user', '5', '--by', 'rating'], 1, '--by chooses between the default models'),
])
def test_bad_arguments_one_line_no_traceback(argv, code, problem, model_dir, capsys):
    path, _ = model_dir
    if argv[0] in ('recommend', 'similar', 'biases') and code == 1: argv = argv + ['--model', path]
    with pytest.raises(SystemExit) as e: main(argv)
    msg = e.value.code if isinstance(e.value.code, str) else capsys.readouterr().err
    code_ = 1 if isinstance(e.value.code, str) else e.value.code
    assert code_ == code and problem in msg and msg.strip().count('\n') == 0 and 'Traceback' not in msg

@pytest.fixture(scope='module')
def next_dir(cyc, tmp_path_factory):
    r = cyc
    learn = movierecs.train_model('sasrec', ratings=r, splits=(range(len(r)), []), epochs=30, lr=3e-3, seed=42, progress=False,
                                  n_factors=32, max_len=20)
    return str(movierecs.save(learn, tmp_path_factory.mktemp('cli')/'sasrec')), learn

def test_recommend_next_from_a_history(next_dir, capsys):
    path, learn = next_dir
    history = ['Movie 04', 'Movie 05', 'Movie 06']
    want = movierecs.recommend_next(learn, history, n=4)
    argv = ['recommend', *(a for t in history for a in ('--history', t)), '-n', '4', '--model', path]
    lines = _run(capsys, *argv).splitlines()
    assert lines[0].split() == ['#', 'title', 'match'] and len(lines) == 5 and lines[1].split()[1:] == ['Movie', '07', '100%']
    rows = json.loads(_run(capsys, *argv, '--json'))
    assert [r['title'] for r in rows] == want.title.tolist()
    assert [r['match'] for r in rows] == pytest.approx(np.exp(want.score - want.score.max()).tolist(), rel=1e-6)
    for bad, problem in (([*argv, '--history', 'Movie 04'], "'Movie 04' is in the history twice (places 1 and 4)"),
                         (['recommend', '--history', 'Movie 4', '--model', path], "'Movie 4' is not a movie the model was trained on"),
                         ([*argv, '--by', 'rating'], '--by chooses'),
                         (['recommend', '--rate', 'Movie 04=5', '--model', path], 'holds a next-item model: give what you watched')):
        with pytest.raises(SystemExit) as e: main(bad)
        assert problem in e.value.code and e.value.code.count('\n') == 0

def test_a_history_is_checked_before_a_model_loads_or_trains(next_dir, cyc, tmp_path, monkeypatch):
    ("A typo or a repeat in --history fails at once, in one short line: with an empty cache the default next-item model is not "
     "trained first, and a --model is read, not loaded. A title typed with spaces around or in decomposed Unicode is found.")
    path, learn = next_dir
    monkeypatch.setenv('MOVIERECS_CACHE', str(tmp_path))
    monkeypatch.setattr(movierecs.app.defaults, 'all_ratings', lambda: dict(ratings=cyc, splits=(np.arange(len(cyc)), np.arange(0))))
    def never(*a, **k): raise AssertionError('a model was loaded or trained')
    monkeypatch.setattr(movierecs.app.defaults, 'default_learner', never)
    monkeypatch.setattr(movierecs.app.cli, '_learner', never)
    for argv, problem in ((['--history', 'Movie 4'], "'Movie 4' is not a movie the model was trained on. Did you mean"),
                          (['--history', 'Movie 04', '--history', ' Movie 04 '], "'Movie 04' is in the history twice (places 1 and 2)"),
                          (['--history', 'Movie 04', '--model', path, '--history', 'x' * 10000], "'xxxxxxxx")):
        with pytest.raises(SystemExit) as e: main(['recommend', *argv])
        assert problem in e.value.code and e.value.code.count('\n') == 0 and len(e.value.code) < 400, e.value.code[:400]
    assert not any(tmp_path.iterdir())  # nothing trained, nothing cached
    import unicodedata
    cafe = {**learn.dls.classes, 'title': ['#na#', 'Café (1990)']}
    assert movierecs.parse_history(cafe, [unicodedata.normalize('NFD', 'Café (1990)')]) == [1]
    with pytest.raises(ValueError, match=r"'Café \(1990\)' is in the history twice"):
        movierecs.parse_history(cafe, [unicodedata.normalize('NFD', 'Café (1990)'), 'Café (1990)  '])
    with pytest.raises(TypeError, match=r"history\[1\] is list: give each title as text"):
        movierecs.parse_history(cafe, ['Café (1990)', ['x']])

def test_broken_model_folder_is_one_line(tmp_path):
    with pytest.raises(SystemExit) as e: main(['biases', '--model', str(tmp_path)])
    assert e.value.code.startswith('movierecs: error: No saved model at')

def test_broken_default_model_says_how_to_retrain(tmp_path, monkeypatch):
    monkeypatch.setenv('MOVIERECS_CACHE', str(tmp_path))
    (tmp_path/'default').mkdir(); (tmp_path/'default'/'model.json').write_text('{')
    with pytest.raises(SystemExit) as e: main(['biases'])
    assert 'not valid JSON' in e.value.code and f"delete {tmp_path/'default'} to retrain" in e.value.code

def test_help_on_every_command(capsys):
    for cmd in ['models', 'train', 'recommend', 'similar', 'biases']:
        with pytest.raises(SystemExit) as e: main([cmd, '--help'])
        assert e.value.code == 0 and f'usage: movierecs {cmd}' in capsys.readouterr().out
    with pytest.raises(SystemExit) as e: main(['reproduce', '--help'])
    assert e.value.code == 0 and 'usage: movierecs reproduce' in capsys.readouterr().out

def _quiet_process(argv, cache=None, modules=False):
    "`movierecs ARGV` in a new process (warnings on, as a person's terminal has them); with `modules`, then the heavy modules it loaded."
    env = {**os.environ, **({'MOVIERECS_CACHE': str(cache)} if cache else {})}
    env.pop('PYTHONWARNINGS', None)
    if not modules: return subprocess.run([str(Path(sys.executable).parent/'movierecs'), *argv], capture_output=True, text=True,
                                          timeout=300, env=env)
    code = (f"import sys\nfrom movierecs.__main__ import main\ntry: main({list(argv)!r})\nfinally: "
            "print('loaded:', [m for m in ('torch', 'fastai', 'torchvision', 'matplotlib', 'IPython') if m in sys.modules])")
    return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300, env=env)

def test_commands_that_need_the_learner_print_only_their_answer(synth, seed, tmp_path):
    "Fold-in by gradient descent (SVD++) and GLocal-K load their Learner: still the answer alone, nothing on stderr."
    for name in ('svdpp', 'glocal_k'):
        learn = movierecs.train_model(name, epochs=1, wd=None if movierecs.trains_by_lbfgs(name) else 0.1, seed=seed, ratings=synth,
                                      progress=False)
        path = str(movierecs.save(learn, tmp_path/name))
        for argv in (['recommend', '--user', '5', '-n', '3', '--model', path], ['similar', 'Movie 3 (1990)', '--model', path],
                     *([['recommend', '--rate', 'Movie 3 (1990)=5', '-n', '3', '--model', path]] if name == 'svdpp' else [])):
            r = _quiet_process(argv)
            assert r.returncode == 0 and r.stdout and r.stderr == '', (argv, r.stderr[-800:])

def test_commands_print_only_their_answer_and_load_no_fastai(model_dir):
    "Each command in its own process, from a saved model: exit 0, its answer, an empty stderr; `--help` and `models` import no torch."
    path, _ = model_dir
    for argv in (['--help'], ['models'], ['models', '--json'], ['recommend', '--user', '5', '--model', path],
                 ['recommend', '--rate', 'Movie 3 (1990)=5', '--model', path], ['similar', 'Movie 3 (1990)', '--model', path],
                 ['biases', '--model', path], ['train', '--help']):
        r = _quiet_process(argv)
        assert r.returncode == 0 and r.stdout and r.stderr == '', (argv, r.stderr[-800:])
        assert 'loaded: []' in _quiet_process(argv, modules=True).stdout, argv

def test_console_script_is_installed():
    exe = Path(sys.executable).parent/'movierecs'
    r = subprocess.run([str(exe), 'models', '--json'], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and json.loads(r.stdout)[0]['model'] == 'dot'
    r = subprocess.run([str(exe), 'recommend', '--user', '1', '--model', '/nonexistent'], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and r.stderr.strip().count('\n') == 0 and 'No saved model at /nonexistent' in r.stderr

@pytest.mark.realdata
def test_train_saves_a_model(tmp_path, capsys, ratings):
    out = json.loads(_run(capsys, 'train', 'dot_bias', '--epochs', '1', '--out', str(tmp_path/'m'), '--json'))
    # measured: 1 epoch of dot_bias (wd 0.1) 0.868-0.901 over seeds 42, 0, 1; the training mean rating 1.25-1.27
    assert out['model'] == 'dot_bias' and len(out['losses']) == 1 and out['losses'][0]['valid_loss'] < 0.95
    assert movierecs.load(tmp_path/'m').train_spec == dict(epochs=1, lr=5e-3, wd=0.1, seed=42)

@pytest.mark.slow
@pytest.mark.realdata
def test_default_models_answer_from_the_cache(default_cache, capsys, monkeypatch):
    ("Without --model: the best ranking run recommends, the notebook's collab run rates, each trained once (by `default_cache`, "
     "as the first command would) and answering from the cache from then on.")
    tmp_path = default_cache
    monkeypatch.setenv('MOVIERECS_CACHE', str(tmp_path))
    first = json.loads(_run(capsys, 'recommend', '--user', '196', '--json'))
    assert (tmp_path/'default-ranking'/'model.json').is_file() and len(first) == 10 and list(first[0]) == ['title', 'match', 'stars']
    ranker, rater = (movierecs.load(tmp_path/f) for f in ('default-ranking', 'default'))
    scores, stars = movierecs.recommend(ranker, 196, n=10), movierecs.recommend(rater, 196, n=2000)  # through the Learners
    assert [r['title'] for r in first] == scores.index.tolist()
    assert [r['match'] for r in first] == pytest.approx(np.exp(scores - scores.max()).tolist(), abs=1e-5)  # 1 for the first pick
    assert [r['stars'] for r in first] == pytest.approx(stars[scores.index].clip(1, 5).tolist(), abs=2e-5)  # the rating model's
    assert movierecs.load(tmp_path/'default-ranking').model_spec['model'] == movierecs.RANKERS[movierecs.DEFAULT_RANKER].model
    rated = json.loads(_run(capsys, 'recommend', '--user', '196', '--by', 'rating', '--json'))
    assert (tmp_path/'default'/'model.json').is_file() and list(rated[0]) == ['title', 'stars']
    for folder in ('default', 'default-ranking'):  # trained on every rating: no validation rows
        m = movierecs.recommendation.light.read_light(tmp_path/folder)
        assert len(m.rows) == 100_000 and not m.valid.any()
        assert json.loads((tmp_path/folder/'model.json').read_text())['train_spec']['rows'] == 'all'
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.rglob('*')}
    def no_training(*a, **k): raise AssertionError('trained again instead of loading the cached model')
    monkeypatch.setattr(movierecs.train.experiments, 'train_model', no_training)  # from here on, only the cache can answer
    assert json.loads(_run(capsys, 'recommend', '--user', '196', '--json')) == first
    assert json.loads(_run(capsys, 'recommend', '--user', '196', '--by', 'rating', '--json')) == rated
    sim = json.loads(_run(capsys, 'similar', 'Silence of the Lambs, The (1991)', '--json'))
    want = movierecs.similar_movies(movierecs.load(tmp_path/'default'), 'Silence of the Lambs, The (1991)', n=5)
    assert [r['title'] for r in sim] == want.index.tolist() and [r['cosine'] for r in sim] == pytest.approx(want.tolist())
    assert 'Silence of the Lambs, The (1991)' not in want.index
    high = json.loads(_run(capsys, 'biases', '--highest', '--json'))
    assert 'Titanic (1997)' in [r['title'] for r in high]  # the notebook's top-bias movie
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob('*')} == stamps  # nothing in the cache was rewritten
    # each command as a person runs it: a process that answers from the cache, prints only its answer, and loads no fastai
    rates = ['--rate', 'Star Wars (1977)=5', '--rate', 'Alien (1979)=5', '--rate', 'Sleepless in Seattle (1993)=1']
    for argv in (['recommend', '--user', '196', '--json'], ['recommend', '--by', 'rating', '--user', '196', '--json'],
                 ['similar', 'Silence of the Lambs, The (1991)', '--json'], ['biases', '--highest', '--json'],
                 ['recommend', *rates, '--json'], ['recommend', '--by', 'rating', *rates, '--json']):
        r = _quiet_process(argv, tmp_path)
        assert r.returncode == 0 and r.stderr == '', (argv, r.stderr[-800:])
        assert json.loads(r.stdout) == json.loads(_run(capsys, *argv)), argv
        assert 'loaded: []' in _quiet_process(argv, tmp_path, modules=True).stdout, argv
    assert json.loads(_quiet_process(['recommend', '--user', '196', '--json'], tmp_path).stdout) == first

def test_a_first_run_says_what_it_trains_on_stderr_only(synth, tmp_path, monkeypatch, capsys):
    ("With an empty cache: which model, on how many ratings, where it goes, a line per epoch with the time left (the ranking model, "
     "then the rating model that gives its list's stars); stdout stays JSON; then the cache answers and stderr stays empty.")
    monkeypatch.setenv('MOVIERECS_CACHE', str(tmp_path))
    monkeypatch.setattr(movierecs.app.defaults, 'all_ratings', lambda: dict(ratings=synth, splits=(np.arange(len(synth)), np.arange(0))))
    main(['recommend', '--user', '5', '--json'])
    out, err = capsys.readouterr()
    assert len(json.loads(out)) == 10  # the answer alone
    lines = err.splitlines()
    for by, model, epochs in (('ranking', 'mult_dae', 75), ('rating', 'collab', 5)):
        folder = tmp_path/('default' if by == 'rating' else 'default-ranking')
        assert lines[0] == (f"movierecs: training the default {by} model ({model}, {epochs} epochs on all {len(synth):,} ratings of "
                            f"ML-100k) once; it is then cached in {folder}. The time left shows below.")
        assert lines[epochs].startswith(f'  epoch {epochs}/{epochs}: train loss ') and lines[epochs].endswith(', done')
        assert all(re.fullmatch(rf'  epoch {i}/{epochs}: train loss [0-9.]+, \d+ s, about \d+ s left', lines[i]) for i in range(1, epochs))
        assert json.loads((folder/'model.json').read_text())['train_spec']['rows'] == 'all'
        lines = lines[epochs + 1:]
    assert lines == []
    for by in ('ranking', 'rating'):  # cached now: the answer, nothing on stderr
        main(['recommend', '--user', '5', '--by', by, '--json'])
        assert capsys.readouterr().err == ''

def test_epoch_lines_on_a_terminal_rewrite_one_line():
    import io
    class Tty(io.StringIO):
        def isatty(self): return True
    out = Tty()
    learn = movierecs.train_model('dot', epochs=3, ratings=movierecs.synthetic_ratings(seed=0), progress=False,
                                  cbs=[movierecs.EpochLines(out)])
    text = out.getvalue()
    assert text.count('\r') == 3 and text.count('\n') == 1 and text.endswith(', done\033[K\n') and learn.loss_table.df.shape[0] == 3
    last = learn.loss_table.df.iloc[-1]
    assert f'epoch 3/3: train loss {last.train_loss:.4f}, valid loss {last.valid_loss:.4f}, ' in text

def test_train_takes_the_faithful_path_on_request(synth, tmp_path, monkeypatch, capsys):
    "`train --faithful` trains fastai's own `Learner` on its `TabDataLoader`s; without it, the fast path (here on the synthetic ratings)."
    from fastai.learner import Learner
    from fastai.tabular.core import TabDataLoader
    from movierecs.engine.fastai_glue import FastLearner
    from movierecs.engine.tensors import TensorDataLoader
    monkeypatch.setattr(movierecs.train.experiments, 'load_ratings', lambda: synth)
    trained, train_model = [], movierecs.train.experiments.train_model
    monkeypatch.setattr(movierecs.train.experiments, 'train_model', lambda *a, **k: trained.append(train_model(*a, **k)) or trained[-1])
    for flag in (['--faithful'], []):
        _run(capsys, 'train', 'collab', '--epochs', '1', '--out', str(tmp_path/str(len(trained))), '--json', *flag)
    (faithful, fast), _ = trained, capsys.readouterr()
    assert type(faithful) is Learner and type(faithful.dls.train) is TabDataLoader
    assert type(fast) is FastLearner and type(fast.dls.train) is TensorDataLoader

def test_a_cached_default_trained_otherwise_is_retrained(model_dir, tmp_path, monkeypatch, capsys):
    "A model in the cache that was not trained with the default's settings is not served: it is retrained (here: stopped at training)."
    from types import SimpleNamespace
    from movierecs.app.defaults import _trained_as, default_ranker
    spec = default_ranker()
    fit = {k: spec[k] for k in ('epochs', 'lr', 'wd', 'seed')}
    good = SimpleNamespace(model_spec=dict(model=spec['model'], **{k: v for k, v in spec.items() if k not in fit and k != 'model'}),
                           train_spec={**fit, 'rows': 'all'})
    assert _trained_as(good, spec)
    assert not _trained_as(SimpleNamespace(model_spec=good.model_spec, train_spec=fit), spec)  # the notebook's 80/20 run
    assert not _trained_as(SimpleNamespace(model_spec=good.model_spec, train_spec={**fit, 'epochs': 2, 'rows': 'all'}), spec)
    assert not _trained_as(SimpleNamespace(model_spec={**good.model_spec, 'model': 'collab'}, train_spec=good.train_spec), spec)
    assert not _trained_as(SimpleNamespace(model_spec={**good.model_spec, 'low': 1.0}, train_spec=good.train_spec), spec)
    path, _ = model_dir  # a collab trained 2 epochs on synthetic data, not the default's 5 on ML-100k
    import shutil
    monkeypatch.setenv('MOVIERECS_CACHE', str(tmp_path)); shutil.copytree(path, tmp_path/'default')
    import movierecs.train.experiments
    def stop(*a, **k): raise RuntimeError('retraining')
    monkeypatch.setattr(movierecs.train.experiments, 'train_model', stop)
    with pytest.raises(RuntimeError, match='retraining'): movierecs.default_learner('rating')
    assert 'trained with other settings' in capsys.readouterr().err
