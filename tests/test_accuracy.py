"Every notebook experiment retrained on ML-100k, each once; its final valid MSE held to a threshold given as data."
import pytest
from movierecs import EXPERIMENTS, FastLearner, TensorDataLoader

pytestmark = [pytest.mark.slow, pytest.mark.realdata]

@pytest.mark.parametrize('name', list(EXPERIMENTS))
def test_final_valid_loss(name, trained):
    learn = trained(name)
    assert type(learn) is FastLearner and type(learn.dls.train) is TensorDataLoader  # the default path: a true permutation
    t = learn.loss_table.df
    assert len(t) == EXPERIMENTS[name].epochs and t.notna().all().all()
    final = t.valid_loss.iloc[-1]
    bar = EXPERIMENTS[name].threshold  # thresholds are data: `Experiment.bar`, else the published value + SLACK
    assert final < bar, f'{name}: final valid MSE {final:.4f} ≥ threshold {bar:.4f}'
    assert final == pytest.approx(learn.validate()[0], abs=1e-6)  # the table holds what the model scores

def test_weight_decay_fixes_overfitting(trained):
    "The notebook's lesson: wd=0.1 beats the default on `DotProductBias`."
    assert trained('dot_bias_wd').loss_table.df.valid_loss.iloc[-1] < trained('dot_bias').loss_table.df.valid_loss.iloc[-1]
