"""The command line, thin over the API: train, generate, evaluate, sample-target, demo, bench."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def _demo(args: argparse.Namespace) -> None:
    from .demo import format_demo, format_training_demo, run_exact_demo, run_training_demo

    if args.exact:
        metrics = run_exact_demo(out=args.out, n=args.n, seed=args.seed, steps=args.steps or 100)
        print(format_demo(metrics))
        print(f"metrics: {args.out}/metrics.json")
    else:
        metrics = run_training_demo(args.out, steps=args.steps, seed=args.seed)
        print(format_training_demo(metrics, args.out))


def _train(args: argparse.Namespace) -> None:
    from .runs import evaluate_run, read_config, train_from_config
    from .train import init_distributed

    config = read_config(args.config)
    out = args.out or f"runs/{Path(args.config).stem}"
    _, rank = init_distributed()  # under torchrun: DistributedDataParallel
    train_from_config(config, out, resume=args.resume, progress=not args.quiet)
    if rank == 0:
        _print_metrics(evaluate_run(out), out)


def _print_metrics(metrics: dict, out: str) -> None:
    for key, value in metrics.items():
        if key != "plots":
            print(f"{key:>18}: {value:.4f}" if isinstance(value, float) else f"{key:>18}: {value}")
    print("plots: " + ", ".join(metrics.get("plots", [])))
    print(f"metrics: {out}/metrics.json")


def _evaluate(args: argparse.Namespace) -> None:
    from .runs import evaluate_run

    _check_run(args.run)
    overrides = {
        k: v for k, v in (("steps", args.steps), ("solver", args.solver), ("n", args.n)) if v
    }
    _print_metrics(evaluate_run(args.run, **overrides), args.run)


def _generate(args: argparse.Namespace) -> None:
    from .runs import generate

    _check_run(args.run)
    path = generate(
        args.run,
        args.n,
        steps=args.steps,
        solver=args.solver,
        diffusion=args.diffusion,
        seed=args.seed,
        out=args.out,
    )
    print(f"{args.n} samples: {path}")


def _check_run(folder: str) -> None:
    if not (Path(folder) / "checkpoint.pt").exists():
        raise FileNotFoundError(f"{folder} is not a training run (no checkpoint.pt)")


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
    p = sub.add_parser("train", help="fit a generative model from a YAML config")
    p.add_argument("config", help="YAML config (see examples/)")
    p.add_argument("--out", help="run folder (default runs/CONFIG_NAME)")
    p.add_argument("--resume", action="store_true", help="continue from the run's checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_train)
    p = sub.add_parser("generate", help="samples from a trained run")
    p.add_argument("run", help="run folder")
    p.add_argument("-n", type=int, default=10_000)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--solver", default="heun")
    p.add_argument("--diffusion", type=float, default=0.0, help="eps of the SDE (0: ODE)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="output tensor file (default RUN/samples.pt)")
    p.set_defaults(func=_generate)
    p = sub.add_parser("evaluate", help="metrics and plots of a trained run")
    p.add_argument("run", help="run folder")
    p.add_argument("-n", type=int, help="samples for the sample metrics")
    p.add_argument("--steps", type=int)
    p.add_argument("--solver")
    p.set_defaults(func=_evaluate)
    from .samplers.run import add_sample_target_parser

    add_sample_target_parser(sub)
    p = sub.add_parser(
        "demo", help="the main job on its embedded default: train and evaluate on checkerboard"
    )
    p.add_argument("--out", default="runs/demo", help="output folder (metrics.json, PNGs)")
    p.add_argument(
        "--steps", type=int, help="training steps (default 2000); with --exact: solver steps"
    )
    p.add_argument(
        "--exact", action="store_true", help="the exact-field demo instead (closed-form fields)"
    )
    p.add_argument("-n", type=int, default=10_000, help="samples of the exact-field demo")
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
    except (ValueError, TypeError, FileNotFoundError, FloatingPointError) as err:
        print(f"interpolants {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
