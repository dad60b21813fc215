import math

import pytest
import torch
from torch import nn

import interpolants as si
from interpolants.distributions import DiagonalNormal
from interpolants.integrate import divergence
from interpolants.nn import (
    NETWORKS,
    BlockDrift,
    Conditioning,
    CouplingFlow,
    DriftMLP,
    FreeEnergyRate,
    LatticeDrift,
    MLPField,
    RingField,
    UNetField,
    build,
    default_net,
    describe,
    mlp,
    same_drift,
)

F64 = torch.float64
BASE = DiagonalNormal(torch.zeros(3), 1.0)

# every network class: (constructor taking the cond options, inputs of a batch of n); the
# last input is the one the output is shaped like
NETS = {
    "MLPField": (
        lambda **c: MLPField(3, width=16, depth=2, time_features=4, **c),
        lambda n: (torch.rand(n), torch.randn(n, 3)),
    ),
    "UNetField": (
        lambda **c: UNetField(1, width=4, time_features=4, **c),
        lambda n: (torch.rand(n), torch.randn(n, 1, 4, 4)),
    ),
    "DriftMLP": (
        lambda **c: DriftMLP(3, torch.tensor([1.0, 2.0, 0.5]), 16, 2, 4, features=2, **c),
        lambda n: (torch.rand(n), torch.randn(n, 3)),
    ),
    "BlockDrift": (
        lambda **c: BlockDrift(4, 2, 1.5, 16, 2, 4, features=2, block_features=3, **c),
        lambda n: (torch.rand(n), torch.randn(n, 4)),
    ),
    "LatticeDrift": (
        lambda **c: LatticeDrift(4, 1.3, 4, 2, time_features=4, **c),
        lambda n: (torch.rand(n), torch.randn(n, 16)),
    ),
    "RingField": (
        lambda **c: RingField(12, sites=8, coarse=4, width=4, depth=1, kernel=3, **c),
        lambda n: (torch.rand(n), torch.randn(n, 12)),
    ),
    "FreeEnergyRate": (
        lambda **c: FreeEnergyRate(width=8, time_features=4, **c),
        lambda n: (torch.rand(n),),
    ),
    "CouplingFlow": (
        lambda **c: CouplingFlow(3, BASE, layers=4, width=8, **c),
        lambda n: (torch.randn(n, 3),),
    ),
}
CONDS = {
    "none": ({}, lambda n: None),
    "context": ({"cond_features": 2}, lambda n: torch.randn(n, 2)),
    "labels": ({"cond_features": 3, "classes": 5}, lambda n: torch.arange(n) % 5),
}


def _make(name: str, cond: str, seed: int = 0) -> nn.Module:
    """The network, with every parameter moved off its (often zero) initial value."""
    torch.manual_seed(seed)
    net = NETS[name][0](**CONDS[cond][0])
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return net


def _out(net: nn.Module, inputs: tuple, cond) -> torch.Tensor:
    """The output shaped like the last input (the flow: x and its log-det as a last column)."""
    out = net(*inputs, cond=cond)
    if isinstance(net, CouplingFlow):
        return torch.cat([out[0], out[1][:, None]], dim=1)
    return out


def test_every_network_class_is_registered_and_tested():
    assert set(NETWORKS) >= set(NETS)
    assert {"MLPField", "UNetField", "DriftMLP", "BlockDrift", "LatticeDrift",
            "FreeEnergyRate", "CouplingFlow", "RingField"} <= set(NETS)  # fmt: skip


@pytest.mark.parametrize("cond", CONDS)
@pytest.mark.parametrize("name", NETS)
def test_network_shape_gradients_and_round_trip(name, cond):
    """Output shaped like x, gradients reach every parameter, build(describe(m)) with the
    state dict gives the same function, per-row cond equals a shared one, cond matters."""
    net, n = _make(name, cond), 3
    torch.manual_seed(1)
    inputs, c = NETS[name][1](n), CONDS[cond][1](n)
    out = net(*inputs, cond=c)
    main = out[0] if isinstance(net, CouplingFlow) else out
    assert main.shape == inputs[-1].shape
    _out(net, inputs, c).sin().sum().backward()
    for key, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, key
    description = describe(net)
    assert description is not None and description["class"] == name
    assert {k: description["options"][k] for k in CONDS[cond][0]} == CONDS[cond][0]
    copy = build(description)
    copy.load_state_dict(net.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(_out(copy, inputs, c), _out(net, inputs, c), rtol=0, atol=0)
        if c is not None:  # one cond for the batch is that cond on every row
            shared = _out(net, inputs, c[0])
            torch.testing.assert_close(shared, _out(net, inputs, c[:1].expand_as(c)))
            other = (c + 1) % 5 if cond == "labels" else c + 1
            assert not torch.allclose(_out(net, inputs, other), _out(net, inputs, c))


@pytest.mark.parametrize("name", NETS)
def test_network_refuses_a_cond_it_was_not_built_for(name):
    inputs = NETS[name][1](2)
    with pytest.raises(ValueError, match="without conditioning, so cond must be None"):
        _make(name, "none")(*inputs, cond=torch.zeros(2, 2))
    context, labels = _make(name, "context"), _make(name, "labels")
    for net, cond, match in (
        (context, None, "cond .* is required"),
        (context, torch.zeros(2, 3), r"cond must have shape \(2,\) or \(2, 2\)"),
        (context, torch.zeros(5, 2), "cond must have shape"),
        (labels, None, "cond .* is required"),
        (labels, torch.zeros(2), "cond must hold integer labels"),
        (labels, torch.zeros(2, 1, dtype=torch.long), "cond must be labels of shape"),
        (labels, torch.tensor([0, 5]), r"cond must hold labels in \[0, 5\)"),
    ):
        with pytest.raises(ValueError, match=match):
            net(*inputs, cond=cond)


def test_unconditional_networks_are_as_before_and_cond_options_are_validated():
    """cond_features=0 adds no parameter (the weights of a seed do not move), and classes
    needs cond_features (the size of the label embedding)."""
    torch.manual_seed(0)
    plain = MLPField(3, 16, 2)
    torch.manual_seed(0)
    zero = MLPField(3, 16, 2, cond_features=0, classes=0)
    assert list(plain.state_dict()) == list(zero.state_dict()) == [
        "embed.freqs", "net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias",
        "net.4.weight", "net.4.bias",
    ]  # fmt: skip
    pairs = zip(plain.parameters(), zero.parameters(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    with pytest.raises(ValueError, match="classes=4 needs cond_features"):
        MLPField(3, classes=4)
    with pytest.raises(ValueError, match="cond_features must be an integer >= 0"):
        Conditioning(-1)
    net = default_net((2,), width=8, depth=1, cond_features=2)
    assert net(torch.rand(4), torch.randn(4, 2), cond=torch.randn(2)).shape == (4, 2)


def test_mlp_builder_layout_and_zero_last_layer():
    net = mlp(3, 2, width=8, depth=3, activation=nn.Tanh, zero_last=True)
    assert [type(m).__name__ for m in net] == ["Linear", "Tanh"] * 3 + ["Linear"]
    assert (net[0].in_features, net[-1].out_features) == (3, 2)
    assert not net[-1].weight.any() and not net[-1].bias.any()
    for bad in ({"depth": 0}, {"width": 2.5}, {"width": True}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            mlp(3, 2, **{"width": 8, "depth": 2, **bad})


@pytest.mark.parametrize("cond", CONDS)
def test_coupling_flow_is_exactly_invertible_with_the_autograd_log_det(cond):
    options, make_cond = CONDS[cond]
    flow = CouplingFlow(5, DiagonalNormal(torch.zeros(5, dtype=F64), 1.0), layers=6, **options)
    flow = flow.double()
    gen = torch.Generator().manual_seed(0)
    for p in flow.parameters():
        p.data = 0.1 * torch.randn(p.shape, generator=gen, dtype=F64)
    z = torch.randn(4, 5, generator=gen, dtype=F64)
    c = make_cond(4)
    c = c.double() if c is not None and c.is_floating_point() else c
    x, log_det = flow(z, cond=c)
    z_back, log_det_inv = flow.inverse(x, cond=c)
    torch.testing.assert_close(z_back, z, rtol=0, atol=1e-12)
    torch.testing.assert_close(log_det + log_det_inv, 0 * log_det, rtol=0, atol=1e-12)
    for i in range(2):
        ci = None if c is None else c[i : i + 1]
        jac = torch.autograd.functional.jacobian(lambda v, ci=ci: flow(v[None], ci)[0][0], z[i])
        assert math.isclose(
            float(torch.linalg.slogdet(jac)[1]), float(log_det[i].detach()), abs_tol=1e-10
        )
    x, lq = flow.sample_with_log_prob(4, gen, cond=c)
    torch.testing.assert_close(flow.log_prob(x, cond=c), lq, rtol=0, atol=1e-10)


def test_nets_resume_accepts_the_drift_configs_saved_before_the_nn_package():
    drift = DriftMLP(4, torch.ones(4), 16, 2, features=3)
    assert same_drift(describe(drift)["options"], drift)
    legacy = {"kind": "mlp", "dim": 4, "width": 16, "depth": 2, "features": 3,
              "feature_scale": 8.0}  # fmt: skip
    assert same_drift(legacy, drift)
    assert not same_drift({**legacy, "width": 32}, drift)
    assert not same_drift({**legacy, "kind": "blocks"}, drift)
    assert same_drift({"kind": "conv", "L": 4, "width": 8, "depth": 2, "hop": True},
                      LatticeDrift(4, 1.0, 8, 2))  # fmt: skip


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


def test_docstring_examples_of_the_networks_run():
    import doctest
    import importlib

    import interpolants.nn as package

    saved = dict(NETWORKS)  # the registry's example registers a class
    try:
        for name in ("mlp", "embedding", "fields", "flowmap", "unet", "drifts", "lattice",
                     "realnvp", "registry", "ring"):  # fmt: skip
            module = importlib.import_module(f"interpolants.nn.{name}")
            names = {**vars(package), "torch": torch, "si": si, "nn": nn}
            names["net"] = MLPField(2, width=16, depth=2, cond_features=3)
            torch.manual_seed(0)
            result = doctest.testmod(module, extraglobs=names, optionflags=doctest.ELLIPSIS)
            assert result.failed == 0 and result.attempted > 0, name
        result = doctest.testmod(package, extraglobs={"torch": torch})
        assert result.failed == 0 and result.attempted > 0
    finally:
        NETWORKS.clear()
        NETWORKS.update(saved)
