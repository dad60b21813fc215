"""``interpolants bench flowmap-digits``: flow maps on sklearn's 8 x 8 digits (issue 20).

FD-digits (docs/benchmarks.md): the Frechet distance between Gaussians fitted to the
penultimate-layer features of a small MLP classifier (:class:`DigitsClassifier`, trained on the
training split only) of two sets of images in [0, 1]; its floor is the same distance between the
two halves of the test split. A velocity model (``si.fit``) and a flow map (``si.fit_flow_map``)
of the same network size and budget model the logit-transformed images (as ``bench digits``);
the flow map's samples in 1, 2, 4 jumps are scored against the velocity's 100-step ODE, and its
few-step bits/dim (``fm.log_prob``) against the ODE's exact-divergence bits/dim.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..data import Dequantized, LogitTransform, digits, digits_labels, load
from ..flowmaps import fit_flow_map
from ..metrics import bits_per_dim, frechet_distance
from ..nn import FlowMapMLP, MLPField
from ..train import fit

__all__ = [
    "DigitsClassifier",
    "bench_flowmap_digits",
    "digits_problem",
    "fd_digits",
    "format_flowmap_digits",
    "train_digits_classifier",
]


def digits_problem(
    alpha: float, whiten: bool = False
) -> tuple[Dequantized, LogitTransform, Tensor]:
    """(the training images as a sampler with fresh dequantisation, in the logit space of the
    transform; the transform; the test images, flattened, one fixed dequantisation)."""
    levels = (digits("train", dequantize=False) * 17 - 0.5).round().flatten(1)
    transform = LogitTransform(load("digits").flatten(1), alpha=alpha, whiten=whiten)
    test = load("digits", split="test").flatten(1)  # one fixed dequantisation (seed 1)
    return Dequantized(levels, 17, transform), transform, test


class DigitsClassifier(nn.Module):
    """The feature network of FD-digits: 64 -> 256 -> 32 -> 10, ReLU; :meth:`features` is the
    32-wide penultimate layer (after its ReLU). Narrow on purpose: Gaussians are fitted to
    its features from a few hundred images, and the bias of the fitted covariances grows with
    the width."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 32), nn.ReLU())
        self.head = nn.Linear(32, 10)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate-layer features (n, 32) of images x (n, ...) in [0, 1]."""
        return self.body(x.flatten(1))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def train_digits_classifier(
    steps: int = 2000, batch: int = 256, seed: int = 0
) -> tuple[DigitsClassifier, float]:
    """The FD-digits classifier: Adam (lr 1e-3), cross-entropy, ``steps`` batches of the 1400
    training images dequantised afresh ((v + u) / 17), weights and batches from ``seed``.
    Returns (the classifier in eval mode, its accuracy on the 397 test images)."""
    gen = torch.Generator().manual_seed(seed)
    levels = (digits("train", dequantize=False) * 17 - 0.5).round().flatten(1)
    labels = digits_labels("train")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = DigitsClassifier()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(steps):
        idx = torch.randint(len(levels), (batch,), generator=gen)
        x = (levels[idx] + torch.rand(batch, 64, generator=gen)) / 17
        loss = nn.functional.cross_entropy(net(x), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        test = load("digits", split="test").flatten(1)
        accuracy = float((net(test).argmax(1) == digits_labels("test")).float().mean())
    return net, accuracy


def fd_digits(classifier: DigitsClassifier, x: Tensor, y: Tensor) -> float:
    """FD-digits of two image sets in [0, 1] (n, ...), (m, ...): the Frechet distance between
    Gaussians fitted to their classifier features
    (:func:`~interpolants.metrics.frechet_distance`)."""
    with torch.no_grad():
        return frechet_distance(classifier.features(x), classifier.features(y))


def _bpd(log_q: Tensor, log_det: Tensor, dims: int) -> dict[str, float]:
    """Bits/dim of the discrete images from the log density of their logit images."""
    nll = -(log_q.detach() + log_det)
    return {"bits_per_dim": bits_per_dim(nll, dims, levels=17),
            "stderr": float(nll.std() / math.sqrt(len(nll))) / dims / math.log(2)}  # fmt: skip


def _reference_fds(classifier: DigitsClassifier, test: Tensor, n: int, seed: int) -> dict[str, Any]:
    """The floor (first half of the test split against the second) and, at the model's sizes,
    n freshly dequantised training images against the test split."""
    half = len(test) // 2
    train = digits("train", g=torch.Generator().manual_seed(seed))[:n]
    return {"floor_test_halves": fd_digits(classifier, test[:half], test[half:]),
            "train_vs_test": fd_digits(classifier, train, test), "n_train": len(train)}  # fmt: skip


def _velocity_scores(
    model: Any, transform: Any, classifier: Any, test: Tensor, n: int, jumps: Sequence[int],
    ode_steps: int, seed: int,
) -> dict[str, Any]:  # fmt: skip
    """FD-digits of the velocity's samples: Euler at NFE k for k in jumps, Heun ``ode_steps``."""
    rows = {}
    for name, solver, steps in [*((f"euler NFE {k}", "euler", k) for k in jumps),
                                ("ode", "heun", ode_steps)]:  # fmt: skip
        gen = torch.Generator().manual_seed(seed)
        sol = model.sample(n, steps=steps, solver=solver, generator=gen, return_info=True)
        rows[name] = {"nfe": sol.nfe, "fd": fd_digits(classifier, transform.inverse(sol.x), test)}
    return rows


def bench_flowmap_digits(
    out: Path,
    steps: int = 3000,
    batch: int = 256,
    seed: int = 0,
    method: str = "lagrangian",
    width: int = 512,
    depth: int = 3,
    lr: float = 2e-3,
    alpha: float = 0.01,
    jumps: Sequence[int] = (1, 2, 4),
    ode_steps: int = 100,
    n: int = 1400,
    classifier_steps: int = 2000,
    nll_points: int | None = None,
) -> dict[str, Any]:
    """Digits (module docstring): FD-digits of a flow map (``method``) at each of ``jumps``
    against a velocity model's ``ode_steps``-step Heun ODE and Euler at the same NFE, n samples
    each against the 397 test images, beside the floor; few-step test bits/dim and round trip
    at each of ``jumps`` beside the ODE's bits/dim (exact divergence, Heun ``ode_steps``).
    Both models: MLP ``depth`` x ``width``, ``steps`` steps of batch ``batch``, lr ``lr``."""
    train, transform, test = digits_problem(alpha)
    y_test, log_det = transform(test), transform.log_det(test)
    pts = slice(None) if nll_points is None else slice(nll_points)
    dims = test.shape[1]
    classifier, accuracy = train_digits_classifier(classifier_steps, seed=seed)
    options = {"steps": steps, "batch_size": batch, "seed": seed, "lr": lr, "progress": False,
               "warmup": max(1, min(200, steps // 10))}  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        velocity_net = MLPField(dims, width=width, depth=depth)
        torch.manual_seed(seed)
        map_net = FlowMapMLP(dims, width=width, depth=depth)
    start = time.perf_counter()
    velocity = fit(train, net=velocity_net, **options)
    seconds = {"fit": time.perf_counter() - start}
    start = time.perf_counter()
    fm = fit_flow_map(train, method=method, net=map_net, **options)
    seconds[method] = time.perf_counter() - start
    out.mkdir(parents=True, exist_ok=True)
    velocity.save(out / "velocity.pt")
    fm.save(out / f"{method}.pt")
    start = time.perf_counter()
    ode_bpd = _bpd(velocity.log_prob(y_test[pts], "exact", ode_steps), log_det[pts], dims)
    ode_bpd["seconds"] = time.perf_counter() - start
    x0 = fm.base.sample(len(test), torch.Generator().manual_seed(seed))
    flow_map: dict[str, Any] = {}
    for k in jumps:
        x = fm.sample(n, steps=k, generator=torch.Generator().manual_seed(seed))
        start = time.perf_counter()
        bpd = _bpd(fm.log_prob(y_test[pts], steps=k), log_det[pts], dims)
        flow_map[str(k)] = {"fd": fd_digits(classifier, transform.inverse(x), test), **bpd,
                            "log_prob_seconds": time.perf_counter() - start,
                            "round_trip": float(fm.round_trip(x0, steps=k).mean())}  # fmt: skip
    return {
        "steps": steps, "batch": batch, "seed": seed, "method": method, "width": width,
        "depth": depth, "lr": lr, "alpha": alpha, "n": n, "ode_steps": ode_steps,
        "nll_points": len(y_test[pts]), "train_seconds": seconds,
        "classifier": {"steps": classifier_steps, "test_accuracy": accuracy},
        "reference": _reference_fds(classifier, test, n, seed),
        "velocity": _velocity_scores(velocity, transform, classifier, test, n, jumps, ode_steps,
                                     seed),
        "velocity_ode_bits_per_dim": ode_bpd,
        "flow_map": flow_map,
    }  # fmt: skip


def format_flowmap_digits(m: dict[str, Any]) -> str:
    """The markdown tables of a flowmap-digits benchmark."""
    ref, ode = m["reference"], m["velocity"]["ode"]
    bpd = m["velocity_ode_bits_per_dim"]
    lines = [
        f"{m['steps']} steps, batch {m['batch']}, MLP {m['depth']} x {m['width']}, lr {m['lr']}, "
        f"seed {m['seed']}; flow map: {m['method']}; classifier test accuracy "
        f"{m['classifier']['test_accuracy']:.3f}",
        f"FD-digits floor (test halves) {ref['floor_test_halves']:.3f}; {ref['n_train']} training "
        f"images vs test {ref['train_vs_test']:.3f}; {m['n']} samples per model vs the test split",
        "",
        "| model | NFE | FD-digits | test bits/dim | round trip |",
        "|---|---|---|---|---|",
        f"| velocity ODE (Heun {m['ode_steps']}) | {ode['nfe']} | {ode['fd']:.3f} "
        f"| {bpd['bits_per_dim']:.3f} +/- {bpd['stderr']:.3f} | |",
    ]
    for name, r in m["velocity"].items():
        if name != "ode":
            label = name.replace(" NFE", ",")
            lines.append(f"| velocity, {label} | {r['nfe']} | {r['fd']:.3f} | | |")
    for k, r in m["flow_map"].items():
        lines.append(
            f"| {m['method']}, {k} jump(s) | {k} | {r['fd']:.3f} "
            f"| {r['bits_per_dim']:.3f} +/- {r['stderr']:.3f} | {r['round_trip']:.3f} |"
        )
    return "\n".join(lines)
