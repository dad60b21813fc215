"""Sampling across processes (samplers/distributed.py): two gloo processes under
``torch.distributed.run`` against one process with the same n and seed.

AIS, SMC, MALA and HMC must agree bit for bit (log Z, its standard error, samples, log
weights, ESS, R-hat, bulk/tail ESS, evaluations): every rank draws the whole population's
noise from the one seeded stream and only the target's evaluations are split, row by row.
NETS, flow-MCMC and flow importance sampling train their networks data-parallel (gradients
summed over the ranks), whose float32 sums round in another order: they agree to TOL_TRAINED.
"""

import json
import subprocess
import sys
import warnings

import pytest
import torch
import torch.distributed as dist

import interpolants as si
from interpolants import targets
from interpolants.samplers.distributed import (
    all_gather_rows,
    broadcast_from_rank0,
    log_mean_exp_across,
    shard,
    world,
)

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not built")

TOL_TRAINED = {"atol": 1e-3, "rtol": 1e-4}  # float32 networks, gradient sums reordered

RUNS = {  # the one-process and two-process runs (the script gets their repr)
    "ais": dict(method="ais", n=201, seed=1, steps=8),
    "smc": dict(method="smc", n=210, seed=2, mass_matrix="dense"),
    "mala": dict(method="mala", n=400, seed=3, warmup=60, chains=5),
    "hmc": dict(method="hmc", n=400, seed=4, warmup=60),
    "nets": dict(
        method="nets",
        n=64,
        seed=5,
        steps=8,
        iterations=2,
        train_steps=4,
        updates=3,
        train_walkers=32,
        divergence="hutchinson",
        batch_size=33,
    ),
    "flow-mcmc": dict(
        method="flow-mcmc", n=256, seed=6, chains=16, warmup=20, max_rounds=3, train_steps=2
    ),
    "is": dict(method="is", n=256, seed=6, chains=16, warmup=20, max_rounds=3, train_steps=2),
}

FIELDS = ("samples", "log_weights", "log_Z", "log_Z_stderr", "ess", "rhat", "rank_rhat",
          "ess_bulk", "ess_tail", "evaluations", "acceptance_rate")  # fmt: skip

SCRIPT = f"""
import sys, warnings, torch, interpolants as si
from interpolants import targets
from interpolants.train import init_distributed
from interpolants.samplers import distributed as d
from interpolants.samplers.base import CountedDensity
warnings.simplefilter("ignore")
torch.set_num_threads(1)
size, rank = init_distributed()
target = targets.get("gmm40")
out = {{}}
for name, kw in {RUNS!r}.items():
    r = si.sample(target, **kw)
    out[name] = {{k: getattr(r, k) for k in {FIELDS!r}}}
n = 7  # the collectives on an uneven shard: rank r holds rows shard(7)
rows = torch.arange(n, dtype=torch.float64)[d.shard(n)]
out["gathered"] = d.all_gather_rows(rows[:, None] * torch.ones(1, 3), n)
out["log_mean_exp"] = d.log_mean_exp_across(rows, n)
out["broadcast"] = d.broadcast_from_rank0(torch.tensor([rank, 5]))
with d.local_evaluation():  # each rank its own walkers, no collective
    out["local"] = CountedDensity(target)(torch.full((3, 2), float(rank))).log_prob
torch.save(out, sys.argv[1] + f".{{rank}}")
"""


def _torchrun(args: list[str], timeout: int = 240) -> subprocess.CompletedProcess:
    # --standalone: a rendezvous on a free local port (a fixed --master_port can be taken)
    runner = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    done = subprocess.run([*runner, *args], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-3000:])
    return done


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """Every method's result on each of two ranks (one torchrun for all: ~20 s)."""
    tmp = tmp_path_factory.mktemp("dist")
    script = tmp / "sample.py"
    script.write_text(SCRIPT)
    _torchrun([str(script), str(tmp / "out.pt")])
    return [torch.load(tmp / f"out.pt.{rank}") for rank in range(2)]


def _one_process(name: str) -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with warnings.catch_warnings():  # convergence warnings of these short runs
            warnings.simplefilter("ignore")
            r = si.sample(targets.get("gmm40"), **RUNS[name])
    finally:
        torch.set_num_threads(threads)
    return {k: getattr(r, k) for k in FIELDS}


def _compare(one: dict, other: dict, exact: bool) -> None:
    for key in FIELDS:
        a, b = one[key], other[key]
        if a is None or b is None:
            assert a is None and b is None, key
        elif exact:
            if isinstance(a, torch.Tensor):
                assert torch.equal(a, b), key
            else:
                assert a == b, key
        else:
            torch.testing.assert_close(torch.as_tensor(a), torch.as_tensor(b), **TOL_TRAINED,
                                       msg=key)  # fmt: skip


@pytest.mark.parametrize("method", ["ais", "smc", "mala", "hmc"])
def test_two_processes_equal_one_bit_for_bit(two_ranks, method):
    one = _one_process(method)
    for rank in range(2):
        _compare(one, two_ranks[rank][method], exact=True)


@pytest.mark.parametrize("method", ["nets", "flow-mcmc", "is"])
def test_data_parallel_training_equals_one_process_within_tolerance(two_ranks, method):
    one = _one_process(method)
    _compare(two_ranks[0][method], two_ranks[1][method], exact=True)  # the ranks agree
    _compare(one, two_ranks[0][method], exact=False)


def test_collectives_on_an_uneven_shard_and_local_evaluation(two_ranks):
    rows = torch.arange(7, dtype=torch.float64)
    for rank in range(2):
        got = two_ranks[rank]
        assert torch.equal(got["gathered"], rows[:, None] * torch.ones(1, 3))
        torch.testing.assert_close(got["log_mean_exp"], rows.exp().mean().log())
        assert got["broadcast"].tolist() == [0, 5]
        alone = targets.get("gmm40").log_prob(torch.full((3, 2), float(rank)))
        assert torch.equal(got["local"], alone.to(got["local"]))


def test_shards_are_contiguous_blocks_the_first_ranks_one_longer():
    assert [shard(7, 3, r) for r in range(3)] == [slice(0, 3), slice(3, 5), slice(5, 7)]
    assert [shard(2, 4, r) for r in range(4)] == [slice(0, 1), slice(1, 2), slice(2, 2),
                                                   slice(2, 2)]  # fmt: skip
    with pytest.raises(ValueError, match="n=5"):
        shard(5, 2, 2)
    # alone: the whole population, and the collectives are no-ops
    assert world() == (1, 0) and shard(5) == slice(0, 5)
    x = torch.randn(5, 2)
    assert all_gather_rows(x, 5) is x and broadcast_from_rank0(x) is x
    torch.testing.assert_close(log_mean_exp_across(x[:, 0], 5), x[:, 0].exp().mean().log())


def test_sample_target_under_torchrun_writes_one_run_folder(tmp_path):
    """``torchrun -m interpolants.cli sample-target``: rank 0 writes metrics.json and the
    samples, equal to one process's run."""
    args = ["sample-target", "gmm40", "--method", "smc", "--n", "100", "--seed", "3", "--quiet"]
    # "--": torchrun's parser would take "--n" for an abbreviation of its own options
    _torchrun(["-m", "interpolants.cli", "--", *args, "--out", str(tmp_path / "two")])
    one = subprocess.run([sys.executable, "-m", "interpolants.cli", *args, "--out",
                          str(tmp_path / "one")],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert one.returncode == 0, one.stderr[-3000:]
    m1, m2 = (json.loads((tmp_path / k / "metrics.json").read_text()) for k in ("one", "two"))
    assert m1["log_Z"] == m2["log_Z"] and m1["log_Z_stderr"] == m2["log_Z_stderr"]
    assert m1["evaluations"] == m2["evaluations"]
    s1, s2 = (torch.load(tmp_path / k / "samples.pt") for k in ("one", "two"))
    assert torch.equal(s1["samples"], s2["samples"])
