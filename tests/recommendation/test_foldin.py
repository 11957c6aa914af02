"Fold-in: recommendations for someone the model never saw, from their own ratings, in Python and on the command line."
import json, re
import numpy as np, pandas as pd, pytest, torch
import movierecs
from movierecs import recommend_for
from movierecs.__main__ import main

@pytest.fixture(scope='module')
def learn(synth, seed):
    return movierecs.train_model('mult_dae', epochs=3, seed=seed, ratings=synth, progress=False)

def test_new_user_gets_unrated_movies_and_a_reason(learn):
    rates = {'Movie 3 (1990)': 5, 'Movie 7 (1990)': 4, 'Movie 9 (1990)': 1}
    recs = recommend_for(learn, rates, n=8)
    assert list(recs.columns) == ['title', 'score', 'because'] and len(recs) == 8
    assert not set(recs.title) & set(rates) and recs.score.is_monotonic_decreasing
    assert set(recs.because) <= {'Movie 3 (1990)', 'Movie 7 (1990)'}  # the reason is a movie the person liked
    titles = list(learn.dls.classes['title'])
    w = torch.nn.functional.normalize(movierecs.models.parts.model_weights(learn, 'movie', 'factors'), dim=1)
    first = titles.index(recs.title[0])
    liked = [titles.index(t) for t in ('Movie 3 (1990)', 'Movie 7 (1990)')]
    assert recs.because[0] == titles[liked[int((w[first] @ w[liked].T).argmax())]]
    assert len(recommend_for(learn, rates, n=1000)) == len(titles) - 1 - len(rates)  # every unrated movie, once

def test_a_known_user_folded_in_scores_as_the_model_does(learn):
    "Fold-in reads a row like the training rows: a user of the data, folded in from their training ratings, gets the model's own scores."
    it = learn.dls.train.items
    u = 5
    mine = it[it.user == u]
    titles = list(learn.dls.classes['title'])
    recs = recommend_for(learn, {titles[c]: float(r) for c, r in zip(mine.title, mine.rating)}, n=5)
    with torch.no_grad(): own = learn.model.scores(torch.tensor([u]))[0]
    assert np.allclose(recs.score, own[[titles.index(t) for t in recs.title]].numpy(), atol=1e-5)

@pytest.mark.parametrize('rates, err, problem', [
    ({}, ValueError, 'ratings is empty'), ([('Movie 3 (1990)', 5)], TypeError, 'must be a dict'),
    ({'Movie 3 (1990)': 6}, ValueError, 'stars must be numbers from 1 to 5'), ({'Movie 3 (1990)': 0}, ValueError, 'from 1 to 5'),
    ({'Movie 3 (1990)': float('nan')}, ValueError, 'from 1 to 5'), ({'Movie 3 (1990)': True}, ValueError, 'from 1 to 5'),
    ({'Movie 3 (1990)': '5'}, ValueError, 'from 1 to 5'), ({'Movie 3': 5}, KeyError, r"Did you mean 'Movie 3 \(1990\)'"),
    ({'Movie 3 (1990)': 10**400}, ValueError, r'is rated 1000.*\.\.\.: stars must be numbers from 1 to 5'),
    ({'Movie 3 (1990)': 5, 'Movie 3 (1990)\t': 4}, ValueError, r"'Movie 3 \(1990\)' is rated twice \(5 and 4"),
])
def test_bad_ratings_are_clear_errors(learn, rates, err, problem):
    with pytest.raises(err, match=problem): recommend_for(learn, rates)

def test_limits(learn, synth, monkeypatch):
    monkeypatch.setattr(movierecs.recommendation.light, 'MAX_RATINGS', 2)
    with pytest.raises(ValueError, match='3 ratings are more than 2'): recommend_for(learn, {f'Movie {i} (1990)': 3 for i in (1, 2, 3)})
    with pytest.raises(ValueError, match='n must be a positive integer'): recommend_for(learn, {'Movie 1 (1990)': 3}, n=0)

@pytest.fixture(scope='module')
def saved(learn, tmp_path_factory):
    return str(movierecs.save(learn, tmp_path_factory.mktemp('foldin')/'m'))

def test_command_line(saved, learn, tmp_path, capsys):
    main(['recommend', '--rate', 'Movie 3 (1990)=5', '--rate', 'Movie 7 (1990)=4', '-n', '3', '--model', saved, '--json'])
    rows = json.loads(capsys.readouterr().out)
    want = recommend_for(learn, {'Movie 3 (1990)': 5, 'Movie 7 (1990)': 4}, n=3)
    assert [r['title'] for r in rows] == want.title.tolist() and [r['because'] for r in rows] == want.because.tolist()
    f = tmp_path/'mine.csv'
    f.write_text('title,rating\nMovie 3 (1990),5\n"Movie 7 (1990)",4\n')
    main(['recommend', '--ratings', str(f), '-n', '3', '--model', saved])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ['#', 'title', 'match', 'because'] and len(lines) == 4 and want.title[0] in lines[1]
    assert ' 100% ' in lines[1]  # the first pick's match; the others relative to it

@pytest.mark.parametrize('argv, problem', [
    (['--rate', 'Movie 3 (1990)'], 'expected TITLE=STARS'), (['--rate', 'Movie 3 (1990)=five'], 'stars must be a number'),
    (['--rate', 'Movie 3 (1990)=5', '--user', '3'], 'give one of --user ID'), ([], 'give one of --user ID'),
    (['--ratings', '/nonexistent.csv'], 'cannot read --ratings'),
])
def test_command_line_errors_are_one_line(saved, argv, problem):
    with pytest.raises(SystemExit) as e: main(['recommend', '--model', saved, *argv])
    assert problem in e.value.code and e.value.code.count('\n') == 0

def test_bad_csv_row_names_the_row(saved, tmp_path):
    f = tmp_path/'bad.csv'
    f.write_text('Movie 3 (1990),5\nMovie 7 (1990),4,extra\n')
    with pytest.raises(SystemExit) as e: main(['recommend', '--model', saved, '--ratings', str(f)])
    assert 'row 2: expected 2 columns title,rating' in e.value.code

# --- rating models: a new user's weights fitted with the movies frozen ---

RATES = {'Movie 3 (1990)': 5, 'Movie 7 (1990)': 4, 'Movie 9 (1990)': 1}

@pytest.fixture(scope='module')
def raters(synth, seed):
    "`raters(name)`: the registry's rating model `name` trained on the synthetic ratings, once per module."
    cache = {}
    def get(name):
        lbfgs = movierecs.trains_by_lbfgs(name)  # autorec: 20 epochs of L-BFGS, l2 for 3,000 ratings (its default suits 80,000)
        if name not in cache: cache[name] = movierecs.train_model(name, epochs=20 if lbfgs else 5, wd=None if lbfgs else 0.1, seed=seed,
                                                                  ratings=synth, progress=False, **({'l2': 1.} if lbfgs else {}))
        return cache[name]
    return get

def _valid_rmse(learn):
    "RMSE on the validation ratings of users folded in from their training ratings, of the same users as trained, and of the mean user."
    from movierecs.recommendation.foldin import fold_weights, predict_pairs, _training_rows
    u, i, r = _training_rows(learn)
    va = learn.dls.valid.items
    vu, vi, vr = va.user.to_numpy('int64'), va.title.to_numpy('int64'), torch.tensor(va.rating.to_numpy('float32'))
    users = np.unique(vu)
    w = fold_weights(learn, [torch.from_numpy(i[u == v]) for v in users], [torch.from_numpy(r[u == v]) for v in users])
    mean = {k: v.mean(0, keepdim=True).expand_as(v) if v.dim() == 2 else v for k, v in w.items()}
    row = {v: b for b, v in enumerate(users)}
    new, movies, m = torch.tensor([row[v] for v in vu]), torch.from_numpy(vi), learn.model.eval()
    rmse = lambda weights, who: float(((predict_pairs(m, weights, movies, who) - vr)**2).mean().sqrt())
    return rmse(w, new), rmse({}, torch.from_numpy(vu)), rmse(mean, new)

# fold-in RMSE minus trained-in RMSE on these ratings, measured: -0.21 (svdpp) to +0.003 (collab_nn); 5 epochs underfit users
FOLDIN_MARGIN = 0.02

@pytest.mark.parametrize('name', [n for n in movierecs.list_models('rating') if n != 'glocal_k'])  # glocal_k refuses: test_autoencoders
def test_every_rating_model_folds_in(raters, name):
    "Users folded in from their training ratings predict their validation ratings as well as trained in, and better than the mean user."
    learn = raters(name)
    recs = recommend_for(learn, RATES, n=6)
    assert list(recs.columns) == ['title', 'stars', 'because'] and len(recs) == 6 and not set(recs.title) & set(RATES)
    assert recs.stars.is_monotonic_decreasing and recs.stars.between(0, 5.5).all()
    assert set(recs.because) <= {'Movie 3 (1990)', 'Movie 7 (1990)'}
    folded, trained, mean = _valid_rmse(learn)
    assert folded <= trained + FOLDIN_MARGIN and folded < mean, (name, folded, trained, mean)

@pytest.mark.parametrize('name', ['dot', 'dot_raw', 'dot_bias', 'dot_bias_params', 'collab'])
def test_closed_form_is_the_ridge_minimum(raters, name):
    "The dot-product models' closed form (Gauss-Newton through sigmoid_range) lands where the penalised loss has zero gradient."
    from movierecs.recommendation.foldin import _dot_form, _descend, predict_pairs, _ridge_dot, _training_rows
    learn = raters(name)
    m = learn.model.eval()
    form = _dot_form(m)
    assert form is not None
    u, i, r = _training_rows(learn)
    codes, stars = [torch.from_numpy(i[u == v]) for v in (3, 8)], [torch.from_numpy(r[u == v]) for v in (3, 8)]
    mean = lambda k: m.get_parameter(k).detach()[1:].mean(0).numpy()  # a centre away from zero, as the 'mean' rule's
    prior = {form[0]: (3., mean(form[0])), **({form[1]: (0.5, mean(form[1]))} if form[1] else {})}
    w = {k: v.clone().requires_grad_() for k, v in _ridge_dot(form, codes, stars, prior).items()}
    users = torch.cat([torch.full((len(c),), b) for b, c in enumerate(codes)])
    loss = ((predict_pairs(m, w, torch.cat(codes), users) - torch.cat(stars))**2).sum() + sum(
        prior[k][0] * ((v - torch.from_numpy(prior[k][1]))**2).sum() for k, v in w.items())
    loss.backward()
    assert max(float(v.grad.abs().max()) for v in w.values()) < 1e-3
    descended = _descend(m, codes, stars, prior, max_iter=500)
    assert all(torch.allclose(w[k], descended[k], atol=2e-3) for k in w)

@pytest.mark.parametrize('rule', ['zero', 'mean'])
def test_penalty_makes_the_trained_users_stationary(raters, rule):
    "With the matched penalty, the trained users' weights are (on average over users) where the penalised loss is flat."
    from movierecs.recommendation.foldin import predict_pairs, _training_rows
    learn = raters('ensemble')
    prior = movierecs.foldin_prior(learn, rule)
    lams = movierecs.foldin_lambdas(learn, rule)
    assert set(lams) == {'members.0.', 'members.1.', 'members.2.'} and movierecs.foldin_prior(learn, rule) is prior
    assert set(lams['members.0.']) == {'u_weight.weight', 'u_bias.weight'} and set(lams['members.2.']) == {'user_factors.weight'}
    u, i, r = (torch.from_numpy(a) for a in _training_rows(learn))
    for prefix, m in movierecs.recommendation.foldin._members(learn.model):
        for name, lam in lams[prefix].items():
            P = m.get_parameter(name).detach().clone().requires_grad_()
            ((predict_pairs(m, {name: P}, i, u) - r)**2).sum().backward()
            users = torch.unique(u)
            D = P.detach() - torch.from_numpy(prior[prefix][name][1])  # from the centre (0 for 'zero')
            along = float(((P.grad + 2 * lam * D)[users] * D[users]).sum())  # the penalised gradient along P - centre
            assert lam == movierecs.MIN_LAMBDA or abs(along) < 1e-3 * float((P.grad[users] * D[users]).abs().sum())

def test_fold_in_series(raters, learn):
    ("Training users folded in from their own training ratings: near the rating model's predictions for them; "
     "exactly the ranking model's row scores.")
    rater = raters('collab')
    s = movierecs.fold_in(rater, RATES)
    assert s.name == 'stars' and len(s) == len(rater.dls.classes['title']) - 1 and s.index.name == 'title'
    titles = list(rater.dls.classes['title'])
    assert s.index.tolist() == titles[1:]
    it, m, codes = rater.dls.train.items, rater.model.eval(), torch.arange(1, len(titles))
    gaps, others = [], []
    for u in range(1, 21):
        mine = it[it.user == u]
        folded = movierecs.fold_in(rater, {titles[c]: float(r) for c, r in zip(mine.title, mine.rating)}).to_numpy()
        with torch.no_grad():
            own, other = (m(torch.stack([torch.full_like(codes, v), codes], 1)).reshape(-1).numpy() for v in (u, u % 100 + 1))
        gaps.append(np.abs(folded - own).mean()); others.append(np.abs(other - own).mean())
    # measured, users 1-20, seeds 42, 0, 1: mean |fold-in - the model's own predictions| 0.10-0.13; the next user's predictions 0.50-0.54
    assert np.mean(gaps) < 0.25 < np.mean(others), (np.mean(gaps), np.mean(others))
    r = movierecs.fold_in(learn, RATES)
    assert r.name == 'score' and r.index.tolist() == list(learn.dls.classes['title'])[1:]
    it, u = learn.dls.train.items, 5
    mine = it[it.user == u]
    folded = movierecs.fold_in(learn, {titles[c]: float(r) for c, r in zip(mine.title, mine.rating)})
    with torch.no_grad(): own = learn.model.scores(torch.tensor([u]))[0, 1:].numpy()
    assert np.allclose(folded.to_numpy(), own, atol=1e-5)  # the same row in, the same scores out

def test_ranking_list_with_predicted_stars(learn, raters):
    rater = raters('collab')
    recs = recommend_for(learn, RATES, n=5, stars=rater)
    assert list(recs.columns) == ['title', 'score', 'stars', 'because']
    assert recs.title.tolist() == recommend_for(learn, RATES, n=5).title.tolist()
    assert np.allclose(recs.stars, movierecs.fold_in(rater, RATES)[recs.title].to_numpy(), atol=1e-5)
    with pytest.raises(TypeError, match="stars must be a rating model"): recommend_for(learn, RATES, stars=learn)
    other = movierecs.train_model('collab', epochs=1, ratings=movierecs.synthetic_ratings(n_movies=50, seed=1), progress=False)
    with pytest.raises(ValueError, match='other titles'): recommend_for(learn, RATES, stars=other)

def test_command_line_rating_model(raters, tmp_path, capsys):
    saved = str(movierecs.save(raters('collab'), tmp_path/'collab'))
    main(['recommend', '--rate', 'Movie 3 (1990)=5', '--rate', 'Movie 9 (1990)=1', '-n', '4', '--model', saved, '--json'])
    rows = json.loads(capsys.readouterr().out)
    want = recommend_for(raters('collab'), {'Movie 3 (1990)': 5, 'Movie 9 (1990)': 1}, n=4)
    assert [r['title'] for r in rows] == want.title.tolist() and np.allclose([r['stars'] for r in rows], want.stars, atol=1e-4)

def test_low_ratings_alone_are_not_likes(learn):
    "Someone who only rated movies low gets the model's list for an empty row (minus what they rated), with no reason."
    hated = recommend_for(learn, {'Movie 3 (1990)': 1}, n=5)
    with torch.no_grad(): empty = learn.model.score_rows(torch.zeros(1, learn.model.history.shape[1]))[0]
    titles = list(learn.dls.classes['title'])
    assert np.allclose(hated.score, empty[[titles.index(t) for t in hated.title]].numpy(), atol=1e-6)
    assert hated.because.isna().all() and 'Movie 3 (1990)' not in set(hated.title)
    loved = recommend_for(learn, {'Movie 3 (1990)': 5}, n=5)
    assert loved.title.tolist() != hated.title.tolist() and (loved.because == 'Movie 3 (1990)').all()

@pytest.mark.parametrize('stars', [np.complex128(3 + 4j), np.timedelta64(3), np.bool_(True)])
def test_odd_numpy_stars_are_refused(learn, stars):
    with pytest.raises(ValueError, match='stars must be numbers from 1 to 5'): recommend_for(learn, {'Movie 3 (1990)': stars})

def test_stars_argument_is_checked(learn, raters):
    with pytest.raises(TypeError, match="stars must be a rating model's learner.*got str"): recommend_for(learn, RATES, stars='collab')
    with pytest.raises(ValueError, match="a rating model's list has its own: leave stars out"):
        recommend_for(raters('collab'), RATES, stars=raters('dot_bias'))

def test_a_series_of_ratings_is_taken(learn):
    assert recommend_for(learn, pd.Series(RATES), n=3).equals(recommend_for(learn, RATES, n=3))

@pytest.mark.parametrize('text, problem', [
    ('\ufefftitle,rating\nMovie 3 (1990),5\n', None),  # Excel's UTF-8 CSV starts with a byte-order mark: read as usual
    ('Movie 3 (1990),5\nMovie 3 (1990),1\n', r"'Movie 3 \(1990\)' is rated twice \(5 and 1\): rate each movie once"),
    ('Movie 3 (1990),5_0\n', "is rated '5_0': stars must be a number"),
    ('Movie 3 (1990),\u0665\n', "stars must be a number"),
    ('Movie 3 (1990),"5\n', 'not valid CSV'),
    ('Movie 3 (1990),5\u0085Movie 7 (1990),4\n', 'got 3: .*quote a title holding a comma'),  # one line: U+0085 ends no CSV row
    ('Movie 3 (1990),5\rMovie 7 (1990),4\r', None),  # old Mac line ends
    ('Movie 3, The (1990),5\n', r"got 3: \['Movie 3', ' The \(1990\)', '5'\]: quote a title holding a comma"),
])
def test_ratings_file_edge_cases(saved, tmp_path, capsys, text, problem):
    f = tmp_path/'r.csv'; f.write_bytes(text.encode('utf-8'))
    argv = ['recommend', '--model', saved, '--ratings', str(f), '-n', '2']
    if problem is None: main(argv); assert len(capsys.readouterr().out.splitlines()) == 3; return
    with pytest.raises(SystemExit) as e: main(argv)
    assert re.search(problem, e.value.code) and e.value.code.count('\n') == 0

def test_ratings_file_limits(saved, tmp_path, monkeypatch):
    with pytest.raises(SystemExit) as e: main(['recommend', '--model', saved, '--ratings', ''])
    assert '--ratings is empty' in e.value.code
    monkeypatch.setattr(movierecs.recommendation.light, 'MAX_RATINGS', 2)
    f = tmp_path/'r.csv'; f.write_text('Movie 3 (1990),5\nMovie 3 (1990),5\nMovie 3 (1990),5\n')  # counted before any merging
    with pytest.raises(SystemExit) as e: main(['recommend', '--model', saved, '--ratings', str(f)])
    assert 'has 3 rows, more than 2' in e.value.code
    f.write_text('x' * 2000)
    with pytest.raises(SystemExit) as e: main(['recommend', '--model', saved, '--ratings', str(f)])
    assert 'is 2,000 bytes: more than 2 ratings fit in 800' in e.value.code

def test_the_fold_in_rule_is_the_one_the_carve_out_chose():
    "`FOLDIN_RULE` is the rule results/foldin_tuning.csv (`make tune-foldin`, on a carve-out of the users) marks as chosen."
    from pathlib import Path
    df = pd.read_csv(Path(__file__).parents[2]/'results'/'foldin_tuning.csv')
    chosen = set(df[df.chosen].method.str.removeprefix('fold-in, '))
    assert chosen == {movierecs.FOLDIN_RULE} and set(df.method.str.removeprefix('fold-in, ')) >= set(movierecs.FOLDIN_RULES)
    folds = df[df.method.str.startswith('fold-in')]
    assert folds.groupby('method').rmse.mean().idxmin() == f'fold-in, {movierecs.FOLDIN_RULE}'  # the criterion, recomputed
