"""Self-check of rectools_sasrec.py on a tiny synthetic file; run it with the peer venv's python:

    .venv-rectools/bin/python benchmarks/peers/check_rectools.py [--epochs 15]

50 users x 40 items; user u starts at item u % 40 and watches items in the cyclic order i, i+1, i+2, ... (mod 40) for
10 + u % 15 steps, so the item it should get next is the one after its last, never one it has seen. Checks that the
script writes both outputs, that the top item is that next item for most users (>= 80%), and that two runs with the same
seed give identical files (and a run with another seed does not). Exits 1 on a failed check.
"""
import argparse, filecmp, json, os, subprocess, sys, tempfile

import pandas as pd

HERE = os.path.dirname(os.path.abspath(__file__))
N_USERS, N_ITEMS = 50, 40


def synthetic():
    rows, nxt = [], {}
    for u in range(N_USERS):
        start, n = u % N_ITEMS, 10 + u % 15
        for t in range(n): rows.append((u, (start + t) % N_ITEMS, t * N_USERS + u))
        nxt[u] = (start + n) % N_ITEMS
    return pd.DataFrame(rows, columns=["user", "item", "order"]), nxt


def run(train, out, timing, seed, a):
    cmd = [sys.executable, os.path.join(HERE, "rectools_sasrec.py"), "--train", train, "--out", out, "--timing", timing,
           "--seed", str(seed), "--epochs", str(a.epochs), "--batch-size", str(a.batch_size), "--k", "10", "--quiet"]
    subprocess.run(cmd, check=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--batch-size", type=int, default=8, help="small, so that a few epochs make enough optimiser steps")
    a = p.parse_args()
    ok = True
    with tempfile.TemporaryDirectory() as d:
        df, nxt = synthetic()
        train = os.path.join(d, "train.csv"); df.to_csv(train, index=False)
        f = lambda name: os.path.join(d, name)
        run(train, f("a.csv"), f("a.json"), 7, a)
        run(train, f("b.csv"), f("b.json"), 7, a)
        run(train, f("c.csv"), f("c.json"), 8, a)
        top = pd.read_csv(f("a.csv"))
        timing = json.load(open(f("a.json")))
        print("timing:", {k: timing[k] for k in ("epochs", "seconds_per_epoch", "fit_seconds", "threads", "rectools", "torch")})
        cols_ok = list(top.columns) == ["user", "rank", "item"] and top["user"].nunique() == N_USERS
        print(f"outputs: columns {list(top.columns)}, {top['user'].nunique()}/{N_USERS} users, {len(top)} rows:",
              "ok" if cols_ok else "FAIL")
        ok &= cols_ok
        seen = set(map(tuple, df[["user", "item"]].values))
        leak = sum((u, i) in seen for u, i in top[["user", "item"]].values)
        print(f"viewed items in the lists: {leak}", "ok" if leak == 0 else "FAIL"); ok &= leak == 0
        first = top[top["rank"] == 1].set_index("user")["item"]
        hits = sum(first.get(u) == i for u, i in nxt.items())
        print(f"top item = next in the cycle: {hits}/{N_USERS}", "ok" if hits >= 0.8 * N_USERS else "FAIL"); ok &= hits >= 0.8 * N_USERS
        same = filecmp.cmp(f("a.csv"), f("b.csv"), shallow=False)
        print("same seed twice, --out byte-identical:", same)
        sa, sb = (pd.read_csv(f(x)) for x in ("a.csv", "b.csv"))
        if not same: print("  rows that differ:", int((sa != sb).any(axis=1).sum()))
        ok &= same
        diff = not filecmp.cmp(f("a.csv"), f("c.csv"), shallow=False)
        print("another seed gives another --out:", diff)
    print("self-check:", "PASSED" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
