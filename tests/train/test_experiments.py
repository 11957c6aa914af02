"The notebook's runs as data, `run_experiment`, and `reproduce` writing its tables atomically."
import json
import pandas as pd, pytest
from pathlib import Path
import movierecs
from movierecs import EXPERIMENTS, Experiment, run_experiment, train_experiment
from movierecs.studies.reproduce import reproduce, main

RESULTS = Path(__file__).resolve().parents[2]/'results'

def test_experiments_are_the_notebooks():
    nb = {n: (e.model, e.wd, e.notebook) for n, e in EXPERIMENTS.items() if e.notebook is not None}
    assert nb == {'dot': ('dot', None, 0.8777), 'dot_bias': ('dot_bias', None, 0.8971),
                  'dot_bias_wd': ('dot_bias', 0.1, 0.8261), 'dot_bias_params': ('dot_bias_params', 0.1, 0.8254),
                  'collab': ('collab', 0.1, 0.8226), 'collab_nn': ('collab_nn', 0.1, 0.8791)}
    assert all((e.epochs, e.lr, e.schedule) == (5, 5e-3, 'one_cycle') for e in EXPERIMENTS.values() if e.group == 'notebook')
    assert {n: (e.epochs, e.lr, e.schedule) for n, e in EXPERIMENTS.items() if e.group == 'accuracy'} == {
        'autorec': (40, 1., 'fit'), 'glocal_k': (68, 1., 'fit')}  # epochs of 5 L-BFGS iterations, chosen on a carve-out
    assert movierecs.group_names('accuracy') == ['autorec', 'glocal_k']
    assert {e.model for e in EXPERIMENTS.values()} == set(movierecs.list_models('rating'))  # every rating model has a run
    assert {r.model for r in movierecs.RANKERS.values()} == set(movierecs.list_models('ranking'))  # every ranking model too

def test_published_bars_are_the_users():
    assert {n: round(e.published_bar, 4) for n, e in EXPERIMENTS.items()} == {
        'dot': 0.9077, 'dot_bias': 0.9271, 'dot_bias_wd': 0.85, 'dot_bias_params': 0.85, 'collab': 0.85,
        'collab_nn': 0.9091, 'dot_raw': 0.9142, 'collab_emb_nn': 0.8949, 'svdpp': 0.85, 'tuned': 0.85, 'autorec': 0.85, 'glocal_k': 0.85}

def test_thresholds_come_from_the_measured_spread():
    "Each bar: the lower of the published one and the seeds' mean + 3 sd in results/seeds.csv (at least 5 seeds), recomputed here."
    import statistics
    rows = pd.read_csv(movierecs.SEEDS_CSV)
    for name in movierecs.group_names():  # the notebook group: `make reproduce SEEDS=5` runs it
        e, v = EXPERIMENTS[name], rows[rows.experiment == name].valid_loss.tolist()
        assert len(v) >= 5 and len(set(rows[rows.experiment == name].seed)) == len(v), (name, v)
        assert e.threshold == pytest.approx(min(e.published_bar, statistics.mean(v) + 3*statistics.stdev(v)), abs=1e-9), name
        if e.bar == movierecs.USER_BAR: assert e.threshold <= 0.85, name  # the user's bar still holds
    md = (RESULTS/'seeds.md').read_text()
    shown = {r.split('|')[1].strip(): r.split('|')[-2].strip() for r in md.splitlines()
             if r.startswith('| ') and r.split('|')[1].strip() in EXPERIMENTS}
    assert shown == {n: f'{EXPERIMENTS[n].threshold:.4f}' for n in movierecs.group_names()}  # seeds.md shows the bars the tests use

def test_spread_bars_need_the_table_and_enough_seeds(tmp_path):
    from movierecs.train.runs import spread_bars
    with pytest.raises(FileNotFoundError, match='make reproduce SEEDS=5'): spread_bars(tmp_path/'none.csv')
    pd.DataFrame(dict(experiment=['dot']*3, seed=[1, 2, 3], valid_loss=[0.8, 0.9, 1.0])).to_csv(tmp_path/'s.csv', index=False)
    with pytest.raises(ValueError, match=r"\{'dot': 3\} seeds per experiment, fewer than 5"): spread_bars(tmp_path/'s.csv')

def test_loss_table_like_fastai(synth, seed):
    t = run_experiment('dot_bias_wd', seed=seed, ratings=synth, epochs=3)
    assert list(t.columns) == ['epoch', 'train_loss', 'valid_loss', 'time'] and t.epoch.tolist() == [0, 1, 2]
    assert t.time.str.fullmatch(r'\d\d:\d\d').all()
    assert t.valid_loss.iloc[-1] < t.valid_loss.iloc[0]

def test_learner_keeps_its_table(synth, seed):
    learn = train_experiment('collab', seed=seed, ratings=synth, epochs=2)
    assert (len(learn.loss_table.df) == 2 and len(learn.loss_table.seconds) == 2
            and learn.loss_table.df.valid_loss.iloc[-1] == pytest.approx(learn.recorder.values[-1][1]))
    assert learn.validate()[0] == pytest.approx(learn.loss_table.df.valid_loss.iloc[-1], abs=1e-6)
    assert len(learn.loss_table.df) == 2  # validating afterwards adds no row

def test_cache_and_quiet_training(synth, seed, capsys):
    a = train_experiment('dot', seed=seed, ratings=synth, epochs=1, progress=False, cache=True)
    assert capsys.readouterr().out == ''  # no progress bar, no table
    assert train_experiment('dot', seed=seed, ratings=synth, epochs=1, cache=True) is a
    assert train_experiment('dot', seed=seed+1, ratings=synth, epochs=1, progress=False, cache=True) is not a
    assert train_experiment('dot', seed=seed, ratings=synth.iloc[:-1], epochs=1, progress=False, cache=True) is not a
    assert train_experiment('dot', seed=seed, ratings=synth, epochs=1, progress=False) is not a  # cache=False trains

@pytest.mark.parametrize('name', list(EXPERIMENTS))
def test_same_seed_same_losses(name, synth, seed):
    a, b = (run_experiment(name, seed=seed, ratings=synth, epochs=2) for _ in range(2))
    pd.testing.assert_frame_equal(a.drop(columns='time'), b.drop(columns='time'), check_exact=True)
    c = run_experiment(name, seed=seed+1, ratings=synth, epochs=2)
    assert not a.valid_loss.equals(c.valid_loss)

@pytest.mark.parametrize('kw, problem', [
    (dict(epochs=0), r'epochs must be a positive integer \(at most 100,000\), got 0'),
    (dict(epochs=-2), 'epochs must be a positive integer'),
    (dict(epochs=1.5), 'epochs must be a positive integer'),
    (dict(lr=0), r'lr must be positive \(a finite number up to 1e\+06, e.g. 5e-3\), got 0'),
    (dict(lr=-1e-3), 'lr must be positive'),
])
def test_bad_schedule(kw, problem, synth):
    with pytest.raises(ValueError, match=problem): run_experiment('dot', ratings=synth, **kw)

def test_bad_experiment_definition():
    with pytest.raises(ValueError, match='wd must be zero or positive'): Experiment('x', 'dot', wd=-0.1, bar=1)
    with pytest.raises(ValueError, match="unknown model 'svd'"): Experiment('x', 'svd')
    with pytest.raises(ValueError, match='give a published loss'): Experiment('x', 'dot')

def test_unknown_experiment():
    with pytest.raises(ValueError, match="Unknown experiment 'dot_biass'. Valid names: dot, dot_bias"): run_experiment('dot_biass')

def test_reproduce_writes_tables(synth, seed, tmp_path):
    losses = reproduce(['dot', 'collab'], out=tmp_path, seed=seed, ratings=synth)
    csv = pd.read_csv(tmp_path/'losses.csv')
    assert len(csv) == 10 and csv.experiment.unique().tolist() == ['dot', 'collab']
    assert csv.valid_loss.round(6).tolist() == losses.valid_loss.round(6).tolist()
    md = (tmp_path/'losses.md').read_text()
    final = losses.groupby('experiment').valid_loss.last()
    assert '## dot\n' in md and '## collab\n' in md and '| epoch | train_loss | valid_loss | time |' in md
    assert f"| dot | `dot` | default (0.01) | **{final['dot']:.4f}** | 0.8777 | {final['dot']-0.8777:+.4f} | 0.8776 |" in md
    env = json.loads((tmp_path/'env.json').read_text())
    assert env['seed'] == seed and env['packages']['fastai'] and env['experiments'] == ['dot', 'collab']
    assert sorted(p.name for p in tmp_path.iterdir()) == ['curve_collab.png', 'curve_dot.png', 'env.json', 'losses.csv',
                                                          'losses.md', 'pca_map.png']
    assert (tmp_path/'pca_map.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'

def test_interrupted_reproduce_keeps_previous_results(synth, seed, tmp_path, monkeypatch):
    reproduce(['dot'], out=tmp_path, seed=seed, ratings=synth)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    real = movierecs.studies.reproduce.train_experiment
    def interrupted(name, **kw):
        if name == 'collab': raise KeyboardInterrupt
        return real(name, **kw)
    monkeypatch.setattr(movierecs.studies.reproduce, 'train_experiment', interrupted)
    with pytest.raises(KeyboardInterrupt): reproduce(['dot', 'collab'], out=tmp_path, seed=seed, ratings=synth)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before

def test_written_files_are_readable_like_open_makes_them(tmp_path):
    from movierecs.core import files
    files.write_atomic({tmp_path/'new.txt': 'x'}); (tmp_path/'plain.txt').write_text('x')
    assert (tmp_path/'new.txt').stat().st_mode == (tmp_path/'plain.txt').stat().st_mode

def test_interrupted_write_leaves_no_partial_file(tmp_path, monkeypatch):
    from movierecs.core import files
    (tmp_path/'a.txt').write_text('old a'); (tmp_path/'b.txt').write_text('old b')
    def boom(*a): raise OSError('disk full')
    monkeypatch.setattr(files.os, 'fdopen', boom)
    with pytest.raises(OSError, match='disk full'): files.write_atomic({tmp_path/'a.txt': 'new', tmp_path/'b.txt': 'new'})
    assert sorted(p.name for p in tmp_path.iterdir()) == ['a.txt', 'b.txt'] and (tmp_path/'a.txt').read_text() == 'old a'

def test_command_line_rejects_unknown_experiment(capsys):
    with pytest.raises(SystemExit) as e: main(['nope'])
    assert e.value.code == 2 and 'unknown experiment(s) nope; valid: dot' in capsys.readouterr().err

@pytest.mark.parametrize('argv, problem', [(['--seeds', '0'], '--seeds must be at least 1'),
                                           (['--faithful', '--notebooks', 'x.ipynb'], 'give --notebooks without --faithful')])
def test_command_line_rejects_bad_options(argv, problem, capsys):
    with pytest.raises(SystemExit) as e: main(argv)
    assert e.value.code == 2 and problem in capsys.readouterr().err

def test_seed_spread_flags_the_notebook(synth, seed):
    from movierecs.studies.reproduce import seed_spread, spread_markdown, environment
    df = seed_spread(['dot', 'dot_bias_wd'], seeds=(seed, seed+1), ratings=synth)
    assert df.experiment.tolist() == ['dot', 'dot_bias_wd']*2 and df.seed.tolist() == [seed, seed, seed+1, seed+1]
    assert df.valid_loss.nunique() == 4  # every seed its own split and run
    md = spread_markdown(df, environment(seed))
    # synthetic data sits far below the notebook's ML-100k losses: its values fall outside mean ± 3 sd
    assert '| dot |' in md and md.count('**no**') == 2 and f'seed {seed+1}' in md

def test_the_package_carries_the_bars_of_results():
    "`Experiment.threshold` reads the package's copy of results/seeds.csv (an installed wheel has no results/): the two agree."
    assert (movierecs.SEEDS_CSV.is_relative_to(Path(movierecs.__file__).parent)
            and movierecs.SEEDS_CSV.read_bytes() == (RESULTS/'seeds.csv').read_bytes())
