"Bias rankings and cosine similarity, for every model that has movie biases or movie factors."
import pytest, torch
import movierecs
from movierecs import biases, movie_bias, movie_factors, similar_movies, dataloaders, get_learner

BIAS_MODELS = ['dot_bias', 'dot_bias_params', 'collab']
FACTOR_MODELS = ['dot', 'dot_raw', 'dot_bias', 'dot_bias_params', 'collab', 'collab_nn', 'collab_emb_nn']

@pytest.fixture(scope='module')
def dls(synth, seed): return dataloaders(synth, bs=32, seed=seed)

def _set_movie_weights(learn, bias=None, factors=None):
    "Write known values into the model's movie weights, wherever it keeps them."
    with torch.no_grad():
        if bias is not None: movierecs.analysis._movie_weights(learn, 'bias')  # proves it is found
        for name, p in learn.model.named_parameters():
            is_bias = name in ('movie_bias', 'movie_bias.weight', 'i_bias.weight')
            is_fac = name in ('movie_factors', 'movie_factors.weight', 'item_factors.weight', 'i_weight.weight', 'embeds.1.weight')
            if bias is not None and is_bias: p.copy_(bias.view_as(p))
            if factors is not None and is_fac: p.copy_(factors)

def test_every_model_is_covered():
    assert set(FACTOR_MODELS) == set(movierecs.list_models())

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

@pytest.mark.parametrize('name', ['dot', 'dot_raw', 'collab_nn', 'collab_emb_nn'])
def test_models_without_bias_say_so(name, dls):
    with pytest.raises(TypeError, match='has no movie bias'): biases(get_learner(name, dls))

@pytest.mark.parametrize('name', FACTOR_MODELS)
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
