"""``interpolants bench forecast`` at a tiny budget: the metrics' structure."""

import json
import math

import pytest

from interpolants.app.bench import BENCHMARKS, run_benchmark
from interpolants.app.forecast_bench import REFERENCES, ensembles

TINY = {"lorenz63": {"pairs": 200, "chains": 10, "states": 5, "members": 4}}


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    options = {"systems": ("lorenz63",), "steps": 5, "batch": 32, "width": 8, "depth": 1,
               "lags": 3, "sde_steps": 6, "nfe": 4, "budgets": TINY}  # fmt: skip
    metrics, table = run_benchmark("forecast", out=out, options=options)
    return out, metrics, table


def test_registered_and_written(result):
    out, _, table = result
    assert "forecast" in BENCHMARKS
    assert json.loads((out / "forecast" / "metrics.json").read_text())["systems"]
    assert "lorenz63" in table and "rollout by lag 1..3" in table
    assert (out / "forecast" / "lorenz63" / "checkpoint.safetensors").exists()
    assert (out / "forecast" / "lorenz63-flow" / "checkpoint.safetensors").exists()
    assert "V/floor" in table and "flow_heun2" in table


def test_metric_structure(result):
    _, metrics, _ = result
    assert metrics["settings"]["lags"] == 3 and metrics["settings"]["steps"] == 5
    r = metrics["systems"]["lorenz63"]
    assert (r["pairs"], r["states"], r["members"], r["lag"]) == (200, 5, 4, 0.25)
    names = {*ensembles(4, 6), *REFERENCES}
    assert names == {"interpolant", "follmer", "interpolant_heun2", "follmer_heun2",
                     "interpolant_euler4", "follmer_euler4", "flow_heun2", "flow_euler4",
                     "flow_heun3", "true_sde", "climatology"}  # fmt: skip
    assert set(r["one_lag"]) == set(r["rollout"]) == names
    for name in names:
        one, roll = r["one_lag"][name], r["rollout"][name]
        assert {"crps", "crps_se", "energy_score", "spread_skill", "energy_distance",
                "energy_distance_se", "rank_histogram"} <= set(one)  # fmt: skip
        assert len(one["rank_histogram"]) == 5  # members + 1
        assert math.isclose(sum(one["rank_histogram"]), 1.0)
        for key in ("crps", "crps_se", "spread_skill", "energy_distance", "energy_distance_se"):
            assert len(roll[key]) == 3 and all(math.isfinite(v) for v in roll[key])
        assert roll["crps"][0] == one["crps"] and one["crps"] > 0
        assert one["energy_distance_v"] >= max(one["energy_distance"], 0)  # V >= unbiased
    # the true SDE beats climatology on CRPS at lag 1, and is far closer in energy distance
    one = r["one_lag"]
    assert one["true_sde"]["crps"] < one["climatology"]["crps"]
    assert one["true_sde"]["energy_distance"] < one["climatology"]["energy_distance"]


def test_unknown_system_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown system 'lorenz'"):
        run_benchmark("forecast", out=tmp_path, options={"systems": ("lorenz",)})


def test_bad_budget_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown key 'pair'"):
        run_benchmark("forecast", out=tmp_path, options={"systems": "lorenz63",
                      "budgets": {"lorenz63": {"pair": 3}}})  # fmt: skip


def test_ring_option_trains_a_ring_network_where_the_state_lies_on_a_ring(tmp_path):
    """``ring=`` gives the drift and the flow baseline a RingField on Allen-Cahn (a segment
    of nodes) and keeps the MLP on Lorenz-63 (no ring)."""
    from interpolants.app.forecast_runs import load_forecast_run
    from interpolants.generative import load
    from interpolants.nn import MLPField, RingField

    budgets = {**TINY, "allen_cahn": {"pairs": 200, "chains": 10, "states": 4, "members": 3}}
    options = {"systems": ("lorenz63", "allen_cahn"), "steps": 3, "batch": 16, "width": 8,
               "depth": 1, "lags": 2, "sde_steps": 4, "nfe": 2, "budgets": budgets,
               "ring": {"width": 4, "depth": 1, "kernel": 3}}  # fmt: skip
    metrics, table = run_benchmark("forecast", out=tmp_path, options=options)
    assert metrics["settings"]["ring"] == {"width": 4, "depth": 1, "kernel": 3}
    assert "RingField" in table.split("lorenz63")[0]
    folder = tmp_path / "forecast"
    drift = load_forecast_run(folder / "allen_cahn").model.drift
    assert isinstance(drift, RingField) and drift.config["boundary"] == "reflect"
    assert isinstance(load(folder / "allen_cahn-flow").velocity, RingField)
    assert isinstance(load_forecast_run(folder / "lorenz63").model.drift, MLPField)
    assert math.isfinite(metrics["systems"]["allen_cahn"]["one_lag"]["follmer"]["crps"])


def test_system_options_reach_the_simulator_and_bad_ones_are_refused(tmp_path):
    options = {"systems": ("lorenz63",), "steps": 2, "batch": 16, "width": 4, "depth": 1,
               "lags": 1, "sde_steps": 2, "nfe": 2, "budgets": TINY,
               "system_options": {"lorenz63": {"lag": 0.05}}}  # fmt: skip
    metrics, table = run_benchmark("forecast", out=tmp_path, options=options)
    assert metrics["systems"]["lorenz63"]["lag"] == 0.05 and "lag=0.05" in table
    assert metrics["settings"]["system_options"] == {"lorenz63": {"lag": 0.05}}
    bad = [({"allen_cahn": {"lag": 0.1}}, "not among systems"),
           ({"lorenz63": {"pairs": 3}}, "'pairs' is set by the benchmark"),
           ({"lorenz63": {"lagg": 0.1}}, "system_options: lorenz63: .*lagg"),
           ({"lorenz63": {"lag": -1.0}}, "system_options: lorenz63: .*lag")]  # fmt: skip
    for given, message in bad:
        with pytest.raises(ValueError, match=message):
            run_benchmark("forecast", out=tmp_path / "bad", options={
                "systems": ("lorenz63",), "system_options": given})  # fmt: skip
        assert not (tmp_path / "bad" / "forecast" / "lorenz63").exists()
