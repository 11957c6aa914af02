"Full-batch L-BFGS in a fastai `Learner` steps exactly as `torch.optim.LBFGS` stepped by hand."
import pytest, torch
from torch import nn
from fastai.data.core import DataLoaders
from fastai.learner import Learner
from fastai.optimizer import Adam
from movierecs.engine.tensors import TensorDataLoader
from movierecs.engine.lbfgs import LBFGSStep, lbfgs

def _problem(seed=0, n=200):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g); w = torch.randn(5, 1, generator=g)
    y = torch.sigmoid(x @ w) + 0.05*torch.randn(n, 1, generator=g)
    return x, y

def _model(seed=1):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 8), nn.Sigmoid(), nn.Linear(8, 1))

def _loss(pred, y): return ((pred - y)**2).mean()

@pytest.mark.parametrize('line_search_fn', [None, 'strong_wolfe'])
def test_lbfgs_in_a_learner_is_torchs_lbfgs_by_hand(line_search_fn):
    x, y = _problem()
    dl = TensorDataLoader(x, y, bs=len(x), shuffle=False, drop_last=False)  # one full batch per epoch
    learn = Learner(DataLoaders(dl, TensorDataLoader(x, y, bs=len(x))), _model(), loss_func=_loss,
                    opt_func=lambda p, lr: lbfgs(p, lr=lr, max_iter=5, line_search_fn=line_search_fn), cbs=LBFGSStep())
    with learn.no_bar(), learn.no_logging(): learn.fit(4, lr=1.)
    hand = _model()
    opt = torch.optim.LBFGS(hand.parameters(), lr=1., max_iter=5, history_size=100, line_search_fn=line_search_fn)
    def closure():
        opt.zero_grad(); loss = _loss(hand(x), y); loss.backward(); return loss
    for _ in range(4): opt.step(closure)
    assert all(torch.equal(p, q) for p, q in zip(learn.model.parameters(), hand.parameters()))
    assert _loss(hand(x), y) < 0.5*_loss(_model()(x), y)  # it learned: the comparison is not of two idle models

def test_lbfgs_step_refuses_another_optimizer():
    x, y = _problem()
    learn = Learner(DataLoaders(TensorDataLoader(x, y, bs=len(x)), TensorDataLoader(x, y, bs=len(x))), _model(),
                    loss_func=_loss, opt_func=Adam, cbs=LBFGSStep())
    with pytest.raises(TypeError, match='LBFGSStep needs the optimizer of opt_func=lbfgs, got Optimizer'):
        with learn.no_bar(), learn.no_logging(): learn.fit(1, lr=1e-2)

def test_restart_starts_every_epoch_afresh_as_a_new_scipy_call():
    x, y = _problem()
    dl = TensorDataLoader(x, y, bs=len(x), shuffle=False, drop_last=False)
    learn = Learner(DataLoaders(dl, TensorDataLoader(x, y, bs=len(x))), _model(), loss_func=_loss,
                    opt_func=lambda p, lr: lbfgs(p, lr=lr, max_iter=5, history_size=10), cbs=LBFGSStep(restart=True))
    with learn.no_bar(), learn.no_logging(): learn.fit(3, lr=1.)
    hand = _model()
    for _ in range(3):  # a new optimizer per epoch: no history carried over
        opt = torch.optim.LBFGS(hand.parameters(), lr=1., max_iter=5, history_size=10)
        def closure():
            opt.zero_grad(); loss = _loss(hand(x), y); loss.backward(); return loss
        opt.step(closure)
    assert all(torch.equal(p, q) for p, q in zip(learn.model.parameters(), hand.parameters()))
    kept = _model()  # one optimizer for all three epochs ends elsewhere: the restart is what the comparison tests
    opt = torch.optim.LBFGS(kept.parameters(), lr=1., max_iter=5, history_size=10)
    def closure2():
        opt.zero_grad(); loss = _loss(kept(x), y); loss.backward(); return loss
    for _ in range(3): opt.step(closure2)
    assert not all(torch.equal(p, q) for p, q in zip(kept.parameters(), hand.parameters()))

def test_fit_one_cycle_on_lbfgs_names_the_fix():
    x, y = _problem()
    learn = Learner(DataLoaders(TensorDataLoader(x, y, bs=len(x)), TensorDataLoader(x, y, bs=len(x))), _model(),
                    loss_func=_loss, opt_func=lbfgs, cbs=LBFGSStep())
    with pytest.raises(TypeError, match=r"L-BFGS has no 'mom' to set: train with learn.fit\(epochs, lr=1.\), not fit_one_cycle"):
        with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(1)
