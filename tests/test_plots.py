"""Tests of the PNG plots (interpolants.app.plots, interpolants.app.sampler_plots): every plot a
reader gets has labelled axes with ticks, a title, and a labelled colour bar where colour shows
values.

Each figure is inspected when it is saved (``Figure.savefig`` is wrapped), then written to a PNG.
"""

from __future__ import annotations

import math

import matplotlib.figure
import pytest
import torch

from interpolants.app import plots, sampler_plots
from interpolants.samplers.info import FlowMCMCInfo, MCMCInfo
from interpolants.samplers.result import SampleResult


@pytest.fixture
def saved(monkeypatch):
    """The figures saved during a test, in order."""
    figures = []
    original = matplotlib.figure.Figure.savefig

    def savefig(self, *args, **kwargs):
        figures.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)
    return figures


def _colorbars(fig):
    """The colour bars of the mappables (images, contour sets) drawn on ``fig``'s axes."""
    bars = []
    for ax in fig.axes:
        for artist in [*ax.images, *ax.collections]:
            bar = getattr(artist, "colorbar", None)
            if bar is not None and bar not in bars:
                bars.append(bar)
    return bars


def _check_readable(fig, path):
    """Every visible data axes has x and y labels, ticks on both axes, and a title (its own or
    the figure's); every colour bar has a label; the PNG was written."""
    assert path.stat().st_size > 5_000
    bars = _colorbars(fig)
    bar_axes = [bar.ax for bar in bars]
    suptitle = fig._suptitle.get_text() if fig._suptitle is not None else ""
    data_axes = [ax for ax in fig.axes if ax.get_visible() and ax.axison and ax not in bar_axes]
    assert data_axes
    for ax in data_axes:
        assert ax.get_xlabel().strip() and ax.get_ylabel().strip(), (
            ax.get_xlabel(),
            ax.get_title(),
        )
        assert len(ax.get_xticks()) > 0 and len(ax.get_yticks()) > 0
        titles = [ax.get_title(loc=loc) for loc in ("left", "center", "right")]
        assert "".join([*titles, suptitle]).strip()
    for bar in bars:
        assert bar.ax.get_ylabel().strip() or bar.ax.get_xlabel().strip()
    return data_axes, bars


def test_samples_over_density_labels_axes_and_colour_bar(tmp_path, saved):
    x = torch.randn(300, 2)
    path = plots.samples_over_density(
        {"data": x, "model": x + 0.1}, tmp_path / "s.png", log_prob=lambda p: -p.square().sum(1)
    )
    axes, bars = _check_readable(saved[-1], path)
    assert [ax.get_xlabel() for ax in axes] == ["x[0]", "x[0]"]
    assert [ax.get_ylabel() for ax in axes] == ["x[1]", "x[1]"]
    assert len(bars) == 1 and "density" in bars[0].ax.get_ylabel()


def test_samples_over_density_says_which_coordinates_of_high_dimensional_samples(tmp_path, saved):
    x = torch.randn(200, 32)
    path = plots.samples_over_density({"walkers": x}, tmp_path / "s.png", coords=(2, 5))
    axes, bars = _check_readable(saved[-1], path)
    assert not bars
    assert (axes[0].get_xlabel(), axes[0].get_ylabel()) == ("x[2]", "x[5]")
    assert "x[2] vs x[5] of 32" in saved[-1]._suptitle.get_text()
    named = plots.samples_over_density(
        {"walkers": x[:, :2]}, tmp_path / "n.png", labels=("period", "amplitude")
    )
    axes, _ = _check_readable(saved[-1], named)
    assert (axes[0].get_xlabel(), axes[0].get_ylabel()) == ("period", "amplitude")


def test_density_heatmap_has_labelled_colour_bar(tmp_path, saved):
    def log_prob(p):
        return -p.square().sum(1) / 2 - math.log(2 * math.pi)

    path = plots.density_heatmap(log_prob, tmp_path / "d.png", resolution=20)
    _, bars = _check_readable(saved[-1], path)
    assert len(bars) == 1 and bars[0].ax.get_ylabel() == "model density p(x)"
    path = plots.density_heatmap(log_prob, tmp_path / "l.png", resolution=20, log=True)
    _, bars = _check_readable(saved[-1], path)
    assert "log density" in bars[0].ax.get_ylabel() and "nats" in bars[0].ax.get_ylabel()


def test_curves_names_y_axis_with_and_without_ylabel(tmp_path, saved):
    series = {"loss": ([0, 10, 20], [0.5, -1.0, -1.2])}
    path = plots.curves(series, tmp_path / "plain.png", xlabel="step")
    (ax,), _ = _check_readable(saved[-1], path)
    assert ax.get_ylabel() == "loss"
    path = plots.curves(
        series,
        tmp_path / "loss.png",
        xlabel="training step",
        ylabel="interpolant loss",
        note=plots.INTERPOLANT_LOSS_NOTE,
    )
    (ax,), _ = _check_readable(saved[-1], path)
    assert ax.get_ylabel() == "interpolant loss"
    note = " ".join(ax.get_title(loc="left").split())
    assert "negative" in note and "E|b − dx_t/dt|²" in note
    assert "negative" in plots.curves.__doc__


class _Target:
    """A standard normal in ``dim`` dimensions with exact draws."""

    def __init__(self, dim):
        self.dim = dim

    def log_prob(self, x):
        return -x.square().sum(-1) / 2

    def sample(self, n, generator=None):
        return torch.randn(n, self.dim, generator=generator)


def _weighted(dim, n=300):
    g = torch.Generator().manual_seed(0)
    return SampleResult(
        samples=torch.randn(n, dim, generator=g),
        method="ais",
        log_weights=torch.randn(n, generator=g),
        ess=0.4,
    )


def _chains(dim, draws=40, chains=3, warmup=10):
    g = torch.Generator().manual_seed(1)
    chain_samples = torch.randn(draws, chains, dim, generator=g)
    return SampleResult(
        samples=chain_samples.reshape(-1, dim),
        method="mala",
        log_prob_trace=torch.randn(warmup + draws, chains, generator=g),
        chain_samples=chain_samples,
        info=MCMCInfo(
            chains=chains, draws_per_chain=draws, thin=1, step_size=0.5, warmup=warmup,
            mass_matrix="identity", divergences=0, warmup_acceptance=torch.full((warmup,), 0.5),
            warmup_step_size=torch.full((warmup,), 0.5), target_accept=0.574,
            warmup_divergences=0, adaptation_rounds=0,
        ),
    )  # fmt: skip


@pytest.mark.parametrize("dim", [1, 2, 32])
def test_sampler_sample_plot_labels_coordinates(tmp_path, saved, dim):
    path = sampler_plots.plot_samples(_weighted(dim), _Target(dim), tmp_path / "s.png")
    axes, bars = _check_readable(saved[-1], path)
    assert len(axes) == 3  # samples, resampled by weight, exact draws
    assert all(ax.get_xlabel() == "x[0]" for ax in axes)
    assert len(bars) == (1 if dim == 2 else 0)
    title = saved[-1]._suptitle.get_text()
    if dim == 2:
        assert "density" in bars[0].ax.get_ylabel()
    if dim == 32:
        assert "x[0] vs x[1] of 32" in title


def test_sampler_sample_plot_gives_coordinates_of_other_scales_a_window_each(tmp_path, saved):
    """Above d = 2 (no contours) each axis fits its own coordinate: a scale of 100 beside
    one of 1 (eight schools' mu beside log tau) does not leave the panel empty."""
    result = _weighted(5)
    result.samples[:, 0] *= 100.0
    sampler_plots.plot_samples(result, _Target(5), tmp_path / "s.png")
    ax = saved[-1].axes[0]
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    assert x1 - x0 > 50 * (y1 - y0) and y1 - y0 < 10 and ax.get_aspect() == "auto"
    sampler_plots.plot_samples(_weighted(2), _Target(2), tmp_path / "t.png")
    assert saved[-1].axes[0].get_xlim() == saved[-1].axes[0].get_ylim()  # d = 2: square


def test_sampler_weight_trace_and_flow_mcmc_plots_are_labelled(tmp_path, saved):
    path = sampler_plots.plot_log_weights(_weighted(2), tmp_path / "w.png")
    _check_readable(saved[-1], path)
    path = sampler_plots.plot_traces(_chains(5), tmp_path / "t.png")
    axes, _ = _check_readable(saved[-1], path)
    assert [ax.get_ylabel() for ax in axes[1:]] == ["x[0]", "x[1]"]
    assert "of 5" in axes[1].get_title()
    rounds, iters, chains = 6, 8, 3
    result = _chains(2)
    result.info = FlowMCMCInfo(
        chains=chains, draws_per_chain=iters, thin=1, step_size=0.5, training_evaluations=0,
        training_seconds=0.0, transport=None, transport_kind="coupling", training_rounds=rounds,
        stopped_by="plateau", training_acceptance=torch.linspace(0.1, 0.6, rounds),
        local_steps=5, training_loss=torch.zeros(rounds),
        global_accepted=torch.rand(iters, chains) < 0.6,
        global_acceptance_trace=torch.full((iters,), 0.6),
    )  # fmt: skip
    path = sampler_plots.plot_flow_mcmc(result, tmp_path / "f.png")
    _check_readable(saved[-1], path)
