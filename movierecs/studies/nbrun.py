"Run the notebooks in `notebooks/` with execnb, in this process: as regression tests, and to save them (`make notebooks`)."
import argparse, re, sys, sysconfig
from pathlib import Path
from execnb.shell import CaptureShell
from fastcore.nbio import nb2str, read_nb
from ..core.files import write_atomic
__all__ = ['NotebookError', 'run_notebook', 'run_in_kernel', 'shown_text', 'output_numbers', 'stale_cells', 'save_notebook']

class NotebookError(Exception):
    "A notebook cell failed, or a notebook's outputs are not fit to save."

def _text(out):
    "The text a cell output shows: a stream, a traceback, or a result's text/plain (text/html when that is all it has)."
    if out.get('output_type') == 'stream': return ''.join(out.get('text', ''))
    if out.get('output_type') == 'error': return '\n'.join(out.get('traceback', []))
    data = out.get('data', {})
    t = data.get('text/plain', '')
    if 'text/html' in data and re.fullmatch(r'<IPython.core.display.HTML object>\s*', ''.join(t)): t = data['text/html']
    return ''.join(t) if isinstance(t, list) else t

def _machine_paths():
    "Absolute paths of this machine that must not leak into saved outputs."
    return {p for p in (str(Path.cwd()), str(Path.home()), sys.prefix, sysconfig.get_paths()['purelib']) if len(p) > 1}

def run_notebook(path, # An .ipynb file
                 timeout=None # Seconds each cell may take (None: no limit)
                ):
    "Execute every cell of `path` in-process with execnb's `CaptureShell`; a failing cell raises `NotebookError` naming it."
    path = Path(path)
    nb = read_nb(path)
    shell = CaptureShell(path=path.parent)
    try: shell.run_all(nb, exc_stop=True, cell_timeout=timeout)
    except BaseException as e:
        if not isinstance(e, Exception): raise  # KeyboardInterrupt, SystemExit
        # the failing cell holds the error output: reported below
    failed = [c for c in nb.cells if c.cell_type == 'code' and any(o.get('output_type') == 'error' for o in c.outputs)]
    if failed:
        c = failed[0]
        err = next(o for o in c.outputs if o.get('output_type') == 'error')
        tb = re.sub(r'\x1b\[[0-9;]*m', '', '\n'.join(err.get('traceback', [])))
        raise NotebookError(f"{path.name}, cell {c.idx_+1} failed: {err.get('ename')}: {err.get('evalue')}\n"
                            f"--- cell source ---\n{c.source}\n--- traceback ---\n{tb}")
    for c in nb.cells:
        if c.cell_type != 'code': continue
        c.metadata.pop('execution', None)  # wall-clock timestamps: not part of what the notebook shows
        text = '\n'.join(map(_text, c.outputs))
        leak = next((p for p in _machine_paths() if p in text), None)
        if leak: raise NotebookError(f"{path.name}, cell {c.idx_+1} prints a path of this machine ({leak}): make it relative.")
        if '\r' in text: raise NotebookError(f"{path.name}, cell {c.idx_+1} prints a progress bar: pass progress=False.")
    return nb

def run_in_kernel(path, # An .ipynb file
                  timeout=1800 # Seconds each cell may take
                 ):
    "Execute `path` as Jupyter does, in a fresh IPython kernel (nbclient + ipykernel), from the notebook's folder; the executed notebook."
    import nbformat
    from nbclient import NotebookClient
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=timeout, kernel_name='python3', resources={'metadata': {'path': str(path.parent)}}).execute()
    return nb

def shown_text(nb) -> list:
    "Per code cell, what its outputs show, as (output type, stream name, text), fastai's epoch times blanked."
    return [[(o.get('output_type'), o.get('name'), _TIME.sub('--:--', _text(o))) for o in c.get('outputs', [])]
            for c in nb['cells'] if c['cell_type'] == 'code']

_TIME = re.compile(r'\b\d\d:\d\d\b')  # fastai's epoch times: the one thing a re-run may change

_NUMBER = re.compile(r'(?<![\w.#])-?\d+(?:\.\d+)?(?:e[-+]?\d+)?(?![\w])')

def output_numbers(nb) -> dict:
    "{cell number (from 1): the numbers its outputs show, epoch times left out}: what a re-run must reproduce."
    return {c.idx_+1: [float(x) for o in c.get('outputs', []) for x in _NUMBER.findall(_TIME.sub(' ', _text(o)))]
            for c in nb.cells if c.cell_type == 'code'}

def stale_cells(saved, fresh, # Notebooks as saved and as just executed
                atol=1e-4 # How far a shown number may move
               ) -> list:
    "Cells whose saved outputs differ from a fresh run beyond `atol`: (index, saved numbers, fresh numbers)."
    a, b = output_numbers(saved), output_numbers(fresh)
    return [(i, a.get(i), b[i]) for i in b
            if len(a.get(i, [])) != len(b[i]) or any(abs(x-y) > atol for x, y in zip(a[i], b[i]))]

def save_notebook(nb, path):
    "Write `nb` to `path` atomically."
    write_atomic({path: nb2str(nb)})

def main(argv=None):
    p = argparse.ArgumentParser(prog='python -m movierecs.nbrun', description=__doc__)
    p.add_argument('notebooks', nargs='+', type=Path, help='.ipynb files to run')
    p.add_argument('--check', action='store_true', help='do not save: fail if saved outputs are stale')
    a = p.parse_args(argv)
    missing = [str(n) for n in a.notebooks if not n.is_file()]
    if missing: p.error(f"no such notebook: {', '.join(missing)}")
    stale_any = False
    for path in a.notebooks:
        print(f'{path} ...', flush=True)
        try: nb = run_notebook(path)
        except NotebookError as e: sys.exit(f'error: {e}')
        if a.check:
            stale = stale_cells(read_nb(path), nb)
            for i, old, new in stale: print(f'  stale: cell {i} shows {old}, a fresh run gives {new}')
            stale_any |= bool(stale)
        else: save_notebook(nb, path)
    if stale_any: sys.exit('error: saved notebooks are stale: run `make notebooks` and commit them.')

if __name__ == '__main__': main()
