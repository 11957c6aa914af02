"Writing result files so that an interrupted run never leaves a half-written one."
import os, tempfile
from pathlib import Path

__all__ = ['write_atomic', 'png_bytes']

def _umask():
    mask = os.umask(0); os.umask(mask)
    return mask

def write_atomic(files:dict # {path: text or bytes}, written together
                ):
    "Write every file to a temporary name beside it, then rename them all into place."
    tmps = []
    try:
        for path, content in files.items():
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.tmp')
            tmps.append((tmp, path))
            with os.fdopen(fd, 'wb') as f: f.write(content.encode() if isinstance(content, str) else content)
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give what open() would
        for tmp, path in tmps: os.replace(tmp, path)
    finally:
        for tmp, _ in tmps:
            if os.path.exists(tmp): os.remove(tmp)

def png_bytes(fig, dpi=80):
    "A matplotlib figure as PNG bytes (no timestamp or software tag, so the same figure gives the same file)."
    import io
    buf = io.BytesIO()
    fig.savefig(buf, format='png', dpi=dpi, bbox_inches='tight', metadata={'Software': None})
    return buf.getvalue()
