"Every MovieLens release, from 100k to 32M: found, read fast from its official format, checked against its README, keyed by movie id."
import difflib, hashlib, io, re, zipfile, zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
import numpy as np, pandas as pd
from ..core.errors import DataError
from . import ml100k
from .ml100k import ENV_VAR, path_or_env
__all__ = ['Release', 'DATASETS', 'GROUPLENS_URL', 'list_datasets', 'dataset_source', 'load_dataset']

GROUPLENS_URL = 'https://files.grouplens.org/datasets/movielens/'  # GroupLens serves release `name` as `GROUPLENS_URL + name + '.zip'`

@dataclass(frozen=True)
class Release:
    "One MovieLens release as GroupLens publishes it: where its files are, their format, and what its README states."
    name:str # Registry name, and the archive's: `<name>.zip`
    folder:str # The folder the archive holds the files in
    ratings:str # Ratings file: user, movie, rating, timestamp
    movies:str # Movies file: movie id, title, genres
    sep:str # Field separator of both files
    encoding:str # Text encoding of the movies file (the ratings are ASCII digits)
    header:bool # Both files start with a header line (the CSV releases)
    half_stars:bool # Ratings 0.5 to 5 in half stars; else whole stars 1 to 5
    n_ratings:int # Ratings, as the README states
    n_users:int|None # Users who rated, as the README states (None: it states no such number)
    n_movies:int|None # Rows of the movies file, as the README states (None: it states no exact number)
    md5:str|None # md5 of `<name>.zip` that GroupLens publishes in `<name>.zip.md5` (None: no published value found)

_DAT = dict(ratings='ratings.dat', movies='movies.dat', sep='::', header=False)

_CSV = dict(ratings='ratings.csv', movies='movies.csv', sep=',', encoding='utf-8', header=True, half_stars=True)

# Counts from each release's README at files.grouplens.org/datasets/movielens/<name>-README.{txt,html}; md5 from <name>.zip.md5
DATASETS = {r.name: r for r in (
    Release('ml-100k', 'ml-100k', 'u.data', 'u.item', '\t', 'latin-1', False, False, 100_000, 943, 1682,
            '0e33842e24a9c977be4e0107933c0723'),
    # "1,000,209 anonymous ratings of approximately 3,900 movies made by 6,040 MovieLens users": no exact movie count
    Release('ml-1m', 'ml-1m', **_DAT, encoding='latin-1', half_stars=False, n_ratings=1_000_209, n_users=6040, n_movies=None,
            md5='c4d9eecfca2ab87c1945afe126590906'),
    # "10000054 ratings and 95580 tags applied to 10681 movies by 71567 users": the 71567 count users of tags.dat too
    # (fewer rated: 69,878 by RecSysWiki's count), so users are not checked. movies.dat is UTF-8 here, not latin-1 as in ML-1M.
    Release('ml-10m', 'ml-10M100K', **_DAT, encoding='utf-8', half_stars=True, n_ratings=10_000_054, n_users=None, n_movies=10_681,
            md5='ce571fd55effeba0271552578f2648bd'),
    Release('ml-20m', 'ml-20m', **_CSV, n_ratings=20_000_263, n_users=138_493, n_movies=27_278, md5='cd245b17a1ae2cc31bb14903e1204af3'),
    Release('ml-25m', 'ml-25m', **_CSV, n_ratings=25_000_095, n_users=162_541, n_movies=62_423, md5='6b51fb2759a8657d3bfcbfc42b592ada'),
    Release('ml-32m', 'ml-32m', **_CSV, n_ratings=32_000_204, n_users=200_948, n_movies=87_585, md5='d472be332d4daa821edc399621853b57'),
    # A development release GroupLens regenerates (these are the README's numbers for the one of September 26, 2018).
    # GroupLens publishes ml-latest-small.zip.md5, but its value was not found: the archive's md5 is not checked.
    Release('ml-latest-small', 'ml-latest-small', **_CSV, n_ratings=100_836, n_users=610, n_movies=9742, md5=None),
)}

RATING_COLS = {'user': 'int32', 'movie': 'int32', 'rating': 'float32', 'timestamp': 'int64'}

CSV_HEADERS = (b'userId,movieId,rating,timestamp', 'movieId,title,genres')

GENRES_100K = ('unknown', 'Action', 'Adventure', 'Animation', "Children's", 'Comedy', 'Crime', 'Documentary', 'Drama', 'Fantasy',
               'Film-Noir', 'Horror', 'Musical', 'Mystery', 'Romance', 'Sci-Fi', 'Thriller', 'War', 'Western')  # u.item's flags, in order

def list_datasets() -> list:
    "Names of the MovieLens releases `load_dataset` reads."
    return list(DATASETS)

def _release(name) -> Release:
    if not isinstance(name, str) or name not in DATASETS:
        near = difflib.get_close_matches(str(name).lower(), DATASETS, n=1)
        raise DataError(f"Unknown MovieLens release {name!r}{f' (did you mean {near[0]!r}?)' if near else ''}. "
                        f"Valid names: {', '.join(DATASETS)}.")
    return DATASETS[name]

def _official(rel): return f"{rel.name}.zip from GroupLens ({GROUPLENS_URL}{rel.name}.zip)"

def _look(rel, base:Path, origin:str) -> Path:
    "The release's folder or zip: `base` itself, the folder or zip in it, or the one beside it when `base` is another release's."
    others = {n for r in DATASETS.values() if r is not rel for n in (r.name, r.folder)}
    if base.is_file():
        if not zipfile.is_zipfile(base):
            raise DataError(f"{base} (from the {origin}) is a file but not a zip archive: give {rel.name}'s extracted "
                            f"{rel.folder} folder, {rel.name}.zip, or a folder holding either.")
        if base.stem not in others: return base
        places = [base.parent]  # another release's zip: look beside it
    elif not base.is_dir():
        raise DataError(f"{base} (from the {origin}) is neither a folder nor a regular file: give {rel.name}'s extracted "
                        f"{rel.folder} folder, {rel.name}.zip, or a folder holding either.")
    elif base.name in others: places = [base, base.parent]  # e.g. MOVIERECS_DATA=/data/ml-100k: look in it, then in /data
    elif (base/rel.ratings).is_file(): return base
    else: places = [base]
    for p in places:
        for sub in dict.fromkeys((rel.folder, rel.name)):
            if (p/sub).is_dir(): return p/sub
        if (p/f'{rel.name}.zip').is_file(): return p/f'{rel.name}.zip'
    if base.name in (rel.name, rel.folder): return base  # its own folder, files missing: reading says which
    fix = f", or unset {ENV_VAR} to download it with fastai" if origin.startswith(ENV_VAR) else ''
    raise DataError(f"{rel.name} is not in {' nor in '.join(map(str, places))} (from the {origin}): looked for its extracted "
                    f"{rel.folder} folder and {rel.name}.zip. Put {_official(rel)} or its extracted folder there, or pass its path{fix}.")

def _download(rel) -> Path:
    "The release downloaded and extracted by fastai's `untar_data` (into `~/.fastai/data/<name>`)."
    from fastai.data.external import untar_data
    url = f'{GROUPLENS_URL}{rel.name}.zip'
    try: return Path(untar_data(url))
    except Exception as e:
        raise DataError(f"{rel.name} could not be downloaded from {url} ({type(e).__name__}: {' '.join(str(e).split())}): no network? "
                        f"Set {ENV_VAR} to a folder holding {rel.name}.zip or its extracted {rel.folder} folder, or pass path=.") from None

def _archive(rel) -> Path:
    "Where fastai's `untar_data` keeps the downloaded `<name>.zip`."
    from fastai.data.external import fastai_cfg
    return Path(fastai_cfg().path('archive'))/f'{rel.name}.zip'

def _locate(rel, path):
    "(source, downloaded): the release's folder or zip from `path`, else env `MOVIERECS_DATA`, else fastai's download."
    path, origin = path_or_env(path, 'a folder holding MovieLens releases (extracted folders or zips)')
    if path is None: return _download(rel), True
    try: base = Path(path).expanduser()
    except (RuntimeError, TypeError) as e: raise DataError(f"{path!r} (from the {origin}) is not a path ({e}).") from None
    if not base.exists():
        raise DataError(f"{rel.name} not found at {base} (from the {origin}): no such folder or file. Give its extracted "
                        f"{rel.folder} folder, {rel.name}.zip, or a folder holding either.")
    return _look(rel, base, origin), False

def dataset_source(name:str, # A release in `DATASETS`, e.g. 'ml-25m'
                   path=None # Its folder or zip, or a folder holding it; default: env `MOVIERECS_DATA`, else fastai's download
                  ) -> Path:
    "Where release `name` is read from: its extracted folder or its zip (fastai downloads it when no path is given or set)."
    return _locate(_release(name), path)[0]

class _File:
    "One file of a release in a folder or a zip: `open()` a fresh binary stream of it; `where` names it in messages."
    def __init__(self, rel, src:Path, name:str):
        self.src, self.name = src, name
        if src.is_dir():
            self.path, self.where = src/name, str(src/name)
            if not self.path.is_file():
                raise DataError(f"{self.path} is missing: {src} must be {rel.name}'s extracted {rel.folder} folder, which holds "
                                f"{rel.ratings} and {rel.movies}. Extract {_official(rel)} again.")
            return
        with self._zip() as z:
            found = [m.filename for m in ml100k.zip_members(z, name)]
        if len(found) > 1: found = [f for f in found if f == f'{rel.folder}/{name}'] or found
        if not found: raise DataError(f"{src} holds no {name}: is it {rel.name}'s archive? Use {_official(rel)}.")
        if len(found) > 1:
            raise DataError(f"{src} holds {len(found)} files named {name} ({', '.join(found[:3])}): which one is {rel.name}'s "
                            f"is unclear. Use {_official(rel)}.")
        self.member, self.where = found[0], f'{src}:{found[0]}'

    def _zip(self):
        try: return zipfile.ZipFile(self.src)
        except (zipfile.BadZipFile, OSError) as e: raise self._damaged(e) from None

    def _damaged(self, e):
        return DataError(f"{self.src} is a damaged zip archive ({type(e).__name__}: {' '.join(str(e).split())}): replace it with "
                         f"a fresh copy, or use the extracted folder.")

    @contextmanager
    def open(self):
        "A binary stream of the file (a zip member is inflated as it is read)."
        if self.src.is_dir():
            with open(self.path, 'rb') as f: yield f
        else:
            with self._zip() as z:
                try: f = z.open(self.member)
                except (RuntimeError, NotImplementedError) as e:  # a password, or a compression zipfile lacks (deflate64)
                    raise DataError(f"{self.where} cannot be read from the archive ({' '.join(str(e).split())}): extract {self.src} "
                                    "with a tool that can, and point at the folder.") from None
                with f: yield f

    def read(self) -> bytes:
        try:
            with self.open() as f: return f.read()
        except (zipfile.BadZipFile, zlib.error, EOFError) as e: raise self._damaged(e) from None

class _Tail(io.RawIOBase):
    "A binary stream over `f` that remembers the last byte read, to tell a file that ends mid-line."
    def __init__(self, f): self.f, self.last = f, b''
    def readable(self): return True
    def readinto(self, b):
        got = self.f.read(len(b))
        b[:len(got)] = got
        if got: self.last = got[-1:]
        return len(got)

def _fmt(rel): return rel.sep.join(('userId', 'movieId', 'rating', 'timestamp') if rel.header
                                   else ('UserID', 'MovieID', 'Rating', 'Timestamp'))

def _scale(rel): return '0.5 to 5 stars in half stars' if rel.half_stars else 'whole stars 1 to 5'

def _line(raw:bytes, i:int) -> tuple:
    "(number, text) of the line of `raw` that holds byte `i`."
    start = raw.rfind(b'\n', 0, i) + 1
    return raw.count(b'\n', 0, i) + 1, raw[start:].split(b'\n', 1)[0].rstrip(b'\r').decode('latin-1')

def _malformed(rel, f, e):
    "A DataError naming the first line of ratings file `f` that is not in `_fmt(rel)`, after pandas refused the file with `e`."
    sep = re.escape(rel.sep.encode())
    ok = re.compile(rb'(\d{1,10})' + sep + rb'(\d{1,10})' + sep + rb'\d+(?:\.\d+)?' + sep + rb'\d{1,18}')
    what = ' '.join(str(e).split())
    with f.open() as s:
        if rel.header: s.readline()
        for n, line in enumerate(s, 1 + rel.header):
            line = line.rstrip(b'\r\n')
            m = ok.fullmatch(line)
            if not m or int(m[1]) >= 2**31 or int(m[2]) >= 2**31:
                what = f"line {n}: {line.decode('latin-1')!r}" if line else f"line {n}, an empty line"
                break
    return DataError(f"{f.where} is malformed at {what}. Expected {rel.name}'s format, one rating per line: {_fmt(rel)!r} with "
                     f"integer ids (1 to 2**31-1), a number of stars and an integer timestamp. "
                     f"Replace it with a fresh copy of {_official(rel)}.")

def _read_ratings(rel, f:_File) -> pd.DataFrame:
    "The ratings file `f` parsed by pandas' C engine into compact columns, every field checked."
    opts = dict(header=None, names=list(RATING_COLS), dtype=RATING_COLS, engine='c', na_filter=False, skip_blank_lines=False)
    empty = pd.DataFrame({c: pd.Series(dtype=t) for c, t in RATING_COLS.items()})
    try:
        if rel.header:  # a CSV release: streamed to the parser, never all in memory as bytes
            with f.open() as s:
                head = s.readline()
                if not head: raise DataError(f"{f.where} is empty: replace it with a fresh copy of {_official(rel)}.")
                first = head.rstrip(b'\r\n')
                if first != CSV_HEADERS[0]:
                    raise DataError(f"{f.where} starts with {first[:80].decode('latin-1')!r}, not {rel.name}'s header line "
                                    f"{CSV_HEADERS[0].decode()!r}: it is not {rel.name}'s {rel.ratings} (another release's file, "
                                    f"or another separator?). Replace it with a fresh copy of {_official(rel)}.")
                tail = _Tail(s)
                try: df = pd.read_csv(io.BufferedReader(tail, 1 << 22), **opts)
                except pd.errors.EmptyDataError: df = empty
                ends = tail.last in (b'', b'\n')
        else:  # '::' files: ',' for '::' makes them one-character CSV for the C engine (the python engine '::' needs is ~20x slower)
            raw = f.read()
            if not raw.strip(): raise DataError(f"{f.where} is empty: replace it with a fresh copy of {_official(rel)}.")
            if b',' in raw:
                n, line = _line(raw, raw.index(b','))
                raise DataError(f"{f.where} has a comma at line {n}: {line!r}. {rel.name}'s {rel.ratings} separates its fields "
                                f"with '::' ({_fmt(rel)!r}): is it a CSV file? Replace it with a fresh copy of {_official(rel)}.")
            ends = raw.endswith(b'\n')
            buf = raw.replace(b'::', b',')
            del raw
            df = pd.read_csv(io.BytesIO(buf), **opts)
            del buf
    except DataError: raise
    except (zipfile.BadZipFile, zlib.error, EOFError) as e: raise f._damaged(e) from None
    except (ValueError, OverflowError) as e: raise _malformed(rel, f, e) from None  # pandas' ParserError is a ValueError
    if df.empty: raise DataError(f"{f.where} holds no ratings: replace it with a fresh copy of {_official(rel)}.")
    if not isinstance(df.index, pd.RangeIndex):  # pandas takes a field more than the four on every line as the index
        raise _malformed(rel, f, ValueError('a field more than four'))
    if not ends: raise DataError(f"{f.where} is truncated: its last line does not end with a newline. "
                                 f"Replace it with a fresh copy of {_official(rel)}.")
    _check_values(rel, df, f.where, 1 + rel.header)
    return df

def _check_values(rel, df, where, first_line):
    "Raise on the first rating whose ids are not 1 to 2**31-1 or whose stars are off the release's scale."
    u, m, r = (df[c].to_numpy() for c in ('user', 'movie', 'rating'))
    top = np.iinfo('int32').max
    steps = r * 2 if rel.half_stars else r
    bad_id = (u < 1) | (m < 1) | (u > top) | (m > top)
    bad = bad_id | ~((r >= (0.5 if rel.half_stars else 1)) & (r <= 5) & (steps == np.round(steps)))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        what = (f"id {u[i] if not 1 <= u[i] <= top else m[i]} (ids run from 1 to 2**31-1)" if bad_id[i] else
                f"rating {r[i]:g}, outside {rel.name}'s scale ({_scale(rel)})")
        raise DataError(f"{where} line {i + first_line} (user {u[i]}, movie {m[i]}) has {what}; {int(bad.sum())} bad line(s) in all. "
                        f"Replace it with a fresh copy of {_official(rel)}.")

def _text(rel, f:_File) -> str:
    "The movies file `f` decoded as its release ships it, refusing a re-encoded copy."
    raw = f.read()
    if not raw.strip(): raise DataError(f"{f.where} is empty: replace it with a fresh copy of {_official(rel)}.")
    if rel.encoding == 'latin-1':
        if re.search(rb'[\x80-\xff]', raw):
            try: raw.decode('utf-8')
            except UnicodeDecodeError: pass
            else: raise DataError(f"{f.where} is UTF-8 encoded, but {rel.name} ships it as latin-1: accented titles would come out "
                                  f"garbled. Replace it with the original file from {_official(rel)}.")
        return raw.decode('latin-1')
    try: return raw.decode(rel.encoding)
    except UnicodeDecodeError as e:
        n, line = _line(raw, e.start)
        raise DataError(f"{f.where} is not {rel.encoding} text: byte {raw[e.start]:#x} at line {n} ({line!r}), but {rel.name} ships "
                        f"it as {rel.encoding}: the copy was re-encoded (as latin-1?). Replace it with the original file from "
                        f"{_official(rel)}.") from None

def _read_movies(rel, f:_File) -> pd.DataFrame:
    "Movie ids, titles and genres of the movies file `f`: ids unique, no field empty."
    text = _text(rel, f)
    expect = 'movieId,title,genres (a title with a comma in double quotes)' if rel.header else 'MovieID::Title::Genres'
    if rel.header:
        first = text.split('\n', 1)[0].rstrip('\r')
        if first != CSV_HEADERS[1]:
            raise DataError(f"{f.where} starts with {first[:80]!r}, not {rel.name}'s header line {CSV_HEADERS[1]!r}: it is not "
                            f"{rel.name}'s {rel.movies}. Replace it with a fresh copy of {_official(rel)}.")
        try: df = pd.read_csv(io.StringIO(text), dtype=str, na_filter=False, skip_blank_lines=False, engine='c')
        except pd.errors.ParserError as e:
            raise DataError(f"{f.where} is malformed ({' '.join(str(e).split())}): expected one movie per line, {expect}. "
                            f"Replace it with a fresh copy of {_official(rel)}.") from None
        rows, first_line = zip(df.movieId.tolist(), df.title.tolist(), df.genres.tolist()), 2
    else:
        lines = text.split('\n')  # not splitlines(): it would also split at \x85, a latin-1 character
        if lines[-1] == '': lines.pop()
        rows, first_line = [], 1
        for line in lines:
            i, _, rest = line.rstrip('\r').partition('::')
            t, _, g = rest.rpartition('::')  # a title holding '::' stays whole
            rows.append((i, t, g))
    ids, titles, genres = [], [], []
    for n, (i, t, g) in enumerate(rows, first_line):
        if not (re.fullmatch(r'[1-9][0-9]{0,9}', i) and int(i) < 2**31 and t and g):
            raise DataError(f"{f.where} is malformed at line {n}: {rel.sep.join(x for x in (i, t, g) if x)!r}. Expected one movie per "
                            f"line, {expect}: a positive integer id, a title and genres. Replace it with a fresh copy of {_official(rel)}.")
        ids.append(int(i)); titles.append(t); genres.append(g)
    if not ids: raise DataError(f"{f.where} lists no movies: replace it with a fresh copy of {_official(rel)}.")
    movies = pd.DataFrame({'movie': np.array(ids, dtype='int32'), 'title': titles, 'genres': genres})
    dup = movies.movie[movies.movie.duplicated()]
    if len(dup): raise DataError(f"{f.where} lists movie id {dup.iat[0]} more than once: replace it with a fresh copy of {_official(rel)}.")
    return movies

def _load_100k(rel, src:Path, verify:bool):
    "ML-100k through `movierecs.data` (its files' sha256 checked when `verify`), with genres from u.item's flags."
    ratings, movies = ml100k.load_udata(src, verify), ml100k.load_movies(src, verify)
    item = pd.read_csv(io.BytesIO(ml100k.read_file(src, 'u.item', verify)), sep='|', header=None, encoding='latin-1', dtype=str,
                       na_filter=False)
    flags = item.iloc[:, 5:].to_numpy()
    if flags.shape[1] != len(GENRES_100K) or not np.isin(flags, ('0', '1')).all():
        raise DataError(f"u.item is malformed: expected id|title|release date|video release date|IMDb URL and {len(GENRES_100K)} "
                        f"genre flags (0 or 1) per line. Replace it with a fresh copy of ML-100k.")
    names = np.array(GENRES_100K, dtype=object)
    movies['genres'] = ['|'.join(names[row == '1']) for row in flags]
    _check_values(rel, ratings, 'u.data', 1)  # ids past int32 would wrap silently in astype
    return ratings.astype(RATING_COLS), movies.astype({'movie': 'int32'}), 'u.data', 'u.item'

def _check_md5(rel, zip_path:Path):
    h = hashlib.md5()
    with open(zip_path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 24), b''): h.update(chunk)
    if h.hexdigest() != rel.md5:
        raise DataError(f"{zip_path} has md5 {h.hexdigest()}, but GroupLens publishes {rel.md5} for {rel.name}.zip: the archive is "
                        f"corrupt, truncated or not the official one. Delete it and download it again ({GROUPLENS_URL}{rel.name}.zip), "
                        f"or pass verify=False to read it anyway.")

def _check_counts(rel, ratings, movies, where_r, where_m):
    "Raise unless the ratings, users and movies are as many as the release's README states."
    regen = (f" ({rel.name} is a development release GroupLens regenerates: if yours is a newer one, pass verify=False)"
             if 'latest' in rel.name else '')
    for what, where, expected, found in (('ratings', where_r, rel.n_ratings, lambda: len(ratings)),
                                         ('users', where_r, rel.n_users, lambda: ratings.user.nunique()),
                                         ('movies', where_m, rel.n_movies, lambda: len(movies))):
        if expected is not None and found() != expected:
            raise DataError(f"{where} has {found():,} {what}, but {rel.name}'s README states {expected:,}: the copy is truncated, "
                            f"edited or from another release{regen}. Replace it with a fresh copy of {_official(rel)}, or pass "
                            f"verify=False to load it as it is (a sample, say).")

def _check_pairs(rel, ratings, where):
    "Raise on a (user, movie) pair rated on two lines: a release rates each pair once, and training would count it twice."
    key = ratings.user.to_numpy('int64') << 31 | ratings.movie.to_numpy('int64')
    repeat = pd.Series(key).duplicated().to_numpy()  # one hashing pass; the rest only when a pair repeats
    if repeat.any():
        j = int(np.flatnonzero(repeat)[0])  # the first line repeating a pair, and that pair's first line
        i, first = int(np.flatnonzero(key[:j] == key[j])[0]), 1 + bool(rel.header)
        raise DataError(f"{where} rates user {ratings.user.iat[i]}'s movie {ratings.movie.iat[i]} twice (lines {i + first:,} and "
                        f"{j + first:,}; {int(repeat.sum()):,} repeated line(s) in all): a release rates each pair once. "
                        f"Drop the repeats (keep one line of each pair), or use a fresh copy of {_official(rel)}.")

def load_dataset(name:str, # A release in `DATASETS`, e.g. 'ml-25m'
                 path=None, # Its extracted folder or zip, or a folder holding either; default: env `MOVIERECS_DATA`, else fastai's download
                 verify=True # Check the zip's published md5 and the README's counts (False: load a sample or an edited copy)
                ) -> pd.DataFrame:
    "Ratings of release `name` in file order: user, movie (int32), rating (float32), timestamp (int64), title and genres (categories)."
    rel = _release(name)
    src, downloaded = _locate(rel, path)
    if verify and rel.md5:
        zipped = _archive(rel) if downloaded else src if src.is_file() and src.name == f'{rel.name}.zip' else None
        if zipped is not None and zipped.is_file(): _check_md5(rel, zipped)  # only the official archive: a zip of a sample has its own
    if rel.name == 'ml-100k': ratings, movies, where_r, where_m = _load_100k(rel, src, verify)
    else:
        fr, fm = _File(rel, src, rel.ratings), _File(rel, src, rel.movies)
        movies, ratings, where_r, where_m = _read_movies(rel, fm), _read_ratings(rel, fr), fr.where, fm.where
    pos = pd.Index(movies.movie).get_indexer(ratings.movie)
    if (pos < 0).any():
        missing = pd.unique(ratings.movie[pos < 0])
        raise DataError(f"{where_r} rates {len(missing)} movie id(s) that {where_m} does not list (e.g. {missing[:5].tolist()}): the two "
                        f"files come from different copies. Use both from one copy of {_official(rel)}.")
    if verify: _check_counts(rel, ratings, movies, where_r, where_m)  # a repeated line changes the counts
    else: _check_pairs(rel, ratings, where_r)
    rated = np.zeros(len(movies), bool)
    rated[pos] = True
    for col in ('title', 'genres'):  # categories: those of rated movies only, as fastai's Categorify embeds every category
        codes, cats = pd.factorize(movies[col][rated])
        small = next(t for t in (np.int8, np.int16, np.int32) if len(cats) < np.iinfo(t).max)  # the codes' dtype in a Categorical
        full = np.full(len(movies), -1, small)
        full[rated] = codes
        ratings[col] = pd.Categorical.from_codes(full[pos], cats)
    return ratings
