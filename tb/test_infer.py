"""The whole network on the RTL core (model.network + tb.core_conv): a reduced network end to
end, bit-exact per layer; systolic infer's JSON; a Dask local cluster gives the serial results."""
from __future__ import annotations

import json

import pytest

from model.cli import main
from model.data import write_synthetic_cifar
from model.network import Network, run_image
from model.tests.test_network import TINY_GAMMA, TINY_SIZE, tiny_images, tiny_model
from tb.core_conv import CoreConv

# Two convs, 4x4 and 2x2: three pools of the 32x32 image before the first (signed) conv, the
# second raw to the host.
CLI_MODEL = "M,M,M,8,M,8n"
LAYER_KEYS = {"name", "in_channels", "out_channels", "height", "width", "dataflow", "cycles", "macs",
              "outputs_checked", "mismatches", "torch_differences"}
TIMING = ("build_s", "sim_s", "sim_cpu_s", "check_s")


@pytest.mark.long
def test_tiny_network_on_the_cocotb_core(tmp_path):
    """3 convs (signed first layer; BatchNorm scales > 0, < 0 and 0; a conv without BatchNorm)
    on an 8x8 image, each on the cocotb layer bench (every psum checked there too): every
    layer's core output equals the integer reference, and so does the prediction."""
    net = Network(tiny_model(), image_size=TINY_SIZE)
    assert net.stages[0].requant.descending.tolist() == [g < 0 for g in TINY_GAMMA]
    image = tiny_images(2, seed=7)[1]
    assert net.first_levels(image).min() < 0                   # the signed first layer
    r = run_image(net, image, CoreConv(sim="cocotb", array_size=8, build=tmp_path), index=1)
    assert [(l.mismatches, l.errors) for l in r.layers] == [(0, 0)] * 3, r.layers
    assert [l.outputs_checked for l in r.layers] == [8 * 64, 8 * 16, 8 * 4]
    assert all(l.cycles > 0 for l in r.layers)
    assert r.prediction_hw == r.prediction_reference


def infer(capsys, out, *argv) -> str:
    rc = main(["infer", "--model", CLI_MODEL, "--sim", "icarus", "--out", str(out), "--images", "0:3",
               *map(str, argv)])
    text = capsys.readouterr().out
    assert rc == 0, text
    return text


def records(folder) -> dict:
    """images.jsonl by image index, without the wall-clock fields."""
    out = {}
    for line in (folder / "images.jsonl").read_text().splitlines():
        rec = json.loads(line)
        for layer in rec["layers"]:
            for k in TIMING:
                layer.pop(k)
        out[rec["index"]] = rec
    return out


@pytest.mark.long
def test_cli_local_cluster_equals_serial(tmp_path, capsys):
    """--images on a 2-worker local cluster writes the same per-image results and infer.json as
    --workers 0 (one after the other, in the same folder: the player and templates are reused);
    a rerun skips the finished images."""
    data = write_synthetic_cifar(tmp_path / "cifar", n_train=5, n_test=3, seed=2)
    out = tmp_path / "infer"
    infer(capsys, out, "--data", data, "--workers", 2)
    dask, dask_json = records(out), json.loads((out / "infer.json").read_text())
    (out / "images.jsonl").unlink()
    text = infer(capsys, out, "--data", data, "--workers", 0)
    assert "hardware = integer reference on 3/3" in text and "hardware accuracy" in text
    serial = json.loads((out / "infer.json").read_text())
    assert {"layers", "total_cycles", "total_macs", "images", "wall_s"} <= set(serial)
    assert [l["name"] for l in serial["layers"]] == ["features.3", "features.7"]
    for layer in serial["layers"]:
        assert LAYER_KEYS <= set(layer) and layer["mismatches"] == 0
        assert layer["outputs_checked"] == 3 * layer["out_channels"] * layer["height"] * layer["width"]
    assert serial["total_cycles"] == sum(l["cycles"] for l in serial["layers"]) > 0
    assert [set(i) for i in serial["images"]] == [{"index", "label", "prediction_hw", "prediction_torch",
                                                   "prediction_reference"}] * 3
    assert serial["layers"] == dask_json["layers"] and serial["images"] == dask_json["images"]
    assert records(out) == dask
    again = infer(capsys, out, "--data", data, "--workers", 0)
    assert "3 image(s) already in" in again and records(out) == dask
    assert (out / "infer.png").stat().st_size > 0
