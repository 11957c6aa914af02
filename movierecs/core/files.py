"""Writing result files so that an interrupted run never leaves a half-written one, nor a group of files half replaced.
A group switches in one step, for every reader: the folder's next state is built beside it (its other files hard-linked,
the group's new ones written), then the two folders are exchanged by one `renameat2(RENAME_EXCHANGE)`, so a person, git or
a program that opens the folder sees the old set or the new one, never a mix, with nothing to recover (a program that
had the folder open before, or works in it, keeps the old one: a shell in it must `cd .` again). Where the system
cannot exchange two paths, a group is written like a database's redo journal: every file goes to a temporary name beside it,
a journal naming the renames is committed in one rename, then the renames run; after a crash past the commit, the next
`write_atomic` in that folder, or `recover(folder)`, finishes them."""
import contextlib, errno, json, os, re, shutil, signal, tempfile, threading, time
from pathlib import Path
__all__ = ['write_atomic', 'recover', 'png_bytes']

_JOURNAL = re.compile(r'\.movierecs-journal\.[A-Za-z0-9_]+\.json')  # committed journals (one per interrupted group)

_TMP = re.compile(r'\.movierecs-tmp\.(.+)\.[A-Za-z0-9_]{8}\.tmp')  # our temporary files: `.movierecs-tmp.{name}.XXXXXXXX.tmp`

STALE = 3600  # seconds after which a temporary file no journal names is a crash's leftover

_NEXT = re.compile(r'\.(.+)\.movierecs-next\.[A-Za-z0-9_]{8}')  # a folder's next state: `.{folder}.movierecs-next.XXXXXXXX`

def _exchange(a, b) -> bool:
    "Exchange the paths `a` and `b` in one step (Linux `renameat2` with RENAME_EXCHANGE); False where the system cannot."
    import ctypes
    try: f = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError): return False
    f.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if f(-100, os.fsencode(a), -100, os.fsencode(b), 2) == 0: return True  # AT_FDCWD, RENAME_EXCHANGE
    e = ctypes.get_errno()
    if e in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP): return False
    raise OSError(e, os.strerror(e), str(a))

def _umask():
    mask = os.umask(0); os.umask(mask)
    return mask

@contextlib.contextmanager
def _no_interrupt():
    "Hold back Ctrl-C and SIGTERM (delivered right after) while a group of renames runs, in the main thread."
    if threading.current_thread() is not threading.main_thread(): yield; return
    got = []
    def hold(sig, frame): got.append(sig)
    old = {s: signal.signal(s, hold) for s in (signal.SIGINT, signal.SIGTERM)}
    try: yield
    finally:
        for s, h in old.items(): signal.signal(s, h)
        for s in got: signal.raise_signal(s)

def _tmp_beside(path, content, prefix=None):
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix or f'.movierecs-tmp.{path.name}.', suffix='.tmp')
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(content.encode() if isinstance(content, str) else content)
            f.flush(); os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give what open() would
    except BaseException:
        if os.path.exists(tmp): os.remove(tmp)
        raise
    return tmp

def _move(tmp, dest):
    try: os.replace(tmp, dest)
    except FileNotFoundError: pass  # already moved (a `recover` in another process finished it)

def _own_moves(folder, moves):
    ("The (temporary, destination) pairs of a journal that write_atomic could have written: both in `folder`, "
     "the temporary named for its destination; nothing else is ever moved.")
    ok = []
    for m in moves if isinstance(moves, list) else []:
        if not (isinstance(m, list) and len(m) == 2 and all(isinstance(x, str) for x in m)): continue
        tmp, dest = Path(m[0]), Path(m[1])
        got = _TMP.fullmatch(tmp.name)
        if tmp.parent == folder.absolute() and dest.parent == folder.absolute() and got and got.group(1) == dest.name:
            ok.append((tmp, dest))
    return ok

def _drop_next(folder, older=0.):
    "Remove the next states of `folder` (and old states exchanged out) a crash left beside it, last changed over `older` seconds ago."
    now = time.time()
    for d in folder.parent.iterdir() if folder.parent.is_dir() else []:
        got = _NEXT.fullmatch(d.name)
        try:
            if got and got.group(1) == folder.name and d.is_dir() and not d.is_symlink() and now - d.stat().st_mtime >= older:
                shutil.rmtree(d, ignore_errors=True)
        except OSError: pass

def recover(folder # A folder `write_atomic` wrote to
           ) -> int:
    ("Finish the groups of renames a crash interrupted in `folder` (their journals say which); remove stale temporary files "
     "and stale next states beside it. Returns the files moved.")
    folder, done = Path(folder), 0
    _drop_next(folder.absolute(), STALE)
    if not folder.is_dir(): return 0
    for j in sorted(folder.iterdir()):
        if not _JOURNAL.fullmatch(j.name): continue
        try: moves = json.loads(j.read_text(encoding='utf-8'))
        except (OSError, ValueError, RecursionError): continue  # gone meanwhile, or not ours
        for tmp, dest in _own_moves(folder, moves):
            if os.path.lexists(tmp): _move(tmp, dest); done += 1
        j.unlink(missing_ok=True)
    now = time.time()
    for f in folder.iterdir():
        try:
            if _TMP.fullmatch(f.name) and f.is_file() and now - f.stat().st_mtime > STALE: f.unlink(missing_ok=True)
        except OSError: pass
    return done

def write_atomic(files:dict # {path: text or bytes}, written together: all replaced, or none
                ):
    "Write every file to a temporary name beside it, commit a journal of the renames, then rename them all into place."
    files = {Path(p).absolute(): c for p, c in files.items()}
    if not files: return
    for p in files:
        if p.is_dir() or (p.exists() and not p.is_file()):
            raise IsADirectoryError(f"cannot write {p}: it is a folder or a special file, not a file: "
                                    "move it away or choose another folder.")
    folders = sorted({p.parent for p in files})
    if len(folders) > 1 and len(files) > 1: raise ValueError(f"a group of files is written to one folder, got {len(folders)}: "
                                                             f"{', '.join(map(str, folders))}.")
    for d in folders:
        d.mkdir(parents=True, exist_ok=True)
        recover(d)
    if len(files) > 1 and _switch(folders[0], files): return
    tmps, journal, jtmp = [], None, None
    try:
        if len(files) == 1:  # one file: a rename, under the folder's lock (a group's switch cannot drop it)
            (path, content), = files.items()
            with _folder_lock(folders[0]):
                tmps.append((_tmp_beside(path, content), path))
                return os.replace(*tmps[0])
        for path, content in files.items(): tmps.append((_tmp_beside(path, content), path))
        jtmp = _tmp_beside(folders[0]/'journal', json.dumps([[t, str(p)] for t, p in tmps]), prefix='.movierecs-journal.')
        with _no_interrupt():
            journal = Path(jtmp[:-len('.tmp')] + '.json')
            os.replace(jtmp, journal)  # the commit point: from here the group is replaced, by us or by `recover`
            for tmp, path in tmps: _move(tmp, path)
            journal.unlink(missing_ok=True)
    finally:
        if journal is None or not journal.exists():
            for tmp in [t for t, _ in tmps] + [jtmp]:
                if tmp and os.path.exists(tmp): os.remove(tmp)

@contextlib.contextmanager
def _folder_lock(folder):
    ("Hold `folder`'s lock (flock on the folder itself): writers to one folder take turns; a group's switch replaces the "
     "folder, so a writer that waited checks it holds today's. A folder this user cannot open is written without it.")
    import fcntl
    while True:
        try: fd = os.open(folder, os.O_RDONLY)
        except PermissionError:
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_ino == os.stat(folder).st_ino:
                yield
                return
        finally: os.close(fd)

def _switch(folder, files) -> bool:
    ("Write the group `files` by building `folder`'s next state beside it and exchanging the two in one step; False, with "
     "nothing changed, where the system cannot exchange the folder (a mount point, no renameat2: the journal is used then).")
    real = Path(os.path.realpath(folder))  # a folder reached through a symlink: the switch happens where the files are
    if os.path.ismount(real) or real.parent == real: return False
    files = {real/p.name: c for p, c in files.items()}
    with _folder_lock(real):
        _drop_next(real)  # under the lock, any next state beside the folder is a crashed writer's
        nxt = Path(tempfile.mkdtemp(dir=real.parent, prefix=f'.{real.name}.movierecs-next.'))
        try:
            st = os.stat(real)
            os.chmod(nxt, st.st_mode & 0o7777)
            try: os.chown(nxt, st.st_uid, st.st_gid)
            except OSError: pass  # another owner's folder: ours it becomes, as a new file would
            for entry in os.scandir(real):  # today's files, hard-linked: nothing is copied, nothing of today's is touched
                if real/entry.name in files: continue
                try:
                    if entry.is_dir(follow_symlinks=False):
                        shutil.copytree(entry.path, nxt/entry.name, symlinks=True, copy_function=os.link)
                    elif entry.is_symlink(): os.symlink(os.readlink(entry.path), nxt/entry.name)
                    else: os.link(entry.path, nxt/entry.name, follow_symlinks=False)
                except FileNotFoundError: pass  # gone meanwhile (another program's temporary file)
            for path, content in files.items(): os.replace(_tmp_beside(nxt/path.name, content), nxt/path.name)
            dfd = os.open(nxt, os.O_RDONLY)
            try: os.fsync(dfd)
            finally: os.close(dfd)
            with _no_interrupt():
                try: swapped = _exchange(nxt, real)  # the commit point: readers see the new set from here on
                except OSError: swapped = False
                if not swapped: return False
                _carry_over(nxt, real, files)
        finally: shutil.rmtree(nxt, ignore_errors=True)  # the unused next state, or the old state exchanged out
    return True

def _carry_over(old, new, files):
    "What another program put in the folder while the next state was built (a new file, a file replaced): moved into the new one."
    for entry in os.scandir(old):
        dest = new/entry.name
        if dest in files: continue
        try:
            there = os.lstat(dest)
            if there.st_ino == entry.inode(): continue  # the same file, linked into the new state
        except FileNotFoundError: pass
        try: os.replace(entry.path, dest)
        except OSError: pass  # a folder in the way, or gone meanwhile

def png_bytes(fig, dpi=80):
    "A matplotlib figure as PNG bytes (no timestamp or software tag, so the same figure gives the same file)."
    import io
    buf = io.BytesIO()
    fig.savefig(buf, format='png', dpi=dpi, bbox_inches='tight', metadata={'Software': None})
    return buf.getvalue()
