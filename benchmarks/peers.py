r"""Our samplers beside established peers, in one run, at equal target evaluations.

For each target (eight_schools centred and non-centred, local_level, funnel, many_well,
radial_velocity; float64) and seed:

- log Z: our ``smc`` (defaults) and ``ais`` (its ``steps`` set so that it spends what SMC
  spent), against pocoMC (preconditioned SMC: normalising flows inside SMC), dynesty (static
  nested sampling) and nautilus (neural-network-boosted importance nested sampling).
- posterior moments: our ``hmc`` (defaults) against NumPyro's NUTS.

The nested samplers and pocoMC need a prior and a likelihood. The prior is our
``target.base`` (a normalised density: the eight-schools prior :class:`EightSchoolsPrior` for
the centred eight schools, the orbit prior :class:`OrbitPrior` for radial_velocity, a
diagonal normal N(mean, diag(std^2)) for the others), and the likelihood
is L(x) = rho*(x) / base(x), i.e. log L = target.log_prob(x) - target.base.log_prob(x). Then
int L(x) base(x) dx = int rho*(x) dx = Z: their evidence is our Z, and so is the reference.
The unit-cube map of a diagonal normal is x_i = mean_i + std_i Phi^{-1}(u_i); that of the
eight-schools prior is ancestral (mu = 5 Phi^{-1}(u_0), tau = 5 tan(pi u_1 / 2), theta_j =
mu + tau Phi^{-1}(u_j)); that of the
orbit prior follows its sampler (u_P = logit(u_0), K cos/sin lambda = K_scale Phi^{-1}(u_1,
u_2), |(u_1, u_2)| = atanh(sqrt(u_3)) at angle 2 pi u_4, gamma = gamma_scale Phi^{-1}(u_5)).
Each is checked before any run: log base(x(u)) + log |det dx/du| = 0 at random u.

NUTS runs on a JAX transcription of each target's log density (in this file), checked
against our torch ``log_prob`` and its gradient at random points in float64 (values to
1e-8 (1 + |value|), gradients to 1e-6 (1 + |gradient|)) before it runs.

Protocol: equal target evaluations. Each peer's log-likelihood is wrapped by a counter (a
vectorised call counts one per point; base densities are not counted, as in our
``evaluations``). Budgets: our SMC's count E for the log Z methods (AIS steps =
E / n - 3, scaled down once by E over what it spent when its bias check took it past
1.2 E; dynesty ``maxcall`` = E; nautilus ``n_like_max`` = E; pocoMC has no cap, so its
``n_active`` / ``n_effective`` are scaled from its defaults by E over a rule-of-thumb
estimate of its calls, and the count it used is reported), our HMC's count for NUTS (its
gradient evaluations: the leapfrog steps of its 200 warm-up iterations per chain, 4 chains,
then draws in chunks of 100 per chain until the budget is spent; its warm-up alone can
exceed the budget, and the table says so). The table states every count. ``--timeout``
bounds the peers' wall time: nautilus stops and reports, pocoMC fails with a message, and
dynesty's ``maxcall`` is lowered to the one-point likelihood calls that fit in it (timed
beforehand; dynesty's bookkeeping comes on top). Wall and CPU
seconds are measured in this one process, one thread (NUTS includes JAX's compilation);
``ratio`` is the wall time over that of our method of the same column (SMC for the log Z
methods, HMC for NUTS). On a shared machine the CPU seconds are the steadier measure.

Metrics per (target, method, seed): log Z error (estimate - reference), its reported
standard error (nautilus reports none: we show sqrt(1 / ESS - 1 / N) of its importance
weights, marked *), |err| / se, the largest |posterior-mean error| / posterior sd over
coordinates where the target has references (weighted means for weighted samples;
eight_schools and local_level: exact means and sds; funnel: mean 0 and the exact sds;
many_well and radial_velocity: none, radial_velocity shows the posterior weight of its main
period mode 13 < P < 16.5 d instead, reference 0.919 +- 0.002), evaluations, wall seconds,
ratio.

    OMP_NUM_THREADS=1 XLA_FLAGS="--xla_cpu_multi_thread_eigen=false \
        intra_op_parallelism_threads=1" python benchmarks/peers.py [--n 1000] [--seeds K] \
        [--targets ...] [--methods ...] [--quick] [--timeout S] [--out PATH]

Peers: ``pip install -c constraints.txt pocomc dynesty nautilus-sampler numpyro`` (the
``bench`` extra); a peer that is not installed is skipped with a message.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
)

import numpy as np
import torch

import interpolants as si
from interpolants.distributions import DiagonalNormal
from interpolants.targets.base import log_half_cauchy_quantile
from interpolants.targets.hierarchical import MU_SCALE, TAU_SCALE, EightSchoolsPrior
from interpolants.targets.radial_velocity import OrbitPrior

torch.set_num_threads(1)

TARGETS: dict[str, tuple[str, dict[str, Any]]] = {
    "eight_schools": ("eight_schools", {"centered": True}),
    "eight_schools_nc": ("eight_schools", {"centered": False}),
    "local_level": ("local_level", {}),
    "funnel": ("funnel", {}),
    "many_well": ("many_well", {}),
    "radial_velocity": ("radial_velocity", {}),
}
LOG_Z_METHODS = ("smc", "ais", "pocomc", "dynesty", "nautilus")
MOMENT_METHODS = ("hmc", "nuts")
METHODS = LOG_Z_METHODS + MOMENT_METHODS
PEER_PACKAGES = {
    "pocomc": "pocomc",
    "dynesty": "dynesty",
    "nautilus": "nautilus",
    "nuts": "numpyro",
}
PEER_PIP = {
    "pocomc": "pocomc",
    "dynesty": "dynesty",
    "nautilus": "nautilus-sampler",
    "nuts": "numpyro",
}
MAIN_MODE = (13.0, 16.5)  # radial_velocity's main period mode, days
MAIN_MODE_REF = 0.9191


def missing_peer(method: str) -> str | None:
    """Why ``method`` cannot run here (its package is not installed), else None."""
    package = PEER_PACKAGES.get(method)
    if package is None or importlib.util.find_spec(package) is not None:
        return None
    return f"skip {method}: {package} is not installed (pip install {PEER_PIP[method]})"


# --- references -----------------------------------------------------------------------------


def reference_log_z(target: Any) -> float:
    if target.log_Z is not None:
        return float(target.log_Z)
    return float(target.references["log_Z"])


def reference_moments(target: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """Exact posterior means and sds per coordinate where the target has them."""
    refs = target.references
    if isinstance(refs.get("mean"), list) and "sd" in refs:
        return np.asarray(refs["mean"], float), np.asarray(refs["sd"], float)
    if target.name == "funnel":  # E x = 0, sd x_0 = s, sd x_i = sqrt(E e^{x_0})
        sd = np.full(target.dim, math.sqrt(refs["second_moment_xi"]))
        sd[0] = math.sqrt(refs["var_x0"])
        return np.zeros(target.dim), sd
    return None


def weighted_mean(x: np.ndarray, log_w: np.ndarray | None, f: Callable | None = None) -> Any:
    v = x if f is None else f(x)
    if log_w is None:
        return v.mean(0)
    w = np.exp(log_w - log_w.max())
    return (w[:, None] * v).sum(0) / w.sum() if v.ndim == 2 else (w * v).sum() / w.sum()


def moment_metrics(target: Any, x: np.ndarray, log_w: np.ndarray | None) -> dict[str, Any]:
    out: dict[str, Any] = {"mean_err_sd": None, "worst_coord": None, "note": ""}
    ref = reference_moments(target)
    if ref is not None:
        z = np.abs(weighted_mean(x, log_w) - ref[0]) / ref[1]
        out["mean_err_sd"], out["worst_coord"] = float(z.max()), int(z.argmax())
    if target.name == "radial_velocity":
        period = target.to_physical(torch.as_tensor(x, dtype=torch.float64)).P.numpy()
        inside = ((period > MAIN_MODE[0]) & (period < MAIN_MODE[1])).astype(float)
        w = float(weighted_mean(inside[:, None], log_w)[0])
        out["mode_weight"] = w
        out["note"] = f"w(13<P<16.5)={w:.3f} (ref {MAIN_MODE_REF})"
    return out


# --- priors for the peers: target.base as a unit-cube map and a density ----------------------


class BasePrior:
    """``target.base`` for the peers: ``transform`` (unit cube -> x), ``logpdf``, ``rvs``,
    ``bounds`` and ``dim`` (pocoMC's prior interface), all in float64 numpy."""

    def __init__(self, base: Any, dim: int, seed: int):
        self.base, self.dim = base, dim
        self.bounds = np.full((dim, 2), [-np.inf, np.inf])
        self.rng = np.random.default_rng(seed)
        if isinstance(base, DiagonalNormal):
            self.kind = "normal"
            self.mean, self.std = base.mean.double(), base.std.double()
        elif isinstance(base, OrbitPrior) and not base.jitter:
            self.kind = "orbit"
            self.c = base.prior
        elif isinstance(base, EightSchoolsPrior):
            self.kind = "eight_schools"
            self.centered, self.log_tau_normal = base.centered, base.log_tau_normal
        else:
            raise NotImplementedError(f"no unit-cube map for a base of type {type(base)}")

    def transform_torch(self, u: torch.Tensor) -> torch.Tensor:
        """x(u) for u (n, dim) in (0, 1)^dim."""
        ndtri = torch.special.ndtri
        if self.kind == "normal":
            return self.mean + self.std * ndtri(u)
        if self.kind == "eight_schools":
            return self._eight_schools(u)
        c = self.c
        r, angle = torch.atanh(u[:, 3].sqrt()), 2 * math.pi * u[:, 4]
        columns = [
            torch.logit(u[:, 0]),
            c["K_scale"] * ndtri(u[:, 1]),
            c["K_scale"] * ndtri(u[:, 2]),
            r * torch.cos(angle),
            r * torch.sin(angle),
            c["gamma_scale"] * ndtri(u[:, 5]),
        ]
        return torch.stack(columns, 1)

    def _eight_schools(self, u: torch.Tensor) -> torch.Tensor:
        """Ancestral quantiles: mu = 5 Phi^-1(u_0); log tau from tau = 5 tan(pi u_1 / 2) (the
        half-Cauchy's quantile) or m + s Phi^-1(u_1); theta_j = mu + tau Phi^-1(u_j) (centred)
        or eta_j = Phi^-1(u_j)."""
        ndtri = torch.special.ndtri
        mu = MU_SCALE * ndtri(u[:, 0])
        if self.log_tau_normal is None:
            log_tau = log_half_cauchy_quantile(u[:, 1], TAU_SCALE)
        else:
            log_tau = self.log_tau_normal[0] + self.log_tau_normal[1] * ndtri(u[:, 1])
        z = ndtri(u[:, 2:])
        local = mu[:, None] + log_tau.exp()[:, None] * z if self.centered else z
        return torch.cat([mu[:, None], log_tau[:, None], local], 1)

    def transform(self, u: np.ndarray) -> np.ndarray:
        u = np.asarray(u, dtype=float)
        x = self.transform_torch(torch.from_numpy(np.atleast_2d(u))).numpy()
        return x if u.ndim == 2 else x[0]

    def logpdf(self, x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.base.log_prob(torch.as_tensor(np.atleast_2d(x))).double().numpy()

    def rvs(self, size: int = 1) -> np.ndarray:
        return self.transform(self.rng.uniform(size=(int(size), self.dim)))

    def check(self, points: int = 5) -> float:
        """max over random u of |log base(x(u)) + log |det dx/du||: 0 if the map pushes the
        uniform measure on the cube to the base."""
        gen = torch.Generator().manual_seed(1)
        worst = 0.0
        for u in 0.05 + 0.9 * torch.rand(points, self.dim, generator=gen, dtype=torch.float64):
            jac = torch.autograd.functional.jacobian(lambda v: self.transform_torch(v[None])[0], u)
            x = self.transform_torch(u[None])
            value = float(self.base.log_prob(x)[0]) + float(torch.linalg.slogdet(jac)[1])
            worst = max(worst, abs(value))
        return worst


class Counted:
    """log L(x) = log rho*(x) - log base(x) for numpy points, counting evaluations (one per
    point, vectorised or not)."""

    def __init__(self, target: Any, timeout: float = math.inf):
        self.target, self.calls = target, 0
        self.deadline = time.perf_counter() + timeout

    def __call__(self, x: np.ndarray) -> np.ndarray | float:
        if time.perf_counter() > self.deadline:  # for a peer with no time limit of its own
            raise TimeoutError(f"no result within the time limit ({self.calls:,} evaluations)")
        x = np.asarray(x, dtype=float)
        points = np.atleast_2d(x)
        self.calls += points.shape[0]
        with torch.no_grad():
            t = torch.from_numpy(points)
            v = (self.target.log_prob(t) - self.target.base.log_prob(t)).numpy()
        v = np.where(np.isnan(v), -np.inf, v)
        return v if x.ndim == 2 else float(v[0])


# --- JAX transcriptions of the targets, for NUTS ---------------------------------------------


def jax_log_density(target: Any) -> Callable:
    """log rho*(x) for one point x (dim,) in JAX, the same function as ``target.log_prob``."""
    import jax
    import jax.numpy as jnp

    log_2pi = math.log(2 * math.pi)

    def log_normal(x, mean, sd):
        return -0.5 * ((x - mean) / sd) ** 2 - jnp.log(sd) - 0.5 * log_2pi

    name = target.name
    if name.startswith("eight_schools"):
        y, sigma = jnp.asarray(target.y.double().numpy()), jnp.asarray(target.sigma.numpy())
        centered = target.centered

        def f(x):
            mu, u, local = x[0], x[1], x[2:]
            tau = jnp.exp(u)
            prior = (
                log_normal(mu, 0.0, 5.0)
                + math.log(2 / (math.pi * 5.0))
                - jnp.log1p((tau / 5.0) ** 2)
                + u
            )
            if centered:
                theta, hier = local, log_normal(local, mu, tau).sum()
            else:
                theta, hier = mu + tau * local, log_normal(local, 0.0, 1.0).sum()
            return prior + hier + log_normal(y, theta, sigma).sum()

        return f
    if name == "local_level":
        from interpolants.targets.state_space import PRIOR_MEAN, PRIOR_SD

        y = jnp.asarray(target.y.double().numpy())

        def f(x):
            uw, uv, s = x[0], x[1], x[2:]
            prior = log_normal(uw, PRIOR_MEAN, PRIOR_SD) + log_normal(uv, PRIOR_MEAN, PRIOR_SD)
            walk = log_normal(s[1:], s[:-1], jnp.exp(uw)).sum()
            return prior + log_normal(s[0], 0.0, 1.0) + walk + log_normal(y, s, jnp.exp(uv)).sum()

        return f
    if name == "funnel":
        scale, d = target.scale, target.dim

        def f(x):
            x0 = x[0]
            lx0 = -0.5 * (x0 / scale) ** 2 - math.log(scale) - 0.5 * log_2pi
            rest = -0.5 * (d - 1) * (x0 + log_2pi) - 0.5 * jnp.exp(-x0) * (x[1:] ** 2).sum()
            return lx0 + rest

        return f
    if name == "many_well":

        def f(x):
            a, b = x[0::2], x[1::2]
            return (-(a**4) + 6 * a**2 + 0.5 * a - 0.5 * b**2).sum()

        return f
    if name == "radial_velocity":
        return _jax_radial_velocity(target, jax, jnp, log_normal)
    raise NotImplementedError(f"no JAX transcription of {name}")


def _jax_radial_velocity(target: Any, jax: Any, jnp: Any, log_normal: Callable) -> Callable:
    if target.prior.jitter:
        raise NotImplementedError("radial_velocity with jitter")
    c = target.prior.prior
    time_, rv, err = (jnp.asarray(v.numpy()) for v in target.data)
    t_ref, lo, hi = target.t_ref, math.log(c["P_min"]), math.log(c["P_max"])

    def polar(w0, w1):
        r2 = w0**2 + w1**2
        nonzero = r2 > 0
        r = jnp.sqrt(jnp.where(nonzero, r2, 1.0))
        cos = jnp.where(nonzero, w0 / r, 1.0)
        sin = jnp.where(nonzero, w1 / r, 0.0)
        return jnp.where(nonzero, r, 0.0), cos, sin

    def tanh_over_r(r2):
        small = r2 < 1e-6
        r = jnp.sqrt(jnp.where(small, 1.0, r2))
        return jnp.where(small, 1 - r2 / 3 + 2 * r2**2 / 15, jnp.tanh(r) / r)

    def log_cosh_sq(r2):
        small = r2 < 1e-6
        r = jnp.sqrt(jnp.where(small, 1.0, r2))
        return jnp.where(small, r2 / 2 - r2**2 / 12, r + jnp.log1p(jnp.exp(-2 * r)) - math.log(2))

    def kepler(M, e):  # as solve_kepler: 12 detached Newton steps, one more with the gradient
        M = jnp.remainder(M + math.pi, 2 * math.pi) - math.pi
        Md, ed = jax.lax.stop_gradient(M), jax.lax.stop_gradient(e)
        E = Md + 0.85 * ed * jnp.sign(jnp.sin(Md))
        E = jax.lax.fori_loop(
            0, 12, lambda _, E: E - (E - ed * jnp.sin(E) - Md) / (1 - ed * jnp.cos(E)), E
        )
        E = jax.lax.stop_gradient(E)
        return E - (E - e * jnp.sin(E) - M) / (1 - e * jnp.cos(E))

    def f(x):
        r2 = x[3] ** 2 + x[4] ** 2
        lp = jax.nn.log_sigmoid(x[0]) + jax.nn.log_sigmoid(-x[0])
        lp = lp - (x[1] ** 2 + x[2] ** 2) / (2 * c["K_scale"] ** 2)
        lp = lp - math.log(2 * math.pi * c["K_scale"] ** 2)
        lp = lp - math.log(math.pi) - 2 * log_cosh_sq(r2) + jnp.log(tanh_over_r(r2))
        lp = lp + log_normal(x[5], 0.0, c["gamma_scale"])
        P = jnp.exp(lo + (hi - lo) * jax.nn.sigmoid(x[0]))
        K, cos_l, sin_l = polar(x[1], x[2])
        e = c["e_max"] * tanh_over_r(r2) ** 2 * r2
        _, cos_w, sin_w = polar(x[3], x[4])
        drift = 2 * math.pi * (time_ - t_ref) / P
        M = drift + jnp.arctan2(sin_l, cos_l) - jnp.arctan2(sin_w, cos_w)
        E = kepler(M, e)
        nu = jnp.arctan2(jnp.sqrt(1 - e**2) * jnp.sin(E), jnp.cos(E) - e)
        theta = nu - M + drift
        model = x[5] + x[1] * jnp.cos(theta) - x[2] * jnp.sin(theta) + K * e * cos_w
        var = err**2
        return lp - 0.5 * ((rv - model) ** 2 / var + jnp.log(2 * math.pi * var)).sum()

    return f


def check_jax_density(target: Any, f: Callable, points: int = 64) -> tuple[float, float]:
    """Largest scaled differences (value, gradient) between the JAX and torch densities at
    draws of the base, of the base widened twice, and a few near the posterior (our HMC's
    starting region); raises AssertionError above 1e-8 (values) or 1e-6 (gradients)."""
    import jax

    gen = torch.Generator().manual_seed(123)
    x = target.base.sample(points, gen).double()
    x = torch.cat([x, x.mean(0) + 2 * (x - x.mean(0))])
    lp, grad = target.log_prob_and_grad(x)
    jl = np.asarray(jax.vmap(f)(x.numpy()))
    jg = np.asarray(jax.vmap(jax.grad(f))(x.numpy()))
    ok = np.isfinite(lp.numpy())
    dv = np.abs(jl[ok] - lp.numpy()[ok]) / (1 + np.abs(lp.numpy()[ok]))
    dg = np.abs(jg[ok] - grad.numpy()[ok]) / (1 + np.abs(grad.numpy()[ok]))
    worst_v, worst_g = float(dv.max()), float(dg.max())
    assert worst_v <= 1e-8, f"{target.name}: JAX log density differs by {worst_v:.2e}"
    assert worst_g <= 1e-6, f"{target.name}: JAX gradient differs by {worst_g:.2e}"
    return worst_v, worst_g


# --- runners ---------------------------------------------------------------------------------


def run_ours(target: Any, method: str, n: int, seed: int, **options: Any) -> dict[str, Any]:
    start, cpu = time.perf_counter(), time.process_time()
    r = si.sample(target, method, n=n, seed=seed, **options)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    x = r.samples.double().cpu().numpy()
    log_w = None if r.log_weights is None else r.log_weights.double().cpu().numpy()
    out = {
        "evaluations": int(r.evaluations),
        "wall": wall,
        "cpu": cpu,
        "log_Z": r.log_Z,
        "log_Z_se": r.log_Z_stderr,
        "settings": {"n": n, **options},
    }
    out.update(moment_metrics(target, x, log_w))
    return out


def run_ais(target: Any, budget: int, n: int, seed: int) -> dict[str, Any]:
    """Our AIS at about ``budget`` evaluations: steps = budget / n - 3 first; its bias check
    (the reverse run) spends more, so a run over 1.2 budget is repeated once with its steps
    scaled by budget / spent, and the repeat is the row."""
    steps = max(1, round(budget / n) - 3)
    res = run_ours(target, "ais", n, seed, steps=steps)
    if res["evaluations"] > 1.2 * budget:
        steps = max(1, round(steps * budget / res["evaluations"]))
        res = run_ours(target, "ais", n, seed, steps=steps)
    return res


def run_pocomc(
    target: Any, budget: int, seed: int, quick: bool, timeout: float = math.inf
) -> dict[str, Any]:
    import pocomc

    prior, like = BasePrior(target.base, target.dim, seed), Counted(target, timeout)
    # no cap on its calls: a rule of thumb, measured once on eight_schools (--quick): about
    # 9 dim calls per active walker over the run, plus the evidence draws and 4 n_active
    # prior draws; n_active from that (64..1024), n_effective = 2 n_active as its defaults
    n_evidence = min(4096, max(256, budget // 20))
    n_active = int(np.clip((budget - n_evidence) / (9 * target.dim + 4), 64, 1024))
    settings = {
        "n_active": n_active,
        "n_effective": 2 * n_active,
        "n_total": 2 * n_active,
        "n_evidence": n_evidence,
        "rule_of_thumb_calls": budget,
    }
    start, cpu = time.perf_counter(), time.process_time()
    sampler = pocomc.Sampler(
        prior,
        like,
        n_dim=target.dim,
        vectorize=True,
        random_state=seed,
        n_active=n_active,
        n_effective=2 * n_active,
        pytorch_threads=1,
    )
    sampler.run(n_total=2 * n_active, n_evidence=n_evidence, progress=False)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    log_z, log_z_se = sampler.evidence()
    x, w, _, _ = sampler.posterior()
    out = {
        "evaluations": like.calls,
        "wall": wall,
        "cpu": cpu,
        "log_Z": float(log_z),
        "log_Z_se": None if log_z_se is None else float(log_z_se),
        "settings": settings,
    }
    out.update(moment_metrics(target, np.asarray(x), np.log(np.asarray(w))))
    return out


def calls_within(target: Any, prior: BasePrior, seconds: float, points: int = 50) -> int:
    """About how many one-point likelihood calls (dynesty's way) fit in ``seconds``: timed
    on ``points`` prior draws, not counted."""
    like, x = Counted(target), prior.rvs(points)
    start = time.perf_counter()
    for xi in x:
        like(xi)
    return int(seconds * points / max(time.perf_counter() - start, 1e-9))


def run_dynesty(
    target: Any, budget: int, seed: int, quick: bool, timeout: float = math.inf
) -> dict[str, Any]:
    import dynesty

    prior, like = BasePrior(target.base, target.dim, seed), Counted(target)
    nlive = 100 if quick else 500
    # dynesty has no time limit: maxcall is lowered to the calls the likelihood alone makes
    # in ``timeout`` (its own bookkeeping comes on top)
    maxcall = budget if math.isinf(timeout) else min(budget, calls_within(target, prior, timeout))
    start, cpu = time.perf_counter(), time.process_time()
    sampler = dynesty.NestedSampler(
        like, prior.transform, target.dim, nlive=nlive, rstate=np.random.default_rng(seed)
    )
    sampler.run_nested(maxcall=maxcall, print_progress=False)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    res = sampler.results
    capped = like.calls >= maxcall
    out = {
        "evaluations": like.calls,
        "wall": wall,
        "cpu": cpu,
        "log_Z": float(res.logz[-1]),
        "log_Z_se": float(res.logzerr[-1]),
        "settings": {
            "nlive": nlive,
            "maxcall": maxcall,
            "budget": budget,
            "sample": "auto",
            "stopped_by_budget": bool(capped),
        },
    }
    out.update(moment_metrics(target, np.asarray(res.samples), np.asarray(res.logwt)))
    if capped:
        why = "maxcall" if maxcall == budget else f"maxcall {maxcall:,} (timeout {timeout:.0f} s)"
        out["note"] = (f"stopped at {why}; " + out["note"]).strip("; ")
    return out


def run_nautilus(
    target: Any, budget: int, seed: int, quick: bool, timeout: float = math.inf
) -> dict[str, Any]:
    import nautilus

    prior, like = BasePrior(target.base, target.dim, seed), Counted(target)
    n_live = 500 if quick else 2000
    start, cpu = time.perf_counter(), time.process_time()
    sampler = nautilus.Sampler(
        prior.transform, like, n_dim=target.dim, n_live=n_live, vectorized=True, seed=seed
    )
    finished = sampler.run(n_like_max=budget, timeout=timeout, verbose=False)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    x, log_w, _ = sampler.posterior()
    w = np.exp(log_w - log_w.max())
    ess = w.sum() ** 2 / (w**2).sum()
    out = {
        "evaluations": like.calls,
        "wall": wall,
        "cpu": cpu,
        "log_Z": float(sampler.log_z),
        "log_Z_se": math.sqrt(max(1 / ess - 1 / len(w), 0.0)),
        "se_is_ours": True,
        "settings": {
            "n_live": n_live,
            "n_like_max": budget,
            "stopped_early": not finished,
            "timeout_s": timeout,
        },
    }
    out.update(moment_metrics(target, np.asarray(x), np.asarray(log_w)))
    if not finished:
        why = "n_like_max" if like.calls >= budget else f"timeout {timeout:.0f} s"
        out["note"] = (f"stopped at {why}; " + out["note"]).strip("; ")
    return out


def run_nuts(target: Any, budget: int, seed: int, quick: bool) -> dict[str, Any]:
    import jax

    jax.config.update("jax_enable_x64", True)
    from numpyro.infer import MCMC, NUTS

    f = jax_log_density(target)
    check_jax_density(target, f)
    chains, warmup, chunk = 4, (100 if quick else 200), (50 if quick else 100)
    init = target.base.sample(chains, torch.Generator().manual_seed(seed)).double().numpy()
    start, cpu = time.perf_counter(), time.process_time()
    mcmc = MCMC(
        NUTS(potential_fn=lambda x: -f(x)),
        num_warmup=warmup,
        num_samples=chunk,
        num_chains=chains,
        chain_method="sequential",
        progress_bar=False,
    )
    key = jax.random.PRNGKey(seed)
    mcmc.warmup(key, init_params=init, extra_fields=("num_steps",), collect_warmup=True)
    used = warm = int(np.asarray(mcmc.get_extra_fields()["num_steps"]).sum())
    draws: list[np.ndarray] = []
    while used < budget or not draws:
        mcmc.run(mcmc.post_warmup_state.rng_key, extra_fields=("num_steps",))
        used += int(np.asarray(mcmc.get_extra_fields()["num_steps"]).sum())
        draws.append(np.asarray(mcmc.get_samples(group_by_chain=True)))
        mcmc.post_warmup_state = mcmc.last_state
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    x = np.concatenate(draws, 1).reshape(-1, target.dim)
    out = {
        "evaluations": used,
        "wall": wall,
        "cpu": cpu,
        "log_Z": None,
        "log_Z_se": None,
        "settings": {"chains": chains, "warmup": warmup, "draws": x.shape[0]},
    }
    out.update(moment_metrics(target, x, None))
    out["note"] = (f"warm-up {warm:,}; " + out["note"]).strip("; ")
    return out


PEER_RUNNERS: dict[str, Callable[..., dict[str, Any]]] = {
    "pocomc": run_pocomc,
    "dynesty": run_dynesty,
    "nautilus": run_nautilus,
    "nuts": run_nuts,
}
TIMED = ("pocomc", "dynesty", "nautilus")  # the runners that take --timeout


# --- the table -------------------------------------------------------------------------------


def _fmt(v: Any, spec: str) -> str:
    return "—" if v is None else format(v, spec)


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| target | method | seed | log Z err | se | abs(err)/se | max mean err / sd "
        "| evaluations | wall s | cpu s | ratio | notes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(
                f"| {r['target']} | {r['method']} | {r['seed']} | failed: "
                f"{r['error']} | | | | | | | | |"
            )
            continue
        se = _fmt(r.get("log_Z_se"), ".3f") + ("*" if r.get("se_is_ours") else "")
        z = None
        if r.get("log_Z_err") is not None and r.get("log_Z_se"):
            z = abs(r["log_Z_err"]) / r["log_Z_se"]
        lines.append(
            f"| {r['target']} | {r['method']} | {r['seed']} | {_fmt(r.get('log_Z_err'), '+.3f')} "
            f"| {se} | {_fmt(z, '.1f')} | {_fmt(r.get('mean_err_sd'), '.2f')} "
            f"| {r['evaluations']:,} | {r['wall']:.1f} | {r['cpu']:.1f} "
            f"| {_fmt(r.get('ratio'), '.2f')} "
            f"| {r.get('note', '')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--targets", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--seeds", type=int, default=1, help="seeds 0..K-1 (default 1)")
    p.add_argument("--n", type=int, default=1000, help="our walkers / draws (default 1000)")
    p.add_argument("--quick", action="store_true", help="smoke run: n = 200, small budgets")
    p.add_argument(
        "--timeout",
        type=float,
        default=900.0,
        help="time limit per nautilus, pocoMC or dynesty run, seconds (default 900): nautilus "
        "stops and reports, pocoMC (no limit of its own) fails with a message, dynesty's "
        "maxcall is lowered to the likelihood calls that fit in it",
    )
    p.add_argument(
        "--out",
        default=None,
        help="JSON path (default benchmarks/results/peers.json; with --quick a temporary file)",
    )
    args = p.parse_args(argv)
    n = 200 if args.quick else args.n
    warnings.simplefilter("ignore")

    methods = [m for m in METHODS if m in args.methods]
    for m in list(methods):
        reason = missing_peer(m)
        if reason:
            print(reason, file=sys.stderr)
            methods.remove(m)

    if args.out:
        out = Path(args.out)
    elif args.quick:
        out = Path(tempfile.mkdtemp(prefix="peers_quick_")) / "peers.json"
    else:
        out = Path(__file__).resolve().parent / "results" / "peers.json"
    rows: list[dict[str, Any]] = []
    checks: dict[str, Any] = {}
    meta = {
        "argv": sys.argv[1:],
        "n": n,
        "seeds": args.seeds,
        "quick": args.quick,
        "torch": torch.__version__,
        "checks": checks,
        "versions": {m: _version(PEER_PACKAGES[m]) for m in PEER_RUNNERS},
    }
    for key in args.targets:
        name, options = TARGETS[key]
        target = si.targets.get(name, dtype=torch.float64, **options)
        ref = reference_log_z(target)
        if any(m in PEER_RUNNERS and m != "nuts" for m in methods):
            err = BasePrior(target.base, target.dim, 0).check()
            assert err < 1e-8, f"{key}: unit-cube map of the base is off by {err:.2e}"
            checks.setdefault(key, {})["unit_cube_map"] = err
        for seed in range(args.seeds):
            ours: dict[str, dict[str, Any]] = {}
            need_smc = any(m in LOG_Z_METHODS for m in methods)
            need_hmc = any(m in MOMENT_METHODS for m in methods)
            if need_smc:  # the log Z budget, run even when smc is not shown
                ours["smc"] = run_ours(target, "smc", n, seed)
            if need_hmc:
                ours["hmc"] = run_ours(target, "hmc", n, seed)
            for method in methods:
                column = "smc" if method in LOG_Z_METHODS else "hmc"
                budget = ours[column]["evaluations"]
                print(f"{key} {method} seed {seed} (budget {budget:,})", file=sys.stderr)
                try:
                    if method in ("smc", "hmc"):
                        res = ours[method]
                    elif method == "ais":
                        res = run_ais(target, budget, n, seed)
                    elif method in TIMED:
                        runner = PEER_RUNNERS[method]
                        res = runner(target, budget, seed, args.quick, args.timeout)
                    else:
                        res = PEER_RUNNERS[method](target, budget, seed, args.quick)
                except Exception as exc:  # a peer that fails is reported, not fatal
                    msg = f"{type(exc).__name__}: {exc}".replace("|", "/").splitlines()[0][:160]
                    print(f"  {method} failed: {msg}", file=sys.stderr)
                    rows.append({"target": key, "method": method, "seed": seed, "error": msg})
                    continue
                row = {"target": key, "method": method, "seed": seed, **res}
                row["log_Z_ref"] = ref if method in LOG_Z_METHODS else None
                row["log_Z_err"] = None if res["log_Z"] is None else res["log_Z"] - ref
                row["ratio"] = res["wall"] / ours[column]["wall"]
                rows.append(row)
                write_json(out, meta, rows)  # after every run: a later failure keeps these
                print(
                    f"  done in {res['wall']:.1f} s, {res['evaluations']:,} evaluations",
                    file=sys.stderr,
                )

    print(table(rows))
    write_json(out, meta, rows)
    print(f"\nwrote {out}", file=sys.stderr)
    return 0


def write_json(path: Path, meta: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1, default=_json) + "\n")


def _version(package: str) -> str | None:
    if importlib.util.find_spec(package) is None:
        return None
    from importlib.metadata import PackageNotFoundError, version

    dist = {"nautilus": "nautilus-sampler"}.get(package, package)
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def _json(v: Any) -> Any:
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, torch.Tensor):
        return v.tolist()
    return str(v)


if __name__ == "__main__":
    sys.exit(main())
