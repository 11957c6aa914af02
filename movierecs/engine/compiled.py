"""The compiled row arithmetic (rows.c) of the sparse path and of the loader's shuffle: built once per machine with the system's
C compiler (`CC`, else cc), cached (`MOVIERECS_CACHE`), loaded with ctypes. Without a compiler (or with `MOVIERECS_COMPILE=0`)
`kernel()` is None and both run their PyTorch steps."""
import ctypes, hashlib, os, platform, shlex, shutil, subprocess, tempfile, warnings
from pathlib import Path
from ..core.files import write_atomic
__all__ = ['SOURCE', 'FLAGS', 'build', 'kernel', 'kernel_status', 'cache_dir', 'reset']

SOURCE = Path(__file__).with_name('rows.c')
# no fused multiply-adds (torch's rounding); no errno from sqrtf (its loops vectorize; the rows' values are the same)
FLAGS = ('-O3', '-march=native', '-ffp-contract=off', '-fno-math-errno', '-fopenmp', '-shared', '-fPIC')

_state = {}  # 'lib': the loaded library or None; 'why': why it is None

def cache_dir() -> Path:
    "Where built kernels are kept: `MOVIERECS_CACHE`, else `$XDG_CACHE_HOME/movierecs`, else ~/.cache/movierecs."
    root = os.environ.get('MOVIERECS_CACHE') or Path(os.environ.get('XDG_CACHE_HOME') or Path.home()/'.cache')/'movierecs'
    return Path(root).expanduser()/'kernels'

def _cpu_key() -> str:
    "What a `-march=native` build depends on: the machine and its CPU's flags."
    try: flags = next((l for l in Path('/proc/cpuinfo').read_text().splitlines() if l.startswith(('flags', 'Features'))), '')
    except OSError: flags = ''
    return f'{platform.machine()} {platform.system()} {flags}'

def build(source:Path, # A C file
          flags=FLAGS, # The compiler's flags
          cc=None # The compiler and any arguments of its own; default: `CC` (e.g. 'ccache gcc'), else cc
         ) -> Path:
    ("`source` compiled into a shared library in `cache_dir()`, built once per source, flags and CPU; its path. The library and "
     "its SHA-256 beside it are replaced as one step (`write_atomic`): a library that does not match (truncated, replaced) is "
     "built again, never loaded.")
    cc = shlex.split(cc or os.environ.get('CC') or 'cc')
    source = Path(source)
    key = hashlib.sha256(source.read_bytes() + ' '.join((*flags, _cpu_key())).encode()).hexdigest()[:16]
    out = cache_dir()/f'{source.stem}-{key}.so'
    check = out.with_name(out.name + '.sha256')
    if out.is_file() and check.is_file() and check.read_text().strip() == hashlib.sha256(out.read_bytes()).hexdigest(): return out
    if not cc or shutil.which(cc[0]) is None:
        raise RuntimeError(f"no C compiler: {cc[0] if cc else ''!r} is not on PATH (install gcc, or set CC)")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as d:
        tmp = Path(d)/out.name
        r = subprocess.run([*cc, *flags, str(source), '-o', str(tmp), '-lm'], capture_output=True, timeout=120)
        err = r.stderr.decode(errors='replace').strip()[-500:]
        if r.returncode: raise RuntimeError(f'{cc[0]} failed on {source.name}: {err}')
        data = tmp.read_bytes() if tmp.is_file() else b''
        if not data.startswith((b'\x7fELF', b'\xcf\xfa\xed\xfe', b'MZ')):
            raise RuntimeError(f'{cc[0]} wrote no shared library for {source.name} ({len(data)} bytes) {err}'.strip())
    write_atomic({out: data, check: hashlib.sha256(data).hexdigest()})
    return out

_I64, _F32, _F64, _P, _INT = ctypes.c_int64, ctypes.c_float, ctypes.c_double, ctypes.c_void_p, ctypes.c_int
_SIGNATURES = {
    'mr_bring_up': (_I64, [_P, _P, _P, _I64, _I64, _P, _I64, _P, _P, _P, _I64, _I64, _F32, _P, _P, _P, _P, _I64, _INT]),
    'mr_step': (_I64, [_P, _P, _P, _I64, _I64, _P, _P, _I64, _P, _P, _P, _I64, _I64, _P, _P, _P, _P, _P, _P, _P, _P, _I64,
                       _F32, _F32, _F32, _F32, _F32, _F32, _F32, _INT, _F32, _INT]),
    'mr_gather': (_I64, [_P, _I64, _I64, _P, _I64, _P, _INT]),
    'mr_dot_bias': (None, [_P, _P, _P, _P, _P, _P, _I64, _I64, _P, _INT]),
    'mr_dot_bias_grad': (None, [_P, _P, _P, _P, _P, _I64, _I64, _P, _P, _INT]),
    'mr_advance': (None, [_P, _P, _P, _I64, _I64, _F64, _F64, _F64, _F64, _F64, _F64]),
}

OFF = ('0', 'false', 'no', 'off')  # values of MOVIERECS_COMPILE that turn the kernel off

def _load():
    if os.environ.get('MOVIERECS_COMPILE', '1').strip().lower() in OFF: return None, 'MOVIERECS_COMPILE=0'
    try:
        lib = ctypes.CDLL(str(build(SOURCE)))
        for name, (res, args) in _SIGNATURES.items():
            f = getattr(lib, name); f.restype, f.argtypes = res, args
    except AttributeError as e: return None, f'the built library lacks a function ({e}): delete {cache_dir()} to build it again'
    except (OSError, RuntimeError, subprocess.SubprocessError, ValueError) as e: return None, str(e)
    return lib, 'compiled'

def kernel():
    "The compiled row arithmetic (a ctypes library), built on first use; None (with a warning, once) when it cannot be built."
    if 'lib' not in _state:
        _state['lib'], _state['why'] = _load()
        if _state['lib'] is None and _state['why'] != 'MOVIERECS_COMPILE=0':
            warnings.warn(f"movierecs' sparse path and shuffles run PyTorch's steps (slower): {_state['why']}.", RuntimeWarning,
                          stacklevel=2)
    return _state['lib']

def kernel_status() -> str:
    "'compiled', or why the sparse path runs its PyTorch steps."
    kernel()
    return _state['why']

def reset():
    "Forget the loaded kernel: the next `kernel()` looks again (after CC, MOVIERECS_COMPILE or MOVIERECS_CACHE changed)."
    _state.clear()
