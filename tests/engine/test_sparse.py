("The sparse path: SparseAdam steps as fastai's dense Adam would (up to eps), the rows it does not touch included, in the compiled "
 "kernel and in PyTorch's steps (its fallback); train_model(sparse=True).")
import copy, shutil

import pytest
import torch
from fastai.layers import Embedding

import movierecs as m
from movierecs.engine import compiled, sparse
from movierecs.engine.fast import FastAdam
from movierecs.engine.sparse import SparseAdam, make_sparse, sparse_embeddings

@pytest.fixture(params=['compiled', 'torch'])
def path(request, monkeypatch):
    "Each exactness test twice: on the compiled kernel, and on PyTorch's steps (what a machine without a compiler runs)."
    monkeypatch.setenv('MOVIERECS_COMPILE', '1' if request.param == 'compiled' else '0')
    compiled.reset()
    if request.param == 'compiled' and compiled.kernel() is None:
        if shutil.which('cc') is None: pytest.skip('no C compiler here: the compiled kernel cannot be built')
        pytest.fail(f'a compiler is here but the kernel was not built: {compiled.kernel_status()}')
    yield request.param
    compiled.reset()

def _pair(eps, wd=0.1, n_users=50, n_movies=80, seed=0):
    "The same DotProductBias twice: one stepped by fastai's dense Adam (FastAdam), one by SparseAdam on sparse gradients."
    torch.manual_seed(seed)
    dense = m.DotProductBias(n_users, n_movies, 8, y_range=None)
    sp = copy.deepcopy(dense); sparse_embeddings(sp)
    o1, o2 = FastAdam(list(dense.parameters()), lr=1e-2, wd=wd, eps=eps), SparseAdam(list(sp.parameters()), lr=1e-2, wd=wd, eps=eps)
    for e in sp.modules():
        if isinstance(e, torch.nn.Embedding): e.register_forward_pre_hook(lambda mod, inp: o2.bring_up(mod.weight, inp[0]))
    return dense, sp, o1, o2

def _train(dense, sp, o1, o2, batches):
    "Step both on the same batches under a changing lr and momentum (as fit_one_cycle's); SparseAdam settles at the end."
    g = torch.Generator().manual_seed(1)
    for step, x in enumerate(batches):
        y = torch.rand(len(x), 1, generator=g) * 5
        for o in (o1, o2): o.set_hyper('lr', 1e-2 * (1 + step % 7) / 4); o.set_hyper('mom', 0.85 + 0.05 * (step % 3))
        for model, o in ((dense, o1), (sp, o2)):
            loss = ((model(x) - y)**2).mean(); o.zero_grad(); loss.backward(); o.step()
    o2.settle()
    return max(float((a - b).detach().abs().max()) for a, b in zip(dense.parameters(), sp.parameters()))

def _batches(n=400, bs=8, n_users=50, n_movies=80, rare=None):
    g = torch.Generator().manual_seed(2)
    out = [torch.stack([torch.randint(1, n_users, (bs,), generator=g), torch.randint(1, n_movies, (bs,), generator=g)], 1)
           for _ in range(n)]
    if rare is not None:  # user 0 and movie 0 only in these batches: absent for longer than WINDOW steps in between
        for i in rare: out[i][0] = torch.tensor([0, 0])
    return out

def test_sparse_adam_matches_dense_adam_when_eps_is_negligible(path):
    # with eps -> 0 the catch-up of the rows a batch skips is exact: float32 rounding is all that differs
    assert _train(*_pair(eps=1e-12), _batches()) < 1e-5

def test_rows_absent_for_longer_than_the_window_are_caught_up(path):
    assert sparse.WINDOW < 400
    assert _train(*_pair(eps=1e-12), _batches(n=sparse.WINDOW + 200, rare=(0, sparse.WINDOW + 150))) < 1e-5

def test_lazy_adam_would_not_match(path):
    # the bar above can fail: without the catch-up (rows frozen while absent, as a lazy Adam) the weights differ widely
    dense, sp, o1, o2 = _pair(eps=1e-12)
    for e in sp.modules():
        if isinstance(e, torch.nn.Embedding): e._forward_pre_hooks.clear()
    o2.settle = lambda: None
    assert _train(dense, sp, o1, o2, _batches()) > 1e-3

def test_weight_decay_alone_is_caught_up_exactly(path):
    # mom=sqr_mom=0: a skipped row does not move, it only decays: exact whatever eps is
    dense, sp, o1, o2 = _pair(eps=1e-5)
    for o in (o1, o2): o.set_hyper('mom', 0.); o.set_hyper('sqr_mom', 0.)
    g = torch.Generator().manual_seed(1)
    for x in _batches(100):
        y = torch.rand(len(x), 1, generator=g)
        for model, o in ((dense, o1), (sp, o2)):
            loss = ((model(x) - y)**2).mean(); o.zero_grad(); loss.backward(); o.step()
    o2.settle()
    assert max(float((a - b).detach().abs().max()) for a, b in zip(dense.parameters(), sp.parameters())) < 1e-5

def test_sparse_gradients_and_dense_ones_mix(path):
    # a dense parameter beside sparse embeddings steps exactly as fastai's Adam
    torch.manual_seed(0)
    emb, lin = Embedding(10, 4), torch.nn.Linear(4, 1)
    emb2, lin2 = copy.deepcopy(emb), copy.deepcopy(lin); emb2.sparse = True
    o1 = FastAdam(list(emb.parameters()) + list(lin.parameters()), lr=1e-2, eps=1e-12)
    o2 = SparseAdam(list(emb2.parameters()) + list(lin2.parameters()), lr=1e-2, eps=1e-12)
    emb2.register_forward_pre_hook(lambda mod, inp: o2.bring_up(mod.weight, inp[0]))
    for i in range(30):
        x = torch.tensor([i % 10, (3*i) % 10])
        for e, l, o in ((emb, lin, o1), (emb2, lin2, o2)):
            loss = l(e(x)).pow(2).mean(); o.zero_grad(); loss.backward(); o.step()
    o2.settle()
    assert emb2.weight.grad is None or emb2.weight.grad.is_sparse
    assert torch.allclose(lin.weight, lin2.weight, atol=1e-6) and torch.allclose(lin.bias, lin2.bias, atol=1e-6)

def test_train_model_sparse_learns_like_the_dense_path():
    r = m.synthetic_ratings(n_users=60, n_movies=80, density=0.6, seed=0)
    kw = dict(epochs=4, lr=1e-2, wd=0.1, seed=3, ratings=r, item_name='title', progress=False)
    dense, sp = m.train_model('dot_bias', **kw), m.train_model('dot_bias', sparse=True, **kw)
    d, s = (float(l.loss_table.df.valid_loss.iloc[-1]) for l in (dense, sp))
    assert sp.train_spec['sparse'] is True and 'sparse' not in dense.train_spec
    assert isinstance(sp.opt, SparseAdam) and sp.model.user_factors.sparse and not dense.model.user_factors.sparse
    assert type(sp.model).__name__ == 'SparseDotProductBias' and type(dense.model).__name__ == 'DotProductBias'
    assert abs(d - s) < 0.02 * d, (d, s)  # Adam's eps is the only difference (about 0.5% here)

def test_sparse_path_refusals():
    r = m.synthetic_ratings(n_users=20, n_movies=30, seed=0)
    with pytest.raises(ValueError, match='L-BFGS'): m.train_model('autorec', sparse=True, ratings=r, progress=False)
    with pytest.raises(TypeError, match='sparse must be True or False'): m.train_model('dot', sparse='yes', ratings=r, progress=False)
    with pytest.raises(ValueError, match='bs'): m.train_model('dot', bs=0, ratings=r, progress=False)
    learn = m.get_learner('dot_bias_params', m.dataloaders(r, seed=0))
    with pytest.raises(ValueError, match='no nn.Embedding'): make_sparse(learn)
    learn = m.get_learner('dot_bias', m.dataloaders(r, seed=0))
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    with pytest.raises(ValueError, match='before the first fit'): make_sparse(learn)
    o = SparseAdam(list(m.DotProductBias(5, 5, 2).parameters()), lr=1., wd=2.)
    with pytest.raises(ValueError, match='lr\\*wd must be below 1'): o.step()

def test_a_sparse_learner_exports_and_saves(tmp_path):
    from fastai.learner import load_learner
    r = m.synthetic_ratings(n_users=20, n_movies=30, seed=0)
    learn = m.train_model('dot_bias', epochs=1, ratings=r, progress=False, sparse=True, bs=32)
    x = learn.dls.valid.x[:5]
    learn.model.eval()
    with torch.no_grad(): before = learn.model(x)
    learn.export(tmp_path/'sparse.pkl')  # fastai's pickle: the hooks must pickle
    with torch.no_grad(): assert torch.equal(load_learner(tmp_path/'sparse.pkl').model.eval()(x), before)
    m.save(learn, tmp_path/'model')
    with torch.no_grad(): assert torch.allclose(m.load(tmp_path/'model').model.eval()(x), before)
    back = m.load(tmp_path/'model')
    assert back.train_spec['sparse'] is True and back.train_spec['bs'] == 32
    assert back.opt_func is SparseAdam and back.model.user_factors.sparse  # a further fit stays on the sparse path

def test_int32_rows_are_brought_up(path):
    # a custom model may index its embeddings with int32 codes, as the dense path allows
    dense, sp, o1, o2 = _pair(eps=1e-12)
    assert _train(dense, sp, o1, o2, [x.int() for x in _batches(60)]) < 1e-5

def test_learner_save_load_and_lr_find_after_a_fit(tmp_path):
    # fastai's learn.save/load (with the optimizer; torch.load's weights_only) and lr_find, which saves and reloads, after a fit
    learn = m.train_model('dot_bias', epochs=1, ratings=m.synthetic_ratings(seed=0), item_name='movie', progress=False, sparse=True, bs=32)
    before = copy.deepcopy(learn.model.state_dict())
    learn.path = tmp_path
    learn.save('x'); learn.load('x')
    assert all(torch.equal(before[k], v) for k, v in learn.model.state_dict().items())
    with learn.no_bar(), learn.no_logging():
        learn.lr_find(num_it=20, show_plot=False)
        learn.fit_one_cycle(1, 1e-2)  # training goes on after the reload
    assert all(torch.isfinite(v).all() for v in learn.model.state_dict().values())
    assert m.make_sparse(learn) is learn and sum(isinstance(cb, sparse.SparseFlush) for cb in learn.cbs) == 1  # twice: once
