"The fast path's loader: batches of codes and ratings sliced from in-memory tensors, a new permutation every epoch."
import math
import numpy as np, pandas as pd
import torch
from fastai.data.core import DataLoaders
from fastai.torch_core import to_detach
from . import compiled
from .fastai_glue import TensorLoader
__all__ = ['VAL_BS', 'TensorDataLoader', 'fast_dataloaders']

class TensorDataLoader(TensorLoader):
    "Batches of (user, item) codes and ratings sliced from tensors: a new permutation every epoch, `drop_last` like fastai."
    def __init__(self, x, # (n, 2) int64 codes of user and item
                 y, # (n, 1) float32 ratings
                 bs=64, # Batch size
                 shuffle=False, # A new random order every epoch (training)
                 drop_last=None, # Drop the last partial batch; default: `shuffle`, as fastai does
                 seed=None, # Seed of the permutations
                 src=None # The fastai loader holding the same rows: classes, items, show methods are its
                ):
        self.x, self.y, self.bs, self.shuffle, self.src = x, y, bs, shuffle, src
        self.drop_last = shuffle if drop_last is None else drop_last
        self.gen = torch.Generator()
        self.gen.manual_seed(torch.initial_seed() if seed is None else seed)
        self.device = None

    @property
    def n(self): return len(self.x)
    def __len__(self): return self.n // self.bs if self.drop_last else math.ceil(self.n / self.bs)

    def __iter__(self):
        ts = [self.x] if self.y is None else [self.x, self.y]  # no ratings (a test set): batches of codes alone
        if self.shuffle:
            perm = torch.randperm(self.n, generator=self.gen)
            ts = [gather_rows(t, perm) for t in ts]  # one gather per epoch; each batch is then a view
        if self.device is not None: ts = [t.to(self.device) for t in ts]
        for i in range(len(self)): yield tuple(t[i*self.bs:(i+1)*self.bs] for t in ts)

    def one_batch(self):
        if len(self) == 0: raise ValueError(f'This loader has no batch: {self.n} rows, bs={self.bs}, drop_last={self.drop_last}.')
        return next(iter(self))
    def to(self, device): self.device = device; return self
    def to_detach(self, b, cpu=True, gather=True): return to_detach(b, cpu, gather)  # fastai's, asked of the loader by `Learner.to_detach`
    def get_idxs(self): return list(range(self.n))  # `get_preds(reorder=True)`: the rows come in storage order unless shuffled
    def new(self, dataset=None, shuffle=None, drop_last=None, bs=None, **kwargs):
        "A loader over the same rows, or over `dataset`'s (`dls.test_dl(frame)`, fastai's `new_empty`); the permutations continue."
        x, y = (self.x, self.y) if dataset is None else self._rows_of(dataset)
        dl = TensorDataLoader(x, y, bs or self.bs, self.shuffle if shuffle is None else shuffle,
                              self.drop_last if drop_last is None else drop_last, src=self.src)
        dl.gen, dl.device = self.gen, self.device
        return dl

    def _rows_of(self, ds):
        ("Codes and ratings (None when it has none) of a frame of ids, coded with this loader's vocabulary ('#na#' for an id it lacks), "
         "or of fastai's processed tabular rows.")
        frame = ds if isinstance(ds, pd.DataFrame) else getattr(ds, 'items', None)
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(f"A loader of these rows is made from a DataFrame of ids (dls.test_dl(frame)), not a {type(ds).__name__}.")
        if len(frame) == 0: return self.x[:0], (None if self.y is None else self.y[:0])
        names, y_names = list(self.cat_names), list(self.y_names)
        if self.x.dim() != 2 or self.x.shape[1] != len(names):
            raise TypeError(f"This loader serves rows of another shape than ({', '.join(names)}) codes: "
                            "it cannot make a test set of a frame.")
        missing = [c for c in names if c not in frame.columns]
        if missing: raise ValueError(f"The test items lack column(s) {missing}: give a frame with {names} columns.")
        if ds is frame:  # ids, as the training frame held them
            codes = [pd.Index(list(self.classes[c])[1:]).get_indexer(frame[c]) + 1 for c in names]
            x = torch.from_numpy(np.stack(codes, 1).astype('int64'))
        else: x = torch.from_numpy(frame[names].to_numpy('int64', copy=True))  # fastai's processed rows: codes already
        has_y = y_names and all(c in frame.columns for c in y_names)
        y = torch.from_numpy(frame[y_names].to_numpy('float32', copy=True)) if has_y else None
        return x, y

    def __getattr__(self, k):
        if k.startswith('__') or k == 'src': raise AttributeError(k)
        return getattr(self.src, k)  # classes, items, dataset, cat_names, show_batch ...

def gather_rows(t:torch.Tensor, perm:torch.Tensor) -> torch.Tensor:
    "`t.index_select(0, perm)`, in the compiled kernel when there is one (rows asked for ahead, both cores): the same tensor."
    plain = (t.device.type == 'cpu' and t.layout == torch.strided and t.is_contiguous() and t.dim() >= 1 and not t.requires_grad
             and not t.is_quantized and not t.is_conj() and not t.is_neg() and perm.dim() == 1 and perm.dtype == torch.long)
    lib = compiled.kernel() if plain else None
    if lib is None or len(t) == 0: return t.index_select(0, perm)
    out, perm = t.new_empty((len(perm),) + t.shape[1:]), perm.contiguous()
    if lib.mr_gather(t.data_ptr(), len(t), t[0].numel() * t.element_size(), perm.data_ptr(), len(perm), out.data_ptr(),
                     torch.get_num_threads()) < 0: return t.index_select(0, perm)  # an index out of range: PyTorch's error
    return out

def loader_tensors(dl):
    "The (user, item) codes and ratings of a fastai tabular loader's rows, in storage order."
    items = dl.items
    x = torch.from_numpy(items[list(dl.cat_names)].to_numpy('int64', copy=True))
    y = torch.from_numpy(items[list(dl.y_names)].to_numpy('float32', copy=True))
    return x, y

VAL_BS = 4096  # validation rows per batch on the fast path: the valid loss is a row-weighted mean, so only rounding differs

def fast_dataloaders(dls, # The faithful `DataLoaders` (their split and vocabulary are kept)
                     seed=None, # Seed of the training permutations
                     val_bs=None # Validation batch size; default: the larger of `VAL_BS` and the training bs
                    ) -> DataLoaders:
    "`DataLoaders` over the same rows as `dls`, as in-memory tensors."
    train, valid = dls.train, dls.valid
    return DataLoaders(TensorDataLoader(*loader_tensors(train), bs=train.bs, shuffle=train.shuffle, drop_last=train.drop_last, seed=seed,
                                        src=train),
                       TensorDataLoader(*loader_tensors(valid), bs=val_bs or max(VAL_BS, valid.bs), drop_last=False, src=valid),
                       path=dls.path)
