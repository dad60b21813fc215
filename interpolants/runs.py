"""Training runs from YAML configs, and their evaluation: what the command line calls.

A config names a data set (BENCHMARKS.md), an optional base, the interpolant, the fields and
any :class:`~interpolants.train.TrainConfig` option::

    data: checkerboard          # or {name: checkerboard, n: 100000}
    base: null                  # null: N(0, I); or a data set name (two-sided)
    interpolant: {path: linear, gamma: zero}
    fields: [velocity]
    steps: 4000
    batch_size: 4096
    lr: 0.001
    net: {width: 256, depth: 4}
    eval: {n: 20000, steps: 100, solver: heun}
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from . import data as datasets
from .generative import GenerativeModel, load
from .interpolant import Interpolant
from .metrics import bits_per_dim, mmd2, sliced_w2
from .train import TrainConfig, fit

__all__ = ["evaluate_run", "generate", "read_config", "train_from_config"]

_RUN_KEYS = {"data", "base", "interpolant", "eval"}
_EVAL_DEFAULTS = {"n": 20_000, "steps": 100, "solver": "heun", "nll_points": 2000, "grid": 80}


def read_config(path: str | Path) -> dict[str, Any]:
    """Parse and check a YAML config; ValueError naming the file and the key on bad input."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"config file {path} does not exist")
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ValueError(f"{path}: malformed YAML{where}") from err
    if not isinstance(config, dict):
        raise ValueError(f"{path}: a config must be a mapping of options")
    check_config(config, str(path))
    return config


def check_config(config: dict[str, Any], where: str = "config") -> None:
    known = _RUN_KEYS | {"net"} | set(TrainConfig.__dataclass_fields__) - {"net_options"}
    unknown = sorted(set(config) - known)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")
    if "data" not in config:
        raise ValueError(f"{where}: 'data' is required (one of {', '.join(datasets.DATASETS)})")
    _data_spec(config["data"], where)


def _data_spec(spec: Any, where: str) -> dict[str, Any]:
    spec = {"name": spec} if isinstance(spec, str) else dict(spec)
    if spec.get("name") not in datasets.DATASETS:
        raise ValueError(
            f"{where}: data: unknown data set {spec.get('name')!r}; "
            f"known: {', '.join(datasets.DATASETS)}"
        )
    return spec


def train_from_config(
    config: dict[str, Any], out: str | Path, resume: bool = False, progress: bool = True
) -> GenerativeModel:
    """Train the run of ``config`` into folder ``out`` (resumable), then evaluate it."""
    check_config(config)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    spec = _data_spec(config["data"], "config")
    x1 = datasets.load(spec["name"], n=spec.get("n", 100_000), split="train")
    base = config.get("base")
    if base is not None:
        base = datasets.load(
            _data_spec(base, "config base")["name"], n=len(x1), split="train", seed=7
        )
    interpolant = Interpolant(**(config.get("interpolant") or {}))
    options = {k: v for k, v in config.items() if k not in _RUN_KEYS | {"net"}}
    options["net_options"] = config.get("net") or {}
    (out / "run.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    model = fit(
        x1, base=base, interpolant=interpolant, out=out, resume=resume, progress=progress, **options
    )
    return model


def _loss_plot(folder: Path) -> Path | None:
    rows = [json.loads(r) for r in (folder / "metrics.jsonl").read_text().splitlines() if r.strip()]
    if not rows:
        return None
    from .plots import curves

    return curves(
        {"loss": ([r["step"] for r in rows], [r["loss"] for r in rows])},
        folder / "loss.png",
        xlabel="step",
    )


def evaluate_run(folder: str | Path, progress: bool = True, **overrides: Any) -> dict[str, Any]:
    """Metrics and plots of a trained run: test NLL, sliced W2 and MMD^2 against held-out data
    beside their noise floors; writes ``metrics.json`` and PNGs into the run folder."""
    folder = Path(folder)
    config = (
        yaml.safe_load((folder / "run.yaml").read_text()) if (folder / "run.yaml").exists() else {}
    )
    ev = {**_EVAL_DEFAULTS, **(config.get("eval") or {}), **overrides}
    model = load(folder)
    name = _data_spec(config.get("data", "checkerboard"), "run")["name"]
    test = datasets.load(name, n=ev["n"], split="test")
    reference = datasets.load(name, n=ev["n"], split="train", seed=11)
    gen = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    sol = model.sample(
        len(test), steps=ev["steps"], solver=ev["solver"], generator=gen, return_info=True
    )
    sample_seconds = time.perf_counter() - start
    x = sol.x
    dims = test[0].numel()
    pts = test[: ev["nll_points"]]
    divergence = "exact" if dims <= 64 else "hutchinson"
    nll = -model.log_prob(
        pts, divergence=divergence, steps=ev["steps"], solver=ev["solver"], generator=gen
    )
    result: dict[str, Any] = {
        "data": name,
        "nfe": sol.nfe,
        "sample_seconds": sample_seconds,
        "test_nll": float(nll.mean()),
        "test_nll_stderr": float(nll.std() / math.sqrt(len(nll))),
        "sliced_w2": sliced_w2(x, test),
        "sliced_w2_floor": sliced_w2(reference, test),
        "mmd2": mmd2(x, test),
        "mmd2_floor": mmd2(reference, test),
        "solver": ev["solver"],
        "steps": ev["steps"],
    }
    truth = datasets.true_nll(name, pts)
    if truth is not None:
        result["true_nll"] = truth
        result["nll_gap"] = result["test_nll"] - truth
    if name == "digits":
        result["bits_per_dim"] = bits_per_dim(nll, dims, levels=17)
    plots = [p for p in (_loss_plot(folder),) if p is not None]
    if dims == 2:
        from .plots import density_heatmap, samples_over_density

        plots.append(
            samples_over_density({"data (test)": test, "model samples": x}, folder / "samples.png")
        )

        def grid_log_prob(pts: torch.Tensor) -> torch.Tensor:
            return model.log_prob(pts, steps=min(ev["steps"], 50), solver=ev["solver"])

        plots.append(density_heatmap(grid_log_prob, folder / "density.png", resolution=ev["grid"]))
    result["plots"] = [str(p) for p in plots]
    (folder / "metrics.json").write_text(json.dumps(result, indent=2))
    return result


def generate(
    folder: str | Path,
    n: int,
    steps: int = 100,
    solver: str = "heun",
    diffusion: float = 0.0,
    seed: int = 0,
    out: str | Path | None = None,
) -> Path:
    """n samples of a trained run, saved as a tensor file (and a PNG for 2D data)."""
    folder = Path(folder)
    model = load(folder)
    x = model.sample(
        n,
        steps=steps,
        solver=solver,
        diffusion=diffusion,
        generator=torch.Generator().manual_seed(seed),
        progress=True,
    )
    path = Path(out) if out is not None else folder / "samples.pt"
    torch.save(x, path)
    if x[0].numel() == 2:
        from .plots import samples_over_density

        samples_over_density({f"{n} samples": x}, path.with_suffix(".png"))
    return path
