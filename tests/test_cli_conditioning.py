"""The command line's couplings and labels: ``coupling:`` and labelled data in a training
config, the conditional evaluation, ``generate --cond/--guidance`` and their errors."""

import json

import numpy as np
import pytest
import torch
import yaml

from interpolants import checkpoints
from interpolants.app.cli import main
from interpolants.generative import load

TINY = """
data: {{path: data.npz{labels}}}
steps: 4
batch_size: 16
checkpoint_every: 2
log_every: 2
net: {{width: 8}}
eval: {{steps: 2, nll_points: 4}}
"""


@pytest.fixture
def folder(tmp_path):
    """Small 1x4x4 images with labels in 0..2, their paired x0 rows and a config writer."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(60, 1, 4, 4, generator=g)
    np.savez(tmp_path / "data.npz", x=x.numpy(), y=(torch.arange(60) % 3).numpy())
    np.save(tmp_path / "x0.npy", (x + 0.1 * torch.randn(x.shape, generator=g)).numpy())
    return tmp_path


def write(folder, extra="", labels=", labels: y"):
    cfg = folder / "c.yaml"
    cfg.write_text(TINY.format(labels=labels) + extra)
    return cfg


def one_line_error(capsys):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_inpainting_trains_evaluates_generates_and_resumes(folder, capsys):
    cfg = write(folder, "coupling: {kind: inpainting, mask: random, keep: 0.5}\n", labels="")
    run = folder / "run"
    assert main(["train", str(cfg), "--out", str(run), "--quiet"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"completion_mse", "test_cond_nll", "sliced_w2", "mmd2"} <= set(metrics)
    assert "Inpainting" in metrics["conditioned_on"]
    assert (run / "completions.png").stat().st_size > 5_000
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["run"]["coupling"]["kind"] == "inpainting"
    assert config["base"]["sampler"] == {"class": "RandomMask", "keep": 0.5}
    # generate: NaN marks the missing pixels; the visible ones are kept
    y = np.load(folder / "x0.npy")[:3]
    y[:, :, :2] = np.nan
    np.save(folder / "obs.npy", y)
    out = folder / "s.pt"
    argv = ["generate", str(run), "--cond", str(folder / "obs.npy"), "--steps", "2"]
    assert main([*argv, "--out", str(out)]) == 0
    x = torch.load(out)
    assert x.shape == (3, 1, 4, 4) and torch.equal(x[:, :, 2:], torch.from_numpy(y[:, :, 2:]))
    capsys.readouterr()
    # resume: the same config continues; another keep is refused before anything is written
    assert main(["train", str(cfg), "--out", str(run), "--resume", "--quiet"]) == 0
    argv = ["train", str(cfg), "--out", str(run), "--resume", "--quiet", "--set"]
    assert main([*argv, "coupling.keep=0.3"]) == 2
    assert "resume refused" in one_line_error(capsys)


def test_labels_reach_fit_and_generate_takes_labels(folder, capsys):
    cfg = write(folder, "label_dropout: 0.2\nclasses: 4\n")
    run = folder / "run"
    assert main(["train", str(cfg), "--out", str(run), "--quiet"]) == 0
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["label_dropout"] == 0.2 and config["classes"] == 4
    model = load(run)
    assert model.classes == 4 and model.coupling.label_dropout == 0.2
    held = checkpoints.load(run / "heldout_cond.safetensors", kind="data")["labels"]
    assert held.shape == (6,)  # holdout 0.1 of 60 rows, their labels kept beside them
    assert "labels" in json.loads((run / "metrics.json").read_text())["conditioned_on"]
    out = str(folder / "s.pt")
    common = ["generate", str(run), "--steps", "2", "--out", out, "--overwrite"]
    assert main([*common, "--cond", "0,1,2", "-n", "6", "--guidance", "1.5"]) == 0
    assert torch.load(out).shape == (6, 1, 4, 4)
    np.save(folder / "labels.npy", np.array([2, 0]))
    assert main([*common, "--cond", str(folder / "labels.npy")]) == 0
    assert torch.load(out).shape == (2, 1, 4, 4)
    assert main([*common, "-n", "5"]) == 0  # label dropout: unconditional samples
    capsys.readouterr()
    assert main([*common, "--cond", "0,4"]) == 2
    assert "--cond: labels must lie in [0, 4)" in one_line_error(capsys)


def test_paired_and_super_resolution(folder, capsys):
    cfg = write(folder, "coupling: {kind: paired, path: x0.npy, noise: 0.1}\n", labels="")
    run = folder / "paired"
    assert main(["train", str(cfg), "--out", str(run), "--quiet"]) == 0
    held = checkpoints.load(run / "heldout_cond.safetensors", kind="data")["x0"]
    assert held.shape == (6, 1, 4, 4)  # the held-out rows' own x0 rows
    assert "completion_mse" in json.loads((run / "metrics.json").read_text())
    out = str(folder / "s.pt")
    argv = ["generate", str(run), "--cond", str(folder / "x0.npy"), "--steps", "2"]
    assert main([*argv, "--out", out]) == 0 and torch.load(out).shape == (60, 1, 4, 4)
    cfg = write(folder, "coupling: {kind: super_resolution, factor: 2}\n", labels="")
    run = folder / "sr"
    assert main(["train", str(cfg), "--out", str(run), "--quiet"]) == 0
    np.save(folder / "low.npy", np.random.rand(3, 1, 2, 2).astype(np.float32))
    argv = ["generate", str(run), "--cond", str(folder / "low.npy"), "--steps", "2"]
    assert main([*argv, "--out", out, "--overwrite"]) == 0
    assert torch.load(out).shape == (3, 1, 4, 4)
    capsys.readouterr()
    assert main([*argv[:3], str(folder / "x0.npy"), "--out", out, "--overwrite"]) == 2
    err = one_line_error(capsys)
    assert "--cond: rows of shape (1, 4, 4)" in err and "low-resolution images (1, 2, 2)" in err
    cfg = write(folder, "coupling: {kind: blur, sigma: 1.0}\n", labels="")
    assert main(["train", str(cfg), "--out", str(folder / "blur"), "--quiet"]) == 0
    argv = ["generate", str(folder / "blur"), "--cond", str(folder / "x0.npy"), "-n", "60"]
    assert main([*argv, "--steps", "2", "--out", out, "--overwrite"]) == 0


@pytest.mark.parametrize(
    "coupling,message",
    [
        ("{kind: warp}", "coupling: kind: unknown coupling 'warp'"),
        ("{kind: inpainting, keeep: 0.5}", "coupling: unknown key(s) ['keeep']"),
        ("{kind: corruption}", "Python"),
        ("{kind: inpainting, mask: nowhere.npy}", "coupling: mask: file"),
        ("{kind: super_resolution, factor: 3}", "coupling: factor"),
        ("{kind: blur, sigma: 0}", "coupling: sigma must be a number > 0"),
        ("{kind: paired}", "coupling: path"),
    ],
)
def test_bad_coupling_is_one_line_naming_the_key(folder, capsys, coupling, message):
    cfg = write(folder, f"coupling: {coupling}\n", labels="")
    assert main(["train", str(cfg), "--out", str(folder / "r"), "--quiet"]) == 2
    assert message in one_line_error(capsys)


def test_generate_errors_name_the_argument(folder, capsys):
    cfg = write(folder, "label_dropout: 0.0\n")
    run = folder / "run"
    assert main(["train", str(cfg), "--out", str(run), "--quiet"]) == 0
    base = ["generate", str(run), "--steps", "2", "--out", str(folder / "s.pt")]
    for extra, message in (
        (["--cond", "0,1", "--guidance", "1"], "--guidance 1.0: needs a model trained on labels"),
        ([], "--cond is required"),
        (["--cond", str(folder / "x0.npy")], "--cond: labels must be integers"),
        (["--cond", "0,1", "-n", "3"], "-n 3 is not a multiple of the 2 labels of --cond"),
        (["--cond", "nowhere.npy"], "--cond: file nowhere.npy does not exist"),
    ):
        assert main([*base, *extra]) == 2
        assert message in one_line_error(capsys)
