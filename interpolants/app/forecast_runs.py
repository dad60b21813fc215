"""Forecasting runs from YAML configs (``model: forecast``; arXiv 2403.13724): their data,
the standardisation, training, and the trained run in the data's units.

A config trains the drift of the forecasting SDE on pairs (current state, state one lag
later)::

    model: forecast
    data: {system: lorenz63, pairs: 20000, noise: 1.0, lag: 0.25, seed: 0}
        # a simulated system (interpolants.data.dynamics.SYSTEMS; its options by name), or
        # {path: pairs.npz, x_now: a, x_next: b, holdout: 0.1}: two arrays of one file, or
        # {x_now: now.npy, x_next: next.npy, holdout: 0.1}: two files (paths relative to
        # the config's folder; .npy, .npz, .pt or .csv)
    normalise: true         # default: standardise by x_now's mean and sd (kept in the run)
    increment: false        # true: learn the increment x_next - x_now from 0, in units of
                            # its sd per entry (si.couplings.Increment)
    interpolant: {path: quadratic, gamma: wiener, a: 1.0}   # the default
    fields: [drift]         # the default (and the only field a forecast trains)
    eval: {states: 200, members: 50, lags: 10, steps: 100, solver: euler, seed: 1}

Everything else (net, steps, batch_size, lr, ...) is read as for ``si.fit``. The
standardisation lives here, not in the model: the model is trained on (x - mean) / sd and a
:class:`ForecastRun` maps the current states in and the forecasts back out; its mean and sd
are recorded in the run's config.yaml (under ``run.normalise``).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor

from .. import checkpoints
from .. import data as datasets
from ..couplings import Increment, Paired
from ..data.dynamics import SYSTEMS, StochasticDynamics
from ..forecasting import DIFFUSIONS, ForecastModel, check_diffusion
from ..generative import load
from ..interpolant import Interpolant
from ..run_folder import CHECKPOINT, CONFIG, METRICS_LOG, write_atomic
from ..train import TrainConfig, fit

__all__ = [
    "DEFAULT_INTERPOLANT",
    "EVAL_DEFAULTS",
    "HELDOUT_PAIRS",
    "ForecastPairs",
    "ForecastRun",
    "Normaliser",
    "check_data_spec",
    "check_forecast_config",
    "forecast_eval_settings",
    "forecast_net",
    "forecast_pairs",
    "is_forecast_run",
    "load_forecast_run",
    "make_system",
    "parse_diffusion",
    "read_pairs",
    "resolve_forecast_paths",
    "run_record",
    "system_settings",
    "train_forecast",
]

RUN_KEYS = {"data", "model", "normalise", "increment", "interpolant", "net", "eval"}
SYSTEM_KEYS = ("system", "pairs", "seed", "chains")
FILE_KEYS = ("path", "x_now", "x_next", "holdout")
EVAL_DEFAULTS: dict[str, Any] = {"states": 200, "members": 50, "lags": 10, "steps": 100,
                                 "solver": "euler", "seed": 1}  # fmt: skip
"""The evaluation's settings (``eval:``): held-out current states, ensemble members, rollout
lags, SDE steps and solver, and the seed of the fresh states and of the true SDE."""
DEFAULT_INTERPOLANT = {"path": "quadratic", "gamma": "wiener", "a": 1.0}
HELDOUT_PAIRS = "heldout_pairs.safetensors"
"""The held-out pairs (x_now, x_next) of a run on the user's files, in the data's units."""
RUN_CONFIG = "run.yaml"


def _unknown(given: dict[str, Any], known: Any, where: str) -> None:
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")


def _system_options(name: str) -> tuple[str, ...]:
    """The keyword options of system ``name``'s constructor."""
    params = inspect.signature(SYSTEMS[name]).parameters
    return tuple(p for p in params if p != "self")


def _positive(value: Any, where: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{where} must be a positive integer, got {value!r}")


def check_data_spec(spec: Any, where: str) -> dict[str, Any]:
    """A forecast's ``data:``: a simulated system or the user's pairs (one file or two)."""
    if not isinstance(spec, dict):
        raise ValueError(
            f"{where}: a forecast needs {{system: NAME, ...}} (one of {sorted(SYSTEMS)}) or "
            f"{{path: FILE, x_now: NAME, x_next: NAME}} or {{x_now: FILE, x_next: FILE}}, "
            f"got {spec!r}"
        )
    if "system" in spec:
        name = spec["system"]
        if name not in SYSTEMS:
            raise ValueError(f"{where}: unknown system {name!r}; known: {sorted(SYSTEMS)}")
        _unknown(spec, (*SYSTEM_KEYS, *_system_options(name)), where)
        _positive(spec.get("pairs", 20_000), f"{where}: pairs")
        _positive(spec.get("chains", 100), f"{where}: chains")
        seed = spec.get("seed", 0)
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"{where}: seed must be a non-negative integer, got {seed!r}")
        return dict(spec)
    _unknown(spec, FILE_KEYS, where)
    holdout = spec.get("holdout", 0.1)
    if not (isinstance(holdout, float) and 0 < holdout < 1):
        raise ValueError(f"{where}: holdout must be a fraction in (0, 1), got {holdout!r}")
    for key in ("x_now", "x_next"):
        if key not in spec and "path" not in spec:
            raise ValueError(f"{where}: {key} is required (a file, or an array of path:)")
        if key in spec and not isinstance(spec[key], str):
            raise ValueError(f"{where}: {key} must be a file or an array name, got {spec[key]!r}")
    return dict(spec)


def forecast_eval_settings(ev: dict[str, Any], where: str) -> dict[str, Any]:
    """The checked ``eval:`` of a forecast run, its defaults filled in."""
    if not isinstance(ev, dict):
        raise ValueError(f"{where} must be a mapping, got {ev!r}")
    _unknown(ev, EVAL_DEFAULTS, where)
    ev = {**EVAL_DEFAULTS, **ev}
    for key in ("states", "members", "lags", "steps"):
        _positive(ev[key], f"{where}: {key}")
    if ev["members"] < 2 or ev["states"] < 2:
        raise ValueError(f"{where}: members and states must be at least 2 (the scores need 2)")
    if ev["solver"] not in ("euler", "heun"):
        raise ValueError(f"{where}: solver must be euler or heun, got {ev['solver']!r}")
    if not isinstance(ev["seed"], int) or isinstance(ev["seed"], bool):
        raise ValueError(f"{where}: seed must be an integer, got {ev['seed']!r}")
    return ev


def check_forecast_config(config: dict[str, Any], where: str = "config") -> None:
    """Every key of a ``model: forecast`` config known and its values well typed."""
    known = RUN_KEYS | set(TrainConfig.__dataclass_fields__) - {"net_options"}
    _unknown(config, known, where)
    if "data" not in config:
        raise ValueError(f"{where}: 'data' is required (a system, one of {sorted(SYSTEMS)})")
    check_data_spec(config["data"], f"{where}: data")
    for key, default in (("normalise", True), ("increment", False)):
        if not isinstance(config.get(key, default), bool):
            raise ValueError(f"{where}: {key} must be true or false")
    fields = config.get("fields", ["drift"])
    if list(fields) != ["drift"]:
        raise ValueError(f"{where}: fields: a forecast trains the drift only (fields: [drift])")
    if config.get("objective", "interpolant") != "interpolant":
        raise ValueError(f"{where}: objective: a forecast trains the interpolant objective")
    for section, keys in (("interpolant", inspect.signature(Interpolant).parameters),
                          ("net", None)):  # fmt: skip
        value = config.get(section)
        if value is not None and not isinstance(value, dict):
            raise ValueError(f"{where}: {section} must be a mapping, got {value!r}")
        if value and keys is not None:
            _unknown(value, keys, f"{where}: {section}")
    forecast_eval_settings(config.get("eval") or {}, f"{where}: eval")


def resolve_forecast_paths(config: dict[str, Any], folder: Path) -> dict[str, Any]:
    """The config with its data files made absolute, relative to ``folder``."""
    spec = dict(config["data"])
    if "system" not in spec:
        if "path" in spec:
            spec["path"] = str((folder / spec["path"]).resolve())
        else:
            for key in ("x_now", "x_next"):
                spec[key] = str((folder / spec[key]).resolve())
    return {**config, "data": spec}


def make_system(spec: dict[str, Any]) -> StochasticDynamics:
    """The simulated system of a checked ``data: {system: ...}``."""
    options = {k: v for k, v in spec.items() if k not in SYSTEM_KEYS}
    try:
        return SYSTEMS[spec["system"]](**options)
    except (TypeError, ValueError) as err:
        raise ValueError(f"data: {spec['system']}: {err}") from None


def forecast_net(config: dict[str, Any]) -> dict[str, Any]:
    """The network options of a forecast config (``net:``). A ``RingField`` on a simulated
    system that lies on a ring (its ``ring_layout``: two-scale Lorenz-96, Allen-Cahn) takes
    the system's sites, coarse field and boundary unless the config sets them."""
    net = dict(config.get("net") or {})
    spec = config.get("data") or {}
    if net.get("class") == "RingField" and isinstance(spec, dict) and "system" in spec:
        layout = make_system(spec).ring_layout
        if layout is None:
            raise ValueError(
                f"net: RingField needs a state on a ring, and {spec['system']} is not one "
                "(give sites:, coarse: and boundary:, or use the default MLP)"
            )
        net = {**layout, **net}
    return net


def system_settings(system: StochasticDynamics, spec: dict[str, Any]) -> dict[str, Any]:
    """What the run records of its system: name, constructor options (defaults filled in),
    pairs, chains and seed."""
    options = {k: getattr(system, k) for k in _system_options(spec["system"])
               if isinstance(getattr(system, k, None), (int, float))}  # fmt: skip
    return {"system": spec["system"], **options, "pairs": spec.get("pairs", 20_000),
            "chains": spec.get("chains", 100), "seed": spec.get("seed", 0)}  # fmt: skip


def _read(path: str, array: str | None, key: str) -> Tensor:
    try:
        x, _ = datasets.read_file(path, array)
    except FileNotFoundError:
        raise FileNotFoundError(f"data: {key}: file {path} does not exist") from None
    except ValueError as err:
        raise ValueError(f"data: {key}: {err}") from None
    return x


def read_pairs(spec: dict[str, Any]) -> tuple[Tensor, Tensor]:
    """(x_now, x_next) of the user's files, checked: the same shape, one row each."""
    if "path" in spec:
        x_now = _read(spec["path"], spec.get("x_now", "x_now"), "x_now")
        x_next = _read(spec["path"], spec.get("x_next", "x_next"), "x_next")
    else:
        x_now = _read(spec["x_now"], None, "x_now")
        x_next = _read(spec["x_next"], None, "x_next")
    if x_now.shape != x_next.shape:
        raise ValueError(
            f"data: x_now {tuple(x_now.shape)} and x_next {tuple(x_next.shape)} must have the "
            "same shape (one pair per row)"
        )
    return x_now, x_next


@dataclass
class Normaliser:
    """x -> (x - mean) / sd entrywise over the event (identity when ``mean`` is None)."""

    mean: Tensor | None = None
    sd: Tensor | None = None

    @classmethod
    def fit(cls, x: Tensor) -> Normaliser:
        """The mean and sd of rows x (an entry with sd 0 keeps sd 1)."""
        sd = x.double().std(0)
        return cls(x.double().mean(0), torch.where(sd > 0, sd, torch.ones_like(sd)))

    def to_model(self, x: Tensor) -> Tensor:
        """States in the data's units -> the model's (standardised) units."""
        if self.mean is None or self.sd is None:
            return x
        return ((x.double() - self.mean) / self.sd).to(x.dtype)

    def from_model(self, x: Tensor) -> Tensor:
        """States in the model's units -> the data's units."""
        if self.mean is None or self.sd is None:
            return x
        return (x.double() * self.sd + self.mean).to(x.dtype)

    def state(self) -> dict[str, Any] | None:
        """{mean, sd} as (nested) lists for the run's record; None without standardisation."""
        if self.mean is None or self.sd is None:
            return None
        return {"mean": self.mean.tolist(), "sd": self.sd.tolist()}

    @classmethod
    def from_state(cls, state: dict[str, Any] | None) -> Normaliser:
        """The normaliser :meth:`state` described (None: the identity)."""
        if not state:
            return cls()
        mean = torch.tensor(state["mean"], dtype=torch.float64)
        return cls(mean, torch.tensor(state["sd"], dtype=torch.float64))


@dataclass
class ForecastPairs:
    """A config's training pairs in the data's units, how they were made (the run's ``data``
    record) and the held-out pairs of a user's file ({} for a simulated system)."""

    x_now: Tensor
    x_next: Tensor
    described: dict[str, Any]
    held: dict[str, Tensor]


def forecast_pairs(config: dict[str, Any]) -> ForecastPairs:
    """The training pairs of a checked ``model: forecast`` config: simulated from the system
    (seeded: a resumed run draws the same) or read from the user's files (``holdout`` of the
    pairs kept out, for the evaluation)."""
    spec = check_data_spec(config["data"], "data")
    if "system" in spec:
        system = make_system(spec)
        gen = torch.Generator().manual_seed(spec.get("seed", 0))
        x_now, x_next = system.pairs(spec.get("pairs", 20_000), gen, chains=spec.get("chains", 100))
        return ForecastPairs(x_now.float(), x_next.float(), system_settings(system, spec), {})
    from .coupling_config import split_rows

    pairs, held = split_rows(dict(zip(("x_now", "x_next"), read_pairs(spec), strict=True)),
                             spec.get("holdout", 0.1), config.get("seed", 0))  # fmt: skip
    return ForecastPairs(pairs["x_now"], pairs["x_next"], dict(spec), held)


def train_forecast(
    config: dict[str, Any],
    out: str | Path,
    resume: bool = False,
    progress: bool = True,
    *,
    overwrite: bool = False,
    pairs: ForecastPairs | None = None,
) -> ForecastModel:
    """Train the forecast run of ``config`` into folder ``out`` (resumable) on the config's
    pairs (:func:`forecast_pairs`, or ``pairs`` when given), standardised when ``normalise``."""
    check_forecast_config(config)
    pairs = pairs or forecast_pairs(config)
    x_now, x_next, described, held = pairs.x_now, pairs.x_next, pairs.described, pairs.held
    norm = Normaliser.fit(x_now) if config.get("normalise", True) else Normaliser()
    interpolant = Interpolant(**(config.get("interpolant") or DEFAULT_INTERPOLANT))
    options = {k: v for k, v in config.items() if k not in RUN_KEYS | {"fields"}}
    record = {"model": "forecast", "data": described, "normalise": norm.state(),
              "eval": config.get("eval") or {}, "event_shape": list(x_now.shape[1:])}  # fmt: skip

    def on_end(model: Any, folder: Path | None) -> None:
        """run.yaml (the config as given), the held-out pairs, loss.png."""
        if folder is None:
            return
        write_atomic(folder / RUN_CONFIG, yaml.safe_dump(config, sort_keys=False))
        if held:
            checkpoints.save(folder / HELDOUT_PAIRS, held, kind="data")
        from .plots import loss_plot

        loss_plot(folder / METRICS_LOG, folder / "loss.png")

    start, target = norm.to_model(x_now), norm.to_model(x_next)
    base = Paired(start)
    if config.get("increment", False):
        spread = (target - start).double().std(0)
        base = Increment(start, scale=torch.where(spread > 0, spread, torch.ones_like(spread)))
    return fit(
        target, base=base, interpolant=interpolant,
        fields=("drift",), out=out, resume=resume, overwrite=overwrite, progress=progress,
        record=record, on_end=on_end, net_options=forecast_net(config), **options,
    )  # fmt: skip


def parse_diffusion(text: Any, where: str = "--diffusion") -> Any:
    """ "follmer", "interpolant" or a number >= 0 (the noise coefficient g), else ValueError."""
    if text is None or text in DIFFUSIONS:
        return text
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ValueError(
            f"{where}: expected follmer, interpolant or a number >= 0, got {text!r}"
        ) from None
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"{where}: expected follmer, interpolant or a number >= 0, got {text!r}")
    return value


@dataclass
class ForecastRun:
    """A trained forecast run: the model, its standardisation, the system it was trained on
    (None for the user's pairs) and the run's record (config.yaml's ``run``)."""

    model: ForecastModel
    normaliser: Normaliser
    system: StochasticDynamics | None
    record: dict[str, Any]

    @property
    def event_shape(self) -> tuple[int, ...]:
        """The shape of one state."""
        return tuple(self.record.get("event_shape") or ())

    def check_diffusion(self, diffusion: Any, where: str = "--diffusion") -> None:
        """ValueError naming ``where`` unless g(0) >= sigma(0) (in the model's units)."""
        try:
            check_diffusion(self.model.interpolant, diffusion)
        except ValueError as err:
            message = str(err).removeprefix("diffusion: ")
            raise ValueError(f"{where} {diffusion}: {message}") from None

    def rollout(
        self,
        cond: Tensor,
        lags: int = 1,
        members: int = 1,
        diffusion: Any = "follmer",
        steps: int = 100,
        solver: str = "euler",
        generator: torch.Generator | None = None,
        times: Any = None,
    ) -> Tensor:
        """Forecasts from current states ``cond`` (rows, *event) in the data's units:
        (lags, members, rows, *event), standardised in and out (``times``: the SDE's grid,
        :meth:`ForecastModel.sample`)."""
        x = self.normaliser.to_model(cond.float())
        paths = self.model.rollout(x, lags=lags, members=members, steps=steps, solver=solver,
                                   diffusion=diffusion, generator=generator,
                                   times=times)  # fmt: skip
        return self.normaliser.from_model(paths)


def run_record(folder: Path) -> dict[str, Any]:
    """config.yaml's ``run`` of a run folder ({} when it has none)."""
    if not (folder / CONFIG).exists():
        return {}
    config = yaml.safe_load((folder / CONFIG).read_text()) or {}
    return config.get("run") or {}


def is_forecast_run(folder: str | Path) -> bool:
    """Whether the run in ``folder`` is a forecast run (``model: forecast``)."""
    return run_record(Path(folder)).get("model") == "forecast"


def load_forecast_run(folder: str | Path) -> ForecastRun:
    """The trained forecast run in ``folder``; errors name what is missing."""
    folder = Path(folder)
    if not (folder / CHECKPOINT).exists():
        raise FileNotFoundError(f"{folder} is not a training run (no {CHECKPOINT})")
    record = run_record(folder)
    model = load(folder)
    if not isinstance(model, ForecastModel) or record.get("model") != "forecast":
        raise ValueError(f"{folder} is not a forecast run (train one with model: forecast)")
    spec = record.get("data") or {}
    system = make_system(spec) if "system" in spec else None
    return ForecastRun(model, Normaliser.from_state(record.get("normalise")), system, record)
