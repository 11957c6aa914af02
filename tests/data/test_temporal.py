"Temporal splits on hand-made frames whose train and test rows are written out, and the 0.8-quantile split of ML-100k."
import pickle
import numpy as np, pandas as pd, pytest
from movierecs.core.errors import DataError
from movierecs.data.ml100k import load_udata
from movierecs.data.temporal import DROPPED, TimeSplit, time_order, history_position, time_split, leave_last_out, last_fraction

def frame(rows, cols=('user', 'movie', 'timestamp')):
    "A ratings frame from (user, movie, timestamp) rows, with a rating and a title so the columns are those of `load_ratings()`."
    df = pd.DataFrame(rows, columns=list(cols))
    return df.assign(rating=3, title=[f'Movie {m}' for m in df.movie])[['user', 'movie', 'rating', 'timestamp', 'title']]

def pairs(df): return list(zip(df.user, df.movie))

def accounted(s, ratings): return len(s[0]) + len(s[1]) + s.n_dropped == len(ratings)

# the global cut: rows in a mixed order, so "the input's order" is tested too
CUT = frame([(1, 12, 5),   # at the cut: test
             (1, 10, 1),   # train
             (3, 10, 5),   # user 3 has nothing before the cut: dropped, a new user
             (2, 12, 3),   # train
             (2, 13, 6),   # movie 13 has nothing before the cut: dropped, a new movie
             (1, 11, 2),   # train
             (2, 11, 6),   # test
             (3, 14, 9),   # a new user and a new movie: counted once, as a new user
             (1, 13, 7),   # movie 13 again: a new movie
             (2, 10, 4)])  # train

def test_time_split_by_hand():
    s = time_split(CUT, cut=5)
    train, test = s
    assert pairs(train) == [(1, 10), (2, 12), (1, 11), (2, 10)] and pairs(test) == [(1, 12), (2, 11)]
    assert s.dropped == {'new_user_rows': 2, 'new_users': 1, 'new_movie_rows': 2, 'new_movies': 1, 'unscored_users': 0}
    assert s.cut == 5 and s.n_dropped == 4 and accounted(s, CUT)
    assert (train.timestamp < 5).all() and (test.timestamp >= 5).all()  # no training row at or after the cut
    assert list(train.columns) == list(CUT.columns) and train.index.tolist() == [0, 1, 2, 3] and test.index.tolist() == [0, 1]
    assert s.describe() == ('train 4 rows before 1970-01-01 UTC (timestamp 5); test 2 rows; '
                            'dropped 2 rows of 1 new users, 2 rows of 1 new movies')
    assert repr(s) == f'TimeSplit({s.describe()})'

def test_time_split_quantile_is_a_timestamp_of_the_data():
    # the 10 sorted timestamps are 1 2 3 4 5 5 6 6 7 9; numpy's method='higher' at 0.4 takes the one at index ceil(0.4·9) = 4
    assert time_split(CUT, quantile=0.4).cut == 5 and time_split(CUT, 0.4)[0].equals(time_split(CUT, cut=5)[0])
    assert time_split(CUT, quantile=0.3).cut == 4 and pairs(time_split(CUT, 0.3)[0]) == [(1, 10), (2, 12), (1, 11)]
    assert time_split(CUT, quantile=0.3, cut=5).cut == 5  # an explicit cut overrides the quantile

def test_time_split_is_a_tuple_like_load_split():
    s = time_split(CUT, cut=5)
    assert isinstance(s, tuple) and isinstance(s, TimeSplit) and len(s) == 2
    back = pickle.loads(pickle.dumps(s))
    assert back.dropped == s.dropped and back.cut == s.cut and back[1].equals(s[1]) and back.describe() == s.describe()

# each user's history, with a tie: user 1 rated movies 3 and 4 at the same time, as did user 2
TIES = frame([(1, 1, 1), (1, 2, 2), (1, 3, 3), (1, 4, 3),  # rows 0-3
              (2, 3, 1), (2, 4, 1), (2, 1, 2),             # rows 4-6
              (3, 2, 1),                                   # row 7: one rating, unscored
              (4, 1, 1), (4, 5, 2)])                       # rows 8-9: movie 5 only here, held out: dropped

def test_time_order_by_hand():
    # seed 42 ranks the sorted ids 1..5 as default_rng(42).permutation(5) = 4 2 3 1 0: movie 4 (rank 1) before movie 3 (rank 3)
    assert np.random.default_rng(42).permutation(5).tolist() == [4, 2, 3, 1, 0]
    assert time_order(TIES).tolist() == [0, 1, 3, 2, 5, 4, 6, 7, 8, 9]
    assert history_position(TIES).tolist() == [0, 1, 3, 2, 1, 0, 2, 0, 0, 1]
    assert time_order(TIES, seed=1).tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]  # permutation(5) = 4 0 1 2 3: movie 3 first

def test_leave_last_out_by_hand():
    s = leave_last_out(TIES)
    train, test = s
    assert pairs(test) == [(1, 3), (2, 1)]  # the latest, and of the tie the higher rank
    assert pairs(train) == [(1, 1), (1, 2), (1, 4), (2, 3), (2, 4), (3, 2), (4, 1)]
    assert s.dropped == {'new_user_rows': 0, 'new_users': 0, 'new_movie_rows': 1, 'new_movies': 1, 'unscored_users': 1}
    assert s.cut is None and accounted(s, TIES)
    assert s.describe() == ("train 7 rows; test 2 rows (each user's last 1); 1 users unscored (all their rows in train); "
                            "dropped 0 rows of 0 new users, 1 rows of 1 new movies")

def test_leave_last_two_out_by_hand():
    s = leave_last_out(TIES, n=2)
    # held out: user 1's movies 4 and 3, user 2's 3 and 1; no one trains on movie 3 now, so both its rows drop
    assert pairs(s[1]) == [(1, 4), (2, 1)] and pairs(s[0]) == [(1, 1), (1, 2), (2, 4), (3, 2), (4, 1), (4, 5)]
    assert s.dropped == {'new_user_rows': 0, 'new_users': 0, 'new_movie_rows': 2, 'new_movies': 1, 'unscored_users': 2}
    assert accounted(s, TIES)

def test_leave_last_out_ignores_the_row_order():
    for k in range(5):
        shuffled = TIES.sample(frac=1, random_state=k)
        train, test = leave_last_out(shuffled)
        assert sorted(pairs(test)) == [(1, 3), (2, 1)] and sorted(pairs(train)) == sorted(pairs(leave_last_out(TIES)[0]))
        assert pairs(test) == [p for p in pairs(shuffled) if p in {(1, 3), (2, 1)}]  # in the shuffled frame's order

def test_the_seed_breaks_the_tie_by_the_stated_rule():
    assert pairs(leave_last_out(TIES, seed=1)[1]) == [(1, 4), (2, 1)]  # seed 1 ranks movie 4 above movie 3
    for seed in range(20):
        rank = np.random.default_rng(seed).permutation(5)  # over the sorted ids 1..5
        last = 3 if rank[2] > rank[3] else 4
        assert pairs(leave_last_out(TIES, seed=seed)[1])[0] == (1, last), seed

def history(n, start=1, step=1):
    "One user's n ratings, movies `start`, `start+step`, ... at times 1..n."
    return [(start + step * i, i + 1) for i in range(n)]

def test_last_fraction_counts_per_user():
    # users 1, 2, 3, 5, 10 rate movies 1..n in order; user 11 rates 10..1, so every held-out movie is also in someone's train
    rows = [(u, m, t) for u in (1, 2, 3, 5, 10) for m, t in history(u)] + [(11, m, t) for m, t in history(10, 10, -1)]
    df = frame(rows)
    held = lambda s: s[1].user.value_counts().to_dict()
    # round half up: 0.25·2 = 0.5 -> 1, 0.25·10 = 2.5 -> 3; user 1 has one rating: unscored
    s = last_fraction(df, 0.25)
    assert held(s) == {2: 1, 3: 1, 5: 1, 10: 3, 11: 3} and s.dropped['unscored_users'] == 1 and s.n_dropped == 0 and accounted(s, df)
    assert sorted(s[1].movie[s[1].user == 10]) == [8, 9, 10] and sorted(s[1].movie[s[1].user == 11]) == [1, 2, 3]
    assert held(last_fraction(df, 0.35)) == {2: 1, 3: 1, 5: 2, 10: 4, 11: 4}  # 0.35·10 = 3.5 -> 4, 0.35·5 = 1.75 -> 2
    long = frame([(50, m, t) for m, t in history(50)] + [(51, m, t) for m, t in history(50, 50, -1)])
    assert held(last_fraction(long, 0.29)) == {50: 15, 51: 15}  # 0.29·50 = 14.5 -> 15, though 14.499999999999998 in floats
    assert held(last_fraction(df, 0.01)) == {2: 1, 3: 1, 5: 1, 10: 1, 11: 1}  # at least one
    s = last_fraction(df, 0.9)  # never all: 0.9·2 = 1.8 -> 2, capped at 1; 0.9·3 = 2.7 -> 3, capped at 2
    assert s[0].user.value_counts().to_dict() == {1: 1, 2: 1, 3: 1, 5: 1, 10: 1, 11: 1} and accounted(s, df)

def test_every_row_is_accounted_for(synth):
    small = synth.sample(frac=0.05, random_state=0)
    for df, split in ((synth, time_split), (synth, lambda df: time_split(df, 0.3)), (small, lambda df: time_split(df, 0.5)),
                      (synth, leave_last_out), (synth, lambda df: leave_last_out(df, 5)), (small, leave_last_out),
                      (synth, last_fraction), (synth, lambda df: last_fraction(df, 0.7)), (small, last_fraction)):
        s = split(df)
        assert accounted(s, df) and set(s.dropped) == set(DROPPED), s
        assert set(s[1].user) <= set(s[0].user) and set(s[1].movie) <= set(s[0].movie)

def test_any_item_column():
    train, test = leave_last_out(TIES.drop(columns=['movie', 'title']).assign(item=TIES.movie))
    assert list(zip(test.user, test['item'])) == [(1, 3), (2, 1)] and list(train.columns) == ['user', 'rating', 'timestamp', 'item']
    test = leave_last_out(TIES.drop(columns='movie'), item='title')[1]  # the titles 'Movie 1'..'Movie 5' sort as the ids do
    assert list(zip(test.user, test.title)) == [(1, 'Movie 3'), (2, 'Movie 1')]

def test_a_pair_in_train_and_test_is_counted():
    "A user who rated an item twice (again later, or two movies of one title) can have it on both sides: kept, counted, described."
    again = frame([(1, 10, 1), (1, 20, 2), (1, 20, 3), (2, 10, 1), (2, 30, 2), (2, 20, 3)])
    s = leave_last_out(again)
    assert pairs(s[1]) == [(1, 20), (2, 20)] and s.repeats == 1 and '1 test rows repeat a (user, item) pair of train' in s.describe()
    assert leave_last_out(TIES).repeats == 0 and 'repeat' not in leave_last_out(TIES).describe()
    assert pickle.loads(pickle.dumps(s)).repeats == 1

@pytest.mark.parametrize('call, match', [
    (lambda: time_split(CUT.drop(columns='timestamp')), "no 'timestamp' column"),
    (lambda: time_split(CUT.drop(columns='user')), "no 'user' column"),
    (lambda: leave_last_out(CUT.drop(columns=['movie', 'title'])), 'name yours with item='),
    (lambda: leave_last_out(CUT, item='film'), 'name yours with item='),
    (lambda: time_split(CUT.assign(timestamp=CUT.timestamp.astype(str))), r'must be numeric .*pd.to_numeric'),
    (lambda: time_split(CUT.assign(timestamp=pd.to_datetime(CUT.timestamp, unit='s'))), r"astype\('int64'\) // 10\*\*9"),
    (lambda: last_fraction(CUT.assign(timestamp=CUT.timestamp.where(CUT.user != 2))), r'4 NaN .*drop those rows'),
    (lambda: time_split(CUT.iloc[:0]), 'ratings is empty'),
    (lambda: time_split(CUT.to_numpy()), 'must be a pandas DataFrame'),
    (lambda: time_split(CUT, 0), 'quantile must be a number between 0 and 1'),
    (lambda: time_split(CUT, 1), 'quantile must be a number between 0 and 1'),
    (lambda: time_split(CUT, float('nan')), 'quantile must be'),
    (lambda: time_split(CUT, True), 'quantile must be'),
    (lambda: time_split(CUT, cut=1), 'leaves train empty.*later cut'),
    (lambda: time_split(CUT, cut=10), 'leaves test empty.*earlier cut'),
    (lambda: time_split(CUT, cut='5'), 'cut must be a finite timestamp'),
    (lambda: time_split(CUT, cut=9), 'nothing to score'),  # the one row at 9 is of a new user
    (lambda: leave_last_out(CUT, 0), 'n must be a positive integer'),
    (lambda: leave_last_out(CUT, 1.5), 'n must be a positive integer'),
    (lambda: leave_last_out(CUT, True), 'n must be a positive integer'),
    (lambda: leave_last_out(CUT, 4), 'holds nothing out.*no user has enough ratings.*Hold out fewer'),  # none has more than 4
    (lambda: leave_last_out(pd.concat([CUT.user, CUT], axis=1)), 'the column.s. user more than once: keep one'),
    (lambda: time_split(CUT.astype({'timestamp': 'float32'})), 'float32, whose 11 or 24 bits of mantissa cannot hold.*int64'),
    (lambda: time_split(CUT.astype({'timestamp': 'Float32'})), 'Float32, whose 11 or 24 bits'),
    (lambda: time_split(CUT.astype({'timestamp': pd.SparseDtype('float32')})), r'Sparse\[float32, nan\], whose 11 or 24 bits'),
    (lambda: leave_last_out(CUT.astype({'timestamp': 'complex128'})), 'must be numeric'),
    (lambda: last_fraction(CUT, 0), 'frac must be a number between 0 and 1'),
    (lambda: last_fraction(CUT, 1), 'frac must be a number between 0 and 1'),
])
def test_errors_name_the_fix(call, match):
    with pytest.raises(DataError, match=match): call()

@pytest.fixture(scope='module')
def udata(ratings):
    "u.data as the file holds it (skipped with `ratings` when ML-100k cannot be had)."
    return load_udata()

@pytest.mark.realdata
def test_ml100k_time_split(udata):
    s = time_split(udata, 0.8)
    train, test = s
    print(s)
    assert accounted(s, udata) and s.cut == 889_237_269 and str(pd.Timestamp(s.cut, unit='s').date()) == '1998-03-07'
    assert (train.timestamp < s.cut).all() and (test.timestamp >= s.cut).all()
    assert set(test.user) <= set(train.user) and set(test.movie) <= set(train.movie)
    assert (len(train), len(test)) == (79_999, 2_864)
    assert s.dropped == {'new_user_rows': 17_048, 'new_users': 192, 'new_movie_rows': 89, 'new_movies': 25, 'unscored_users': 0}
    last = leave_last_out(udata)
    print(last)
    assert accounted(last, udata) and (len(last[0]), len(last[1]), last.n_dropped) == (99_057, 941, 2)
    assert last[1].user.is_unique and last.dropped['unscored_users'] == 0  # every ML-100k user has at least 20 ratings
