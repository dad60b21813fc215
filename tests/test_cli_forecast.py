"""The command line's forecasting: ``model: forecast`` configs (a simulated system or the
user's pairs), the evaluation's metrics, ``interpolants forecast`` and its errors."""

import json

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from interpolants.app.cli import main
from interpolants.app.forecast_runs import Normaliser, check_forecast_config

TINY = """
model: forecast
data: {data}
steps: 6
batch_size: 32
checkpoint_every: 3
log_every: 3
net: {{width: 8, depth: 1}}
eval: {{states: 6, members: 4, lags: 2, steps: 3}}
"""
SYSTEM = "{system: lorenz63, pairs: 120, chains: 10, dt: 0.01, seed: 0}"


def write(folder, data=SYSTEM, extra=""):
    cfg = folder / "c.yaml"
    cfg.write_text(TINY.format(data=data) + extra)
    return cfg


@pytest.fixture(scope="module")
def system_run(tmp_path_factory):
    """A tiny forecast run on simulated Lorenz-63 pairs, trained and evaluated by the CLI."""
    folder = tmp_path_factory.mktemp("forecast")
    out = folder / "run"
    assert main(["train", str(write(folder)), "--out", str(out), "--quiet"]) == 0
    return out


def test_system_run_records_settings_and_metrics(system_run):
    record = yaml.safe_load((system_run / "config.yaml").read_text())["run"]
    assert record["model"] == "forecast"
    assert record["data"]["system"] == "lorenz63"
    assert record["data"]["dt"] == 0.01 and record["data"]["noise"] == 1.0
    assert len(record["normalise"]["mean"]) == 3 and 10 < record["normalise"]["mean"][2] < 40
    metrics = json.loads((system_run / "metrics.json").read_text())
    assert set(metrics["one_lag"]) == {"interpolant", "follmer", "climatology", "true_sde"}
    for scores in metrics["one_lag"].values():
        assert {"crps", "energy_score", "spread_skill", "rank_histogram"} <= set(scores)
        assert len(scores["rank_histogram"]) == 5  # members + 1
    assert "energy_distance" in metrics["one_lag"]["follmer"]
    assert "energy_distance_floor" in metrics
    for key in ("crps", "spread_skill", "crps_climatology", "crps_true_sde"):
        assert len(metrics["rollout"][key]) == 2
    for name in ("loss.png", "rank_histogram.png", "forecast_fans.png", "lag_scores.png"):
        assert (system_run / name).stat().st_size > 1000
    assert (system_run / "run.yaml").exists()


def test_resume_of_a_finished_run_is_accepted(system_run):
    cfg = system_run.parent / "c.yaml"
    assert main(["train", str(cfg), "--out", str(system_run), "--resume", "--quiet"]) == 0


def test_forecast_from_the_system_writes_rollouts_truth_and_plots(system_run, tmp_path, capsys):
    out = tmp_path / "f.npz"
    argv = ["forecast", str(system_run), "--rows", "3", "--lags", "2", "--members", "5",
            "--steps", "4", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    with np.load(out) as f:
        assert f["forecast"].shape == (2, 5, 3, 3)
        assert f["truth"].shape == (2, 3, 3) and f["cond"].shape == (3, 3)
        assert abs(f["forecast"][..., 2].mean() - 24) < 15  # the data's units, not standardised
    printed = capsys.readouterr().out
    assert "CRPS by lag" in printed
    for name in ("f_fans.png", "f_rank_histogram.png", "f_lag_scores.png"):
        assert (tmp_path / name).stat().st_size > 1000


@pytest.mark.parametrize("suffix", [".npy", ".csv", ".pt"])
def test_forecast_from_a_file(system_run, tmp_path, suffix):
    states = np.array([[1.0, 2.0, 20.0], [-5.0, -6.0, 25.0]], dtype=np.float32)
    cond = tmp_path / f"now{suffix}"
    if suffix == ".npy":
        np.save(cond, states)
    elif suffix == ".csv":
        np.savetxt(cond, states, delimiter=",", header="x,y,z", comments="")
    else:
        torch.save(torch.from_numpy(states), cond)
    out = tmp_path / "f.safetensors"
    argv = ["forecast", str(system_run), "--cond", str(cond), "--members", "4", "--steps", "3",
            "--diffusion", "interpolant", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    tensors = load_file(str(out))
    assert tensors["forecast"].shape == (1, 4, 2, 3)
    assert torch.equal(tensors["cond"], torch.from_numpy(states))


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--cond", "{tmp}/missing.npy"], "--cond: file"),
        (["--cond", "{tmp}/four.npy"], "--cond: {tmp}/four.npy holds rows of shape (4,)"),
        (["--members", "-2"], "--members: expected a positive integer"),
        (["--lags", "0"], "--lags: expected a positive integer"),
        (["--diffusion", "0.01"], "--diffusion 0.01: diffusion g(0) = 0.01 is below sigma(0)"),
        (["--diffusion", "fast"], "--diffusion: expected follmer, interpolant or a number"),
        (["--out", "{tmp}/f.txt"], "--out: {tmp}/f.txt must end in .npz or .safetensors"),
        (["--out", "{tmp}/nowhere/f.npz"], "--out: folder"),
    ],
)
def test_forecast_bad_input_is_one_line_naming_the_argument(
    system_run, tmp_path, capsys, extra, message
):
    np.save(tmp_path / "four.npy", np.zeros((2, 4), dtype=np.float32))
    argv = ["forecast", str(system_run), *[a.replace("{tmp}", str(tmp_path)) for a in extra]]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message.replace("{tmp}", str(tmp_path)) in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("two_files", [False, True])
def test_run_on_the_users_pairs(tmp_path, two_files, capsys):
    g = torch.Generator().manual_seed(0)
    a = torch.randn(80, 2, generator=g) * 3 + 10
    b = 0.8 * a + 0.3 * torch.randn(80, 2, generator=g)
    if two_files:
        np.save(tmp_path / "now.npy", a.numpy())
        np.save(tmp_path / "next.npy", b.numpy())
        data = "{x_now: now.npy, x_next: next.npy, holdout: 0.25}"
    else:
        np.savez(tmp_path / "pairs.npz", a=a.numpy(), b=b.numpy())
        data = "{path: pairs.npz, x_now: a, x_next: b, holdout: 0.25}"
    out = tmp_path / "run"
    assert main(["train", str(write(tmp_path, data)), "--out", str(out), "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["one_lag"]) == {"interpolant", "follmer", "climatology"}
    assert metrics["states"] == 6 and "rollout" not in metrics
    assert (out / "heldout_pairs.safetensors").exists()
    capsys.readouterr()
    assert main(["forecast", str(out)]) == 2
    assert "--cond is required" in capsys.readouterr().err
    np.save(tmp_path / "c.npy", a[:3].numpy())
    argv = ["forecast", str(out), "--cond", str(tmp_path / "c.npy"), "--members", "2",
            "--lags", "3", "--steps", "2"]  # fmt: skip
    assert main(argv) == 0
    with np.load(out / "forecast.npz") as f:
        assert f["forecast"].shape == (3, 2, 3, 2) and "truth" not in f.files
    assert main(["generate", str(out)]) == 2
    assert "interpolants forecast" in capsys.readouterr().err


@pytest.mark.parametrize(
    "data,extra,message",
    [
        ("{system: lorenz99}", "", "unknown system 'lorenz99'"),
        ("{system: lorenz63, nois: 1}", "", "unknown key(s) ['nois']"),
        ("{system: lorenz63, pairs: 0}", "", "pairs must be a positive integer"),
        ("{system: lorenz63, noise: -1}", "", "noise must be a non-negative number"),
        (SYSTEM, "fields: [velocity]\n", "fields: a forecast trains the drift only"),
        (SYSTEM, "normalise: maybe\n", "normalise must be true or false"),
        (SYSTEM, "increment: 1\n", "increment must be true or false"),
        ("{path: p.npz}", "", "x_now"),
        ("{x_now: now.npy}", "", "x_next is required"),
    ],
)
def test_bad_forecast_configs_are_refused(tmp_path, capsys, data, extra, message):
    np.savez(tmp_path / "p.npz", x=np.zeros((10, 2)))
    assert main(["train", str(write(tmp_path, data, extra)), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_an_increment_run_forecasts_from_the_current_state(tmp_path):
    """increment: true trains si.couplings.Increment (scale: the increments' sd in the
    model's units); a loaded run's forecasts are states (current state + increment)."""
    from interpolants.app.forecast_runs import load_forecast_run
    from interpolants.couplings import Increment

    out = tmp_path / "run"
    assert main(["train", str(write(tmp_path, extra="increment: true\n")), "--out", str(out),
                 "--quiet"]) == 0  # fmt: skip
    run = load_forecast_run(out)
    assert isinstance(run.model.coupling, Increment) and run.model.coupling.scale.shape == (3,)
    x0 = torch.tensor([[1.0, 2.0, 20.0], [61.0, 62.0, 80.0]])
    paths = run.rollout(x0, lags=1, members=4, steps=3, generator=torch.Generator().manual_seed(0))
    # the forecast is the state plus an increment: states 60 apart give forecasts about 60
    # apart (an untrained state-form run gives 38-40 here)
    assert paths.shape == (1, 4, 2, 3)
    shift = (paths[0, :, 1] - paths[0, :, 0]).mean(0)
    assert ((shift - 60).abs() < 12).all(), shift


def test_eval_settings_are_checked():
    config = yaml.safe_load(TINY.format(data=SYSTEM))
    config["eval"]["members"] = 1
    with pytest.raises(ValueError, match="members and states must be at least 2"):
        check_forecast_config(config)


def test_normaliser_round_trip():
    x = torch.randn(50, 3, dtype=torch.float64) * torch.tensor([1.0, 5.0, 0.0]) + 7
    norm = Normaliser.fit(x)
    assert torch.allclose(norm.from_model(norm.to_model(x)), x)
    assert norm.sd[2] == 1.0  # a constant entry keeps sd 1
    again = Normaliser.from_state(norm.state())
    assert torch.allclose(again.to_model(x), norm.to_model(x))
