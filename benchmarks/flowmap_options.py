"""One flow map (or the velocity) at ``bench flowmap``'s budget with options changed, scored at
1, 2 and 4 jumps over independent draws: for tuning one option at a time (checkerboard, or
``--data``).

    OMP_NUM_THREADS=1 python benchmarks/flowmap_options.py lr=0.003 backward=False
    OMP_NUM_THREADS=1 python benchmarks/flowmap_options.py --velocity --draws 20 lr=0.003

Options are ``fit_flow_map``'s keywords (the objective's: diagonal, backward, stopgrad, ...;
the loop's: lr, ema, ...) as KEY=VALUE (Python literals), on top of the benchmark's 2000
steps of batch 1024 (``--steps``, ``--batch``), warm-up 200, seed 1, ``FlowMapMLP`` 4 x 256,
method ``--method`` (default lagrangian). ``--velocity`` trains ``fit``'s velocity instead (the
same loop options) and scores its 100-step Heun ODE. Prints one JSON line: W2 - floor and its
standard error.
"""

from __future__ import annotations

import argparse
import ast
import json
import time

import interpolants as si
from interpolants.app import flowmap_bench as fb
from interpolants.data import load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("options", nargs="*", help="KEY=VALUE options of fit_flow_map / fit")
    parser.add_argument("--method", default="lagrangian")
    parser.add_argument("--velocity", action="store_true", help="score fit's velocity instead")
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data", default="checkerboard", help="a 2D set of interpolants.data")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=1024)
    args = parser.parse_args()
    options = {k: ast.literal_eval(v) for k, v in (a.split("=", 1) for a in args.options)}
    loop = fb._train_options(args.steps)
    loop |= {k: options.pop(k) for k in ("lr", "ema") if k in options}
    data = load(args.data, n=200_000)
    test = load(args.data, n=20_000, split="test")
    floors = fb._floors(args.data, test, args.draws)
    velocity_net, map_net = fb._nets(256, 4, args.seed)
    start = time.perf_counter()
    if args.velocity:
        model = si.fit(data, steps=args.steps, batch_size=args.batch, seed=args.seed,
                       net=velocity_net, **loop)  # fmt: skip
        rows = {"ode": fb._velocity_rows(model, test, floors, [], 100, args.seed)["ode"]}
    else:
        fm = si.fit_flow_map(data, method=args.method, steps=args.steps, batch_size=args.batch,
                             seed=args.seed, net=map_net, **loop, **options)  # fmt: skip
        rows = fb._jump_rows(fm, test, floors, [1, 2, 4], args.seed)
    scores = {k: [round(v["over_floor"], 4), round(v["stderr"], 4)] for k, v in rows.items()}
    print(json.dumps({"data": args.data, "seed": args.seed, "options": args.options,
                      "method": args.method, "velocity": args.velocity,
                      "seconds": round(time.perf_counter() - start), **scores}))  # fmt: skip


if __name__ == "__main__":
    main()
