"""Smoke tests of ``interpolants bench flowmap`` / ``flowmap-digits`` (tiny budgets), the goal
bookkeeping on a hand-made result, and FD-digits on identical sets."""

from __future__ import annotations

import json

import pytest
import torch

from interpolants.app.cli import main
from interpolants.app.flowmap_bench import (
    FLOW_MAP_METHODS,
    bench_flowmap,
    format_flowmap,
    jump_goals,
    rescore_flowmap,
)

TINY = ["--steps", "2", "--batch", "32", "--set", "width=8", "--set", "depth=1"]


def test_bench_flowmap_command_writes_metrics_table_and_plot(tmp_path, capsys):
    argv = ["bench", "flowmap", "--out", str(tmp_path), *TINY, "--set", "n=300",
            "--set", "datasets=['checkerboard']", "--set", "cost_steps=1",
            "--set", "cost_repeats=1", "--set", "jumps=[1, 2, 4]",
            "--set", "ode_steps=10",
            "--set", "method_options={'lagrangian': {'backward': False}}"]  # fmt: skip
    assert main(argv) == 0
    folder = tmp_path / "flowmap"
    m = json.loads((folder / "metrics.json").read_text())
    d = m["datasets"]["checkerboard"]
    assert set(d["flow_maps"]) == set(FLOW_MAP_METHODS)
    assert set(d["flow_maps"]["meanflow"]) == {"1", "2", "4"}
    assert d["velocity"]["ode"]["nfe"] == 20 and d["velocity"]["heun NFE 4"]["nfe"] == 4
    assert d["floor"] > 0
    row = d["flow_maps"]["lagrangian"]["2"]
    assert row["over_floor"] == pytest.approx(row["sliced_w2"] - d["floor"])
    assert m["step_cost"]["ratio_to_fit"]["fit"] == 1.0
    assert set(m["goals"]["step_cost_at_most_2x_fit"]) == set(FLOW_MAP_METHODS)
    assert m["options"]["steps"] == 2
    assert m["method_options"] == {"lagrangian": {"backward": False}}
    assert "method options" in (folder / "table.md").read_text()
    assert (folder / "flowmap.png").stat().st_size > 10_000
    assert "| lagrangian |" in (folder / "table.md").read_text()
    assert "monotone" in capsys.readouterr().out
    # scored again from the saved models over 2 draws: draw 0 is the run's own floor
    again = rescore_flowmap(folder, tmp_path / "again", draws=2)
    floors = again["datasets"]["checkerboard"]["floors"]
    assert floors[0] == pytest.approx(d["floor"]) and len(floors) == 2
    assert again["datasets"]["checkerboard"]["flow_maps"]["shortcut"]["4"]["stderr"] >= 0
    assert " ± " in (tmp_path / "again" / "table.md").read_text()


def test_bench_flowmap_digits_command_reports_fd_and_bits_per_dim(tmp_path):
    argv = ["bench", "flowmap-digits", "--out", str(tmp_path), *TINY, "--set", "n=200",
            "--set", "classifier_steps=5", "--set", "ode_steps=2", "--set", "nll_points=8",
            "--set", "method='progressive'"]  # fmt: skip
    assert main(argv) == 0
    m = json.loads((tmp_path / "flowmap-digits" / "metrics.json").read_text())
    assert set(m["flow_map"]) == {"1", "2", "4"} and m["method"] == "progressive"
    for row in m["flow_map"].values():
        assert row["fd"] > 0 and row["round_trip"] >= 0 and 0 < row["bits_per_dim"] < 10
    assert m["reference"]["floor_test_halves"] > 0
    assert m["velocity"]["ode"]["nfe"] == 4 and m["nll_points"] == 8


def test_bench_options_are_checked_before_anything_runs(tmp_path, capsys):
    assert main(["bench", "flowmap", "--out", str(tmp_path), "--set", "nonsense=1"]) == 2
    err = capsys.readouterr().err
    assert "takes no option 'nonsense'" in err and "cost_repeats" in err
    assert not (tmp_path / "flowmap").exists()
    assert main(["bench", "flowmap", "--set", "width"]) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err
    with pytest.raises(ValueError, match="method_options"):
        bench_flowmap(tmp_path, method_options={"lagrangien": {"backward": False}})


def _rows(values):
    return {
        str(k): {"sliced_w2": v + 0.1, "over_floor": v}
        for k, v in zip((1, 2, 4), values, strict=True)
    }


def test_jump_goals_reads_ratios_monotonicity_and_the_comparison():
    flow_maps = {
        "lagrangian": _rows([0.03, 0.02, 0.025]),  # rises by 0.005 from 2 to 4 jumps
        "eulerian": _rows([0.05, 0.04, 0.03]),
        "meanflow": _rows([0.04, 0.01, 0.01]),
        "shortcut": _rows([0.06, 0.05, 0.01]),
    }
    metrics = {
        "steps": 1, "batch": 1, "seed": 0, "width": 1, "depth": 1, "n": 1, "jumps": [1, 2, 4],
        "datasets": {"toy": {"floor": 0.1, "flow_maps": flow_maps,
                             "velocity": {"ode": {"over_floor": 0.02, "steps": 100, "nfe": 200}}}},
        "step_cost": {"data": "toy", "steps": 1, "repeats": 1,
                      "ms_per_step": {"fit": 1.0, "lagrangian": 2.5},
                      "ratio_to_fit": {"fit": 1.0, "lagrangian": 2.5}},
    }  # fmt: skip
    goals = jump_goals(metrics)
    toy = goals["toy"]
    assert toy["methods"]["lagrangian"]["ratio_1"] == pytest.approx(1.5)
    assert toy["methods"]["lagrangian"]["ratio_2"] == pytest.approx(1.0)
    assert not toy["methods"]["lagrangian"]["monotone"]
    assert toy["methods"]["lagrangian"]["largest_rise"] == pytest.approx(0.005)
    assert toy["methods"]["eulerian"]["monotone"]
    assert toy["self_distillation"]["1"] == {
        "best_self_distillation": "lagrangian", "beats_meanflow_and_shortcut": True}  # fmt: skip
    assert toy["self_distillation"]["2"]["beats_meanflow_and_shortcut"] is False  # meanflow 0.01
    assert goals["step_cost_at_most_2x_fit"] == {"lagrangian": False}
    metrics["goals"] = goals
    assert "no (rise 0.0050)" in format_flowmap(metrics)


def test_fd_digits_of_a_set_with_itself_is_zero_and_noise_lifts_it_above_the_floor():
    from interpolants.app.flowmap_digits import fd_digits, train_digits_classifier
    from interpolants.data import load

    net, accuracy = train_digits_classifier(steps=100)
    assert accuracy > 0.8
    test = load("digits", split="test").flatten(1)
    assert abs(fd_digits(net, test, test)) < 1e-8
    floor = fd_digits(net, test[:198], test[198:])
    noisy = test + 0.5 * torch.randn(test.shape, generator=torch.Generator().manual_seed(0))
    assert fd_digits(net, test, noisy.clamp(0, 1)) > 2 * floor
