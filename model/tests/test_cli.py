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


def test_runtime_errors(tmp_path, checkpoint, dataset, capsys, monkeypatch):
    monkeypatch.delenv("CIFAR10_DIR", raising=False)
    cases = [
        (["train", "--data", tmp_path / "nope", "--epochs", "1", "--out", tmp_path / "o"], "does not exist"),
        (["train", "--epochs", "1", "--out", tmp_path / "o"], "CIFAR10_DIR"),
        (["train", "--data", dataset, "--epochs", "0", "--out", tmp_path / "o"], "--epochs"),
        (["train", "--data", dataset, "--epochs", "1", "--device", "tpu"], "device"),
        (["train", "--data", dataset, "--resume", tmp_path / "no.pt", "--out", tmp_path / "o"], "no.pt"),
        (["eval", "--checkpoint", tmp_path / "no.pt", "--data", dataset], "not found"),
        (["eval", "--checkpoint", checkpoint, "--data", tmp_path / "nodata"], "does not exist"),
        (["eval", "--checkpoint", checkpoint, "--data", dataset, "--batch-size", "0"], "--batch-size"),
        (["eval", "--checkpoint", checkpoint, "--data", dataset, "--limit", "0"],
         "the test split: limit must be >= 1 image, got 0"),
        (["train", "--data", dataset, "--epochs", "1", "--out", tmp_path / "o", "--limit", "0"],
         "the train split: limit must be >= 1 image, got 0"),
        (["train", "--data", dataset, "--epochs", "1", "--out", tmp_path / "o", "--limit", "4",
          "--test-limit", "0"], "the test split: limit must be >= 1 image, got 0"),
        (["train", "--data", dataset, "--epochs", "1", "--out", tmp_path / "o", "--test-limit", "-3"],
         "limit must be >= 1 image, got -3"),
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
        assert rc == 2 and "--psum-bw" in line and "2..64" in line and f"got {value}" in line.replace("'", ""), line
        assert not (tmp_path / "x").exists()                  # refused before the capture
    rc, _, err = call(["bench", "--layer", "8x8"], capsys)
    assert rc == 1 and "IC,OC,HW" in one_line_error(err)
