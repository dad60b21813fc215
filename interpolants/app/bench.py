"""The benchmark suite behind ``interpolants bench NAME`` (definitions: docs/benchmarks.md).

Each benchmark prints a markdown table and writes ``metrics.json`` to its output folder.
Timings interleave the compared variants and report medians, since machines are shared.
"""

from __future__ import annotations

import copy
import inspect
import math
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..generative import GenerativeModel
from ..integrate import odeint
from ..interpolant import Interpolant
from ..run_folder import METRICS, RunFolder
from .couplings_bench import bench_couplings, format_couplings
from .demo import demo_problem
from .discrete_bench import bench_leaps, format_leaps
from .flowmap_bench import bench_flowmap, format_flowmap
from .flowmap_digits import bench_flowmap_digits, digits_problem, format_flowmap_digits
from .forecast_bench import bench_forecast, format_forecast
from .machine import machine_info
from .sampler_bench import bench_samplers, format_samplers

__all__ = ["BENCHMARKS", "machine_info", "run_benchmark"]


def _median_seconds(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median wall time of each callable, the callables interleaved within every repeat."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


class _MLPField(nn.Module):
    """b(t, x) = MLP([x, t]), 4 hidden layers of 256 (SiLU): the size of a learned 2D velocity.

    Hand-written on purpose, not built with :func:`interpolants.nn.mlp`: it is the network of
    the bare PyTorch baselines (the hand-written Euler loop of ``bench_solvers`` and the issue's
    anchor loop of ``bench_checkerboard(bare=True)``: raw t, no Fourier embedding), which
    measure the package against code that does not use it."""

    def __init__(self, dim: int = 2, width: int = 256, depth: int = 4):
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(dim + 1, width), nn.SiLU()]
        for _ in range(depth - 1):
            layers += [nn.Linear(width, width), nn.SiLU()]
        self.net = nn.Sequential(*layers, nn.Linear(width, dim))

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        return self.net(torch.cat([x, t[:, None]], 1))


def _bare_euler(field: Callable[[Tensor, Tensor], Tensor], x: Tensor, steps: int) -> Tensor:
    """The limit: a hand-written Euler loop of the same field."""
    h = 1.0 / steps
    n = x.shape[0]
    for i in range(steps):
        x = x + h * field(torch.full((n,), i * h), x)
    return x


def bench_solvers(out: Path, n: int = 10_000, repeats: int = 5, steps: int = 100) -> dict[str, Any]:
    """Sampling cost per n samples of each solver on the exact demo field, accuracy against a
    tight dopri5 reference, and the overhead of the solver loop against a bare Euler loop."""
    torch.manual_seed(0)
    model, _, fields = demo_problem()
    _, _, fields64 = demo_problem(torch.float64)
    x0 = torch.randn(n, 2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = odeint(fields64.velocity, x0.double(), solver="dopri5", atol=1e-10, rtol=1e-10).x
    configs = {
        f"euler {steps}": dict(solver="euler", steps=steps),
        f"heun {steps}": dict(solver="heun", steps=steps),
        f"rk4 {steps // 4}": dict(solver="rk4", steps=max(1, steps // 4)),
        f"rk4 {steps}": dict(solver="rk4", steps=steps),
        "dopri5 1e-5": dict(solver="dopri5", atol=1e-5, rtol=1e-5),
        "dopri5 1e-3": dict(solver="dopri5", atol=1e-3, rtol=1e-3),
    }
    sols = {}
    fns = {}
    for name, kw in configs.items():

        def run(kw: dict[str, Any] = kw, name: str = name) -> None:
            with torch.no_grad():
                sols[name] = odeint(fields.velocity, x0, **kw)

        fns[name] = run
    secs = _median_seconds(fns, repeats)
    rows = {
        name: {
            "nfe": sols[name].nfe,
            "seconds": secs[name],
            "max_abs_error": float((sols[name].x.double() - ref).abs().max()),
            "rms_error": float((sols[name].x.double() - ref).square().mean().sqrt()),
        }
        for name in configs
    }
    overhead = {}
    mlp = _MLPField().eval()
    exact = fields.velocity
    for label, field in (("exact mixture field", exact), ("MLP 4x256 field", mlp)):
        fns = {
            "bare": lambda f=field: _bare_euler(f, x0, steps),
            "odeint": lambda f=field: odeint(f, x0, steps=steps, solver="euler"),
        }
        if field is exact:
            fns["transport"] = lambda: model.transport(x0, steps=steps, solver="euler")
        with torch.no_grad():
            secs = _median_seconds(fns, repeats)
        overhead[label] = {f"{k}_seconds": v for k, v in secs.items()}
        overhead[label]["ratio"] = secs["odeint"] / secs["bare"]
        if "transport" in secs:
            overhead[label]["transport_ratio"] = secs["transport"] / secs["bare"]
    return {"n": n, "repeats": repeats, "solvers": rows, "overhead": overhead}


def _format_solvers(m: dict[str, Any]) -> str:
    lines = [
        f"n = {m['n']} samples, median of {m['repeats']} interleaved repeats",
        "",
        "| solver | NFE | wall s | max abs error | RMS error |",
        "|---|---|---|---|---|",
    ]
    for name, r in m["solvers"].items():
        lines.append(
            f"| {name} | {r['nfe']} | {r['seconds']:.3f} | {r['max_abs_error']:.2e} "
            f"| {r['rms_error']:.2e} |"
        )
    lines += [
        "",
        "| field (Euler, 100 steps) | bare loop s | odeint s | ratio |",
        "|---|---|---|---|",
    ]
    for label, r in m["overhead"].items():
        extra = f" (model.transport {r['transport_ratio']:.3f}x)" if "transport_ratio" in r else ""
        lines.append(
            f"| {label} | {r['bare_seconds']:.4f} | {r['odeint_seconds']:.4f} "
            f"| {r['ratio']:.3f}x{extra} |"
        )
    return "\n".join(lines)


def _bare_cfm_step(net: nn.Module, opt: torch.optim.Optimizer, data: Tensor, batch: int) -> None:
    """The limit: one hand-written flow-matching step (linear path, MSE to x1 - x0)."""
    x1 = data[torch.randint(len(data), (batch,))]
    x0 = torch.randn_like(x1)
    t = torch.rand(batch)
    xt = (1 - t[:, None]) * x0 + t[:, None] * x1
    _descend(opt, (net(t, xt) - (x1 - x0)).square().sum(1).mean())


def _descend(opt: torch.optim.Optimizer, loss: Tensor) -> None:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def _peer_steps(data: Tensor, batch: int) -> dict[str, Callable[[nn.Module, Any], None]]:
    """One training step of each installed peer library with the same network (bench extra)."""
    peers: dict[str, Callable[[nn.Module, Any], None]] = {}
    try:
        from torchcfm.conditional_flow_matching import ConditionalFlowMatcher

        matcher = ConditionalFlowMatcher(sigma=0.0)

        def torchcfm_step(net: nn.Module, opt: Any) -> None:
            x1 = data[torch.randint(len(data), (batch,))]
            t, xt, ut = matcher.sample_location_and_conditional_flow(torch.randn_like(x1), x1)
            _descend(opt, (net(t, xt) - ut).square().sum(1).mean())

        peers["torchcfm"] = torchcfm_step
    except ImportError:
        pass
    try:
        from flow_matching.path import AffineProbPath
        from flow_matching.path.scheduler import CondOTScheduler

        path = AffineProbPath(scheduler=CondOTScheduler())

        def flow_matching_step(net: nn.Module, opt: Any) -> None:
            x1 = data[torch.randint(len(data), (batch,))]
            s = path.sample(t=torch.rand(batch), x_0=torch.randn_like(x1), x_1=x1)
            _descend(opt, (net(s.t, s.x_t) - s.dx_t).square().sum(1).mean())

        peers["flow_matching"] = flow_matching_step
    except ImportError:
        pass
    return peers


def bench_train_cost(
    out: Path, batch: int = 4096, steps: int = 20, repeats: int = 5
) -> dict[str, Any]:
    """ms per training step of si.fit against a bare PyTorch loop of the same network and batch
    (the limit) and against torchcfm and flow_matching when installed; interleaved medians.

    si.fit is timed as a whole call of ``steps`` steps, its set-up (EMA copy, run state)
    included; the others after 3 warm-up steps.
    """
    from ..data import load
    from ..nn import MLPField
    from ..train import fit

    torch.manual_seed(0)
    data = load("checkerboard", n=100_000)
    template = MLPField(2, width=256, depth=4)

    def loop(step: Callable[[nn.Module, Any], None]) -> Callable[[], None]:
        net = copy.deepcopy(template)
        opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
        for _ in range(3):
            step(net, opt)

        def run() -> None:
            for _ in range(steps):
                step(net, opt)

        return run

    fns: dict[str, Callable[[], object]] = {
        "bare loop": loop(lambda net, opt: _bare_cfm_step(net, opt, data, batch)),
        "si.fit": lambda: fit(
            data, steps=steps, batch_size=batch, net=copy.deepcopy(template), warmup=1
        ),
    }
    for name, step in _peer_steps(data, batch).items():
        fns[name] = loop(step)
    secs = _median_seconds(fns, repeats)
    ms = {k: 1000 * v / steps for k, v in secs.items()}
    return {
        "batch": batch,
        "steps": steps,
        "repeats": repeats,
        "network": "MLPField(2, width=256, depth=4)",
        "ms_per_step": ms,
        "ratio_to_bare": {k: v / ms["bare loop"] for k, v in ms.items()},
    }


def _format_train_cost(m: dict[str, Any]) -> str:
    lines = [
        f"{m['network']}, batch {m['batch']}, "
        f"{m['steps']} steps x {m['repeats']} interleaved repeats",
        "",
        "| trainer | ms/step (median) | ratio to bare loop |",
        "|---|---|---|",
    ]
    for name, ms in m["ms_per_step"].items():
        lines.append(f"| {name} | {ms:.1f} | {m['ratio_to_bare'][name]:.3f}x |")
    return "\n".join(lines)


def bench_checkerboard(
    out: Path,
    steps: int = 4000,
    batch: int = 4096,
    nll_points: int = 2000,
    seed: int = 0,
    bare: bool = False,
    **fit_options: Any,
) -> dict[str, Any]:
    """Checkerboard (docs/benchmarks.md): train the linear interpolant's velocity (MLP 4x256, EMA,
    warm-up + cosine), then test NLL against log 32 and sliced W2 against the noise floor,
    sampling with Heun (100 steps) and dopri5.

    ``bare=True`` trains instead the issue's anchor, a bare PyTorch loop (the MLP of
    ``[x, t]``, Adam at a constant lr 1e-3, uniform t, no EMA, no clipping), evaluated the same
    way so that the two are compared under one protocol."""
    from ..data import load
    from ..metrics import sliced_w2
    from ..train import fit

    data = load("checkerboard", n=200_000)
    test = load("checkerboard", n=20_000, split="test")
    floor = sliced_w2(load("checkerboard", n=20_000, seed=11), test)
    start = time.perf_counter()
    if bare:
        torch.manual_seed(seed)
        net = _MLPField()
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        for _ in tqdm(range(steps), desc="bare loop", leave=False):
            _bare_cfm_step(net, opt, data, batch)
        model = GenerativeModel(Interpolant("linear"), velocity=net.eval(), event_shape=(2,))
        out.mkdir(parents=True, exist_ok=True)
        model.save(out / "bare.pt")
        options: dict[str, Any] = {"bare": True}
    else:
        options = {"warmup": 200, **fit_options}
        model = fit(
            data,
            steps=steps,
            batch_size=batch,
            seed=seed,
            out=out / "run",
            progress=True,
            **options,
        )
    train_seconds = time.perf_counter() - start
    rows = {}
    for name, kw in (
        ("heun 100", {"solver": "heun", "steps": 100}),
        ("dopri5", {"solver": "dopri5"}),
    ):
        gen = torch.Generator().manual_seed(seed)
        sol = model.sample(len(test), generator=gen, return_info=True, **kw)
        nll = -model.log_prob(test[:nll_points], **kw)
        w2 = sliced_w2(sol.x, test)
        rows[name] = {
            "nfe": sol.nfe,
            "test_nll": float(nll.mean()),
            "test_nll_stderr": float(nll.std() / math.sqrt(len(nll))),
            "nll_gap": float(nll.mean()) - math.log(32),
            "sliced_w2": w2,
            "sliced_w2_over_floor": w2 / floor,
        }
    return {
        "steps": steps,
        "batch": batch,
        "options": options,
        "train_seconds": train_seconds,
        "floor": floor,
        "rows": rows,
    }


def _timed_training(step: Callable[[], None], seconds: float, desc: str) -> int:
    """Call ``step`` until ``seconds`` of wall time have passed; the number of steps."""
    steps, start = 0, time.perf_counter()
    with tqdm(desc=desc, leave=False) as bar:
        while time.perf_counter() - start < seconds:
            step()
            steps += 1
            bar.update(1)
    return steps


def _nsf_log_probs(
    train: Any, transform: Any, test: Tensor, seconds: float, batch: int, seed: int, gen: Any
) -> dict[str, tuple[Tensor, int]]:
    """zuko's NSF (5 transforms of 2 x 256) trained for ``seconds`` by maximum likelihood, in
    the logit space of ``transform`` and on the images in [0, 1] themselves: {row: (test log
    densities of x, steps)}; {} without zuko."""
    from ..data import Dequantized

    try:
        import zuko
    except ImportError:
        return {}
    y_test, log_det = transform(test), transform.log_det(test)
    rows = {}
    for name, sampler, space in (
        ("zuko NSF (5 x [256, 256]), logit space", train, transform),
        ("zuko NSF (5 x [256, 256]), [0, 1] space", Dequantized(train.v, 17), None),
    ):
        torch.manual_seed(seed)
        flow = zuko.flows.NSF(test.shape[1], transforms=5, hidden_features=(256, 256))
        opt = torch.optim.Adam(flow.parameters(), lr=1e-3)

        def nsf_step(flow: Any = flow, opt: Any = opt, sampler: Any = sampler) -> None:
            _descend(opt, -flow().log_prob(sampler.sample(batch, gen)).mean())

        n = _timed_training(nsf_step, seconds, name)
        with torch.no_grad():
            if space is None:
                log_p = flow().log_prob(test)
            else:
                log_p = flow().log_prob(y_test) + log_det
        rows[name] = (log_p, n)
    return rows


def bench_digits(
    out: Path,
    steps: int = 3000,
    seed: int = 0,
    alpha: float = 0.01,
    whiten: bool = False,
    width: int = 512,
    depth: int = 3,
    batch: int = 256,
    lr: float = 2e-3,
    weight_decay: float = 0.0,
    ema: float = 0.999,
    eval_steps: int = 100,
    probes: int = 4,
    peers: bool = True,
    **fit_options: Any,
) -> dict[str, Any]:
    """Digits (docs/benchmarks.md): test bits/dim of the interpolant flow against zuko's NSF trained
    for the same wall time as ``si.fit`` took for ``steps``, and against Gaussians fitted in
    the same logit space.

    Both flows model y = LogitTransform(x) of the dequantised images (fresh noise per batch),
    flattened to 64 numbers; NLLs of x add the transform's log-determinant. The flow: linear
    interpolant from N(0, I), velocity MLP, trained by ``si.fit``, log-likelihood by the ODE
    with the divergence exact (``probes=0``) or by Hutchinson's unbiased estimator averaged
    over ``probes`` probes per image (Heun, ``eval_steps``). NSF: 5 transforms of 2 x 256
    hidden units, maximum likelihood, Adam."""
    from ..metrics import bits_per_dim
    from ..nn import MLPField
    from ..train import fit

    train, transform, test = digits_problem(alpha, whiten)
    y_test, log_det = transform(test), transform.log_det(test)
    dims = test.shape[1]

    def bpd(nll: Tensor) -> dict[str, float]:
        return {
            "bits_per_dim": bits_per_dim(nll, dims, levels=17),
            "stderr": float(nll.std() / math.sqrt(len(nll))) / dims / math.log(2),
        }

    rows: dict[str, Any] = {}
    # Gaussians in the same logit space: diagonal and full covariance, fitted to 20 fresh
    # dequantisations of the training images.
    gen = torch.Generator().manual_seed(seed)
    y_train = train.sample(20 * len(train.v), gen).double()
    mean, cov = y_train.mean(0), torch.cov(y_train.T)
    for name, c in (("Gaussian, diagonal", torch.diag(cov.diag())), ("Gaussian, full", cov)):
        g = torch.distributions.MultivariateNormal(mean, c)
        rows[name] = {
            **bpd(-(g.log_prob(y_test.double()).float() + log_det)),
            "seconds": 0.0,
            "steps": 0,
        }

    torch.manual_seed(seed)
    net = MLPField(dims, width=width, depth=depth)
    start = time.perf_counter()
    model = fit(
        train,
        steps=steps,
        batch_size=batch,
        lr=lr,
        seed=seed,
        net=net,
        ema=ema,
        weight_decay=weight_decay,
        warmup=min(200, steps // 10 + 1),
        out=out / "run",
        progress=True,
        **fit_options,
    )
    train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    if probes:  # Hutchinson, unbiased: the mean over ``probes`` Rademacher probes per image
        log_q = (
            model.log_prob(y_test.repeat(probes, 1), "hutchinson", eval_steps, generator=gen)
            .view(probes, -1)
            .mean(0)
        )
    else:
        log_q = model.log_prob(y_test, "exact", eval_steps)
    rows["interpolant flow (si.fit)"] = {
        **bpd(-(log_q + log_det)),
        "seconds": train_seconds,
        "steps": steps,
        "eval_seconds": time.perf_counter() - start,
    }
    if peers:
        nsf = _nsf_log_probs(train, transform, test, train_seconds, batch, seed, gen)
        rows |= {name: {**bpd(-log_p), "seconds": train_seconds, "steps": n}
                 for name, (log_p, n) in nsf.items()}  # fmt: skip
    return {
        "steps": steps,
        "batch": batch,
        "alpha": alpha,
        "whiten": whiten,
        "lr": lr,
        "fit_options": fit_options,
        "dims": dims,
        "rows": rows,
    }


def _format_digits(m: dict[str, Any]) -> str:
    lines = [
        "| model | training steps | wall s | test bits/dim |",
        "|---|---|---|---|",
    ]
    for name, r in m["rows"].items():
        lines.append(
            f"| {name} | {r['steps']} | {r['seconds']:.0f} "
            f"| {r['bits_per_dim']:.3f} +/- {r['stderr']:.3f} |"
        )
    return "\n".join(lines)


def _format_checkerboard(m: dict[str, Any]) -> str:
    lines = [
        f"{m['steps']} steps, batch {m['batch']}, trained in {m['train_seconds']:.0f} s; "
        f"sliced W2 floor {m['floor']:.4f}",
        "",
        "| sampler | NFE | test NLL (nats) | gap to log 32 | sliced W2 / floor |",
        "|---|---|---|---|---|",
    ]
    for name, r in m["rows"].items():
        lines.append(
            f"| {name} | {r['nfe']} | {r['test_nll']:.4f} +/- {r['test_nll_stderr']:.4f} "
            f"| {r['nll_gap']:.4f} | {r['sliced_w2_over_floor']:.2f}x |"
        )
    return "\n".join(lines)


def _nll_curve(
    step: Callable[[], None],
    model: Any,
    test: Tensor,
    budget: float,
    times: Sequence[float],
) -> list[dict[str, float]]:
    """Run ``step`` until ``budget`` seconds of training; at each of ``times`` (seconds of
    training) and at the end, the test NLL (exact divergence, Heun 50) of ``model``
    (evaluation time not counted)."""
    pending = sorted(t for t in times if t < budget)
    curve, trained, steps = [], 0.0, 0
    while trained < budget:
        start = time.perf_counter()
        step()
        trained += time.perf_counter() - start
        steps += 1
        if (pending and trained >= pending[0]) or trained >= budget:
            while pending and trained >= pending[0]:
                pending.pop(0)
            nll = -model.log_prob(test, steps=50, solver="heun")
            curve.append(
                {
                    "seconds": trained,
                    "steps": steps,
                    "nll": float(nll.mean()),
                    "stderr": float(nll.std() / math.sqrt(len(nll))),
                }
            )
    return curve


def bench_ml_vs_interpolant(
    out: Path,
    budget: float = 300.0,
    times: Sequence[float] = (5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 240),
    batch: int = 1024,
    seed: int = 0,
    ml_steps: int = 10,
    ml_divergence: str = "exact",
) -> dict[str, Any]:
    """Wall-clock training time to a test NLL on checkerboard: the interpolant loss against
    maximum likelihood through the ODE (Heun ``ml_steps`` steps, exact divergence in 2D),
    same network (MLP 3x128), batch, AdamW at constant lr 1e-3, gradient clipping at 1
    (the claim tested: the interpolant loss reaches the same NLL at a fraction of the
    cost). Test NLL at the training times ``times`` and at ``budget``."""
    from ..data import load
    from ..interpolant import Interpolant, sample_times
    from ..losses import velocity_loss
    from ..nn import MLPField

    torch.manual_seed(seed)
    data = load("checkerboard", n=200_000)
    test = load("checkerboard", n=1000, split="test")
    I = Interpolant("linear")
    curves = {}
    for name in ("interpolant", "max_likelihood"):
        torch.manual_seed(seed)
        net = MLPField(2, width=128, depth=3)
        model = GenerativeModel(I, net, event_shape=(2,))
        opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
        gen = torch.Generator().manual_seed(seed)

        def step(name: str = name, net: nn.Module = net, opt: Any = opt, gen: Any = gen) -> None:
            x1 = data[torch.randint(len(data), (batch,), generator=gen)]
            if name == "interpolant":
                x0 = torch.randn(x1.shape, generator=gen)
                s = I.sample(x0, x1, sample_times(batch, generator=gen))
                loss = velocity_loss(net(s.t, s.xt), s)
            else:
                loss = (
                    -GenerativeModel(I, net, event_shape=(2,))
                    .log_prob(x1, ml_divergence, steps=ml_steps, generator=gen, create_graph=True)
                    .mean()
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()

        curves[name] = _nll_curve(step, model, test, budget, times)
    best_ml = min(p["nll"] for p in curves["max_likelihood"])
    reach = [p["seconds"] for p in curves["interpolant"] if p["nll"] <= best_ml]
    return {
        "budget_seconds": budget,
        "batch": batch,
        "ml_steps": ml_steps,
        "ml_divergence": ml_divergence,
        "curves": curves,
        "ml_best_nll": best_ml,
        "interpolant_seconds_to_ml_best": reach[0] if reach else None,
        "true_nll": float(torch.log(torch.tensor(32.0))),
    }


def _format_ml(m: dict[str, Any]) -> str:
    lines = [
        f"budget {m['budget_seconds']:.0f} s of training each, batch {m['batch']}; "
        f"true NLL {m['true_nll']:.4f}",
        "",
        "| objective | training s | steps | test NLL (nats) |",
        "|---|---|---|---|",
    ]
    for name, curve in m["curves"].items():
        for p in curve:
            lines.append(
                f"| {name} | {p['seconds']:.0f} | {p['steps']} "
                f"| {p['nll']:.4f} +/- {p['stderr']:.4f} |"
            )
    reach = m["interpolant_seconds_to_ml_best"]
    lines.append("")
    lines.append(
        f"Best max-likelihood NLL {m['ml_best_nll']:.4f}; the interpolant reached it after "
        + (f"{reach:.0f} s." if reach is not None else "no evaluation within the budget.")
    )
    return "\n".join(lines)


BENCHMARKS: dict[str, tuple[Callable[..., dict[str, Any]], Callable[[dict[str, Any]], str]]] = {
    "solvers": (bench_solvers, _format_solvers),
    "train-cost": (bench_train_cost, _format_train_cost),
    "checkerboard": (bench_checkerboard, _format_checkerboard),
    "digits": (bench_digits, _format_digits),
    "ml-vs-interpolant": (bench_ml_vs_interpolant, _format_ml),
    "samplers": (bench_samplers, format_samplers),
    "flowmap": (bench_flowmap, format_flowmap),
    "flowmap-digits": (bench_flowmap_digits, format_flowmap_digits),
    "couplings": (bench_couplings, format_couplings),
    "forecast": (bench_forecast, format_forecast),
    "leaps": (bench_leaps, format_leaps),
}


def benchmark_options(name: str, options: dict[str, Any]) -> None:
    """ValueError unless benchmark ``name`` takes every keyword of ``options``."""
    params = inspect.signature(BENCHMARKS[name][0]).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    unknown = sorted(set(options) - set(params) - {"out"})
    if unknown:
        known = ", ".join(k for k in params if k != "out")
        raise ValueError(f"benchmark {name!r} takes no option {unknown[0]!r}; its options: {known}")


def run_benchmark(
    name: str,
    out: str | Path = "runs/bench",
    *,
    overwrite: bool = False,
    options: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], str]:
    """Run benchmark ``name`` with its keyword ``options`` (e.g. {"steps": 200} for a quick
    run); write ``OUT/NAME/metrics.json``; return (metrics, table).

    ``OUT/NAME`` is a run folder (:mod:`interpolants.run_folder`): one that holds an earlier
    result is refused unless ``overwrite``, and kept if the new run fails."""
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; known: {', '.join(sorted(BENCHMARKS))}")
    options = dict(options or {})
    benchmark_options(name, options)
    fn, fmt = BENCHMARKS[name]
    folder = RunFolder(Path(out) / name, overwrite=overwrite)
    with folder.running():
        folder.accept()
        metrics = fn(folder.file(METRICS).parent, **options)
        if options:
            metrics["options"] = {**metrics.get("options", {}), **options}
        metrics["machine"] = machine_info()
        folder.write_json(METRICS, metrics)
    return metrics, fmt(metrics)
