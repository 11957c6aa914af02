"Reliability (issue 12): a crash or a concurrent reader never sees half a model; bad input is a clear error, never a silent answer."
import json, os, re, signal, socket, subprocess, sys, textwrap, threading, time
from pathlib import Path
import numpy as np, pandas as pd, pytest, torch
import movierecs
from movierecs import ModelFileError, load, save, train_model

@pytest.fixture(scope='module')
def pair(synth, seed):
    "Two different trained models: what a folder holds before a save, and what the save writes."
    return (train_model('dot_bias', epochs=1, seed=seed, ratings=synth, progress=False),
            train_model('collab', epochs=1, seed=seed, ratings=synth, progress=False))

def _which(learn): return learn.model_spec['model']

class _Crash(BaseException): "The process dies here."

_STEPS = [(os, 'replace'), (os, 'remove'), (os, 'chmod'), (Path, 'unlink'), (os, 'fdopen')]

def _crashing_at(k, monkeypatch, more=()):
    "Make the k-th file-system step of a save (create, write, rename, delete; and the steps `more`) raise `_Crash`; returns the counter."
    count = [0]
    for owner, name in [*_STEPS, *more]:
        real = getattr(owner, name)
        def step(*a, _real=real, **kw):
            count[0] += 1
            if count[0] == k: raise _Crash
            return _real(*a, **kw)
        monkeypatch.setattr(owner, name, step)
    return count

def test_a_crash_at_any_step_of_a_save_leaves_the_old_model_or_the_new(pair, tmp_path, monkeypatch):
    old, new = pair
    seen, k = [], 1
    while True:
        folder = tmp_path/f'm{k}'
        save(old, folder)
        with monkeypatch.context() as m:
            _crashing_at(k, m)
            try: save(new, folder); finished = True
            except _Crash: finished = False
        seen.append(_which(load(folder)))  # never an error: one whole model or the other
        if finished: break
        k += 1
    assert seen[0] == 'dot_bias' and seen[-1] == 'collab' and set(seen) == {'dot_bias', 'collab'} and k > 5, seen
    assert seen == sorted(seen, key=lambda s: s == 'collab')  # the old model until the one step that switches, then the new

def test_loading_while_another_thread_saves_sees_whole_models(pair, tmp_path, monkeypatch):
    old, new = pair
    folder = save(old, tmp_path/'m')
    real = movierecs.train.modelfile._read_meta
    def slow(path):  # widen the gap between reading model.json and reading the weights it names, where a save can land
        meta = real(path); time.sleep(0.02); return meta
    monkeypatch.setattr(movierecs.train.modelfile, '_read_meta', slow)
    stop, errors = threading.Event(), []
    def writer():
        while not stop.is_set():
            for learn in pair:
                try: save(learn, folder)
                except Exception as e: errors.append(e)
    t = threading.Thread(target=writer); t.start()
    try: got = [_which(load(folder)) for _ in range(25)]
    finally: stop.set(); t.join()
    assert not errors and set(got) <= {'dot_bias', 'collab'}

WRITER = textwrap.dedent('''
    import os, sys, movierecs
    ratings = movierecs.synthetic_ratings(seed=0)
    pair = [movierecs.train_model(m, epochs=1, ratings=ratings, progress=False) for m in ('dot_bias', 'collab')]
    for folder in map(str.strip, sys.stdin):  # a folder: a child that saves there over and over, until killed
        movierecs.save(pair[0], folder)
        pid = os.fork()
        if pid == 0:
            try:
                while True:
                    for learn in pair: movierecs.save(learn, folder)
            finally: os._exit(1)
        print(pid, flush=True)
        sys.stdin.readline(); os.waitpid(pid, 0); print('reaped', flush=True)
''')

@pytest.mark.slow
def test_kill_9_while_saving_never_loses_the_model(tmp_path):
    "A real SIGKILL at random moments of a process that saves over and over: the folder always loads one whole model."
    script = tmp_path/'writer.py'; script.write_text(WRITER)
    rng, got = np.random.default_rng(0), []
    p = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                         env={**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(Path(movierecs.__file__).parents[1])})
    try:
        for i in range(6):  # the libraries load once; each saving process is forked from the one that loaded them
            p.stdin.write(f'{tmp_path/f"m{i}"}\n'); p.stdin.flush()
            pid = int(p.stdout.readline())
            time.sleep(float(rng.uniform(0.05, 0.6)))
            os.kill(pid, signal.SIGKILL)
            p.stdin.write('reap\n'); p.stdin.flush()
            assert p.stdout.readline().strip() == 'reaped'
            got.append(_which(load(tmp_path/f'm{i}')))
    finally: p.kill(); p.wait()
    assert set(got) <= {'dot_bias', 'collab'}

def test_a_save_landing_between_reading_the_description_and_the_weights(pair, tmp_path, monkeypatch):
    "The reader read model.json, another process then saved, removing the weights it named: the reader loads the new model."
    old, new = pair  # with the folder's lock no save lands there; this is the fallback for a folder without one
    folder = save(old, tmp_path/'m')
    (folder/'.model.lock').unlink()
    real, calls = movierecs.train.modelfile._read_meta, []
    def meanwhile(path):
        meta = real(path)
        calls.append(1)
        if len(calls) == 1: save(new, folder)  # (save reads model.json too: counted, not repeated)
        return meta
    monkeypatch.setattr(movierecs.train.modelfile, '_read_meta', meanwhile)
    assert _which(load(folder)) == 'collab' and len(calls) > 1

@pytest.mark.parametrize('exchange', [True, False])
def test_a_crash_at_any_step_of_a_group_write_leaves_all_old_or_all_new(tmp_path, monkeypatch, exchange):
    """reproduce's losses.csv, losses.md and env.json are one group. Where two folders can be exchanged in one step, a reader
    sees all old or all new at every moment, with no `recover` (the results folder switches whole); elsewhere (the journal),
    after a crash and `recover`, never a new one beside an old. A file outside the group and a subfolder stay as they were."""
    import shutil, tempfile
    from movierecs.core import files
    from movierecs.core.files import recover, write_atomic
    if not exchange: monkeypatch.setattr(files, '_exchange', lambda a, b: False)
    names = ('losses.csv', 'losses.md', 'env.json')
    seen, k = [], 1
    while True:
        folder = tmp_path/f'r{k}'
        write_atomic({folder/n: 'old' for n in names})
        (folder/'notes.txt').write_text('mine'); (folder/'curves').mkdir(); (folder/'curves'/'a.png').write_text('png')
        with monkeypatch.context() as m:
            _crashing_at(k, m, [(os, 'link'), (tempfile, 'mkdtemp'), (shutil, 'rmtree'), (files, '_exchange')])
            try: write_atomic({folder/n: 'new' for n in names}); finished = True
            except _Crash: finished = False
        if not exchange: recover(folder)  # what the next write in the folder does first
        contents = {(folder/n).read_text() for n in names}
        assert len(contents) == 1, (k, contents)
        assert (folder/'notes.txt').read_text() == 'mine' and (folder/'curves'/'a.png').read_text() == 'png'
        seen.append(contents.pop())
        recover(folder)
        assert {(folder/n).read_text() for n in names} == {seen[-1]}
        assert not [p for p in folder.iterdir() if p.suffix == '.json' and p.name.startswith('.movierecs-journal')]
        if finished: break
        k += 1
    assert seen[0] == 'old' and seen[-1] == 'new' and k > 5
    write_atomic({folder/n: 'newer' for n in names})  # a write after crashes: the crashed writers' next states are gone
    assert [p.name for p in tmp_path.iterdir() if 'movierecs-next' in p.name and p.name.startswith(f'.{folder.name}.')] == []

def test_group_writes_keep_the_files_others_write_meanwhile_and_a_symlinked_folder(tmp_path):
    "A group's switch drops nothing another writer puts in the folder meanwhile, and writes through a symlinked folder to its target."
    from movierecs.core.files import write_atomic
    code = ("import sys\nfrom pathlib import Path\nfrom movierecs.core.files import write_atomic\n"
            "D, kind = Path(sys.argv[1]), sys.argv[2]\n"
            "for i in range(80):\n    write_atomic({D/'a': str(i), D/'b': str(i)} if kind == 'group' else {D/f'single_{i}': 'x'})\n")
    (tmp_path/'w.py').write_text(code); folder = tmp_path/'results'; folder.mkdir()
    env = {**os.environ, 'PYTHONPATH': str(Path(movierecs.__file__).parents[1])}
    ps = [subprocess.Popen([sys.executable, str(tmp_path/'w.py'), str(folder), k], env=env, stderr=subprocess.PIPE, text=True)
          for k in ('group', 'single')]
    errs = [p.communicate(timeout=120)[1] for p in ps]
    assert [p.returncode for p in ps] == [0, 0], errs
    names = sorted(os.listdir(folder))
    assert names == sorted(['a', 'b', *(f'single_{i}' for i in range(80))]) and (folder/'a').read_text() == '79'
    assert not [n for n in os.listdir(tmp_path) if 'movierecs' in n]
    real = tmp_path/'real'; real.mkdir(); (real/'keep.txt').write_text('k'); (tmp_path/'link').symlink_to('real')
    write_atomic({tmp_path/'link'/'x': '1', tmp_path/'link'/'y': '1'})
    assert (tmp_path/'link').is_symlink() and sorted(os.listdir(real)) == ['keep.txt', 'x', 'y']
    assert not [n for n in os.listdir(tmp_path) if 'movierecs' in n]

def test_a_reader_holding_the_results_folder_never_sees_a_mix(tmp_path):
    ("A reader who opens the folder once and reads the group's files in it while groups are written sees one group's files: "
     "never a mix. (The folder it holds may be the old group's, removed once the new one is in place: its files are then gone, "
     "and it reads again.)")
    from movierecs.core.files import write_atomic
    folder, names, stop = tmp_path/'results', ('losses.csv', 'losses.md', 'env.json'), threading.Event()
    mixes, whole, gone, errors = [], [0], [0], []
    write_atomic({folder/n: '0' for n in names})
    def reader():
        try:
            while not stop.is_set():
                fd = os.open(folder, os.O_RDONLY)
                try:
                    got = set()
                    for n in names:
                        f = os.open(n, os.O_RDONLY, dir_fd=fd)
                        try: got.add(os.read(f, 100))
                        finally: os.close(f)
                        time.sleep(0.0005)
                    if len(got) > 1: mixes.append(got)
                    whole[0] += 1
                except FileNotFoundError: gone[0] += 1
                finally: os.close(fd)
        except BaseException as e: errors.append(e)
    t = threading.Thread(target=reader); t.start()
    try:
        for i in range(1, 150): write_atomic({folder/n: str(i) for n in names})
    finally: stop.set(); t.join()
    assert errors == [] and mixes == [] and whole[0] > 10 and (folder/'env.json').read_text() == '149', (errors, mixes, whole, gone)

def test_a_stale_temporary_file_is_cleaned_and_a_fresh_one_kept(tmp_path):
    from movierecs.core.files import STALE, recover
    stale, fresh = tmp_path/'.movierecs-tmp.losses.csv.abcdefgh.tmp', tmp_path/'.movierecs-tmp.losses.md.abcdefgh.tmp'
    mine = tmp_path/'.my-notes.tmp'  # a user's own hidden file: never ours to delete
    for f in (stale, fresh, mine): f.write_text('x')
    for f in (stale, mine): os.utime(f, (time.time() - STALE - 10,) * 2)
    recover(tmp_path)
    assert not stale.exists() and fresh.exists() and mine.exists()  # a fresh one may be another process's file being written

def test_a_planted_journal_moves_nothing_but_our_own_temporary_files(tmp_path):
    "A journal naming files elsewhere, or files that are not write_atomic's temporaries, is ignored: recover never moves them."
    from movierecs.core.files import recover
    victim, outside = tmp_path/'victim.txt', tmp_path/'elsewhere'
    victim.write_text('keep'); outside.mkdir()
    folder = tmp_path/'results'; folder.mkdir()
    (folder/'.movierecs-journal.x.json').write_text(json.dumps([[str(victim), str(outside/'stolen.txt')],
                                                                [str(folder/'notes.txt'), str(folder/'losses.csv')]]))
    (folder/'notes.txt').write_text('mine')
    assert recover(folder) == 0 and victim.read_text() == 'keep' and (folder/'notes.txt').exists()
    assert not (outside/'stolen.txt').exists() and not (folder/'losses.csv').exists()

def test_a_group_with_a_folder_in_the_way_changes_nothing(tmp_path):
    from movierecs.core.files import write_atomic
    write_atomic({tmp_path/'losses.csv': 'old', tmp_path/'losses.md': 'old'})
    (tmp_path/'env.json').mkdir()
    with pytest.raises(IsADirectoryError, match='env.json: it is a folder or a special file'):
        write_atomic({tmp_path/n: 'new' for n in ('losses.csv', 'losses.md', 'env.json')})
    assert (tmp_path/'losses.csv').read_text() == (tmp_path/'losses.md').read_text() == 'old'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['env.json', 'losses.csv', 'losses.md']

# --- the catalogue of bad input: one case each, the error type, and a message that names the problem and the fix ---

@pytest.fixture(scope='module')
def learn(synth, seed): return train_model('dot_bias', epochs=1, seed=seed, ratings=synth, progress=False)

def _fit(synth, **kw): return train_model(kw.pop('model', 'dot'), epochs=kw.pop('epochs', 1), ratings=kw.pop('ratings', synth),
                                          progress=False, **kw)

BAD_ARGUMENTS = {  # name: (call(synth, learn), error, the problem and the fix, as a regex)
    'bs 0': (lambda s, l: movierecs.dataloaders(s, bs=0), ValueError, 'bs must be a positive integer, got 0'),
    'bs fractional': (lambda s, l: movierecs.dataloaders(s, bs=1.5), ValueError, 'bs must be a positive integer, got 1.5'),
    'n_factors 0': (lambda s, l: _fit(s, n_factors=0), ValueError, 'n_factors must be a positive integer, got 0'),
    'n_factors negative': (lambda s, l: _fit(s, n_factors=-3), ValueError, 'n_factors must be a positive integer'),
    'y_range one number': (lambda s, l: _fit(s, y_range=(5,)), ValueError, r'y_range must be a pair \(low, high\).*e.g. \(0, 5.5\)'),
    'y_range reversed': (lambda s, l: _fit(s, y_range=(5, 0)), ValueError, 'low < high'),
    'seed None': (lambda s, l: _fit(s, seed=None), ValueError, 'seed must be an integer from 0 to 2\\*\\*32-1, got None'),
    'ensemble of nothing': (lambda s, l: _fit(s, model='ensemble', members=()), ValueError, 'members must be a non-empty list.*e.g.'),
    'ensemble in an ensemble': (lambda s, l: _fit(s, model='ensemble', members=('ensemble',)), ValueError,
                                "'ensemble' cannot be a member; use.*collab"),
    'splits overlap': (lambda s, l: movierecs.dataloaders(s, splits=(np.arange(100), np.arange(50, 150))), movierecs.DataError,
                       'in both train and valid.*must not overlap'),
    'splits outside': (lambda s, l: movierecs.dataloaders(s, splits=(np.arange(100), np.arange(100, 10**6))), movierecs.DataError,
                       'outside the 3051 rows'),
    'empty training set': (lambda s, l: movierecs.dataloaders(s, splits=([], np.arange(len(s)))), movierecs.DataError,
                           'train set is empty: give it some rows'),
    'string ratings': (lambda s, l: movierecs.dataloaders(s.assign(rating=s.rating.astype(str))), movierecs.DataError,
                       'not numbers: convert it'),
    'ratings outside y_range': (lambda s, l: _fit(s, ratings=s.assign(rating=s.rating * 10)), ValueError,
                                r"outside the model's y_range \(0, 5.5\).*Pass y_range"),
    'recommend n 0': (lambda s, l: movierecs.recommend(l, 1, n=0), ValueError, 'n must be a positive integer, got 0'),
    'similar n 0': (lambda s, l: movierecs.similar_movies(l, 'Movie 3 (1990)', n=0), ValueError, 'n must be a positive integer, got 0'),
    'similar users n -1': (lambda s, l: movierecs.similar_users(l, 1, n=-1), ValueError, 'n must be a positive integer, got -1'),
    'biases n 0': (lambda s, l: movierecs.biases(l, n=0), ValueError, 'n must be a positive integer, got 0'),
    "fastai's #na# as a title": (lambda s, l: movierecs.similar_movies(l, '#na#'), KeyError,
                                 r"#na#\\*.? is not a movie the model was trained on"),
    "#na# rated by someone new": (lambda s, l: movierecs.recommend_for(l, {'#na#': 4}), KeyError, r"#na#\\*.? is not a movie"),
}

@pytest.mark.parametrize('case', BAD_ARGUMENTS)
def test_bad_argument(case, synth, learn):
    call, err, problem = BAD_ARGUMENTS[case]
    with pytest.raises(err, match=problem): call(synth, learn)

U_DATA = {  # a u.data line read with verify=False: (line, what the error points at)
    'a rating of 3.5': (b'1\t2\t3.5\t881250949\n', r"line 1: '1.*3\.5"),
    'a user id past int64': (b'99999999999999999999\t2\t3\t881250949\n', 'line 1'),
    'a rating in exponent form': (b'1\t2\t4e0\t881250949\n', 'line 1'),
}

@pytest.mark.parametrize('case', U_DATA)
def test_u_data_values_are_never_silently_changed(case):
    from movierecs.data.ml100k import _parse_udata
    line, where = U_DATA[case]
    with pytest.raises(movierecs.DataError, match=f"malformed at {where}.*expected 4 tab-separated integers.*Replace it"):
        _parse_udata(line)

def _zip(path, files, **kw):
    import zipfile
    with zipfile.ZipFile(path, 'w', compression=zipfile.ZIP_DEFLATED, **kw) as z:
        for name, data in files.items(): z.writestr(name, data)
    return path

def test_special_files_are_refused_at_once(tmp_path, monkeypatch):
    fifo = tmp_path/'x.zip'; os.mkfifo(fifo)
    for src in ('/dev/zero', str(fifo)):
        monkeypatch.setenv(movierecs.ENV_VAR, src)
        with pytest.raises(movierecs.DataError, match='neither a folder nor a regular file.*give the extracted ml-100k folder'):
            movierecs.load_ratings()
    monkeypatch.setenv(movierecs.ENV_VAR, '')
    with pytest.raises(movierecs.DataError, match='MOVIERECS_DATA is set but empty: point it at'): movierecs.load_ratings()

def test_no_network_is_a_data_error(monkeypatch):
    import fastai.data.external as external
    from urllib.error import URLError
    def offline(*a, **k): raise URLError('[Errno -2] Name or service not known')
    monkeypatch.delenv(movierecs.ENV_VAR, raising=False)
    monkeypatch.setattr(external, 'untar_data', offline)
    with pytest.raises(movierecs.DataError, match='could not be downloaded.*no network\\? Set MOVIERECS_DATA'): movierecs.load_ratings()

def test_hostile_archives(tmp_path):
    from movierecs.data.ml100k import MAX_FILE, read_file
    bomb = _zip(tmp_path/'bomb.zip', {'ml-100k/u.data': b'\0' * (MAX_FILE + 1)})
    assert bomb.stat().st_size < MAX_FILE // 100  # small on disk, too big inflated
    with pytest.raises(movierecs.DataError, match='would inflate to .* bytes, more than any ML-100k file'): read_file(bomb, 'u.data')
    good = _zip(tmp_path/'good.zip', {'ml-100k/u.data': b'1\t2\t3\t4\n' * 5000})
    data = bytearray(good.read_bytes())
    data[60:70] = b'\xff' * 10  # corrupt the deflate stream
    bad = tmp_path/'bad.zip'; bad.write_bytes(bytes(data))
    with pytest.raises(movierecs.DataError, match='damaged zip archive.*replace it with a fresh ml-100k.zip'):
        read_file(bad, 'u.data', verify=False)

# --- the command line: one line, the right exit code, never a traceback ---

def _cli(*argv, env=None, **kw):
    return subprocess.run([sys.executable, '-W', 'ignore', '-m', 'movierecs', *argv], capture_output=True, text=True,
                          env={**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(Path(movierecs.__file__).parents[1]),
                               **(env or {})}, **kw)

@pytest.fixture(scope='module')
def saved_model(learn, tmp_path_factory): return str(save(learn, tmp_path_factory.mktemp('rel')/'m'))

def _one_line(r, problem, code=1):
    assert r.returncode == code and 'Traceback' not in r.stderr, r.stderr
    lines = [l for l in r.stderr.splitlines() if l.startswith('movierecs: ')]
    assert len(lines) == 1 and re.search(problem, lines[0]), r.stderr

def test_cli_nan_loss_is_one_line(synth, tmp_path):
    r = _cli('train', 'dot_raw', '--lr', '1e6', '--epochs', '1', '--out', str(tmp_path/'m'), '--json',
             env={movierecs.ENV_VAR: str(Path(os.environ.get(movierecs.ENV_VAR, '/nonexistent')))})
    if 'ML-100k' in r.stderr and 'not found' in r.stderr: pytest.skip('ML-100k unavailable')
    _one_line(r, r'movierecs: error: The training loss became (nan|inf) at epoch 0.*Lower the learning rate')
    assert not (tmp_path/'m'/'model.json').exists()

def test_cli_unwritable_out_fails_before_training(tmp_path):
    (tmp_path/'file').write_text('x')
    r = _cli('train', 'dot', '--epochs', '1', '--out', str(tmp_path/'file'/'m'))
    _one_line(r, r'Cannot save to .*file/m: .*file is a file, not a folder\. Choose a folder\. \(the --out folder\)')
    assert 'Epoch' not in r.stderr + r.stdout  # no training ran

def test_cli_closed_pipe_is_quiet(tmp_path):
    "`movierecs similar ... | head -1`: far more output than a pipe holds, the reader gone after one line: no BrokenPipeError."
    many = movierecs.synthetic_ratings(n_users=30, n_movies=4000, density=0.05, seed=0)
    learn = train_model('dot_bias', epochs=1, ratings=many, progress=False)
    saved_model, title = save(learn, tmp_path/'many'), learn.dls.classes['title'][1]
    p = subprocess.Popen(f"{sys.executable} -W ignore -m movierecs similar '{title}' -n 100000 --model {saved_model} | head -1",
                         shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, 'PYTHONPATH': str(Path(movierecs.__file__).parents[1])})
    out, err = p.communicate(timeout=120)
    assert len(out.splitlines()) == 1 and 'Traceback' not in err and 'BrokenPipe' not in err, err

def test_cli_ctrl_c_is_exit_130_and_one_line(tmp_path, synth):
    "SIGINT in the middle of training: exit 130, 'movierecs: interrupted', no traceback, no model written."
    p = subprocess.Popen([sys.executable, '-W', 'ignore', '-m', 'movierecs', 'train', 'collab', '--epochs', '50',
                          '--out', str(tmp_path/'m')],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env={**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(Path(movierecs.__file__).parents[1])})
    seen = b''  # past the imports, into the training, on any CPU: the first epoch's line (stdout is a pipe: lines on stderr)
    while b'epoch 1/50' not in seen and p.poll() is None: seen += os.read(p.stderr.fileno(), 4096)
    p.send_signal(signal.SIGINT)
    out, err = (b.decode() for b in p.communicate(timeout=60))
    err = seen.decode() + err
    if 'ML-100k' in err and 'not found' in err: pytest.skip('ML-100k unavailable')
    assert 'epoch 1/50' in err and 'epoch 2/50' not in err, err[-500:]  # interrupted in the second epoch
    assert p.returncode == 130 and 'Traceback' not in err and err.strip().splitlines()[-1] == 'movierecs: interrupted', err[-500:]
    assert not (tmp_path/'m'/'model.json').exists()

# --- the second hostile round: what a saved-model folder, a ratings file and the arguments may hold ---

def test_save_removes_only_the_weights_its_own_model_json_named(learn, tmp_path):
    folder = tmp_path/'own'; folder.mkdir()
    for name in ('model.pt', 'model-0123456789abcdef.pt', 'notes.txt'): (folder/name).write_text('mine')
    save(learn, folder)
    first = json.loads((folder/'model.json').read_text())['weights']
    assert all((folder/n).read_text() == 'mine' for n in ('model.pt', 'model-0123456789abcdef.pt', 'notes.txt'))
    learn.model.state_dict()  # the same model saved again after a change of weights: the old weights file goes
    with torch.no_grad(): next(learn.model.parameters()).add_(0.001)
    try: save(learn, folder)
    finally:
        with torch.no_grad(): next(learn.model.parameters()).sub_(0.001)
    assert not (folder/first).exists() and (folder/'model.pt').exists() and _which(load(folder)) == 'dot_bias'

@pytest.mark.parametrize('what', ['weights a pipe', 'weights huge', 'model.json huge', 'lock a pipe', 'model.json nested'])
def test_hostile_model_folders(learn, tmp_path, what):
    folder = save(learn, tmp_path/'m')
    weights = folder/json.loads((folder/'model.json').read_text())['weights']
    if what == 'weights a pipe': weights.unlink(); os.mkfifo(weights)
    if what == 'weights huge': os.truncate(weights, movierecs.train.modelfile.MAX_WEIGHTS + 1)  # sparse: nothing is written
    if what == 'model.json huge': os.truncate(folder/'model.json', movierecs.train.modelfile.MAX_META + 1)
    if what == 'model.json nested': (folder/'model.json').write_text('[' * 100000 + ']' * 100000)
    if what == 'lock a pipe':
        (folder/'.model.lock').unlink(); os.mkfifo(folder/'.model.lock')
        with pytest.raises(ValueError, match='.model.lock there is not a regular file'): save(learn, folder)
        return
    problem = {'weights a pipe': 'is not a regular file', 'weights huge': 'more than a saved model',
               'model.json huge': 'more than a saved model',
               'model.json nested': 'is not valid JSON'}[what]
    with pytest.raises(ModelFileError, match=problem): load(folder)

def test_save_refuses_what_cannot_be_loaded(learn, synth, tmp_path, monkeypatch):
    (tmp_path/'file').write_text('x')
    with pytest.raises(ValueError, match='it is a file, not a folder'): save(learn, tmp_path/'file')
    with pytest.raises(ValueError, match=f"Cannot save to {tmp_path/'file'/'sub'}: {tmp_path/'file'} is a file, not a folder"):
        save(learn, tmp_path/'file'/'sub')
    with pytest.raises(ValueError, match='folder to save to is empty'): save(learn, '')
    monkeypatch.setenv('HOME', str(tmp_path))  # '~' is the home folder, as the shell reads it
    assert save(learn, '~/home-model') == tmp_path/'home-model' and _which(load('~/home-model')) == 'dot_bias'
    (tmp_path/'odd').mkdir(); (tmp_path/'odd'/'model.json').mkdir()
    with pytest.raises(movierecs.ModelFileError, match=r'model.json is not a regular file \(a folder or a pipe\?\)'): load(tmp_path/'odd')
    broken = train_model('dot', epochs=1, ratings=synth, progress=False)
    with torch.no_grad(): broken.model.movie_factors.weight[3, 0] = float('nan')
    with pytest.raises(ValueError, match='hold NaN or inf values.*lower learning rate'): save(broken, tmp_path/'nan')

MORE_BAD_ARGUMENTS = {
    'user ids of two types': (lambda s, l: movierecs.dataloaders(s.assign(user=s.user.astype(object).where(s.user != 5, 'five'))),
                              movierecs.DataError, 'user column mixes int and str.*same type'),
    'complex ratings': (lambda s, l: movierecs.dataloaders(s.assign(rating=s.rating + 1j)), movierecs.DataError, 'not numbers'),
    'epochs absurd': (lambda s, l: _fit(s, epochs=10**23), ValueError, r'epochs must be a positive integer \(at most 100,000\)'),
    'epochs True': (lambda s, l: _fit(s, epochs=True), ValueError, 'epochs must be a positive integer'),
    'lr infinite': (lambda s, l: _fit(s, lr=float('inf')), ValueError, r'lr must be positive \(a finite number up to 1e\+06, e.g. 5e-3\)'),
    'lr a string': (lambda s, l: _fit(s, lr='1e-3'), ValueError, 'lr must be positive'),
    'wd infinite': (lambda s, l: _fit(s, wd=float('inf')), ValueError, 'wd must be zero or positive'),
    'seed past 2**32': (lambda s, l: _fit(s, seed=2**70), ValueError, 'seed must be an integer from 0 to 2\\*\\*32-1'),
    'n_act 0': (lambda s, l: _fit(s, model='collab_nn', n_act=0), ValueError, 'n_act must be a positive integer'),
    'layers negative': (lambda s, l: _fit(s, model='collab_emb_nn', layers=(-5,)), ValueError,
                        'every width in layers must be a positive integer'),
    'no DataLoaders': (lambda s, l: movierecs.get_learner('dot', None), TypeError, 'dls must be the DataLoaders of movierecs.dataloaders'),
    'True as a user': (lambda s, l: movierecs.recommend(l, True), KeyError, 'not a user id: give an id such as 196'),
    'valid_pct None': (lambda s, l: movierecs.dataloaders(s, valid_pct=None), movierecs.DataError,
                       'valid_pct must be a number between 0 and 1, e.g. 0.2'),
    'two rating columns': (lambda s, l: movierecs.dataloaders(pd.concat([s, s.rating], axis=1)), movierecs.DataError,
                           "more than one column named 'rating': keep one"),
    'no learner': (lambda s, l: movierecs.recommend(None, 1), TypeError, 'learn must be a trained Learner'),
    'lowest None': (lambda s, l: movierecs.biases(l, lowest=None), TypeError, 'lowest must be True or False'),
}

@pytest.mark.parametrize('case', MORE_BAD_ARGUMENTS)
def test_more_bad_arguments(case, synth, learn):
    call, err, problem = MORE_BAD_ARGUMENTS[case]
    with pytest.raises(err, match=problem): call(synth, learn)

def test_an_archive_with_two_u_data_is_refused(tmp_path):
    from movierecs.data.ml100k import read_file
    z = _zip(tmp_path/'two.zip', {'evil/u.data': b'1\t1\t5\t1\n', 'ml-100k/u.data': b'1\t2\t3\t4\n'})
    with pytest.raises(movierecs.DataError, match='holds 2 files named u.data.*Use the archive from GroupLens'):
        read_file(z, 'u.data', verify=False)

def test_cli_special_ratings_file_and_empty_out(saved_model, tmp_path):
    fifo = tmp_path/'f.csv'; os.mkfifo(fifo)
    r = _cli('recommend', '--ratings', str(fifo), '--model', saved_model, timeout=60)
    _one_line(r, 'is not a regular file .*give a CSV file')
    r = _cli('train', 'dot', '--out', '', timeout=60)
    assert r.returncode == 2 and 'argument --out: is empty' in r.stderr and 'Traceback' not in r.stderr
    (tmp_path/'afile').write_text('x')
    r = _cli('reproduce', 'dot', '--out', str(tmp_path/'afile'/'res'), timeout=60)
    _one_line(r, r'cannot save to .*afile/res \(Not a directory\)')

# --- the third round: Ctrl-C while the libraries load, folders made for nothing, ids model.json cannot hold ---

def test_import_movierecs_is_light_and_the_names_are_all_there():
    "`import movierecs` loads no torch (the command takes Ctrl-C at once); the first name used brings in every module."
    code = ("import sys, movierecs; assert 'torch' not in sys.modules; import movierecs.evaluation.topn; "
            "assert callable(movierecs.evaluate), movierecs.evaluate; ns = {}; exec('from movierecs import *', ns); "
            "assert {'evaluate', 'train_model', 'recommend_for', 'default_learner', 'save'} <= set(ns), sorted(ns); "
            "assert set(movierecs.__all__) <= set(dir(movierecs))")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                       env={**os.environ, 'PYTHONPATH': str(Path(movierecs.__file__).parents[1])})
    assert r.returncode == 0, r.stderr[-800:]
    with pytest.raises(AttributeError, match="no attribute 'nope'"): movierecs.nope

@pytest.mark.parametrize('delay', [0.3, 1.0, 2.0])
def test_cli_ctrl_c_while_the_libraries_load(delay, tmp_path):
    "A Ctrl-C in the seconds torch and fastai take to import (`train` needs them): exit 130 and one line, not a KeyboardInterrupt."
    p = subprocess.Popen([sys.executable, '-W', 'ignore', '-m', 'movierecs', 'train', 'dot', '--epochs', '1', '--out', str(tmp_path/'m')],
                         stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env={**os.environ, 'PYTHONPATH': str(Path(movierecs.__file__).parents[1])})
    time.sleep(delay)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130 and 'Traceback' not in err and err.strip().splitlines()[-1:] == ['movierecs: interrupted'], err[-800:]

def test_cli_refusals_leave_no_folder_behind(tmp_path):
    "An argument refused after --out was checked, or a model.json there that is a folder: no training, no folder made for nothing."
    r = _cli('train', 'dot_raw', '--lr', '1e6', '--epochs', '1', '--out', str(tmp_path/'a'/'b'))  # refused while training: the loss is NaN
    _one_line(r, 'The training loss became (nan|inf)')
    assert not (tmp_path/'a').exists()
    (tmp_path/'m'/'model.json').mkdir(parents=True)
    r = _cli('train', 'dot', '--epochs', '1', '--out', str(tmp_path/'m'))
    _one_line(r, r'model.json there is not a regular file\. Choose another folder\. \(the --out folder\)')
    assert 'Epoch' not in r.stderr + r.stdout and sorted(p.name for p in (tmp_path/'m').iterdir()) == ['model.json']

def test_ids_model_json_cannot_hold_are_refused_before_writing(synth, tmp_path):
    learn = _fit(synth.assign(user=pd.to_datetime(synth.user, unit='D')))
    with pytest.raises(ValueError, match=r"user ids include Timestamp\('1970-01-0.*Convert the column.*astype\(str\)"):
        save(learn, tmp_path/'m')
    assert not (tmp_path/'m').exists()

THIRD_ROUND = {  # the third hostile round (about 450 cases): each a clear error naming the problem and the fix
    'a list as a user': (lambda s, l: movierecs.recommend(l, [1]), KeyError, r'\[1\] is not a user id: give an id such as 196'),
    'an array as a user': (lambda s, l: movierecs.recommend(l, np.array([1, 2])), KeyError, 'is not a user id'),
    'a complex user': (lambda s, l: movierecs.recommend(l, 1+0j), KeyError, 'is not a user id'),
    'a superscript digit as a user': (lambda s, l: movierecs.recommend(l, '²'), KeyError,
                                      "'²' is not in the training data: valid users are"),
    'Arabic-Indic digits as a user': (lambda s, l: movierecs.recommend(l, '١'), KeyError, 'is not in the training data'),
    'no learner to fold into': (lambda s, l: movierecs.recommend_for(None, {'Movie 1 (1990)': 5}), TypeError,
                                'learn must be a trained Learner'),
    'a title twice in a Series': (lambda s, l: movierecs.recommend_for(l, pd.Series([5, 3], index=['Movie 1 (1990)']*2)), ValueError,
                                  "'Movie 1 \\(1990\\)' is rated twice: rate each movie once"),
    'n_factors of a trillion': (lambda s, l: movierecs.get_learner('dot', movierecs.dataloaders(s), n_factors=10**12), ValueError,
                                'n_factors must be at most 100,000'),
    'an option the model lacks': (lambda s, l: movierecs.get_learner('dot_raw', movierecs.dataloaders(s), y_range=(0, 5)), TypeError,
                                  "Model 'dot_raw' takes no argument 'y_range': it takes n_factors"),
    'a typo in a loader option': (lambda s, l: movierecs.dataloaders(s, vaild_pct=0.1), TypeError,
                                  "dataloaders\\(\\) takes no argument 'vaild_pct': it takes ratings, bs, valid_pct"),
    'a map of no movies': (lambda s, l: movierecs.pca_map(l, n_movies=0), ValueError, 'n_movies must be a positive integer'),
    'a PCA of no movies': (lambda s, l: movierecs.pca_map(l, n_top=0), ValueError, 'n_top must be a positive integer'),
    'no users to draw': (lambda s, l: movierecs.synthetic_ratings(n_users=0), ValueError, 'n_users must be a positive integer'),
    'EASE before fit': (lambda s, l: movierecs.EASE(lam=500).recommend(1, n=2), ValueError, r'EASE is not fitted: call fit\(base\) first'),
    'a split that is None': (lambda s, l: movierecs.evaluate('collab', None), TypeError,
                             "split must be a name from SPLITS \\(e.g. 'u1'\\) or a \\(base, test\\) pair"),
    'stratified by a column that is not there': (lambda s, l: movierecs.stratified_split(s, by='nope'), movierecs.DataError,
                                                 "by must be 'movie' or 'user'"),
    'the home of no user': (lambda s, l: movierecs.data_source('~nosuchuser-movierecs/x'), movierecs.DataError,
                            'from the path argument.*Give the path of the ml-100k folder'),
    'k for a baseline': (lambda s, l: movierecs.evaluate_topn('popular', (s, s), k=0), TypeError, "'popular' takes no parameter 'k'.*ks="),
}

@pytest.mark.parametrize('case', THIRD_ROUND)
def test_third_round(case, synth, learn):
    call, err, problem = THIRD_ROUND[case]
    with pytest.raises(err, match=problem): call(synth, learn)

@pytest.mark.parametrize('argv, problem', [
    (['train', 'dot', '--lr', 'nan'], "argument --lr: 'nan' is not a number"),
    (['train', 'dot', '--lr', 'inf'], "argument --lr: 'inf' is not a number"),
    (['train', 'dot', '--epochs', '1000000000'], 'argument --epochs: must be at least 1 and at most 100,000'),
    (['train', 'dot', '--seed', '-1'], 'argument --seed: must be at least 0 and at most 4,294,967,295'),
    (['train', 'dot', '--wd', '-1'], 'argument --wd: must be at least 0'),
    (['serve', '--port', '0'], 'argument --port: must be at least 1 and at most 65,535'),
    (['serve', '--host', ' '], 'argument --host: is empty: give an address'),
    (['similar', 'x', '-n', '1_0'], "argument -n: '1_0' is not a number"),
    (['similar', 'x', '-n', '٣'], "argument -n: '٣' is not a number"),
])
def test_cli_bad_values_are_usage_errors(argv, problem, capsys, tmp_path):
    "Every bad value of an option is a usage error (exit 2), whether its type or its range is wrong."
    from movierecs.__main__ import main
    with pytest.raises(SystemExit) as e: main(argv + (['--out', str(tmp_path/'m')] if argv[0] == 'train' else []))
    err = capsys.readouterr().err
    assert e.value.code == 2 and problem in err and err.strip().count('\n') == 0, err
    assert not (tmp_path/'m').exists()

def test_cli_odd_files_and_folders_are_one_line(saved_model, tmp_path):
    "A --ratings file that is not UTF-8, holds no rating or swaps its columns; a home folder that does not exist; a name too long."
    for name, data, problem in [('latin1.csv', 'Am\xe9lie,5\n'.encode('latin-1'), r'is not UTF-8 text .*save it as UTF-8 CSV'),
                                ('header.csv', b'title,rating\n', 'holds no ratings: give one title,rating line per movie'),
                                ('swapped.csv', b'rating,title\n5,Movie 1 (1990)\n', 'the columns are rating,title; put the title first')]:
        (tmp_path/name).write_bytes(data)
        _one_line(_cli('recommend', '--ratings', str(tmp_path/name), '--model', saved_model, timeout=60), problem)
    r = _cli('train', 'dot', '--epochs', '1', '--out', str(tmp_path/('a'*300)/'m'), timeout=60)
    _one_line(r, r'cannot save to .* \(File name too long\): choose another --out folder')

def test_a_repeated_query_parameter_is_refused():
    from starlette.testclient import TestClient
    from movierecs.app.serve import app
    learn = train_model('dot_bias', epochs=1, ratings=movierecs.synthetic_ratings(seed=0), progress=False)
    r = TestClient(app(learn)).get('/api/similar?title=Movie%201%20(1990)&title=Nope')
    assert r.status_code == 400 and "the query parameter 'title' is given more than once" in r.json()['error']
    r = TestClient(app(learn)).get('/movie?title=Movie%201%20(1990)&title=Nope')  # a page asked for: an error page, as every page's
    assert r.status_code == 400 and '<h1>Error 400</h1>' in r.text and 'href="/static/app.css"' in r.text
    assert "the query parameter 'title' is given more than once" in r.text

@pytest.mark.parametrize('presses', [1, 2])
def test_serve_stops_on_ctrl_c_while_a_client_stalls(saved_model, presses):
    "A client that sent half a request cannot hold the server: Ctrl-C (once, or twice) ends it within seconds, exit 130, no traceback."
    import urllib.request
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
    p = subprocess.Popen([sys.executable, '-m', 'movierecs', 'serve', '--port', str(port), '--model', saved_model],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(Path(movierecs.__file__).parents[1])})
    try:
        for _ in range(240):
            try: urllib.request.urlopen(f'http://127.0.0.1:{port}/api/titles?q=a', timeout=1); break
            except OSError: time.sleep(0.5)
        stall = socket.create_connection(('127.0.0.1', port))
        stall.sendall(b'POST /api/recommend HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"ratings"')
        time.sleep(0.5)
        for _ in range(presses): p.send_signal(signal.SIGINT); time.sleep(0.3)
        start = time.monotonic()
        out, err = p.communicate(timeout=60)
        assert time.monotonic() - start < 15 and p.returncode == 130, (p.returncode, err[-800:])
        assert 'Traceback' not in err and err.strip().splitlines()[-1] == 'movierecs: interrupted', err[-800:]
        stall.close()
    finally:
        if p.poll() is None: p.kill()

FOURTH_ROUND = {  # the fourth hostile round (about 630 cases): neighbours of the third round's defects
    'lr past float32': (lambda s, l: _fit(s, lr=1e39), ValueError, r'lr must be positive \(a finite number up to 1e\+06'),
    'wd past any use': (lambda s, l: _fit(s, wd=1e308), ValueError, 'wd must be zero or positive'),
    'a user of 5,000 digits': (lambda s, l: movierecs.recommend(l, '9'*5000), KeyError,
                               r"User '9{50,56}\.\.\. is not in the training data"),
    'cbs that are not callbacks': (lambda s, l: movierecs.get_learner('dot', movierecs.dataloaders(s), cbs=5), TypeError,
                                   'cbs must be one or a list of fastai Callbacks'),
    'a layer of a trillion': (lambda s, l: movierecs.get_learner('collab_emb_nn', movierecs.dataloaders(s), layers=[10**12]), ValueError,
                              'every width in layers must be at most 100,000'),
    'layers from a generator': (lambda s, l: movierecs.get_learner('collab_emb_nn', movierecs.dataloaders(s), layers=(w for w in [10, 7])),
                                ValueError, r'layers must be a list of layer widths'),
    'a device that is not one': (lambda s, l: movierecs.dataloaders(s, device='nope'), ValueError, "device 'nope' is not a torch device"),
    'val_bs 0': (lambda s, l: movierecs.dataloaders(s, val_bs=0), ValueError, 'val_bs must be a positive integer'),
    'a trillion synthetic users': (lambda s, l: movierecs.synthetic_ratings(n_users=10**12), ValueError,
                                   'n_users x n_movies must be at most 100,000,000'),
    'a negative synthetic seed': (lambda s, l: movierecs.synthetic_ratings(seed=-1), ValueError,
                                  r'seed must be an integer from 0 to 2\*\*32-1'),
    'wd a string': (lambda s, l: movierecs.get_learner('dot', movierecs.dataloaders(s), wd='x'), ValueError, 'wd must be zero or positive'),
    'wd negative': (lambda s, l: movierecs.get_learner('dot', movierecs.dataloaders(s), wd=-1.0), ValueError,
                    'wd must be zero or positive'),
    'metrics a string': (lambda s, l: movierecs.get_learner('dot', movierecs.dataloaders(s), metrics='x'), TypeError,
                         'metrics must be one or a list of callables'),
    'loss_func a string': (lambda s, l: movierecs.get_learner('dot', movierecs.dataloaders(s), loss_func='x'), TypeError,
                           'loss_func must be callable'),
    'moms a number': (lambda s, l: movierecs.get_learner('dot', movierecs.dataloaders(s), moms=5), ValueError,
                      'moms must be three momentums'),
}

@pytest.mark.parametrize('case', FOURTH_ROUND)
def test_fourth_round(case, synth, learn):
    call, err, problem = FOURTH_ROUND[case]
    with pytest.raises(err, match=problem): call(synth, learn)

def test_numpy_values_train_and_save(synth, tmp_path):
    "numpy integers as seed and as model options: training takes them and model.json keeps them as plain numbers."
    learn = _fit(synth, model='dot', seed=np.int64(7), n_factors=np.int64(5))
    save(learn, tmp_path/'m')
    back = load(tmp_path/'m')
    assert back.model_spec['n_factors'] == 5 and back.train_spec['seed'] == 7 and type(back.train_spec['seed']) is int

@pytest.mark.parametrize('argv, problem', [
    (['train', 'dot', '--lr', '1e39'], 'argument --lr: must be positive and at most 1e+06'),
    (['train', 'dot', '--lr', '1e999'], "argument --lr: '1e999' is not a finite number"),
    (['train', 'dot', '--wd', '1e999'], "argument --wd: '1e999' is not a finite number"),
    (['recommend', '--user', '196.0'], "argument --user: '196.0' is not a user id: give digits"),
    (['recommend', '--user', '١٩٦'], 'argument --user:'),
])
def test_cli_fourth_round_usage_errors(argv, problem, capsys, tmp_path):
    from movierecs.__main__ import main
    with pytest.raises(SystemExit) as e: main(argv + (['--out', str(tmp_path/'m')] if argv[0] == 'train' else []))
    err = capsys.readouterr().err
    assert e.value.code == 2 and problem in err and err.strip().count('\n') == 0, err

def test_cli_help_and_models_with_a_broken_cache_variable(saved_model, tmp_path):
    "A MOVIERECS_CACHE naming the home of no user: --help and commands that do not use the cache still work."
    env = {'MOVIERECS_CACHE': '~nosuchuser-movierecs/c'}
    assert _cli('--help', env=env, timeout=60).returncode == 0
    assert _cli('models', env=env, timeout=60).returncode == 0
    assert _cli('similar', 'Movie 1 (1990)', '--model', saved_model, env=env, timeout=60).returncode == 0
    _one_line(_cli('biases', env=env, timeout=60), "MOVIERECS_CACHE='~nosuchuser-movierecs/c'.*Give a folder path")

def test_cli_ratings_in_utf16_without_a_bom_and_a_giant_field(saved_model, tmp_path):
    (tmp_path/'u16.csv').write_bytes('Movie 1 (1990),5\n'.encode('utf-16-le'))
    _one_line(_cli('recommend', '--ratings', str(tmp_path/'u16.csv'), '--model', saved_model, timeout=60),
              r'not UTF-8 text \(it holds NUL characters: UTF-16\?\)')
    (tmp_path/'big.csv').write_text('"' + 'x'*300_000 + '",5\n')
    _one_line(_cli('recommend', '--ratings', str(tmp_path/'big.csv'), '--model', saved_model, timeout=60),
              'has a field over 131,072 characters')
