"Every MovieLens release read from small files in its official format, and every way those files or their location can be wrong."
import hashlib, os, zipfile
from pathlib import Path

import numpy as np, pandas as pd, pytest
import movierecs
from movierecs import DataError, DATASETS, load_dataset, dataset_source
from movierecs.data import releases as datasets

NAMES = list(DATASETS)
DAT, CSV = ['ml-1m', 'ml-10m'], ['ml-20m', 'ml-25m', 'ml-32m', 'ml-latest-small']
MOVIES = [(1, 'Toy Story (1995)', "Animation|Children's|Comedy"),
          (2, 'Misérables, Les (1995)', 'Drama'),  # accented, with a comma
          (5, 'Bad "Quoted", Title (1999)', 'Comedy'),  # quotes and a comma: quoted and doubled in the CSV releases
          (7, 'Toy Story (1995)', 'Comedy'),  # a title two movie ids share
          (9, 'Never Rated (2000)', 'Drama|Western')]  # listed, rated by nobody

def stars(rel, k): return (k % 10 + 1) / 2 if rel.half_stars else k % 5 + 1

def some_ratings(rel):
    "A few dozen (user, movie, stars, timestamp) in the files' order (by user), half stars where the release has them."
    rows = [(u, m, stars(rel, 3*u + j), 881_250_949 + 7_919*(5*u + j))
            for u in range(1, 8) for j, m in enumerate((1, 2, 5, 7)) if (u + j) % 5]
    return rows + [(8, 1, 5 if not rel.half_stars else 4.5, 1_700_000_000)]

def csv_field(s): return f'"{s.replace(chr(34), chr(34)*2)}"' if ',' in s or '"' in s else s

def ratings_text(rel, rows):
    if rel.name == 'ml-100k': return ''.join(f'{u}\t{m}\t{r}\t{t}\n' for u, m, r, t in rows)
    if rel.header: return 'userId,movieId,rating,timestamp\n' + ''.join(f'{u},{m},{float(r)!r},{t}\n' for u, m, r, t in rows)  # 5.0, 3.5
    return ''.join(f'{u}::{m}::{r:g}::{t}\n' for u, m, r, t in rows)  # ML-10M writes 5 and 3.5, ML-1M whole stars

def movies_text(rel, movies):
    if rel.name == 'ml-100k':
        genres = datasets.GENRES_100K
        return ''.join(f"{m}|{t}|01-Jan-1995||http://us.imdb.com/M/title-exact?{m}|"
                       + '|'.join('1' if n in g.split('|') else '0' for n in genres) + '\n'
                       for m, t, g in movies)
    if rel.header: return 'movieId,title,genres\n' + ''.join(f'{m},{csv_field(t)},{g}\n' for m, t, g in movies)
    return ''.join(f'{m}::{t}::{g}\n' for m, t, g in movies)

def write(rel, where:Path, form='folder', ratings=None, movies=None, encoding=None):
    "The release's two files in its official format, as its extracted folder or its zip in `where`; the folder or zip."
    files = {rel.ratings: ratings if isinstance(ratings, bytes) else ratings_text(rel, ratings or some_ratings(rel)).encode(),
             rel.movies: movies if isinstance(movies, bytes) else movies_text(rel, movies or MOVIES).encode(encoding or rel.encoding)}
    files = {k: v for k, v in files.items() if v is not None}
    where.mkdir(parents=True, exist_ok=True)
    if form == 'zip':
        z = where/f'{rel.name}.zip'
        with zipfile.ZipFile(z, 'w', zipfile.ZIP_DEFLATED) as f:
            f.writestr(f'{rel.folder}/', '')
            for name, b in files.items(): f.writestr(f'{rel.folder}/{name}', b)
            f.writestr(f'{rel.folder}/README.txt', 'not read\n')
        return z
    d = where/rel.folder
    d.mkdir(exist_ok=True)
    for name, b in files.items(): (d/name).write_bytes(b)
    return d

def expected(rel, rows=None, movies=MOVIES):
    info = {m: (t, g) for m, t, g in movies}
    rows = rows or some_ratings(rel)
    u, m, r, t = map(list, zip(*rows))
    return pd.DataFrame({'user': np.array(u, 'int32'), 'movie': np.array(m, 'int32'), 'rating': np.array(r, 'float32'),
                         'timestamp': np.array(t, 'int64'), 'title': [info[i][0] for i in m], 'genres': [info[i][1] for i in m]})

def check_frame(df, rel):
    assert df.dtypes.astype(str).to_dict() == {'user': 'int32', 'movie': 'int32', 'rating': 'float32', 'timestamp': 'int64',
                                               'title': 'category', 'genres': 'category'}
    pd.testing.assert_frame_equal(df.astype({'title': str, 'genres': str}), expected(rel))
    for col in ('title', 'genres'): assert sorted(df[col].cat.categories) == sorted(set(df[col].astype(str)))  # no unrated movie's

@pytest.fixture(autouse=True)
def no_env(monkeypatch):
    "Each test decides where MOVIERECS_DATA points (nowhere by default): never at the real data by accident, never a download."
    monkeypatch.delenv(movierecs.ENV_VAR, raising=False)

def test_registry():
    assert movierecs.list_datasets() == NAMES == ['ml-100k', 'ml-1m', 'ml-10m', 'ml-20m', 'ml-25m', 'ml-32m', 'ml-latest-small']
    for rel in DATASETS.values():
        assert rel.n_ratings > 0 and (rel.md5 is None or len(rel.md5) == 32 and set(rel.md5) <= set('0123456789abcdef'))
    assert [n for n, r in DATASETS.items() if r.half_stars] == ['ml-10m'] + CSV
    assert DATASETS['ml-10m'].folder == 'ml-10M100K' and DATASETS['ml-1m'].encoding == 'latin-1'

@pytest.mark.parametrize('form', ['folder', 'zip'])
@pytest.mark.parametrize('name', NAMES)
def test_every_release_parsed_exactly(name, form, tmp_path):
    rel = DATASETS[name]
    src = write(rel, tmp_path/'data', form)
    check_frame(load_dataset(name, src, verify=False), rel)
    assert dataset_source(name, tmp_path/'data') == src  # a folder holding the release finds it
    check_frame(load_dataset(name, tmp_path/'data', verify=False), rel)

def test_environment_variable(tmp_path, monkeypatch):
    "MOVIERECS_DATA names a folder holding releases, or one release's folder or zip (the others then sit beside it)."
    for i, name in enumerate(NAMES): write(DATASETS[name], tmp_path/'all', 'zip' if i % 2 else 'folder')
    monkeypatch.setenv(movierecs.ENV_VAR, str(tmp_path/'all'))
    for name in NAMES: check_frame(load_dataset(name, verify=False), DATASETS[name])
    monkeypatch.setenv(movierecs.ENV_VAR, str(tmp_path/'all'/'ml-100k'))  # the ML-100k convention: the release folder itself
    assert dataset_source('ml-100k') == tmp_path/'all'/'ml-100k'
    assert dataset_source('ml-1m') == tmp_path/'all'/'ml-1m.zip' and dataset_source('ml-10m') == tmp_path/'all'/'ml-10M100K'
    monkeypatch.setenv(movierecs.ENV_VAR, str(tmp_path/'all'/'ml-1m.zip'))
    assert dataset_source('ml-1m') == tmp_path/'all'/'ml-1m.zip' and dataset_source('ml-25m') == tmp_path/'all'/'ml-25m'
    other = write(DATASETS['ml-20m'], tmp_path/'elsewhere')
    assert dataset_source('ml-20m', other) == other  # the argument wins over the environment
    monkeypatch.setenv(movierecs.ENV_VAR, '  ')
    with pytest.raises(DataError, match='MOVIERECS_DATA is set but empty'): load_dataset('ml-1m')

def test_where_not_found(tmp_path, monkeypatch):
    rel = DATASETS['ml-25m']
    with pytest.raises(DataError, match=r'ml-25m not found at .*absent \(from the path argument\): no such folder'):
        load_dataset('ml-25m', tmp_path/'absent')
    write(DATASETS['ml-20m'], tmp_path)
    with pytest.raises(DataError, match=r"ml-25m is not in .*ml-20m nor in .*\(from the path argument\).*ml-25m.zip from GroupLens"):
        load_dataset('ml-25m', tmp_path/'ml-20m')  # another release's folder is not taken for this one
    monkeypatch.setenv(movierecs.ENV_VAR, str(tmp_path))
    with pytest.raises(DataError, match='ml-25m is not in .*MOVIERECS_DATA environment variable.*or unset MOVIERECS_DATA'):
        load_dataset('ml-25m')
    (tmp_path/'ml-25m.zip').write_text('not a zip')
    with pytest.raises(DataError, match='is a file but not a zip archive'): load_dataset('ml-25m', tmp_path/'ml-25m.zip')
    (tmp_path/'ml-25m.zip').unlink()
    z = write(rel, tmp_path/'z', 'zip')
    z.write_bytes(z.read_bytes()[:-60])  # the central directory cut short
    with pytest.raises(DataError, match='not a zip archive|damaged zip'): load_dataset('ml-25m', z, verify=False)

def test_unknown_name():
    with pytest.raises(DataError, match=r"Unknown MovieLens release 'ml-25M' \(did you mean 'ml-25m'\?\)\. Valid names: ml-100k, ml-1m, "
                                        r"ml-10m, ml-20m, ml-25m, ml-32m, ml-latest-small\."):
        load_dataset('ml-25M')
    with pytest.raises(DataError, match='Unknown MovieLens release 25'): dataset_source(25)

@pytest.mark.parametrize('name', NAMES)
def test_missing_file(name, tmp_path):
    rel = DATASETS[name]
    d = write(rel, tmp_path)
    (d/rel.movies).unlink()
    with pytest.raises(DataError, match=f'{rel.movies} is missing.*extracted {rel.folder} folder'): load_dataset(name, d, verify=False)
    z = write(rel, tmp_path/'z', 'zip', movies=None)
    with zipfile.ZipFile(z) as f, zipfile.ZipFile(tmp_path/'cut.zip', 'w') as g:
        for m in f.infolist():
            if not m.filename.endswith(rel.ratings): g.writestr(m, f.read(m))
    with pytest.raises(DataError, match=f'cut.zip holds no {rel.ratings}'): load_dataset(name, tmp_path/'cut.zip', verify=False)

@pytest.mark.parametrize('name', DAT)
def test_dat_with_commas(name, tmp_path):
    rel = DATASETS[name]
    csv = ratings_text(DATASETS['ml-20m'], some_ratings(rel)).split('\n', 1)[1].encode()  # CSV rows where '::' belongs
    with pytest.raises(DataError, match=r"ratings.dat has a comma at line 1: '1,1,.*separates its fields with '::' \('UserID::MovieID"):
        load_dataset(name, write(rel, tmp_path, ratings=csv), verify=False)
    tabs = csv.replace(b',', b'\t')  # ML-100k's separator
    with pytest.raises(DataError, match=r"ratings.dat is malformed at line 1: '1\\t1\\t.*Expected ml-\w+'s format"):
        load_dataset(name, write(rel, tmp_path, ratings=tabs), verify=False)

@pytest.mark.parametrize('name', DAT)
def test_dat_title_with_colons(name, tmp_path):
    rel = DATASETS[name]
    movies = MOVIES[:-1] + [(9, 'Star Trek: Colons:: Edition (2002)', 'Sci-Fi')]  # '::' inside a title: the outer '::' separate
    df = load_dataset(name, write(rel, tmp_path, movies=movies, ratings=some_ratings(rel) + [(9, 9, 3, 1_000_000_000)]), verify=False)
    assert df.iloc[-1][['title', 'genres']].tolist() == ['Star Trek: Colons:: Edition (2002)', 'Sci-Fi']

@pytest.mark.parametrize('name', CSV)
def test_csv_without_its_header(name, tmp_path):
    rel = DATASETS[name]
    dat = ratings_text(DATASETS['ml-10m'], some_ratings(rel)).encode()
    with pytest.raises(DataError, match="ratings.csv starts with '1::1::[0-9:]+', "
                                        f"not {name}'s header line 'userId,movieId,rating,timestamp'"):
        load_dataset(name, write(rel, tmp_path, ratings=dat), verify=False)
    headless = ratings_text(rel, some_ratings(rel)).split('\n', 1)[1].encode()
    with pytest.raises(DataError, match="ratings.csv starts with '1,1,"):
        load_dataset(name, write(rel, tmp_path, ratings=headless), verify=False)
    movies = movies_text(rel, MOVIES).split('\n', 1)[1].encode()
    with pytest.raises(DataError, match="movies.csv starts with .1,Toy Story.*header line 'movieId,title,genres'"):
        load_dataset(name, write(rel, tmp_path, movies=movies), verify=False)

def bad_line(rel, i, field, value):
    "The release's ratings file with field `field` of rating `i` (0-based) set to `value`; its line number."
    rows = [list(r) for r in some_ratings(rel)]
    rows[i][field] = value
    text = ratings_text(rel, [tuple(r) for r in rows]) if not isinstance(value, str) else None
    if text is None:  # a non-number: written as it is
        lines = ratings_text(rel, some_ratings(rel)).split('\n')
        k = i + rel.header
        parts = lines[k].split(rel.sep)
        parts[field] = value
        lines[k] = rel.sep.join(parts)
        text = '\n'.join(lines)
    return text.encode(), i + 1 + rel.header

@pytest.mark.parametrize('value', ['abc', '', '3000000000', '1.5'])
@pytest.mark.parametrize('name', NAMES)
def test_non_numeric_field(name, value, tmp_path):
    rel = DATASETS[name]
    field = 2 if value == 'abc' else 0  # a word for stars; an empty, an int32-overflowing and a fractional user id
    data, line = bad_line(rel, 5, field, value)
    with pytest.raises(DataError, match=f"{rel.ratings} (is malformed at )?line {line}"):  # ML-100k: data.py takes 3000000000
        load_dataset(name, write(rel, tmp_path, ratings=data), verify=False)

@pytest.mark.parametrize('name', NAMES)
def test_ratings_off_the_scale(name, tmp_path):
    rel = DATASETS[name]
    for value in ([0.0, 5.5, 3.25, 7.0] if rel.half_stars else [0, 6, 3.5]):
        data, line = bad_line(rel, 3, 2, value)
        if name == 'ml-100k': msg = f"u.data is malformed at line {line}.*rating 1-5"  # data.py's parser, as for load_ratings
        else: msg = (rf"{rel.ratings} line {line} \(user \d+, movie \d+\) has rating {value:g}, "
                     rf"outside {name}'s scale \({datasets._scale(rel)}\)")
        with pytest.raises(DataError, match=msg): load_dataset(name, write(rel, tmp_path, ratings=data), verify=False)

@pytest.mark.parametrize('name', NAMES[1:])
def test_id_zero(name, tmp_path):
    rel = DATASETS[name]
    data, line = bad_line(rel, 2, 1, 0)
    with pytest.raises(DataError, match=rf"line {line} \(user \d+, movie 0\) has id 0 \(ids run from 1 to 2\*\*31-1\)"):
        load_dataset(name, write(rel, tmp_path, ratings=data), verify=False)

@pytest.mark.parametrize('name', NAMES)
def test_movie_missing_from_movies(name, tmp_path):
    rel = DATASETS[name]
    data, _ = bad_line(rel, 4, 1, 42)
    with pytest.raises(DataError, match=rf"{rel.ratings} rates 1 movie id\(s\) that .*{rel.movies} does not list \(e.g. \[42\]\)"):
        load_dataset(name, write(rel, tmp_path, ratings=data), verify=False)

@pytest.mark.parametrize('name', NAMES)
def test_empty_files(name, tmp_path):
    rel = DATASETS[name]
    empty = 'holds no ratings' if name == 'ml-100k' else 'is empty'  # ML-100k: data.py's message
    with pytest.raises(DataError, match=f'{rel.ratings} {empty}'): load_dataset(name, write(rel, tmp_path, ratings=b''), verify=False)
    if rel.header:
        with pytest.raises(DataError, match='ratings.csv holds no ratings'):
            load_dataset(name, write(rel, tmp_path, ratings=b'userId,movieId,rating,timestamp\n'), verify=False)
    if name != 'ml-100k':
        with pytest.raises(DataError, match=f'{rel.movies} is empty'): load_dataset(name, write(rel, tmp_path, movies=b'\n'), verify=False)

@pytest.mark.parametrize('name', NAMES)
def test_a_pair_rated_twice(name, tmp_path):
    "A (user, movie) pair on two lines is refused, naming both lines (verify=False: a sample; the official counts catch it otherwise)."
    rel, rows = DATASETS[name], some_ratings(DATASETS[name])
    again = rows[:6] + [(rows[2][0], rows[2][1], rows[2][2], rows[2][3] + 1)] + rows[6:]  # row 2's pair once more, as line 7
    with pytest.raises(DataError, match=rf"{rel.ratings} rates user {rows[2][0]}'s movie {rows[2][1]} twice \(lines "
                                        rf"{3 + rel.header} and {7 + rel.header}; 1 repeated line\(s\) in all\)"):
        load_dataset(name, write(rel, tmp_path, ratings=again), verify=False)

@pytest.mark.parametrize('name', NAMES[1:])
def test_a_field_more_at_the_start(name, tmp_path):
    "A fifth field before the four (pandas would take it as the index, the rest read as they should be): the line is named."
    rel = DATASETS[name]
    lines = ratings_text(rel, some_ratings(rel)).split('\n')
    lines[rel.header:-1] = [f'9{rel.sep}{line}' for line in lines[rel.header:-1]]
    with pytest.raises(DataError, match=f"{rel.ratings} is malformed at line {1 + rel.header}: '9{rel.sep}"):
        load_dataset(name, write(rel, tmp_path, ratings='\n'.join(lines).encode()), verify=False)

def test_a_member_the_archive_cannot_give(tmp_path):
    "An encrypted member or one in a compression zipfile lacks (deflate64, as Windows writes large files): extract it elsewhere."
    rel = DATASETS['ml-latest-small']
    z = write(rel, tmp_path, form='zip')
    raw = bytearray(z.read_bytes())
    at = raw.find(b'PK\x01\x02')  # the first central-directory entry: its general-purpose flags at offset 8
    while at >= 0:
        raw[at + 8] |= 1  # 'encrypted'
        at = raw.find(b'PK\x01\x02', at + 4)
    z.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"cannot be read from the archive \(.*encrypted.*\): extract .* with a tool that can"):
        load_dataset('ml-latest-small', z, verify=False)

@pytest.mark.parametrize('name', NAMES)
def test_truncated(name, tmp_path):
    rel = DATASETS[name]
    data = ratings_text(rel, some_ratings(rel)).encode()[:-1]
    with pytest.raises(DataError, match=f'{rel.ratings} is truncated'): load_dataset(name, write(rel, tmp_path, ratings=data), verify=False)

@pytest.mark.parametrize('name', NAMES[1:])
def test_movies_malformed(name, tmp_path):
    rel = DATASETS[name]
    movies = movies_text(rel, MOVIES).encode(rel.encoding).replace(b'\n5', b'\nfive', 1)
    with pytest.raises(DataError, match=f"{rel.movies} is malformed at line {3 + rel.header}: 'five"):
        load_dataset(name, write(rel, tmp_path, movies=movies), verify=False)
    with pytest.raises(DataError, match=f'{rel.movies} lists movie id 7 more than once'):
        load_dataset(name, write(rel, tmp_path, movies=MOVIES + [(7, 'Again (2001)', 'Drama')]), verify=False)
    no_genres = movies_text(rel, MOVIES).encode(rel.encoding).replace(b'Drama|Western', b'')
    with pytest.raises(DataError, match=rf"{rel.movies} is malformed at line {5 + rel.header}: '9(::|,)Never Rated \(2000\)'"):
        load_dataset(name, write(rel, tmp_path, movies=no_genres), verify=False)

@pytest.mark.parametrize('name', NAMES[1:])
def test_reencoded_movies(name, tmp_path):
    rel = DATASETS[name]
    other = 'utf-8' if rel.encoding == 'latin-1' else 'latin-1'
    msg = ('is UTF-8 encoded, but ml-1m ships it as latin-1' if other == 'utf-8' else
           rf"is not utf-8 text: byte 0xe9 at line {2 + rel.header} \('2.*Mis.*ships it as utf-8")
    with pytest.raises(DataError, match=msg): load_dataset(name, write(rel, tmp_path, encoding=other), verify=False)

@pytest.mark.parametrize('name', NAMES)
def test_readme_counts_checked(name, tmp_path):
    "verify=True on a sample: the README's counts do not match, and the error says which, and how to load a sample."
    rel = DATASETS[name]
    src = write(rel, tmp_path)
    if name == 'ml-100k': msg = 'u.data has the wrong checksum'  # data.py's sha256, before any count
    else: msg = rf"{rel.ratings} has {len(some_ratings(rel))} ratings, but {name}'s README states {rel.n_ratings:,}: .*or pass verify=False"
    with pytest.raises(DataError, match=msg): load_dataset(name, src)

def synthetic(rel, where, extra=0, users=0, movies=0):
    "The release's files with exactly the ratings, users and movies its README states, give or take `extra`, `users`, `movies`."
    n, n_users, n_movies = rel.n_ratings + extra, rel.n_users + users, (rel.n_movies or 3883) + movies
    rng = np.random.default_rng(0)
    u = np.sort(np.concatenate([np.arange(1, n_users + 1), rng.integers(1, n_users + 1, n - n_users)]))
    m = rng.integers(1, n_movies + 1, n)
    r = rng.integers(1, 6, n) if not rel.half_stars else rng.integers(1, 11, n) / 2
    t = rng.integers(956_703_932, 1_046_454_590, n)
    d = where/rel.folder
    d.mkdir(parents=True)
    (d/rel.ratings).write_text(ratings_text(rel, zip(u.tolist(), m.tolist(), r.tolist(), t.tolist())))
    (d/rel.movies).write_text(movies_text(rel, [(i, f'Movie {i} (2000)', 'Drama') for i in range(1, n_movies + 1)]), encoding=rel.encoding)
    return d

@pytest.mark.parametrize('name', ['ml-latest-small', 'ml-1m'])
def test_readme_counts_pass(name, tmp_path):
    "A copy with the README's counts loads under verify=True; one rating, user or movie off, it does not, and says which."
    rel = DATASETS[name]
    df = load_dataset(name, synthetic(rel, tmp_path/'full'))
    assert len(df) == rel.n_ratings and df.user.nunique() == rel.n_users
    with pytest.raises(DataError, match=rf"{rel.ratings} has {rel.n_ratings - 1:,} ratings, but {name}'s README states {rel.n_ratings:,}"):
        load_dataset(name, synthetic(rel, tmp_path/'short', extra=-1))
    with pytest.raises(DataError, match=rf"{rel.ratings} has {rel.n_users - 1:,} users, but {name}'s README states {rel.n_users:,}"):
        load_dataset(name, synthetic(rel, tmp_path/'users', users=-1))
    if rel.n_movies:
        with pytest.raises(DataError, match=rf"{rel.movies} has {rel.n_movies + 1:,} movies, but {name}'s README states {rel.n_movies:,}"):
            load_dataset(name, synthetic(rel, tmp_path/'movies', movies=1))

@pytest.mark.parametrize('name', [n for n in NAMES if DATASETS[n].md5])
def test_published_md5(name, tmp_path):
    "The official archive name is checked against GroupLens' md5; a zip of a sample under another name is not."
    rel = DATASETS[name]
    z = write(rel, tmp_path, 'zip')
    actual = hashlib.md5(z.read_bytes()).hexdigest()
    with pytest.raises(DataError, match=f"{name}.zip has md5 {actual}, but GroupLens publishes {rel.md5} for {name}.zip"
                                        ".*download it again"):
        load_dataset(name, z)
    check_frame(load_dataset(name, z, verify=False), rel)
    sample = z.rename(tmp_path/'sample.zip')
    with pytest.raises(DataError, match='wrong checksum' if name == 'ml-100k' else 'README states'): load_dataset(name, sample)

@pytest.fixture
def grouplens(tmp_path, monkeypatch):
    "GroupLens' server as a local folder (file:// URLs), fastai's download folders in tmp_path: fastai's machinery, no network."
    from fastai.data.external import fastai_cfg
    server = tmp_path/'server'
    server.mkdir()
    monkeypatch.setattr(datasets, 'GROUPLENS_URL', server.as_uri() + '/')
    monkeypatch.setenv('FASTAI_HOME', str(tmp_path/'fastai'))
    fastai_cfg.cache_clear()
    yield server
    fastai_cfg.cache_clear()

@pytest.mark.parametrize('name', NAMES[1:])  # fastai pins ML-100k's download to the real archive's size and hash
def test_download(name, grouplens, tmp_path):
    rel = DATASETS[name]
    write(rel, grouplens, 'zip')
    check_frame(load_dataset(name, verify=False), rel)
    assert dataset_source(name) == tmp_path/'fastai'/'data'/name  # untar_data's folder, named after the archive
    assert (tmp_path/'fastai'/'archive'/f'{name}.zip').is_file()
    if rel.md5:
        with pytest.raises(DataError, match=f"archive/{name}.zip has md5 [0-9a-f]{{32}}, but GroupLens publishes {rel.md5}"):
            load_dataset(name)

def test_download_fails(grouplens):
    with pytest.raises(DataError, match=r"ml-25m could not be downloaded from file://.*ml-25m.zip \(.*\): no network\? Set MOVIERECS_DATA"):
        load_dataset('ml-25m')

def real_source(name):
    "The real release where MOVIERECS_DATA points (as the test run was started), or None: never a download."
    env = os.environ.get(movierecs.ENV_VAR) or REAL_ENV
    if not env: return None
    try: return dataset_source(name, env)
    except DataError: return None

REAL_ENV = os.environ.get(movierecs.ENV_VAR)  # read at import, before the autouse fixture unsets it

@pytest.mark.realdata
@pytest.mark.parametrize('name', NAMES)
def test_real_release(name):
    "A real archive where MOVIERECS_DATA points, read whole with every check on."
    src = real_source(name)
    if src is None: pytest.skip(f'{name} is not where {movierecs.ENV_VAR} points ({REAL_ENV or "unset"}): '
                                f'put {name}.zip or its folder there')
    rel = DATASETS[name]
    df = load_dataset(name, src)
    assert len(df) == rel.n_ratings and df.notna().all().all()
    assert df.dtypes.astype(str).tolist() == ['int32', 'int32', 'float32', 'int64', 'category', 'category']
    if name == 'ml-100k':  # the same ratings as the notebook's frame, in u.data's order
        nb = movierecs.load_ratings(src)
        key = ['user', 'movie']
        a = df.astype({'title': str}).drop(columns='genres').sort_values(key, ignore_index=True)
        b = nb.astype(a.dtypes.to_dict()).sort_values(key, ignore_index=True)
        pd.testing.assert_frame_equal(a, b)
        assert df.genres[df.title == 'Toy Story (1995)'].iat[0] == "Animation|Children's|Comedy"

def test_feeds_dataloaders(tmp_path):
    "The compact frame trains as it is: keyed by movie id (titles repeat), or by title."
    df = load_dataset('ml-25m', write(DATASETS['ml-25m'], tmp_path), verify=False)
    for item, n in (('movie', 4), ('title', 3)):  # movies 1, 2, 5, 7; titles: 1 and 7 share 'Toy Story (1995)'
        dls = movierecs.dataloaders(df, bs=4, valid_pct=0.1, item_name=item)
        assert len(dls.classes[item]) == n + 1 and dls.one_batch()[1].dtype.is_floating_point

def test_load_ratings_takes_release_names(tmp_path, monkeypatch):
    ("load_ratings('ml-1m') reads the release as load_dataset does; 'ml-100k' and no name give the notebook's frame; "
     "a wrong name lists the valid ones.")
    for name in NAMES: write(DATASETS[name], tmp_path/'all')
    monkeypatch.setenv(movierecs.ENV_VAR, str(tmp_path/'all'))
    for name in NAMES[1:]: pd.testing.assert_frame_equal(movierecs.load_ratings(name, verify=False), load_dataset(name, verify=False))
    monkeypatch.setenv(movierecs.ENV_VAR, str(tmp_path/'all'/'ml-100k'))
    notebook = movierecs.load_ratings(verify=False)
    assert list(notebook.columns) == ['user', 'movie', 'rating', 'timestamp', 'title']
    pd.testing.assert_frame_equal(movierecs.load_ratings('ml-100k', verify=False), notebook)
    with pytest.raises(DataError, match=r"Unknown MovieLens release 'ml-2m'.*Valid names: ml-100k, ml-1m"): movierecs.load_ratings('ml-2m')

@pytest.mark.parametrize('name', ['ML-1M', 'ml-1m ', 'ml-1m/', 'ml_1m', 'ml-'])
def test_load_ratings_near_miss_names(name):
    with pytest.raises(DataError, match=r"Unknown MovieLens release .*did you mean 'ml-1m'\?\)\. Valid names: ml-100k"):
        movierecs.load_ratings(name)

def test_load_ratings_release_extracted_in_the_working_folder(tmp_path, monkeypatch):
    write(DATASETS['ml-1m'], tmp_path)  # what unzipping ml-1m.zip here leaves: ./ml-1m
    monkeypatch.chdir(tmp_path)
    check_frame(movierecs.load_ratings('ml-1m', verify=False), DATASETS['ml-1m'])
    with pytest.raises(DataError, match=r"b'ml-1m' \(from the path argument\) is not a path"): movierecs.load_ratings(b'ml-1m')
