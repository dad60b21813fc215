import math

import pytest
import torch

import interpolants as si
from interpolants.integrate import divergence
from interpolants.nn import MLPField, UNetField, default_net


def test_default_nets_keep_the_shape_and_reach_every_parameter():
    for shape, net in (
        ((3,), default_net((3,), width=16, depth=2)),
        ((1, 8, 8), default_net((1, 8, 8), width=8)),
    ):
        x, t = torch.randn(5, *shape), torch.rand(5)
        out = net(t, x)
        assert out.shape == x.shape
        out.square().sum().backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    with pytest.raises(ValueError, match="no default network"):
        default_net((2, 3))


def test_unet_divergence_on_image_events():
    torch.manual_seed(0)
    net = UNetField(channels=1, width=8).double()
    x, t = torch.randn(2, 1, 4, 4, dtype=torch.float64), torch.rand(2, dtype=torch.float64)
    _, div = divergence(net, t, x, "exact", chunk=5)
    for i in range(2):
        jac = torch.autograd.functional.jacobian(lambda y, i=i: net(t[i : i + 1], y[None])[0], x[i])
        torch.testing.assert_close(div[i], jac.reshape(16, 16).trace())


def test_fit_on_digits_images_and_bits_per_dim():
    train = si.data.load("digits")
    assert train.shape == (1400, 1, 8, 8) and 0 <= float(train.min()) and float(train.max()) <= 1
    assert si.data.load("digits", split="test").shape == (397, 1, 8, 8)
    model = si.fit(train, steps=3, batch_size=32, net_options={"width": 8})
    x = model.sample(4, steps=3)
    assert x.shape == (4, 1, 8, 8)
    lp = model.log_prob(
        train[:4], divergence="hutchinson", steps=3, generator=torch.Generator().manual_seed(0)
    )
    assert lp.shape == (4,) and torch.isfinite(lp).all()
    # bits/dim of the uniform density on [0, 1]^64 (NLL 0) is log2(17) for 17 grey levels
    assert abs(si.metrics.bits_per_dim(0.0, 64, levels=17) - math.log2(17)) < 1e-12


def test_mlp_validates_sizes():
    with pytest.raises(ValueError, match="positive"):
        MLPField(0)
