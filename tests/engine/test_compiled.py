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

def _model_and_batch(seed=0, n_users=40, n_movies=30, bs=200):
    torch.manual_seed(seed)
    from movierecs.models.collab import SparseDotProductBias  # what make_sparse makes of a DotProductBias
    model = SparseDotProductBias(n_users, n_movies, 8)
    for e in (model.user_factors, model.movie_factors, model.user_bias, model.movie_bias): e.sparse = True
    g = torch.Generator().manual_seed(seed)
    return model, torch.stack([torch.randint(0, n_users, (bs,), generator=g), torch.randint(0, n_movies, (bs,), generator=g)], 1)

def _graph(t) -> set:
    "The names of the autograd nodes behind `t`."
    seen, todo = set(), [t.grad_fn]
    while todo:
        f = todo.pop()
        if f is None or f.name() in seen: continue
        seen.add(f.name()); todo += [g for g, _ in f.next_functions]
    return seen

def _forward_backward(model, x):
    model.zero_grad(set_to_none=True)
    pred = model(x)
    (pred.pow(2) * torch.linspace(0, 1, len(x))[:, None]).sum().backward()
    return pred.detach(), [p.grad.coalesce().to_dense() for p in model.parameters()]

def test_dot_product_bias_reads_its_rows_in_place_on_the_sparse_path(mode):
    from movierecs.engine.sparse import dot_rows
    model, x = _model_and_batch()
    mode('1'); fused, fused_grads = _forward_backward(model, x)
    assert '_DotBiasBackward' in _graph(model(x)) and 'EmbeddingBackward0' not in _graph(model(x))  # the kernel's node, no lookups
    mode('0'); plain, plain_grads = _forward_backward(model, x)
    assert (fused - plain).abs().max() < 1e-6  # the dot's sum in another order: rounding apart
    assert all((a - b).abs().max() < 1e-6 for a, b in zip(fused_grads, plain_grads))
    mode('1')
    with torch.no_grad(): assert dot_rows(*model.children(), x[:, 0], x[:, 1]) is None  # validation: PyTorch's lookups
    model.user_bias.sparse = False
    assert dot_rows(model.user_factors, model.movie_factors, model.user_bias, model.movie_bias, x[:, 0], x[:, 1]) is None

def test_the_kernels_dot_runs_the_lookups_hooks(mode):
    model, x = _model_and_batch()
    seen = []
    for e in (model.user_factors, model.movie_factors, model.user_bias, model.movie_bias):
        e.register_forward_pre_hook(lambda mod, inp: seen.append((mod.weight.shape, inp[0].clone())))
    mode('1'); _forward_backward(model, x)
    # each table's hook sees its codes, as the lookups would show them: the sparse path's bring-up runs there
    assert [s for s, _ in seen] == [(40, 8), (30, 8), (40, 1), (30, 1)]
    assert all(torch.equal(i, x[:, c]) for (_, i), c in zip(seen, (0, 1, 0, 1)))

def test_the_kernels_dot_refuses_a_code_out_of_range(mode):
    model, x = _model_and_batch()
    x[3, 1] = 30
    mode('1')
    with pytest.raises(IndexError, match='index 30 is out of range for an embedding of 30 rows'): model(x)

def test_the_shuffles_gather_leaves_other_tensors_to_pytorch(mode):
    from movierecs.engine.tensors import gather_rows
    mode('1')
    perm, z = torch.tensor([2, 0, 1]), torch.rand(3, 2, dtype=torch.cfloat)
    for t in (z.conj(), torch.rand(3, 2).requires_grad_()):  # views the kernel cannot see, and autograd's
        out = gather_rows(t, perm)
        assert torch.equal(out, t.index_select(0, perm)) and out.requires_grad == t.requires_grad
    with pytest.raises((IndexError, RuntimeError)): gather_rows(torch.rand(3, 2), perm[None])  # a 2-d perm: PyTorch's error

def test_a_reloaded_optimizer_keeps_the_moments_moving(mode, tmp_path):
    # after learn.load(with_opt) every row counts as up to date at the loaded state: rows untouched since go on moving along the
    # moments they carry, as fastai's dense Adam moves them (lost when the first step's momentum weight was 0)
    import copy
    from movierecs.engine.fast import FastAdam
    torch.manual_seed(0)
    mode('1')
    dense = m.DotProductBias(30, 40, 4, y_range=None); sp = copy.deepcopy(dense)
    from movierecs.engine.sparse import sparse_embeddings
    sparse_embeddings(sp)
    o1, o2 = FastAdam(list(dense.parameters()), lr=1e-2, wd=0.1, eps=1e-12), SparseAdam(list(sp.parameters()), lr=1e-2, wd=0.1, eps=1e-12)
    for e in sp.modules():
        if isinstance(e, torch.nn.Embedding): e.register_forward_pre_hook(lambda mod, inp: o2.bring_up(mod.weight, inp[0]))
    g = torch.Generator().manual_seed(1)
    def train(steps):
        for _ in range(steps):
            x = torch.stack([torch.randint(0, 30, (6,), generator=g), torch.randint(0, 40, (6,), generator=g)], 1)
            y = torch.rand(6, 1, generator=g)
            for model, o in ((dense, o1), (sp, o2)):
                loss = ((model(x) - y)**2).mean(); o.zero_grad(); loss.backward(); o.step()
    train(50); o2.settle()
    o2.load_state_dict(copy.deepcopy(o2.state_dict()))  # what learn.load(with_opt=True), lr_find and export do
    train(50); o2.settle()
    assert max(float((a - b).abs().max()) for a, b in zip(dense.parameters(), sp.parameters())) < 1e-5

def test_a_refused_gradient_is_no_step(mode):
    mode('1')
    _, opt, emb = _fit(steps=3)
    p = emb.weight
    before = opt.state[p]['step']
    p.grad = torch.sparse_coo_tensor(torch.tensor([[1, 300]]), torch.ones(2, 64), (300, 64), check_invariants=False)
    with pytest.raises(IndexError, match='index 300 is out of range'): opt.step()
    assert opt.state[p]['step'] == before

def test_a_damaged_library_in_the_cache_is_built_again(mode, monkeypatch, tmp_path):
    monkeypatch.setenv('MOVIERECS_CACHE', str(tmp_path))
    mode('1'); assert compiled.kernel() is not None
    so = next((tmp_path/'kernels').glob('rows-*.so'))
    whole = so.read_bytes()
    cut = so.with_name('cut'); cut.write_bytes(whole[:4096]); cut.replace(so)  # truncated (a new file: this process maps the old)
    # loading it would kill the process (SIGBUS)
    compiled.reset()
    assert compiled.kernel() is not None and so.read_bytes() == whole

def test_compilers_that_write_nothing_or_take_arguments(mode, monkeypatch, tmp_path):
    monkeypatch.setenv('HOME', str(tmp_path)); monkeypatch.setenv('MOVIERECS_CACHE', '~/cache')  # ~ is the user's home
    monkeypatch.setenv('CC', shutil.which('true'))  # exits 0, writes nothing
    compiled.reset()
    with pytest.warns(RuntimeWarning, match='wrote no shared library'): assert compiled.kernel() is None
    assert not list((tmp_path/'cache'/'kernels').glob('*.so'))
    monkeypatch.setenv('CC', 'cc -O1')  # a compiler with arguments of its own, as CC='ccache gcc'
    mode('1'); assert compiled.kernel_status() == 'compiled'
    assert len(list((tmp_path/'cache'/'kernels').glob('rows-*.so'))) == 1
