"""RecTools' SASRec as a peer baseline, trained on rows we give it, so our SASRec can be compared on the very same rows.

Run with the peer venv's python (`bash benchmarks/peers/setup_rectools.sh` makes `.venv-rectools`), not with `.venv`:

    .venv-rectools/bin/python benchmarks/peers/rectools_sasrec.py --train TRAIN.csv --out TOP.csv --seed 42 --timing T.json

TRAIN.csv has columns user,item,order: `order` is an integer giving each interaction's position in time across the data set
(the caller has already broken timestamp ties), and is handed to RecTools as the interaction's datetime
(`pd.to_datetime(order, unit="s")`). RecTools orders each user's interactions with a stable sort on that datetime, so its
sequences are exactly ours; an order repeated within a user is refused, since the file's row order would then decide.
TOP.csv gets columns user,rank,item: the top `--k` items for every user in TRAIN, the user's TRAIN items excluded
(RecTools' `filter_viewed=True`), rank 1 = best, ranked over every item in TRAIN (RecTools' catalogue is the items it
trained on). No validation is done: the model trains exactly `--epochs` epochs (no early stopping, no checkpoint choice).

The model is `rectools.models.SASRecModel` with full softmax cross-entropy over all items (`loss="softmax"`), causal
attention (`use_causal_attn=True`), learnable positional embeddings, item-id embeddings only (no features).

Where the defaults come from. RecTools' README links its "Top performance on public benchmarks" for SASRec to
https://github.com/blondered/bert4rec_repro ("RecTools transformers benchmark results", ML-1M and ML-20M, SASRec with
softmax loss); its settings are in that repo's files:
  - session_max_len=100, n_factors=256, n_blocks=2, n_heads=4, lr=0.001, loss="softmax": `SASREC_DEFAULT_PARAMS` in
    recommenders/rectools/transformers.py ("These are also RecTools default params, but let's fix them explicitly").
  - epochs=200: `EPOCHS = 200` in evaluation/configs/rectools/ml_1m.py and evaluation/configs/rectools/ml_20m.py. There
    200 is a cap: they early-stopped on recall@10 of 2048 held-out validation users (patience 50) and kept the best-recall
    checkpoint (README "Notes"). We train a fixed 200 epochs with no validation, as asked, so this is not their exact protocol.
  - dropout_rate=0.2, batch_size=128 (and use_pos_emb=True, use_causal_attn=True, train_min_user_interactions=2): not set
    in that benchmark, so RecTools' `SASRecModel` defaults (rectools/models/nn/transformers/sasrec.py in
    https://github.com/MobileTeleSystems/RecTools; the same values from v0.11.0 to v0.19.0); the benchmark README: "RecTools
    default model params are equal to BERT4Rec-VAE model params reported in the paper".
  - deterministic=True: their `get_trainer` (same file) passes `deterministic=True` to the Lightning Trainer.
  Note (RecTools CHANGELOG, #290): later releases removed a Dropout from `IdEmbeddingsItemNet`, so 0.19 differs slightly from
  the version that benchmark ran.
RecTools' own tutorials publish other SASRec settings, but not for MovieLens with full softmax: the transformers tutorial
(examples/tutorials/transformers_tutorial.ipynb) is on the MTS Kion data set; the HSTU tutorial's SASRec on ML-1M uses
sampled softmax (128 negatives, n_factors=50, n_heads=1, session_max_len=200).

Seeding: `random`, numpy, torch and Lightning's `seed_everything(seed, workers=True)` are seeded, and
`torch.use_deterministic_algorithms(True)`; `SASRecModel` has no seed argument of its own (it has `deterministic`, set).
"""
import argparse, json, logging, os, random, sys, time, warnings

import numpy as np
import pandas as pd
import torch
from pytorch_lightning import Callback, Trainer, seed_everything

import rectools
from rectools import Columns
from rectools.dataset import Dataset
from rectools.models import SASRecModel
from rectools.models.nn.item_net import IdEmbeddingsItemNet

PUBLISHED = dict(session_max_len=100, n_factors=256, n_blocks=2, n_heads=4, dropout_rate=0.2, lr=0.001, batch_size=128, epochs=200,
                 loss="softmax")


class EpochTimer(Callback):
    "Wall seconds of each training epoch (Lightning's train epoch: batches, optimiser steps; no validation is run)."
    def __init__(self, quiet=False): self.seconds, self._t0, self.quiet = [], None, quiet
    def on_train_epoch_start(self, trainer, pl_module): self._t0 = time.perf_counter()
    def on_train_epoch_end(self, trainer, pl_module):
        self.seconds.append(time.perf_counter() - self._t0)
        if not self.quiet: print(f"epoch {len(self.seconds)}/{trainer.max_epochs}: {self.seconds[-1]:.2f} s", file=sys.stderr, flush=True)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--train", required=True, help="CSV with columns user,item,order")
    p.add_argument("--out", required=True, help="CSV written with columns user,rank,item")
    p.add_argument("--k", type=int, default=100, help="items per user in --out")
    p.add_argument("--seed", type=int, default=42, help="seeds random, numpy, torch, Lightning")
    p.add_argument("--timing", help="JSON written with epochs, seconds_per_epoch, fit_seconds, settings, versions, threads")
    p.add_argument("--epochs", type=int, default=PUBLISHED["epochs"], help="fixed; published: cap of 200 (with early stopping there)")
    p.add_argument("--session-max-len", type=int, default=PUBLISHED["session_max_len"], help="published")
    p.add_argument("--n-factors", type=int, default=PUBLISHED["n_factors"], help="published")
    p.add_argument("--n-blocks", type=int, default=PUBLISHED["n_blocks"], help="published")
    p.add_argument("--n-heads", type=int, default=PUBLISHED["n_heads"], help="published")
    p.add_argument("--dropout", type=float, default=PUBLISHED["dropout_rate"], help="RecTools' default, used by the published run")
    p.add_argument("--lr", type=float, default=PUBLISHED["lr"], help="published")
    p.add_argument("--batch-size", type=int, default=PUBLISHED["batch_size"], help="RecTools' default, used by the published run")
    p.add_argument("--loss", default=PUBLISHED["loss"], choices=["softmax"], help="full softmax cross-entropy over all items")
    p.add_argument("--threads", type=int, help="torch.set_num_threads (default: leave torch's own, e.g. from OMP_NUM_THREADS)")
    p.add_argument("--quiet", action="store_true", help="no line per epoch on stderr")
    p.add_argument("--accelerator", default="cpu", help="Lightning accelerator for training; ranking runs on the same device")
    return p.parse_args(argv)


def seed_all(seed):
    random.seed(seed); np.random.seed(seed); torch.manual_seed(seed)
    seed_everything(seed, workers=True)


def load_train(path):
    "TRAIN.csv -> RecTools' interactions frame (user_id, item_id, weight=1, datetime=order as seconds)."
    df = pd.read_csv(path)
    missing = {"user", "item", "order"} - set(df.columns)
    if missing: sys.exit(f"{path}: missing column(s) {sorted(missing)}; want user,item,order")
    if not pd.api.types.is_integer_dtype(df["order"]): sys.exit(f"{path}: `order` must be integers")
    if df.duplicated(["user", "order"]).any():
        sys.exit(f"{path}: some user has two rows with the same `order`; break the ties first")
    return pd.DataFrame({Columns.User: df["user"], Columns.Item: df["item"], Columns.Weight: 1.0,
                         Columns.Datetime: pd.to_datetime(df["order"], unit="s")})


def main(argv=None):
    a = parse_args(argv)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # only matters on a GPU
    if a.threads: torch.set_num_threads(a.threads)
    for name in ("pytorch_lightning", "lightning", "lightning_fabric"): logging.getLogger(name).setLevel(logging.WARNING)
    for msg in (".*does not have many workers.*", ".*no `val_dataloader`.*", ".*LeafSpec.*", ".*Pydantic serializer warnings.*",
                ".*unique with argument that is not.*"):  # known, harmless noise from Lightning 2.5, pydantic and pandas
        warnings.filterwarnings("ignore", msg)
    torch.use_deterministic_algorithms(True)
    seed_all(a.seed)

    interactions = load_train(a.train)
    dataset = Dataset.construct(interactions)

    def get_trainer():  # RecTools' default Trainer (base.py `_init_trainer`), quiet, plus the epoch timer
        return Trainer(max_epochs=a.epochs, min_epochs=a.epochs, deterministic=True, enable_progress_bar=False,
                       enable_model_summary=False, logger=False, enable_checkpointing=False, accelerator=a.accelerator, devices=1,
                       callbacks=[EpochTimer(a.quiet)])

    settings = dict(session_max_len=a.session_max_len, n_factors=a.n_factors, n_blocks=a.n_blocks, n_heads=a.n_heads,
                    dropout_rate=a.dropout, lr=a.lr, batch_size=a.batch_size, epochs=a.epochs, loss=a.loss)
    model = SASRecModel(**settings, use_causal_attn=True, use_pos_emb=True, train_min_user_interactions=2,
                        item_net_block_types=(IdEmbeddingsItemNet,), deterministic=True, get_trainer_func=get_trainer,
                        recommend_torch_device="cuda" if a.accelerator in ("gpu", "cuda") else "cpu")
    seed_all(a.seed)  # again right before fit, as the RecTools benchmark does (rectools_model.py `rebuild_model`)
    t0 = time.perf_counter()
    model.fit(dataset)
    fit_seconds = time.perf_counter() - t0
    # RecTools fits a deepcopy of the Trainer (base.py `fit`), so the timer that ran is the copy's
    timer = next(c for c in model.fit_trainer.callbacks if isinstance(c, EpochTimer))
    assert len(timer.seconds) == a.epochs == model.fit_trainer.current_epoch, (len(timer.seconds), model.fit_trainer.current_epoch)

    users = interactions[Columns.User].unique()
    t0 = time.perf_counter()
    reco = model.recommend(users=users, dataset=dataset, k=a.k, filter_viewed=True, on_unsupported_targets="warn")
    recommend_seconds = time.perf_counter() - t0
    top = (reco.rename(columns={Columns.User: "user", Columns.Item: "item", Columns.Rank: "rank"})[["user", "rank", "item"]]
           .sort_values(["user", "rank"], kind="stable"))
    top.to_csv(a.out, index=False)
    n_missing = len(set(users) - set(top["user"]))
    if n_missing: print(f"warning: {n_missing} user(s) got no recommendations", file=sys.stderr)

    if a.timing:
        out = dict(epochs=len(timer.seconds), seconds_per_epoch=float(np.mean(timer.seconds)) if timer.seconds else None,
                   median_seconds_per_epoch=float(np.median(timer.seconds)) if timer.seconds else None,
                   fit_seconds=fit_seconds, recommend_seconds=recommend_seconds,
                   settings=dict(settings, k=a.k, seed=a.seed, accelerator=a.accelerator, use_causal_attn=True, use_pos_emb=True,
                                 train_min_user_interactions=2, item_net="IdEmbeddingsItemNet", deterministic=True),
                   rectools=rectools.__version__, torch=torch.__version__, threads=torch.get_num_threads(),
                   n_rows=len(interactions), n_users=len(users), n_items=int(interactions[Columns.Item].nunique()),
                   users_without_recs=n_missing, epoch_seconds=timer.seconds)
        with open(a.timing, "w") as f: json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
