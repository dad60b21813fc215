"""Couplings that condition (arXiv 2310.03725) and labels with classifier-free guidance, on
closed forms: Gaussian data, in-painted by the exact field of the coupling (derived below) and
by a trained one, follow the exact Gaussian conditional."""

import math

import pytest
import torch
from torch.utils.data import TensorDataset

import interpolants as si
from interpolants.couplings import (
    Blur,
    Corruption,
    Independent,
    Inpainting,
    Paired,
    SuperResolution,
    centre_mask,
    random_mask,
)
from interpolants.data import DataBatch

D = torch.float64
MU = torch.tensor([0.5, -1.0, 2.0], dtype=D)
CHOL = torch.tensor([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [-0.5, 0.7, 0.5]], dtype=D)
SIGMA = CHOL @ CHOL.T
VISIBLE = torch.tensor([True, False, False])


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def gaussian_data(n, seed=0):
    return MU + torch.randn(n, 3, generator=gen(seed), dtype=D) @ CHOL.T


class ExactLinearCoupling:
    r"""The exact fields of a linear-Gaussian coupling of Gaussian data x1 ~ N(mu, Sigma):
    x0 = A x1 + B zeta, observation y = M x1 (in-painting: A = diag(xi), B = sigma diag(1 - xi),
    M = the rows of the visible entries; super-resolution: M the block means, A = U M with U the
    up-sampling, B = sigma I).

    With u = (x1 - mu, zeta, z) ~ N(0, diag(Sigma, I, I)), every quantity is linear in u:
    x_t = alpha x0 + beta x1 + gamma z = [alpha A + beta, alpha B, gamma] u + (alpha A + beta) mu,
    dx_t/dt = [alpha' A + beta', alpha' B, gamma'] u + (alpha' A + beta') mu, y = [M, 0, 0] u +
    M mu. So b(t, x, y) = E[dx_t/dt | x_t = x, y] is the Gaussian regression m_D + K_DW
    K_WW^+ (w - m_W) with w = (x, y), and the score s = -E[z | x_t = x, y] / gamma. K_WW is
    singular where entries of x_t are fixed by y (the kept entries when gamma = 0): the
    pseudo-inverse solves the consistent system.
    """

    def __init__(self, I, mu, sigma, A, B, M, read_y, shape):
        self.I, self.mu, self.A, self.B, self.M = I, mu, A, B, M
        self.read_y, self.shape = read_y, shape
        d = len(mu)
        self.U = torch.block_diag(sigma, torch.eye(2 * d, dtype=D))

    def _maps(self, t):
        I, A, B, M, mu = self.I, self.A, self.B, self.M, self.mu
        n, d = len(t), len(mu)
        eye = torch.eye(d, dtype=D)

        def row(p, q, r):  # [p A + q, p B, r] per row of t
            p, q, r = p[:, None, None], q[:, None, None], r[:, None, None]
            return torch.cat([p * A + q * eye, p * B, r * eye.expand(n, d, d)], dim=2)

        Lx = row(I.alpha(t), I.beta(t), I.gamma(t))
        LD = row(I.dalpha(t), I.dbeta(t), I.dgamma(t))
        LY = torch.cat([M, torch.zeros(len(M), 2 * d, dtype=D)], 1).expand(n, -1, -1)
        LZ = torch.cat([torch.zeros(d, 2 * d, dtype=D), eye], 1).expand(n, -1, -1)
        LW = torch.cat([Lx, LY], 1)
        mW = torch.cat([Lx[:, :, :d] @ mu, (M @ mu).expand(n, -1)], 1)
        return LW, mW, LD, LD[:, :, :d] @ mu, LZ

    def _regress(self, t, x, cond, which):
        t = t.to(D).expand(len(x))
        LW, mW, LD, mD, LZ = self._maps(t)
        K = LW @ self.U @ LW.transpose(1, 2)
        w = torch.cat([x.flatten(1), self.read_y(cond)], 1) - mW
        L, m = (LD, mD) if which == "velocity" else (LZ, torch.zeros_like(mD))
        C = L @ self.U @ LW.transpose(1, 2)
        out = m + (C @ torch.linalg.pinv(K, hermitian=True) @ w[:, :, None])[:, :, 0]
        return out.reshape(len(x), *self.shape)

    def velocity(self, t, x, cond):
        return self._regress(t, x, cond, "velocity")

    def score(self, t, x, cond):  # singular (0 / 0) where gamma = 0: evaluated just inside
        t = t.to(D).clamp(1e-3, 1 - 1e-3)
        gamma = self.I.gamma(t).expand(len(x)).reshape(-1, *[1] * len(self.shape))
        return -self._regress(t, x, cond, "z") / gamma


def ExactInpainting(I, noise=1.0, visible=VISIBLE):
    """The exact fields of in-painting N(MU, SIGMA) with the fixed mask ``visible``; the
    network's cond is (xi, xi x1), so y = the visible entries of its second half."""
    xi = visible.to(D)
    P = torch.eye(len(MU), dtype=D)[visible]
    read_y = lambda cond: cond[:, len(MU) :][:, visible]  # noqa: E731
    return ExactLinearCoupling(
        I, MU, SIGMA, torch.diag(xi), noise * torch.diag(1 - xi), P, read_y, (len(MU),)
    )


def conditional(y_visible, visible=VISIBLE):
    """The exact law of the hidden entries given the visible ones."""
    h, v = ~visible, visible
    gain = SIGMA[h][:, v] @ torch.linalg.inv(SIGMA[v][:, v])
    mean = MU[h] + gain @ (y_visible - MU[v])
    cov = SIGMA[h][:, h] - gain @ SIGMA[v][:, h]
    return mean, cov


def assert_gaussian(x, mean, cov, z=4.5, atol=0.0):
    """Sample mean and covariance within z standard errors (plus ``atol``, for directions of
    zero variance) of (mean, cov)."""
    n = len(x)
    se_mean = torch.sqrt(torch.diagonal(cov) / n)
    assert torch.all((x.mean(0) - mean).abs() < z * se_mean + atol), (x.mean(0), mean)
    var = torch.diagonal(cov)
    # Var of a sample covariance entry: (C_ii C_jj + C_ij^2) / n for Gaussian samples
    se_cov = torch.sqrt((var[:, None] * var[None, :] + cov**2) / n)
    assert torch.all((torch.cov(x.T).reshape(cov.shape) - cov).abs() < z * se_cov + atol), (
        torch.cov(x.T),
        cov,
    )


def exact_model(I, noise=1.0, with_score=False):
    exact = ExactInpainting(I, noise)
    coupling = Inpainting(mask=VISIBLE, noise=noise)
    score = exact.score if with_score else None
    return si.GenerativeModel(I, exact.velocity, score=score, base=coupling), coupling


@pytest.mark.parametrize("path,gamma", [("linear", "zero"), ("trig", "brownian")])
def test_the_exact_inpainting_velocity_minimises_the_objective(path, gamma):
    """Zero loss gap: L(b) = E|b|^2 - 2 E[dx_t . b] equals its minimum -E|b|^2 at the exact b,
    the residual dx_t - b is orthogonal to functions of (x_t, cond), and a perturbation delta
    raises the loss by E|delta|^2."""
    I = si.Interpolant(path, gamma=gamma)
    exact = ExactInpainting(I)
    coupling = Inpainting(mask=VISIBLE)
    x1 = gaussian_data(40_000, seed=1)
    pair = coupling.sample(DataBatch(x1), gen(2))
    t = torch.rand(len(x1), generator=gen(3), dtype=D).clamp(1e-3, 1 - 1e-3)
    s = I.sample(pair.x0, pair.x1, t, generator=gen(4))
    b = exact.velocity(t, s.xt, pair.cond)
    gap = (2 * b * b - 2 * s.dxt * b).sum(1)  # L(b) + E|b|^2, per row
    se = gap.std() / math.sqrt(len(gap))
    assert abs(float(gap.mean())) < 4 * float(se), (float(gap.mean()), float(se))
    residual = s.dxt - b
    for feature in (s.xt, pair.cond[:, 3:][:, VISIBLE]):
        inner = residual[:, :, None] * feature[:, None, :]
        mean, err = inner.mean(0), inner.std(0) / math.sqrt(len(x1))
        assert torch.all(mean.abs() < 4.5 * err + 1e-12), mean / err
    delta = 0.1 * s.xt
    loss = lambda v: float((v * v - 2 * s.dxt * v).sum(1).mean())  # noqa: E731
    raised = loss(b + delta) - loss(b)
    assert raised == pytest.approx(float((delta**2).sum(1).mean()), rel=0.05)
    # the visible entries: the velocity is exact there (no noise for gamma = 0)
    if gamma == "zero":
        assert torch.allclose(residual[:, VISIBLE], torch.zeros(1, dtype=D), atol=1e-8)


@pytest.mark.parametrize(
    "path,gamma,diffusion",
    [("linear", "zero", 0.0), ("trig", "brownian", 0.0), ("trig", "brownian", 0.5)],
)
def test_the_exact_inpainting_model_samples_the_gaussian_conditional(path, gamma, diffusion):
    I = si.Interpolant(path, gamma=gamma)
    model, coupling = exact_model(I, with_score=diffusion > 0)
    x1 = gaussian_data(1, seed=5)
    y = coupling.observe(x1)
    assert torch.isnan(y[0, ~VISIBLE]).all() and torch.equal(y[0, VISIBLE], x1[0, VISIBLE])
    n = 4000
    x = model.sample(n, steps=60, cond=y, diffusion=diffusion, generator=gen(6))
    assert x.shape == (n, 3) and x.dtype == D
    assert torch.equal(x[:, VISIBLE], x1[:, VISIBLE].expand(n, -1))  # the visible kept exactly
    mean, cov = conditional(x1[0, VISIBLE])
    assert_gaussian(x[:, ~VISIBLE], mean, cov)


SR_MU = torch.tensor([0.2, 0.4, -0.3, 0.1], dtype=D)
SR_CHOL = torch.tensor(
    [[0.5, 0, 0, 0], [0.3, 0.4, 0, 0], [-0.2, 0.1, 0.6, 0], [0.1, 0.2, -0.1, 0.3]], dtype=D
)
SR_SIGMA = SR_CHOL @ SR_CHOL.T


@pytest.mark.parametrize("path", ["linear", "trig"])
def test_the_exact_super_resolution_model_samples_the_gaussian_conditional(path):
    """A 2 x 2 image of Gaussian pixels seen through its mean (factor 2): x1 | y is the
    Gaussian conditional on the hyperplane mean(x1) = y (rank 3)."""
    I = si.Interpolant(path)
    noise = 0.5
    M = torch.full((1, 4), 0.25, dtype=D)  # the block mean
    A = torch.ones(4, 1, dtype=D) @ M  # U M: the mean up-sampled
    read_y = lambda cond: cond.flatten(1)[:, :1]  # noqa: E731  (U(y): four equal pixels)
    exact = ExactLinearCoupling(I, SR_MU, SR_SIGMA, A, noise * torch.eye(4, dtype=D), M,
                                read_y, (1, 2, 2))  # fmt: skip
    coupling = SuperResolution(2, noise=noise)
    model = si.GenerativeModel(I, exact.velocity, base=coupling)
    x1 = (SR_MU + SR_CHOL @ torch.randn(4, generator=gen(20), dtype=D)).reshape(1, 1, 2, 2)
    y = coupling.observe(x1)
    assert y.shape == (1, 1, 1, 1)
    x = model.sample(4000, steps=50, cond=y, generator=gen(21)).flatten(1)
    gain = SR_SIGMA @ M.T / (M @ SR_SIGMA @ M.T)
    mean = SR_MU + (gain * (y.flatten() - M @ SR_MU)).flatten()
    cov = SR_SIGMA - gain @ M @ SR_SIGMA
    assert (x.mean(1) - y.flatten()).abs().max() < 0.02  # on the hyperplane of the observation
    assert_gaussian(x, mean, cov, atol=1e-3)


def test_a_wrong_conditional_is_caught_by_the_moment_check():
    """The check above can fail: the unconditional model's completions are far off."""
    model, coupling = exact_model(si.Interpolant("linear"))
    x1 = gaussian_data(1, seed=5)
    far = x1.clone()
    far[0, 0] += 3.0  # a different observation
    x = model.sample(2000, cond=coupling.observe(far), generator=gen(6))
    mean, cov = conditional(x1[0, VISIBLE])
    with pytest.raises(AssertionError):
        assert_gaussian(x[:, ~VISIBLE], mean, cov)


def test_the_exact_inpainting_log_prob_is_the_conditional_density():
    model, coupling = exact_model(si.Interpolant("linear"))
    x1 = gaussian_data(5, seed=7)
    y = coupling.observe(x1)
    logp = model.log_prob(x1, cond=y, steps=200)
    want = []
    for row in x1:
        mean, cov = conditional(row[VISIBLE])
        law = torch.distributions.MultivariateNormal(mean, cov)
        want.append(law.log_prob(row[~VISIBLE]))
    assert torch.allclose(logp, torch.stack(want), atol=2e-3), (logp, want)
    # a stochastic interpolant's visible entries have no finite log-det: refused by name
    noisy, _ = exact_model(si.Interpolant("trig", gamma="brownian"))
    with pytest.raises(ValueError, match="deterministic interpolant"):
        noisy.log_prob(x1, cond=y)


def test_a_trained_inpainting_model_completes_from_the_conditional():
    """A short training on 3-D Gaussian data with a fixed mask: completions of four
    observations have the conditional means within 0.15 conditional sd and variances within
    30 %."""
    x = gaussian_data(20_000, seed=8).float()
    coupling = Inpainting(mask=VISIBLE)
    model = si.fit(x, base=coupling, steps=1500, batch_size=512, lr=2e-3, seed=0,
                   net_options={"width": 64, "depth": 2}, progress=False)  # fmt: skip
    rows = gaussian_data(4, seed=9)
    for row in rows:
        y = coupling.observe(row[None].float())
        out = model.sample(4000, cond=y, generator=gen(10)).double()
        assert torch.equal(out[:, VISIBLE], row[None, VISIBLE].float().double().expand(4000, -1))
        mean, cov = conditional(row[VISIBLE])
        sd = torch.sqrt(torch.diagonal(cov))
        assert torch.all((out[:, ~VISIBLE].mean(0) - mean).abs() < 0.15 * sd), (out.mean(0), mean)
        ratio = out[:, ~VISIBLE].var(0) / torch.diagonal(cov)
        assert torch.all((ratio - 1).abs() < 0.3), ratio


def test_guidance_mixes_the_conditional_and_unconditional_velocities():
    K = 3

    def velocity(t, x, cond):  # v(c) = c for a label c, 0 for the null label K
        c = torch.where(cond == K, torch.zeros_like(cond), cond).to(x.dtype)
        return c[:, None].expand_as(x).clone()

    base = Independent(classes=K, label_dropout=0.1)
    model = si.GenerativeModel(si.Interpolant("linear"), velocity, base=base, event_shape=(2,))
    labels = torch.tensor([0, 1, 2, 2])
    x0 = si.StandardNormal((2,)).sample(4, gen(0))
    plain = model.sample(cond=labels, steps=4, solver="euler", generator=gen(0))
    assert torch.allclose(plain, x0 + labels[:, None].float())
    assert torch.equal(model.sample(cond=labels, guidance=0.0, generator=gen(0)),
                       model.sample(cond=labels, generator=gen(0)))  # fmt: skip
    for w in (1.0, 2.5):
        guided = model.sample(cond=labels, guidance=w, steps=4, solver="euler", generator=gen(0))
        assert torch.allclose(guided, x0 + (1 + w) * labels[:, None].float())
    unconditional = model.sample(4, steps=4, solver="euler", generator=gen(0))
    assert torch.allclose(unconditional, x0)  # no cond: the null label
    no_dropout = si.GenerativeModel(si.Interpolant("linear"), velocity, event_shape=(2,),
                                    base=Independent(classes=K))  # fmt: skip
    with pytest.raises(ValueError, match="guidance needs"):
        no_dropout.sample(cond=labels, guidance=1.0)
    with pytest.raises(ValueError, match="pass cond=labels"):
        no_dropout.sample(4)
    with pytest.raises(ValueError, match=r"cond must lie in \[0, 3\)"):
        no_dropout.sample(cond=torch.tensor([0, 3]))


def test_fit_on_labelled_data_learns_each_class():
    """Two Gaussian classes 4 apart: the conditional samples sit at their class means, the
    unconditional (null label) at the mixture's, and the model survives save/load."""
    g = gen(11)
    labels = torch.randint(2, (6000,), generator=g)
    x = torch.randn(6000, 2, generator=g) * 0.5 + 4.0 * labels[:, None] - 2.0
    model = si.fit((x, labels), steps=600, batch_size=256, seed=1, progress=False,
                   net_options={"width": 64, "depth": 2})  # fmt: skip
    assert model.classes == 2 and model.coupling.null_label == 2
    out = model.sample(cond=torch.tensor([0] * 2000 + [1] * 2000), generator=gen(12))
    assert torch.allclose(out[:2000].mean(0), torch.tensor([-2.0, -2.0]), atol=0.15)
    assert torch.allclose(out[2000:].mean(0), torch.tensor([2.0, 2.0]), atol=0.15)
    mixed = model.sample(4000, generator=gen(13))
    assert abs(float((mixed[:, 0] > 0).float().mean()) - 0.5) < 0.06
    sharper = model.sample(cond=torch.ones(2000, dtype=torch.long), guidance=2.0, generator=gen(12))
    assert float(sharper.mean(0).min()) > 1.7
    logp_right = model.log_prob(x[:50], cond=labels[:50])
    logp_wrong = model.log_prob(x[:50], cond=1 - labels[:50])
    assert bool((logp_right > logp_wrong + 5).all())


def test_save_and_load_keep_the_conditioning(tmp_path):
    x = torch.randn(64, 1, 4, 4, generator=gen(0))
    cases = {
        "inpaint": Inpainting(centre_mask(2)),
        "fixed": Inpainting(mask=torch.rand(1, 4, 4, generator=gen(1)) > 0.5, noise=0.5),
        "sr": SuperResolution(2, noise=0.3),
        "blur": Blur(1.0),
        "corrupt": Corruption(lambda v: v.flip(-1), noise=0.2),
        "paired": Paired(torch.randn(64, 1, 4, 4, generator=gen(2)), noise=0.1),
        "baseline": SuperResolution(2, start="noise"),
    }
    for name, coupling in cases.items():
        model = si.fit(x, base=coupling, steps=2, batch_size=8, progress=False,
                       net_options={"width": 8})  # fmt: skip
        path = tmp_path / f"{name}.safetensors"
        model.save(path)
        loaded = si.load(path)
        assert type(loaded.coupling) is type(coupling) and loaded.coupling.spec().keys() == (
            coupling.spec().keys()
        )
        y = coupling.observe(x[:3]) if name != "paired" else coupling.x0_data[:3]
        a = model.sample(cond=y, steps=3, generator=gen(3))
        b = loaded.sample(cond=y, steps=3, generator=gen(3))
        assert torch.equal(a, b) and a.shape == (3, 1, 4, 4)
        assert loaded.coupling.spec()["start"] == coupling.start


def test_coupling_laws_and_conditionings():
    x1 = torch.randn(5, 1, 4, 4, generator=gen(0))
    sr = SuperResolution(2, noise=0.3)
    y = sr.observe(x1)
    assert y.shape == (5, 1, 2, 2) and torch.allclose(y[:, 0, 0, 0], x1[:, 0, :2, :2].mean((1, 2)))
    source = sr.given(y)
    up = torch.nn.functional.interpolate(y, scale_factor=2)
    assert torch.equal(source.cond, up)
    draws = torch.stack([sr.given(y).sample(gen(s)) for s in range(400)])
    assert torch.allclose(draws.mean(0), up, atol=0.1)
    assert abs(float(draws.std(0).mean()) - 0.3) < 0.02
    noise = SuperResolution(2, start="noise").given(y)
    assert torch.equal(noise.cond, up) and float(noise.sample(gen(0)).std()) > 0.5
    paint = Inpainting(random_mask(0.5))
    obs = paint.observe(x1, gen(1))
    visible = ~torch.isnan(obs)
    assert torch.equal(visible[:, 0], visible[:, 0])  # one mask per pixel
    law = paint.given(obs)
    x0 = law.sample(gen(2))
    assert torch.equal(x0[visible], x1[visible])
    assert torch.equal(law.cond[:, :1], visible.to(x1.dtype))
    blurred = Blur(1.0).observe(x1)
    assert torch.allclose(blurred.mean((2, 3)), x1.mean((2, 3)), atol=0.3)
    pairs = Paired(torch.arange(8.0)[:, None] * torch.ones(8, 2))
    batch = DataBatch(torch.zeros(3, 2), None, torch.tensor([5, 0, 7]))
    assert torch.equal(pairs.sample(batch).x0[:, 0], torch.tensor([5.0, 0.0, 7.0]))


def test_bad_conditioning_is_refused_by_name():
    x = gaussian_data(200).float()
    model = si.fit(x, base=Inpainting(random_mask(0.5)), steps=2, batch_size=8, progress=False)
    with pytest.raises(ValueError, match="mark the hidden entries"):
        model.sample(cond=x[:2])
    with pytest.raises(ValueError, match="pass cond="):
        model.sample(3)
    with pytest.raises(ValueError, match="n=5 does not match"):
        model.sample(5, cond=Inpainting(random_mask(0.5)).observe(x[:2], gen(0)))
    with pytest.raises(TypeError, match="floating-point observations"):
        model.sample(cond=torch.ones(2, 3, dtype=torch.long))
    plain = si.fit(x, steps=2, batch_size=8, progress=False)
    with pytest.raises(ValueError, match="not conditioned"):
        plain.sample(2, cond=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="noise must be"):
        Inpainting(noise=-1.0)
    with pytest.raises(ValueError, match="start must be"):
        SuperResolution(start="gaussian")
    with pytest.raises(ValueError, match="divisible by factor"):
        SuperResolution(3).observe(torch.randn(2, 1, 4, 4))
    with pytest.raises(ValueError, match="fn must return"):
        Corruption(lambda v: v[:, :1]).observe(torch.randn(2, 3))
    with pytest.raises(ValueError, match="x0_data has 3 rows"):
        si.fit(x, base=Paired(x[:3]), steps=2, batch_size=8, progress=False)
    with pytest.raises(ValueError, match="label_dropout"):
        si.fit((x, torch.zeros(200, dtype=torch.long)), steps=2, label_dropout=1.5)
    with pytest.raises(ValueError, match="no labels"):
        si.fit(x, steps=2, classes=3, progress=False)
    with pytest.raises(ValueError, match="flow maps take no conditioning"):
        si.fit_flow_map(x, base=Inpainting(random_mask(0.5)), steps=2, batch_size=8)


def test_a_labelled_tensor_dataset_trains_conditionally_and_resumes(tmp_path):
    x = torch.randn(100, 2, generator=gen(0))
    labels = torch.arange(100) % 4
    data = TensorDataset(x, labels)
    out = tmp_path / "run"
    model = si.fit(data, steps=4, batch_size=8, out=out, checkpoint_every=2, progress=False,
                   on_end=lambda m, o: None)  # fmt: skip
    assert model.classes == 4
    again = si.fit(data, steps=4, batch_size=8, out=out, resume=True, progress=False,
                   on_end=lambda m, o: None)  # fmt: skip
    assert again.classes == 4
    assert si.load(out).classes == 4


def test_paired_rows_stay_paired_with_a_holdout(monkeypatch):
    """x1 = x0 + 100 row by row: the pairs a training batch sees keep that difference when a
    fraction of the rows is held out (the x0 rows are split with the data)."""
    import interpolants.couplings.observed as observed

    x0 = torch.arange(20.0).reshape(20, 1).repeat(1, 2)
    seen = []
    original = observed.Paired._observe_batch

    def spy(self, batch, generator):
        y = original(self, batch, generator)
        seen.append(float((batch.x1 - y - 100).abs().max()))
        return y

    monkeypatch.setattr(observed.Paired, "_observe_batch", spy)
    si.fit(x0 + 100, base=Paired(x0), steps=3, batch_size=8, holdout=0.3, progress=False)
    assert seen and max(seen) == 0.0


def test_a_saved_inpainting_model_keeps_its_mask_sampler(tmp_path):
    x = torch.rand(32, 1, 4, 4, generator=gen(0))
    for sampler in (random_mask(0.3), centre_mask(2)):
        model = si.fit(x, base=Inpainting(sampler), steps=2, batch_size=8, progress=False,
                       net_options={"width": 8})  # fmt: skip
        model.save(tmp_path / "m.safetensors")
        assert si.load(tmp_path / "m.safetensors").coupling.sampler == sampler
    fp = si.data.fingerprint
    assert fp(Inpainting(random_mask(0.3))) != fp(Inpainting(random_mask(0.5)))
