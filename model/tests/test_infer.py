"""systolic infer: bad input is one line and a non-zero exit, before any simulation."""
from __future__ import annotations

import pytest

from model.checkpoint import save_checkpoint
from model.cli import main
from model.hwconfig import CONFIG
from model.infer import parse_images
from model.tests.test_cli import dataset, one_line_error  # noqa: F401 - dataset is a fixture
from model.vgg import build_model


def error_line(capsys) -> str:
    return one_line_error(capsys.readouterr().err)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A checkpoint of a small network (not the project VGG16)."""
    path = tmp_path_factory.mktemp("ck") / "small.pt"
    return save_checkpoint(path, build_model("8,M,8", seed=0), "8,M,8", 1, 0.0)


def test_images_ranges():
    assert parse_images("0:20") == range(0, 20)
    assert parse_images("0:10000:500") == range(0, 10000, 500)
    for bad in ("5:3", "0:10001", "0:4:0", "3", "a:b", "-1:2"):
        with pytest.raises(ValueError):
            parse_images(bad)


@pytest.mark.parametrize("argv, status, needle", [
    (["--model", "vgg17"], 2, "unknown model 'vgg17'"),
    (["--image", "10000"], 2, "--image: must be an integer in 0..9999"),
    (["--images", "4:2"], 2, "--images: expected 0 <= A < B"),
    (["--image", "1", "--images", "0:2"], 2, "not allowed with argument"),
    (["--sim", "modelsim"], 2, "--sim: invalid choice"),
    (["--array", "17"], 2, "--array: must be an integer in 2..16, got '17'"),     # the 4-bit WCOL field
])
def test_usage_errors(argv, status, needle, capsys, tmp_path):
    assert main(["infer", "--out", str(tmp_path), *argv]) == status
    assert needle in error_line(capsys)


def test_image_out_of_range_of_the_data(dataset, capsys, tmp_path):
    assert main(["infer", "--out", str(tmp_path), "--data", str(dataset), "--image", "6"]) == 1
    assert "image index 6 out of range: the test set has 6 images" in error_line(capsys)


def test_checkpoint_of_another_network(checkpoint, capsys, tmp_path):
    assert main(["infer", "--out", str(tmp_path), "--checkpoint", str(checkpoint),
                 "--model", "vgg16_quant_project"]) == 1
    assert str(checkpoint) in error_line(capsys)


def test_array_too_small_for_a_conv(capsys, tmp_path):
    """A conv the array cannot run is refused, named as the model has it (not the signed input's
    digit split, 6->64), before the header is printed or the player and any program are built."""
    assert main(["infer", "--out", str(tmp_path), "--model", "64,M,8", "--array", "4"]) == 1
    out, err = capsys.readouterr()
    vectors = 64 // 4 * 32 * 32          # 16 oc tiles x 1024 pixels
    assert one_line_error(err) == ("error: --array 4: features.0 (3->64, 32x32) cannot run on the 4x4 core: "
                                   f"{vectors} output vectors do not fit the SFP bank ({CONFIG.sfp_depth} entries)")
    assert out == "" and list(tmp_path.iterdir()) == []


def test_unreachable_scheduler(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr("model.infer.SCHEDULER_TIMEOUT_S", 1)
    assert main(["infer", "--out", str(tmp_path), "--images", "0:2", "--scheduler", "tcp://127.0.0.1:1"]) == 1
    assert "--scheduler tcp://127.0.0.1:1: no Dask scheduler answers within 1 s" in error_line(capsys)


def test_saved_results_are_keyed_on_the_rtl_sources(tmp_path, monkeypatch):
    """An edit to the RTL (or the player, or a program builder) must not reuse images.jsonl."""
    import shutil
    from types import SimpleNamespace

    from model import infer
    from model.network import Network

    repo = tmp_path / "repo"
    shutil.copytree(infer._REPO / "rtl", repo / "rtl")
    monkeypatch.setattr(infer, "_REPO", repo)
    net = Network(build_model("8,M,8", seed=0), image_size=8)
    args = SimpleNamespace(data=None, seed=0, sim="verilator", array=8)
    before = infer._run_key(args, "seeded", net)
    assert infer._run_key(args, "seeded", net) == before
    mac = repo / "rtl" / "mac.v"
    mac.write_text(mac.read_text() + "\n// an edit\n")
    assert infer._run_key(args, "seeded", net) != before


def test_saved_results_are_keyed_on_the_image_pixels(tmp_path, monkeypatch, capsys):
    """A rerun skips an image only when its pixels are the same: an image file replaced under
    the same index runs again (it used to get the old file's result)."""
    from types import SimpleNamespace

    import torch

    from model import infer

    ran = []
    monkeypatch.setattr(infer, "image_job", lambda net, sim, array, build, index, image, label, quiet=False:
                        ran.append(index) or {"index": index, "label": label})
    args = SimpleNamespace(workers=0, sim="verilator", array=8)
    first, other = torch.zeros(3, 32, 32), torch.zeros(3, 32, 32)
    other[0, 0, 0] = 1.0
    for image, runs_now in ((first, True), (first, False), (other, True), (other, False)):
        before = len(ran)
        results, fresh = infer.run_all(args, None, [(40, image, 5)], "key", tmp_path)
        assert len(ran) - before == runs_now and fresh == ({40} if runs_now else set())
        assert [r["index"] for r in results] == [40]
        assert ("already in" in capsys.readouterr().out) != runs_now
