("`make foldin`: how good fold-in is — held-out users folded in from half their ratings, "
 "against training them in and against the most popular movies: results/foldin.{md,csv}.")
import argparse, time
from pathlib import Path
import numpy as np, pandas as pd, scipy.sparse as sp, torch
from ..models.parts import vocab
from ..data.movielens import load_ratings
from ..evaluation.rating import scores
from ..train.experiments import train_model
from ..train.runs import EXPERIMENTS
from ..engine.feedback import RELEVANT
from ..core.files import write_atomic
from ..recommendation.foldin import (FOLDIN_RULE, FOLDIN_RULES, fold_weights, predict_pairs, foldin_prior, foldin_rows,
                                      foldin_lambdas)
from ..models.registry import model_task
from ..evaluation.topn import ranking_metrics, top_k
from ..train.runs import RANKERS
from .reproduce import cpu_label
__all__ = ['FOLDIN_RUNS', 'KS', 'K_RUNS', 'foldin_split', 'foldin_run', 'given_k', 'foldin_k_run', 'k_markdown', 'k_section',
           'foldin_benchmark', 'foldin_markdown']

# every rating experiment of the notebook group (the autoencoders' output layer has a unit per training user: no fold-in),
# and the default ranking run
FOLDIN_RUNS = {**{n: dict(model=e.model, epochs=e.epochs, lr=e.lr, wd=e.wd, **e.kwargs)
                  for n, e in EXPERIMENTS.items() if e.group == 'notebook'},
               **{n: dict(model=r.model, epochs=r.epochs, lr=r.lr, wd=r.wd, **r.kwargs) for n, r in RANKERS.items()}}

def foldin_split(ratings:pd.DataFrame, # Ratings like `load_ratings()`
                 frac=0.1, # Share of the users held out
                 seed=42 # Seeds the users drawn, each one's halves and the 80/20 split of the others' rows
                ) -> dict:
    """Positions in `ratings`: the held-out users' `given` half (what they tell) and `hidden` half (what is scored), and the
    other users' rows split 80/20 into `train` and `valid` as the notebook does. Training the users in trains on train + given."""
    if not 0 < frac < 1: raise ValueError(f"frac must be between 0 and 1, got {frac!r}.")
    rng = np.random.default_rng(seed)
    users = np.sort(ratings.user.unique())
    out = set(rng.choice(users, max(1, round(frac * len(users))), replace=False).tolist())
    held = ratings.user.isin(out).to_numpy()
    given, hidden = [], []
    for _, pos in ratings[held].groupby('user', sort=True).indices.items():
        pos = np.flatnonzero(held)[rng.permutation(pos)]
        given.append(pos[:len(pos) // 2]); hidden.append(pos[len(pos) // 2:])
    rest = rng.permutation(np.flatnonzero(~held))
    cut = round(0.8 * len(rest))
    return dict(train=np.sort(rest[:cut]), valid=np.sort(rest[cut:]), given=np.sort(np.concatenate(given)),
                hidden=np.sort(np.concatenate(hidden)))

def _codes(learn, titles):
    index = {t: i for i, t in enumerate(vocab(learn, 'movie'))}
    return np.array([index[t] for t in titles])

def _scores(learn, folded, users, titles, rule=None):
    "(users, titles) predictions: of the new users in `folded` (lists of codes, stars), or of users of the learner (`users`)."
    movies = torch.from_numpy(_codes(learn, titles))
    model = learn.model.eval()
    if hasattr(model, 'score_rows'):
        with torch.no_grad():
            if folded is None: s = model.scores(torch.tensor(users))
            else: s = model.score_rows(foldin_rows(learn, *folded))
        return s[:, movies].numpy()
    n, m = len(users), len(movies)
    if folded is None: return predict_pairs(model, {}, movies.repeat(n), torch.tensor(users).repeat_interleave(m)).reshape(n, m).numpy()
    return predict_pairs(model, fold_weights(learn, *folded, rule=rule), movies.repeat(n),
                         torch.arange(n).repeat_interleave(m)).reshape(n, m).numpy()

def _rank(s, given, relevant, k=10):
    return ranking_metrics(top_k(s, given, k), relevant, k).mean(numeric_only=True)

def foldin_run(name, # A name from `FOLDIN_RUNS`
               ratings:pd.DataFrame, # Ratings like `load_ratings()`
               parts:dict, # `foldin_split(ratings)`
               seed=42 # Seeds the training
              ) -> dict:
    "Train run `name` without the held-out users and with their given halves; score their hidden halves both ways."
    spec = dict(FOLDIN_RUNS[name])
    model = spec.pop('model')
    fit = lambda tr, frame, va: train_model(model, ratings=frame, splits=(tr, va), seed=seed, progress=False, **spec)
    start = time.perf_counter()
    rest = ratings.iloc[np.concatenate([parts['train'], parts['valid']])].reset_index(drop=True)
    n_tr = len(parts['train'])
    without = fit(np.arange(n_tr), rest, np.arange(n_tr, len(rest)))
    both = ratings.iloc[np.concatenate([parts['train'], parts['given'], parts['valid']])].reset_index(drop=True)
    n_in = n_tr + len(parts['given'])
    trained_in = fit(np.arange(n_in), both, np.arange(n_in, len(both)))
    train_seconds = time.perf_counter() - start
    titles = vocab(without, 'movie')[1:]  # what both models know; a movie only held-out users rated is scored by neither
    known = set(titles)
    given, hidden = (ratings.iloc[parts[p]] for p in ('given', 'hidden'))
    given, hidden = given[given.title.isin(known)], hidden[hidden.title.isin(known)]
    users = np.sort(hidden.user.unique())
    col = {t: j for j, t in enumerate(titles)}
    cw = _codes(without, titles)
    fold = ([torch.from_numpy(cw[given.title[given.user == u].map(col).to_numpy()]) for u in users],
            [torch.from_numpy(given.rating[given.user == u].to_numpy('float32', copy=True)) for u in users])
    lams = foldin_lambdas(without) if model_task(model) == 'rating' else {}  # once per model, before the clock starts
    start = time.perf_counter()
    s_fold = _scores(without, fold, users, titles)
    fold_ms = (time.perf_counter() - start) * 1000 / len(users)
    uvocab = {u: i for i, u in enumerate(vocab(trained_in, 'user'))}
    s_in = _scores(trained_in, None, [uvocab[u] for u in users], titles)
    row = {u: b for b, u in enumerate(users)}
    def matrix(f, keep=None):
        f = f if keep is None else f[keep]
        return sp.csr_matrix((np.ones(len(f), bool), (f.user.map(row), f.title.map(col))), shape=(len(users), len(titles)))
    seen, relevant = matrix(given).toarray(), matrix(hidden, hidden.rating >= RELEVANT)
    has = np.asarray(relevant.sum(1)).ravel() > 0
    out = dict(run=name, model=model, task=model_task(model), users=len(users), ranked_users=int(has.sum()),
               given=len(given), hidden=len(hidden), penalty='; '.join('/'.join(f'{v:.3g}' for v in d.values()) for d in lams.values()),
               train_seconds=round(train_seconds, 1), foldin_ms=round(fold_ms, 2))
    if out['task'] == 'rating':
        at = hidden.user.map(row).to_numpy(), hidden.title.map(col).to_numpy()
        out['rmse_foldin'] = scores(s_fold[at], hidden.rating)['rmse']
        out['rmse_trained'] = scores(s_in[at], hidden.rating)['rmse']
    for what, s in (('foldin', s_fold), ('trained', s_in)):
        out[f'ndcg_{what}'] = _rank(s[has], seen[has], relevant[has]).ndcg
    counts = rest.iloc[:n_tr].title.value_counts().reindex(titles, fill_value=0).to_numpy('float64')
    out['ndcg_popular'] = _rank(np.tile(counts, (int(has.sum()), 1)), seen[has], relevant[has]).ndcg
    return out

KS = (1, 3, 5, 10, 20, 'half')  # how many ratings someone new gives, in the k table

K_RUNS = ('collab', 'dot_bias_wd', 'svdpp', 'collab_nn')  # the default rating run, its kin, SVD++, a network (L-BFGS fold-in)

def given_k(ratings:pd.DataFrame, parts:dict, k, seed=42) -> np.ndarray:
    "Positions of each held-out user's first `k` given ratings in a seeded shuffle of their given half ('half': all of it)."
    if k == 'half': return parts['given']
    rng = np.random.default_rng(seed)
    given = ratings.iloc[parts['given']]
    out = [parts['given'][rng.permutation(pos)[:k]] for _, pos in given.groupby('user', sort=True).indices.items()]
    return np.sort(np.concatenate(out))

def foldin_k_run(name, # A rating run of `FOLDIN_RUNS`
                 ratings:pd.DataFrame, # Ratings like `load_ratings()`
                 parts:dict, # `foldin_split(ratings)`
                 ks=KS, # Ratings each held-out user gives
                 rules=None, # Fold-in rules (`FOLDIN_RULES`) to compare; default all
                 seed=42 # Seeds the training and the draw of each user's k ratings
                ) -> list:
    """Someone new from k ratings: the mean error (bias: predicted - actual) and RMSE over the held-out users' hidden halves,
    folded in by each rule, trained in (the run retrained with their k ratings), and by the movie mean plus the user's mean
    offset from it over their k ratings. Predictions are clipped to 1-5. One row per (k, method)."""
    spec = dict(FOLDIN_RUNS[name])
    model = spec.pop('model')
    if model_task(model) != 'rating': raise ValueError(f"{name} is a ranking run: the k table scores predicted stars.")
    fit = lambda tr, frame, va: train_model(model, ratings=frame, splits=(tr, va), seed=seed, progress=False, **spec)
    rest = ratings.iloc[np.concatenate([parts['train'], parts['valid']])].reset_index(drop=True)
    n_tr = len(parts['train'])
    without = fit(np.arange(n_tr), rest, np.arange(n_tr, len(rest)))
    titles = vocab(without, 'movie')[1:]
    known, col = set(titles), {t: j for j, t in enumerate(titles)}
    hidden = ratings.iloc[parts['hidden']]
    hidden = hidden[hidden.title.isin(known)]
    users = np.sort(hidden.user.unique())
    row = {u: b for b, u in enumerate(users)}
    at = hidden.user.map(row).to_numpy(), hidden.title.map(col).to_numpy()
    actual = hidden.rating.to_numpy('float64')
    train = rest.iloc[:n_tr]
    mu = train.rating.mean()
    movie_mean = train.groupby('title').rating.mean()
    cw = _codes(without, titles)
    out = []
    def add(k, method, pred, seconds=None):
        err = np.clip(pred, 1, 5) - actual
        out.append(dict(run=name, model=model, k=str(k), method=method, users=len(users), hidden=len(actual),
                        bias=float(err.mean()), bias_unclipped=float((pred - actual).mean()), rmse=float(np.sqrt((err**2).mean())),
                        seconds=seconds))
    for k in ks:
        pos = given_k(ratings, parts, k, seed)
        given = ratings.iloc[pos]
        given = given[given.title.isin(known) & given.user.isin(users)]
        fold = ([torch.from_numpy(cw[given.title[given.user == u].map(col).to_numpy()]) for u in users],
                [torch.from_numpy(given.rating[given.user == u].to_numpy('float32', copy=True)) for u in users])
        for rule in (FOLDIN_RULES if rules is None else rules):
            foldin_prior(without, rule)  # once per model and rule, before the clock starts
            start = time.perf_counter()
            s = _scores(without, fold, users, titles, rule)
            add(k, f'fold-in, {rule}', s[at], round(time.perf_counter() - start, 2))
        both = ratings.iloc[np.concatenate([parts['train'], pos, parts['valid']])].reset_index(drop=True)
        n_in = n_tr + len(pos)
        trained_in = fit(np.arange(n_in), both, np.arange(n_in, len(both)))
        uvocab = {u: i for i, u in enumerate(vocab(trained_in, 'user'))}
        add(k, 'trained in', _scores(trained_in, None, [uvocab[u] for u in users], titles)[at])
        offset = (given.rating - given.title.map(movie_mean).fillna(mu)).groupby(given.user).mean().reindex(users, fill_value=0.)
        base = hidden.title.map(movie_mean).fillna(mu).to_numpy() + hidden.user.map(offset).to_numpy()
        add(k, 'movie mean + user offset', base)
    return out

def k_markdown(df:pd.DataFrame, ks=KS) -> list:
    "The k table's lines: per run and method, 'bias / RMSE' for each k."
    ks = [str(k) for k in ks]
    md = ['| run | method | ' + ' | '.join(f'k = {k}' for k in ks) + ' |', '|---|---|' + '---:|' * len(ks)]
    for (run, method), g in df.groupby(['run', 'method'], sort=False):
        cell = {r.k: f'{r.bias:+.3f} / {r.rmse:.4f}' for r in g.itertuples()}
        md.append(f'| {run} | {method} | ' + ' | '.join(cell.get(k, '–') for k in ks) + ' |')
    return md

def k_section(ks:pd.DataFrame) -> list:
    "results/foldin.md's section on someone new from k ratings: the table, and the mean errors the rule was chosen to shrink."
    f = ks[ks.method == f'fold-in, {FOLDIN_RULE}']
    at = lambda k, col='bias': f[f.k == k][col]
    md = ['## Someone new, from k ratings', '',
          f"The same held-out users, each giving k of their given half's ratings (a seeded draw; 'half': all of it), scored on "
          f"the same hidden half. Fold-in pulls a new user's weights toward the trained users' mean (`FOLDIN_RULE = "
          f"'{FOLDIN_RULE}'`, chosen on a carve-out of the other users: results/foldin_tuning.md) or, as before, toward zero "
          f"('zero'). *Trained in* retrains the run with the users' k ratings among its training rows; *movie mean + user "
          f"offset* predicts each movie's training mean plus the user's mean difference from it over their k ratings. Each "
          f"cell is the mean error (predicted - actual, stars) / the RMSE, predictions clipped to 1–5.", '']
    md += k_markdown(ks)
    md += ['', f"With the '{FOLDIN_RULE}' rule, the mean error at k = 3 is {at('3').min():+.3f} to {at('3').max():+.3f} over the "
           f"{len(at('3'))} runs ({at('3', 'bias_unclipped').min():+.3f} to {at('3', 'bias_unclipped').max():+.3f} before clipping), "
           f"at k = 10 {at('10').min():+.3f} to {at('10').max():+.3f} ({at('10', 'bias_unclipped').min():+.3f} to "
           f"{at('10', 'bias_unclipped').max():+.3f}); at half the ratings its RMSE is {at('half', 'rmse').min():.4f} to "
           f"{at('half', 'rmse').max():.4f}."]
    return md

def foldin_benchmark(runs=None, # Names from `FOLDIN_RUNS`; default: all
                     seed=42, # Seeds the split and the training
                     frac=0.1, # Share of users held out
                     ratings=None, # Default: `load_ratings()`
                     log=print
                    ) -> pd.DataFrame:
    "One row per run: RMSE and NDCG@10 on the held-out users' hidden halves, folded in and trained in, and NDCG@10 of popularity."
    ratings = load_ratings() if ratings is None else ratings
    parts = foldin_split(ratings, frac, seed)
    rows = []
    for name in (FOLDIN_RUNS if runs is None else runs):
        rows.append(foldin_run(name, ratings, parts, seed))
        r = rows[-1]
        log(f"{name:16} " + (f"RMSE fold-in {r['rmse_foldin']:.4f} trained-in {r['rmse_trained']:.4f}  " if 'rmse_foldin' in r else '')
            + f"NDCG@10 fold-in {r['ndcg_foldin']:.4f} trained-in {r['ndcg_trained']:.4f} popular {r['ndcg_popular']:.4f}  "
              f"({r['train_seconds']:.0f} s)")
    return pd.DataFrame(rows)

def foldin_markdown(df:pd.DataFrame, env:dict) -> str:
    "The table of results/foldin.md."
    r0 = df.iloc[0]
    md = ['# Fold-in: someone new, placed in a trained model without retraining it', '',
          f"Regenerated by `make foldin` — do not edit. Seed {env['seed']}, fastai {env['packages']['fastai']}, "
          f"torch {env['packages']['torch']}, {cpu_label(env)}, {env['cpu_count']} CPUs, {env['wall_seconds'] / 60:.0f} minutes.", '',
          f"**Protocol.** {r0.users} users of ML-100k (10%, seeded) are held out. Each one's ratings are shuffled and halved: "
          f"the given half ({r0.given} ratings in all) is what the person tells, the hidden half ({r0.hidden}) is scored. The "
          "other users' rows are split 80/20 as the notebook does. Each run is trained twice with its recorded settings: "
          "without the held-out users, who are then folded in from their given half (`recommend_for`'s code: ridge least "
          "squares for the dot-product models, L-BFGS on the user weights with the movies frozen for the others, the penalty "
          "of each user tensor (factors/bias; per member of an ensemble) matched to training by `foldin_lambdas`; "
          "the ranking model reads the given half as its input row), and with the "
          "given halves among the training rows (trained in). RMSE is over the hidden ratings (predictions clipped to 1–5); "
          f"NDCG@10 ranks every movie the user did not give, a hidden rating >= {RELEVANT} is relevant ({r0.ranked_users} users "
          "have one). The most-popular list ranks by the number of training ratings. Movies only held-out users rated are "
          "left out for every method.", '',
          '| run | model | penalty | RMSE fold-in | RMSE trained in | difference | NDCG@10 fold-in | NDCG@10 trained in | '
          'NDCG@10 most popular | fold-in ms per user |',
          '|---|---|---|---:|---:|---:|---:|---:|---:|---:|']
    for r in df.itertuples():
        rm = (f'{r.rmse_foldin:.4f} | {r.rmse_trained:.4f} | {r.rmse_foldin - r.rmse_trained:+.4f}'
              if r.task == 'rating' else '– | – | –')
        pen = r.penalty if isinstance(r.penalty, str) and r.penalty else '–'
        md.append(f'| {r.run} | {r.model} | {pen} | {rm} | {r.ndcg_foldin:.4f} | {r.ndcg_trained:.4f} | '
                  f'{r.ndcg_popular:.4f} | {r.foldin_ms:.1f} |')
    rating = df[df.task == 'rating']
    if len(rating):
        d = rating.rmse_foldin - rating.rmse_trained
        md += ['', f"Fold-in's RMSE minus training in: {d.min():+.4f} to {d.max():+.4f} over the {len(rating)} rating runs "
               f"({int((d <= 0.02).sum())} within 0.02). NDCG@10 fold-in beats the most popular list in "
               f"{int((df.ndcg_foldin > df.ndcg_popular).sum())} of {len(df)} runs."]
    return '\n'.join(md) + '\n'

def main(argv=None):
    p = argparse.ArgumentParser(prog='python -m movierecs.coldstart', description=__doc__.split(': ', 1)[1])
    p.add_argument('runs', nargs='*', help=f"runs (default: all of {', '.join(FOLDIN_RUNS)})")
    p.add_argument('--seed', type=int, default=42)
    p.add_argument('--out', default='results', help='folder for foldin.md and foldin.csv (default: results)')
    a = p.parse_args(argv)
    bad = [r for r in a.runs if r not in FOLDIN_RUNS]
    if bad: p.error(f"unknown run(s) {', '.join(bad)}; valid: {', '.join(FOLDIN_RUNS)}")
    from .reproduce import environment
    start = time.perf_counter()
    df = foldin_benchmark(a.runs or None, seed=a.seed)
    ratings = load_ratings()
    parts = foldin_split(ratings, 0.1, a.seed)
    ks = pd.DataFrame([r for name in K_RUNS if not a.runs or name in a.runs
                       for r in foldin_k_run(name, ratings, parts, rules=('zero', FOLDIN_RULE), seed=a.seed)])
    env = environment(a.seed)
    env['wall_seconds'] = round(time.perf_counter() - start, 1)
    out = Path(a.out)
    md = foldin_markdown(df, env)
    if len(ks): md += '\n' + '\n'.join(k_section(ks)) + '\n'
    files = {out/'foldin.csv': df.to_csv(index=False, float_format='%.6f'), out/'foldin.md': md,
             out/'foldin_k.csv': ks.to_csv(index=False, float_format='%.6f')}
    write_atomic(files)
    print(f"Wrote {', '.join(str(f) for f in files)} in {env['wall_seconds']:.0f} s.")

if __name__ == '__main__': main()
