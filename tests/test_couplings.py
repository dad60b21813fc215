import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import interpolants as si
from interpolants.couplings import Coupling, CouplingSample, Independent, as_coupling
from interpolants.data import DataBatch

FIT = dict(steps=6, batch_size=16, seed=3, ema=0.0, progress=False)


def data(n=64, seed=0):
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed)) * 0.5 + 1.0


def params(model):
    return torch.cat([p.detach().flatten() for p in model.velocity.parameters()])


def test_independent_draws_the_base_apart_from_x1():
    x1 = data(8)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    pair = Independent().sample(DataBatch(x1), g())
    assert pair.cond is None and pair.x1 is x1
    assert torch.equal(pair.x0, si.StandardNormal((2,)).sample(8, g()))
    base = si.distributions.DiagonalNormal(torch.tensor([3.0, -3.0]), torch.ones(2))
    far = Independent(base).sample(DataBatch(x1), g())
    assert torch.equal(far.x0, base.sample(8, g()))
    bound = Independent().bind(DataBatch(x1.double()))
    assert bound.base.event_shape == (2,) and bound.base.dtype == torch.float64
    with pytest.raises(ValueError, match="base events"):
        Independent(torch.randn(5, 3)).bind(DataBatch(x1))
    assert isinstance(as_coupling(None), Independent) and as_coupling(bound) is bound


class Shifted(Coupling):
    """x0 = shift + N(0, I), independent of x1: a user's coupling."""

    def __init__(self, shift):
        self.shift = torch.as_tensor(shift, dtype=torch.float32)
        self.base = si.distributions.DiagonalNormal(self.shift, torch.ones_like(self.shift))

    def sample(self, batch, generator=None):
        x1 = batch.x1
        noise = torch.randn(x1.shape, generator=generator, dtype=x1.dtype)
        return CouplingSample(self.shift + noise, x1)


def test_a_users_coupling_trains_reproduces_and_gives_the_models_base():
    x = data()
    opts = dict(net_options={"width": 16, "depth": 1}, **FIT)
    a = si.fit(x, base=Shifted([2.0, -1.0]), **opts)
    b = si.fit(x, base=Shifted([2.0, -1.0]), **opts)
    assert torch.equal(params(a), params(b))
    assert torch.equal(a.base.mean, torch.tensor([2.0, -1.0]))
    # the same draws as the default coupling when the shift is zero: the loop adds nothing
    zero = si.fit(x, base=Shifted([0.0, 0.0]), **opts)
    assert torch.equal(params(zero), params(si.fit(x, **opts)))
    assert not torch.equal(params(a), params(zero))


class Labelled(Coupling):
    """Independent N(0, I) base, the data's labels as one-hot cond (classifier-free style)."""

    base = None

    def bind(self, example):
        self.base = si.StandardNormal(example.x1.shape[1:])
        return self

    def sample(self, batch, generator=None):
        x0 = self.base.sample(len(batch.x1), generator)
        return CouplingSample(x0, batch.x1, nn.functional.one_hot(batch.label, 3).float())


class CondNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2 + 1 + 3, 2)
        self.seen = []

    def forward(self, t, x, cond=None):
        self.seen.append(None if cond is None else cond.clone())
        return self.lin(torch.cat([x, t[:, None], cond], 1))


@pytest.mark.parametrize("gamma", ["zero", "brownian"])
def test_cond_reaches_the_network_row_by_row(gamma):
    x = data(30)
    labels = torch.arange(30) % 3
    net = CondNet()
    I = si.Interpolant("linear", gamma=gamma)
    si.fit(TensorDataset(x, labels), base=Labelled(), interpolant=I, net=net, **FIT)
    cond = net.seen[0]
    assert cond is not None and cond.shape == (16 * (2 if gamma == "brownian" else 1), 3)
    # the labels of the rows drawn at the first step (antithetic pairs repeat them)
    g = torch.Generator().manual_seed(FIT["seed"])
    index = torch.randint(30, (16,), generator=g)
    want = nn.functional.one_hot(labels[index], 3).float()
    assert torch.equal(cond, want if gamma == "zero" else torch.cat([want, want]))
