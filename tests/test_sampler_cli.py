"""Tests of interpolants.app.sample_target and .sampler_plots: ``sample-target`` runs on disk,
bad input."""

from __future__ import annotations

import argparse
import json
import math
import warnings

import pytest
import torch

from interpolants.app.sample_target import (
    add_sample_target_parser,
    format_metrics,
    parse_options,
    run_sample_target,
)
from interpolants.app.sampler_bench import bench_samplers, format_samplers
from interpolants.samplers import ConvergenceWarning
from interpolants.targets import Target

pytestmark = pytest.mark.usefixtures("one_thread")


def test_weighted_run_writes_metrics_samples_and_plots(tmp_path):
    options = {"steps": 5, "moves": 3, "batches": 2, "reverse": None}
    m = run_sample_target("gmm40", "smc", n=40, seed=0, out=tmp_path, options=options)
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(m))
    assert m["status"] == "ok" and m["target"] == "gmm40" and m["method"] == "smc"
    assert m["options"] == options and m["n"] == 40 and m["wall_seconds"] > 0
    assert m["log_Z_true"] == 0.0 and math.isclose(m["log_Z_error"], m["log_Z"])
    assert m["modes_total"] == 40 and 0 <= m["modes_covered"] <= 40
    assert set(m["plots"]) == {"samples.png", "log_weights.png"}
    for name in m["plots"]:
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    saved = torch.load(tmp_path / "samples.pt")
    assert saved["samples"].shape == (40, 2) and saved["log_weights"].shape == (40,)
    assert "log Z" in format_metrics(m) and "modes covered" in format_metrics(m)


def test_mcmc_run_writes_trace_plot(tmp_path):
    options = {"chains": 4, "warmup": 20}
    with warnings.catch_warnings():  # the run records its warnings instead of raising them
        warnings.simplefilter("error", ConvergenceWarning)
        m = run_sample_target("funnel", "mala", n=40, out=tmp_path, options=options, progress=False)
    # 10 draws per chain: a warning, not "ok"
    assert m["status"] == "warning" and m["log_Z"] is None and "log_Z_error" not in m
    assert any("draws per chain" in w for w in m["warnings"])
    assert set(m["plots"]) == {"samples.png", "traces.png"}
    assert (tmp_path / "traces.png").stat().st_size > 0


def test_unknown_target_and_method_list_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match=r"unknown target name 'nope'.*gmm40.*phi4"):
        run_sample_target("nope", "smc", n=10, seed=0, out=tmp_path, options={})
    with pytest.raises(ValueError, match=r"unknown method 'gibbs'.*ais.*hmc.*mala.*smc"):
        run_sample_target("gmm40", "gibbs", n=10, seed=0, out=tmp_path, options={})
    with pytest.raises(ValueError, match="unknown option"):
        run_sample_target("gmm40", "ais", n=10, seed=0, out=tmp_path, options={"stepz": 3})


def _nan_beyond_one(x):
    """A standard Gaussian log density that is NaN wherever x_0 > 1 (a user's bug)."""
    lp = -0.5 * x.square().sum(1)
    return torch.where(x[:, 0] > 1, torch.full_like(lp, math.nan), lp)


def test_nan_target_names_the_walkers_and_keeps_a_record(tmp_path):
    target = Target(_nan_beyond_one, dim=2, name="mine")
    init = torch.zeros(6, 2)
    init[[0, 2, 5], 0] = 3.0
    with pytest.raises(ValueError, match=r"mine.*not finite.*3 initial walker.*\[0, 2, 5\]"):
        run_sample_target(target, "mala", n=12, out=tmp_path, options={"init": init})
    record = json.loads((tmp_path / "error.json").read_text())
    assert record["status"] == "failed" and "[0, 2, 5]" in record["error"]
    assert not (tmp_path / "metrics.json").exists()
    # walkers drawn from the base: the message still names them (error.json alone: no run)
    with pytest.raises(ValueError, match=r"initial walker\(s\), indices \[\d"):
        run_sample_target(target, "ais", n=50, out=tmp_path, options={"steps": 2})


def test_wrong_shape_and_bad_options(tmp_path):
    target = Target(lambda x: -0.5 * x.square().sum(1, keepdim=True), dim=2, name="flat")
    shape = r"flat \(hmc\): log_prob returned \(8, 1\), not a torch tensor of shape \(8,\)"
    with pytest.raises(ValueError, match=shape):
        run_sample_target(target, "hmc", n=8, out=tmp_path, options={"chains": 8})
    assert parse_options(["steps=100", "kernel=hmc", "dtype=float64", "pilot=false"]) == {
        "steps": 100,
        "kernel": "hmc",
        "dtype": torch.float64,
        "pilot": False,
    }
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_options(["steps"])


def test_an_out_folder_that_cannot_be_made_is_one_line_not_a_traceback(
    tmp_path, capsys, monkeypatch
):
    """Refused before the run (which would be lost), in one line; an OSError later is one
    line too."""
    from interpolants.app import cli
    from interpolants.app.cli import main

    def denied(args):
        raise PermissionError(13, "Permission denied", "runs/demo")

    monkeypatch.setattr(cli, "_demo", denied)
    assert main(["demo"]) == 2
    assert capsys.readouterr().err.strip() == (
        "interpolants demo: error: [Errno 13] Permission denied: 'runs/demo'"
    )

    (tmp_path / "file").write_text("not a folder")
    out = str(tmp_path / "file" / "run")
    args = ["sample-target", "gmm40", "--method", "smc", "-n", "20", "--out", out, "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0]
    assert "cannot make the run folder" in err[0] and "file is a file" in err[0]
    assert main([*args[:-2], "", "--quiet"]) == 2  # --out "": refused, not the default
    assert "--out must name a folder" in capsys.readouterr().err
    assert main(["sample-target", "--help"]) == 0  # the bar is --quiet's, not an option
    assert "progress=" not in capsys.readouterr().out


def test_command_line_parser_with_a_target_option(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_sample_target_parser(parser.add_subparsers(dest="command", required=True))
    options = ["--option", "steps=3", "--option", "target.L=3", "--quiet"]
    args = parser.parse_args(
        ["sample-target", "phi4", "--method", "ais", "-n", "20", "--out", str(tmp_path), *options]
    )
    args.func(args)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["dim"] == 9 and metrics["target_options"] == {"L": 3}
    assert "abs_magnetization" in metrics and "susceptibility" in metrics
    assert "<|m|>" in capsys.readouterr().out


def test_benchmark_smoke(tmp_path):
    m = bench_samplers(tmp_path, seeds=2, steps=(3,), targets=("gmm40",), n=20)
    rows = m["rows"]["gmm40"]
    assert set(rows) == {"ais K=3", "smc K=3", "smc adaptive"}
    assert rows["ais K=3"]["evaluations"] > 0 and rows["smc K=3"]["modes_total"] == 40
    table = format_samplers(m)
    assert "### gmm40" in table and table.count("\n| ") == 4


def test_unconverged_chains_give_status_warning(tmp_path):
    with warnings.catch_warnings():  # recorded and printed once, not raised as well
        warnings.simplefilter("error", ConvergenceWarning)
        m = run_sample_target("funnel", "mala", n=1000, seed=0, out=tmp_path, progress=False)
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk["status"] == "warning" and on_disk["warnings"] == m["warnings"]
    assert m["warnings"][0].startswith("rank-normalised split R-hat") and m["rank_rhat_max"] > 1.01
    text = format_metrics(m)
    assert text.startswith("funnel with mala: warning\n  warning: rank-normalised split R-hat ")
    assert text.count("\n  warning: ") == len(m["warnings"])
    assert "min bulk ESS" in text and "max rank-normalised R-hat" in text


def test_malformed_init_option_names_init(tmp_path):
    options = parse_options(["init=[[1,2]"])
    assert options == {"init": "[[1,2]"}  # not a literal: stays text
    for method in ("mala", "smc"):
        with pytest.raises(ValueError, match=rf"funnel \({method}\): init must be"):
            run_sample_target("funnel", method, out=tmp_path / method, options=options)
    with pytest.raises(ValueError, match=r"init has NaN"):
        run_sample_target(
            "funnel", "hmc", out=tmp_path / "nan", options={"init": [[math.nan] * 10]}
        )
