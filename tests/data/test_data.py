"Loading ML-100k like the notebook, and every way its files can be wrong."
import hashlib, shutil, zipfile

import pandas as pd, pytest
import movierecs
from movierecs import DataError, load_ratings, dataloaders

pytestmark = []

def _src(): return movierecs.data_source()

@pytest.fixture
def copy(ratings, tmp_path):
    "A writable copy of the two files the notebook reads."
    d = tmp_path/'ml-100k'; d.mkdir()
    for f in ('u.data', 'u.item'): shutil.copy(_src()/f, d/f)
    return d

@pytest.mark.realdata
def test_ratings_like_the_notebook(ratings):
    assert list(ratings.columns) == ['user', 'movie', 'rating', 'timestamp', 'title']
    assert len(ratings) == 100_000 and ratings.user.nunique() == 943 and ratings.title.nunique() == 1664
    # the notebook's `ratings.head()` after the merge
    head = ratings.head()
    assert head.user.tolist() == [196, 63, 226, 154, 306] and (head.title == 'Kolya (1996)').all()
    assert head.rating.tolist() == [3, 3, 5, 3, 5] and head.timestamp.iloc[0] == 881250949
    assert 'Misérables, Les (1995)' in set(ratings.title)  # latin-1 decoded
    assert ratings.rating.between(1, 5).all() and ratings.notna().all().all()

@pytest.mark.realdata
def test_dataloaders_like_the_notebook(ratings):
    dls = dataloaders(ratings)
    assert list(dls.classes) == ['user', 'title']
    assert [len(c) for c in dls.classes.values()] == [944, 1665]  # as the notebook's EmbeddingDotBias printed
    assert dls.train.bs == 64 and len(dls.train.dataset) == 80_000 and len(dls.valid.dataset) == 20_000
    assert dataloaders(ratings).valid.dataset.items.index.equals(dls.valid.dataset.items.index)  # seeded split

@pytest.mark.realdata
def test_zip_source(copy, tmp_path):
    z = tmp_path/'ml-100k.zip'
    with zipfile.ZipFile(z, 'w') as f:
        for name in ('u.data', 'u.item'): f.write(copy/name, f'ml-100k/{name}')
    pd.testing.assert_frame_equal(load_ratings(z), load_ratings(copy))

@pytest.mark.realdata
def test_env_var_and_argument_order(copy, monkeypatch, tmp_path):
    monkeypatch.setenv(movierecs.ENV_VAR, str(copy))
    assert movierecs.data_source() == copy
    assert movierecs.data_source(tmp_path) == tmp_path  # the argument wins over the environment
    monkeypatch.setenv(movierecs.ENV_VAR, str(tmp_path/'nowhere'))
    with pytest.raises(DataError, match=f'nowhere.*{movierecs.ENV_VAR} environment variable.*no such folder'): load_ratings()

def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match='no such folder or file.*extracted ml-100k folder'): load_ratings(tmp_path/'absent')

def test_not_a_zip(tmp_path):
    (tmp_path/'ml-100k.zip').write_text('not a zip')
    with pytest.raises(DataError, match='not a zip archive'): load_ratings(tmp_path/'ml-100k.zip')

def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r'u\.data is missing'): load_ratings(tmp_path)

def test_zip_without_the_files(tmp_path):
    z = tmp_path/'other.zip'
    with zipfile.ZipFile(z, 'w') as f: f.writestr('readme.txt', 'hello')
    with pytest.raises(DataError, match=r'holds no u\.data'): load_ratings(z)

@pytest.mark.realdata
def test_wrong_checksum_names_file_hashes_and_fix(copy):
    data = (copy/'u.data').read_bytes()
    (copy/'u.data').write_bytes(data.replace(b'\t3\t', b'\t4\t', 1))
    actual = hashlib.sha256((copy/'u.data').read_bytes()).hexdigest()
    with pytest.raises(DataError) as e: load_ratings(copy)
    msg = str(e.value)
    assert 'u.data' in msg and movierecs.ML_100K_SHA256['u.data'] in msg and actual in msg and 'fresh copy' in msg

@pytest.mark.realdata
def test_truncated_udata(copy):
    data = (copy/'u.data').read_bytes()
    (copy/'u.data').write_bytes(data[:len(data)//2])
    with pytest.raises(DataError, match='wrong checksum'): load_ratings(copy)
    with pytest.raises(DataError, match=r'u\.data is truncated: its last line'): load_ratings(copy, verify=False)
    cut = data.index(b'\n', len(data)//2) + 4  # inside the next line's fields
    (copy/'u.data').write_bytes(data[:cut] + b'\n')
    with pytest.raises(DataError, match=r'malformed at line 5\d{4}.*truncated'): load_ratings(copy, verify=False)

def _write(d, udata, uitem=b'1|Toy Story (1995)|01-Jan-1995\n2|Kolya (1996)|01-Jan-1996\n'):
    d.mkdir(exist_ok=True); (d/'u.data').write_bytes(udata); (d/'u.item').write_bytes(uitem)
    return d

@pytest.mark.parametrize('udata, problem', [
    (b'1\t1\t3\t881250949\n1\t2\tfive\t881250949\n', r'line 2'),
    (b'1\t1\t3\t881250949\n1\t2\t9\t881250949\n', r'line 2.*rating 1-5'),
    (b'1\t1\t3\t881250949\n1\t2\n', r'line 2'),
    (b'1\t1\t3\t881250949\t7\t8\n', r'malformed'),
    (b'', r'holds no ratings'),
])
def test_malformed_udata(tmp_path, udata, problem):
    with pytest.raises(DataError, match=problem): load_ratings(_write(tmp_path/'d', udata), verify=False)

def test_well_formed_small_copy(tmp_path):
    r = load_ratings(_write(tmp_path/'d', b'1\t2\t3\t881250949\n2\t1\t4\t881250950\n'), verify=False)
    assert r.title.tolist() == ['Kolya (1996)', 'Toy Story (1995)'] and r.rating.tolist() == [3, 4]

def test_uitem_in_utf8(tmp_path):
    uitem = '1|Toy Story (1995)|x\n2|Misérables, Les (1995)|x\n'.encode('utf-8')
    with pytest.raises(DataError, match='UTF-8 encoded.*latin-1'): load_ratings(_write(tmp_path/'d', b'1\t2\t3\t9\n', uitem), verify=False)

def test_uitem_latin1_reads_accents(tmp_path):
    uitem = '1|Toy Story (1995)|x\n2|Misérables, Les (1995)|x\n'.encode('latin-1')
    assert load_ratings(_write(tmp_path/'d', b'1\t2\t3\t9\n', uitem), verify=False).title[0] == 'Misérables, Les (1995)'

def test_movie_without_title(tmp_path):
    with pytest.raises(DataError, match='u.item does not list.*7'): load_ratings(_write(tmp_path/'d', b'1\t7\t3\t9\n'), verify=False)

@pytest.mark.parametrize('frame, problem', [
    (pd.DataFrame(columns=['user', 'movie', 'rating', 'timestamp', 'title']), 'empty'),
    (pd.DataFrame({'user': [1], 'rating': [3]}), r"lacks column\(s\) \['title'\]"),
    ([1, 2, 3], 'must be a pandas DataFrame'),
])
def test_bad_ratings_frame(frame, problem):
    with pytest.raises(DataError, match=problem): dataloaders(frame)

def test_nan_rating(synth):
    bad = synth.copy(); bad.loc[3, 'rating'] = float('nan')
    with pytest.raises(DataError, match='missing or non-numeric'): dataloaders(bad)

def test_too_few_rows_for_a_batch(synth):
    with pytest.raises(DataError, match='fewer than bs=64'): dataloaders(synth.head(50))

def test_synthetic_ratings_shape():
    s = movierecs.synthetic_ratings(n_users=30, n_movies=20, density=1.0)
    assert len(s) == 600 and s.rating.between(1, 5).all() and list(s.columns) == ['user', 'movie', 'rating', 'timestamp', 'title']
    pd.testing.assert_frame_equal(s, movierecs.synthetic_ratings(n_users=30, n_movies=20, density=1.0))
