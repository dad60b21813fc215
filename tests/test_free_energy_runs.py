"""The free-energy command: metrics.json in a run folder, delta_F +- stderr printed, one-line
errors with exit 2."""

from __future__ import annotations

import json

import pytest

from interpolants.app.cli import main
from interpolants.app.free_energy_runs import run_free_energy

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_command_prints_delta_f_and_writes_metrics(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["free-energy", "gmm-d2-k3", "gmm-d2-k3", "--method", "bar", "--n", "400",
                 "--b-option", "std=1.2", "--out", str(out)])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert printed.startswith("delta_F = ") and "+-" in printed
    m = json.loads((out / "metrics.json").read_text())
    assert m["method"] == "bar" and m["n"] == 400 and m["target_b_options"] == {"std": 1.2}
    assert m["delta_F_exact"] == 0.0 and m["evaluations"] == 1600
    assert abs(m["error"]) < 4 * m["stderr"] and m["status"] == "ok"
    # the folder now holds a run: refused without --overwrite
    again = ["free-energy", "gmm-d2-k3", "gmm-d2-k3", "--n", "400", "--out", str(out)]
    assert main(again) == 2
    assert main([*again, "--overwrite"]) == 0


def test_method_options_and_shared_target_options(tmp_path):
    m = run_free_energy(
        "gmm-d2-k2", "gmm-d2-k2", "jarzynski", n=300, out=tmp_path / "j",
        options={"direction": "reverse", "steps": 3}, options_a={"box": 3.0},
        options_b={"box": 3.0, "std": 0.9},
    )  # fmt: skip
    assert m["direction"] == "reverse" and m["info"]["levels"] == 3
    assert abs(m["error"]) < 4 * m["stderr"]


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (["gmm-d2-k2", "gmm-d3-k2"], "target_b has dim 3"),
        (["gmm-d2-k2", "gmm-d2-k2", "--n", "1"], "n must be an integer >= 2"),
        (["gmm-d2-k2", "gmm-d2-k2", "--option", "steps=3"], "unknown option(s) 'steps'"),
        (["nowhere", "gmm-d2-k2"], "unknown target name 'nowhere'"),
        (["gmm-d2-k2", "gmm-d2-k2", "--b-option", "colour=1"], "unknown option(s)"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, argv, reason):
    code = main(["free-energy", *argv, "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and reason in err and len(err.splitlines()) == 1, err


def test_an_unknown_method_is_a_usage_error(capsys):
    assert main(["free-energy", "gmm-d2-k2", "gmm-d2-k2", "--method", "mbar"]) == 2
    assert "invalid choice" in capsys.readouterr().err
