"""RingField, the local network for states on a ring: its symmetry, its locality, its
layouts (fine channels, a coarse field, a state as local conditioning), its errors, and its
use by name in the forecast configs."""

import pytest
import torch

from interpolants.app.forecast_runs import forecast_net, load_forecast_run, train_forecast
from interpolants.data import StochasticAllenCahn, TwoScaleLorenz96
from interpolants.nn import RingField, default_net


def _jiggled(net: RingField, seed: int = 0) -> RingField:
    """The network with every parameter moved off its initial value (so no path is zero)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return net


def _rotate(x: torch.Tensor, coarse: int, channels: int, shift: int) -> torch.Tensor:
    """The state rotated by ``shift`` fine sites (its coarse field by shift / block)."""
    n = (x.shape[1] - coarse) // channels
    fine = x[:, coarse:].reshape(len(x), channels, n).roll(shift, -1).flatten(1)
    if not coarse:
        return fine
    return torch.cat([x[:, :coarse].roll(shift // (n // coarse), 1), fine], dim=1)


@pytest.mark.parametrize("coarse, channels, local", [(0, 1, False), (0, 2, True), (4, 1, True)])
def test_periodic_ring_is_equivariant_under_rotations(coarse, channels, local):
    """f(t, R x | R c) = R f(t, x | c) for every rotation R of the ring by whole coarse
    blocks (Lorenz-96's symmetry: X_k -> X_{k+1} with its J fast variables)."""
    n = 16
    dim = coarse + channels * n
    net = _jiggled(RingField(dim, sites=n, coarse=coarse, width=6, depth=2, kernel=3,
                             cond_features=dim if local else 0))  # fmt: skip
    torch.manual_seed(1)
    x, c, t = torch.randn(3, dim), torch.randn(3, dim), torch.rand(3)
    cond = c if local else None
    out = net(t, x, cond=cond)
    for shift in (4, 8, -4):
        moved = net(t, _rotate(x, coarse, channels, shift),
                    cond=_rotate(c, coarse, channels, shift) if local else None)  # fmt: skip
        torch.testing.assert_close(moved, _rotate(out, coarse, channels, shift))
    if local:  # the conditioning state matters, locally
        assert not torch.allclose(net(t, x, cond=c + 1), out)


@pytest.mark.parametrize("boundary", ["periodic", "reflect"])
def test_output_at_a_site_depends_on_its_neighbourhood_only(boundary):
    """Changing x at site i moves f exactly at the sites within ``radius`` = depth (kernel -
    1) of i (around the ring when periodic, cut at the ends when reflecting) and nowhere
    else."""
    n, i = 24, 3
    net = _jiggled(RingField(n, width=5, depth=2, kernel=3, boundary=boundary))
    assert net.radius == 4
    x, t = torch.randn(1, n), torch.rand(1)
    dx = torch.zeros(1, n)
    dx[0, i] = 1.0
    changed = (net(t, x + dx) - net(t, x)).abs()[0] > 0
    distance = torch.arange(n) - i
    if boundary == "periodic":
        distance = torch.minimum(distance.abs(), n - distance.abs())
    within = distance.abs() <= net.radius
    assert changed[~within].sum() == 0
    assert changed[within].all()


def test_reflecting_ends_mirror_the_segment():
    """With free ends the field reversed in space gives the output reversed: a network that
    treats both ends alike (no spurious orientation from the padding)."""
    n = 10
    net = _jiggled(RingField(n, width=4, depth=2, kernel=3, boundary="reflect"))
    # mirror the kernels so that the network is reflection-symmetric; then the test says the
    # padding is too
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.Conv1d) and module.kernel_size[0] > 1:
                module.weight.copy_((module.weight + module.weight.flip(-1)) / 2)
    x, t = torch.randn(2, n), torch.rand(2)
    torch.testing.assert_close(net(t, x.flip(1)), net(t, x).flip(1))


def test_lorenz96_layout_from_the_system_and_from_the_config():
    system = TwoScaleLorenz96(K=4, J=8)
    assert system.ring_layout == {"sites": 32, "coarse": 4, "boundary": "periodic"}
    assert StochasticAllenCahn(d=16).ring_layout == {"sites": 16, "coarse": 0,
                                                      "boundary": "reflect"}  # fmt: skip
    config = {"data": {"system": "lorenz96", "K": 4, "J": 8}, "net": {"class": "RingField",
                                                                      "width": 8}}  # fmt: skip
    assert forecast_net(config) == {"sites": 32, "coarse": 4, "boundary": "periodic",
                                    "class": "RingField", "width": 8}  # fmt: skip
    config["net"]["kernel"] = 3  # the config's own options win; nothing else is touched
    assert forecast_net(config)["kernel"] == 3
    assert forecast_net({"data": {"system": "lorenz63"}, "net": {"width": 4}}) == {"width": 4}
    with pytest.raises(ValueError, match="RingField needs a state on a ring, and lorenz63"):
        forecast_net({"data": {"system": "lorenz63"}, "net": {"class": "RingField"}})


def test_default_net_builds_a_registered_class_by_name():
    net = default_net((40,), **{"class": "RingField", "sites": 32, "coarse": 8, "width": 4})
    assert isinstance(net, RingField) and net.config["dim"] == 40
    with pytest.raises(ValueError, match=r"net class 'Nope' is not registered; known: .*RingField"):
        default_net((4,), **{"class": "Nope"})
    with pytest.raises(TypeError, match=r"unknown network option\(s\) \['depht'\] for RingField"):
        default_net((4,), **{"class": "RingField", "depht": 2})
    with pytest.raises(ValueError, match="RingField takes vector events"):
        default_net((1, 4, 4), **{"class": "RingField"})


@pytest.mark.parametrize(
    "options, match",
    [
        ({"sites": 5}, "sites=5 must divide dim - coarse = 12"),
        ({"sites": 12, "coarse": 4}, "must divide dim - coarse = 8"),
        ({"sites": 8, "coarse": 3}, "coarse=3 must divide sites"),
        ({"coarse": -1}, r"coarse must be an integer in \[0, dim\)"),
        ({"kernel": 4}, "kernel must be odd"),
        ({"boundary": "open"}, r"boundary must be one of \('periodic', 'reflect'\)"),
        ({"sites": 2, "kernel": 5, "boundary": "reflect"}, "too wide for 2 sites"),
        ({"width": 0}, "width must be"),
    ],
)
def test_bad_layouts_are_refused_by_name(options, match):
    with pytest.raises(ValueError, match=match):
        RingField(12, **options)


def test_local_conditioning_checks_the_state_shape():
    net = RingField(8, width=4, depth=1, cond_features=8)
    x = torch.randn(3, 8)
    assert net(torch.rand(3), x, cond=x[0]).shape == (3, 8)  # one state for the batch
    with pytest.raises(ValueError, match=r"cond must be a state of shape \(8,\) or \(3, 8\)"):
        net(torch.rand(3), x, cond=torch.randn(3, 7))
    with pytest.raises(ValueError, match="cond must be a state"):
        net(torch.rand(3), x)
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 8\)"):
        net(torch.rand(3), torch.randn(3, 9), cond=x)


def test_a_forecast_run_trains_and_reloads_a_ring_network(tmp_path):
    """``net: {class: RingField}`` on Allen-Cahn: the system's layout is filled in, the run
    reloads the same network from its safe checkpoint, and forecasts are states."""
    config = {"model": "forecast", "steps": 4, "batch_size": 16, "seed": 0,
              "data": {"system": "allen_cahn", "d": 8, "pairs": 64, "chains": 8, "dt": 0.01},
              "net": {"class": "RingField", "width": 4, "depth": 1, "kernel": 3}}  # fmt: skip
    model = train_forecast(config, tmp_path / "run", progress=False)
    net = model.drift
    assert isinstance(net, RingField)
    assert net.config["boundary"] == "reflect" and net.config["cond_features"] == 8
    run = load_forecast_run(tmp_path / "run")
    assert isinstance(run.model.drift, RingField)
    for a, b in zip(run.model.drift.state_dict().values(), net.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    paths = run.rollout(torch.zeros(2, 8), lags=2, members=3, steps=3,
                        generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert paths.shape == (2, 3, 2, 8) and torch.isfinite(paths).all()
