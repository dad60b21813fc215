import subprocess
import sys

import pytest
import torch
import torch.distributed as dist

import interpolants as si

SCRIPT = """
import sys, torch, interpolants as si
from interpolants.train import init_distributed
size, rank = init_distributed()
data = torch.load(sys.argv[1])
model = si.fit(data, steps=12, batch_size=64, seed=5, lr=3e-3, warmup=2, out=sys.argv[2],
               checkpoint_every=6, log_every=3, net_options={"width": 16, "depth": 2})
if rank == 0:
    torch.save([p.detach() for p in model.velocity.parameters()], sys.argv[3])
"""


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not built")
def test_two_cpu_processes_match_one_with_the_same_global_batch(tmp_path):
    data = torch.randn(300, 2, generator=torch.Generator().manual_seed(0)) * 2 + 1
    torch.save(data, tmp_path / "data.pt")
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    # --standalone: a rendezvous on a free local port (a fixed --master_port can be taken)
    runner = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    args = [str(tmp_path / name) for name in ("data.pt", "run", "ddp.pt")]
    done = subprocess.run([*runner, str(script), *args], capture_output=True, text=True,
                          timeout=240)  # fmt: skip
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-3000:])
    ddp = torch.load(tmp_path / "ddp.pt")
    single = si.fit(data, steps=12, batch_size=64, seed=5, lr=3e-3, warmup=2, log_every=3,
                    net_options={"width": 16, "depth": 2})  # fmt: skip
    for a, b in zip(single.velocity.parameters(), ddp, strict=True):
        torch.testing.assert_close(a.detach(), b, atol=1e-5, rtol=1e-4)
    assert (tmp_path / "run/checkpoint.safetensors").exists()
    assert len((tmp_path / "run/metrics.jsonl").read_text().splitlines()) == 4
