import json

import pytest

from interpolants.cli import main


def test_demo_writes_metrics_and_plot(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "-n", "400", "--steps", "20"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert (out / "samples.png").stat().st_size > 10_000
    assert set(metrics["runs"]) == {"ode heun", "ode rk4", "ode dopri5", "sde heun eps=1"}
    assert metrics["runs"]["ode heun"]["nfe"] == 40
    assert metrics["likelihood"]["exact_divergence_max_abs_error"] < 0.05
    printed = capsys.readouterr().out
    assert "Hutchinson" in printed and "samples.png" in printed


@pytest.mark.parametrize(
    "argv,message",
    [
        (["bench", "nonsense"], "unknown benchmark 'nonsense'"),
        (["demo", "-n", "0", "--out", "{tmp}"], "n must be a positive integer"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(argv, message, tmp_path, capsys):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
