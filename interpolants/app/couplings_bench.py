"""``interpolants bench couplings``: data-dependent couplings and conditional generation on
sklearn's 8 x 8 digits (issue 21; Albergo, Goldstein, Boffi, Ranganath & Vanden-Eijnden,
arXiv 2310.03725).

Three conditioning tasks, each trained twice with the same network (``UNetField``), budget and
seed: the coupled model (x0 built from the observation y, :mod:`interpolants.couplings`) and
the paper's baseline (``start="noise"``: x0 ~ N(0, I), the network conditioned on y alike):

- ``inpaint-random``: ``Inpainting(random_mask(0.5))``, half of the pixels hidden at random;
- ``inpaint-centre``: ``Inpainting(centre_mask(4))``, the centre 4 x 4 hidden;
- ``super-resolution``: ``SuperResolution(2)``, 4 x 4 block means -> 8 x 8.

On ``n_eval`` test observations, K samples each at equal NFE (Heun 5 steps and Euler 10
steps: NFE 10), samples clipped to [0, 1] (the data's range): MSE and PSNR (peak 1) of the
mean completion against the truth over the hidden pixels (all pixels for super-resolution),
FD-digits of the samples against the test split (floor: the test split's halves), and the
coverage of the hidden truth by the samples' central 90 % interval. Then a class-conditional
model (labels, label dropout 0.1) sampled with classifier-free guidance w: the FD-digits
classifier's accuracy on the requested labels and FD-digits per class (docs/benchmarks.md).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..couplings import Conditioned, Inpainting, SuperResolution, centre_mask, random_mask
from ..data import digits, digits_labels, load
from ..generative import GenerativeModel
from ..train import fit
from .flowmap_digits import DigitsClassifier, fd_digits, train_digits_classifier

__all__ = [
    "COUPLING_TASKS",
    "bench_couplings",
    "class_scores",
    "completion_scores",
    "couplings_goals",
    "coverage",
    "format_couplings",
    "plot_class_grid",
    "plot_task_grid",
    "psnr",
    "truth_reference_fd",
]

COUPLING_TASKS: dict[str, Callable[[str], Conditioned]] = {
    "inpaint-random": lambda start: Inpainting(random_mask(0.5), start=start),
    "inpaint-centre": lambda start: Inpainting(centre_mask(4), start=start),
    "super-resolution": lambda start: SuperResolution(2, start=start),
}
"""The tasks: coupling of each start ("coupled" or "noise", the baseline)."""

MODELS = ("coupled", "noise")


def psnr(mse: float, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB: 10 log10(peak^2 / mse) (inf for mse = 0)."""
    if mse < 0:
        raise ValueError(f"mse must be >= 0, got {mse}")
    return math.inf if mse == 0 else 10 * math.log10(peak**2 / mse)


def coverage(
    samples: Tensor, truth: Tensor, hidden: Tensor, level: float = 0.9
) -> dict[str, float]:
    """The fraction of the hidden true values inside the samples' central ``level`` interval.

    Arguments:
        samples: (n, K, ...) K samples per observation; truth, hidden: (n, ...), hidden
            boolean (the entries scored).
        level: the interval's probability; its ends are the (1 -/+ level) / 2 quantiles of
            the K samples (``torch.quantile``, linear interpolation).

    Returns {"coverage": the pooled fraction, "stderr": the standard error over observations
    of the per-observation fractions, "calibrated": level (K - 1) / (K + 1), about what a
    sampler of the exact conditional law scores with K samples (the truth's rank among K + 1
    exchangeable values is uniform; the interpolated ends sit at ranks 1 + q (K - 1))}."""
    k = samples.shape[1]
    q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=samples.dtype)
    lo, hi = torch.quantile(samples.flatten(2), q, dim=1)  # each (n, d)
    t, h = truth.flatten(1), hidden.flatten(1).to(samples.dtype)
    inside = ((t >= lo) & (t <= hi)).to(samples.dtype) * h
    counts = h.sum(1)
    rows = counts > 0
    per = inside.sum(1)[rows] / counts[rows]
    se = float(per.std() / math.sqrt(len(per))) if len(per) > 1 else math.nan
    return {
        "coverage": float(inside.sum() / counts.sum()),
        "stderr": se,
        "calibrated": level * (k - 1) / (k + 1),
    }


def completion_scores(samples: Tensor, truth: Tensor, hidden: Tensor) -> dict[str, float]:
    """MSE (pooled over the hidden entries of all observations, with its standard error over
    observations) and PSNR (peak 1) of the mean completion (the mean of the K samples,
    (n, K, ...) -> (n, ...)) against ``truth``, and :func:`coverage` at 90 %."""
    h = hidden.flatten(1).to(samples.dtype)
    err = (samples.mean(1) - truth).flatten(1).square() * h
    counts = h.sum(1)
    rows = counts > 0
    per = err.sum(1)[rows] / counts[rows]
    mse = float(err.sum() / counts.sum())
    cov = coverage(samples, truth, hidden)
    return {
        "mse": mse,
        "mse_stderr": float(per.std() / math.sqrt(len(per))),
        "psnr": psnr(mse),
        "coverage": cov["coverage"],
        "coverage_stderr": cov["stderr"],
        "coverage_calibrated": cov["calibrated"],
    }


def _fd_scores(classifier: DigitsClassifier, x: Tensor, test: Tensor) -> dict[str, Any]:
    """FD-digits of samples (n, K, ...) against the test split, and of each half of the
    observations' samples (their spread: a noise scale of the cell)."""
    half = len(x) // 2
    flat = x.flatten(0, 1)
    halves = [
        fd_digits(classifier, x[:half].flatten(0, 1), test),
        fd_digits(classifier, x[half:].flatten(0, 1), test),
    ]
    return {"fd": fd_digits(classifier, flat, test), "fd_halves": halves}


def truth_reference_fd(classifier: DigitsClassifier, n: int, k: int, seed: int = 0) -> float:
    """FD-digits against the test split of the first n test images' grey levels, each
    dequantised afresh k times ((v + u) / 17, u from ``seed``): what perfect completions of
    the n observations would score at the samples' size (n k), selection of the n included."""
    levels = (digits("test", dequantize=False)[:n] * 17 - 0.5).round()
    gen = torch.Generator().manual_seed(seed)
    x = (levels.repeat_interleave(k, 0) + torch.rand(n * k, *levels.shape[1:], generator=gen)) / 17
    return fd_digits(classifier, x, load("digits", split="test"))


def _train(data: Any, base: Any, options: dict[str, Any], **extra: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    model = fit(data, base=base, **options, **extra)
    return model, time.perf_counter() - start


def _complete(
    model: GenerativeModel, y: Tensor, k: int, solver: str, steps: int, seed: int
) -> tuple[Tensor, int]:
    """K samples (clipped to [0, 1]) for each observation y, (n, K, ...), and the NFE."""
    with torch.no_grad():
        sol = model.sample(
            cond=y.repeat_interleave(k, 0),
            steps=steps,
            solver=solver,
            generator=torch.Generator().manual_seed(seed),
            return_info=True,
        )
    x = sol.x.clamp(0, 1)
    return x.reshape(len(y), k, *x.shape[1:]), int(sol.nfe)


def _task_scores(
    models: dict[str, GenerativeModel],
    coupling: Conditioned,
    truth: Tensor,
    test: Tensor,
    classifier: DigitsClassifier,
    k: int,
    solvers: Sequence[tuple[str, int]],
    seed: int,
) -> tuple[dict[str, Any], Tensor, dict[str, Tensor]]:
    """Scores of each model of one task at each solver; (scores, observations, the samples
    of the first solver by model)."""
    y = coupling.observe(truth, torch.Generator().manual_seed(seed + 1))
    hidden = torch.isnan(y) if isinstance(coupling, Inpainting) else torch.ones_like(truth).bool()
    scores: dict[str, Any] = {"hidden_fraction": float(hidden.float().mean()), "models": {}}
    first: dict[str, Tensor] = {}
    for name, model in models.items():
        rows = {}
        for solver, steps in solvers:
            start = time.perf_counter()
            x, nfe = _complete(model, y, k, solver, steps, seed)
            rows[f"{solver} {steps}"] = {
                "solver": solver,
                "steps": steps,
                "nfe": nfe,
                **completion_scores(x, truth, hidden),
                **_fd_scores(classifier, x, test),
                "sample_seconds": time.perf_counter() - start,
            }
            first.setdefault(name, x)
        scores["models"][name] = rows
    return scores, y, first


def class_scores(
    classifier: DigitsClassifier,
    x: Tensor,
    labels: Tensor,
    test: Tensor,
    test_labels: Tensor,
    classes: int = 10,
) -> dict[str, Any]:
    """Samples x (n, ...) drawn for the requested ``labels`` (n,): the classifier's accuracy
    (overall, with its binomial standard error, and per label), FD-digits of each class's
    samples against that class's test images (NaN for a class with fewer than 2 samples), and
    of all samples against the test split."""
    with torch.no_grad():
        hit = (classifier(x).argmax(1) == labels).float()
    acc = float(hit.mean())
    per_label = [float(hit[labels == c].mean()) for c in range(classes)]
    fd_class = [
        fd_digits(classifier, x[labels == c], test[test_labels == c])
        if int((labels == c).sum()) > 1
        else math.nan
        for c in range(classes)
    ]
    return {
        "accuracy": acc,
        "accuracy_stderr": math.sqrt(acc * (1 - acc) / len(hit)),
        "accuracy_per_label": per_label,
        "fd_per_class": fd_class,
        "fd_per_class_mean": float(np.nanmean(fd_class)),
        "fd_all": fd_digits(classifier, x, test),
    }


def _class_conditional(
    options: dict[str, Any],
    classifier: DigitsClassifier,
    test: Tensor,
    guidance: Sequence[float],
    per_label: int,
    steps: int,
    seed: int,
    out: Path,
) -> tuple[dict[str, Any], float]:
    """Train the label-conditional model, sample ``per_label`` images of each class at every
    guidance w (Heun ``steps``), score them; write classes.png."""
    train, labels = load("digits", split="train"), digits_labels("train")
    test_labels = digits_labels("test")
    model, seconds = _train((train, labels), None, options, label_dropout=0.1)
    model.save(out / "classes.pt")
    requested = torch.arange(10).repeat_interleave(per_label)
    rows, grid = {}, {}
    for w in guidance:
        with torch.no_grad():
            sol = model.sample(
                cond=requested,
                guidance=w,
                steps=steps,
                solver="heun",
                generator=torch.Generator().manual_seed(seed),
                return_info=True,
            )
        x = sol.x.clamp(0, 1)
        rows[str(w)] = {
            "nfe": int(sol.nfe),
            **class_scores(classifier, x, requested, test, test_labels),
        }
        grid[w] = x.reshape(10, per_label, *x.shape[1:])[:, :4]
    plot_class_grid(grid, out / "classes.png")
    result = {
        "solver": "heun",
        "steps": steps,
        "samples_per_label": per_label,
        "label_dropout": 0.1,
        "guidance": rows,
    }
    return result, seconds


def bench_couplings(
    out: Path,
    steps: int = 2500,
    batch: int = 128,
    seed: int = 0,
    width: int = 32,
    lr: float = 1e-3,
    tasks: Sequence[str] = tuple(COUPLING_TASKS),
    n_eval: int = 200,
    samples: int = 16,
    solvers: Sequence[tuple[str, int]] = (("heun", 5), ("euler", 10)),
    guidance: Sequence[float] = (0.0, 0.5, 1.0, 2.0, 4.0),
    per_label: int = 100,
    class_steps: int = 10,
    classifier_steps: int = 2000,
) -> dict[str, Any]:
    """Couplings against the independent-base baseline and guided class-conditional
    generation on digits (module docstring; docs/benchmarks.md "Couplings"). Every model:
    ``UNetField(width=width)``, ``steps`` steps of batch ``batch``, lr ``lr``, seed ``seed``,
    on the 1400 training images (one fixed dequantisation). Scored on the first ``n_eval``
    test images, ``samples`` samples each, with each of ``solvers`` (name, steps); the class
    model with ``per_label`` samples per label, Heun ``class_steps``, at each ``guidance`` w.
    Writes one grid PNG per task and classes.png into ``out``."""
    unknown = sorted(set(tasks) - set(COUPLING_TASKS))
    if unknown:
        raise ValueError(f"unknown task {unknown[0]!r}; known: {', '.join(COUPLING_TASKS)}")
    out.mkdir(parents=True, exist_ok=True)
    train, test = load("digits", split="train"), load("digits", split="test")
    truth = test[:n_eval]
    classifier, accuracy = train_digits_classifier(classifier_steps, seed=0)  # fixed ruler
    half = len(test) // 2
    options = {
        "steps": steps,
        "batch_size": batch,
        "seed": seed,
        "lr": lr,
        "progress": False,
        "warmup": max(1, min(200, steps // 10)),
        "net_options": {"width": width},
    }
    seconds: dict[str, float] = {}
    results: dict[str, Any] = {}
    for task in tasks:
        models = {}
        for start in MODELS:
            models[start], seconds[f"{task} {start}"] = _train(
                train, COUPLING_TASKS[task](start), options
            )
            models[start].save(out / f"{task}-{start}.pt")
        coupling = COUPLING_TASKS[task]("coupled")
        results[task], y, first = _task_scores(
            models, coupling, truth, test, classifier, samples, solvers, seed
        )
        plot_task_grid(task, y, first, truth, out / f"{task}.png")
    classes = None
    if guidance:
        classes, seconds["classes"] = _class_conditional(
            options, classifier, test, guidance, per_label, class_steps, seed, out
        )
    metrics = {
        "steps": steps,
        "batch": batch,
        "seed": seed,
        "width": width,
        "lr": lr,
        "n_eval": len(truth),
        "samples": samples,
        "solvers": [list(s) for s in solvers],
        "classifier": {"steps": classifier_steps, "test_accuracy": accuracy},
        "reference": {
            "fd_floor_test_halves": fd_digits(classifier, test[:half], test[half:]),
            "fd_truths": truth_reference_fd(classifier, len(truth), samples, seed),
        },
        "train_seconds": seconds,
        "tasks": results,
        "classes": classes,
    }
    metrics["goals"] = couplings_goals(metrics)
    (out / "table.md").write_text(format_couplings(metrics) + "\n")
    return metrics


def couplings_goals(m: dict[str, Any]) -> dict[str, Any]:
    """The issue's goals, measured: per task and solver, the coupled model's FD-digits and MSE
    below the baseline's; the best guidance's class accuracy >= 0.95."""
    beats = {}
    for task, r in m["tasks"].items():
        coupled, noise = r["models"]["coupled"], r["models"]["noise"]
        beats[task] = {
            s: {"fd": coupled[s]["fd"] < noise[s]["fd"], "mse": coupled[s]["mse"] < noise[s]["mse"]}
            for s in coupled
        }
    acc = {w: r["accuracy"] for w, r in (m["classes"] or {"guidance": {}})["guidance"].items()}
    best = max(acc, key=acc.__getitem__) if acc else None
    return {
        "coupled_beats_noise": beats,
        "coupled_beats_noise_everywhere": all(
            v for r in beats.values() for s in r.values() for v in s.values()
        ),
        "best_guidance": best,
        "best_accuracy": acc.get(best, math.nan) if best else math.nan,
        "accuracy_at_least_0.95": bool(best is not None and acc[best] >= 0.95),
    }


def format_couplings(m: dict[str, Any]) -> str:
    """The markdown tables of a couplings benchmark."""
    ref = m["reference"]
    truths = f"; {m['n_eval']} truths x {m['samples']} dequantisations {ref['fd_truths']:.3f}"
    lines = [
        f"{m['steps']} steps, batch {m['batch']}, UNetField width {m['width']}, lr {m['lr']}, "
        f"seed {m['seed']}; {m['n_eval']} test observations x {m['samples']} samples; "
        f"classifier test accuracy {m['classifier']['test_accuracy']:.3f}; FD-digits floor "
        f"(test halves) {ref['fd_floor_test_halves']:.3f}" + (truths if "fd_truths" in ref else ""),
        "",
        "| task | x0 | solver | NFE | MSE (hidden) | PSNR dB | FD-digits (halves) "
        "| coverage 90 % |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for task, r in m["tasks"].items():
        for model, rows in r["models"].items():
            for name, s in rows.items():
                lo, hi = s["fd_halves"]
                lines.append(
                    f"| {task} | {model} | {name} | {s['nfe']} | {s['mse']:.4f} +/- "
                    f"{s['mse_stderr']:.4f} | {s['psnr']:.2f} | {s['fd']:.3f} ({lo:.2f}, {hi:.2f}) "
                    f"| {s['coverage']:.3f} +/- {s['coverage_stderr']:.3f} |"
                )
    k = m["samples"]
    lines.append(
        f"\ncoverage of an exact sampler with {k} samples: about "
        f"{0.9 * (k - 1) / (k + 1):.3f} (nominal 0.9)"
    )
    if m["classes"]:
        lines += _format_classes(m["classes"])
    g = m["goals"]
    lines += [
        "",
        f"goals: coupled beats the baseline (FD and MSE, every task and solver): "
        f"{g['coupled_beats_noise_everywhere']}; best w {g['best_guidance']}: accuracy "
        f"{g['best_accuracy']:.3f} (goal >= 0.95: {g['accuracy_at_least_0.95']})",
    ]
    return "\n".join(lines)


def _format_classes(cls: dict[str, Any]) -> list[str]:
    lines = [
        "",
        f"class-conditional, {cls['samples_per_label']} samples per label, Heun {cls['steps']} "
        f"steps, label dropout {cls['label_dropout']}:",
        "",
        "| w | NFE | accuracy | lowest label accuracy | FD-digits all | mean per-class FD |",
        "|---|---|---|---|---|---|",
    ]
    for w, r in cls["guidance"].items():
        low = min(r["accuracy_per_label"])
        lines.append(
            f"| {w} | {r['nfe']} | {r['accuracy']:.3f} +/- {r['accuracy_stderr']:.3f} | {low:.2f} "
            f"| {r['fd_all']:.3f} | {r['fd_per_class_mean']:.3f} |"
        )
    lines += [
        "",
        "| w | " + " | ".join(f"acc {c}" for c in range(10)) + " |",
        "|---|" + "---|" * 10,
    ]
    for w, r in cls["guidance"].items():
        lines.append(f"| {w} | " + " | ".join(f"{a:.2f}" for a in r["accuracy_per_label"]) + " |")
    return lines


def _mosaic(rows: Sequence[Tensor]) -> np.ndarray:
    """An RGB mosaic: rows of images (each (m, 1, 8, 8) in [0, 1]), one pixel of white
    between them; NaN entries (hidden pixels) red."""
    m, side = len(rows[0]), rows[0].shape[-1] + 1
    img = np.ones((len(rows) * side - 1, m * side - 1, 3))
    for i, row in enumerate(rows):
        for j, x in enumerate(row):
            v = x[0].numpy()
            cell = np.repeat(np.nan_to_num(v)[..., None], 3, axis=2)
            cell[np.isnan(v)] = (0.85, 0.1, 0.1)
            img[i * side : i * side + side - 1, j * side : j * side + side - 1] = cell
    return img


def plot_task_grid(
    task: str,
    y: Tensor,
    samples: dict[str, Tensor],
    truth: Tensor,
    path: Path,
    columns: int = 8,
    rows: int = 4,
) -> Path:
    """One PNG per task: for each model side by side, rows observation (hidden pixels red;
    low-resolution images up-sampled), ``rows`` samples, truth; ``columns`` test images."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    obs = y[:columns]
    if obs.shape[-1] != truth.shape[-1]:
        factor = truth.shape[-1] // obs.shape[-1]
        obs = obs.repeat_interleave(factor, -1).repeat_interleave(factor, -2)
    fig, axes = plt.subplots(1, len(samples), figsize=(4.2 * len(samples), 4.2), squeeze=False)
    for ax, (name, x) in zip(axes[0], samples.items(), strict=True):
        grid = [obs, *(x[:columns, r] for r in range(rows)), truth[:columns]]
        ax.imshow(_mosaic(grid), interpolation="nearest")
        ax.set_yticks(
            [4 + 9 * i for i in range(len(grid))],
            ["observation", *(f"sample {r + 1}" for r in range(rows)), "truth"],
        )
        ax.set_xticks([4 + 9 * j for j in range(columns)], [str(j) for j in range(columns)])
        ax.set_xlabel("test image")
        ax.set_title(f"{task}: x0 {'coupled' if name == 'coupled' else '~ N(0, I) (baseline)'}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_class_grid(grid: dict[float, Tensor], path: Path) -> Path:
    """Classes (rows) x guidance w (column groups of the samples (10, k, 1, 8, 8) of each w)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ws = list(grid)
    k = grid[ws[0]].shape[1]
    rows = [torch.cat([grid[w][c] for w in ws]) for c in range(10)]
    fig, ax = plt.subplots(figsize=(1.0 + 0.45 * k * len(ws), 5.2))
    ax.imshow(_mosaic(rows), interpolation="nearest")
    ax.set_yticks([4 + 9 * c for c in range(10)], [str(c) for c in range(10)])
    ax.set_ylabel("requested label")
    ax.set_xticks([9 * k * (i + 0.5) - 0.5 for i in range(len(ws))], [f"w = {w}" for w in ws])
    ax.set_xlabel(f"classifier-free guidance w ({k} samples each)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
