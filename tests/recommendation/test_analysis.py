"Bias rankings and cosine similarity, for every model that has movie biases or movie factors."
import pytest, torch
import movierecs
import numpy as np
from movierecs import biases, movie_bias, movie_factors, similar_movies, similar_users, recommend, pca_map, dataloaders, get_learner

BIAS_MODELS = ['dot_bias', 'dot_bias_params', 'collab', 'svdpp']
FACTOR_MODELS = ['dot', 'dot_raw', 'dot_bias', 'dot_bias_params', 'collab', 'collab_nn', 'collab_emb_nn', 'svdpp', 'mult_dae']
NO_FACTOR_MODELS = ['ensemble']  # several members, so no single set of factors
COMPUTED_FACTOR_MODELS = ['autorec', 'glocal_k']  # factors computed from the ratings: tests/test_autoencoders.py
MOVIE_FACTOR_MODELS = ['sasrec']  # movie embeddings (similar movies by cosine), no user factors: a user is their history

@pytest.fixture(scope='module')
def dls(synth, seed): return dataloaders(synth, bs=32, seed=seed)

def _set_movie_weights(learn, bias=None, factors=None):
    "Write known values into the model's movie weights, wherever it keeps them."
    with torch.no_grad():
        if bias is not None: movierecs.models.parts.model_weights(learn, 'movie', 'bias')  # proves it is found
        for name, p in learn.model.named_parameters():
            is_bias = name in ('movie_bias', 'movie_bias.weight', 'i_bias.weight')
            is_fac = name in ('movie_factors', 'movie_factors.weight', 'item_factors.weight', 'i_weight.weight', 'embeds.1.weight',
                              'decoder.weight', 'items.weight')
            if bias is not None and is_bias: p.copy_(bias.view_as(p))
            if factors is not None and is_fac: p.copy_(factors)

def test_every_model_is_covered():
    assert set(FACTOR_MODELS + NO_FACTOR_MODELS + COMPUTED_FACTOR_MODELS + MOVIE_FACTOR_MODELS) == set(movierecs.list_models())

@pytest.mark.parametrize('name', MOVIE_FACTOR_MODELS)
def test_models_with_movie_factors_only(name, dls):
    learn = get_learner(name, dls)
    for f in (biases, lambda l: similar_users(l, 1)):
        with pytest.raises(TypeError, match='has no (movie|user) (factors|bias)'): f(learn)

@pytest.mark.parametrize('name', NO_FACTOR_MODELS)
def test_models_without_factors_say_so(name, dls):
    learn = get_learner(name, dls)
    for f in (movie_factors, biases, lambda l: similar_users(l, 1)):
        with pytest.raises(TypeError, match='has no (movie|user) (factors|bias)'): f(learn)

@pytest.mark.parametrize('name', BIAS_MODELS)
def test_biases_rank_titles(name, dls):
    learn = get_learner(name, dls)
    titles = list(dls.classes['title'])
    _set_movie_weights(learn, bias=torch.arange(len(titles), dtype=torch.float))  # bias = position in the vocab
    b = movie_bias(learn)
    assert len(b) == len(titles) - 1 and '#na#' not in b.index and b.index.name == 'title'
    assert biases(learn, n=3).index.tolist() == titles[1:4]
    assert biases(learn, n=2, lowest=False).index.tolist() == titles[:-3:-1]
    assert biases(learn, n=2, lowest=False).tolist() == [len(titles)-1, len(titles)-2]

@pytest.mark.parametrize('name', ['dot', 'dot_raw', 'collab_nn', 'collab_emb_nn', 'mult_dae', 'sasrec'])
def test_models_without_bias_say_so(name, dls):
    with pytest.raises(TypeError, match='has no movie bias'): biases(get_learner(name, dls))

@pytest.mark.parametrize('name', FACTOR_MODELS + MOVIE_FACTOR_MODELS)
def test_similar_movies_by_cosine(name, dls):
    learn = get_learner(name, dls)
    titles = list(dls.classes['title'])
    f = movie_factors(learn).to_numpy()
    k = f.shape[1]
    w = torch.randn(len(titles), k)
    w[2] = w[1] * 3             # same direction as title 1: cosine 1
    w[3] = w[1] + 0.1*w[4]      # close to title 1
    _set_movie_weights(learn, factors=w)
    s = similar_movies(learn, titles[1], n=2)
    assert s.index.tolist() == [titles[2], titles[3]] and s.iloc[0] == pytest.approx(1.0)
    assert titles[1] not in similar_movies(learn, titles[1], n=len(titles)).index  # never the movie itself
    assert '#na#' not in similar_movies(learn, titles[1], n=len(titles)).index

def test_unknown_title_suggests_close_ones(dls):
    learn = get_learner('collab', dls)
    with pytest.raises(KeyError, match=r"'Movie 7 \(1991\)' is not a movie the model was trained on. Did you mean 'Movie 7 \(1990\)'"):
        similar_movies(learn, 'Movie 7 (1991)')

def _set_user_factors(learn, w):
    "Write `w` into the model's user factors; for an autoencoder, whose user factors are its code of each user's row, into the rows."
    with torch.no_grad():
        if hasattr(learn.model, 'user_embedding'): learn.model.history.copy_(w); return
        for name, p in learn.model.named_parameters():
            if name in ('user_factors', 'user_factors.weight', 'u_weight.weight', 'embeds.0.weight'): p.copy_(w); return
    raise AssertionError(f'no user factors found in {type(learn.model).__name__}')

@pytest.mark.parametrize('name', FACTOR_MODELS)
def test_similar_users(name, dls):
    "Planted user factors: user 2 = 3 x user 1 (cosine 1), user 3 = user 1 + a little of user 4; they are user 1's nearest, in order."
    learn = get_learner(name, dls)
    users = list(dls.classes['user'])
    torch.manual_seed(0)
    w = torch.randn(len(users), movierecs.models.parts.model_weights(learn, 'user', 'factors').shape[1] if name != 'mult_dae'
                    else len(dls.classes['title']))
    w[2] = w[1] * 3
    w[3] = w[1] + 0.1*w[4]
    _set_user_factors(learn, w)
    s = similar_users(learn, users[1], n=3)
    assert len(s) == 3 and users[1] not in s.index and s.is_monotonic_decreasing and s.index.name == 'user'
    assert s.index[:2].tolist() == [users[2], users[3]] and s.iloc[0] == pytest.approx(1.0, abs=1e-5) and s.iloc[2] < 0.99, s
    assert similar_users(learn, str(users[1]), n=3).equals(s)  # '7' as typed on a command line

def test_unknown_user_gives_the_valid_range(dls):
    with pytest.raises(KeyError, match=r"User 5000 is not in the training data: valid users are 1 to 100 \(100 users\)"):
        recommend(get_learner('collab', dls), 5000)

@pytest.mark.parametrize('name', movierecs.list_models())
def test_recommend_ranks_unrated_movies_by_prediction(name, dls):
    learn = get_learner(name, dls)
    users, titles = list(dls.classes['user']), list(dls.classes['title'])
    u = 3
    rated = {t for dl in (dls.train, dls.valid) for t in dl.items.loc[dl.items.user == u, 'title']}
    recs = recommend(learn, users[u], n=len(titles))
    assert set(recs.index) == {titles[i] for i in range(1, len(titles)) if i not in rated}  # every unrated movie, once
    assert recs.is_monotonic_decreasing and len(recommend(learn, users[u], n=4)) == 4
    # the scores are the model's own predictions for (user, movie), or a ranking model's scores of every movie for the user
    i = titles.index(recs.index[0])
    with torch.no_grad():
        if movierecs.model_task(name) != 'rating': pred = learn.model.scores(torch.tensor([u]))[0, i].item()
        else: pred = learn.model.eval()(torch.tensor([[u, i]])).item()
    assert recs.iloc[0] == pytest.approx(pred, abs=1e-6)
    assert recs.name == ('predicted_rating' if movierecs.model_task(name) == 'rating' else 'score')

def test_pca_map(dls, tmp_path):
    learn = get_learner('collab', dls)
    fig = pca_map(learn, n_movies=10, path=tmp_path/'pca.png')
    assert len(fig.axes[0].texts) == 10 and (tmp_path/'pca.png').read_bytes()[:4] == b'\x89PNG'
    counts = np.bincount(np.concatenate([dl.items.title.to_numpy('int64') for dl in (dls.train, dls.valid)]))
    counts[0] = -1
    most = [dls.classes['title'][i] for i in np.argsort(-counts, kind='stable')[:10]]
    assert [t.get_text() for t in fig.axes[0].texts] == most  # the most-rated movies are the ones placed
    other = get_learner('collab', dls)
    other.model = torch.nn.Linear(2, 1)
    with pytest.raises(TypeError, match='has no movie factors'): pca_map(other)
