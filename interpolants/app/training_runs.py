"""Training runs from YAML configs, and their evaluation: what the command line calls.

A config names the data (a built-in data set, see docs/benchmarks.md, or the user's file), an
optional base, the interpolant, the fields and any :class:`~interpolants.train.TrainConfig`
option::

    data: checkerboard          # or {name: checkerboard, n: 100000, seed: 0}
                                # or {path: my.npz, array: x, labels: y, holdout: 0.1}
                                #    (.npy, .npz, .pt or .csv with label_column: NAME)
    base: null                  # null: N(0, I); or a data set name or file (two-sided)
    interpolant: {path: linear, gamma: zero}
    fields: [velocity]
    steps: 4000
    batch_size: 4096
    lr: 0.001
    net: {width: 256, depth: 4}
    eval: {n: 20000, steps: 100, solver: heun, nll_points: 2000, grid: 80}
    coupling: {kind: inpainting, mask: random, keep: 0.5}   # optional: :mod:`.coupling_config`
    label_dropout: 0.1          # data with labels (a file's, or {name: digits, labels: true})

Data with labels train a class-conditional model (``label_dropout``, ``classes``); a
``coupling:`` a model conditioned on observations of the data (:mod:`.coupling_config`).

``model: flow_map`` trains a flow map instead (:mod:`.flow_map_runs`: a ``flow_map`` section
with the method and its options; ``eval: {jumps: [1, 2, 4]}``); ``model: forecast`` the drift
of a probabilistic forecast from pairs (current state, next state) (:mod:`.forecast_runs`).

Every key is checked, nested ones included: an unknown key or a value of the wrong type is a
ValueError naming it. File paths are read relative to the config file's folder.
"""

from __future__ import annotations

import inspect
import json
import math
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor
from torch.utils.data import TensorDataset

from .. import checkpoints
from .. import data as datasets
from ..distributions import Empirical
from ..flowmaps import FlowMapModel
from ..forecasting import ForecastModel
from ..generative import GenerativeModel, load
from ..integrate import SOLVERS
from ..interpolant import Interpolant
from ..metrics import bits_per_dim, mmd2, sliced_w2
from ..run_folder import CHECKPOINT, CONFIG, METRICS, METRICS_LOG, write_atomic
from ..train import HELDOUT, TrainConfig, fit
from .coupling_config import (
    HELDOUT_COND,
    check_coupling,
    eval_conditions,
    prepare_conditioning,
    read_cond,
    resolve_coupling_paths,
)
from .flow_map_runs import (
    check_flow_map_config,
    evaluate_flow_map,
    flow_map_trainer,
    jumps_setting,
)
from .forecast_runs import (
    check_forecast_config,
    is_forecast_run,
    resolve_forecast_paths,
    train_forecast,
)
from .plots import plot_run

__all__ = ["check_config", "evaluate_run", "generate", "read_config", "train_from_config"]

_RUN_KEYS = {"data", "base", "interpolant", "eval", "model", "flow_map", "coupling"}
_EVAL_DEFAULTS = {"n": 20_000, "steps": 100, "solver": "heun", "nll_points": 2000, "grid": 80,
                  "jumps": None}  # fmt: skip
_NAMED_KEYS = ("name", "n", "seed", "labels")
_FILE_KEYS = ("path", "array", "labels", "label_column", "holdout")
_INTERPOLANT_KEYS = tuple(p for p in inspect.signature(Interpolant).parameters)


def read_config(path: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Parse and check a YAML config; ValueError naming the file and the key on bad input.
    Data file paths are made absolute, relative to the config's folder. ``overrides``:
    ``KEY=VALUE`` settings (``train --set``; VALUE read as YAML, KEY dotted for a nested
    one: ``eval.steps=20``) applied first."""
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
    for text in overrides or ():
        _override(config, text)
    if config.get("model") == "forecast":
        check_forecast_config(config, str(path))
        return resolve_forecast_paths(config, path.parent)
    check_config(config, str(path))
    for role in ("data", "base"):
        spec = config.get(role)
        if spec is not None:
            spec = _data_spec(spec, f"{path}: {role}")
        if isinstance(spec, dict) and "path" in spec:
            config[role] = {**spec, "path": str((path.parent / spec["path"]).resolve())}
    if config.get("coupling") is not None:
        config["coupling"] = resolve_coupling_paths(config["coupling"], path.parent)
    teacher = (config.get("flow_map") or {}).get("teacher")
    if teacher is not None:
        config["flow_map"]["teacher"] = str((path.parent / str(teacher)).resolve())
    return config


def _override(config: dict[str, Any], text: str) -> None:
    """Apply one ``--set KEY=VALUE`` (VALUE as YAML; KEY dotted into nested mappings)."""
    key, sep, value = text.partition("=")
    if not sep or not key or not all(part.isidentifier() for part in key.split(".")):
        raise ValueError(f"--set: expected KEY=VALUE (e.g. steps=50, eval.steps=20), got {text!r}")
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        raise ValueError(f"--set {key}: {value!r} is not a YAML value") from None
    *parents, last = key.split(".")
    node = config
    for part in parents:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ValueError(f"--set {key}: {part} is {child!r}, not a mapping")
        node = child
    node[last] = parsed


def _unknown(given: dict[str, Any], known: Any, where: str) -> None:
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")


def check_config(config: dict[str, Any], where: str = "config") -> None:
    """Every key known (nested sections too) and the run's own values well typed; the
    training options are checked by :class:`~interpolants.train.TrainConfig`."""
    if config.get("model") == "forecast":
        check_forecast_config(config, where)
        return
    known = _RUN_KEYS | {"net"} | set(TrainConfig.__dataclass_fields__) - {"net_options"}
    _unknown(config, known, where)
    if "data" not in config:
        raise ValueError(f"{where}: 'data' is required (one of {', '.join(datasets.DATASETS)})")
    _data_spec(config["data"], f"{where}: data")
    if config.get("base") is not None:
        _data_spec(config["base"], f"{where}: base")
    for section, keys in (("interpolant", _INTERPOLANT_KEYS), ("net", None), ("eval", None)):
        value = config.get(section)
        if value is not None and not isinstance(value, dict):
            raise ValueError(f"{where}: {section} must be a mapping, got {value!r}")
        if value and keys is not None:
            _unknown(value, keys, f"{where}: {section}")
    _eval_settings(config.get("eval") or {}, f"{where}: eval")
    check_flow_map_config(config, where)
    coupling = config.get("coupling")
    if coupling is not None:
        coupling = check_coupling(coupling, f"{where}: coupling")
        if config.get("base") is not None:
            raise ValueError(f"{where}: coupling and base exclude each other (x0 is its own)")
        if config.get("model", "generative") != "generative":
            raise ValueError(f"{where}: coupling applies to model: generative, not flow maps")
        if coupling["kind"] == "paired" and "path" not in _data_spec(config["data"], "data"):
            raise ValueError(f"{where}: coupling: kind paired needs data from a file (path:)")


def _data_spec(spec: Any, where: str) -> dict[str, Any]:
    """{name, n, seed} for a built-in data set, {path, ...} for a file."""
    if isinstance(spec, str):
        is_file = Path(spec).suffix.lower() in datasets.FILE_FORMATS
        spec = {"path": spec} if is_file else {"name": spec}
    if not isinstance(spec, dict):
        raise ValueError(f"{where}: expected a data set name, a file or a mapping, got {spec!r}")
    if "path" in spec:
        _unknown(spec, _FILE_KEYS, where)
        holdout = spec.get("holdout", 0.1)
        if holdout is not None and not (isinstance(holdout, float) and 0 < holdout < 1):
            raise ValueError(f"{where}: holdout must be a fraction in (0, 1) or null")
        return dict(spec)
    _unknown(spec, _NAMED_KEYS, where)
    labels = spec.get("labels", False)
    if not isinstance(labels, bool) or (labels and spec.get("name") != "digits"):
        raise ValueError(
            f"{where}: labels: true reads the labels of digits (the only built-in data set with "
            f"labels), got labels: {labels!r} for {spec.get('name')!r}"
        )
    if spec.get("name") not in datasets.DATASETS:
        raise ValueError(
            f"{where}: unknown data set {spec.get('name')!r}; known: "
            f"{', '.join(datasets.DATASETS)}, or a file ({', '.join(datasets.FILE_FORMATS)})"
        )
    for key in ("n", "seed"):
        value = spec.get(key)
        if value is not None and not (isinstance(value, int) and value >= (key == "n")):
            raise ValueError(f"{where}: {key} must be a {'positive' * (key == 'n')} integer")
    return dict(spec)


def _eval_settings(ev: dict[str, Any], where: str) -> dict[str, Any]:
    _unknown(ev, _EVAL_DEFAULTS, where)
    ev = {**_EVAL_DEFAULTS, **ev}
    for key in ("n", "steps", "nll_points", "grid"):
        value = ev[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{where}: {key} must be a positive integer, got {value!r}")
    jumps_setting(ev["jumps"], where)
    if ev["solver"] not in SOLVERS:
        raise ValueError(f"{where}: solver must be one of {sorted(SOLVERS)}, got {ev['solver']!r}")
    return ev


def _load_data(spec: dict[str, Any], n: int | None = None, seed: int | None = None) -> Any:
    """A tensor (or (x, labels) dataset) of the training split."""
    if "path" in spec:
        x, labels = datasets.read_file(
            spec["path"], spec.get("array"), spec.get("labels"), spec.get("label_column")
        )
        return x if labels is None else TensorDataset(x, labels)
    size = spec.get("n", n if n is not None else 100_000)
    x = datasets.load(spec["name"], n=size, split="train", seed=spec.get("seed", seed))
    return TensorDataset(x, datasets.digits_labels("train")) if spec.get("labels") else x


def train_from_config(
    config: dict[str, Any],
    out: str | Path,
    resume: bool = False,
    progress: bool = True,
    *,
    overwrite: bool = False,
) -> GenerativeModel:
    """Train the run of ``config`` into folder ``out`` (resumable), then return the model.

    A user's data file keeps ``holdout`` (default 0.1) of its rows out of training, for
    :func:`evaluate_run`; a built-in data set is evaluated on its own test split.
    """
    if config.get("model") == "forecast":
        return train_forecast(config, out, resume, progress, overwrite=overwrite)  # type: ignore[return-value]
    check_config(config)
    spec = _data_spec(config["data"], "data")
    cspec = config.get("coupling")
    labels_asked = bool({"labels", "label_column"} & set(spec)) and spec.get("labels") is not False
    x1, coupling, holdout, held = prepare_conditioning(
        cspec, _load_data(spec), spec.get("holdout", 0.1) if "path" in spec else None,
        config.get("seed", 0), labels_asked,
    )  # fmt: skip
    base = config.get("base")
    base_spec = None
    if base is not None:
        base_spec = _data_spec(base, "base")
        base = _load_data(base_spec, n=len(x1), seed=7)
        base = base.tensors[0] if isinstance(base, TensorDataset) else base
    interpolant = Interpolant(**(config.get("interpolant") or {}))
    options = {k: v for k, v in config.items() if k not in _RUN_KEYS | {"net"}}
    options["net_options"] = config.get("net") or {}
    record = {"data": spec, "base": base_spec, "eval": config.get("eval") or {}}
    if coupling is not None:
        base = coupling
        record |= {"coupling": cspec, "event_shape": list(x1.shape[1:])}

    def on_end(model: GenerativeModel, folder: Path | None) -> None:
        """run.yaml (the config as given) beside the run's own config.yaml, then the plots."""
        if folder is not None:
            write_atomic(folder / RUN_CONFIG, yaml.safe_dump(config, sort_keys=False))
            if held:
                checkpoints.save(folder / HELDOUT_COND, held, kind="data")
        plot_run(model, folder)

    trainer = fit if config.get("model", "generative") == "generative" else flow_map_trainer(config)
    return trainer(
        x1, base=base, interpolant=interpolant, out=out, resume=resume, overwrite=overwrite,
        holdout=holdout, progress=progress,
        record=record, on_end=on_end, **options,
    )  # fmt: skip


RUN_CONFIG = "run.yaml"


def _reference_sets(folder: Path, record: dict[str, Any] | None, n: int) -> tuple[Tensor, Tensor]:
    """(test points, an independent reference set of the same law) for the run's data."""
    spec = (record or {}).get("data") or {}
    if "name" in spec:
        test = datasets.load(spec["name"], n=n, split="test")
        return test, datasets.load(spec["name"], n=n, split="train", seed=11)
    if not (folder / HELDOUT).exists():
        raise ValueError(
            f"{folder} has no held-out data to evaluate on: it was trained on the user's data "
            "without a held-out split; train with si.fit(..., holdout=0.1) (or a data file in "
            "a config, which keeps one), or evaluate the model in Python on your own test set"
        )
    held = checkpoints.load(folder / HELDOUT, kind="data")["x"]
    half = min(len(held) // 2, n)
    if half < 2:
        raise ValueError(f"{folder}: {len(held)} held-out points are too few to evaluate on")
    return held[:half], held[half : 2 * half]


def evaluate_run(folder: str | Path, progress: bool = True, **overrides: Any) -> dict[str, Any]:
    """Metrics and plots of a trained run: test NLL, sliced W2 and MMD^2 against the run's
    held-out data beside their noise floors; writes ``metrics.json`` and PNGs into the run
    folder once everything is computed (a failure leaves earlier results as they were).

    Built-in data sets are evaluated on their test split; a run on the user's data on its
    held-out split (``heldout.safetensors``), halved into test and reference points; a run
    with neither is refused."""
    folder = Path(folder)
    if not (folder / CHECKPOINT).exists():
        raise FileNotFoundError(f"{folder} is not a training run (no {CHECKPOINT})")
    if is_forecast_run(folder):
        from .forecast_eval import evaluate_forecast_run

        if "n" in overrides:
            overrides["states"] = overrides.pop("n")
        return evaluate_forecast_run(folder, **overrides)
    config = yaml.safe_load((folder / CONFIG).read_text()) if (folder / CONFIG).exists() else {}
    record = (config or {}).get("run")
    ev = _eval_settings({**((record or {}).get("eval") or {}), **overrides}, "evaluate")
    model = load(folder)
    test, reference = _reference_sets(folder, record, ev["n"])
    events = (record or {}).get("event_shape") if model.base is None else model.base.event_shape
    if tuple(test.shape[1:]) != tuple(events or ()):
        raise ValueError(
            f"{folder}: the model's events differ from the data's {tuple(test.shape[1:])}"
        )
    if isinstance(model, FlowMapModel):
        return _evaluate_flow_map_run(folder, model, test, reference, ev, record)
    gen = torch.Generator().manual_seed(0)
    cond, shown = eval_conditions(folder, record or {}, model, test, gen)
    start = time.perf_counter()
    sol = model.sample(
        len(test), steps=ev["steps"], solver=ev["solver"], generator=gen, return_info=True,
        cond=cond,
    )  # fmt: skip
    name = (record or {}).get("data", {}).get("name", "held-out data")
    result: dict[str, Any] = {"data": name, "nfe": sol.nfe,
                              "sample_seconds": time.perf_counter() - start}  # fmt: skip
    x, dims = sol.x, test[0].numel()
    pts = test[: ev["nll_points"]]
    has_density = not isinstance(model.base, Empirical)
    nll_key = "test_nll" if cond is None else "test_cond_nll"
    if has_density:
        divergence = "exact" if dims <= 64 else "hutchinson"
        try:
            nll = -model.log_prob(
                pts, divergence=divergence, steps=ev["steps"], solver=ev["solver"],
                generator=gen, cond=None if cond is None else cond[: len(pts)],
            )  # fmt: skip
        except ValueError as err:  # a conditional density that does not exist (noise = 0)
            has_density, result[f"{nll_key}_skipped"] = False, str(err)
    if has_density:
        result[nll_key] = float(nll.mean())
        result[f"{nll_key}_stderr"] = float(nll.std() / math.sqrt(len(nll)))
    if cond is not None:
        result |= _conditional_metrics(model, x, test, cond)
    result |= {
        "sliced_w2": sliced_w2(x, test),
        "sliced_w2_floor": sliced_w2(reference, test),
        "mmd2": mmd2(x, test),
        "mmd2_floor": mmd2(reference, test),
        "solver": ev["solver"],
        "steps": ev["steps"],
    }
    truth = datasets.true_nll(name, pts) if has_density and cond is None else None
    if truth is not None:
        result["true_nll"] = truth
        result["nll_gap"] = result["test_nll"] - truth
    if name == "digits" and has_density and cond is None:
        result["bits_per_dim"] = bits_per_dim(nll, dims, levels=17)
    objective = (config or {}).get("objective", "interpolant")
    unconditional = getattr(model, "coupling", None) is None or _null_label(model) is not None
    plots = _evaluation_plots(folder, model, test, x, ev, has_density and unconditional, objective)
    if cond is not None and test.ndim == 4:
        plots.append(_condition_plot(folder, x, test, cond, shown))
    result["plots"] = [str(p) for p in plots]
    write_atomic(folder / METRICS, _json(result))
    return result


def _evaluate_flow_map_run(
    folder: Path, model: FlowMapModel, test: Tensor, reference: Tensor, ev: dict[str, Any],
    record: dict[str, Any] | None,
) -> dict[str, Any]:  # fmt: skip
    """evaluate_run for a flow map: the metrics at each jump count, loss.png and, for 2-D data,
    samples.png of the most jumps."""
    from .plots import loss_plot, samples_over_density

    name = (record or {}).get("data", {}).get("name", "held-out data")
    metrics, samples = evaluate_flow_map(model, test, reference, ev)
    result: dict[str, Any] = {"data": name, **metrics}
    loss = loss_plot(folder / METRICS_LOG, folder / "loss.png", "flow_map")
    plots = [] if loss is None else [loss]
    if test[0].numel() == 2:
        k = max(samples)
        pair = {"data (held out)": test, f"flow map, {k} jumps": samples[k]}
        plots.append(samples_over_density(pair, folder / "samples.png"))
    result["plots"] = [str(p) for p in plots]
    write_atomic(folder / METRICS, _json(result))
    return result


def _null_label(model: Any) -> int | None:
    return getattr(model.coupling, "null_label", None)


def _conditional_metrics(model: Any, x: Tensor, test: Tensor, cond: Tensor) -> dict[str, Any]:
    """What the samples of a conditional run are evaluated with besides the sample metrics:
    how they were drawn and, for a coupling, their mean squared error against the rows they
    complete (per entry; in-painting's visible entries are exact)."""
    if model.classes:
        return {"conditioned_on": f"the test rows' labels ({model.classes} classes)",
                "guidance": 0.0}  # fmt: skip
    err = (x - test).flatten(1).pow(2).mean(1)
    return {
        "conditioned_on": f"one observation of each test row, {model.coupling!r}",
        "completion_mse": float(err.mean()),
        "completion_mse_stderr": float(err.std() / math.sqrt(len(err))),
    }


def _condition_plot(
    folder: Path, x: Tensor, test: Tensor, cond: Tensor, shown: Tensor | None
) -> Path:
    from .plots import class_grid, completion_grid

    if shown is None:
        return class_grid(x, cond, folder / "samples_by_class.png")
    return completion_grid(shown, x, test, folder / "completions.png")


def _json(value: dict[str, Any]) -> str:

    return json.dumps(value, indent=2)


def _evaluation_plots(
    folder: Path,
    model: GenerativeModel,
    test: Tensor,
    x: Tensor,
    ev: dict[str, Any],
    has_density: bool,
    objective: str,
) -> list[Path]:
    from .plots import density_heatmap, loss_plot, samples_over_density

    loss = loss_plot(folder / METRICS_LOG, folder / "loss.png", objective)
    plots = [] if loss is None else [loss]
    if test[0].numel() == 2:
        pair = {"data (held out)": test, "model samples": x}
        plots.append(samples_over_density(pair, folder / "samples.png"))
        if has_density:

            def grid_log_prob(pts: Tensor) -> Tensor:
                return model.log_prob(pts, steps=min(ev["steps"], 50), solver=ev["solver"])

            plots.append(
                density_heatmap(grid_log_prob, folder / "density.png", resolution=ev["grid"])
            )
    return plots


def generate(
    folder: str | Path,
    n: int | None = None,
    steps: int = 100,
    solver: str = "heun",
    diffusion: float = 0.0,
    seed: int = 0,
    out: str | Path | None = None,
    *,
    overwrite: bool = False,
    cond: str | None = None,
    guidance: float = 0.0,
) -> Path:
    """n samples of a trained run, saved as a tensor file (and a PNG for 2D data).

    ``cond`` (``--cond``): a file of observations or labels, or a list of labels ``0,1,2``
    (:func:`~.coupling_config.read_cond`); n then defaults to one sample per row (10000
    without). ``guidance``: classifier-free guidance w of a label model trained with label
    dropout (w = 0: the conditional model; SiT's cfg_scale = 1 + w). Without ``cond`` a label
    model with label dropout samples its unconditional field; other conditional models refuse.

    The output is checked before sampling: its folder must exist, and an existing file is
    replaced only with ``overwrite``."""
    for key, value in (("n", n), ("steps", steps)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ValueError(f"{key} must be a positive integer, got {value!r}")
    folder = Path(folder)
    path = Path(out) if out is not None else folder / "samples.pt"
    model = load(folder)  # the run first: a folder that holds no model is named as such
    if not path.parent.is_dir():
        raise FileNotFoundError(f"--out: folder {path.parent} does not exist")
    if path.exists() and not overwrite:
        raise ValueError(f"{path} exists; pass --overwrite to replace it, or another --out")
    gen = torch.Generator().manual_seed(seed)
    if isinstance(model, ForecastModel):
        raise ValueError(
            f"{folder} is a forecast run: draw its forecasts with 'interpolants forecast {folder}'"
        )
    if isinstance(model, FlowMapModel):
        if diffusion:
            raise ValueError("a flow map samples without diffusion (steps are its jumps)")
        if cond is not None or guidance:
            raise ValueError("--cond, --guidance: a flow map run is not conditioned")
        x = model.sample(n or 10_000, steps=steps, generator=gen)
    else:
        values = _generation_cond(folder, model, cond, guidance, n)
        if values is None and n is None:
            n = 10_000
        x = model.sample(
            n, steps=steps, solver=solver, diffusion=diffusion, generator=gen, progress=True,
            cond=values, guidance=guidance,
        )  # fmt: skip
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(x, tmp)
    tmp.replace(path)
    if x[0].numel() == 2:
        from .plots import samples_over_density

        samples_over_density({f"{len(x)} samples": x}, path.with_suffix(".png"))
    return path


def _generation_cond(
    folder: Path, model: GenerativeModel, cond: str | None, guidance: float, n: int | None
) -> Tensor | None:
    """The checked ``--cond`` of :func:`generate` (None: none), ``--guidance`` checked too."""
    coupling = model.coupling
    null = _null_label(model)
    if guidance and null is None:
        raise ValueError(
            f"--guidance {guidance}: needs a model trained on labels with label_dropout > 0 "
            "(its unconditional field); this one has none"
        )
    if cond is None:
        if coupling is not None and null is None:
            what = "labels (--cond 0,1,2 or a file)" if model.classes else "a file of observations"
            raise ValueError(f"--cond is required: this model is conditioned on {what}")
        if guidance:
            raise ValueError("--guidance needs --cond (the labels to guide towards)")
        return None
    config = yaml.safe_load((folder / CONFIG).read_text()) if (folder / CONFIG).exists() else {}
    values = read_cond(cond, model, (config or {}).get("run") or {}, n)
    if n is not None and len(values) not in (1, n):
        raise ValueError(
            f"-n {n} does not match the {len(values)} rows of --cond: omit -n for one sample "
            "per row, or give one row for n samples of it"
        )
    return values
