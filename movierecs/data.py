"MovieLens 100k: find it, verify it, load it like the notebook, and build `dls` that shuffle correctly."
import hashlib, io, os, random, re, warnings, zipfile, zlib
from functools import partial
from collections import Counter
from pathlib import Path

import numpy as np, pandas as pd, torch
from fastai.collab import CollabDataLoaders, TabularCollab
from fastai.data.block import TransformBlock
from fastai.tabular.core import Categorify, TabDataLoader, TabWeightedDL

from .fast import fast_dataloaders
from .loaders import direct_ok, snapshot, tensor_dataloaders

__all__ = ['DataError', 'ML_100K_SHA256', 'SPLITS', 'ENV_VAR', 'data_source', 'read_file', 'load_udata', 'load_movies', 'load_ratings', 'load_split', 'stratified_split',
           'synthetic_ratings', 'dataloaders', 'check_dls', 'epoch_rows', 'shuffle_stats']

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

class DataError(ValueError):
    "ML-100k data or a ratings frame that is missing, corrupt or malformed."

def _path_or_env(path, what):
    "(path, where it came from): `path`, else env `MOVIERECS_DATA` (refused when set but empty), else (None, None)."
    if path is not None or ENV_VAR not in os.environ: return path, 'path argument'
    path = os.environ[ENV_VAR]
    if not path.strip(): raise DataError(f"{ENV_VAR} is set but empty: point it at {what}, or unset it to download with fastai.")
    return path, f'{ENV_VAR} environment variable'

def data_source(path=None # An extracted `ml-100k` folder or `ml-100k.zip`; default: env `MOVIERECS_DATA`, else fastai's download
               ) -> Path:
    "Where the ML-100k files come from: `path`, else env `MOVIERECS_DATA`, else `untar_data(URLs.ML_100k)`."
    path, origin = _path_or_env(path, 'the extracted ml-100k folder or ml-100k.zip')
    if path is None:
        from fastai.data.external import untar_data, URLs
        try: return Path(untar_data(URLs.ML_100k))
        except Exception as e:
            raise DataError(f"ML-100k could not be downloaded ({type(e).__name__}: {' '.join(str(e).split())}): "
                            f"no network? Set {ENV_VAR} to an ml-100k folder or ml-100k.zip you have.") from None
    try: path = Path(path).expanduser()
    except RuntimeError as e: raise DataError(f"{path} (from the {origin}): {e} Give the path of the ml-100k folder or ml-100k.zip.") from None
    except TypeError as e: raise DataError(f"{path!r} (from the {origin}) is not a path ({e}): give the path of the ml-100k folder or ml-100k.zip as a str or Path.") from None
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

def read_file(src:Path, # Folder or zip from `data_source`
              name:str, # File name inside ml-100k, e.g. 'u.data'
              verify=True # Check the sha256 against `ML_100K_SHA256`
             ) -> bytes:
    "Bytes of `name` from the folder or zip `src`, checked against its published sha256."
    if src.is_dir():
        f = src/name
        if not f.is_file():
            raise DataError(f"{f} is missing: {src} must be the extracted ml-100k folder, which holds {name}. "
                            f"Re-extract ml-100k.zip there, or point {ENV_VAR} at a complete copy.")
        if f.stat().st_size > MAX_FILE:
            raise DataError(f"{f} is {f.stat().st_size:,} bytes, more than any ML-100k file ({MAX_FILE:,}): replace it with a fresh copy.")
        data, where = f.read_bytes(), str(f)
    else:
        try:
            with zipfile.ZipFile(src) as z:
                members = [m for m in z.infolist() if m.filename == name or m.filename.endswith('/'+name)]
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

def load_ratings(path=None, # ml-100k folder or zip (default: env `MOVIERECS_DATA`, else fastai's download); or a release name, e.g. 'ml-25m'
                 verify=True # Check the files' sha256 (a release: its md5 and README counts)
                ) -> pd.DataFrame:
    "The notebook's `ratings`: `u.data` (user, movie, rating, timestamp) merged with titles from `u.item`; given a release name, `load_dataset(name)`."
    if isinstance(path, str) and re.fullmatch(r'\s*ml[-_ ]\S*\s*', path, re.IGNORECASE):  # a release's name
        from .datasets import DATASETS, load_dataset, _release
        here = Path(path).exists()  # e.g. the folder unzipping the release here leaves
        if path in DATASETS and path != 'ml-100k': return load_dataset(path, path if here else None, verify)  # keyed by movie id: titles repeat
        if not here:
            if path != 'ml-100k': _release(path)  # not a release's name: the error names the valid ones
            path = None  # 'ml-100k': the notebook's frame, from MOVIERECS_DATA or fastai's download
    src = data_source(path)
    ratings, movies = _parse_udata(read_file(src, 'u.data', verify)), _parse_uitem(read_file(src, 'u.item', verify))
    _check_movies(ratings, movies, 'u.data')
    ratings = ratings.merge(movies)
    # pandas < 2.2 (the notebook's) grouped an inner merge's rows by key in order of first appearance; keep that order,
    # so `ratings.head()` and the rows a seeded split holds out match the notebook's
    return ratings.iloc[np.argsort(pd.factorize(ratings.movie)[0], kind='stable')].reset_index(drop=True)

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

def stratified_split(ratings:pd.DataFrame, # Ratings like `load_ratings()` (each movie's rows in u.data's order)
                     ratio=0.75, # Share of each group's rows that goes to training
                     by='movie', # The column to stratify by: 'movie' (Microsoft Recommenders' benchmark) or 'user'
                     seed=42 # Seed of the shuffle of each group
                    ) -> tuple:
    "Microsoft Recommenders' `python_stratified_split` as their benchmark ran it: each group's rows shuffled by `RandomState(seed)`, the first round(ratio·n) to training."
    if not 0 < ratio < 1: raise DataError(f"ratio must be between 0 and 1, got {ratio!r}.")
    if by not in ('movie', 'user') or by not in ratings.columns:
        raise DataError(f"by must be 'movie' or 'user', a column of ratings; got {by!r} (columns: {list(ratings.columns)}).")
    train = np.zeros(len(ratings), bool)
    for _, pos in ratings.groupby(by, sort=True).indices.items():
        perm = np.random.RandomState(seed).permutation(len(pos))  # pandas' sample(frac=1, random_state=seed)
        train[pos[perm[:round(ratio * len(pos))]]] = True  # Python's round: half to even, like theirs
    return ratings[train].reset_index(drop=True), ratings[~train].reset_index(drop=True)

def synthetic_ratings(n_users=100, # Number of users
                      n_movies=60, # Number of movies
                      n_factors=3, # Rank of the hidden taste model
                      density=0.5, # Fraction of (user, movie) pairs rated
                      noise=0.3, # Std of the rating noise
                      seed=0 # Seed of the generator
                     ) -> pd.DataFrame:
    "A ratings frame shaped like `load_ratings`, drawn from a known low-rank model with biases."
    for v, k in ((n_users, 'n_users'), (n_movies, 'n_movies'), (n_factors, 'n_factors')): _positive_int(v, k)
    if n_users * n_movies > 10**8 or n_factors > 10**4:
        raise ValueError(f"n_users x n_movies must be at most 100,000,000 and n_factors at most 10,000, got {n_users:,} x {n_movies:,}, {n_factors:,}.")
    _check_seed(seed)
    if not (isinstance(density, (int, float)) and 0 < density <= 1): raise ValueError(f"density must be in (0, 1], got {density!r}.")
    if not (isinstance(noise, (int, float)) and noise >= 0 and np.isfinite(noise)): raise ValueError(f"noise must be >= 0, got {noise!r}.")
    rng = np.random.default_rng(seed)
    u, m = rng.normal(0, 0.7, (n_users, n_factors)), rng.normal(0, 0.7, (n_movies, n_factors))
    ub, mb = rng.normal(0, 0.4, n_users), rng.normal(0, 0.5, n_movies)
    pairs = np.argwhere(rng.random((n_users, n_movies)) < density)
    ui, mi = pairs[:,0], pairs[:,1]
    score = 3.5 + ub[ui] + mb[mi] + (u[ui]*m[mi]).sum(1) + rng.normal(0, noise, len(pairs))
    return pd.DataFrame({'user': ui+1, 'movie': mi+1, 'rating': np.clip(np.rint(score), 1, 5).astype('int64'),
                         'timestamp': 880_000_000 + rng.integers(0, 10**7, len(pairs)),
                         'title': [f'Movie {i+1} (1990)' for i in mi]})

def _positive_int(v, name, what=''):
    "Raise a ValueError naming `name` unless `v` is an integer >= 1 (not a bool)."
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{name} must be a positive integer{what}, got {v!r}.")

def _check_seed(seed):
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer from 0 to 2**32-1, got {seed!r}: every result is seeded (the same seed gives the same numbers).")

def _check_splits(splits, n):
    "`splits` as two integer arrays of distinct row positions in 0..n-1, neither empty; a DataError naming the problem otherwise."
    try: train, valid = (np.asarray(p) for p in splits)
    except (TypeError, ValueError): raise DataError("splits must be a pair (train positions, valid positions).") from None
    for what, p in (('train', train), ('valid', valid)):
        if p.ndim != 1 or not (p.size == 0 or np.issubdtype(p.dtype, np.integer)):
            raise DataError(f"splits: the {what} positions must be a list of integer row positions, got dtype {p.dtype}.")
        if p.size == 0:
            if what == 'train': raise DataError("splits: the train set is empty: give it some rows (or use valid_pct).")
            continue  # training on every row (no validation) is allowed: `fit_topn` does it
        if p.min() < 0 or p.max() >= n:
            raise DataError(f"splits: {what} position {int(p.min() if p.min() < 0 else p.max())} is outside the {n} rows of ratings.")
        if len(np.unique(p)) != len(p): raise DataError(f"splits: the {what} positions repeat a row.")
    both = np.intersect1d(train, valid)
    if len(both): raise DataError(f"splits: {len(both)} rows are in both train and valid (e.g. row {int(both[0])}): they must not overlap.")
    return train, valid

def _check_ratings(ratings, item_name='title'):
    if not isinstance(ratings, pd.DataFrame):
        raise DataError(f"ratings must be a pandas DataFrame, got {type(ratings).__name__}: use load_ratings().")
    if item_name not in ('title', 'movie'): raise DataError(f"item_name must be 'title' or 'movie', got {item_name!r}.")
    dup = sorted({c for c in ratings.columns if list(ratings.columns).count(c) > 1}, key=str)
    if dup: raise DataError(f"ratings has more than one column named {', '.join(map(repr, dup))}: keep one of each.")
    missing = [c for c in ('user', item_name, 'rating') if c not in ratings.columns]
    if missing: raise DataError(f"ratings lacks column(s) {missing}; it has {list(ratings.columns)}. "
                                f"Build it with load_ratings() or give it user, {item_name} and rating columns"
                                + (" (or pass item_name='movie' to key movies by id)." if item_name == 'title' and 'movie' in ratings.columns else '.'))
    if ratings.empty: raise DataError("ratings is empty: there is nothing to train on. Check the filter that built it.")
    for col in ('user', item_name):
        kinds = {type(v).__name__ for v in ratings[col].drop_duplicates()}
        if len({'int' if k in ('int', 'int64', 'int32') else k for k in kinds}) > 1:
            raise DataError(f"ratings' {col} column mixes {' and '.join(sorted(kinds))} values: give every {col} the same type, "
                            f"e.g. ratings.assign({col}=ratings.{col}.astype(str)).")
    if (not pd.api.types.is_numeric_dtype(ratings.rating) or pd.api.types.is_bool_dtype(ratings.rating)
            or pd.api.types.is_complex_dtype(ratings.rating)):
        raise DataError(f"ratings' rating column holds {ratings.rating.dtype} values, not numbers: convert it, e.g. "
                        f"ratings.assign(rating=ratings.rating.astype(float)).")
    r = pd.to_numeric(ratings.rating, errors='coerce')
    if not np.isfinite(r.to_numpy(dtype=float)).all() or ratings[['user', item_name]].isna().any().any():
        raise DataError(f"ratings has missing or non-numeric values in user, {item_name} or rating: drop or fix those rows.")

LOADER_ARGS = ('val_bs', 'dl_type', 'dl_kwargs', 'device', 'num_workers', 'pin_memory', 'path')  # what `dataloaders` passes on to fastai

def dataloaders(ratings=None, # Ratings frame like `load_ratings()`; loaded when None
                bs=64, # Batch size
                valid_pct=0.2, # Fraction of rows held out for validation
                seed=42, # Seed of the random train/valid split and of the training shuffles
                splits=None, # (train, valid) row positions, instead of a random `valid_pct` split
                fast=True, # Serve the batches from in-memory tensors (`loaders.tensor_dataloaders`); False: fastai's own loaders, the faithful path
                item_name='title', # The item column: 'title' as in the notebook, or 'movie' (the id) as on the canonical splits
                **kwargs # Passed to `CollabDataLoaders.from_df` (its dl_type is TabDataLoader unless given), e.g. `val_bs`
               ):
    "`CollabDataLoaders.from_df(ratings, item_name='title', dl_type=TabDataLoader)`, a true permutation every epoch; unless `fast=False`, the same rows and codes as tensors, built without fastai's `TabularPandas` (`loaders.tensor_dataloaders`)."
    odd = [k for k in kwargs if k not in LOADER_ARGS]
    if odd: raise TypeError(f"dataloaders() takes no argument {', '.join(map(repr, odd))}: it takes ratings, bs, valid_pct, seed, "
                            f"splits, fast, item_name and fastai's {', '.join(LOADER_ARGS)}.")
    if ratings is None: ratings = load_ratings()
    _check_ratings(ratings, item_name)
    if isinstance(valid_pct, bool) or not isinstance(valid_pct, (int, float, np.integer, np.floating)) or not 0 < valid_pct < 1:
        raise DataError(f"valid_pct must be a number between 0 and 1, e.g. 0.2, got {valid_pct!r}.")
    _positive_int(bs, 'bs')
    _check_seed(seed)
    seed = int(seed)  # numpy integers too: fastai's and Python's generators take only int
    if kwargs.get('val_bs') is not None: _positive_int(kwargs['val_bs'], 'val_bs')
    if kwargs.get('device') is not None:
        try: dev = torch.device(kwargs['device'])
        except (RuntimeError, TypeError) as e: raise ValueError(f"device {kwargs['device']!r} is not a torch device ({e}): give e.g. 'cpu' or 'cuda'.") from None
        if dev.type == 'cuda' and not torch.cuda.is_available(): raise ValueError(f"device {kwargs['device']!r}: this machine has no CUDA device; use 'cpu'.")
    if splits is not None: splits = _check_splits(splits, len(ratings))
    n_train = len(ratings) - int(valid_pct*len(ratings)) if splits is None else len(splits[0])  # fastai's RandomSplitter's cut
    if n_train < bs:
        raise DataError(f"{len(ratings)} ratings leave fewer than bs={bs} training rows, and fastai drops the last "
                        f"partial batch: lower bs or give more ratings.")
    if fast and not any(k in kwargs for k in FASTAI_ONLY) and direct_ok(ratings, ['user', item_name]):
        ratings = snapshot(ratings)  # fastai's loaders and `items` are built later, from the rows as they are now
        make = partial(_fastai_dls, ratings, bs, valid_pct, seed, splits, item_name, **kwargs)
        return tensor_dataloaders(ratings, bs, valid_pct, seed, splits, item_name, make, val_bs=kwargs.get('val_bs'), path=kwargs.get('path', '.'))
    dls = _fastai_dls(ratings, bs, valid_pct, seed, splits, item_name, **kwargs)
    if not fast: return dls
    if type(dls.train) is not TabDataLoader:
        raise DataError(f"The fast path serves a uniform permutation and cannot replace dl_type={type(dls.train).__name__}: "
                        f"pass fast=False to keep fastai's loader (e.g. for weighted sampling).")
    return fast_dataloaders(dls, seed=seed, val_bs=kwargs.get('val_bs'))

FASTAI_ONLY = ('dl_type', 'dl_kwargs', 'device', 'num_workers', 'pin_memory')  # options only fastai's loaders take: the fast path wraps them

def _fastai_dls(ratings, bs, valid_pct, seed, splits, item_name, **kwargs):
    "fastai's `DataLoaders` of `ratings` (checked arguments): `CollabDataLoaders.from_df`, or its steps after the split for `splits`."
    dl_type = kwargs.pop('dl_type', TabDataLoader)  # not fastai's default TabWeightedDL, which samples with replacement
    with warnings.catch_warnings():
        # fastai makes its batches with torch.as_tensor(frame.values), which pandas >= 3 (copy-on-write) hands out read-only.
        # fastai only reads them, and torch says so once per process: here, where it first happens, not in a user's notebook.
        warnings.filterwarnings('ignore', message='The given NumPy array is not writable', category=UserWarning)
        if splits is None:
            dls = CollabDataLoaders.from_df(ratings, dl_type=dl_type, valid_pct=valid_pct, user_name='user',
                                            item_name=item_name, rating_name='rating', seed=seed, bs=bs, **kwargs)
        else:  # what `from_df` does after its `RandomSplitter`
            to = TabularCollab(ratings, [Categorify], ['user', item_name], y_names=['rating'], y_block=TransformBlock(),
                               splits=[list(splits[0]), list(splits[1])])
            dls = to.dataloaders(path=kwargs.pop('path', '.'), bs=bs, dl_type=dl_type, **kwargs)
    if seed is not None: dls.train.rng = random.Random(seed)  # the shuffles too, not only the split
    return check_dls(dls)

def check_dls(dls):
    "Return `dls` if its training loader visits every row once per epoch; raise on fastai's resampling `TabWeightedDL`."
    dl = dls.train
    if isinstance(dl, TabWeightedDL) and np.allclose(dl.wgts, dl.wgts[0]):
        raise DataError("dls.train is fastai's TabWeightedDL, which samples training rows with replacement "
                        "(about 63% distinct rows per epoch) and costs accuracy. Build dls with movierecs.dataloaders(), "
                        "or pass dl_type=TabDataLoader to CollabDataLoaders.from_df.")
    return dls

def epoch_rows(dl) -> np.ndarray:
    "The (user, item, rating) rows one pass over `dl` yields, in order: shape (rows, 3)."
    return np.concatenate([np.column_stack([x.cpu().numpy(), y.cpu().numpy().reshape(len(y), -1)]) for x, y in dl])

def shuffle_stats(dl, # A training loader, e.g. `dls.train`
                  epochs=2 # Passes to make over `dl`
                 ) -> dict:
    "How `epochs` passes over `dl` cover its dataset: rows per pass, rows seen more often than stored, orders repeated."
    ds = dl.dataset
    stored = Counter(map(tuple, np.column_stack([ds.xs.to_numpy(), ds.ys.to_numpy()]).astype(float).tolist()))
    passes = [epoch_rows(dl).astype(float) for _ in range(epochs)]
    def excess(rows): return sum((Counter(map(tuple, rows.tolist())) - stored).values())
    return dict(rows=len(ds), bs=dl.bs, drop_last=dl.drop_last, per_epoch=[len(p) for p in passes],
                distinct=[len(np.unique(p, axis=0)) for p in passes],
                excess=[excess(p) for p in passes],  # visits beyond a row's multiplicity: 0 for a permutation
                same_order=any(np.array_equal(a, b) for a, b in zip(passes, passes[1:])))
