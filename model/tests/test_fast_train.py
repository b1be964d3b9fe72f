"""train --fast on the CPU at tiny sizes: exact quantizers under bf16, the levels forward,
one epoch end to end from JPG class folders, option errors."""

import json

import pytest
import torch
import torch.nn.functional as F

from model import fast_train
from model.checkpoint import model_from_checkpoint
from model.cli import build_parser, main
from model.data import CLASSES, synthetic_uint8
from model.errors import DataError
from model.quant import QuantConv2d
from model.train import evaluate


def _layer(ic, oc, seed):
    torch.manual_seed(seed)
    conv = QuantConv2d(ic, oc, 3, padding=1)
    with torch.no_grad():
        conv.act_alpha.fill_(2.5)
        conv.weight_quant.wgt_alpha.fill_(1.5)
    return conv


@pytest.mark.parametrize("ic", [3, 8])
def test_levels_forward_float32_is_the_model_forward(ic):
    conv = _layer(ic, 8, ic)
    x = torch.randn(2, ic, 6, 6) * 1.5                     # negatives and values above alpha too
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    ref = conv(x1)
    grads_ref = torch.autograd.grad(ref.square().sum(), [x1, conv.weight, conv.act_alpha, conv.weight_quant.wgt_alpha])
    with fast_train.levels_forward(conv, amp=False):
        out = conv(x2)
    grads = torch.autograd.grad(out.square().sum(), [x2, conv.weight, conv.act_alpha, conv.weight_quant.wgt_alpha])
    assert "forward" not in vars(conv)                      # the model's own forward is back
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    # Float summation order differs between the two paths; negative input levels are unbounded
    # below (the notebooks' quantizer), so the gradient sums cancel from larger terms.
    for g, r in zip(grads, grads_ref):
        torch.testing.assert_close(g, r, rtol=1e-3, atol=1e-3)


def test_bf16_convolves_exact_levels():
    """Under bf16 autocast the quantizers still give the float32 levels, the convolution of
    the levels is exact, and its sum is rounded to bf16 once."""
    conv = _layer(8, 8, 0)
    x = torch.rand(2, 8, 4, 4) * 3.0
    with torch.no_grad():
        s_a, s_w = conv.act_delta, conv.w_delta
        x_int = torch.round(conv.quantize_input(x) / s_a).long()
        w_int = torch.round(conv.quantize_weight() / s_w).long()
        with fast_train.levels_forward(conv, amp=True):
            out = conv(x.bfloat16())                          # a bf16 activation, as under autocast
        x_bf = x.bfloat16().float()
        x_int_bf = torch.round(conv.quantize_input(x_bf) / s_a).long()
        exact_bf = F.conv2d(x_int_bf.double(), w_int.double(), padding=1).long()
    assert x_int.max() == 15 and w_int.abs().max() == 7
    assert exact_bf.abs().max() > 256                         # sums that bf16 must round
    scale = conv.act_alpha.detach() / 15 * (conv.weight_quant.wgt_alpha.detach() / 7)
    assert torch.equal(out, exact_bf.double().bfloat16().float() * scale)
    assert out.dtype == torch.float32


def test_lr_schedule():
    f = [fast_train.lr_factor(step, 4, 20) for step in range(21)]
    assert f[0] == pytest.approx(0.1) and f[4] == 1.0 and f[20] == pytest.approx(0.001)
    assert f[:5] == sorted(f[:5]) and f[4:] == sorted(f[4:], reverse=True)
    assert f[12] == pytest.approx(0.001 + 0.999 * 0.5)                   # half-way down the cosine


def _write_jpg_folders(root, n_train, n_test):
    from PIL import Image

    for split, n, seed in (("train", n_train, 0), ("test", n_test, 1)):
        x, y = synthetic_uint8(n, seed)
        counts = [0] * 10
        for img, label in zip(x.permute(0, 2, 3, 1).numpy(), y.tolist()):
            folder = root / split / CLASSES[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(folder / f"{counts[label]:04d}.jpg", quality=95)
            counts[label] += 1
    return root


@pytest.fixture(scope="module")
def jpg_data(tmp_path_factory):
    return _write_jpg_folders(tmp_path_factory.mktemp("jpg"), 16, 8)


def test_jpg_folders(jpg_data):
    x, y = fast_train.load_split(jpg_data, "test")
    ref_x, ref_y = synthetic_uint8(8, 1)
    assert x.dtype == torch.uint8 and x.shape == (8, 3, 32, 32)
    assert sorted(y.tolist()) == sorted(ref_y.tolist())
    # JPEG at quality 95: close to the source images, not equal
    first = x[(y == y[0]).nonzero()[0, 0]]
    src = ref_x[(ref_y == y[0]).nonzero()[0, 0]]
    assert (first.int() - src.int()).abs().float().mean() < 6
    assert len(fast_train.load_split(jpg_data, "train", limit=5)[1]) == 5


def test_as_nchw():
    with pytest.raises(DataError, match="uint8"):
        fast_train.as_nchw(torch.zeros(2, 32, 32, 3))
    assert fast_train.as_nchw(torch.zeros(2, 32, 32, 3, dtype=torch.uint8)).shape == (2, 3, 32, 32)


def test_fast_cli_one_epoch(jpg_data, tmp_path, capsys):
    out = tmp_path / "run"
    # --epochs 5 is a maximum: a budget of 1 ms leaves the warm-up epoch and one after it
    rc = main(["train", "--fast", "--data", str(jpg_data), "--epochs", "5", "--batch-size", "8", "--limit", "8",
               "--test-limit", "4", "--warmup-epochs", "1", "--lr", "0.01", "--time-budget", "0.001",
               "--out", str(out), "--device", "cpu"])
    text, err = capsys.readouterr()
    assert rc == 0, err
    assert "float32, channels-last" in text and "at most 5 epochs" in text and "images/s" in text
    # the plan cannot fit 1 ms: it says what it runs instead
    assert "planning 2 epochs (over the budget: the warm-up and an epoch after it come first, about " in text
    assert "epoch 2/2: " in text and "epoch 3" not in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs"] == 2 and summary["batch_size"] == 8 and not summary["amp_bf16"]
    assert summary["train_images"] == 8 and summary["test_images"] == 4
    assert [row["epoch"] for row in summary["history"]] == [1, 2]
    assert summary["epoch_seconds_with_eval"] >= summary["train_seconds"] > 0
    assert summary["history"][0]["lr"] > summary["history"][1]["lr"]       # cosine after the warm-up
    model, ckpt, _ = model_from_checkpoint(out / "last.pt")
    x, y = fast_train.load_split(jpg_data, "test", limit=4)
    correct, total, _ = evaluate(model, x, y, 4)
    assert total == 4 and 100.0 * correct / total == summary["final_test_acc_fp32"] == ckpt["best_prec"]
    assert fast_train.evaluate_checkpoint(out / "last.pt", jpg_data, "cpu", limit=4)["correct"] == correct


def test_fast_defaults_and_errors(jpg_data, tmp_path, capsys, monkeypatch):
    import model.train as train_mod

    seen = {}
    monkeypatch.setattr(train_mod, "run_train", lambda args: seen.update(vars(args)) or 0)
    assert fast_train.run_train_command(build_parser().parse_args(["train"])) == 0
    assert (seen["batch_size"], seen["lr"], seen["weight_decay"]) == (128, 1e-2, 4e-4)   # classic trainer's
    for argv, needle in ((["--epochs", "2", "--warmup-epochs", "2"], "--warmup-epochs 2 must be fewer than --epochs 2"),
                         (["--resume", "x.pt"], "--resume is not supported with --fast")):
        rc = main(["train", "--fast", "--data", str(jpg_data), "--out", str(tmp_path), "--device", "cpu", *argv])
        err = capsys.readouterr().err.splitlines()
        assert rc == 1 and len(err) == 1 and needle in err[0], err
    # the classic trainer refuses the options only --fast reads (it used to ignore them), before any data
    for argv in (["--time-budget", "5"], ["--label-smoothing", "0.5"], ["--amp", "on"], ["--warmup-epochs", "1"]):
        rc = main(["train", "--data", str(tmp_path / "none"), "--out", str(tmp_path), *argv])
        err = capsys.readouterr().err.splitlines()
        assert rc == 1 and err == [f"error: {argv[0]} needs --fast (the classic trainer has no such option)"], err
    # an unset warm-up shrinks to half of a short run (--epochs 1 was refused by the default 2)
    monkeypatch.setattr(fast_train, "train_fast", lambda *a, **kw: seen.update(kw))
    for epochs, warmup in (("1", 0.5), ("2", 1.0), ("3", 2.0)):
        assert main(["train", "--fast", "--data", str(jpg_data), "--out", str(tmp_path), "--epochs", epochs]) == 0
        assert (seen["warmup_epochs"], seen["label_smoothing"]) == (warmup, 0.1), epochs
    capsys.readouterr()
    for argv in (["--label-smoothing", "2"], ["--warmup-epochs", "-3"], ["--time-budget", "-5"]):
        rc = main(["train", "--fast", "--data", str(tmp_path / "none"), *argv])   # refused before any data
        err = capsys.readouterr().err.splitlines()
        assert rc == 2 and len(err) == 1 and f"argument {argv[0]}: must be" in err[0], err
