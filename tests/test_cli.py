import json
import math

import pytest

from interpolants.app.cli import main


def test_exact_demo_writes_metrics_and_plot(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--exact", "--out", str(out), "-n", "400", "--steps", "20"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert (out / "samples.png").stat().st_size > 10_000
    assert set(metrics["runs"]) == {"ode heun", "ode rk4", "ode dopri5", "sde heun eps=1"}
    assert metrics["runs"]["ode heun"]["nfe"] == 40
    assert metrics["likelihood"]["exact_divergence_max_abs_error"] < 0.05
    printed = capsys.readouterr().out
    assert "Hutchinson" in printed and "samples.png" in printed


def test_training_demo_trains_evaluates_and_prints(tmp_path):
    from interpolants.app.demo import format_training_demo, run_training_demo

    out = tmp_path / "demo"
    metrics = run_training_demo(
        out,
        steps=40,
        progress=False,
        evaluation={"n": 1000, "nll_points": 200, "steps": 20, "grid": 20},
    )
    assert metrics["train_steps"] == 40 and metrics["data"] == "checkerboard"
    assert abs(metrics["true_nll"] - math.log(32)) < 1e-9
    # 40 steps learn something: far better than the base N(0, I) (NLL ~ 5.4 on this square)
    assert 3.4 < metrics["test_nll"] < 5.0
    assert metrics["sliced_w2"] > metrics["sliced_w2_floor"]
    for name in (
        "loss.png",
        "samples.png",
        "density.png",
        "checkpoint.safetensors",
        "metrics.json",
    ):
        assert (out / name).stat().st_size > 0
    text = format_training_demo(metrics, out)
    assert "gap" in text and "samples.png" in text and "noise floor" in text


@pytest.mark.parametrize(
    "argv,message",
    [
        (["bench", "nonsense"], "unknown benchmark 'nonsense'"),
        (["demo", "--exact", "-n", "0", "--out", "{tmp}"], "n must be an integer >= 2"),
        (["demo", "--steps", "0", "--out", "{tmp}"], "--steps: expected a positive integer"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(argv, message, tmp_path, capsys):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
