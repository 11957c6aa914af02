"The web page and its JSON API: rate a few movies, see the top 10 update; a page per movie; fastbook's PCA map."
import asyncio, errno, json, math, secrets, socket, unicodedata
from http import HTTPStatus
from pathlib import Path
from urllib.parse import parse_qsl, quote
from fasthtml.common import (A, Body, Button, Div, FastHTML, Form, H1, H2, Head, Header, Html, Img, Input, Label, Li, Link, Main,
                             Meta, Nav, Noscript, P, Script, Section, Span, Table, Tbody, Td, Th, Thead, Title, Tr, Ul, to_xml)
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from ..models.parts import item_label, rated_pairs, title_index, vocab
from ..recommendation.analysis import movie_bias, pca_map, similar_movies
from ..engine.feedback import RELEVANT
from ..core.checks import shown
from ..core.files import png_bytes
from ..recommendation.foldin import MAX_RATINGS, star_range, recommend_for
from ..recommendation.nextitem import MAX_HISTORY, recommend_next
__all__ = ['MAX_BODY', 'MAX_N', 'N_MATCHES', 'RETRY', 'app', 'Preparing', 'listen', 'url', 'server', 'serve', 'background']

MAX_BODY = 512 * 1024  # bytes of a request body: MAX_RATINGS (5,000) ratings of ~100 bytes each; every ML-100k title rated is 54 KB

MAX_N = 100  # the most recommendations or similar movies one request may ask for

N_MATCHES = 20  # titles the search offers at a time

class _Bad(Exception):
    "A request the server refuses: its status and a one-line reason."
    def __init__(self, status, msg): super().__init__(msg); self.status = status

def _one_line(msg, limit=1000):
    msg = ' '.join(str(msg).split())
    return msg if len(msg) <= limit else msg[:limit-3] + '...'

def _page(title, *content, **body_kw):
    "A page of the site: its head (stylesheet, icon), the navigation, `content`."
    return Html(Head(Meta(charset='utf-8'), Meta(name='viewport', content='width=device-width, initial-scale=1'),
                     Title(f'{title} · movierecs'), Link(rel='stylesheet', href='/static/app.css'),
                     Link(rel='icon', href='/static/icon.svg', type='image/svg+xml')),
                Body(Header(Nav(A('Recommendations', href='/'), A('Map', href='/map'))), Main(*content), **body_kw))

def _error(path, status, msg, headers=None, page=False):
    "The error response of every path: one line of JSON under /api/; elsewhere a page (`page`: a page was asked for) or a snippet."
    msg = _one_line(msg)
    if path.startswith('/api/'): return JSONResponse({'error': msg}, status_code=status, headers=headers)
    if page: return HTMLResponse(to_xml(_page('Error', H1(f'Error {status}'), P(msg, cls='error'),
                                              P(A('Back to your recommendations', href='/')))), status_code=status, headers=headers)
    return HTMLResponse(to_xml(P(msg, cls='error')), status_code=status, headers=headers)

_SECURITY = [(b'content-security-policy', b"default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"),
             (b'x-content-type-options', b'nosniff'), (b'referrer-policy', b'same-origin')]

GRACE = 3  # seconds Ctrl-C waits for open requests before the server stops anyway (a stalled client cannot hold it)

class _Guard:
    ("ASGI middleware: caps request bodies at `cap` bytes (413, before any of it is read when Content-Length says so), "
     "gives only POST a body, adds security headers.")
    def __init__(self, app, cap=MAX_BODY): self.app, self.cap = app, cap

    async def __call__(self, scope, receive, send):
        if scope['type'] != 'http': return await self.app(scope, receive, send)
        started = False
        async def send_(msg):
            nonlocal started
            if msg['type'] == 'http.response.start':
                started, msg = True, {**msg, 'headers': [*msg.get('headers', []), *_SECURITY]}
            await send(msg)
        try: await self._guarded(scope, receive, send_)
        except asyncio.CancelledError:  # the server stops (Ctrl-C) while this request is open: a 503, not a traceback
            if not started:
                try: await _error(scope.get('path', ''), 503, 'the server is stopping')(scope, receive, send_)
                except Exception: pass  # the client is gone too

    async def _guarded(self, scope, receive, send):
        "The request's checks; `send` adds the security headers."
        path = scope.get('path', '')
        async def refuse(status, msg): await _error(path, status, msg, page=scope['method'] in ('GET', 'HEAD'))(scope, receive, send)
        too_big = f'the request body is over {self.cap:,} bytes (the limit, enough for {MAX_RATINGS:,} ratings)'
        keys = [k for k, _ in parse_qsl(scope.get('query_string', b'').decode('latin-1'), keep_blank_values=True)]
        twice = next((k for k in keys if keys.count(k) > 1), None)
        if twice is not None: return await refuse(400, f'the query parameter {twice!r} is given more than once: give it once')
        length = dict(scope['headers']).get(b'content-length')
        if length is not None:
            if not length.strip().isdigit(): return await refuse(400, f'Content-Length {length.decode("latin-1")!r} '
                                                                 'is not a number of bytes')
            if len(length.strip()) > 15 or int(length) > self.cap: return await refuse(413, too_big)
        if scope['method'] != 'POST':  # no other route reads a body: it is never read, and the handlers see none
            scope = {**scope, 'headers': [(k, v) for k, v in scope['headers'] if k not in (b'content-type', b'content-length')]}
            body = b''
        else:
            chunks, size = [], 0
            while True:  # a chunked body, or one longer than its Content-Length, is counted as it arrives
                msg = await receive()
                if msg['type'] == 'http.disconnect': return
                chunks.append(msg.get('body', b'')); size += len(chunks[-1])
                if size > self.cap: return await refuse(413, too_big)
                if not msg.get('more_body'): break
            body = b''.join(chunks)
        replayed = False
        async def replay():
            nonlocal replayed
            if replayed: return await receive()
            replayed = True
            return {'type': 'http.request', 'body': body, 'more_body': False}
        await self.app(scope, replay, send)

def _phrase(status):
    try: return HTTPStatus(status).phrase
    except ValueError: return None

def _json_type(v):
    return {dict: 'an object', list: 'an array', str: 'a string', bool: 'a boolean', type(None): 'null'}.get(type(v), 'a number')

def _int(v, name, default, query=False):
    "`v`, a JSON value (or, with `query`, a query-string value), as an integer from 1 to MAX_N."
    if v is None: return default
    if query and v.strip().isascii() and v.strip().isdigit() and len(v.strip()) <= 6: v = int(v)
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_N:
        raise _Bad(400, f'{name} must be an integer from 1 to {MAX_N}, got {v!r}')
    return v

async def _read_body(req, key, example):
    "The `key` field and n of a POSTed JSON object {key: ..., \"n\": 10}; _Bad naming the problem (and `example`) otherwise."
    body = await req.body()
    if not body.strip(): raise _Bad(400, f'the request body is empty: {example}')
    try: data = json.loads(body, object_pairs_hook=_no_duplicates, parse_int=_json_int)
    except _Bad: raise
    except (ValueError, RecursionError) as e: raise _Bad(400, f'the request body is not valid JSON ({type(e).__name__}: {e}): {example}')
    if not isinstance(data, dict): raise _Bad(400, f'the request body must be a JSON object, got {_json_type(data)}: {example}')
    extra = sorted(set(data) - {key, 'n'})
    if extra: raise _Bad(400, f'unknown field {extra[0]!r}: the body takes "{key}" and, optionally, "n"')
    if key not in data: raise _Bad(400, f'"{key}" is missing: {example}')
    return data[key], _int(data.get('n'), 'n', 10)

async def _read_request(req):
    "The {title: stars} and n of a POSTed body {\"ratings\": {title: stars}, \"n\": 10}; _Bad naming the problem otherwise."
    ratings, n = await _read_body(req, 'ratings', 'send JSON like {"ratings": {"Star Wars (1977)": 5}}')
    if not isinstance(ratings, dict): raise _Bad(400, f'"ratings" must be an object {{title: stars}}, got {_json_type(ratings)}')
    return ratings, n

async def _read_history(req):
    "The titles (oldest first) and n of a POSTed body {\"history\": [titles], \"n\": 10}; _Bad naming the problem otherwise."
    history, n = await _read_body(req, 'history', 'send JSON like {"history": ["Star Wars (1977)", "Alien (1979)"]}, oldest first')
    if not isinstance(history, list): raise _Bad(400, f'"history" must be an array of titles, oldest first, got {_json_type(history)}')
    if len(history) > MAX_HISTORY: raise _Bad(400, f'"history" has {len(history):,} titles, more than {MAX_HISTORY:,}')
    bad = next((k for k, t in enumerate(history) if not isinstance(t, str)), None)
    if bad is not None: raise _Bad(400, f'every title of "history" must be a string, got {_json_type(history[bad])} at place {bad + 1}')
    if not history: raise _Bad(400, '"history" is empty: give at least one title watched, e.g. {"history": ["Star Wars (1977)"]}')
    return history, n

def _no_duplicates(pairs):
    "A JSON object, refused when a key repeats: a title rated twice is ambiguous, not 'the last one wins'."
    seen = {}
    for k, v in pairs:
        if k in seen: raise _Bad(400, f'{shown(k)} appears twice in one JSON object: give each field, and rate each movie, once')
        seen[k] = v
    return seen

def _json_int(s):
    "A JSON integer (json.loads's parse_int): refused past 30 digits, where no field of the API has a use for it."
    if len(s.lstrip('-')) > 30: raise _Bad(400, f'the request body holds a number of {len(s.lstrip("-")):,} digits: no field takes one')
    return int(s)

def _library_error(e, status=400):
    "A library error (a bad title, star, n) as _Bad, its message kept."
    return _Bad(status, e.args[0] if isinstance(e, KeyError) and e.args else str(e))

def _fold(s):
    "`s` lower-cased without accents: what the search compares."
    return ''.join(c for c in unicodedata.normalize('NFKD', s.casefold()) if not unicodedata.combining(c))

def _model_name(learn): return (getattr(learn, 'model_spec', None) or {}).get('model') or type(learn.model).__name__

def _movie_url(title): return f'/movie?title={quote(title, safe="")}'

STATIC = Path(__file__).with_name('static')  # the page's stylesheet, script and icon: package data

def _asset(name): return (STATIC/name).read_text(encoding='utf-8')

CSS = _asset('app.css')

ICON = _asset('icon.svg')

# The page's behaviour: search as you type, rate with stars, the ratings kept in this browser (localStorage), the top 10
# fetched after every change. The server renders every title (escaped); this script only moves its HTML and sets text.
JS = _asset('app.js')

def app(learn, # A trained learner that recommends: a ranking model such as `default_learner()`, or a rating model
        rater=None, # A trained rating learner (e.g. `default_learner('rating')`): predicted stars, each movie's bias, the PCA map
        nexter=None # A trained next-item learner (e.g. `default_learner('next')`): what to watch next, the ratings' order the history
       ) -> FastHTML:
    "The web page and JSON API around already loaded learners; nothing is loaded, trained or written while it serves."
    if item_label(learn) != 'title': raise ValueError("serve needs a model whose items are titles, "
                                                      f"got one keyed by {item_label(learn)!r}.")
    titles = vocab(learn, 'movie')[1:]
    counts = {}
    for c in rated_pairs(learn)[:, 1].tolist(): counts[c] = counts.get(c, 0) + 1
    by_popularity = sorted(range(len(titles)), key=lambda i: (-counts.get(i + 1, 0), titles[i]))
    search_index = [(titles[i], _fold(titles[i])) for i in by_popularity]
    lo, hi = star_range(learn)
    star_values = list(range(math.ceil(lo), math.floor(hi) + 1))
    side = rater if rater is not None else learn
    try: bias = movie_bias(side).to_dict()
    except TypeError: bias = {}  # a model without biases (Mult-DAE)
    try: map_png = png_bytes(pca_map(side))
    except TypeError: map_png = None
    if rater is not None and rater is not learn and vocab(rater, 'movie') != vocab(learn, 'movie'):
        raise ValueError(f"rater ({_model_name(rater)}) was trained on other titles than learn ({_model_name(learn)}): "
                         f"give a rating model trained on the same ratings, or none.")
    if nexter is not None:
        if not hasattr(getattr(nexter, 'model', None), 'score_windows'):
            raise TypeError(f"nexter must be a next-item model's learner (e.g. default_learner('next')), got {_model_name(nexter)}.")
        if vocab(nexter, 'movie') != vocab(learn, 'movie'):
            raise ValueError(f"nexter ({_model_name(nexter)}) was trained on other titles than learn ({_model_name(learn)}).")
    stars_kw = {'stars': rater} if rater is not None and rater is not learn and hasattr(learn.model, 'score_rows') else {}
    about = (f'Recommendations from {_model_name(learn)}' +
             (f'; predicted stars, biases and the map from {_model_name(rater)}' if rater is not None and rater is not learn else '') +
             f'; {len(titles):,} movies.')

    def recommend(ratings, n):
        try: return recommend_for(learn, ratings, n=n, **stars_kw)
        except (KeyError, ValueError, TypeError) as e: raise _library_error(e) from None

    try: recommend({search_index[0][0]: hi}, 1)  # one-off costs of the first fold-in (the rating model's calibration) paid here
    except _Bad: pass

    def watch_next(history, n):
        if nexter is None: raise _Bad(404, 'this server has no next-item model: movierecs serve without --model serves the default one')
        try: return recommend_next(nexter, history, n=n)
        except (KeyError, ValueError, TypeError) as e: raise _library_error(e) from None

    def next_table(recs):
        top = float(recs['score'].max()) if len(recs) else 0.
        rows = [Tr(Td(i, cls='num'), Td(A(r['title'], href=_movie_url(r['title']))), Td(f"{math.exp(r['score'] - top):.0%}", cls='num'),
                   cls='next', data_title=r['title']) for i, r in enumerate(recs.to_dict('records'), 1)]
        return Table(Thead(Tr(Th('#', cls='num'), Th('title'), Th('match', cls='num'))), Tbody(*rows))

    def similar(title, n):
        "(the title as the model spells it, its `n` most similar movies); a 404 naming the closest titles when it is not there."
        try: return vocab(learn, 'movie')[title_index(learn, title)], similar_movies(learn, title, n=n)
        except KeyError as e: raise _library_error(e, 404) from None
        except (ValueError, TypeError) as e: raise _library_error(e) from None

    def matches(q):
        q = _fold(q.strip())
        if not q: return []
        first = [t for t, f in search_index if f.startswith(q)]
        return (first + [t for t, f in search_index if q in f and not f.startswith(q)])[:N_MATCHES]

    def stars_row(title, current=0):
        return Li(Span(A(title, href=_movie_url(title))),
                  Span(*[Button('★' if s <= current else '☆', type='button', cls='star', data_stars=s, title=f'{s} ★',
                                aria_label=f'{s} stars') for s in star_values], cls='stars'), data_title=title)

    def match_list(q):
        found = matches(q)
        if not found: return P(f'No title contains {q.strip()!r}.', cls='hint') if q.strip() else ''
        return Ul(*[stars_row(t) for t in found], cls='titles')

    def rec_table(recs, ratings):
        label, cols = recs.columns[0], sorted((c for c in recs.columns[1:] if c != 'because'), key=lambda c: c != 'stars')
        head = {'stars': 'predicted stars', 'score': 'match'}
        top = float(recs['score'].max()) if 'score' in recs.columns and len(recs) else 0.
        def cell(c, v):  # stars on the 1-5 scale people rate on; a ranking score as its chance relative to the first pick's
            if c == 'stars': return Td(f'{min(max(v, 1), 5):.1f} ★', cls='num')
            return Td(f'{math.exp(v - top):.0%}' if c == 'score' else f'{v:.2f}', cls='num')
        def why(b): return Td() if b is None else Td('because you liked ', A(b, href=_movie_url(b)), cls='why')
        rows = [Tr(Td(i, cls='num'), Td(A(r[label], href=_movie_url(r[label]))), *[cell(c, r[c]) for c in cols],
                   why(r.get('because')), cls='rec', data_title=r[label])
                for i, r in enumerate(recs.to_dict('records'), 1)]
        table = Table(Thead(Tr(Th('#', cls='num'), Th('title'), *[Th(head.get(c, c), cls='num') for c in cols], Th('why'))), Tbody(*rows))
        if any(s >= RELEVANT for s in ratings.values()): return table
        return Div(P(f'Nothing you rated has {RELEVANT} stars or more, so these are picks for anyone, minus what you rated; '
                     f'rate a movie you liked to make them yours.', cls='hint'), table)

    def fail(req, e): return _error(req.url.path, e.status, str(e))

    # -- the JSON API (plain Starlette routes: the body is read and checked here, nowhere else)
    async def api_recommend(req):
        try:
            ratings, n = await _read_request(req)
            recs = await run_in_threadpool(recommend, ratings, n)  # off the event loop: a slow request does not hold up the rest
        except _Bad as e: return fail(req, e)
        return JSONResponse({'recommendations': [{k: (v.item() if hasattr(v, 'item') else v) for k, v in r.items()}
                                                 for r in recs.to_dict('records')]})

    async def api_similar(req):
        q = req.query_params
        try:
            extra = sorted(set(q) - {'title', 'n'})
            if extra: raise _Bad(400, f'unknown query parameter {shown(extra[0])}: /api/similar takes title and, optionally, n')
            if not q.get('title'): raise _Bad(400, 'give a title: /api/similar?title=Star%20Wars%20(1977)&n=10')
            title, sim = similar(q['title'], _int(q.get('n'), 'n', 10, query=True))
        except _Bad as e: return fail(req, e)
        return JSONResponse({'title': title, 'similar': [{'title': t, 'cosine': float(c)} for t, c in sim.items()]})

    async def api_titles(req):
        extra = sorted(set(req.query_params) - {'q'})
        if extra: return fail(req, _Bad(400, f'unknown query parameter {shown(extra[0])}: /api/titles takes q'))
        return JSONResponse({'titles': matches(req.query_params.get('q', ''))})

    async def api_next(req):
        try:
            history, n = await _read_history(req)
            recs = await run_in_threadpool(watch_next, history, n)
        except _Bad as e: return fail(req, e)
        return JSONResponse({'next': [{'title': r['title'], 'score': float(r['score'])} for r in recs.to_dict('records')]})

    async def next_list(req):
        try:
            history, n = await _read_history(req)
            return HTMLResponse(to_xml(next_table(await run_in_threadpool(watch_next, history, n))))
        except _Bad as e: return fail(req, e)

    # -- the page's own fragment: the top 10 as HTML, from the same body as the API
    async def recommendations(req):
        try:
            ratings, n = await _read_request(req)
            return HTMLResponse(to_xml(rec_table(await run_in_threadpool(recommend, ratings, n), ratings)))
        except _Bad as e: return fail(req, e)

    async def map_png_(req):
        if map_png is None: return _error(req.url.path, 404, f'{_model_name(side)} has no movie factors to map')
        return Response(map_png, media_type='image/png', headers={'cache-control': 'no-cache'})

    def asset(text, media_type):
        async def get(req): return Response(text, media_type=media_type, headers={'cache-control': 'no-cache'})
        return get

    async def http_error(req, exc):
        path, status = req.url.path, exc.status_code
        if exc.detail != _phrase(status): msg = exc.detail  # raised with its reason
        elif status == 405:
            allowed = sorted({m.strip() for m in (exc.headers or {}).get('Allow', '').split(',')} - {'HEAD', ''})
            msg = f"{req.method} {path} is not allowed: use {' or '.join(allowed) or 'another method'}"
        elif status == 404:
            msg = (f'no such endpoint {req.method} {path}: the API has POST /api/recommend, POST /api/next, GET /api/similar, '
                   'GET /api/titles'
                   if path.startswith('/api/') else f'no page at {path}')
        else: msg = exc.detail
        return _error(path, status, msg, exc.headers, page=True)

    async def server_error(req, exc):
        msg = f'internal error ({type(exc).__name__}); the server log has the details'
        if req.url.path.startswith('/api/'): return _error(req.url.path, 500, msg)
        return HTMLResponse(to_xml(_page('Error', H1('Error 500'), P(msg, cls='error'))), status_code=500)

    routes = [Route('/api/recommend', api_recommend, methods=['POST']), Route('/api/similar', api_similar, methods=['GET']),
              Route('/api/titles', api_titles, methods=['GET']), Route('/recommendations', recommendations, methods=['POST']),
              Route('/api/next', api_next, methods=['POST']), Route('/next', next_list, methods=['POST']),
              Route('/map.png', map_png_, methods=['GET']), Route('/static/app.js', asset(JS, 'text/javascript'), methods=['GET']),
              Route('/static/app.css', asset(CSS, 'text/css'), methods=['GET']),
              *[Route(p, asset(ICON, 'image/svg+xml'), methods=['GET']) for p in ('/static/icon.svg', '/favicon.ico')]]
    web = FastHTML(routes=routes, default_hdrs=False, canonical=False, sess_cls=None, secret_key=secrets.token_hex(16),  # no .sesskey file
                   middleware=[Middleware(_Guard)],
                   exception_handlers={404: http_error, HTTPException: http_error, Exception: server_error})

    # -- the pages (FastHTML routes returning components: every title is escaped by `to_xml`)
    @web.get('/')
    async def index(req):
        q = req.query_params.get('q', '')
        return _page('Recommendations',
            H1('What to watch next'), P(about, cls='hint'),
            Noscript(P('This page needs JavaScript to rate movies; the JSON API (POST /api/recommend) works without it.', cls='hint')),
            Div(Section(H2('Rate movies you have seen'),
                        Form(Label('Search a title', fr='q'),
                             Input(type='search', id='q', name='q', value=q, autocomplete='off', placeholder='e.g. star wars'),
                             id='search-form', role='search', method='get', action='/'),
                        Div(match_list(q), id='matches'),
                        H2('Your ratings'), Ul(id='rated', cls='titles'), P('None yet.', id='no-ratings', cls='hint')),
                Section(H2('Your top 10'), Div(id='recs'),
                        *([H2('Watch next'), P(f'From {_model_name(nexter)}, reading what you rated in the order you rated it.',
                                               cls='hint'), Div(id='next')] if nexter is not None else [])), cls='cols'),
            Script(src='/static/app.js'), data_stars=json.dumps(star_values))

    @web.get('/search')
    async def search(req): return HTMLResponse(to_xml(match_list(req.query_params.get('q', ''))))  # a fragment for the page's script

    @web.get('/movie')
    async def movie(req):
        title = req.query_params.get('title', '')
        if not title: raise HTTPException(400, 'give a title: /movie?title=Star%20Wars%20(1977)')
        try: title, sim = similar(title, 10)  # as typed (spaces around, accents composed or not), then as the model spells it
        except _Bad as e: raise HTTPException(e.status, str(e)) from None
        b = bias.get(title)
        return _page(title, H1(title),
            P(f'Learned bias ({_model_name(side)}): {b:+.3f}: how much better (or worse) it is rated than its factors explain.'
              if b is not None else f'{_model_name(side)} learns no bias per movie.'),
            H2('Most similar movies'), P(f'Cosine similarity of the movie factors of {_model_name(learn)}.', cls='hint'),
            Table(Thead(Tr(Th('#', cls='num'), Th('title'), Th('cosine', cls='num'))),
                  Tbody(*[Tr(Td(i, cls='num'), Td(A(t, href=_movie_url(t))), Td(f'{c:.3f}', cls='num'), cls='similar', data_title=t)
                          for i, (t, c) in enumerate(sim.items(), 1)])),
            P(A('Back to your recommendations', href='/')))

    @web.get('/map')
    async def map_page(req):
        if map_png is None: return _page('Map', H1('Map'), P(f'{_model_name(side)} has no movie factors to map.'))
        return _page('Map', H1('Map of the movies'),
                    P(f"fastbook's picture: the movie factors of {_model_name(side)} projected on their principal components 1 "
                      f"and 3, for the 50 most-rated movies.", cls='hint'),
                    Img(src='/map.png', alt=f'PCA map of the movie factors of {_model_name(side)}', cls='map'))
    return web

RETRY = 3  # seconds after which the "preparing" page reloads itself

class Preparing:
    ("An ASGI app that answers every request with a 'preparing the models' page (503, Retry-After, reloading itself) while "
     "`load()` runs in a thread (`start()`), then serves the app `load` returns. `error` holds what `load` raised; `on_error` "
     "is then called with it.")
    def __init__(self, load, # () -> the ASGI app to serve: loads or trains the models
                 on_error=None, # Called with the exception when `load` fails (the command stops its server)
                 what='the models' # What is being prepared, for the page
                ):
        import threading
        self.app, self.error, self.what, self.on_error = None, None, what, on_error
        self.thread = threading.Thread(target=self._load, args=(load,), daemon=True)
    def start(self):
        "Start loading in a thread; the page answers 'preparing' until it is done."
        self.thread.start()
        return self
    def _load(self, load):
        try: self.app = load()
        except BaseException as e:
            self.error = e
            if self.on_error: self.on_error(e)
    async def __call__(self, scope, receive, send):
        if self.app is not None: return await self.app(scope, receive, send)
        if scope['type'] == 'lifespan':  # a server that runs the lifespan protocol (uvicorn here runs without it)
            while True:
                kind = (await receive())['type']
                await send({'type': kind + '.complete'})
                if kind == 'lifespan.shutdown': return
        if scope['type'] != 'http': return
        path = scope.get('path', '/')
        msg = (f'movierecs could not prepare {self.what}: {_one_line(self.error)}' if self.error is not None else
               f'Preparing {self.what}: the default models are trained once, on first use (about a minute; the terminal that '
               f'runs `movierecs serve` shows the time left). This page reloads itself.')
        status, headers = (500, None) if self.error is not None else (503, {'Retry-After': str(RETRY)})
        if path.startswith('/api/'): response = _error(path, status, msg, headers)  # one line of JSON, as every API error
        else:
            refresh = [] if self.error is not None else [Meta(http_equiv='refresh', content=str(RETRY))]
            head = Head(Meta(charset='utf-8'), Title('movierecs: preparing'), *refresh)
            response = HTMLResponse(to_xml(Html(head, Body(Main(H1('movierecs'), P(msg, id='preparing'))))),
                                    status_code=status, headers=headers)
        await response(scope, receive, send)

def listen(host='127.0.0.1', # Address to bind
           port=8000 # TCP port, 1-65535
          ) -> socket.socket:
    "A socket bound to `host`:`port` (uvicorn listens on it); a one-line OSError when it cannot be had."
    family = socket.AF_INET6 if ':' in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try: sock.bind((host, port))
    except OSError as e:
        sock.close()
        hint = ': another program is listening there; choose another --port' if e.errno == errno.EADDRINUSE else ''
        raise OSError(f'cannot listen on {host}:{port}: {e.strerror or e}{hint}') from None
    return sock

def url(host, port):
    "The address of the page served on `host`:`port`."
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/"

def server(learn, # The recommending learner, as in `app`; or an ASGI app (such as `Preparing`) to serve as it is
           rater=None, # The rating learner, as in `app`
           log_level='info', # uvicorn's log level
           nexter=None # The next-item learner, as in `app`
          ):
    ("A uvicorn server of `app(learn, rater, nexter)`: `.run(sockets=[listen(host, port)])` serves until interrupted; "
     "`.should_exit = True` stops it.")
    import uvicorn
    web = learn if callable(learn) and not hasattr(learn, 'model') else app(learn, rater, nexter)
    return uvicorn.Server(uvicorn.Config(web, log_level=log_level, server_header=False, timeout_graceful_shutdown=GRACE,
                                         lifespan='off'))

def serve(learn, # The recommending learner, as in `app`
          rater=None, # The rating learner, as in `app`
          host='127.0.0.1', # Address to listen on (loopback only by default)
          port=8000, # TCP port
          sock=None, # A socket from `listen`, instead of host and port
          log_level='info', # uvicorn's log level
          nexter=None # The next-item learner, as in `app`
         ):
    "Serve `app(learn, rater, nexter)` on `host`:`port` with uvicorn until interrupted."
    sock = sock or listen(host, port)
    server(learn, rater, log_level, nexter).run(sockets=[sock])

def background(learn, # The recommending learner, as in `app`
               rater=None, # The rating learner, as in `app`
               host='127.0.0.1', # Address to listen on
               port=0, # TCP port; 0 takes a free one
               log_level='warning', # uvicorn's log level
               nexter=None # The next-item learner, as in `app`
              ) -> tuple:
    "Serve `app(learn, rater, nexter)` from a thread (for tests, benchmarks, notebooks): (its base URL, `stop()`), once it answers."
    import threading, time
    sock = listen(host, port)
    srv = server(learn, rater, log_level, nexter)
    t = threading.Thread(target=srv.run, kwargs=dict(sockets=[sock]), daemon=True)
    t.start()
    while not srv.started and t.is_alive(): time.sleep(0.02)
    def stop():
        srv.should_exit = True; t.join(10); sock.close()
        if t.is_alive(): raise RuntimeError('the server thread did not stop within 10 s')
    if not srv.started: stop(); raise RuntimeError('the server did not start: see its log above')
    return url(host, sock.getsockname()[1]).rstrip('/'), stop
