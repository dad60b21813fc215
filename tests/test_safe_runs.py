"""Safe checkpoints, run folders that never mix two runs, resume checks, the user's own data,
and clear errors: each test here failed before its fix."""

import json
import os
import pickle
import signal

import numpy as np
import pytest
import torch
from torch import nn

import interpolants as si
from interpolants import checkpoints
from interpolants.app.cli import main
from interpolants.run_folder import CHECKPOINT, RunFolder

TINY = {"steps": 12, "batch_size": 32, "log_every": 4, "checkpoint_every": 4}
NET = {"width": 16, "depth": 2}


def data(n=400, d=2, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed)) * 0.5 + 1.0


def tiny_fit(x, out=None, **kw):
    return si.fit(x, out=out, net_options=NET, progress=False, **{**TINY, **kw})


def one_line_error(capsys):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


# --- 1. loading a checkpoint runs no code -------------------------------------------------


class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def evil_files(tmp_path):
    marker = tmp_path / "pwned"
    with open(tmp_path / "evil.pkl", "wb") as f:
        pickle.dump({"model": Evil(marker)}, f)
    torch.save({"model": Evil(marker)}, tmp_path / "evil.pt")
    return marker, [tmp_path / "evil.pkl", tmp_path / "evil.pt"]


def test_a_malicious_pickle_is_refused_unread(tmp_path, capsys):
    marker, files = evil_files(tmp_path)
    for path in files:
        with pytest.raises(ValueError, match="pickle") as err:
            si.load(path)
        assert len(str(err.value).splitlines()) == 1
        assert not marker.exists()
    # a run folder holding it, under the new name and the old one: generate, evaluate, resume
    for name in (CHECKPOINT, "checkpoint.pt"):
        run = tmp_path / f"run-{name}"
        run.mkdir()
        (run / name).write_bytes(files[1].read_bytes())
        for argv in (["generate", str(run), "-n", "5"], ["evaluate", str(run)]):
            assert main(argv) == 2
            assert "pickle" in one_line_error(capsys) or name == "checkpoint.pt"
            assert not marker.exists()
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: {name: moons, n: 200}\nsteps: 4\nbatch_size: 16\n")
    run = tmp_path / f"run-{CHECKPOINT}"
    assert main(["train", str(cfg), "--out", str(run), "--resume", "--quiet"]) == 2
    assert "pickle" in one_line_error(capsys) and not marker.exists()
    # as a data file too: torch.load(weights_only=True) refuses it
    cfg.write_text(f"data: {{path: {files[1]}}}\nsteps: 4\nbatch_size: 16\n")
    assert main(["train", str(cfg), "--out", str(tmp_path / "d"), "--quiet"]) == 2
    assert "cannot be read" in one_line_error(capsys) and not marker.exists()


def test_checkpoints_hold_plain_data_only(tmp_path):
    tree = {"w": torch.randn(3, 2).double(), "opt": {0: {"step": torch.tensor(2.0)}},
            "cfg": ("a", 1, 2.5, None, torch.float64), "empty": torch.zeros(0, 4)}  # fmt: skip
    checkpoints.save(tmp_path / "c", tree, kind="test")
    back = checkpoints.load(tmp_path / "c", kind="test")
    assert torch.equal(back["w"], tree["w"]) and back["w"].dtype == torch.float64
    assert back["opt"] == {0: {"step": torch.tensor(2.0)}} and back["cfg"] == tree["cfg"]
    with pytest.raises(TypeError, match=r"cannot save Evil at \.x"):
        checkpoints.save(tmp_path / "d", {"x": Evil("nowhere")}, kind="test")
    assert not (tmp_path / "d").exists()
    with pytest.raises(ValueError, match="holds a 'test' checkpoint"):
        si.load(tmp_path / "c")
    # a header whose length starts with the bytes of a pickle's opening is still ours
    for n in range(400, 1400):
        checkpoints.save(tmp_path / "h", {"pad": "x" * n}, kind="test")
        head = (tmp_path / "h").read_bytes()[:2]
        if head[0] == 0x80 and 2 <= head[1] <= 5:
            assert checkpoints.load(tmp_path / "h")["pad"] == "x" * n
            break
    else:
        raise AssertionError("no header of that length was made")
    raw = (tmp_path / "c").read_bytes()
    (tmp_path / "cut").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="corrupt"):
        checkpoints.load(tmp_path / "cut")


class UserNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 2)

    def forward(self, t, x):
        return self.lin(torch.cat([x, t[:, None]], 1))


def test_a_users_network_is_rebuilt_by_the_user(tmp_path):
    model = tiny_fit(data(), net=UserNet(), steps=4)
    model.save(tmp_path / "m.safetensors")
    with pytest.raises(ValueError, match=r"user's class .*UserNet.*load\(path, net=\.\.\.\)"):
        si.load(tmp_path / "m.safetensors")
    again = si.load(tmp_path / "m.safetensors", net=UserNet())
    x = torch.randn(5, 2)
    t = torch.full((5,), 0.3)
    assert torch.equal(again.velocity(t, x), model.velocity(t, x))
    with pytest.raises(ValueError, match="does not match the saved weights"):
        si.load(tmp_path / "m.safetensors", net=si.nn.MLPField(2, width=8, depth=1))


@pytest.mark.parametrize(
    "base",
    [
        None,
        si.distributions.DiagonalNormal(torch.tensor([0.5, -1.0]), torch.tensor([1.0, 2.0])),
        torch.distributions.Independent(torch.distributions.Normal(torch.ones(2), 2.0), 1),
        torch.distributions.MultivariateNormal(
            torch.zeros(2), torch.tensor([[2.0, 0.3], [0.3, 1.0]])
        ),
    ],
)  # fmt: skip
def test_models_round_trip_with_their_base(tmp_path, base):
    model = tiny_fit(data(), base=base, steps=4, fields=("velocity", "score"))
    model.save(tmp_path / "m")
    again = si.load(tmp_path / "m")
    x = data(6, seed=1)
    assert torch.allclose(again.log_prob(x, steps=4), model.log_prob(x, steps=4))
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    assert torch.equal(
        again.sample(7, steps=3, generator=g()), model.sample(7, steps=3, generator=g())
    )


# --- 2. a run folder holds one run -------------------------------------------------------


def test_a_folder_holding_a_run_is_refused_and_overwrite_keeps_it_until_success(tmp_path):
    out = tmp_path / "run"
    tiny_fit(data(), out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(ValueError, match=r"already holds a run.*--resume.*--overwrite"):
        tiny_fit(data(), out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    # an overwrite that fails puts every earlier file back and writes its error beside them
    with pytest.raises(FloatingPointError):
        tiny_fit(data() * 1e30, out, overwrite=True)
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.name != "error.json"}
    assert after == before
    assert json.loads((out / "error.json").read_text())["status"] == "failed"
    # one that succeeds replaces the run: one run's lines in metrics.jsonl, no error.json
    tiny_fit(data(), out, overwrite=True, steps=8)
    steps = [json.loads(r)["step"] for r in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [4, 8] and not (out / "error.json").exists()
    assert not (out / ".replaced").exists()
    with pytest.raises(ValueError, match="exclude each other"):
        RunFolder(out, resume=True, overwrite=True)


def test_every_command_refuses_a_used_folder(tmp_path, capsys):
    out = tmp_path / "s"
    argv = ["sample-target", "gmm40", "--method", "smc", "-n", "100", "--out", str(out), "--quiet",
            "--option", "steps=4", "--option", "pilot=false",
            "--option", "reverse=None"]  # fmt: skip
    assert main(argv) == 0
    metrics = (out / "metrics.json").read_bytes()
    capsys.readouterr()
    assert main(argv) == 2
    assert "--overwrite" in one_line_error(capsys)
    # a failed overwrite leaves the good metrics.json and samples where they were
    assert main([*argv, "--overwrite", "--option", "kernel=nonsense"]) == 2
    capsys.readouterr()
    assert (out / "metrics.json").read_bytes() == metrics
    assert json.loads((out / "error.json").read_text())["status"] == "failed"
    assert main([*argv, "--overwrite"]) == 0
    # demo --exact writes to its own folder, and refuses a used one too
    exact = ["demo", "--exact", "-n", "200", "--steps", "8"]
    assert main([*exact, "--out", str(tmp_path / "e")]) == 0
    assert main([*exact, "--out", str(tmp_path / "e")]) == 2
    line = one_line_error(capsys)  # the demo has no --resume: its hint names --overwrite
    assert "already holds a run" in line and "--overwrite" in line and "--resume" not in line
    assert main(["demo", "--steps", "1", "--out", str(tmp_path / "e")]) == 2  # before training
    assert "--resume" not in one_line_error(capsys)
    assert str(RunFolder(tmp_path / "e", overwrite=True)) == str(tmp_path / "e")


# --- 3. resume checks everything first, then writes ----------------------------------------


def test_resume_with_other_data_is_refused_before_anything_is_written(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    text = "data: {{name: moons, n: {n}, seed: {seed}}}\nsteps: 8\nbatch_size: 16\n"
    text += "checkpoint_every: 4\nnet: {{width: 8, depth: 1}}\neval: {{n: 100, steps: 4}}\n"
    cfg.write_text(text.format(n=300, seed=0))
    out = tmp_path / "run"
    assert main(["train", str(cfg), "--out", str(out), "--quiet"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    for n, seed in ((200, 0), (300, 1)):
        cfg.write_text(text.format(n=n, seed=seed))
        assert main(["train", str(cfg), "--out", str(out), "--resume", "--quiet"]) == 2
        err = one_line_error(capsys)
        assert "resume refused" in err and "data: checkpoint {'shape'" in err
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_ctrl_c_writes_a_checkpoint_and_says_how_to_resume(tmp_path):
    class Interrupting(torch.utils.data.Dataset):
        def __init__(self, x, at):
            self.x, self.reads, self.at = x, 0, at

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            self.reads += 1
            if self.reads == self.at:
                os.kill(os.getpid(), signal.SIGINT)
            return self.x[i]

    x = data(300)
    whole = tiny_fit(Interrupting(x, at=-1), tmp_path / "whole")
    reader = Interrupting(x, at=-1)
    tiny_fit(reader, None)
    with pytest.raises(si.train.TrainingInterrupted, match=r"step 6 of 12.*resume"):
        tiny_fit(Interrupting(x, at=reader.reads - 32 * 6 - 5), tmp_path / "cut")
    state = checkpoints.load(tmp_path / "cut" / CHECKPOINT)
    assert state["step"] == 6
    assert json.loads((tmp_path / "cut/error.json").read_text())["status"] == "interrupted"
    resumed = tiny_fit(Interrupting(x, at=-1), tmp_path / "cut", resume=True)
    for a, b in zip(whole.velocity.parameters(), resumed.velocity.parameters(), strict=True):
        assert torch.equal(a, b)


# --- 4, 5. the user's own data: files, held-out splits, evaluate ------------------------------


def write_formats(tmp_path, x, y):
    np.save(tmp_path / "x.npy", x.numpy())
    np.savez(tmp_path / "x.npz", points=x.numpy(), y=y.numpy())
    torch.save({"x": x, "labels": y}, tmp_path / "x.pt")
    rows = ["a,b,c,label"] + [
        f"{r[0]},{r[1]},{r[2]},{int(k)}" for r, k in zip(x.tolist(), y, strict=True)
    ]
    (tmp_path / "x.csv").write_text("\n".join(rows) + "\n")


def test_data_files_of_every_format_read_alike(tmp_path):
    x, y = data(50, d=3), torch.arange(50) % 4
    write_formats(tmp_path, x, y)
    for name, kw in (("x.npy", {}), ("x.npz", {"array": "points"}), ("x.pt", {}),
                     ("x.csv", {"label_column": "label"})):  # fmt: skip
        got, labels = si.data.read_file(tmp_path / name, **kw)
        assert got.dtype == torch.float32 and torch.allclose(got, x), name
        assert (labels is None) == (name == "x.npy") and (labels is None or torch.equal(labels, y))
    bad = x.clone()
    bad[7, 1] = float("nan")
    np.save(tmp_path / "nan.npy", bad.numpy())
    (tmp_path / "text.csv").write_text("a,b\n1,2\n3,oops\n")
    cases = [("nan.npy", {}, r"nan.npy: data has NaN values in 1 row\(s\) \(first: row 7\)"),
             ("text.csv", {}, r"text.csv: column 'b' is not numeric \(value 'oops'\)"),
             ("x.npz", {"array": "nope"}, r"x.npz: has no array 'nope'"),
             ("x.csv", {"label_column": "zzz"}, "has no column 'zzz'"),
             ("x.txt", {}, "unknown format '.txt'")]  # fmt: skip
    for name, kw, message in cases:
        with pytest.raises(ValueError, match=message):
            si.data.read_file(tmp_path / name, **kw)


def test_cli_trains_and_evaluates_on_the_users_file(tmp_path, capsys):
    x = data(600, d=3)
    np.save(tmp_path / "mine.npy", x.numpy())
    cfg = tmp_path / "mine.yaml"
    cfg.write_text(
        "data: {path: mine.npy, holdout: 0.2}\nsteps: 8\nbatch_size: 32\n"
        "net: {width: 16, depth: 2}\neval: {n: 200, steps: 4, nll_points: 40}\n"
    )
    out = tmp_path / "run"
    assert main(["train", str(cfg), "--out", str(out), "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data"] == "held-out data" and np.isfinite(metrics["test_nll"])
    import yaml

    assert yaml.safe_load((out / "run.yaml").read_text())["data"]["holdout"] == 0.2
    assert yaml.safe_load((out / "config.yaml").read_text())["run"]["data"]["holdout"] == 0.2
    held = checkpoints.load(out / "heldout.safetensors")["x"]
    assert held.shape == (120, 3)  # 20 % of the rows, none of them trained on
    assert not (held[:, None] == x[None]).all(-1).sum(0).gt(0).all()


def test_evaluate_refuses_a_run_with_nothing_held_out(tmp_path, capsys):
    tiny_fit(data(d=3), tmp_path / "a")
    assert main(["evaluate", str(tmp_path / "a")]) == 2
    assert "no held-out data" in one_line_error(capsys)
    tiny_fit(data(d=3), tmp_path / "b", holdout=0.25)
    assert main(["evaluate", str(tmp_path / "b"), "-n", "50", "--steps", "3"]) == 0
    assert json.loads((tmp_path / "b/metrics.json").read_text())["data"] == "held-out data"


# --- 7, 8. errors that name the argument --------------------------------------------------


def test_fit_input_errors_name_the_argument():
    with pytest.raises(ValueError, match="lr must be a number, got 'fast'"):
        si.fit(data(), steps=1, lr="fast")
    with pytest.raises(ValueError, match=r"data is empty"):
        si.fit(torch.zeros(0, 2), steps=1)
    bad = data()
    bad[3, 0] = float("nan")
    with pytest.raises(ValueError, match=r"data has NaN in 1 row\(s\) \(first: row 3\)"):
        si.fit(bad, steps=1)
    with pytest.raises(TypeError, match=r"unknown network option.*widht.*valid: width, depth"):
        si.fit(data(), steps=1, net_options={"widht": 8})
    model = tiny_fit(data().numpy(), steps=2)  # numpy arrays are accepted
    assert isinstance(model, si.GenerativeModel)


def test_model_inputs_are_converted_or_refused():
    model = tiny_fit(data(), steps=2)
    x = data(5, seed=3)
    lp = model.log_prob(x, steps=3)
    lp64 = model.log_prob(x.double(), steps=3)
    assert lp64.dtype == torch.float64 and torch.allclose(lp64.float(), lp)
    assert model.transport(x.double(), steps=2).dtype == torch.float64
    with pytest.raises(TypeError, match=r"x has dtype torch\.int64"):
        model.log_prob(torch.ones(3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"x is empty \(shape \(0, 2\)\)"):
        model.log_prob(torch.zeros(0, 2))


@pytest.mark.parametrize(
    "text,message",
    [
        ("data: moons\nlr: fast\n", "lr must be a number, got 'fast'"),
        ("data: moons\neval: {nn: 2000}\n", "eval: unknown key(s) ['nn']"),
        ("data: {name: moons, size: 3}\n", "data: unknown key(s) ['size']"),
        ("data: moons\ninterpolant: {pth: linear}\n", "interpolant: unknown key(s) ['pth']"),
        ("data: moons\nnet: {widht: 8}\nsteps: 1\n", "unknown network option(s) ['widht']"),
        ("data: {path: missing.npy}\nsteps: 1\n", "missing.npy does not exist"),
    ],
)
def test_config_errors_are_one_line(text, message, tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    assert main(["train", str(cfg), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    assert message in one_line_error(capsys)
    assert not (tmp_path / "run").exists()


def test_cli_checks_before_it_works(tmp_path, capsys):
    run = tmp_path / "run"
    tiny_fit(data(), run)
    for argv, message in (
        (["evaluate", str(run), "--steps", "0"], "--steps: expected a positive integer"),
        (["generate", str(run), "--out", str(tmp_path / "no/dir/x.pt")], "does not exist"),
        (["generate", str(run), "-n", "0"], "-n: expected a positive integer"),
    ):
        assert main(argv) == 2
        assert message in one_line_error(capsys)
    assert main(["generate", str(run), "-n", "10", "--steps", "2"]) == 0
    capsys.readouterr()
    assert main(["generate", str(run), "-n", "10", "--steps", "2"]) == 2
    assert "--overwrite" in one_line_error(capsys)


def test_version_and_help_list_targets_and_options(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"interpolants {si.__version__}"
    assert main(["sample-target", "--help"]) == 0
    text = capsys.readouterr().out
    for word in ("gmm40", "funnel", "phi4", "smc:", "nets:", "target_accept", "--overwrite"):
        assert word in text


# --- found in review -------------------------------------------------------------------------


def test_a_labelled_file_trains_with_its_held_out_split(tmp_path):
    x, y = data(200, d=2), torch.arange(200) % 3
    np.savez(tmp_path / "d.npz", x=x.numpy(), y=y.numpy())  # labels found by name
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: d.npz\nsteps: 4\nbatch_size: 16\nnet: {width: 8, depth: 1}\n")
    config = si.app.training_runs.read_config(cfg)  # the shorthand is read beside the config
    assert config["data"]["path"] == str((tmp_path / "d.npz").resolve())
    si.app.training_runs.train_from_config(config, tmp_path / "run", progress=False)
    held = checkpoints.load(tmp_path / "run" / "heldout.safetensors")["x"]
    assert held.shape == (20, 2)


def test_a_sampler_checkpoint_is_not_a_model(tmp_path, capsys):
    opts = ["--option", "iterations=1", "--option", "train_steps=3", "--option", "steps=3",
            "--option", "train_walkers=4", "--option", "updates=1"]  # fmt: skip
    run = tmp_path / "nets"
    assert main(["sample-target", "gmm-d2-k3", "--method", "nets", "-n", "20", "--out", str(run),
                 "--quiet", *opts]) == 0  # fmt: skip
    capsys.readouterr()
    with pytest.raises(ValueError, match="NETS sampler's training checkpoint, not a generative"):
        si.load(run)
    assert main(["generate", str(run), "-n", "5"]) == 2
    assert "not a generative model" in one_line_error(capsys)


def test_nets_resume_compares_its_training_settings(tmp_path):
    target = si.targets.get("gmm-d2-k3")
    opts = {"n": 20, "steps": 3, "train_steps": 3, "train_walkers": 4, "updates": 1,
            "iterations": 1, "checkpoint_every": 1}  # fmt: skip
    si.sample(target, "nets", log_dir=tmp_path / "r", **opts)
    with pytest.raises(ValueError, match=r"resume refused.*lr: checkpoint 0\.003, now 0\.5"):
        si.sample(target, "nets", log_dir=tmp_path / "r", resume=True, **opts | {"lr": 0.5})
    si.sample(target, "nets", log_dir=tmp_path / "r", resume=True, **opts | {"iterations": 2})


def test_bases_in_another_dtype_are_cast_or_refused():
    x = data()  # float32
    model = tiny_fit(x, base=np.random.default_rng(0).normal(size=(100, 2)), steps=2)
    assert model.base.sample(3).dtype == torch.float32  # numpy's float64 samples, cast
    base64 = si.distributions.DiagonalNormal(torch.zeros(2, dtype=torch.float64), 1.0)
    with pytest.raises(ValueError, match="base draws float64, the data are float32"):
        tiny_fit(x, base=base64, steps=1)


def test_devices_and_numbers_from_yaml_are_checked():
    with pytest.raises(ValueError, match="device must be 'cpu', 'cuda' or 'cuda:N', got 'gpu'"):
        tiny_fit(data(), device="gpu", steps=1)
    assert isinstance(tiny_fit(data(), lr="1e-3", steps=1), si.GenerativeModel)  # YAML 1.1 text


def test_a_torch_base_that_cannot_be_described_is_asked_for_on_load(tmp_path):
    D = torch.distributions
    mix = D.MixtureSameFamily(
        D.Categorical(torch.ones(2)), D.Independent(D.Normal(torch.zeros(2, 2), 1.0), 1)
    )
    model = si.GenerativeModel(si.Interpolant("linear"), si.nn.MLPField(2, 8, 1), base=mix)
    model.save(tmp_path / "m")
    with pytest.raises(ValueError, match=r"could not be saved as data: pass it again"):
        si.load(tmp_path / "m")
    assert si.load(tmp_path / "m", base=mix).base.dist is mix


def test_csv_labels_by_index_and_integer_checks(tmp_path):
    (tmp_path / "a.csv").write_text("u,v,k\n1,2,0\n3,4,1\n")
    x, y = si.data.read_file(tmp_path / "a.csv", label_column=2)
    assert x.shape == (2, 2) and y.tolist() == [0, 1]
    for bad in ("1.5", "inf"):
        (tmp_path / "b.csv").write_text(f"u,k\n1,0\n2,{bad}\n")
        with pytest.raises(ValueError, match=r"b\.csv: label column 'k' holds non-integer"):
            si.data.read_file(tmp_path / "b.csv", label_column="k")


def test_results_are_readable_as_files_the_user_writes(tmp_path):
    old = os.umask(0o022)
    try:
        tiny_fit(data(), tmp_path / "run", steps=4)
    finally:
        os.umask(old)
    for name in ("checkpoint.safetensors", "config.yaml", "metrics.jsonl"):
        assert (tmp_path / "run" / name).stat().st_mode & 0o777 == 0o644, name
