"""The command line: ``interpolants demo`` and ``interpolants bench NAME``; thin over the API."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _demo(args: argparse.Namespace) -> None:
    from .demo import format_demo, run_exact_demo

    metrics = run_exact_demo(out=args.out, n=args.n, seed=args.seed, steps=args.steps)
    print(format_demo(metrics))
    print(f"metrics: {args.out}/metrics.json")


def _bench(args: argparse.Namespace) -> None:
    from .bench import BENCHMARKS, run_benchmark

    names = args.names or sorted(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise ValueError(
            f"unknown benchmark {unknown[0]!r}; known: {', '.join(sorted(BENCHMARKS))}"
        )
    for name in names:
        _, table = run_benchmark(name, out=args.out)
        print(f"## {name}\n\n{table}\n\nmetrics: {args.out}/{name}/metrics.json\n")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="interpolants", description="Dynamical measure transport with stochastic interpolants."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="the main job on its embedded default")
    p.add_argument("--out", default="runs/demo", help="output folder (metrics.json, PNGs)")
    p.add_argument("-n", type=int, default=10_000, help="number of samples")
    p.add_argument("--steps", type=int, default=100, help="time steps of the fixed-step solvers")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_demo)
    p = sub.add_parser("bench", help="run benchmarks (BENCHMARKS.md)")
    p.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    p.add_argument("--out", default="runs/bench", help="output folder")
    p.set_defaults(func=_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, TypeError, FileNotFoundError) as err:
        print(f"interpolants {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
