import math

import pytest
import torch

import interpolants as si
from interpolants.data import Dequantized, LogitTransform


@pytest.mark.parametrize("whiten", [False, True])
def test_logit_transform_log_det_matches_autograd_and_inverts(whiten):
    gen = torch.Generator().manual_seed(0)
    x_fit = torch.rand(500, 6, generator=gen, dtype=torch.float64)
    x_fit[:, 1] = 0.7 * x_fit[:, 0] + 0.3 * x_fit[:, 1]  # correlated coordinates
    tr = LogitTransform(x_fit, alpha=0.05, whiten=whiten)
    x = torch.rand(4, 6, generator=gen, dtype=torch.float64)
    for row in x:
        jac = torch.autograd.functional.jacobian(lambda r: tr(r[None])[0], row)
        assert torch.allclose(torch.linalg.slogdet(jac)[1], tr.log_det(row[None])[0], atol=1e-10)
    assert torch.allclose(tr.inverse(tr(x)), x, atol=1e-10)
    y = tr(x_fit)  # standardised (whitened) on the data it was fitted to
    assert torch.allclose(y.mean(0), torch.zeros(6, dtype=y.dtype), atol=1e-5)
    cov = torch.cov(y.T)
    assert torch.allclose(cov.diagonal(), torch.ones(6, dtype=y.dtype), atol=1e-5)
    assert (cov[0, 1].abs() < 1e-5) == whiten  # only whitening removes the correlation
    with pytest.raises(ValueError, match="alpha"):
        LogitTransform(x_fit, alpha=0.5)


def test_logit_transform_keeps_a_density_normalised():
    # N(0, 1) in y pulled back to x in [0, 1] integrates to its mass on [y(0), y(1)]
    tr = LogitTransform(torch.rand(1000, 1, generator=torch.Generator().manual_seed(1)), 0.05)
    x = (torch.arange(200_000, dtype=torch.float64) + 0.5)[:, None] / 200_000
    y = tr(x)
    log_p = -0.5 * y.square().sum(1) - 0.5 * math.log(2 * math.pi) + tr.log_det(x)
    normal = torch.distributions.Normal(0.0, 1.0)
    ends = tr(torch.tensor([[0.0], [1.0]], dtype=torch.float64)).flatten()
    mass = float(normal.cdf(ends[1]) - normal.cdf(ends[0]))
    assert 0.5 < mass < 0.999
    assert abs(float(log_p.exp().mean()) - mass) < 1e-4


def test_dequantized_draws_fresh_noise_inside_each_cell():
    v = torch.tensor([[0.0, 16.0], [3.0, 5.0]])
    data = Dequantized(v, 17)
    gen = torch.Generator().manual_seed(0)
    a, b = data.sample(1000, gen), data.sample(1000, gen)
    cell = (a * 17).floor()
    assert ((cell == v[0]).all(1) | (cell == v[1]).all(1)).all()
    assert not torch.equal(a, b)
    assert abs(float((a * 17 - cell).mean()) - 0.5) < 0.03  # u ~ U(0, 1) within the cell
    with pytest.raises(ValueError, match="levels_data"):
        Dequantized(torch.tensor([[17.0]]), 17)


def test_fit_accepts_a_sampler_as_data():
    v = (si.data.digits("train", dequantize=False)[:50] * 17 - 0.5).round().flatten(1)
    model = si.fit(Dequantized(v, 17), steps=3, batch_size=8, net=si.nn.MLPField(64, 16, 1))
    assert model.sample(2, steps=2).shape == (2, 64)


def test_batches_carry_labels_and_rows():
    from torch.utils.data import TensorDataset

    from interpolants.data import batch_sampler

    x, labels = torch.randn(20, 2), torch.arange(20) % 4

    class Pairs(torch.utils.data.Dataset):
        def __len__(self):
            return 20

        def __getitem__(self, i):
            return x[i], int(labels[i])

    for data in (TensorDataset(x, labels), Pairs()):
        batch = batch_sampler(data)(6, torch.Generator().manual_seed(0))
        assert torch.equal(batch.x1, x[batch.index]) and torch.equal(
            batch.label, labels[batch.index]
        )
    plain = batch_sampler(x)(6, torch.Generator().manual_seed(0))
    assert plain.label is None and torch.equal(plain.x1, x[plain.index])


def test_fingerprints_tell_apart_what_objects_hold():
    from interpolants.couplings import Independent
    from interpolants.data import fingerprint

    a, b = torch.zeros(2), torch.ones(2)
    one = lambda mean: Independent(si.distributions.DiagonalNormal(mean, b))  # noqa: E731
    assert fingerprint(one(a)) == fingerprint(one(a.clone()))
    assert fingerprint(one(a)) != fingerprint(one(b))
    assert fingerprint(Independent())["class"] == "Independent"
