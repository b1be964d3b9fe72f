"""CLI: every error is exactly one stderr line, exit 2 for usage, 1 otherwise."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from model.checkpoint import save_checkpoint
from model.cli import main
from model.data import write_synthetic_cifar
from model.vgg import build_model

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args, timeout=120):
    env = dict(os.environ)
    env.pop("MODEL_DEBUG", None)
    env.pop("CIFAR10_DIR", None)
    return subprocess.run(
        [sys.executable, "-m", "model", *map(str, args)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )


def one_line_error(text):
    lines = text.splitlines()
    assert len(lines) == 1, text
    assert lines[0].startswith("error: "), text
    assert "Traceback" not in text
    return lines[0]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_synthetic_cifar(tmp_path_factory.mktemp("cifar"), n_train=10, n_test=6, seed=1)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ck") / "m.pt"
    return save_checkpoint(path, build_model("vgg16_quant_project", seed=0), "vgg16_quant_project", 1, 0.0)


# --------------------------------------------------------------------- subprocess
def test_help_subprocess():
    r = run_cli("--help")
    assert r.returncode == 0 and "usage:" in r.stdout
    for cmd in ("train", "eval", "export", "bench"):
        assert cmd in r.stdout
    assert r.stderr == ""


def test_usage_error_subprocess():
    r = run_cli("train", "--epochs", "many")
    assert r.returncode == 2 and r.stdout == ""
    assert "--epochs" in one_line_error(r.stderr)


def test_eval_subprocess(checkpoint, dataset, tmp_path):
    r = run_cli("eval", "--checkpoint", checkpoint, "--data", dataset, "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().startswith("Test set: Accuracy: ")
    assert "/6 (" in r.stdout and "%)" in r.stdout
    r = run_cli("eval", "--checkpoint", tmp_path / "missing.pt", "--data", dataset)
    assert r.returncode == 1 and "missing.pt" in one_line_error(r.stderr)


# --------------------------------------------------------------------- in-process
def call(argv, capsys):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize(
    "argv, needle",
    [
        ([], "command is required"),
        (["frobnicate"], "invalid choice"),
        (["--bogus"], "--bogus"),
        (["train", "--bogus"], "unrecognized arguments: --bogus"),
        (["train", "--epochs", "x"], "--epochs"),
        (["train", "--model", "resnet"], "--model"),
        (["eval"], "--checkpoint"),
        (["eval", "--checkpoint"], "--checkpoint"),
    ],
)
def test_usage_errors(argv, needle, capsys):
    rc, out, err = call(argv, capsys)
    assert rc == 2
    assert needle in one_line_error(err)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["export", "--out", "o", "--seed", "2**64"], "argument --seed: must be an integer in 0..4294967295, got '2**64'"),
        (["export", "--out", "o", "--seed", str(2**64)], "argument --seed: must be an integer in 0..4294967295"),
        (["bench", "--seed", "-1"], "argument --seed: must be an integer in 0..4294967295, got '-1'"),
        (["train", "--seed", "1.5"], "argument --seed: must be an integer"),
        (["train", "--lr", "nan"], "argument --lr: must be a finite number in (0, 10], got 'nan'"),
        (["train", "--lr", "inf"], "argument --lr: must be a finite number"),
        (["train", "--lr", "0"], "argument --lr: must be a finite number in (0, 10]"),
        (["train", "--weight-decay=-1e-4"], "argument --weight-decay: must be a finite number in [0, 1]"),
        (["train", "--weight-decay", "nan"], "argument --weight-decay"),
        (["train", "--epochs", "0"], "argument --epochs: must be an integer in 1..100000, got '0'"),
        (["train", "--batch-size", "0"], "argument --batch-size: must be an integer in 1..100000"),
        (["train", "--limit", "0"], "argument --limit: must be an integer >= 1, got '0'"),
        (["train", "--test-limit", "-3"], "argument --test-limit: must be an integer >= 1, got '-3'"),
        (["train", "--print-freq", "0"], "argument --print-freq: must be an integer >= 1"),
        (["eval", "--checkpoint", "x.pt", "--batch-size", "-1"], "argument --batch-size"),
        (["eval", "--checkpoint", "x.pt", "--limit", "0"], "argument --limit: must be an integer >= 1"),
        (["export", "--out", "o", "--image", "1000000000"], "argument --image: must be an integer in 0..9999"),
        (["export", "--out", "o", "--image", "-1"], "argument --image: must be an integer in 0..9999"),
        (["export", "--out", "o", "--psum-bw", "1"], "argument --psum-bw"),
        (["bench", "--repeats", "0"], "argument --repeats: must be an integer in 1..1000"),
        # an empty --out (an unset shell variable) was the current folder: files in the checkout
        (["export", "--out", ""], "argument --out: must name a path, got ''"),
        (["train", "--out", " "], "argument --out: must name a path, got ' '"),
        (["pack", "--checkpoint", "x.pt", "--out", ""], "argument --out: must name a path"),
        (["demo", "--out", ""], "argument --out: must name a path"),
        (["infer", "--out", ""], "argument --out: must name a path"),
        (["rtl-bench", "--out", ""], "argument --out: must name a path"),
    ],
)
def test_numeric_options_are_range_checked(argv, message, capsys):
    """Every numeric option is refused on the command line, naming it, before any data is
    loaded (an --image of 10**9 used to run for 15 minutes; --lr nan trained)."""
    rc, out, err = call(argv, capsys)
    assert rc == 2 and out == ""
    assert message in one_line_error(err)


def test_layer_option_is_range_checked(capsys):
    for option in ("--layer", "--loop-layer"):
        rc, _, err = call(["bench", option, "64,64,100000"], capsys)
        assert rc == 1 and f"{option} '64,64,100000': IC and OC must be in 1..512, HW in 1..32" in one_line_error(err)


def test_runtime_errors(tmp_path, checkpoint, dataset, capsys, monkeypatch):
    monkeypatch.delenv("CIFAR10_DIR", raising=False)
    cases = [
        (["train", "--data", tmp_path / "nope", "--epochs", "1", "--out", tmp_path / "o"], "does not exist"),
        (["train", "--epochs", "1", "--out", tmp_path / "o"], "CIFAR10_DIR"),
        (["train", "--data", dataset, "--epochs", "1", "--device", "tpu"], "device"),
        (["train", "--data", dataset, "--resume", tmp_path / "no.pt", "--out", tmp_path / "o"], "no.pt"),
        (["eval", "--checkpoint", tmp_path / "no.pt", "--data", dataset], "not found"),
        (["eval", "--checkpoint", checkpoint, "--data", tmp_path / "nodata"], "does not exist"),
    ]
    for argv, needle in cases:
        rc, out, err = call(argv, capsys)
        assert rc == 1, (argv, err)
        assert needle in one_line_error(err), (argv, err)


class Evil:
    def __reduce__(self):
        return (os.mkdir, ("/tmp/__model_cli_test_pwned",))


def test_bad_checkpoints(tmp_path, dataset, capsys):
    torch.save({"state_dict": {}, "x": Evil()}, tmp_path / "evil.pt")
    rc, _, err = call(["eval", "--checkpoint", tmp_path / "evil.pt", "--data", dataset], capsys)
    assert rc == 1 and "refused: needs pickle code" in one_line_error(err)
    assert not os.path.exists("/tmp/__model_cli_test_pwned")
    (tmp_path / "junk.pt").write_text("junk")
    rc, _, err = call(["eval", "--checkpoint", tmp_path / "junk.pt", "--data", dataset], capsys)
    assert rc == 1 and "junk.pt" in one_line_error(err)
    torch.save(build_model("vgg16_quant", seed=0).state_dict(), tmp_path / "classic.pt")
    rc, _, err = call(["eval", "--checkpoint", tmp_path / "classic.pt", "--data", dataset,
                       "--model", "vgg16_quant_project"], capsys)
    assert rc == 1 and "wrong architecture" in one_line_error(err)


def test_bad_data_file(tmp_path, checkpoint, capsys):
    d = write_synthetic_cifar(tmp_path / "d", n_train=5, n_test=3, train_files=1)
    (d / "test_batch").write_bytes(b"\x80\x04corrupt")
    rc, _, err = call(["eval", "--checkpoint", checkpoint, "--data", d], capsys)
    assert rc == 1 and "test_batch" in one_line_error(err)


def test_cuda_unavailable(checkpoint, dataset, capsys):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    rc, _, err = call(["eval", "--checkpoint", checkpoint, "--data", dataset, "--device", "cuda"], capsys)
    assert rc == 1 and "CUDA is not available" in one_line_error(err)


def test_train_cli(tmp_path, dataset, capsys):
    rc, out, err = call(["train", "--data", dataset, "--epochs", "1", "--out", tmp_path / "run",
                         "--device", "cpu", "--limit", "4", "--batch-size", "4", "--test-limit", "2"], capsys)
    assert rc == 0, err
    assert "epoch 1/1" in out and (tmp_path / "run" / "best.pt").is_file()
    rc, out, err = call(["eval", "--checkpoint", tmp_path / "run" / "best.pt", "--data", dataset,
                         "--device", "cpu", "--limit", "2"], capsys)
    assert rc == 0 and out.startswith("Test set: Accuracy: ") and "/2 (" in out


def test_internal_error_is_one_line(monkeypatch, capsys):
    import model.train as train_mod

    def boom(args):
        raise RuntimeError("something\nbroke")

    monkeypatch.setattr(train_mod, "run_eval", boom)
    rc, _, err = call(["eval", "--checkpoint", "x"], capsys)
    assert rc == 1 and "RuntimeError: something broke" in one_line_error(err)


def test_export_bad_layer(tmp_path, capsys):
    rc, out, err = call(["export", "--out", tmp_path / "x", "--layer", "features.28"], capsys)
    assert rc == 1
    assert "features.28" in one_line_error(err)


def test_export_and_bench_help(capsys):
    rc, out, _ = call(["export", "--help"], capsys)
    assert rc == 0 and "--out" in out and "--psum-bw" in out
    assert "classic text vectors" in out and "program" not in out      # export writes no program
    rc, out, _ = call(["bench", "--help"], capsys)
    assert rc == 0 and "--loop-layer" in out and "--repeats" in out


def test_export_and_bench_errors(tmp_path, capsys):
    for value in ("1", "99", "x"):
        rc, _, err = call(["export", "--out", tmp_path / "x", "--psum-bw", value], capsys)
        line = one_line_error(err)
        assert rc == 2 and "--psum-bw" in line and "2..32" in line and f"got {value}" in line.replace("'", ""), line
        assert not (tmp_path / "x").exists()                  # refused before the capture
    rc, _, err = call(["bench", "--layer", "8x8"], capsys)
    assert rc == 1 and "IC,OC,HW" in one_line_error(err)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_checkpoint_refused(tmp_path, dataset, capsys, value):
    """A checkpoint with NaN / inf weights is refused by every command that loads one."""
    model = build_model("vgg16_quant_project", seed=0)
    with torch.no_grad():
        model.features[0].weight[0, 0, 0, 0] = value
    path = save_checkpoint(tmp_path / "bad.pt", model, "vgg16_quant_project", 1, 0.0)
    for argv in (["eval", "--checkpoint", path, "--data", dataset],
                 ["export", "--checkpoint", path, "--out", tmp_path / "o"],
                 ["train", "--resume", path, "--data", dataset, "--epochs", "2", "--out", tmp_path / "t"]):
        rc, _, err = call(argv, capsys)
        assert rc == 1, (argv, err)
        assert f"{path}: refused: 'features.0.weight' holds non-finite values" in one_line_error(err), argv


def _with(key, value=None, dtype=None):
    def edit(sd):
        sd[key] = sd[key].fill_(value) if dtype is None else sd[key].round().to(dtype)
    return edit


UNRUNNABLE = [
    ("act_alpha0", _with("features.0.act_alpha", 0.0), "'features.0.act_alpha' is 0; a clipping threshold must be > 0"),
    ("act_alpha-1", _with("features.3.act_alpha", -1.0), "'features.3.act_alpha' is -1; a clipping threshold"),
    ("wgt_alpha0", _with("features.0.weight_quant.wgt_alpha", 0.0), "'features.0.weight_quant.wgt_alpha' is 0; "),
    ("int_weight", _with("features.3.weight", dtype=torch.int32),
     "'features.3.weight' has dtype int32; model tensors are floating point"),
]


@pytest.mark.parametrize("edit,needle", [c[1:] for c in UNRUNNABLE], ids=[c[0] for c in UNRUNNABLE])
def test_unrunnable_checkpoint_refused(tmp_path, dataset, capsys, edit, needle):
    """A zero or negative clipping threshold or an integer weight is refused by the loader, not
    evaluated into NaN logits (eval reported an accuracy) nor blamed on pack ("internal error")."""
    sd = build_model("vgg16_quant_project", seed=0).state_dict()
    edit(sd)
    torch.save({"state_dict": sd, "model": "vgg16_quant_project"}, tmp_path / "bad.pt")
    path = tmp_path / "bad.pt"
    for argv in (["eval", "--checkpoint", path, "--data", dataset],
                 ["pack", "--checkpoint", path, "--out", tmp_path / "bad.q4"]):
        rc, _, err = call(argv, capsys)
        assert rc == 1 and f"{path}: refused: {needle}" in one_line_error(err), (argv, err)
    assert not (tmp_path / "bad.q4").exists()


def test_api_refuses_what_the_options_refuse(tmp_path):
    """The same limits hold for callers of the Python API (no 10**9 synthetic images, no NaN lr)."""
    from model.capture import default_capture
    from model.errors import ModelError
    from model.train import train

    with pytest.raises(ModelError, match=r"image index must be in 0\.\.9999, got 1000000000"):
        default_capture(image=10**9)
    with pytest.raises(ModelError, match="--lr must be a finite number > 0, got nan"):
        train(data=tmp_path, lr=float("nan"), epochs=1, out=tmp_path / "o")
