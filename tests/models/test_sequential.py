"SASRec and its loader: each user's history in time order, a true permutation of users, causal attention, padding masked."
import math
import numpy as np, pandas as pd
import pytest, torch
import movierecs
from movierecs import PAD, dataloaders, get_learner, histories, sequence_dataloaders, train_model
from movierecs.models.sequential import SASRec, causal_mask
from movierecs.evaluation.nextitem import ListTopN, evaluate_next, next_split

def test_histories_are_in_time_order_with_ties_by_the_stated_rule():
    r = pd.DataFrame(dict(user=[1, 1, 1, 2, 2], title=['c', 'a', 'b', 'a', 'b'], rating=4, timestamp=[30, 10, 30, 5, 1]))
    dls = dataloaders(r, bs=1, splits=(range(5), []))
    h = histories(dls.train)
    code = {t: i for i, t in enumerate(dls.classes['title'])}
    user = {u: i for i, u in enumerate(dls.classes['user'])}
    assert h[user[2]].tolist() == [code['b'], code['a']]  # by time
    tie = movierecs.time_order(r, item='title')  # 'c' and 'b' share a second: the seeded rank of the item decides
    assert h[user[1]].tolist() == [code[t] for t in r.title.iloc[tie[tie < 3]]]
    assert h[user[1]].tolist()[0] == code['a']

def test_windows_pair_each_item_with_the_next_and_pad_on_the_left(cyc):
    dls = dataloaders(cyc, bs=16, splits=(range(len(cyc)), []))
    s = sequence_dataloaders(dls, max_len=12, bs=8)
    x, y = s.train.x, s.train.y
    real = x != PAD
    assert torch.equal(real, y != PAD)  # a next item exactly where there is an item
    assert torch.equal(x[:, 1:][real[:, 1:] & real[:, :-1]], y[:, :-1][real[:, 1:] & real[:, :-1]])  # y is x one step on
    assert (real.int().diff(dim=1) >= 0).all()  # padding only on the left
    h = histories(dls.train)
    for i, u in enumerate(sorted(u for u in h if len(h[u]) >= 2)):
        assert y[i][y[i] != PAD].tolist() == h[u][1:][-12:].tolist()  # the newest items are kept, the last one is a target only

def test_all_windows_hold_every_pair_of_the_history_once(cyc):
    "windows='all': each (item, next item) pair of a user's history is in exactly one window; the newest window is 'last''s."
    from collections import Counter
    from movierecs.engine.sequences import windows_of
    seq = np.arange(1, 24)  # 22 pairs: windows of 8 pairs ending at the newest, so 6 + 8 + 8
    x, y = windows_of(seq, 8, 'all')
    assert x.shape == (3, 8) and torch.equal(x[0], windows_of(seq, 8, 'last')[0][0])
    pairs = Counter((int(a), int(b)) for xs, ys in zip(x, y) for a, b in zip(xs, ys) if a != PAD)
    assert pairs == Counter(zip(seq[:-1].tolist(), seq[1:].tolist()))  # every pair once: none lost, none twice
    assert windows_of(seq[:9], 8, 'all')[0].shape == (1, 8)  # 8 pairs: one full window
    dls = dataloaders(cyc, bs=16, splits=(range(len(cyc)), []))
    last, every = (sequence_dataloaders(dls, max_len=5, bs=8, windows=w).train for w in ('last', 'all'))
    h = histories(dls.train)
    assert int((every.y != PAD).sum()) == sum(len(s) - 1 for s in h.values()) > int((last.y != PAD).sum())
    with pytest.raises(ValueError, match="windows must be one of"): sequence_dataloaders(dls, windows='newest')

def test_every_epoch_is_a_new_permutation_of_the_users(cyc):
    dls = dataloaders(cyc, bs=16, seed=1)
    s = sequence_dataloaders(dls, max_len=10, bs=7, seed=3, windows='all')
    h = [v for v in histories(dls.train).values() if len(v) >= 2]
    assert len(s.train.x) == sum(math.ceil((len(v) - 1) / 10) for v in h) > len(h)  # a window per 10 pairs: long histories cut
    epochs = [torch.cat([xb for xb, _ in s.train]) for _ in range(3)]
    key = lambda x: sorted(map(tuple, x.tolist()))
    for e in epochs: assert len(e) == len(s.train.x) and key(e) == key(s.train.x)  # each user once, none dropped
    assert not torch.equal(epochs[0], epochs[1]) and not torch.equal(epochs[1], epochs[2])

def test_no_position_sees_a_later_item():
    torch.manual_seed(0)
    m = SASRec(torch.zeros(1, 10, dtype=torch.long), 20, n_factors=8, n_heads=2).eval()
    x = torch.tensor([[0, 0, 3, 5, 7, 2, 9, 4, 1, 6]])
    later = x.clone(); later[0, 6:] = torch.tensor([11, 12, 13, 14])
    a, b = m.states(x)[0, -8:], m.states(later)[0, -8:]  # right-aligned: the two leading `PAD` columns may be left out
    assert torch.allclose(a[:4], b[:4], atol=1e-6)  # the first four items' positions cannot tell what came after them
    assert not torch.allclose(a[4:], b[4:])
    assert causal_mask(x)[0, 0].tolist() == torch.ones(10, 10, dtype=torch.bool).tril().logical_and(x[0] != PAD).logical_or(
        torch.eye(10, dtype=torch.bool)).tolist()

def test_padding_changes_nothing():
    torch.manual_seed(0)
    m = SASRec(torch.zeros(1, 12, dtype=torch.long), 20, n_factors=8).eval()
    seq, other = torch.tensor([[3, 5, 7, 2]]), torch.arange(1, 13)[None]
    alone = m.score_windows(seq)
    padded = torch.cat([torch.zeros(1, 8, dtype=torch.long), seq], 1)
    beside = m.score_windows(torch.cat([padded, other]))  # beside a full window, its 8 `PAD` columns are read
    assert torch.allclose(alone, beside[:1], atol=1e-5)
    with torch.no_grad(): m.items.weight[PAD] = 5.  # whatever the padding's embedding, it is never read
    assert torch.allclose(m.score_windows(torch.cat([padded, other]))[:1, 1:], alone[:, 1:], atol=1e-5)

def test_next_item_metrics_on_hand_lists():
    train = pd.DataFrame(dict(user=[1, 1, 2, 2, 3], title=list('abacd'), rating=3, timestamp=[1, 2, 1, 2, 1]))
    test = pd.DataFrame(dict(user=[1, 2, 3], title=list('dbe'), rating=3, timestamp=9))
    train = pd.concat([train, pd.DataFrame(dict(user=[4], title=['e'], rating=3, timestamp=[1]))])
    lists = pd.DataFrame(dict(user=[1, 1, 2, 2, 3, 3], rank=[1, 2, 1, 2, 1, 2], title=['c', 'd', 'b', 'c', 'a', 'b']))
    rows = evaluate_next(ListTopN(lists).fit(train, 'title'), (train, test), ks=(1, 2))
    one, two = rows
    # user 1: d at rank 2; user 2: b at rank 1; user 3: e unlisted
    assert one['hit_rate'] == pytest.approx(1 / 3) and one['ndcg'] == pytest.approx(1 / 3)
    assert two['hit_rate'] == pytest.approx(2 / 3) and two['ndcg'] == pytest.approx((1 / math.log2(3) + 1) / 3)
    assert two['mrr'] == pytest.approx((1 / 2 + 1) / 3) and one['users'] == 3

def test_markov_and_recent_popularity_on_a_hand_frame():
    r = pd.DataFrame(dict(user=[1, 1, 1, 2, 2, 3, 3], title=list('abcabab'), rating=3,
                          timestamp=[0, 86400, 2 * 86400, 0, 86400, 40 * 86400, 41 * 86400]))
    mk = movierecs.Markov().fit(r, 'title')
    assert mk.next.toarray()[0].tolist() == [0, 3, 0] and mk.next.toarray()[1].tolist() == [0, 0, 1]  # a→b three times, b→c once
    assert mk.recommend(2, n=1).index.tolist() == ['c']  # after b comes c
    rp = movierecs.RecentPopular(days=7).fit(r, 'title')
    s = rp.score([1, 3])
    assert np.floor(s).tolist() == [[2, 2, 1], [1, 1, 0]]  # user 3's week holds only their own two ratings

def test_sasrec_learns_a_planted_sequence_that_popularity_cannot(cyc):
    split = next_split(cyc)
    learn = train_model('sasrec', ratings=split[0], splits=(range(len(split[0])), []), epochs=30, lr=3e-3, seed=42, progress=False,
                        n_factors=32, max_len=20)
    got = evaluate_next(movierecs.LearnerTopN(learn), split, ks=(1, 10))
    pop = evaluate_next('popular', split, ks=(1, 10))
    # measured over data seeds 0-2 x training seeds 42-43: HR@1 0.767-0.967 (mean 0.857, sd 0.079), NDCG@10 0.886-0.987 (sd 0.04);
    # the most popular list HR@1 0.083-0.158, NDCG@10 0.276-0.358; the bars are the mean - 3 sd
    assert got[0]['hit_rate'] > 0.62 and pop[0]['hit_rate'] < 0.2, (got[0]['hit_rate'], pop[0]['hit_rate'])
    assert got[1]['ndcg'] > 0.81 > pop[1]['ndcg'] + 0.4, (got[1]['ndcg'], pop[1]['ndcg'])

def test_sasrec_in_the_registry(cyc):
    assert movierecs.list_models('next') == ['sasrec'] and movierecs.model_task('sasrec') == 'next'
    dls = dataloaders(cyc, bs=16)
    learn = get_learner('sasrec', dls, n_factors=16, max_len=8)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(2, 3e-3)
    preds, _ = learn.get_preds()
    assert preds.shape == (len(learn.dls.valid.x), len(dls.classes['title']))  # every item's logit after each user's window
    assert learn.model_spec['model'] == 'sasrec' and learn.model_spec['max_len'] == 8
    with pytest.raises(ValueError, match='multiple of n_heads'): get_learner('sasrec', dls, n_factors=10, n_heads=3)

def test_recommend_next_and_its_errors(cyc):
    split = next_split(cyc)
    learn = train_model('sasrec', ratings=split[0], splits=(range(len(split[0])), []), epochs=30, lr=3e-3, seed=42, progress=False,
                        n_factors=32, max_len=20)
    recs = movierecs.recommend_next(learn, ['Movie 04', 'Movie 05', 'Movie 06'], n=5)
    assert list(recs.columns) == ['title', 'score'] and len(recs) == 5 and recs.score.is_monotonic_decreasing
    assert recs.title.iloc[0] == 'Movie 07' and not {'Movie 04', 'Movie 05', 'Movie 06'} & set(recs.title)  # the cycle goes on
    assert 'Movie 01' in movierecs.recommend_next(learn, ['Movie 27', 'Movie 28', 'Movie 29', 'Movie 30'], n=3).title.tolist()  # round
    with pytest.raises(KeyError, match="'Movie 4' is not a movie the model was trained on. Did you mean"):
        movierecs.recommend_next(learn, ['Movie 4'])
    with pytest.raises(ValueError, match='history is empty'): movierecs.recommend_next(learn, [])
    with pytest.raises(ValueError, match=r"'Movie 05' is in the history twice \(places 1 and 3\)"):
        movierecs.recommend_next(learn, ['Movie 05', 'Movie 06', 'Movie 05'])
    with pytest.raises(ValueError, match='more than 5,000'): movierecs.recommend_next(learn, ['Movie 05'] * 5001)
    with pytest.raises(TypeError, match='list of titles'): movierecs.recommend_next(learn, 'Movie 05')
    with pytest.raises(TypeError, match='recommend_next'): movierecs.recommend_for(learn, {'Movie 05': 5})
    rating = train_model('dot', ratings=cyc, epochs=1, progress=False)
    with pytest.raises(TypeError, match="needs a next-item model"): movierecs.recommend_next(rating, ['Movie 05'])
