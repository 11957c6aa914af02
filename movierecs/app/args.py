"Command-line argument types and checks shared by `movierecs` and the studies' drivers."
import argparse, contextlib, math, re
from pathlib import Path

class Parser(argparse.ArgumentParser):
    def error(self, message): self.exit(2, f'{self.prog}: error: {message} (see {self.prog} --help)\n')

@contextlib.contextmanager
def writable(folder, what, model=True):
    ("Check now, before any training, that results (a model if `model`) can be saved to `folder`; "
     "unmake the folders made for it if they stay empty.")
    import tempfile
    folder, made = Path(folder), []
    def unmake():
        for p in made:
            try: p.rmdir()
            except OSError: break  # something was written there: keep it
    try:
        made = [p for p in (folder, *folder.parents) if not p.exists() and not p.is_symlink()]  # deepest first
        if model:
            from ..train.saving import check_folder
            check_folder(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix='.write-test-'): pass
    except OSError as e: unmake(); raise ValueError(f"cannot save to {folder} ({e.strerror or e}): choose another {what}.") from None
    except ValueError as e: unmake(); raise ValueError(f"{e} (the {what})") from None
    try: yield
    except BaseException: unmake(); raise

def _folder(s):
    "A folder argument; an empty one is an error (Path('') would silently be the current folder)."
    if not s.strip(): raise argparse.ArgumentTypeError('is empty: give a folder, e.g. models/dot')
    return Path(s)

_INT, _FLOAT = re.compile(r'-?[0-9]+'), re.compile(r'-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?')  # ASCII, no `1_0`

def number_arg(kind, low=None, high=None, above=None, what='a number'):
    "An argparse type: an ASCII integer or decimal number within bounds (a bad one is a usage error, exit 2)."
    def parse(s):
        if not (_INT if kind is int else _FLOAT).fullmatch(s.strip()): raise argparse.ArgumentTypeError(f'{s!r} is not {what}')
        v = kind(s)
        if kind is float and not math.isfinite(v): raise argparse.ArgumentTypeError(f'{s!r} is not a finite number')
        if (above is not None and not v > above) or (low is not None and v < low) or (high is not None and v > high):
            bounds = [('positive' if above == 0 else f'above {above:g}') if above is not None else None,
                      f'at least {low:g}' if low is not None else None,
                      (f'at most {high:,}' if isinstance(high, int) else f'at most {high:g}') if high is not None else None]
            raise argparse.ArgumentTypeError(f"must be {' and '.join(b for b in bounds if b)}, got {s}")
        return v
    return parse

def _user_id(s):
    if not re.fullmatch(r'[0-9]{1,18}', s.strip()): raise argparse.ArgumentTypeError(f'{s[:40]!r} is not a user id: give digits, e.g. 196')
    return s.strip()

def _host(s):
    if not s.strip(): raise argparse.ArgumentTypeError('is empty: give an address, e.g. 127.0.0.1 (this machine only) '
                                                       'or 0.0.0.0 (every interface)')
    return s

def _positive(kind): return number_arg(kind, above=0)

def _processes(s):
    "--processes: from 1 to the CPU cores this process may use (the processes step together: one waiting for a core stalls them all)."
    n = number_arg(int, low=1)(s)
    from ..train.distributed import usable_cores
    if n > usable_cores(): raise argparse.ArgumentTypeError(
        f"{n} processes on {usable_cores()} CPU cores: each process needs a core; give at most {usable_cores()} "
        f"(more GPUs or machines: torchrun, see docs/distributed.md)")
    return n
