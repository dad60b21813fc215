import json
import sys

import pytest
import torch

import interpolants as si
from interpolants.app.cli import main
from interpolants.losses import InterpolantObjective, MaxLikelihood, Objective
from interpolants.nn import MLPField

M = torch.tensor([1.0, -2.0])
S = torch.tensor([0.5, 1.5])


def gaussian_data(n=20_000):
    return M + S * torch.randn(n, 2, generator=torch.Generator().manual_seed(0))


def test_fit_recovers_the_closed_form_velocity():
    I = si.Interpolant("linear")
    model = si.fit(
        gaussian_data(), interpolant=I, steps=1200, batch_size=512, lr=3e-3, seed=0,
        net=MLPField(2, width=64, depth=3), warmup=50,
    )  # fmt: skip
    exact = si.GaussianMixtureFields(
        I,
        si.MixtureOfGaussians(torch.zeros(1, 2), torch.ones(1, 2)),
        si.MixtureOfGaussians(M[None], S[None]),
    )
    x = exact.target.sample(2000, torch.Generator().manual_seed(1))
    for t in (0.1, 0.5, 0.9):
        # points drawn from rho_t, where the loss weighs the field
        tt = torch.full((2000,), t)
        xt = (1 - t) * torch.randn(2000, 2, generator=torch.Generator().manual_seed(2)) + t * x
        with torch.no_grad():
            err = (model.velocity(tt, xt) - exact.velocity(tt, xt)).norm(dim=1).mean()
        scale = exact.velocity(tt, xt).norm(dim=1).mean()
        assert float(err / scale) < 0.15, (t, float(err / scale))


class Flaky(torch.utils.data.Dataset):
    """A data set whose reads fail after a number of items: a crash in the middle of a run."""

    def __init__(self, data, fail_after=None):
        self.data, self.fail_after, self.reads = data, fail_after, 0

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        self.reads += 1
        if self.fail_after is not None and self.reads > self.fail_after:
            raise RuntimeError("simulated crash")
        return self.data[i]


def small_fit(data, out, **kw):
    return si.fit(
        data, steps=30, batch_size=16, seed=3, out=out, checkpoint_every=10, log_every=5,
        net_options={"width": 16, "depth": 2}, **kw,
    )  # fmt: skip


def test_resume_reproduces_an_uninterrupted_run(tmp_path):
    data = gaussian_data(500)
    reader = Flaky(data)
    whole = small_fit(reader, tmp_path / "whole")
    # the run reads 16 items a step (and some to fingerprint the data): die during step 26
    with pytest.raises(RuntimeError, match="simulated crash"):
        small_fit(Flaky(data, fail_after=reader.reads - 16 * 5), tmp_path / "crashed")
    assert json.loads((tmp_path / "crashed/error.json").read_text())["status"] == "failed"
    assert (
        json.loads((tmp_path / "crashed/metrics.jsonl").read_text().splitlines()[-1])["step"] == 25
    )
    resumed = small_fit(Flaky(data), tmp_path / "crashed", resume=True)
    for a, b in zip(whole.velocity.parameters(), resumed.velocity.parameters(), strict=True):
        assert torch.equal(a, b)
    rows = lambda p: [json.loads(r) for r in (p / "metrics.jsonl").read_text().splitlines()]  # noqa: E731
    whole_rows, resumed_rows = rows(tmp_path / "whole"), rows(tmp_path / "crashed")
    assert [r["step"] for r in resumed_rows] == [5, 10, 15, 20, 25, 30]
    assert [r["loss"] for r in resumed_rows] == [r["loss"] for r in whole_rows]


def test_resume_refuses_another_config_and_corrupt_files(tmp_path):
    small_fit(gaussian_data(200), tmp_path / "run")
    with pytest.raises(ValueError, match=r"lr: checkpoint 0\.001, now 0\.01"):
        small_fit(gaussian_data(200), tmp_path / "run", resume=True, lr=0.01)
    (tmp_path / "run/checkpoint.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="corrupt"):
        small_fit(gaussian_data(200), tmp_path / "run", resume=True)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    data = gaussian_data(200)
    small_fit(data, tmp_path / "run")
    before = (tmp_path / "run/checkpoint.safetensors").read_bytes()
    with pytest.raises(FloatingPointError, match=r"loss is (nan|inf) at step 0"):
        small_fit(data * 1e30, tmp_path / "run", overwrite=True)
    assert (tmp_path / "run/checkpoint.safetensors").read_bytes() == before
    assert "at step 0" in json.loads((tmp_path / "run/error.json").read_text())["error"]


def test_save_load_round_trip(tmp_path):
    model = small_fit(gaussian_data(200), None, fields=("velocity", "score"))
    model.save(tmp_path / "model.pt")
    again = si.load(tmp_path / "model.pt")
    for kw in ({}, {"diffusion": 0.5}):
        a = model.sample(8, steps=5, generator=torch.Generator().manual_seed(0), **kw)
        b = again.sample(8, steps=5, generator=torch.Generator().manual_seed(0), **kw)
        assert torch.equal(a, b)
    torch.save({"x": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="is a pickle"):
        si.load(tmp_path / "other.pt")


def test_bad_fit_input():
    with pytest.raises(ValueError, match="base events"):
        si.fit(gaussian_data(100), base=torch.randn(50, 3), steps=1)
    with pytest.raises(TypeError, match="unknown fit option"):
        si.fit(gaussian_data(100), steps=1, warmpu=3)
    with pytest.raises(ValueError, match="fields"):
        si.fit(gaussian_data(100), steps=1, fields=("flow",))
    with pytest.raises(ValueError, match=r"fields with 'drift'.*Paired"):
        si.fit(gaussian_data(100), steps=1, fields=("drift",))
    with pytest.raises(ValueError, match="data must have shape"):
        si.fit(torch.randn(100), steps=1)


TINY = """
data: {name: moons, n: 2000}
steps: 20
batch_size: 64
checkpoint_every: 10
log_every: 5
net: {width: 16, depth: 2}
eval: {n: 300, steps: 8, solver: heun, nll_points: 50}
"""


def test_cli_train_generate_evaluate(tmp_path, capsys):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY)
    run = tmp_path / "run"
    assert main(["train", str(cfg), "--out", str(run), "--quiet"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"test_nll", "sliced_w2", "sliced_w2_floor", "mmd2", "mmd2_floor"} <= set(metrics)
    for png in ("loss.png", "samples.png", "density.png"):
        assert (run / png).stat().st_size > 5_000
    assert (
        main(["generate", str(run), "-n", "50", "--steps", "4", "--out", str(tmp_path / "x.pt")])
        == 0
    )
    assert torch.load(tmp_path / "x.pt").shape == (50, 2)
    assert main(["evaluate", str(run), "--steps", "4"]) == 0
    assert "sliced_w2" in capsys.readouterr().out


@pytest.mark.parametrize(
    "text,message",
    [
        ("data: nowhere\n", "unknown data set 'nowhere'"),
        ("data: moons\nstesp: 3\n", "unknown key(s) ['stesp']"),
        ("data: [moons\n", "malformed YAML at line"),
    ],
)
def test_cli_bad_config_is_one_line(tmp_path, capsys, text, message):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    assert main(["train", str(cfg), "--out", str(tmp_path / "r"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_cli_generate_needs_a_run(tmp_path, capsys):
    assert main(["generate", str(tmp_path)]) == 2
    assert "not a training run" in capsys.readouterr().err


def test_max_likelihood_baseline_reaches_the_true_nll():
    data = gaussian_data(5000)
    test = M + S * torch.randn(500, 2, generator=torch.Generator().manual_seed(1))
    true_nll = float(-torch.distributions.Normal(M, S).log_prob(test).sum(1).mean())
    model = si.fit(
        data, steps=150, batch_size=256, lr=3e-3, warmup=10, seed=0, ema=0.9,
        objective="max_likelihood", net=MLPField(2, 32, 2),
    )  # fmt: skip
    nll = float(-model.log_prob(test, steps=20).mean())
    assert abs(nll - true_nll) < 0.1, (nll, true_nll)
    with pytest.raises(ValueError, match="velocity alone"):
        si.fit(data, steps=1, objective="max_likelihood", fields=("velocity", "score"))


def test_fit_on_a_labelled_dataset_matches_the_tensor():
    # a Dataset of (x1, label) items draws the same rows as a TensorDataset: the same run, to
    # the bit; both train a field conditioned on the labels (issue 21)
    from torch.utils.data import Dataset, TensorDataset

    class Items(Dataset):
        def __init__(self, x, labels):
            self.x, self.labels = x, labels

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            return self.x[i], int(self.labels[i])

    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(64) % 3
    kw = dict(steps=5, batch_size=16, seed=3, net=None, ema=0.0)
    a = si.fit(TensorDataset(x, labels), net_options={"width": 16, "depth": 1}, **kw)
    b = si.fit(Items(x, labels), net_options={"width": 16, "depth": 1}, **kw)
    assert a.classes == b.classes == 3
    t, pts, c = torch.rand(8), torch.randn(8, 2), torch.arange(8) % 4
    torch.testing.assert_close(
        a.velocity(t, pts, cond=c), b.velocity(t, pts, cond=c), rtol=0, atol=0
    )
    plain = si.fit(x, net_options={"width": 16, "depth": 1}, **kw)
    assert plain.classes == 0


TINY_FIT = dict(steps=4, batch_size=32, seed=1, net_options={"width": 16, "depth": 1})


def weights(model):
    nets = [model.velocity] + ([model._score] if model._score is not None else [])
    return torch.cat([p.detach().flatten() for net in nets for p in net.parameters()])


def test_objective_objects_train_as_their_options(tmp_path):
    x = gaussian_data(300)
    by_name = si.fit(x, objective="max_likelihood", ml_ode_steps=3, **TINY_FIT)
    by_object = si.fit(x, objective=MaxLikelihood(ode_steps=3), **TINY_FIT)
    assert torch.equal(weights(by_name), weights(by_object))
    I = si.Interpolant("trig", gamma="brownian")
    fields = ("velocity", "score")
    a = si.fit(x, interpolant=I, fields=fields, time_distribution="late", out=tmp_path / "a",
               **TINY_FIT)  # fmt: skip
    objective = InterpolantObjective(fields=fields, time_distribution="late")
    b = si.fit(x, interpolant=I, objective=objective, out=tmp_path / "b", **TINY_FIT)
    assert torch.equal(weights(a), weights(b))
    config = lambda run: json.loads((tmp_path / run / "config.yaml").read_text())  # noqa: E731
    assert config("a") == config("b")  # so either spelling resumes the other
    assert (config("a")["trim"], config("a")["antithetic"]) == (1e-3, True)
    with pytest.raises(ValueError, match=r"\['trim'\] belong to the objective"):
        si.fit(x, objective=objective, trim=0.1, **TINY_FIT)
    with pytest.raises(ValueError, match="but the objective trains"):
        si.fit(x, objective=objective, fields=("denoiser",), **TINY_FIT)
    with pytest.raises(ValueError, match="objective must be 'interpolant', 'max_likelihood'"):
        si.fit(x, objective="flow_map", **TINY_FIT)


class Weighted(Objective):
    """A user's objective: the interpolant objective times a weight."""

    fields = ("velocity",)

    def __init__(self, weight):
        self.weight = weight

    def loss(self, nets, interpolant, batch, generator=None, rows=slice(None)):
        inner = InterpolantObjective().loss(nets, interpolant, batch, generator, rows)
        return self.weight * inner


def test_a_users_objective_is_recorded_and_compared_on_resume(tmp_path):
    x = gaussian_data(300)
    mine = si.fit(x, objective=Weighted(1.0), out=tmp_path / "run", **TINY_FIT)
    assert torch.equal(weights(mine), weights(si.fit(x, **TINY_FIT)))
    config = json.loads((tmp_path / "run/config.yaml").read_text())
    assert config["objective"] == "Weighted"
    assert config["objective_options"] == {"class": "Weighted", "weight": 1.0}
    with pytest.raises(ValueError, match=r"resume refused.*objective_options"):
        si.fit(x, objective=Weighted(0.5), out=tmp_path / "run", resume=True, **TINY_FIT)


def test_fit_writes_the_run_plots_by_default_and_on_end_replaces_them(tmp_path):
    small_fit(gaussian_data(200), tmp_path / "run")  # the default hook: the app's plot_run
    for png in ("loss.png", "samples.png"):
        assert (tmp_path / "run" / png).stat().st_size > 5_000
    calls = []
    small_fit(gaussian_data(200), tmp_path / "own", on_end=lambda m, out: calls.append(out))
    assert calls == [tmp_path / "own"] and not list((tmp_path / "own").glob("*.png"))


def test_fit_writes_its_run_without_the_app_layer(tmp_path, monkeypatch):
    # the library writes config.yaml, metrics and checkpoints; plots and YAML are the app's
    for app in ("matplotlib", "matplotlib.pyplot", "yaml"):
        monkeypatch.setitem(sys.modules, app, None)  # importing it now raises ImportError
    si.fit(gaussian_data(200), out=tmp_path / "run", progress=False, on_end=lambda m, o: None,
           **TINY_FIT)  # fmt: skip
    assert json.loads((tmp_path / "run/config.yaml").read_text())["steps"] == 4
    assert not list((tmp_path / "run").glob("*.png"))
