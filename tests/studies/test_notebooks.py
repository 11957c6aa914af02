"The notebooks are tests: each runs in-process with execnb, and its saved outputs must match a fresh run."
import os
from pathlib import Path
import pytest
from fastcore.nbio import mk_cell, new_nb, read_nb, write_nb
from movierecs.studies.nbrun import NotebookError, run_notebook, run_in_kernel, shown_text, stale_cells, output_numbers, main

NOTEBOOKS = sorted((Path(__file__).parents[2]/'notebooks').glob('*.ipynb'))

def test_the_story_is_all_there():
    assert [p.stem for p in NOTEBOOKS] == ['00_data', '01_dot_product', '02_bias_and_weight_decay', '03_create_params',
                                           '04_collab_learner', '05_neural_net', '06_recommendations', '07_accuracy', '08_topn',
                                           '09_time']

def test_the_runs_held_to_saved_numbers_share_one_worker(request):
    """conftest's xdist group is in force: under `--dist loadgroup` the test's id carries it, so the notebooks and the runs
    they share go to one worker and train once (pytest 9.2 drops xdist's group silently, pytest-xdist#1386: pytest < 9.2)."""
    mark = request.node.get_closest_marker('xdist_group')
    assert mark and mark.args == ('saved_numbers',)
    if os.environ.get('PYTEST_XDIST_WORKER') and getattr(request.config.option, 'loadgroup', False):
        assert request.node.nodeid.endswith('@saved_numbers'), request.node.nodeid

@pytest.mark.parametrize('path', NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_imports_the_package_and_defines_nothing(path):
    "Notebooks carry no library code: they start with `import movierecs` and define no function or class but the original's `T`."
    code = [c.source for c in read_nb(path).cells if c.cell_type == 'code']
    assert code[0].startswith('import movierecs')
    defined = [line.strip() for src in code for line in src.splitlines() if line.lstrip().startswith(('def ', 'class '))]
    demo = ['class T(Module):', 'def __init__(self): self.a = nn.Parameter(torch.ones(3))']  # the original's nn.Parameter demonstration
    assert defined == (demo if path.stem == '03_create_params' else []), defined

@pytest.mark.slow
@pytest.mark.realdata
# 02 runs under a real Jupyter kernel below, its every output held to the saved text: running it in-process too adds nothing
@pytest.mark.parametrize('path', [p for p in NOTEBOOKS if p.stem != '02_bias_and_weight_decay'], ids=lambda p: p.stem)
def test_notebook(path, ratings):
    "Runs every cell (its asserts are regression tests); training is shared with test_accuracy.py through the cache."
    try: fresh = run_notebook(path)
    except NotebookError as e: pytest.fail(str(e), pytrace=False)
    stale = stale_cells(read_nb(path), fresh)
    assert not stale, f'{path.name}: saved outputs are stale (cell, saved, fresh): {stale}. Run `make notebooks`.'

@pytest.mark.slow
@pytest.mark.realdata
def test_a_real_jupyter_kernel_shows_what_is_saved(ratings):
    "02 (whose saved losses caught a zeroed user bias) run as Jupyter runs it: nothing on stderr, every output's text as saved."
    import nbformat
    path = next(p for p in NOTEBOOKS if p.stem == '02_bias_and_weight_decay')
    fresh = shown_text(run_in_kernel(path))
    assert not [o for cell in fresh for o in cell if o[1] == 'stderr'], [o for cell in fresh for o in cell if o[1] == 'stderr']
    saved = shown_text(nbformat.read(path, as_version=4))
    diff = [(i, a, b) for i, (a, b) in enumerate(zip(saved, fresh), 1) if a != b]
    assert len(saved) == len(fresh) and not diff, diff[:2]

def _nb(tmp_path, *sources, name='t.ipynb'):
    path = tmp_path/name
    write_nb(new_nb([mk_cell(s) for s in sources]), path)
    return path

def test_failing_cell_names_notebook_cell_source_and_error(tmp_path):
    path = _nb(tmp_path, 'x = 1', 'assert x == 2, "x is not 2"', 'print("never runs")')
    with pytest.raises(NotebookError) as e: run_notebook(path)
    msg = str(e.value)
    assert 't.ipynb, cell 2 failed: AssertionError: x is not 2' in msg and 'assert x == 2' in msg and 'traceback' in msg

def test_outputs_are_numbers_and_stale_outputs_are_found(tmp_path):
    path = _nb(tmp_path, 'x = 0.5\nx', 'print("epoch 00:07", 3)')
    fresh = run_notebook(path)
    assert output_numbers(fresh) == {1: [0.5], 2: [3.0]}  # the epoch time is left out
    assert stale_cells(read_nb(path), fresh) == [(1, [], [0.5]), (2, [], [3.0])]  # never executed: stale
    write_nb(fresh, path)
    assert stale_cells(read_nb(path), run_notebook(path)) == []
    moved = _nb(tmp_path, 'x = 0.5002\nx', 'print("epoch 00:09", 3)', name='moved.ipynb')
    assert stale_cells(read_nb(path), run_notebook(moved)) == [(1, [0.5], [0.5002])]

def test_machine_paths_and_progress_bars_are_refused(tmp_path):
    with pytest.raises(NotebookError, match='prints a path of this machine'): run_notebook(_nb(tmp_path, 'import os; print(os.getcwd())'))
    with pytest.raises(NotebookError, match='prints a progress bar'): run_notebook(_nb(tmp_path, 'print("10%\\r20%")'))

def test_check_mode_fails_on_stale_and_save_mode_saves(tmp_path, capsys):
    path = _nb(tmp_path, '1.25')
    with pytest.raises(SystemExit, match='stale'): main(['--check', str(path)])
    main([str(path)])
    assert output_numbers(read_nb(path)) == {1: [1.25]} and 'execution' not in read_nb(path).cells[0].metadata
    main(['--check', str(path)])
    with pytest.raises(SystemExit): main([str(tmp_path/'absent.ipynb')])
