"MovieLens 100k's files: find them, verify them against their published sha256, read them, and the canonical splits."
import hashlib, io, os, zipfile, zlib
from pathlib import Path
import numpy as np, pandas as pd
from ..core.checks import regular_size
from ..core.errors import DataError
__all__ = ['ML_100K_SHA256', 'SPLITS', 'ENV_VAR', 'data_source', 'zip_members', 'read_file', 'load_udata', 'load_movies', 'load_split']

ENV_VAR = 'MOVIERECS_DATA'

ML_100K_SHA256 = {  # sha256 of the files movierecs reads, from the official archive
    'u.data': '06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490',
    'u.item': '553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701',
    'u1.base': 'ce253ec86c448b44fb3ba9a30d12dcfc2e9210cbde71efada3730c22e9ac212a',
    'u1.test': '18c6014a4b2c7324f250a63f8904a7b16b2b19f911129e346141507b0cbac950',
    'u2.base': '6c06f0b5df4b256da1a994f3ac66edc8da4d3f09bc9282df6b14d893366d703e',
    'u2.test': '4de658d1e04ed9104629509a2e2528fce833ac8e048280183f1df167632038c3',
    'u3.base': 'afdc155c291c6edc41c0407e39d7462eb98d341e064f0b0a12175b80b3c4af5d',
    'u3.test': '0f548b51c78327de4c156461d3e430b7e5579fe2b5681586a59416e48fd35f6d',
    'u4.base': '219f0f4d40dfe9c5141d425f53fa91ee23ed275f14e280bbf1b50117afb064ca',
    'u4.test': '7c02ad0a1e7ab1083c8b9d4b627203a051dd7b5eab46d99fa44de33470de8db9',
    'u5.base': 'a9574e59ce961eec2121627760b6e9b0974ce1637b3fe69ac32cb14a4bfab485',
    'u5.test': '351cc52e0d15b6c721466276fc24671d40936899e3d01fadeaf312915b8c5634',
    'ua.base': '67b5bcdb380c29f85d56a012ecd88612ae020f30a6730d117a334ee8203b91f2',
    'ua.test': 'd0497e202417720f57a184ec8c66be2d1afa4ff41bb53787c57b28d6bf79bc42',
    'ub.base': '237254d253b6ad7de84f919d041055428646254f34ed8f562703c899430cd881',
    'ub.test': 'd54a72d05730d5892062734b2bec73e976f9b713d18c828a18b968d6cce442da',
}

MAX_FILE = 16 * 2**20  # bytes: no ML-100k file comes near (u.data is 1.98 MB); a bigger one is refused before it is read

SPLITS = ('u1', 'u2', 'u3', 'u4', 'u5', 'ua', 'ub')  # the canonical splits: u1-u5 5-fold 80/20, ua/ub 10 test ratings per user

RATING_COLS = ['user', 'movie', 'rating', 'timestamp']

def path_or_env(path, what):
    "(path, where it came from): `path`, else env `MOVIERECS_DATA` (refused when set but empty), else (None, None)."
    if path is not None or ENV_VAR not in os.environ: return path, 'path argument'
    path = os.environ[ENV_VAR]
    if not path.strip(): raise DataError(f"{ENV_VAR} is set but empty: point it at {what}, or unset it to download with fastai.")
    return path, f'{ENV_VAR} environment variable'

def data_source(path=None # An extracted `ml-100k` folder or `ml-100k.zip`; default: env `MOVIERECS_DATA`, else fastai's download
               ) -> Path:
    "Where the ML-100k files come from: `path`, else env `MOVIERECS_DATA`, else `untar_data(URLs.ML_100k)`."
    path, origin = path_or_env(path, 'the extracted ml-100k folder or ml-100k.zip')
    if path is None:
        from fastai.data.external import untar_data, URLs
        try: return Path(untar_data(URLs.ML_100k))
        except Exception as e:
            raise DataError(f"ML-100k could not be downloaded ({type(e).__name__}: {' '.join(str(e).split())}): "
                            f"no network? Set {ENV_VAR} to an ml-100k folder or ml-100k.zip you have.") from None
    try: path = Path(path).expanduser()
    except RuntimeError as e: raise DataError(f"{path} (from the {origin}): {e} "
                                              "Give the path of the ml-100k folder or ml-100k.zip.") from None
    except TypeError as e: raise DataError(f"{path!r} (from the {origin}) is not a path ({e}): "
                                           "give the path of the ml-100k folder or ml-100k.zip as a str or Path.") from None
    if not path.exists():
        raise DataError(f"ML-100k not found at {path} (from the {origin}): no such folder or file. "
                        f"Point it at the extracted ml-100k folder (holding u.data and u.item) or at ml-100k.zip, "
                        f"or leave {ENV_VAR} unset to download with fastai's untar_data(URLs.ML_100k).")
    if not path.is_dir() and not path.is_file():
        raise DataError(f"{path} (from the {origin}) is neither a folder nor a regular file (a device, a pipe or a "
                        f"socket?): give the extracted ml-100k folder or the ml-100k.zip archive.")
    if path.is_file() and not zipfile.is_zipfile(path):
        raise DataError(f"{path} (from the {origin}) is a file but not a zip archive. "
                        f"Give the extracted ml-100k folder or the ml-100k.zip archive.")
    return path

def zip_members(z:zipfile.ZipFile, name:str) -> list:
    "The members of archive `z` that are the file `name`: at its top, or in any folder of it."
    return [m for m in z.infolist() if m.filename == name or m.filename.endswith('/' + name)]

def read_file(src:Path, # Folder or zip from `data_source`
              name:str, # File name inside ml-100k, e.g. 'u.data'
              verify=True # Check the sha256 against `ML_100K_SHA256`
             ) -> bytes:
    "Bytes of `name` from the folder or zip `src`, checked against its published sha256."
    if src.is_dir():
        f = src/name
        size = regular_size(f)
        if size is None:
            raise DataError(f"{f} is missing: {src} must be the extracted ml-100k folder, which holds {name}. "
                            f"Re-extract ml-100k.zip there, or point {ENV_VAR} at a complete copy.")
        if size > MAX_FILE:
            raise DataError(f"{f} is {size:,} bytes, more than any ML-100k file ({MAX_FILE:,}): replace it with a fresh copy.")
        data, where = f.read_bytes(), str(f)
    else:
        try:
            with zipfile.ZipFile(src) as z:
                members = zip_members(z, name)
                if not members:
                    raise DataError(f"{src} holds no {name}: is it the ML-100k archive (ml-100k.zip from GroupLens)?")
                if len(members) > 1:
                    raise DataError(f"{src} holds {len(members)} files named {name} ({', '.join(m.filename for m in members[:3])}): "
                                    f"which one is ML-100k's is unclear. Use the archive from GroupLens.")
                m, where = members[0], f'{src}:{members[0].filename}'
                if m.file_size > MAX_FILE:
                    raise DataError(f"{where} would inflate to {m.file_size:,} bytes, more than any ML-100k file "
                                    f"({MAX_FILE:,}): this is not the ML-100k archive.")
                with z.open(m) as f: data = f.read(MAX_FILE + 1)
                if len(data) > MAX_FILE: raise DataError(f"{where} inflates past {MAX_FILE:,} bytes: this is not the ML-100k archive.")
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError) as e:
            raise DataError(f"{src} is a damaged zip archive ({type(e).__name__}: {' '.join(str(e).split())}): replace it "
                            f"with a fresh ml-100k.zip, or point {ENV_VAR} at the extracted folder.") from None
    if verify and name in ML_100K_SHA256:
        actual = hashlib.sha256(data).hexdigest()
        if actual != ML_100K_SHA256[name]:
            raise DataError(f"{where} has the wrong checksum: expected sha256 {ML_100K_SHA256[name]}, got {actual} "
                            f"({len(data):,} bytes). The file is corrupt, truncated or edited: replace it with a fresh "
                            f"copy of ML-100k (delete it and rerun to download, or point {ENV_VAR} at a verified copy).")
    return data

def _parse_udata(data:bytes, name='u.data') -> pd.DataFrame:
    "The `u.data` table (or a split file `name` in its format), every field checked: four tab-separated integers per line, ratings 1 to 5."
    try: df = pd.read_csv(io.BytesIO(data), sep='\t', header=None, names=RATING_COLS, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise DataError(f"{name} is malformed ({e}): expected 4 tab-separated integers per line "
                        f"(user, movie, rating, timestamp). Replace it with a fresh copy of ML-100k.") from None
    if df.empty: raise DataError(f"{name} holds no ratings: replace it with a fresh copy of ML-100k.")
    if not data.endswith(b'\n'):
        raise DataError(f"{name} is truncated: its last line {data.splitlines()[-1].decode('latin-1')!r} does not end "
                        f"with a newline. Replace it with a fresh copy of ML-100k.")
    whole = df.apply(lambda c: c.str.fullmatch(r'-?\d{1,18}'))  # an integer int64 holds exactly: no 3.5, no 1e3, no overflow
    num = df.apply(pd.to_numeric, errors='coerce')
    bad = ~whole.all(axis=1) | num.isna().any(axis=1) | (num.rating < 1) | (num.rating > 5)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        line = '\t'.join(v for v in df.iloc[i] if isinstance(v, str))
        raise DataError(f"{name} is malformed at line {i+1}: {line!r} "
                        f"(expected 4 tab-separated integers user, movie, rating 1-5, timestamp; "
                        f"{int(bad.sum())} bad line(s) in all — is the file truncated?). Replace it with a fresh copy of ML-100k.")
    return num.astype('int64')

def _parse_uitem(data:bytes) -> pd.DataFrame:
    "Movie ids and titles from `u.item` (latin-1, `|`-separated), refusing a re-encoded file."
    if any(b > 127 for b in data):
        try: data.decode('utf-8')
        except UnicodeDecodeError: pass
        else: raise DataError("u.item is UTF-8 encoded, but ML-100k ships it as latin-1: titles such as "
                              "'Misérables, Les (1995)' would come out garbled. Replace it with the original file.")
    movies = pd.read_csv(io.BytesIO(data), sep='|', encoding='latin-1', usecols=(0,1), names=('movie','title'),
                         header=None, dtype={'title': str}, keep_default_na=False)
    ids = pd.to_numeric(movies.movie, errors='coerce')
    if movies.empty or ids.isna().any() or (movies.title == '').any() or ids.duplicated().any():
        raise DataError("u.item is malformed: expected one line per movie, `|`-separated, a unique integer id "
                        "then a title. Replace it with a fresh copy of ML-100k.")
    return movies.assign(movie=ids.astype('int64'))

def _check_movies(ratings, movies, name):
    "Raise if `ratings` (read from the file `name`) rates a movie id that u.item does not list."
    missing = np.setdiff1d(ratings.movie.unique(), movies.movie)
    if len(missing):
        raise DataError(f"{name} rates {len(missing)} movie id(s) that u.item does not list (e.g. {missing[:5].tolist()}): "
                        f"the two files come from different data sets. Use {name} and u.item from the same ML-100k copy.")

def load_udata(path=None, # ml-100k folder or zip; default: env `MOVIERECS_DATA`, else fastai's download
               verify=True # Check the file's sha256
              ) -> pd.DataFrame:
    "`u.data` as the file holds it: user, movie, rating, timestamp, in the file's order (the notebook's first `ratings.head()`)."
    return _parse_udata(read_file(data_source(path), 'u.data', verify))

def load_movies(path=None, # ml-100k folder or zip; default: env `MOVIERECS_DATA`, else fastai's download
                verify=True # Check the file's sha256
               ) -> pd.DataFrame:
    "The movie ids and titles of `u.item` (the notebook's `movies`)."
    return _parse_uitem(read_file(data_source(path), 'u.item', verify))

def load_split(split='u1', # One of `SPLITS`
               path=None, # ml-100k folder or zip; default: env `MOVIERECS_DATA`, else fastai's download
               verify=True # Check the files' sha256
              ) -> tuple:
    "The canonical split's (base, test) ratings, each shaped like `load_ratings()` (titles merged in, file order kept)."
    if split not in SPLITS: raise DataError(f"Unknown split {split!r}. Valid splits: {', '.join(SPLITS)}.")
    src = data_source(path)
    movies = _parse_uitem(read_file(src, 'u.item', verify))
    out = []
    for part in ('base', 'test'):
        name = f'{split}.{part}'
        df = _parse_udata(read_file(src, name, verify), name)
        _check_movies(df, movies, name)
        out.append(df.merge(movies, how='left'))  # a left merge keeps the file's row order
    return tuple(out)
