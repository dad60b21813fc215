"""The command line, thin over the API: train, generate, evaluate, forecast, sample-target,
free-energy, demo, bench.

Every command exits 0 on success and 2 with a one-line reason on bad input; Ctrl-C during
training writes a checkpoint first and says how to resume (exit 130).
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Sequence
from pathlib import Path

from .. import __version__


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def _bench_option(text: str) -> tuple[str, object]:
    """KEY=VALUE with VALUE a Python literal (a bare word is kept as a string)."""
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def _demo(args: argparse.Namespace) -> None:
    from .demo import format_demo, format_training_demo, run_exact_demo, run_training_demo

    if args.exact:
        out = args.out or "runs/demo-exact"
        metrics = run_exact_demo(
            out=out, n=args.n, seed=args.seed, steps=args.steps or 100, overwrite=args.overwrite
        )
        print(format_demo(metrics))
        print(f"metrics: {out}/metrics.json")
    else:
        out = args.out or "runs/demo"
        metrics = run_training_demo(out, steps=args.steps, seed=args.seed, overwrite=args.overwrite)
        print(format_training_demo(metrics, out))


def _train(args: argparse.Namespace) -> None:
    from ..train import TrainingInterrupted, init_distributed
    from .training_runs import evaluate_run, read_config, train_from_config

    config = read_config(args.config, args.set)
    out = args.out or f"runs/{Path(args.config).stem}"
    _, rank = init_distributed()  # under torchrun: DistributedDataParallel
    try:
        train_from_config(
            config, out, resume=args.resume, progress=not args.quiet, overwrite=args.overwrite
        )
    except TrainingInterrupted as err:
        raise KeyboardInterrupt(
            f"{str(err).split('; resume')[0]}; resume with: interpolants train {args.config} "
            f"--out {out} --resume"
        ) from None
    if rank == 0:
        _print_metrics(evaluate_run(out), out)


def _print_metrics(metrics: dict, out: str) -> None:
    if "one_lag" in metrics:  # a forecast run
        from .forecast_eval import format_forecast_metrics

        print(format_forecast_metrics(metrics))
        print(f"metrics: {out}/metrics.json")
        return
    for key, value in metrics.items():
        if key != "plots":
            print(f"{key:>18}: {value:.4f}" if isinstance(value, float) else f"{key:>18}: {value}")
    print("plots: " + ", ".join(metrics.get("plots", [])))
    print(f"metrics: {out}/metrics.json")


def _evaluate(args: argparse.Namespace) -> None:
    from .training_runs import evaluate_run

    overrides = {
        k: v
        for k, v in (("steps", args.steps), ("solver", args.solver), ("n", args.n))
        if v is not None
    }
    _print_metrics(evaluate_run(args.run, **overrides), args.run)


def _generate(args: argparse.Namespace) -> None:
    import torch

    from .training_runs import generate

    path = generate(
        args.run,
        args.n,
        steps=args.steps,
        solver=args.solver,
        diffusion=args.diffusion,
        seed=args.seed,
        out=args.out,
        overwrite=args.overwrite,
        cond=args.cond,
        guidance=args.guidance,
    )
    print(f"{len(torch.load(path, weights_only=True))} samples: {path}")


def _forecast(args: argparse.Namespace) -> None:
    from .forecast_eval import run_forecast

    summary = run_forecast(
        args.run, args.cond, members=args.members, lags=args.lags, diffusion=args.diffusion,
        out=args.out, rows=args.rows, seed=args.seed, steps=args.steps, solver=args.solver,
        overwrite=args.overwrite,
    )  # fmt: skip
    print(f"forecasts {tuple(summary['shape'])} (lags, members, rows, dim): {summary['out']}")
    if "crps" in summary:
        print("CRPS by lag vs a true trajectory:  " + " ".join(f"{v:.3f}" for v in summary["crps"]))
        print("spread/skill by lag:               "
              + " ".join(f"{v:.2f}" for v in summary["spread_skill"]))  # fmt: skip
    if summary["plots"]:
        print("plots: " + ", ".join(summary["plots"]))


def _bench(args: argparse.Namespace) -> None:
    from .bench import BENCHMARKS, run_benchmark

    names = args.names or sorted(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise ValueError(
            f"unknown benchmark {unknown[0]!r}; known: {', '.join(sorted(BENCHMARKS))}"
        )
    options = dict(args.set or [])
    options |= {k: v for k in ("steps", "batch", "seed") if (v := getattr(args, k)) is not None}
    for name in names:
        _, table = run_benchmark(name, out=args.out, overwrite=args.overwrite, options=options)
        print(f"## {name}\n\n{table}\n\nmetrics: {args.out}/{name}/metrics.json\n")


def _overwrite(p: argparse.ArgumentParser, what: str = "the run in --out") -> None:
    p.add_argument(
        "--overwrite",
        action="store_true",
        help=f"replace {what} (the old files are kept until this run succeeds)",
    )


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="fit a generative model from a YAML config, then evaluate it",
        description="Train the run a YAML config describes (see examples/ and docs/cli.md: "
        "data is a built-in data set or your .npy/.npz/.pt/.csv file), then evaluate it.",
    )
    p.add_argument("config", help="YAML config (see examples/checkerboard.yaml)")
    p.add_argument("--out", help="run folder (default runs/CONFIG_NAME)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its checkpoint (its settings and data must match)",
    )
    _overwrite(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a config key, VALUE read as YAML, KEY dotted for nested keys (e.g. "
        "--set steps=50 --set eval.steps=20); repeatable",
    )
    p.set_defaults(func=_train)


def _add_generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate",
        help="samples from a trained run",
        description="Samples of a trained run. A conditional run (trained with labels or a "
        "coupling, docs/cli.md) samples given --cond: one sample per row of it (or -n of one "
        "row). Without --cond, a label model trained with label_dropout > 0 draws "
        "unconditional samples; any other conditional model refuses.",
    )
    p.add_argument("run", help="run folder (made by train or demo)")
    p.add_argument(
        "-n",
        type=_positive_int,
        help="samples (default 10000; with --cond one per row, or N of a one-row --cond, or "
        "labels repeated to N)",
    )
    p.add_argument(
        "--cond",
        metavar="FILE|LABELS",
        help="what to condition on: a .npy/.npz/.pt/.csv file of observations (in-painting: "
        "NaN at the missing entries; super-resolution: low-resolution images; paired: the "
        "current states) or of integer labels, or a list of labels such as 0,1,2",
    )
    p.add_argument(
        "--guidance",
        type=float,
        default=0.0,
        metavar="W",
        help="classifier-free guidance w of a label model trained with label_dropout > 0: "
        "(1 + w) f(x | label) - w f(x | null); default 0, the conditional model (SiT's "
        "cfg_scale = 1 + w)",
    )
    p.add_argument("--steps", type=_positive_int, default=100, help="time steps (default 100)")
    p.add_argument(
        "--solver",
        default="heun",
        choices=["euler", "heun", "rk4", "dopri5"],
        help="ODE solver (SDE: euler or heun; default heun)",
    )
    p.add_argument(
        "--diffusion",
        type=_non_negative_float,
        default=0.0,
        help="eps of the SDE (default 0: the probability-flow ODE)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", help="output tensor file (default RUN/samples.pt)")
    _overwrite(p, "an existing output file")
    p.set_defaults(func=_generate)


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="metrics and plots of a trained run",
        description="Test NLL, sliced W2 and MMD^2 beside their noise floors, on the run's "
        "held-out data (a built-in data set's test split, or the split kept from your file).",
    )
    p.add_argument("run", help="run folder")
    p.add_argument(
        "-n",
        type=_positive_int,
        help="samples for the sample metrics (default: the run's eval.n, 20000)",
    )
    p.add_argument("--steps", type=_positive_int, help="ODE steps (default: the run's eval.steps)")
    p.add_argument(
        "--solver",
        choices=["euler", "heun", "rk4", "dopri5"],
        help="ODE solver (default: the run's eval.solver, heun)",
    )
    p.set_defaults(func=_evaluate)


def _add_forecast(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "forecast",
        help="ensemble forecasts of a trained forecast run (model: forecast)",
        description="Ensembles (--lags 1) or autoregressive rollouts of a forecast run from "
        "the current states in --cond, or without it from --rows fresh states of the run's "
        "simulated system (then scored against a true trajectory from each, with plots). "
        "Writes (lags, members, rows, dim) as 'forecast' into --out (.npz or .safetensors), "
        "beside 'cond' and, for a system, 'truth' (lags, rows, dim).",
    )
    p.add_argument("run", help="forecast run folder (made by train with model: forecast)")
    p.add_argument(
        "--cond",
        metavar="FILE",
        help="current states, one per row: .npy, .npz, .pt or .csv (default: --rows fresh "
        "states of the run's system)",
    )
    p.add_argument("--members", type=_positive_int, default=50, help="members (default 50)")
    p.add_argument("--lags", type=_positive_int, default=1, help="lags ahead (default 1)")
    p.add_argument(
        "--diffusion",
        default="follmer",
        help="g(t), the noise coefficient of the SDE: follmer (default, recommended), "
        "interpolant (g = sigma, the SDE the drift was trained for) or a constant >= sigma(0) "
        "(in the model's standardised units)",
    )
    p.add_argument(
        "--rows", type=_positive_int, default=10, help="fresh states without --cond (default 10)"
    )
    p.add_argument("--steps", type=_positive_int, default=100, help="SDE steps per lag (100)")
    p.add_argument(
        "--solver", default="euler", choices=["euler", "heun"], help="SDE solver (euler)"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", help="output file, .npz or .safetensors (default RUN/forecast.npz)")
    _overwrite(p, "an existing output file")
    p.set_defaults(func=_forecast)


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="the main job on its embedded default: train and evaluate on checkerboard"
    )
    p.add_argument("--out", help="output folder (default runs/demo, runs/demo-exact)")
    p.add_argument(
        "--steps",
        type=_positive_int,
        help="training steps (default 2000); with --exact: solver steps (default 100)",
    )
    p.add_argument(
        "--exact", action="store_true", help="the exact-field demo instead (closed-form fields)"
    )
    p.add_argument(
        "-n", type=int, default=10_000, help="samples of the exact-field demo (default 10000)"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    _overwrite(p)
    p.set_defaults(func=_demo)


def _add_bench(sub: argparse._SubParsersAction) -> None:
    from .bench import BENCHMARKS

    p = sub.add_parser(
        "bench",
        help="run benchmarks (docs/benchmarks.md)",
        description="benchmarks: " + ", ".join(sorted(BENCHMARKS)),
    )
    p.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    p.add_argument("--out", default="runs/bench", help="output folder (default runs/bench)")
    p.add_argument("--steps", type=_positive_int, help="training steps (a quick run: fewer)")
    p.add_argument("--batch", type=_positive_int, help="training batch size")
    p.add_argument("--seed", type=int, help="random seed")
    p.add_argument(
        "--set",
        action="append",
        type=_bench_option,
        metavar="KEY=VALUE",
        help="any other keyword of the benchmark's function, VALUE a Python literal "
        "(e.g. --set width=64 --set \"datasets=['moons']\"); repeatable",
    )
    _overwrite(p, "earlier results in OUT/NAME")
    p.set_defaults(func=_bench)


class _Parser(argparse.ArgumentParser):
    """argparse with its errors on one line (the usage is one --help away)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="interpolants",
        description="Dynamical measure transport with stochastic interpolants: generative "
        "models from data, and samplers of unnormalised densities with log Z.",
        epilog="'interpolants COMMAND --help' shows a command's options; 'interpolants "
        "sample-target --help' lists the targets and each method's options.",
    )
    parser.add_argument("--version", action="version", version=f"interpolants {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_train(sub)
    _add_generate(sub)
    _add_evaluate(sub)
    _add_forecast(sub)
    from .sample_target import add_sample_target_parser

    add_sample_target_parser(sub)
    from .free_energy_runs import add_free_energy_parser

    add_free_energy_parser(sub)
    _add_demo(sub)
    _add_bench(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help, --version, or a usage error (already printed)
        return int(done.code or 0)
    if getattr(args, "out", None) is not None and not str(args.out).strip():
        print(f"interpolants {args.command}: error: --out must name a folder or file, got ''",
              file=sys.stderr)  # fmt: skip
        return 2
    try:
        args.func(args)
    except KeyboardInterrupt as err:
        reason = str(err) or "interrupted"
        print(f"interpolants {args.command}: {reason}", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError, FloatingPointError) as err:
        text = str(err).strip().splitlines()
        print(f"interpolants {args.command}: error: {text[0] if text else err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
