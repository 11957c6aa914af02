"The web page and its JSON API through Starlette's TestClient (every error path), a real uvicorn on a loopback port, and `movierecs serve`."
import asyncio, json, socket
import pandas as pd, pytest
import movierecs
import movierecs.app.serve as ms
from movierecs import recommend_for, similar_movies
from movierecs.__main__ import main
from movierecs.app.serve import MAX_BODY, app, listen
from starlette.testclient import TestClient

EVIL = '<script>alert(1)</script>'  # a title that must show as text, never run
ESCAPED = '&lt;script&gt;alert(1)&lt;/script&gt;'
RATED = {'Movie 3 (1990)': 5, 'Movie 7 (1990)': 4, 'Movie 9 (1990)': 1}

@pytest.fixture(scope='module')
def frame(synth):
    "The synthetic ratings, movie 5 titled like an attack."
    r = synth.copy()
    r.loc[r.movie == 5, 'title'] = EVIL
    return r

@pytest.fixture(scope='module')
def learn(frame, seed): return movierecs.train_model('mult_dae', epochs=3, seed=seed, ratings=frame, progress=False)

@pytest.fixture(scope='module')
def rater(frame, seed): return movierecs.train_model('dot_bias', epochs=2, seed=seed, ratings=frame, progress=False)

@pytest.fixture(scope='module')
def client(learn, rater):
    with TestClient(app(learn, rater)) as c: yield c  # raise_server_exceptions: a bad input that reached a 500 fails the test

def _one_line_error(r, status):
    "The response is `status` with one line of JSON {'error': ...} and no traceback; its message."
    assert r.status_code == status, r.text
    assert r.headers['content-type'] == 'application/json' and r.text.count('\n') == 0 and 'Traceback' not in r.text
    body = r.json()
    assert list(body) == ['error'] and body['error'] and '\n' not in body['error']
    return body['error']

def _titles(html, cls):
    "The data-title of every table row of class `cls`, in order."
    import html as h, re
    return [h.unescape(re.search(r'data-title="([^"]*)"', tag).group(1)) for tag in re.findall(rf'<tr[^>]*class="{cls}"[^>]*>', html)]

def _image(png):
    "The PNG decoded to an (h, w, channels) array."
    import io
    import numpy as np
    from PIL import Image
    return np.asarray(Image.open(io.BytesIO(png)).convert('RGB'))

def _is_the_map_of(png, model):
    "`png` decodes to the PCA map of `model`'s movie factors, and shows something (not one colour)."
    import numpy as np
    from movierecs.core.files import png_bytes
    img = _image(png)
    assert img.shape[0] > 100 and img.shape[1] > 100 and len(np.unique(img.reshape(-1, 3), axis=0)) > 10
    assert (img < 250).any(-1).mean() > 0.01  # more than 1% of the pixels are not white
    return np.array_equal(img, _image(png_bytes(movierecs.pca_map(model))))

def test_recommend(client, learn):
    r = client.post('/api/recommend', json={'ratings': RATED})
    assert r.status_code == 200
    recs = r.json()['recommendations']
    want = recommend_for(learn, RATED, n=10)
    assert len(recs) == 10 and [x['title'] for x in recs] == want.title.tolist()
    assert not {x['title'] for x in recs} & set(RATED) and {x['because'] for x in recs} <= {'Movie 3 (1990)', 'Movie 7 (1990)'}
    assert [x['score'] for x in recs] == pytest.approx(want.score.tolist())
    assert len(client.post('/api/recommend', json={'ratings': RATED, 'n': 4}).json()['recommendations']) == 4

def test_recommendations_fragment(client, learn):
    "The page's own endpoint: the same body, the top 10 as an HTML table; errors as one HTML line."
    r = client.post('/recommendations', json={'ratings': RATED})
    assert r.status_code == 200 and r.text.startswith('<table>') and r.text.count('class="rec"') == 10
    assert 'because you liked' in r.text and _titles(r.text, 'rec') == recommend_for(learn, RATED, n=10).title.tolist()
    r = client.post('/recommendations', json={'ratings': {'Movie 9 (1990)': 1}})  # nothing liked: no reason, and the page says why
    assert 'Nothing you rated has 4 stars or more' in r.text and 'because you liked' not in r.text and r.text.count('class="rec"') == 10
    r = client.post('/recommendations', json={'ratings': {'Movie 3': 5}})
    assert r.status_code == 400 and r.text.startswith('<p class="error">') and "Did you mean" in r.text

@pytest.mark.parametrize('body, problem', [
    (b'{"ratings": {"Movie 3 (1990)": 5}', 'not valid JSON'),
    (b'', 'the request body is empty'), (b'  \n', 'the request body is empty'),
    (b'\xff\xfe\x00garbage', 'not valid JSON'),
    (b'[' * 100_000, 'not valid JSON (RecursionError'),
    (b'{"ratings": {"Movie 3 (1990)": NaN}}', 'stars must be numbers from 1 to 5'),
    ([['Movie 3 (1990)', 5]], 'must be a JSON object, got an array'), ('Movie 3 (1990)', 'must be a JSON object, got a string'),
    ({}, '"ratings" is missing'), ({'rating': {'Movie 3 (1990)': 5}}, "unknown field 'rating'"),
    ({'ratings': [['Movie 3 (1990)', 5]]}, '"ratings" must be an object {title: stars}, got an array'),
    ({'ratings': 'Movie 3 (1990)'}, '"ratings" must be an object'), ({'ratings': None}, 'got null'),
    ({'ratings': {}}, 'ratings is empty'),
    ({'ratings': {'Movie 3': 5}}, "'Movie 3' is not a movie the model was trained on. Did you mean 'Movie 3 (1990)'"),
    ({'ratings': {'Movie 3 (1990)': 6}}, 'stars must be numbers from 1 to 5'), ({'ratings': {'Movie 3 (1990)': 0}}, 'from 1 to 5'),
    ({'ratings': {'Movie 3 (1990)': -1}}, 'from 1 to 5'), ({'ratings': {'Movie 3 (1990)': 1e400}}, 'from 1 to 5'),
    ({'ratings': {'Movie 3 (1990)': '5'}}, "is rated '5'"), ({'ratings': {'Movie 3 (1990)': True}}, 'is rated True'),
    ({'ratings': {'Movie 3 (1990)': None}}, 'is rated None'), ({'ratings': {'Movie 3 (1990)': [5]}}, 'from 1 to 5'),
    ({'ratings': {'Movie 3 (1990)': 5}, 'n': 0}, 'n must be an integer from 1 to 100, got 0'),
    ({'ratings': {'Movie 3 (1990)': 5}, 'n': 101}, 'got 101'), ({'ratings': {'Movie 3 (1990)': 5}, 'n': '10'}, "got '10'"),
    ({'ratings': {'Movie 3 (1990)': 5}, 'n': True}, 'got True'), ({'ratings': {'Movie 3 (1990)': 5}, 'n': 2.5}, 'got 2.5'),
    ({'ratings': {'Movie\n3': 5}}, 'is not a movie the model was trained on'),  # a newline in a title: still one line
])
def test_bad_requests_are_400_one_line(client, body, problem):
    r = client.post('/api/recommend', content=body if isinstance(body, bytes) else json.dumps(body))
    assert problem in _one_line_error(r, 400)

@pytest.mark.parametrize('exc', [KeyError("'X' is not a movie\nthe model knows."), ValueError('bad\nstars'), TypeError('not\na dict')])
def test_every_library_error_is_a_400_on_one_line(learn, exc, monkeypatch):
    def fold(*a, **k): raise exc
    monkeypatch.setattr(ms, 'recommend_for', fold)
    with TestClient(app(learn)) as c:
        msg = _one_line_error(c.post('/api/recommend', json={'ratings': RATED}), 400)
    assert msg == ' '.join(exc.args[0].split())

def test_too_many_ratings(client, monkeypatch):
    monkeypatch.setattr(movierecs.recommendation.light, 'MAX_RATINGS', 2)
    r = client.post('/api/recommend', json={'ratings': {f'Movie {i} (1990)': 3 for i in (1, 2, 3)}})
    assert '3 ratings are more than 2' in _one_line_error(r, 400)

def test_the_body_cap_fits_the_most_ratings_the_library_takes():
    # 5,000 ratings of 100 bytes: a title of ~80 characters, its stars, the JSON
    assert MAX_BODY >= movierecs.recommendation.foldin.MAX_RATINGS * 100

def test_oversized_bodies_are_413(client):
    r = client.post('/api/recommend', content=b'{"ratings": {"' + b'x' * MAX_BODY + b'": 5}}')
    assert 'over 524,288 bytes' in _one_line_error(r, 413)
    def chunks(k=64 * 1024):  # no Content-Length: sent chunked, counted while it is read
        yield b'{"ratings": {"'
        for _ in range(MAX_BODY // k + 1): yield b'x' * k
        yield b'": 5}}'
    assert 'over 524,288 bytes' in _one_line_error(client.post('/api/recommend', content=chunks()), 413)
    def small(): yield b'{"ratings": '; yield json.dumps(RATED).encode() + b'}'
    assert client.post('/api/recommend', content=small()).status_code == 200  # a chunked body under the cap is fine
    r = client.post('/recommendations', content=b'x' * (MAX_BODY + 1))
    assert r.status_code == 413 and r.text.startswith('<p class="error">the request body is over')

def _call(web, headers, messages, method='POST', path='/api/recommend'):
    "Call the ASGI app with `headers` and a body given as a list of receive() messages; (status, body, receive() calls made)."
    calls, out = [], []
    async def receive():
        calls.append(1)
        if len(calls) > len(messages): raise AssertionError('read past the end of the body')
        return messages[len(calls) - 1]
    async def send(msg): out.append(msg)
    scope = dict(type='http', method=method, path=path, raw_path=path.encode(), query_string=b'', root_path='', scheme='http',
                 http_version='1.1', headers=[(k.encode(), v.encode()) for k, v in headers.items()], client=('t', 1), server=('t', 80))
    asyncio.run(web(scope, receive, send))
    return out[0]['status'], b''.join(m.get('body', b'') for m in out[1:]), len(calls)

def test_a_too_long_content_length_is_refused_before_reading(learn):
    web = app(learn)
    status, body, reads = _call(web, {'content-length': str(10**9), 'content-type': 'application/json'}, [])
    assert status == 413 and reads == 0 and json.loads(body)['error'].startswith('the request body is over')
    status, body, reads = _call(web, {'content-length': '9' * 5000}, [])  # more digits than int() takes
    assert status == 413 and reads == 0
    status, body, reads = _call(web, {'content-length': 'lots'}, [])
    assert status == 400 and reads == 0 and "Content-Length 'lots' is not a number" in json.loads(body)['error']
    k = 64 * 1024  # chunked: reading stops at the first chunk past the cap
    status, body, reads = _call(web, {}, [{'type': 'http.request', 'body': b'x' * k, 'more_body': True}] * 100)
    assert status == 413 and reads == MAX_BODY // k + 1

def test_wrong_method_and_unknown_path(client):
    r = client.get('/api/recommend')
    assert _one_line_error(r, 405) == 'GET /api/recommend is not allowed: use POST' and r.headers['allow'] == 'POST'
    assert 'use GET' in _one_line_error(client.post('/api/similar', json={}), 405)
    assert 'the API has POST /api/recommend' in _one_line_error(client.get('/api/recomend'), 404)
    assert _one_line_error(client.delete('/api/titles'), 405)
    r = client.get('/nowhere')
    assert r.status_code == 404 and 'no page at /nowhere' in r.text and r.headers['content-type'].startswith('text/html')
    assert client.post('/movie', data={'title': 'x'}).status_code == 405

def test_similar(client, learn):
    r = client.get('/api/similar', params={'title': 'Movie 3 (1990)', 'n': 4})
    want = similar_movies(learn, 'Movie 3 (1990)', n=4)
    assert r.status_code == 200 and r.json()['title'] == 'Movie 3 (1990)'
    assert [x['title'] for x in r.json()['similar']] == want.index.tolist()
    assert [x['cosine'] for x in r.json()['similar']] == pytest.approx(want.tolist())
    assert len(client.get('/api/similar', params={'title': 'Movie 3 (1990)'}).json()['similar']) == 10
    assert "Did you mean 'Movie 3 (1990)'" in _one_line_error(client.get('/api/similar', params={'title': 'Movie 3'}), 404)
    assert 'give a title' in _one_line_error(client.get('/api/similar'), 400)
    for n in ('0', '101', 'ten', '-1', '2.5'):
        assert 'n must be an integer from 1 to 100' in _one_line_error(client.get('/api/similar',
                                                                                  params={'title': 'Movie 3 (1990)', 'n': n}), 400)

def test_titles(client):
    found = client.get('/api/titles', params={'q': 'MOVIE 1'}).json()['titles']
    assert 0 < len(found) <= ms.N_MATCHES and all('movie 1' in t.lower() for t in found)
    assert client.get('/api/titles', params={'q': 'movie'}).json()['titles'].__len__() == ms.N_MATCHES
    assert client.get('/api/titles', params={'q': ' '}).json() == {'titles': []}
    assert client.get('/api/titles', params={'q': 'script>'}).json() == {'titles': [EVIL]}
    for path, params, problem in (('/api/titles', {'q': 'movie', 'limit': 3}, "unknown query parameter 'limit': /api/titles takes q"),
                                  ('/api/similar', {'title': 'Movie 3 (1990)', 'N': 3},
                                   "unknown query parameter 'N': /api/similar takes title and, optionally, n")):
        assert _one_line_error(client.get(path, params=params), 400) == problem  # as a POST body's unknown field: never ignored

def test_search_prefers_titles_that_start_with_the_query_then_popular_ones(synth):
    counts = synth.movie.value_counts()  # most-rated first
    names = {counts.index[0]: 'Lone Star (1996)', counts.index[1]: 'Star Wars (1977)', counts.index[2]: 'Stargate (1994)'}
    r = synth.assign(title=[names.get(m, t) for m, t in zip(synth.movie, synth.title)])
    learn = movierecs.train_model('mult_dae', epochs=1, ratings=r, progress=False)
    with TestClient(app(learn)) as c:
        assert c.get('/api/titles', params={'q': 'star'}).json()['titles'] == ['Star Wars (1977)', 'Stargate (1994)', 'Lone Star (1996)']

def test_index_page_works_offline(client):
    r = client.get('/')
    assert r.status_code == 200 and r.headers['content-type'].startswith('text/html')
    for needle in ('id="q"', 'id="matches"', 'id="rated"', 'id="recs"', '<script src="/static/app.js"></script>',
                   'data-stars="[1, 2, 3, 4, 5]"'):
        assert needle in r.text
    assert 'http://' not in r.text and 'https://' not in r.text  # no CDN: every script and style is served here
    assert "default-src 'self'" in r.headers['content-security-policy'] and r.headers['x-content-type-options'] == 'nosniff'
    js, css = client.get('/static/app.js'), client.get('/static/app.css')
    assert js.status_code == css.status_code == 200 and js.headers['content-type'].startswith('text/javascript') and 'fetch(' in js.text
    assert 'innerHTML' not in js.text.replace('.innerHTML = html', '')  # only the server's escaped HTML is inserted as HTML
    r = client.get('/', params={'q': 'movie 3'})  # the search also works without the script: the form GETs /?q=
    assert 'data-title="Movie 3 (1990)"' in r.text and 'value="movie 3"' in r.text

def test_search_fragment(client):
    r = client.get('/search', params={'q': 'movie 3'})
    assert r.status_code == 200 and r.text.startswith('<ul class="titles">') and '<html' not in r.text
    assert 'data-title="Movie 3 (1990)"' in r.text and r.text.count('data-stars="5"') == r.text.count('<li')
    assert 'No title contains' in client.get('/search', params={'q': 'zzz'}).text and client.get('/search').text == ''

def test_movie_page(client, learn, rater):
    r = client.get('/movie', params={'title': 'Movie 3 (1990)'})
    assert r.status_code == 200 and '<h1>Movie 3 (1990)</h1>' in r.text and r.text.count('class="similar"') == 10
    assert _titles(r.text, 'similar') == similar_movies(learn, 'Movie 3 (1990)', n=10).index.tolist()
    assert f"Learned bias (dot_bias): {movierecs.movie_bias(rater)['Movie 3 (1990)']:+.3f}" in r.text
    typed = client.get('/movie', params={'title': ' Movie 3 (1990) '})  # as typed: the same page, spelled as the model spells it
    assert typed.status_code == 200 and typed.text == r.text
    assert client.get('/api/similar', params={'title': 'Movie 3 (1990) '}).json()['title'] == 'Movie 3 (1990)'
    r = client.get('/movie', params={'title': 'Movie 3'})
    assert r.status_code == 404 and 'Did you mean' in r.text and 'Traceback' not in r.text
    r = client.get('/movie')
    assert r.status_code == 400 and 'give a title' in r.text

def test_map(client, learn, rater):
    r = client.get('/map')
    assert r.status_code == 200 and '<img src="/map.png"' in r.text
    r = client.get('/map.png')
    assert r.status_code == 200 and r.headers['content-type'] == 'image/png' and r.content[:8] == b'\x89PNG\r\n\x1a\n'
    assert _is_the_map_of(r.content, rater) and not _is_the_map_of(r.content, learn)  # the rating model's map, as the page says

def test_without_a_rater(learn):
    "A ranking model alone: no bias to show, the map of its own movie factors."
    with TestClient(app(learn)) as c:
        assert 'mult_dae learns no bias per movie' in c.get('/movie', params={'title': 'Movie 3 (1990)'}).text
        assert _is_the_map_of(c.get('/map.png').content, learn) and c.post('/api/recommend', json={'ratings': RATED}).status_code == 200

def test_titles_are_escaped_everywhere(client):
    for r in (client.get('/', params={'q': 'script'}), client.get('/search', params={'q': 'script'}),
              client.get('/movie', params={'title': EVIL}),
              client.post('/recommendations', json={'ratings': {EVIL: 5}}),  # as the reason
              client.post('/recommendations', json={'ratings': RATED, 'n': 100}),  # as a recommendation
              client.get('/movie', params={'title': EVIL + 'x'}), client.get('/nowhere' + EVIL)):  # in error messages
        assert EVIL not in r.text and ESCAPED in r.text, r.url
    assert client.post('/api/recommend', json={'ratings': {EVIL: 5}}).status_code == 200  # JSON carries it as a string

def test_stars_from_the_rating_model(learn, rater, monkeypatch):
    "The rating model is passed as `stars=`, and the page shows whatever columns come back."
    seen = {}
    def fold(learn_, ratings, n=10, stars=None):
        seen['stars'] = stars
        return pd.DataFrame({'title': ['Movie 1 (1990)'], 'score': [1.5], 'stars': [4.25], 'because': ['Movie 3 (1990)']})
    monkeypatch.setattr(ms, 'recommend_for', fold)
    with TestClient(app(learn, rater)) as c:
        assert c.post('/api/recommend', json={'ratings': RATED}).json()['recommendations'] == [
            {'title': 'Movie 1 (1990)', 'score': 1.5, 'stars': 4.25, 'because': 'Movie 3 (1990)'}]
        html = c.post('/recommendations', json={'ratings': RATED}).text
    assert seen['stars'] is rater and '<th class="num">predicted stars</th>' in html and '4.2 ★' in html and '100%' in html
    assert '<th class="num">match</th>' in html

def test_startup_pays_for_the_first_fold_in(learn, monkeypatch):
    "The first fold-in's one-off work (a rating model calibrates its penalty) happens when the app is built, not on a visitor's request."
    calls = []
    def fold(learn_, ratings, n=10, stars=None):
        calls.append((ratings, n))
        return recommend_for(learn_, ratings, n=n)
    monkeypatch.setattr(ms, 'recommend_for', fold)
    app(learn)
    assert len(calls) == 1 and calls[0][1] == 1

def test_an_unexpected_error_is_a_500_without_details(learn, monkeypatch):
    def broken(*a, **k): raise RuntimeError('secret internals\nFile "x.py", line 1')
    web = app(learn)
    monkeypatch.setattr(ms, 'recommend_for', broken)
    with TestClient(web, raise_server_exceptions=False) as c:
        msg = _one_line_error(c.post('/api/recommend', json={'ratings': RATED}), 500)
        assert msg == 'internal error (RuntimeError); the server log has the details'
        r = c.post('/recommendations', json={'ratings': RATED})
        assert r.status_code == 500 and 'secret' not in r.text and 'Traceback' not in r.text

def test_nothing_is_written(learn, rater, tmp_path, monkeypatch):
    "Neither startup nor any request writes a file: no session key, no upload, no cache."
    for var in ('HOME', 'XDG_CACHE_HOME', 'MOVIERECS_CACHE', 'TMPDIR', 'MPLCONFIGDIR'): monkeypatch.setenv(var, str(tmp_path))
    monkeypatch.chdir(tmp_path)
    with TestClient(app(learn, rater)) as c:
        for r in (c.get('/'), c.get('/search', params={'q': 'movie'}), c.get('/movie', params={'title': 'Movie 3 (1990)'}), c.get('/map'),
                  c.get('/map.png'), c.post('/api/recommend', json={'ratings': RATED}), c.post('/recommendations', json={'ratings': RATED}),
                  c.get('/api/similar', params={'title': 'Movie 3 (1990)'}), c.post('/api/recommend', content=b'x' * (MAX_BODY + 1)),
                  c.post('/api/recommend', files={'f': ('a.txt', b'data')}), c.post('/recommendations', data={'ratings': 'x'})):
            assert r.status_code < 500
    assert list(tmp_path.iterdir()) == []

def test_a_real_server_on_a_loopback_port(learn, rater):
    "uvicorn on a free port (bound first, as `movierecs serve` does): the page, the API and the cap over HTTP."
    import httpx
    base, stop = ms.background(learn, rater)
    try:
        assert 'What to watch next' in httpx.get(base + '/').text
        recs = httpx.post(base + '/api/recommend', json={'ratings': RATED}).json()['recommendations']
        assert [r['title'] for r in recs] == recommend_for(learn, RATED, n=10).title.tolist()
        r = httpx.post(base + '/api/recommend', content=b'x' * (2 * MAX_BODY))
        assert r.status_code == 413 and r.json()['error'].startswith('the request body is over')
    finally: stop()

@pytest.fixture(scope='module')
def saved(learn, rater, tmp_path_factory):
    d = tmp_path_factory.mktemp('serve')
    return str(movierecs.save(learn, d/'ranking')), str(movierecs.save(rater, d/'rating'))

def test_serve_command(saved, learn, rater, monkeypatch, capsys):
    "`movierecs serve --model DIR`: a ranking model recommends beside the default rating model; a rating model plays both parts."
    calls = []
    class Server:  # what the command serves: the app built, once the 'preparing' page has made way for it
        def __init__(self, web): self.web = web
        def run(self, sockets):
            self.web.thread.join(120)
            calls.append((*self.web.app, sockets[0].getsockname()))
    monkeypatch.setattr(ms, 'server', Server)
    monkeypatch.setattr(ms, 'app', lambda learn, rater, nexter=None: (learn, rater))
    defaults = {'ranking': learn, 'rating': rater, 'next': None}
    monkeypatch.setattr(movierecs.app.cli, 'default_learner', lambda by='ranking': defaults[by])
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
    main(['serve', '--port', str(port), '--model', saved[0]])
    got, by, addr = calls[-1]
    assert got.model_spec['model'] == 'mult_dae' and by is rater and addr == ('127.0.0.1', port)
    assert f'serving on http://127.0.0.1:{port}/' in capsys.readouterr().out
    main(['serve', '--port', str(port), '--model', saved[1]])
    got, by, _ = calls[-1]
    assert got.model_spec['model'] == 'dot_bias' and by is got
    main(['serve', '--port', str(port)])
    assert calls[-1][:2] == (learn, rater)
    defaults['rating'] = movierecs.train_model('dot_bias', epochs=1, ratings=movierecs.synthetic_ratings(n_movies=40, seed=3),
                                               progress=False)
    main(['serve', '--port', str(port), '--model', saved[0]])  # the default rating model knows other titles: served without it
    assert calls[-1][1] is None and 'trained on other titles than the default rating model' in capsys.readouterr().err

def test_the_page_says_it_is_preparing_until_the_models_are_ready(learn, rater):
    "Every path answers 503 'preparing' (reloading itself, Retry-After) while the models load; then the page and API work."
    import threading
    ready = threading.Event()
    def load(): ready.wait(60); return app(learn, rater)
    web = ms.Preparing(load).start()
    with TestClient(web) as c:
        r = c.get('/')
        assert r.status_code == 503 and r.headers['retry-after'] == str(ms.RETRY) and 'Preparing the models' in r.text
        assert f'http-equiv="refresh" content="{ms.RETRY}"' in r.text
        r = c.post('/api/recommend', json={'ratings': RATED})
        assert r.status_code == 503 and r.json()['error'].startswith('Preparing the models')
        ready.set(); web.thread.join(60)
        assert c.get('/').status_code == 200 and 'What to watch next' in c.get('/').text
        assert [x['title'] for x in c.post('/api/recommend', json={'ratings': RATED}).json()['recommendations']] == \
            recommend_for(learn, RATED, n=10).title.tolist()

def test_models_that_cannot_load_are_an_error_page_and_the_commands_error():
    from movierecs.core.errors import ModelFileError
    failed = []
    web = ms.Preparing(lambda: (_ for _ in ()).throw(ModelFileError('No saved model at /x')), on_error=failed.append).start()
    web.thread.join(30)
    with TestClient(web) as c:
        r = c.get('/')
        assert r.status_code == 500 and 'could not prepare the models: No saved model at /x' in r.text and 'refresh' not in r.text
    assert [type(e) for e in failed] == [ModelFileError]

def test_ctrl_c_while_the_models_are_prepared_is_exit_130(monkeypatch, capsys):
    "The server stopped by Ctrl-C before the models were ready: exit 130 and 'movierecs: interrupted', as at any other moment."
    import threading
    never = threading.Event()
    monkeypatch.setattr(movierecs.app.cli, '_serve_app', lambda args: never.wait(30))
    class Server:  # uvicorn after a Ctrl-C: `run` returns
        def __init__(self, web): pass
        def run(self, sockets): pass
    monkeypatch.setattr(ms, 'server', Server)
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
    with pytest.raises(SystemExit) as e: main(['serve', '--port', str(port)])
    never.set()
    assert e.value.code == 130 and capsys.readouterr().err.strip().splitlines()[-1] == 'movierecs: interrupted'

def test_serve_command_errors_are_one_line(saved, capsys):
    with socket.socket() as busy:
        busy.bind(('127.0.0.1', 0)); busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(SystemExit) as e: main(['serve', '--port', str(port), '--model', '/nonexistent'])  # the port is checked first
    assert e.value.code == (f'movierecs: error: cannot listen on 127.0.0.1:{port}: Address already in use: '
                            f'another program is listening there; choose another --port')
    capsys.readouterr()
    for port in ('0', '65536'):
        with pytest.raises(SystemExit) as e: main(['serve', '--port', port])
        assert e.value.code == 2 and f'argument --port: must be at least 1 and at most 65,535, got {port}' in capsys.readouterr().err
    with pytest.raises(SystemExit) as e: main(['serve', '--port', 'x'])
    assert e.value.code == 2 and "argument --port: 'x' is not a port number" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e: main(['serve', '--host', 'no.such.host.invalid', '--port', '8000'])
    assert e.value.code.startswith('movierecs: error: cannot listen on no.such.host.invalid:8000') and '\n' not in e.value.code
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
    with pytest.raises(SystemExit) as e: main(['serve', '--port', str(port), '--model', '/nonexistent'])
    assert e.value.code.startswith('movierecs: error: No saved model at /nonexistent') and '\n' not in e.value.code
    listen('127.0.0.1', port).close()  # the port taken before loading is given back
    with pytest.raises(SystemExit) as e: main(['serve', '--help'])
    assert e.value.code == 0 and 'usage: movierecs serve' in capsys.readouterr().out


@pytest.mark.parametrize('n', ['\u00b2', '9' * 5000, '\u0665'])
def test_odd_digits_in_n_are_a_400(client, n):
    "'²' and Arabic digits pass str.isdigit, and int() refuses 5,000 digits: each is a plain 400, never a 500."
    r = client.get('/api/similar', params={'title': 'Movie 3 (1990)', 'n': n})
    assert r.status_code == 400 and 'n must be an integer from 1 to 100' in r.json()['error']

def test_a_title_twice_in_one_body_is_a_400(client):
    r = client.post('/api/recommend', content=b'{"ratings": {"Movie 3 (1990)": 5, "Movie 3 (1990)": 1}}',
                    headers={'content-type': 'application/json'})
    assert r.status_code == 400 and "'Movie 3 (1990)' appears twice" in r.json()['error']
    r = client.post('/api/recommend', json={'ratings': {'Movie 3 (1990)': 5, ' Movie 3 (1990) ': 1}})  # one movie, two spellings
    assert r.status_code == 400 and "'Movie 3 (1990)' is rated twice (5 and 1, as ' Movie 3 (1990) ')" in r.json()['error']

def test_a_rater_on_other_titles_is_refused_at_start(learn):
    other = movierecs.train_model('dot_bias', epochs=1, ratings=movierecs.synthetic_ratings(n_movies=40, seed=3), progress=False)
    with pytest.raises(ValueError, match='trained on other titles'): app(learn, other)

def test_serve_refuses_an_empty_host(saved, capsys):
    with pytest.raises(SystemExit) as e: main(['serve', '--host', ' ', '--model', saved[1]])
    err = capsys.readouterr().err
    assert e.value.code == 2 and 'argument --host: is empty' in err and err.strip().count('\n') == 0


def test_serve_command_with_a_next_item_model(saved, learn, rater, nexter, cyc, seed, tmp_path, monkeypatch, capsys):
    ("`movierecs serve --model DIR` of a next-item model: it gives the 'next' list, the default models recommend and rate; one trained "
     "on other titles is refused before the page serves.")
    built = []
    class Server:
        def __init__(self, web): self.web = web
        def run(self, sockets): self.web.thread.join(120); built.append(self.web.app)
    monkeypatch.setattr(ms, 'server', Server)
    monkeypatch.setattr(ms, 'app', lambda learn, rater, nexter=None: (learn, rater, nexter))
    defaults = {'ranking': learn, 'rating': rater}
    monkeypatch.setattr(movierecs.app.cli, 'default_learner', lambda by='ranking': defaults[by])
    monkeypatch.setattr(movierecs.app.defaults, 'default_vocabs', lambda by='ranking': {k: list(v) for k, v in learn.dls.classes.items()})
    def free_port():
        with socket.socket() as s: s.bind(('127.0.0.1', 0)); return str(s.getsockname()[1])
    main(['serve', '--port', free_port(), '--model', str(movierecs.save(nexter, tmp_path/'next'))])
    (by, stars, nx), = built[:1]
    assert by is learn and stars is rater and nx.model_spec['model'] == 'sasrec' and nx.dls.classes == nexter.dls.classes
    other = movierecs.train_model('sasrec', epochs=1, seed=seed, ratings=cyc, progress=False, n_factors=8, max_len=10)
    capsys.readouterr()
    with pytest.raises(SystemExit) as e: main(['serve', '--port', free_port(), '--model', str(movierecs.save(other, tmp_path/'other'))])
    assert 'is a next-item model trained on other titles than the default models' in e.value.code
    assert len(built) == 1 and capsys.readouterr().out == ''  # refused before the port was taken: nothing served, nothing said

@pytest.fixture(scope='module')
def nexter(frame, seed):
    "SASRec on the same titles (a few epochs: the answers are checked against `recommend_next`, not for quality)."
    return movierecs.train_model('sasrec', epochs=3, seed=seed, ratings=frame, progress=False, n_factors=16, max_len=20)

def test_watch_next_list_and_api(learn, rater, nexter):
    "The page has a 'Watch next' list when a next-item model is served; /api/next and /next answer recommend_next's list."
    history = ['Movie 9 (1990)', 'Movie 3 (1990)', EVIL]
    with TestClient(app(learn, rater, nexter)) as c:
        assert 'Watch next' in c.get('/').text
        want = movierecs.recommend_next(nexter, history, n=10)
        got = c.post('/api/next', json={'history': history}).json()['next']
        assert [r['title'] for r in got] == want.title.tolist()
        assert [r['score'] for r in got] == pytest.approx(want.score.tolist(), rel=1e-6)
        html = c.post('/next', json={'history': history, 'n': 5}).text
        assert _titles(html, 'next') == want.title.tolist()[:5] and '<script>' not in html
        for body, status, problem in (
                ({'history': []}, 400, '"history" is empty: give at least one title watched, e.g. {"history": ["Star Wars (1977)"]}'),
                ({'history': ['Movie 3 (1990)', None]}, 400, 'every title of "history" must be a string, got null at place 2'),
                ({'history': [' Movie 3 (1990) ', 'Movie 9 (1990)']}, 200, None),
                ({'history': ['Movie 3 (1990)', 'Movie 3 (1990)']}, 400, "'Movie 3 (1990)' is in the history twice"),
                ({'history': ['Movie 3']}, 400, "'Movie 3' is not a movie the model was trained on. Did you mean"),
                ({'history': 'Movie 3 (1990)'}, 400, '"history" must be an array of titles'),
                ({'history': [3]}, 400, 'every title of "history" must be a string'),
                ({'history': ['Movie 3 (1990)'] * 5001}, 400, 'more than 5,000'),
                ({'ratings': {}}, 400, 'unknown field'),
                ({'history': ['Movie 3 (1990)'], 'n': 0}, 400, 'n must be an integer from 1')):
            if status == 200: assert c.post('/api/next', json=body).status_code == 200; continue
            assert problem in _one_line_error(c.post('/api/next', json=body), status), body
        for raw, problem in ((b'{"history": ["Movie 3 (1990)"], "n": 3, "n": 4}', "'n' appears twice in one JSON object: give each field"),
                             (b'{"history": ["Movie 3 (1990)"], "n": ' + b'9' * 5000 + b'}', 'a number of 5,000 digits: no field'),
                             (b'{"history": ["' + b'x' * 100000 + b'"]}', "'xxxx")):
            assert problem in _one_line_error(c.post('/api/next', content=raw), 400)
            assert len(_one_line_error(c.post('/api/next', content=raw), 400)) < 400
    with TestClient(app(learn, rater)) as c:
        assert 'Watch next' not in c.get('/').text
        assert 'no next-item model' in _one_line_error(c.post('/api/next', json={'history': ['Movie 3 (1990)']}), 404)
    with pytest.raises(TypeError, match="nexter must be a next-item model"): app(learn, rater, rater)
