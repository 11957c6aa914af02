"""Data-parallel training on several processes: torch's `DistributedDataParallel` (DDP) under movierecs' fastai
`Learner`, on CPU with the gloo backend (`train_distributed`, `movierecs train --processes N`), or under torchrun with
NCCL on GPUs (`train_from_env`).

What of `fastai.distributed` serves here: nothing as it stands. `distrib_ctx`/`DistributedTrainer` need Hugging Face
accelerate (not a movierecs dependency); `setup_distrib` initialises NCCL on a CUDA device; `DistributedDL` broadcasts
each epoch's order as a CUDA tensor, repeats rows to even out the shards, and wraps only fastai's `TfmdDL`, not the fast
path's `TensorDataLoader`. So this module is the small adapter in their place:

- `shard_slices` / `ShardedLoader`: every epoch one permutation of the training rows, drawn by the loader's own seeded
  generator, which is in the same state in every process (`train_model` seeds it; `DataParallel` checks it), so nothing
  is broadcast. It is cut into global batches of processes x `bs` rows; process r trains on the r-th piece of each.
  Every training row is trained on exactly once per epoch across the processes (one process's `drop_last` would drop
  the leftover rows; here they join the last step instead).
- `DataParallel`, a callback: DDP around the model while training (DDP's all-reduce averages the gradients), the plain
  module for validation, which every process runs on the whole validation set (the same weights, so the same loss:
  nothing to gather); the smoothed train loss is averaged over the processes after each epoch.

Batch size and learning rate: each process takes `bs` rows a step (64 unless `process_bs` is given), so a step
averages the gradient over processes x `bs` rows (the global batch) and an epoch has rows // (processes x `bs`) steps.
`lr` is the peak rate per step, as given: with 2 processes the schedule makes half the steps, each on twice the rows.
`process_bs=bs // processes` keeps the global batch at one process's `bs`: the same steps on the same rows as one
process, so the same numbers up to floating-point rounding."""
import datetime, gc, hashlib, importlib, os, time
import numpy as np
import torch
import torch.distributed as dist
from fastai.callback.core import Callback
from fastai.torch_core import to_detach
from fastcore.basics import listify
from torch.nn.parallel import DistributedDataParallel
from ..engine.tensors import TensorDataLoader
from ..models.registry import check_model, trains_by_lbfgs
from ..core.errors import DistributedError
__all__ = ['HOST', 'TIMEOUT', 'usable_cores', 'shard_slices', 'ShardedLoader', 'DataParallel', 'check_distributable',
           'train_distributed_runs', 'launched_by_torchrun', 'train_rank', 'train_distributed', 'train_from_env']

HOST = '127.0.0.1'  # `train_distributed`'s processes meet on this machine

TIMEOUT = datetime.timedelta(minutes=30)  # how long a collective waits for a process that stopped answering

def usable_cores() -> int:
    "The CPU cores this process may run on."
    try: return len(os.sched_getaffinity(0))
    except AttributeError: return os.cpu_count() or 1

def _count(v, name, low=1):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
        raise ValueError(f"{name} must be an integer of at least {low}, got {v!r}.")
    return int(v)

def shard_slices(n, # Training rows
                 world_size, # Processes
                 bs, # Rows per process per step
                 rank, # This process, 0 .. world_size-1
                 drop_last=True # The loader's: True never takes a short step (the leftover rows join the last one)
                ) -> list:
    """The (start, stop) positions, one pair a step, in an epoch's permutation of `n` rows that process `rank` trains on.
    Step k's global batch is positions [k·world_size·bs, (k+1)·world_size·bs); process r takes its r-th contiguous
    piece. The n mod (world_size·bs) leftover rows join the last step (or, when `drop_last` is False and each process
    gets a row, make a short step of their own), split as evenly as can be: every row is in exactly one piece, every
    process takes the same number of steps (DDP needs that) and no piece is empty."""
    n, world_size, bs = _count(n, 'n'), _count(world_size, 'world_size'), _count(bs, 'bs')
    rank = _count(rank, 'rank', 0)
    if rank >= world_size: raise ValueError(f"rank must be below world_size={world_size}, got {rank}.")
    if n < world_size: raise ValueError(f"{n} training rows cannot give each of {world_size} processes a row: use fewer processes.")
    g = world_size * bs
    left = n % g
    starts = list(range(0, n - left, g))  # the full global batches
    if left and (not starts or (not drop_last and left >= world_size)): starts.append(n - left)  # a short step
    bounds = starts + [n]  # else the leftover rows join the last full step
    return [(s + rank*(e-s)//world_size, s + (rank+1)*(e-s)//world_size) for s, e in zip(bounds, bounds[1:])]

class ShardedLoader:
    "Process `rank`'s share of a `TensorDataLoader`'s epochs: the permutation that loader draws, cut by `shard_slices`."
    n_inp = 1  # batches are (x, y): fastai's `Learner._split` reads this

    def __init__(self, dl, # The training `TensorDataLoader`, seeded alike in every process
                 rank, world_size,
                 bs=None # Rows per process per step; default: `dl.bs`
                ):
        if not isinstance(dl, TensorDataLoader):
            raise TypeError(f"ShardedLoader shards the fast path's TensorDataLoader, got {type(dl).__name__}.")
        self.dl, self.rank, self.world_size, self.bs = dl, rank, world_size, dl.bs if bs is None else _count(bs, 'bs')
        self.slices = shard_slices(dl.n, world_size, self.bs, rank, dl.drop_last)

    def __len__(self): return len(self.slices)

    def __iter__(self):
        dl = self.dl
        perm = torch.randperm(dl.n, generator=dl.gen) if dl.shuffle else torch.arange(dl.n)
        idx = torch.cat([perm[a:b] for a, b in self.slices])
        x, y = dl.x[idx], dl.y[idx]  # one gather per epoch; each batch is then a view
        if dl.device is not None: x, y = x.to(dl.device), y.to(dl.device)
        i = 0
        for a, b in self.slices:
            yield x[i:i+b-a], y[i:i+b-a]
            i += b - a

    def to(self, device): self.dl.to(device); return self

    def __getattr__(self, k):
        if k.startswith('__') or k == 'dl': raise AttributeError(k)
        return getattr(self.dl, k)  # device, gen, classes, items ...

def _no_gather(b, cpu=True, gather=True):
    "fastai's `to_detach` without its gathering across processes (which it does when env WORLD_SIZE > 1, as torchrun sets it)."
    return to_detach(b, cpu, gather=False)

def _digest(*tensors) -> int:
    h = hashlib.sha256()
    for t in tensors: h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return int.from_bytes(h.digest()[:7], 'big')  # fits an int64

class DataParallel(Callback):
    """Train with `DistributedDataParallel` in an initialised process group: the training loader becomes this process's
    `ShardedLoader`, the model DDP while training; validation runs on the plain module and the whole validation set."""
    order = 11  # after `TrainEvalCallback` has put the model on the loaders' device, as fastai's `DistributedTrainer`

    def __init__(self, device=None, # This process's device (a GPU under torchrun); None: where the model is
                 bs=None # Rows per process per step; default: the training loader's bs
                ):
        self.device, self.bs = device, bs

    def before_fit(self):
        if not dist.is_initialized():
            raise RuntimeError("DataParallel needs an initialised process group: train with train_distributed, or under torchrun.")
        learn = self.learn
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        if not isinstance(learn.dls.train, TensorDataLoader):
            raise TypeError(f"DataParallel trains from the fast path's TensorDataLoader (movierecs.dataloaders(fast=True)), "
                            f"got {type(learn.dls.train).__name__}.")
        self.comm = torch.device('cuda', torch.cuda.current_device()) if dist.get_backend() == 'nccl' else torch.device('cpu')
        if self.device is not None: learn.dls.to(self.device); learn.model.to(self.device)
        self.old_train = learn.dls.train
        self._check_alike(self.old_train)
        learn.dls.loaders[0] = ShardedLoader(self.old_train, self.rank, self.world_size, self.bs)
        module = learn.model
        # not DDP's: derived tensors (SVD++'s rated movies, Mult-DAE's history), built alike in every process, which it would
        # broadcast every step; and empty parameters (EmbeddingNN's batchnorm of no continuous inputs), which get no gradient
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(
            module, [k for k, _ in module.named_buffers() if k not in module.state_dict()] +
                    [k for k, p in module.named_parameters() if p.numel() == 0])
        dev = next(module.parameters()).device
        self.ddp = DistributedDataParallel(module, device_ids=[dev.index] if dev.type == 'cuda' else None)
        learn.to_detach = _no_gather  # every process validates on everything: gathering would count each row N times
        if self.rank:  # a process's own dropout masks (rank 0 keeps the stream one process would have)
            torch.manual_seed(int(np.random.SeedSequence([torch.initial_seed(), self.rank]).generate_state(1, np.uint64)[0] >> 1))

    def _check_alike(self, dl):
        "Every process must hold the same training rows, batch size and shuffling generator: else the shards overlap or miss rows."
        mine = torch.tensor([dl.n, dl.bs, int(dl.shuffle), int(dl.drop_last), _digest(dl.x, dl.y), _digest(dl.gen.get_state())],
                            dtype=torch.int64, device=self.comm)
        every = [torch.zeros_like(mine) for _ in range(self.world_size)]
        dist.all_gather(every, mine)
        bad = [r for r, t in enumerate(every) if not torch.equal(t, every[0])]
        if bad: raise ValueError(f"Process {bad[0]} holds other training rows, batch size or shuffling seed than process 0: "
                                 f"give every process the same ratings, split and seed (and MOVIERECS_DATA the same files).")

    def before_train(self): self.learn.model = self.ddp; self.ddp.train()

    def before_validate(self):
        "The plain module, its buffers rank 0's (as DDP makes them before each training step): batchnorm statistics, ..."
        module = self.learn.model = self.ddp.module
        state = module.state_dict()
        for k, b in module.named_buffers():
            if k in state: dist.broadcast(b.data, 0)

    def after_train(self):
        "The smoothed train loss of the global batches: the mean of the processes' (an exponential average is linear)."
        sl = getattr(self.learn.recorder, 'smooth_loss', None)
        if sl is None or not torch.is_tensor(sl.val): return
        v = sl.val.detach().reshape(1).to(self.comm, torch.float64)
        dist.all_reduce(v)
        sl.val = (v / self.world_size).to(sl.val.device, sl.val.dtype).reshape(sl.val.shape)

    def after_fit(self):
        learn = self.learn
        learn.model, learn.dls.loaders[0] = self.ddp.module, self.old_train
        learn.__dict__.pop('to_detach', None)
        self.ddp = None  # DDP's reducer holds the process group: let it go, or gloo's threads outlive the group and abort at exit

def check_distributable(model, # A name from `list_models()`
                        processes, # How many processes
                        fast=True, sparse=False, cores=True, # cores: refuse more processes than CPU cores
                        **kwargs):
    "Raise a clear error, before any process starts, when `model` cannot be trained on `processes` processes this way."
    check_model(model)
    if isinstance(processes, bool) or not isinstance(processes, (int, np.integer)) or processes < 1:
        raise ValueError(f"processes must be a positive integer, got {processes!r}.")
    if cores and processes > usable_cores():
        raise ValueError(f"{processes} processes on {usable_cores()} CPU cores: the processes step together, so each needs a core. "
                         f"Give at most {usable_cores()}; for more, run torchrun on several machines (docs/distributed.md).")
    if trains_by_lbfgs(model):
        raise ValueError(f"{model} trains by full-batch L-BFGS: each step needs every training row at once, so it does not "
                         f"split across processes. Train it in one process.")
    if not fast: raise ValueError("The faithful path (fastai's own loaders) is not trained on several processes: fastai's "
                                  "DistributedDL is CUDA-only. Use the default fast path.")
    if sparse: raise ValueError("The sparse path is not trained on several processes (DDP would all-reduce its sparse gradients "
                                "densely). Train it in one process.")
    if kwargs.get('cache'): raise ValueError("cache=True reuses a learner trained in this process: "
                                             "it has no meaning for several processes.")

def launched_by_torchrun() -> bool:
    "True when torchrun (or `accelerate launch`, which runs it) started this process as one of several."
    return 'TORCHELASTIC_RUN_ID' in os.environ and 'RANK' in os.environ and 'WORLD_SIZE' in os.environ

def train_rank(model, # A name from `list_models()`
               out=None, # Folder rank 0 saves the model to (`movierecs.save`); None: not saved
               device=None, # This process's device; None: the CPU
               progress=False, # Rank 0 shows fastai's progress bar and loss table
               process_bs=None, # Rows per process per step; default: the training loader's bs (64)
               **kwargs # Passed to `train_model`: epochs, lr, wd, seed, ratings ...
              ):
    "Train `model` as this process's part of an initialised process group (`train_model` with `DataParallel`); rank 0 saves it."
    from .experiments import EpochLines, train_model
    from .saving import save
    rank, world = dist.get_rank(), dist.get_world_size()
    cbs = [cb for cb in listify(kwargs.pop('cbs', None)) if rank == 0 or not isinstance(cb, EpochLines)]  # rank 0 shows progress
    cbs += [DataParallel(device, process_bs)]
    learn = train_model(model, progress=progress and rank == 0, cbs=cbs, **kwargs)
    learn.train_spec = {**learn.train_spec, 'processes': world, **({} if process_bs is None else dict(process_bs=process_bs))}
    if rank == 0 and out is not None: save(learn, out)
    return learn

def _result(learn, rank):
    lt = learn.loss_table
    return dict(rank=rank, rows=list(lt.rows), seconds=list(lt.seconds), final=[float(v) for v in learn.recorder.values[-1]])

def _spawned(rank, world_size, port, threads, jobs, queue):
    "One process of `train_distributed_runs`: join the group through the parent's store, train each job in turn, report to the parent."
    torch.set_num_threads(threads)
    store = dist.TCPStore(HOST, port, world_size, False, timeout=TIMEOUT)
    dist.init_process_group('gloo', store=store, rank=rank, world_size=world_size, timeout=TIMEOUT)
    try:
        for i, job in enumerate(jobs):
            learn = train_rank(**job)
            queue.put(('result', dict(_result(learn, rank), job=i)))
            del learn
            dist.barrier()  # rank 0 has saved; the next job, or leaving, together
    except BaseException as e:  # reported before this process leaves the group: the others' errors come after it
        msg = e.args[0] if len(e.args) == 1 and isinstance(e.args[0], str) else str(e)
        queue.put(('error', dict(rank=rank, module=type(e).__module__, name=type(e).__qualname__, message=msg)))
        raise
    finally:
        gc.collect()  # nothing left holding the group (a DDP's reducer does) when it is destroyed
        dist.destroy_process_group()

_REBUILT = (ValueError, TypeError, KeyError, OSError, FloatingPointError, RuntimeError, MemoryError)

def _rebuilt(errors, failure):
    "The error to raise in the parent: the first process's own error (others' are mostly the group breaking), as its class."
    if not errors: return DistributedError(f"A training process failed: {' '.join(str(failure).split())[-600:]}")
    own = [e for e in errors if not (e['module'].startswith('torch') or 'gloo' in e['message'].lower())]
    e = (own or errors)[0]
    cls = None
    if e['module'] == 'builtins' or e['module'].split('.')[0] == __package__.split('.')[0]:
        try:
            cls = importlib.import_module(e['module'])
            for part in e['name'].split('.'): cls = getattr(cls, part)
        except (ImportError, AttributeError): cls = None
    if isinstance(cls, type) and issubclass(cls, _REBUILT): return cls(e['message'])
    return DistributedError(f"Training process {e['rank']} failed: {e['name']}: {e['message']}")

def _listen(port):
    "The parent's rendezvous store, listening on `port` (None: env MASTER_PORT if set, else a free port); a clear error if taken."
    if port is None and os.environ.get('MASTER_PORT', '').strip():
        p = os.environ['MASTER_PORT'].strip()
        if not p.isdigit() or not 0 < int(p) < 65536: raise ValueError(f"MASTER_PORT={p!r} is not a port number (1-65535): "
                                                                       "fix or unset it.")
        port = int(p)
    if port is not None and (isinstance(port, bool) or not isinstance(port, (int, np.integer)) or not 0 <= port < 65536):
        raise ValueError(f"port must be a port number (1-65535; 0 for a free one), got {port!r}.")
    try: return dist.TCPStore(HOST, int(port or 0), None, True, timeout=TIMEOUT, wait_for_workers=False)
    except (RuntimeError, OSError) as e:
        if 'in use' in str(e).lower() or 'EADDRINUSE' in str(e):
            raise ValueError(f"Port {port} on {HOST} is in use: the processes cannot meet there. Choose another "
                             f"(MASTER_PORT) or leave it unset for a free one.") from None
        raise

def train_distributed(model, # A name from `list_models()`
                      processes=2, # How many processes to train on (at most `usable_cores()`)
                      out=None, # Folder rank 0 saves the model to; required
                      port=None, # Local port the processes meet on; default: env MASTER_PORT, else a free one
                      progress=True, # Rank 0 shows fastai's progress bar and loss table
                      threads=None, # torch threads per process; default: cores // processes
                      process_bs=None, # Rows per process per step; default: the loader's bs (64), a global batch of processes x 64
                      **kwargs # Passed to `train_model`: epochs, lr, wd, seed, ratings, splits, item_name ...
                     ):
    """Train `model` data-parallel on `processes` CPU processes of this machine (torch DDP, gloo), rank 0 saving it to
    `out`; return it loaded in this process, with `loss_table` (rank 0's) and `process_losses` (each process's final
    train and valid loss: the valid ones agree, every process holding the same weights)."""
    run = dict(model=model, out=out, process_bs=process_bs, **kwargs)
    return train_distributed_runs([run], processes, port=port, progress=progress, threads=threads)[0]

def train_distributed_runs(runs, # `train_distributed`'s model, out, process_bs and `train_model` arguments, one dict a run
                           processes=2, # How many processes to train on (at most `usable_cores()`)
                           port=None, # Local port the processes meet on; default: env MASTER_PORT, else a free one
                           progress=True, # Rank 0 shows fastai's progress bar and loss table
                           threads=None # torch threads per process; default: cores // processes
                          ) -> list:
    "`train_distributed` for several runs, one after another in the same processes (started, and their libraries imported, once)."
    from .saving import check_folder, load
    from .experiments import LossTable
    if not isinstance(runs, (list, tuple)) or not runs or not all(isinstance(r, dict) and 'model' in r for r in runs):
        raise TypeError("runs must be a non-empty list of dicts, each with a model and train_model's arguments.")
    jobs = []
    for r in runs:
        r = dict(r)
        model, out, process_bs = r.pop('model'), r.pop('out', None), r.pop('process_bs', None)
        check_distributable(model, processes, **r)
        if out is None: raise ValueError("train_distributed needs out: the folder rank 0 saves the model to (it is loaded from there).")
        check_folder(out)
        if process_bs is not None: _count(process_bs, 'process_bs')
        jobs.append(dict(model=model, out=str(out), progress=progress, process_bs=process_bs, **r))
    if len({j['out'] for j in jobs}) < len(jobs): raise ValueError("Each run needs its own out folder: "
                                                                   "two runs would save to the same one.")
    if threads is None: threads = max(1, usable_cores() // processes)
    threads = _count(threads, 'threads')
    store = _listen(port)
    import torch.multiprocessing as mp
    from torch.multiprocessing.spawn import ProcessException
    queue = mp.get_context('spawn').SimpleQueue()
    results, errors = {}, []
    def drain():
        while not queue.empty():
            kind, v = queue.get()
            if kind == 'result': results[v['job'], v['rank']] = v
            else: errors.append(v)
    start = time.perf_counter()
    ctx = mp.start_processes(_spawned, args=(processes, store.port, threads, jobs, queue), nprocs=processes, join=False,
                             start_method='spawn')
    try:
        while not ctx.join(timeout=0.2): drain()
    except ProcessException as e:
        drain()
        raise _rebuilt(errors, e) from None
    except BaseException:  # Ctrl-C: no process outlives the call
        for p in ctx.processes:
            if p.is_alive(): p.terminate()
        for p in ctx.processes: p.join()
        raise
    finally: del store
    drain()
    wall = time.perf_counter() - start
    out = []
    for i, job in enumerate(jobs):
        learn = load(job['out'])
        lt = LossTable()
        lt.rows, lt.seconds = results[i, 0]['rows'], results[i, 0]['seconds']
        learn.add_cb(lt)
        learn.process_losses = [results[i, r]['final'] for r in range(processes)]
        learn.wall_seconds = wall
        out.append(learn)
    return out

def train_from_env(model, # A name from `list_models()`
                   out=None, # Folder rank 0 saves the model to
                   **kwargs # Passed to `train_rank` and `train_model`
                  ):
    """Under torchrun: join the process group its environment describes (NCCL on this process's GPU, LOCAL_RANK, when
    CUDA is available; else gloo on the CPU), train as one of its processes, leave it. Rank 0 saves to `out`."""
    check_distributable(model, int(os.environ['WORLD_SIZE']), cores=False, **kwargs)
    device = None
    if torch.cuda.is_available():
        device = torch.device('cuda', int(os.environ.get('LOCAL_RANK', 0)))
        torch.cuda.set_device(device)
    dist.init_process_group('nccl' if device is not None else 'gloo', timeout=TIMEOUT)
    try: return train_rank(model, out, device=device, **kwargs)
    finally: dist.destroy_process_group()
