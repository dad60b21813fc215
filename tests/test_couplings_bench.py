"""``interpolants bench couplings`` (issue 21) at a tiny budget: the metrics' structure, the
grids, and the metric functions on known inputs (PSNR of a known MSE, coverage of samples that
surely cover or surely miss, the classifier's accuracy on its own predictions)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from interpolants.app.cli import main
from interpolants.app.couplings_bench import (
    COUPLING_TASKS,
    class_scores,
    completion_scores,
    coverage,
    psnr,
)
from interpolants.app.flowmap_digits import DigitsClassifier
from interpolants.data import digits_labels, load


def test_psnr_of_known_mse():
    assert psnr(0.01) == pytest.approx(20.0)
    assert psnr(1.0) == 0.0 and psnr(0.25, peak=0.5) == pytest.approx(0.0)
    assert psnr(0.0) == math.inf
    with pytest.raises(ValueError):
        psnr(-1.0)


def test_coverage_of_samples_that_surely_cover_or_miss():
    truth = torch.rand(5, 1, 4, 4)
    hidden = torch.zeros(5, 1, 4, 4, dtype=torch.bool)
    hidden[:, :, :2] = True
    spread = torch.linspace(-1, 1, 16).view(1, 16, 1, 1, 1)
    around = truth[:, None] + spread  # the truth is the median of 16 samples
    c = coverage(around, truth, hidden)
    assert c["coverage"] == 1.0 and c["stderr"] == 0.0
    assert c["calibrated"] == pytest.approx(0.9 * 15 / 17)
    far = truth[:, None] + 5 + spread
    assert coverage(far, truth, hidden)["coverage"] == 0.0
    # only the hidden entries count: missing everywhere else changes nothing
    mixed = torch.where(hidden[:, None], around, far)
    assert coverage(mixed, truth, hidden)["coverage"] == 1.0


def test_completion_scores_use_the_mean_over_the_hidden_entries():
    truth = torch.rand(4, 1, 8, 8)
    hidden = torch.rand(4, 1, 8, 8) < 0.5
    noise = torch.tensor([-1.0, 1.0]).view(1, 2, 1, 1, 1).expand(4, 2, 1, 8, 8)
    samples = truth[:, None] + 0.1 + noise  # the mean completion is truth + 0.1
    samples = torch.where(hidden[:, None], samples, torch.full_like(samples, 9.0))
    s = completion_scores(samples, truth, hidden)
    assert s["mse"] == pytest.approx(0.01, rel=1e-4)
    assert s["psnr"] == pytest.approx(20.0, abs=1e-3)
    assert s["mse_stderr"] == pytest.approx(0.0, abs=1e-6)
    assert s["coverage"] == 1.0  # truth + 0.1 lies between truth - 0.9 and truth + 1.1


def test_class_scores_on_the_classifiers_own_predictions():
    torch.manual_seed(0)
    net = DigitsClassifier().eval()
    test, labels = load("digits", split="test"), digits_labels("test")
    x = test[:60]
    with torch.no_grad():
        own = net(x).argmax(1)
    s = class_scores(net, x, own, test, labels)
    assert s["accuracy"] == 1.0 and s["accuracy_stderr"] == 0.0
    wrong = class_scores(net, x, (own + 1) % 10, test, labels)
    assert wrong["accuracy"] == 0.0 and len(wrong["fd_per_class"]) == 10


def test_bench_couplings_command_writes_metrics_tables_and_grids(tmp_path, capsys):
    argv = ["bench", "couplings", "--out", str(tmp_path), "--steps", "2", "--batch", "16",
            "--set", "width=8", "--set", "n_eval=6", "--set", "samples=4",
            "--set", "per_label=3", "--set", "class_steps=2", "--set", "classifier_steps=5",
            "--set", "guidance=[0.0, 1.0]"]  # fmt: skip
    assert main(argv) == 0
    folder = tmp_path / "couplings"
    m = json.loads((folder / "metrics.json").read_text())
    assert set(m["tasks"]) == set(COUPLING_TASKS)
    for task, r in m["tasks"].items():
        assert set(r["models"]) == {"coupled", "noise"}
        for model in r["models"].values():
            assert {k: v["nfe"] for k, v in model.items()} == {"heun 5": 10, "euler 10": 10}
            row = model["heun 5"]
            assert row["psnr"] == pytest.approx(psnr(row["mse"]))
            assert 0 <= row["coverage"] <= 1 and row["fd"] > 0 and len(row["fd_halves"]) == 2
        expected = 1.0 if task == "super-resolution" else (0.25 if "centre" in task else 0.5)
        assert r["hidden_fraction"] == pytest.approx(expected, abs=0.2)
        assert (folder / f"{task}.png").stat().st_size > 5_000
    assert set(m["classes"]["guidance"]) == {"0.0", "1.0"}
    row = m["classes"]["guidance"]["1.0"]
    assert row["nfe"] == 4 and len(row["accuracy_per_label"]) == 10
    assert m["reference"]["fd_floor_test_halves"] > 0
    assert set(m["goals"]["coupled_beats_noise"]) == set(COUPLING_TASKS)
    assert m["goals"]["best_guidance"] in {"0.0", "1.0"}
    assert (folder / "classes.png").stat().st_size > 5_000
    assert "| super-resolution | coupled | heun 5 | 10 |" in (folder / "table.md").read_text()
    assert "goals:" in capsys.readouterr().out
