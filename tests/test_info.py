"""``SampleResult.info``: one typed Info subclass per method, read as a read-only mapping."""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from collections.abc import Mapping

import pytest
import torch

import interpolants as si
from interpolants.samplers.diagnostics import ConvergenceWarning
from interpolants.samplers.info import (
    AnnealingInfo,
    FlowMCMCInfo,
    HMCInfo,
    ImportanceInfo,
    Info,
    MCMCInfo,
    NETSInfo,
    TrainingInfo,
)
from interpolants.samplers.result import SampleResult

TINY_TRANSPORT = {"chains": 8, "warmup": 10, "max_rounds": 4, "min_rounds": 2, "train_steps": 2}
CASES = [
    ("mala", MCMCInfo, {"chains": 4, "warmup": 20}),
    ("hmc", HMCInfo, {"chains": 4, "warmup": 20, "num_steps": 3}),
    ("ais", AnnealingInfo, {"steps": 5}),
    ("smc", AnnealingInfo, {"steps": 5, "batches": 2, "moves": 1}),
    ("nets", NETSInfo, {"iterations": 2, "train_steps": 5, "steps": 5, "train_walkers": 8,
                        "updates": 2}),
    ("flow-mcmc", FlowMCMCInfo, TINY_TRANSPORT),
    ("is", ImportanceInfo, TINY_TRANSPORT),
]  # fmt: skip


@pytest.fixture(scope="module")
def results() -> dict[str, SampleResult]:
    target = si.targets.get("gmm-d2-k3")
    with warnings.catch_warnings():  # the tiny MCMC runs fail their convergence checks
        warnings.simplefilter("ignore", ConvergenceWarning)
        return {
            method: si.sample(target, method, n=40, seed=0, **options)
            for method, _, options in CASES
        }


@pytest.mark.parametrize("method,cls", [(m, c) for m, c, _ in CASES])
def test_info_is_the_methods_class_and_a_read_only_mapping(results, method, cls):
    info = results[method].info
    assert type(info) is cls and isinstance(info, Info) and isinstance(info, Mapping)
    names = [f.name for f in dataclasses.fields(info)]
    keys = list(info)
    assert keys == [k for k in names if k in keys] and len(info) == len(keys)
    assert info["target"] == "gmm-d2-k3" and "target" in info
    for key in keys:
        assert info[key] is getattr(info, key) and info.get(key) is getattr(info, key)
    absent = set(names) - set(keys)  # only None fields may be left out
    assert all(getattr(info, k) is None for k in absent)
    assert "no_such_key" not in info and info.get("no_such_key", 3) == 3
    with pytest.raises(KeyError):
        info["no_such_key"]
    assert list(dict(info)) == keys and dict(info.items()) == dict(info)
    with pytest.raises(TypeError):
        info["target"] = "x"  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.target = "x"  # type: ignore[misc]


@pytest.mark.parametrize("method", [m for m, _, _ in CASES])
def test_to_dict_is_json_and_holds_the_scalar_info(results, method):
    result = results[method]
    out = result.to_dict()
    json.dumps(out, allow_nan=False)
    for key, value in result.info.items():
        if key == "rhat_max":  # the result's own, from its R-hat tensor
            continue
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        if isinstance(value, (bool, int, str)) or (
            isinstance(value, float) and math.isfinite(value)
        ):
            assert out[key] == value, key
        elif isinstance(value, tuple) and value and isinstance(value[0], dict):  # records
            assert out[key] == [dict(v) for v in value], key
        else:  # None, NaN, tensors, lists, objects
            assert key not in out, key


def test_training_cost_has_one_spelling(results):
    for method in ("nets", "flow-mcmc", "is"):
        info = results[method].info
        assert isinstance(info, TrainingInfo)
        assert 0 < info["training_evaluations"] <= results[method].evaluations
        assert info["training_seconds"] > 0
        assert "train_evaluations" not in info and "train_seconds" not in info
        assert {"training_evaluations", "training_seconds"} <= set(results[method].to_dict())


def test_optional_fields_are_keys_only_where_the_method_has_them(results):
    ais, smc = results["ais"].info, results["smc"].info
    batch_keys = {"batches", "walkers_per_batch", "resampling_steps", "log_Z_batches"}
    assert not batch_keys & set(ais) and ais.batches is None and ais.get("batches") is None
    assert batch_keys <= set(smc) and smc["batches"] == 2 and smc["walkers_per_batch"] == 20
    assert "num_steps" not in results["mala"].info and results["hmc"].info["num_steps"] == 3
    assert results["hmc"].info["trajectory_length"] is None  # a None field that is a key
    nets = results["nets"].info
    assert nets["model"] is not None and {"log_Z_F", "final_training_ess"} <= set(nets)
    assert nets["eps_sweep"] == [] and nets["history"]  # eps=None: no sweep
    assert results["flow-mcmc"].info["global_accepted"].dtype == torch.bool


def test_default_info_is_empty_and_equality_is_the_mappings():
    result = SampleResult(samples=torch.zeros(3, 2), method="custom")
    assert type(result.info) is Info and dict(result.info) == {} and result.info == {}
    assert "target" not in result.to_dict()
    assert Info(target="t") == {"target": "t"} and len(Info(target="t")) == 1
