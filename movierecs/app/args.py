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
