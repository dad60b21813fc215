"""MeanFlow's preset with and without its adaptive loss weight, at bench flowmap's budget.

Tests the explanation in RESULTS.md "Flow maps (issue 20)" of why the preset gets worse with
more jumps: its adaptive weight 1 / (|r|^2 + c) turns the loss into log(|r|^2 + c), whose
minimiser over the spread of dI/dt is not the mean velocity. Same data, nets, budget and
scores as ``interpolants bench flowmap --steps 2000 --batch 1024`` (checkerboard, seed 0).

    OMP_NUM_THREADS=2 python benchmarks/flowmap_meanflow_weighting.py
"""

import time

from interpolants import fit_flow_map
from interpolants.app import flowmap_bench as fb
from interpolants.data import load

data = load("checkerboard", n=200_000)
test = load("checkerboard", n=20_000, split="test")
floors = fb._floors("checkerboard", test, 1)
for weighting in ("none", "adaptive"):
    _, net = fb._nets(256, 4, 0)
    start = time.time()
    fm = fit_flow_map(data, method="meanflow", weighting=weighting, steps=2000, batch_size=1024,
                      seed=0, net=net, **fb._train_options(2000))  # fmt: skip
    rows = fb._jump_rows(fm, test, floors, (1, 2, 4, 8, 16), 0)
    over = {k: round(v["over_floor"], 4) for k, v in rows.items()}
    print(f"weighting={weighting}: W2 - floor by jumps {over} ({time.time() - start:.0f} s)")
