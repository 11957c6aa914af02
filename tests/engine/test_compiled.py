"The sparse path's compiled kernel (engine/rows.c): PyTorch's numbers on any thread count, and the fallback without a compiler."
import shutil

import pytest
import torch

import movierecs as m
from movierecs.engine import compiled
from movierecs.engine.sparse import SparseAdam

pytestmark = pytest.mark.skipif(shutil.which('cc') is None, reason='no C compiler here: the compiled kernel cannot be built')

@pytest.fixture
def mode(monkeypatch):
    "mode('1') runs the compiled kernel, mode('0') PyTorch's steps (a fresh lookup each time)."
    def set_mode(v):
        monkeypatch.setenv('MOVIERECS_COMPILE', v); compiled.reset()
    yield set_mode
    compiled.reset()

def _fit(n_rows=300, D=64, steps=60, bs=1024, seed=0, dtype=torch.float32):
    "A sparse embedding and a dense bias stepped by SparseAdam on random batches under changing hypers; the weights after settling."
    torch.manual_seed(seed)
    emb, lin = torch.nn.Embedding(n_rows, D, sparse=True).to(dtype), torch.nn.Linear(D, 1).to(dtype)
    opt = SparseAdam(list(emb.parameters()) + list(lin.parameters()), lr=1e-2, wd=0.1)
    emb.register_forward_pre_hook(lambda mod, inp: opt.bring_up(mod.weight, inp[0]))
    g = torch.Generator().manual_seed(seed + 1)
    for step in range(steps):
        x = torch.randint(0, n_rows // (1 + step % 3), (bs,), generator=g)  # some rows skip many steps
        opt.set_hyper('lr', 1e-2 * (1 + step % 5) / 3); opt.set_hyper('mom', 0.85 + 0.05 * (step % 3))
        loss = (lin(emb(x)) - torch.rand(bs, 1, generator=g, dtype=dtype)).pow(2).mean()
        opt.zero_grad(); loss.backward(); opt.step()
    opt.settle()
    return [emb.weight.detach().clone(), *[p.detach().clone() for p in lin.parameters()]], opt, emb

def test_the_kernel_steps_as_pytorch_does(mode):
    mode('1'); assert compiled.kernel_status() == 'compiled'
    a, _, _ = _fit()
    mode('0'); b, _, _ = _fit()
    gap = max(float((x - y).abs().max()) for x, y in zip(a, b))
    assert 0 < gap < 1e-6, gap  # float32 rounding apart (measured 3e-7); a wrong formula moves weights by 1e-3 and more

def test_the_same_numbers_on_one_thread_and_two(mode):
    mode('1')
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1); a, _, _ = _fit(n_rows=4000, bs=4096)
        torch.set_num_threads(2); b, _, _ = _fit(n_rows=4000, bs=4096)
    finally: torch.set_num_threads(threads)
    assert all(torch.equal(x, y) for x, y in zip(a, b))  # each row is one thread's: no order of sums depends on the threads

def test_scratch_is_clean_between_steps(mode):
    mode('1')
    _, opt, emb = _fit(steps=5)
    c = opt.catchups[emb.weight]
    assert c.slot is not None and bool((c.slot == -1).all())  # the kernel hands every row's place back

def test_an_index_out_of_range_changes_nothing(mode):
    mode('1')
    _, opt, emb = _fit(steps=3)
    p, before = emb.weight, emb.weight.detach().clone()
    with pytest.raises(IndexError, match='index 300 is out of range for an embedding of 300 rows'): opt.bring_up(p, torch.tensor([2, 300]))
    p.grad = torch.sparse_coo_tensor(torch.tensor([[1, -1]]), torch.ones(2, 64), (300, 64), check_invariants=False)
    with pytest.raises(IndexError, match='index -1 is out of range'): opt.step()
    assert torch.equal(p.detach(), before)

def test_float64_tables_take_pytorchs_steps(mode):
    mode('1'); a, _, _ = _fit(dtype=torch.float64, steps=20)
    mode('0'); b, _, _ = _fit(dtype=torch.float64, steps=20)
    assert all(torch.equal(x, y) for x, y in zip(a, b))  # the kernel is float32: float64 tables fall back, bit for bit

def test_without_a_compiler_the_sparse_path_runs_pytorchs_steps(mode, monkeypatch, tmp_path):
    r = m.synthetic_ratings(n_users=60, n_movies=80, density=0.6, seed=0)
    def losses():  # and whether the kernel stepped (only it keeps each row's place in `slot`)
        learn = m.train_model('dot_bias', epochs=2, lr=1e-2, wd=0.1, seed=3, ratings=r, item_name='title', progress=False, sparse=True)
        kernel = all(c.slot is not None for c in learn.opt.catchups.values())
        return learn.loss_table.df[['train_loss', 'valid_loss']].to_numpy(), kernel
    mode('0'); fallback, kernel = losses()
    assert not kernel
    mode('1'); fast, kernel = losses()
    assert kernel
    monkeypatch.setenv('MOVIERECS_CACHE', str(tmp_path))  # nothing built yet there
    monkeypatch.setenv('CC', str(tmp_path/'no-such-cc'))
    compiled.reset()
    with pytest.warns(RuntimeWarning, match="PyTorch.s steps .slower.: no C compiler: '.*no-such-cc' is not on PATH"):
        assert compiled.kernel() is None
    again, kernel = losses()
    assert not kernel and (again == fallback).all()  # today's path, the same numbers
    assert abs(fast - fallback).max() < 1e-5  # and the kernel's are those up to float32 rounding

def test_a_failed_build_leaves_no_library(mode, monkeypatch, tmp_path):
    monkeypatch.setenv('MOVIERECS_CACHE', str(tmp_path))
    monkeypatch.setenv('CC', shutil.which('false'))  # a compiler that fails
    compiled.reset()
    with pytest.warns(RuntimeWarning, match='false failed on rows.c'): assert compiled.kernel() is None
    assert list((tmp_path/'kernels').iterdir()) == []  # no half-written library is left for the next run to load
    _, opt, _ = _fit(steps=3)
    assert isinstance(opt, SparseAdam)  # and training goes on, on PyTorch's steps

def test_the_build_is_cached(mode, monkeypatch, tmp_path):
    monkeypatch.setenv('MOVIERECS_CACHE', str(tmp_path))
    mode('1'); assert compiled.kernel() is not None
    built = list((tmp_path/'kernels').glob('rows-*.so'))
    assert len(built) == 1
    monkeypatch.setenv('CC', str(tmp_path/'no-such-cc')); compiled.reset()
    assert compiled.kernel() is not None  # built once: a later run loads it without a compiler

@pytest.mark.parametrize('t', [torch.arange(40).reshape(20, 2), torch.rand(20, 1), torch.rand(20, dtype=torch.float64),
                               torch.randint(0, 9, (20, 3), dtype=torch.uint8), torch.randint(0, 9, (20, 5), dtype=torch.int32),
                               torch.rand(20, 3, 4)], ids=['codes', 'ratings', 'float64', 'bytes', 'int32x5', '3d'])
def test_the_shuffles_gather_is_index_select(mode, t):
    from movierecs.engine.tensors import gather_rows
    perm = torch.randperm(20, generator=torch.Generator().manual_seed(0))
    mode('1')
    assert torch.equal(gather_rows(t, perm), t.index_select(0, perm))
    assert torch.equal(gather_rows(t, perm[:7]), t.index_select(0, perm[:7]))  # fewer rows than the source
    with pytest.raises(IndexError): gather_rows(t, torch.tensor([3, 20]))  # out of range: PyTorch's own error
