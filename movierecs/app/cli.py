"The `movierecs` command: train a model, then ask it for recommendations, similar movies and biases."
import argparse, contextlib, json, os, re, sys
from pathlib import Path
from .defaults import DEFAULT_MODEL, _cache_hint, cache_dir, default_learner
from .args import Parser, number_arg, writable
__all__ = ['main']

def _model(args, by='rating'):
    "The model in `--model DIR`, else the default `by`: as numpy arrays (`recommendation.light`), its `Learner` if it has no numpy form."
    from ..recommendation.light import NoLightForm, read_light
    from .defaults import default_light
    if not args.model: return default_light(by)
    try: return read_light(args.model)
    except NoLightForm: return _learner(args.model)

def _learner(path):
    from ..train.saving import load
    return load(path)

def _ask(m, question, *a, **kw):
    "`question` ('recommend', 'similar_movies', 'biases', 'recommend_for') of `m`: from its arrays, else from its `Learner`."
    from ..recommendation import light
    if not isinstance(m, light.Light):
        from ..recommendation import analysis, foldin
        return getattr(foldin if question == 'recommend_for' else analysis, question)(m, *a, **kw)
    try: return getattr(light, question)(m, *a, **kw)
    except light.NoLightForm: return _ask(_learner(m.folder), question, *a, **kw)  # fold-in by gradient descent: the Learner

def _show(series, args, fmt='{:.4f}'):
    "Print a ranked Series as a table, or as JSON records with `--json`."
    label, name = series.index.name, series.name
    if args.json:
        print(json.dumps([{label: k.item() if hasattr(k, 'item') else k, name: float(v)} for k, v in series.items()],
                         ensure_ascii=False, indent=1))
        return
    keys = [str(k) for k in series.index]
    w = max([len(label), *map(len, keys)])
    print(f"{'#':>3}  {label:<{w}}  {name}")
    for i, (k, v) in enumerate(zip(keys, series.values), 1): print(f'{i:>3}  {k:<{w}}  {fmt.format(v)}')

def _show_frame(df, args, fmt='{:.2f}', fmts=None):
    "Print a ranked frame (label, numbers, reason) as a table (`fmts`: {column: format}), or as JSON records with `--json`."
    if args.json:
        rows = [{k: (v.item() if hasattr(v, 'item') else v) for k, v in r.items()} for r in df.to_dict('records')]
        print(json.dumps(rows, ensure_ascii=False, indent=1)); return
    fmts = fmts or {}
    cells = [['-' if v is None else fmts.get(c, fmt).format(v) if isinstance(v, float) else str(v) for c, v in zip(df.columns, r)]
             for r in df.itertuples(index=False)]
    w = [max([len(c), *(len(r[j]) for r in cells)]) for j, c in enumerate(df.columns)]
    print(f"{'#':>3}  " + '  '.join(f'{c:<{w[j]}}' for j, c in enumerate(df.columns)).rstrip())
    for i, r in enumerate(cells, 1): print(f'{i:>3}  ' + '  '.join(f'{v:<{w[j]}}' for j, v in enumerate(r)).rstrip())

_STARS = re.compile(r'[+-]?(\d+(\.\d*)?|\.\d+)', re.ASCII)  # a plain decimal number: no 5_0, no ٥, no 1e1

def _read_rates(args) -> dict:
    "The {title: stars} of `--rate TITLE=STARS` options or of the `--ratings` CSV file (title,rating); each title once."
    import csv, io
    from ..core.checks import regular_size
    from ..recommendation.light import MAX_RATINGS
    pairs = []
    if args.ratings is not None:
        f = Path(args.ratings)
        if not args.ratings.strip(): raise ValueError("--ratings is empty: give a CSV file of title,rating lines.")
        size = regular_size(f)
        if f.exists() and size is None: raise ValueError(f"--ratings {f} is not a regular file (a folder, a device or a pipe?): "
                                                            "give a CSV file.")
        cap = MAX_RATINGS * 400  # bytes: far more than MAX_RATINGS lines of title,rating
        try:
            if size is not None and size > cap:
                raise ValueError(f"--ratings {f} is {size:,} bytes: more than {MAX_RATINGS:,} ratings fit in {cap:,}.")
            text = f.read_text(encoding='utf-8-sig')  # a byte-order mark, as Excel writes, is not part of the first title
        except UnicodeDecodeError as e: raise ValueError(f"--ratings {f} is not UTF-8 text ({e.reason} at byte {e.start}): "
                                                         "save it as UTF-8 CSV.") from None
        except OSError as e: raise ValueError(f"cannot read --ratings {f} ({e.strerror or e}): "
                                              "give a readable CSV file of title,rating lines.") from None
        if '\x00' in text: raise ValueError(f"--ratings {f} is not UTF-8 text (it holds NUL characters: UTF-16?): save it as UTF-8 CSV.")
        try: rows = [r for r in csv.reader(io.StringIO(text, newline=''), strict=True) if r and any(c.strip() for c in r)]
        except csv.Error as e:
            if 'field larger than field limit' in str(e):
                raise ValueError(f"--ratings {f} has a field over {csv.field_size_limit():,} characters: no title is that long; "
                                 "give title,rating lines.") from None
            raise ValueError(f"--ratings {f} is not valid CSV ({e}): quote a title holding a comma, e.g. \"Rock, The (1996)\",5") from None
        if rows and [c.strip().lower() for c in rows[0]] == ['rating', 'title']:
            raise ValueError(f"--ratings {f}: the columns are rating,title; put the title first: title,rating.")
        if rows and [c.strip().lower() for c in rows[0]] == ['title', 'rating']: rows = rows[1:]
        if not rows: raise ValueError(f"--ratings {f} holds no ratings: give one title,rating line per movie, e.g. \"Star Wars (1977)\",5")
        if len(rows) > MAX_RATINGS: raise ValueError(f"--ratings {f} has {len(rows):,} rows, more than {MAX_RATINGS:,}: "
                                                     "give one person's ratings.")
        for i, r in enumerate(rows, 1):
            if len(r) != 2: raise ValueError(f"{args.ratings}, row {i}: expected 2 columns title,rating, got {len(r)}: {r!r}"[:300]
                                             + (': quote a title holding a comma, e.g. "Rock, The (1996)",5' if len(r) > 2 else ''))
            pairs.append((r[0].strip(), r[1].strip()))
    for r in args.rate or []:
        if '=' not in r: raise ValueError(f"--rate {r!r}: expected TITLE=STARS, e.g. --rate 'Star Wars (1977)=5'")
        title, stars = r.rsplit('=', 1)
        pairs.append((title.strip(), stars.strip()))
    out = {}
    for title, stars in pairs:
        if not _STARS.fullmatch(stars): raise ValueError(f"{title!r} is rated {stars!r}: stars must be a number, e.g. 4")
        if title in out: raise ValueError(f"{title!r} is rated twice ({out[title]:g} and {stars}): rate each movie once.")
        out[title] = float(stars)
    return out

def _models(args):
    from ..train.runs import EXPERIMENTS
    from ..models.registry import describe_model, list_models, model_task
    runs = [(e.name, e.model) for e in EXPERIMENTS.values()] + [(k, r.model) for k, r in _recorded_runs().items()]
    rows = [dict(model=n, task=model_task(n), description=describe_model(n), experiments=[k for k, m in runs if m == n])
            for n in list_models()]
    if args.json: print(json.dumps(rows, indent=1)); return
    w = max(len(r['model']) for r in rows)
    for r in rows: print(f"{r['model']:<{w}}  {r['description']}  [experiments: {', '.join(r['experiments']) or '-'}]")

def _recorded_runs() -> dict:
    "The models `movierecs train` trains with a recorded run's settings by default: {name: RankingRun} (top-N's and next-item's)."
    from ..train.runs import NEXT_RUNS, RANKERS
    return {**RANKERS, **NEXT_RUNS}

def _schedule(args):
    ("epochs, lr and wd of `movierecs train`: those given, else the model's (a ranking or next-item model's: its recorded run's, "
     "with its model options; an L-BFGS model's: its experiment's epochs, step 1, no wd).")
    from ..train.runs import EXPERIMENTS
    from ..models.registry import trains_by_lbfgs
    run = _recorded_runs().get(args.name)
    if run is not None:
        return dict(epochs=args.epochs or run.epochs, lr=args.lr or run.lr, wd=run.wd if args.wd is None else args.wd, **run.kwargs)
    if not trains_by_lbfgs(args.name): return dict(epochs=args.epochs or 5, lr=args.lr or 5e-3, wd=0.1 if args.wd is None else args.wd)
    if args.wd: raise ValueError(f"{args.name} trains by full-batch L-BFGS and its own L2 penalty: leave out --wd.")
    return dict(epochs=args.epochs or EXPERIMENTS[args.name].epochs, lr=args.lr or 1., wd=None)

def _train(args):
    from ..train import distributed
    from ..train.experiments import EpochLines, train_model
    from ..train.saving import save
    n, torchrun = args.processes or 1, distributed.launched_by_torchrun()
    from ..models.registry import model_task
    if args.faithful and model_task(args.name) != 'rating':
        raise ValueError(f"--faithful trains a rating model on fastai's own collab loaders; {args.name} builds its own rows from the "
                         "ratings, the same either way: leave out --faithful.")
    if torchrun and args.processes: raise ValueError("torchrun started this process as one of several: leave out --processes "
                                                     "(torchrun's --nproc-per-node and --nnodes set how many).")
    if n > 1 or torchrun:
        distributed.check_distributable(args.name, int(os.environ['WORLD_SIZE']) if torchrun else n, fast=not args.faithful,
                                        cores=not torchrun)
    rank = int(os.environ['RANK']) if torchrun else 0
    out = args.out or cache_dir()/args.name
    lines = not args.json and not sys.stdout.isatty()  # into a file or a pipe: a line per epoch on stderr, not a bar's redraws
    shown = dict(progress=not args.json and not lines, **({'cbs': [EpochLines()]} if lines else {}))
    with writable(out, '--out folder') if rank == 0 else contextlib.nullcontext():
        if torchrun: learn = distributed.train_from_env(args.name, out, **_schedule(args), seed=args.seed, **shown)
        elif n > 1: learn = distributed.train_distributed(args.name, n, out, **_schedule(args), seed=args.seed, **shown)
        else:
            learn = train_model(args.name, **_schedule(args), seed=args.seed, fast=not args.faithful, **shown)
            out = save(learn, out)
    if rank: return  # torchrun's other processes: rank 0 saved the model and reports
    if args.json: print(json.dumps(dict(model=args.name, saved=str(out), losses=learn.loss_table.df.to_dict('records')), indent=1))
    else: print(f'Saved to {out}')

def _recommend(args):
    ("A list a person can read: stars (1-5) from a rating model, and for a ranking model's list its 'match', each movie's chance "
     "of being the one picked relative to the first's. The default list is the ranking model's, with the default rating model's stars.")
    if args.model and args.by: raise ValueError("--by chooses between the default models; a model given with --model is used as it is.")
    if (args.user is not None) + bool(args.rate or args.ratings is not None) + bool(args.history) != 1:
        raise ValueError("give one of --user ID (someone in the data), your own ratings with --rate 'TITLE=STARS' / --ratings FILE, "
                         "or what you watched, in order, with --history TITLE (repeat it)")
    if args.history: return _next(args)
    rates = _read_rates(args) if args.user is None else None  # before any model is loaded or trained: a typo fails at once
    by = args.by or 'ranking'
    m = _model(args, by)
    if rates is not None and _task(m) == 'next':
        raise ValueError(f"{args.model} holds a next-item model: give what you watched, in order, with --history TITLE (repeat it).")
    if args.user is not None:
        s = _ask(m, 'recommend', args.user, n=args.n)
        df = _frame({s.index.name: s.index.tolist(), s.name: s.to_numpy()})
    else: df = _ask(m, 'recommend_for', rates, n=args.n)
    label, ranking = df.columns[0], 'score' in df.columns
    out = _frame({label: df[label]})
    if ranking:
        out['match'] = _match(df['score'].to_numpy())
        rater = _default_rater() if not args.model else None
        if rater is not None: out['stars'] = _stars(_rater_stars(rater, df[label].tolist(), args.user, rates))
    else: out['stars'] = _stars(df[df.columns[1]].to_numpy())
    if 'because' in df.columns: out['because'] = df['because'].tolist()
    _show_frame(out, args, fmts={'match': '{:.0%}', 'stars': '{:.1f}'})

def _next(args):
    "What to watch next after `--history` (oldest first): the next-item model's list, with each title's match."
    if args.by: raise ValueError("--by chooses the model of a --user or --rate list; --history asks the next-item model.")
    from ..recommendation.nextitem import MAX_HISTORY, parse_history, recommend_next
    if len(args.history) > MAX_HISTORY: raise ValueError(f"{len(args.history):,} --history titles are more than {MAX_HISTORY:,}.")
    from .defaults import default_light, default_vocabs
    if args.model: m = _model(args)  # its arrays (numpy), else its Learner
    else:
        parse_history(default_vocabs('next'), args.history)  # a typo fails at once, before a first run trains the model
        m = default_light('next')
    if _task(m) != 'next':
        raise ValueError(f"{args.model} holds a {_name(m)} model, which does not read a history in order: "
                         "give a next-item model (movierecs train sasrec), or leave out --model.")
    df = recommend_next(m, args.history, n=args.n)  # checks each title before anything is shown
    label = df.columns[0]
    _show_frame(_frame({label: df[label], 'match': _match(df['score'].to_numpy())}), args, fmts={'match': '{:.0%}'})

def _name(m):
    "The registry name of a model read by `_model` (its arrays or its `Learner`)."
    from ..recommendation.light import Light
    return m.name if isinstance(m, Light) else m.model_spec['model']

def _task(m):
    from ..models.registry import model_task
    return model_task(_name(m))

def _frame(d):
    import pandas as pd
    return pd.DataFrame(d)

def _match(scores):
    "A ranking model's scores (logits of a softmax over the movies) as each movie's chance relative to the first's, 1 for the first."
    import numpy as np
    s = np.asarray(scores, np.float64)
    return np.exp(s - s.max()) if len(s) else s

def _stars(x):
    "Predicted stars on the 1-5 scale people rate on (a model's prediction can run past it: `y_range` is 0-5.5)."
    import numpy as np
    return np.clip(np.asarray(x, np.float64), 1, 5)

def _default_rater():
    "The default rating model's numpy form: the stars beside the default ranking model's list."
    from .defaults import default_light
    return default_light('rating')

def _rater_stars(rater, titles, user=None, rates=None):
    "The rating model's predicted stars of `titles` for a user of the data, or for someone new from their `rates` (fold-in)."
    from ..models.parts import title_index, user_index
    from ..recommendation.light import fold_in_scores, parse_stars
    codes = [title_index(rater, t) for t in titles]
    if user is not None: return rater.user_scores(user_index(rater, user))[codes]
    return fold_in_scores(rater, *parse_stars(rater, rates, rater.star_range()))[codes]

def _similar(args):
    _show(_ask(_model(args), 'similar_movies', args.title, n=args.n), args)

def _biases(args):
    _show(_ask(_model(args), 'biases', n=args.n, lowest=not args.highest), args)

def _serve(args):
    ("Take the port first (a port in use fails at once) and answer at once: a 'preparing' page while the models load (the "
     "default ones are trained once, on first use, and cached), then the page, until Ctrl-C.")
    from .serve import Preparing, listen, server, url
    try: sock = listen(args.host, args.port)
    except OSError as e: raise ValueError(str(e)) from None
    try:
        if args.model: _check_served(args.model)  # before the page serves or a default model trains
        def stop(e): srv.should_exit = True  # a model that cannot be loaded: the server stops, the error is the command's
        web = Preparing(lambda: _serve_app(args), on_error=stop)
        srv = server(web)
        print(f'movierecs: serving on {url(args.host, args.port)} (Ctrl-C stops it)', flush=True)
        print('movierecs: preparing the models (the page says so meanwhile) ...', file=sys.stderr, flush=True)
        web.start()
        srv.run(sockets=[sock])
        if web.error is not None: raise web.error
        if web.app is None: raise KeyboardInterrupt  # the server stopped (Ctrl-C) while the models were still being prepared
    finally: sock.close()

def _check_served(path):
    "A `serve --model` folder that cannot be read, or a next-item model of other titles than the default models', refused at once."
    from ..models.registry import list_models, model_task
    from ..train.modelfile import read_model
    from .defaults import default_vocabs
    meta, _ = read_model(path)
    name = meta['model_spec'].get('model')
    if name in list_models() and model_task(name) == 'next':
        theirs, ours = (set(list(v.values())[1]) - {'#na#'} for v in (meta['classes'], default_vocabs('ranking')))
        if theirs != ours: raise ValueError(_OTHER_TITLES.format(path=path))

_OTHER_TITLES = ("{path} is a next-item model trained on other titles than the default models the page rates and recommends "
                 "with: serve it with a model of the same titles, or serve without --model.")

def _serve_app(args):
    "The web page's app around the models the command serves: `--model DIR` (and the default rating model), or the defaults."
    from .serve import app
    if args.model:
        from ..models.registry import model_task
        from ..train.saving import load
        from ..models.parts import vocab
        learn, nexter = load(args.model), None
        if model_task(learn.model_spec['model']) == 'next':  # the "next" list's model; the default ones recommend and rate
            nexter, learn = learn, default_learner('ranking')
            if vocab(nexter, 'movie') != vocab(learn, 'movie'): raise ValueError(_OTHER_TITLES.format(path=args.model))
        rater = learn if model_task(learn.model_spec['model']) == 'rating' else default_learner('rating')
        if vocab(rater, 'movie') != vocab(learn, 'movie'):
            print(f"movierecs: {args.model} was trained on other titles than the default rating model: the page shows "
                  f"no predicted stars, biases or map.", file=sys.stderr)
            rater = None
    else: learn, rater, nexter = default_learner('ranking'), default_learner('rating'), default_learner('next')
    web = app(learn, rater, nexter)
    print('movierecs: the models are ready.', file=sys.stderr, flush=True)
    return web

# argparse types of the command's own options (the drivers' shared ones are in args.py)

def _folder(s):
    "A folder argument; an empty one is an error (Path('') would silently be the current folder)."
    if not s.strip(): raise argparse.ArgumentTypeError('is empty: give a folder, e.g. models/dot')
    return Path(s)

def _user_id(s):
    if not re.fullmatch(r'[0-9]{1,18}', s.strip()): raise argparse.ArgumentTypeError(f'{s[:40]!r} is not a user id: give digits, e.g. 196')
    return s.strip()

def _host(s):
    if not s.strip(): raise argparse.ArgumentTypeError('is empty: give an address, e.g. 127.0.0.1 (this machine only) '
                                                       'or 0.0.0.0 (every interface)')
    return s

def _positive(kind): return number_arg(kind, above=0)

def _processes(s):
    "--processes: from 1 to the CPU cores this process may use (the processes step together: one waiting for a core stalls them all)."
    n = number_arg(int, low=1)(s)
    from ..train.distributed import usable_cores
    if n > usable_cores(): raise argparse.ArgumentTypeError(
        f"{n} processes on {usable_cores()} CPU cores: each process needs a core; give at most {usable_cores()} "
        f"(more GPUs or machines: torchrun, see docs/distributed.md)")
    return n

def parser(more=None # {command: (help, main(argv))} of commands another layer adds
          ):
    from ..core.checks import MAX_EPOCHS, MAX_RATE
    from ..models.registry import list_models
    p = Parser(prog='movierecs', description=__doc__)
    sub = p.add_subparsers(dest='command', required=True, parser_class=Parser, metavar='COMMAND')
    def cmd(name, f, help, **kw):
        s = sub.add_parser(name, help=help, description=help, **kw)
        s.set_defaults(func=f)
        return s
    def model_opts(s, n):
        s.add_argument('-n', type=_positive(int), default=n, help=f'how many (default: {n})')
        s.add_argument('--model', type=_folder, metavar='DIR', help='a model saved by `movierecs train` (default: ' + (
                       'see --by; with --history, SASRec trained once and cached' if n == 10 else
                       f"{DEFAULT_MODEL['model']} trained once with the notebook's settings and cached in {_cache_hint()}/default") + ')')
        s.add_argument('--json', action='store_true', help='machine-readable output')
    s = cmd('models', _models, 'list the models in the registry')
    s.add_argument('--json', action='store_true', help='machine-readable output')
    s = cmd('train', _train, 'train a model on ML-100k with fit_one_cycle (autorec, glocal_k: full-batch L-BFGS), '
            'print its loss table (into a file or a pipe: a line per epoch on stderr) and save it; '
            + '; '.join(f"{m} trains with its recorded run's {', '.join(f'{k}={v!r}' for k, v in r.kwargs.items())}"
                        for m, r in _recorded_runs().items()))
    s.add_argument('name', metavar='MODEL', choices=list_models(), help=f"one of: {', '.join(list_models())}")
    from ..models.registry import trains_by_lbfgs
    from ..train.runs import EXPERIMENTS
    lbfgs, runs = [m for m in list_models() if trains_by_lbfgs(m)], _recorded_runs()
    epochs = ', '.join([*(f'{m} {EXPERIMENTS[m].epochs}' for m in lbfgs), *(f'{m} {r.epochs}' for m, r in runs.items())])
    s.add_argument('--epochs', type=number_arg(int, low=1, high=MAX_EPOCHS), help=f'epochs (default: 5; {epochs})')
    s.add_argument('--lr', type=number_arg(float, above=0, high=MAX_RATE), help='peak learning rate (default: 5e-3; '
                   + ', '.join([*(f'{m} {r.lr:g}' for m, r in runs.items()), f"{', '.join(lbfgs)}: the L-BFGS step, 1"]) + ')')
    s.add_argument('--wd', type=number_arg(float, low=0, high=MAX_RATE), help='weight decay (default: 0.1; '
                   + ', '.join([*(f'{m} {r.wd:g}' for m, r in runs.items()), f"none for {', '.join(lbfgs)}"]) + ')')
    s.add_argument('--seed', type=number_arg(int, low=0, high=2**32-1), default=42,
                   help='seed of split, initialisation and shuffles (default: 42)')
    s.add_argument('--out', type=_folder, metavar='DIR', help=f'folder to save the model to (default: {_cache_hint()}/MODEL)')
    s.add_argument('--faithful', action='store_true', help="a rating model: train on fastai's own loaders and Learner (slower; "
                   "same maths)")
    s.add_argument('--processes', type=_processes, metavar='N', help='train data-parallel on N processes of this machine '
                   '(torch DDP, gloo): each takes 64 rows a step, so a step averages N x 64 rows at the same --lr; at most the CPU '
                   'cores; the processes meet on a free local port, or $MASTER_PORT (default: 1). Several GPUs or machines: run '
                   'this command under torchrun, see docs/distributed.md')
    s.add_argument('--json', action='store_true', help='machine-readable output (no progress bar)')
    s = cmd('recommend', _recommend, "the movies a user has not rated that the model ranks first: a user of the data "
            "(--user), or you, from your own ratings (--rate, --ratings); or what to watch next after what you watched (--history)")
    s.add_argument('--user', type=_user_id, help='a user id, e.g. 196')
    s.add_argument('--rate', action='append', metavar='TITLE=STARS', help="a movie you rated, e.g. 'Star Wars (1977)=5' (repeat it)")
    s.add_argument('--ratings', metavar='FILE', help='a CSV file of your ratings: title,rating per line')
    s.add_argument('--history', action='append', metavar='TITLE', help="a movie you watched, oldest first, e.g. 'Star Wars (1977)' "
                   "(repeat it): what to watch next, from the next-item model (SASRec)")
    s.add_argument('--by', choices=('ranking', 'rating'), help='ranking (default): the ranking model that recommends best '
                   '(results/topn.md), scores; rating: the notebook\'s collab model, highest predicted rating')
    model_opts(s, 10)
    s = cmd('similar', _similar, 'the movies whose factors are most cosine-similar to a title')
    s.add_argument('title', help="a title with its year, e.g. 'Silence of the Lambs, The (1991)'")
    model_opts(s, 5)
    s = cmd('biases', _biases, 'the movies with the lowest (default) or highest learned bias')
    g = s.add_mutually_exclusive_group()
    g.add_argument('--lowest', action='store_true', help='lowest biases: disliked even by fitting users (default)')
    g.add_argument('--highest', action='store_true', help='highest biases: liked even by unlikely users')
    model_opts(s, 5)
    s = cmd('serve', _serve, 'the web page: search and rate movies and see your top 10 update, a page per movie, the PCA map; '
            'what to watch next after what you rated, in order; and its JSON API (POST /api/recommend, POST /api/next, GET /api/similar)')
    s.add_argument('--host', type=_host, default='127.0.0.1', help='address to listen on (default: 127.0.0.1: this machine only)')
    s.add_argument('--port', type=number_arg(int, low=1, high=65535, what='a port number'), default=8000,
                   help='TCP port, 1-65535 (default: 8000)')
    s.add_argument('--model', type=_folder, metavar='DIR', help='a model saved by `movierecs train`: a ranking model recommends, a rating '
                   'model recommends and gives the stars, biases and map, a next-item model gives the "next" list (default: the '
                   "default ranking model recommends, the notebook's collab model gives the stars, biases and map, SASRec what to "
                   "watch next; each trained once and cached)")
    # commands of a higher layer (`reproduce`, from the studies): they parse their own arguments
    for name, (text, _) in (more or {}).items():
        s = cmd(name, None, text, add_help=False)
        s.add_argument('rest', nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return p

def _interrupted_now(signum, frame):
    "Ctrl-C while torch and fastai load: a KeyboardInterrupt inside their C initialisation is fatal; nothing is written yet, so stop."
    os.write(2, b'movierecs: interrupted\n'); os._exit(130)

_NEEDS = {  # the modules each command imports (the answering ones read saved arrays with numpy: no torch, no fastai)
    'train': ('train.experiments', 'train.saving', 'train.distributed'),
    'serve': ('app.serve', 'train.saving'),
    **{c: ('recommendation.light', 'app.defaults') for c in ('recommend', 'similar', 'biases')},
}

def _import_libraries(command):
    "Import what `command` needs, with Ctrl-C ending the program at once instead of raising inside an import."
    import importlib, signal
    try: before = signal.signal(signal.SIGINT, _interrupted_now)
    except ValueError: before = None  # not the main thread: signals are not ours to handle
    try:
        for m in _NEEDS.get(command, ()): importlib.import_module(f'movierecs.{m}')
    finally:
        if before is not None: signal.signal(signal.SIGINT, before)

def main(argv=None, # The arguments; default: the command line's
         more=None # {command: (help, main(argv))}: commands of a higher layer, given everything after their name (-h too)
        ):
    argv = sys.argv[1:] if argv is None else list(argv)
    more = more or {}
    if not {'-h', '--help'} & set(argv): _import_libraries(argv[0] if argv else None)  # help needs none of them
    from ..core.errors import DataError, DistributedError, ModelFileError, NaNLossError
    def run():
        if argv[:1] and argv[0] in more: return more[argv[0]][1](argv[1:])
        args = parser(more).parse_args(argv)  # inside the handler: the help texts name cache_dir(), which can fail
        args.func(args)
    try: run(); sys.stdout.flush()
    except KeyboardInterrupt:
        print('movierecs: interrupted', file=sys.stderr); sys.exit(130)
    except BrokenPipeError:  # the reader went away (`| head`): nothing more to say to it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno()); sys.exit(141)
    except (DataError, ModelFileError, NaNLossError, DistributedError, KeyError, ValueError, TypeError, OSError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        if isinstance(e, OSError) and e.filename and str(e.filename) not in msg: msg = f'{msg}: {e.filename}'
        msg = re.sub(r'^Exception occured in `\w+` when calling event `\w+`:\s*', '', msg)  # fastai's wrapper of a callback's error
        sys.exit(f"movierecs: error: {' '.join(msg.split())}")

if __name__ == '__main__': main()
