"Fold-in: recommendations for someone the model never saw, from their own ratings, in Python and on the command line."
import json
import numpy as np, pandas as pd, pytest, torch
import movierecs
from movierecs import recommend_for
from movierecs.cli import main

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
    w = torch.nn.functional.normalize(movierecs.analysis._weights(learn, 'movie', 'factors'), dim=1)
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
])
def test_bad_ratings_are_clear_errors(learn, rates, err, problem):
    with pytest.raises(err, match=problem): recommend_for(learn, rates)

def test_limits(learn, synth, monkeypatch):
    monkeypatch.setattr(movierecs.foldin, 'MAX_RATINGS', 2)
    with pytest.raises(ValueError, match='3 ratings are more than 2'): recommend_for(learn, {f'Movie {i} (1990)': 3 for i in (1, 2, 3)})
    with pytest.raises(ValueError, match='n must be a positive integer'): recommend_for(learn, {'Movie 1 (1990)': 3}, n=0)
    rating = movierecs.train_model('dot_bias', epochs=1, ratings=synth, progress=False)
    with pytest.raises(TypeError, match='cannot take a new user yet.*mult_dae'): recommend_for(rating, {'Movie 1 (1990)': 3})

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
    assert lines[0].split() == ['#', 'title', 'score', 'because'] and len(lines) == 4 and want.title[0] in lines[1]

@pytest.mark.parametrize('argv, problem', [
    (['--rate', 'Movie 3 (1990)'], 'expected TITLE=STARS'), (['--rate', 'Movie 3 (1990)=five'], 'stars must be a number'),
    (['--rate', 'Movie 3 (1990)=5', '--user', '3'], 'give either --user ID'), ([], 'give either --user ID'),
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
