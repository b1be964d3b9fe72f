import os
import pickle
import zipfile

import pytest
import torch

from model.checkpoint import infer_model_name, load_checkpoint, model_from_checkpoint, save_checkpoint
from model.data import write_synthetic_cifar
from model.errors import CheckpointError, ModelError
from model.train import evaluate, lr_at, resolve_device, train
from model.vgg import build_model


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_synthetic_cifar(tmp_path_factory.mktemp("cifar"), n_train=40, n_test=12, seed=0)


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    lines = []
    result = train(data=dataset, epochs=1, out=out, device="cpu", batch_size=8, limit=16,
                   print_freq=1, log=lines.append)
    return out, result, lines


def test_lr_schedule():
    assert [lr_at(e, 8, 1.0) for e in range(8)] == pytest.approx([1, 1, 1, 1, 0.1, 0.1, 0.01, 0.01])
    assert lr_at(0, 1, 0.5) == 0.5


def test_train_one_epoch_writes_checkpoints(trained):
    out, result, lines = trained
    assert (out / "last.pt").is_file() and (out / "best.pt").is_file()
    assert result["model"] == "vgg16_quant_project"
    text = "\n".join(lines)
    assert "Epoch: [1][1/2]" in text and "Epoch: [1][2/2]" in text  # per-batch progress
    assert "epoch 1/1: 2 batches" in text and "train acc" in text and "test acc" in text and "time" in text
    ckpt = torch.load(out / "last.pt", weights_only=True, map_location="cpu")
    assert set(ckpt) == {"state_dict", "epoch", "best_prec", "model", "act_quant", "optimizer"}
    assert ckpt["act_quant"] == "course"
    assert ckpt["epoch"] == 1 and ckpt["model"] == "vgg16_quant_project"
    assert isinstance(ckpt["best_prec"], float)
    assert ckpt["optimizer"]["param_groups"][0]["momentum"] == 0.9
    assert ckpt["optimizer"]["param_groups"][0]["weight_decay"] == 4e-4


def test_eval_saved_checkpoint(trained, dataset):
    out, result, _ = trained
    model, ckpt, name = model_from_checkpoint(out / "best.pt")
    assert name == "vgg16_quant_project"
    from model.data import load_cifar10

    x, y = load_cifar10(dataset, "test")
    correct, total, loss = evaluate(model, x, y, 12)
    assert total == 12 and 0 <= correct <= 12
    assert 100.0 * correct / total == pytest.approx(ckpt["best_prec"])


def test_resume(trained, dataset, tmp_path):
    out, _, _ = trained
    lines = []
    res = train(data=dataset, epochs=2, out=tmp_path, device="cpu", batch_size=8, limit=8,
                resume=out / "last.pt", print_freq=0, log=lines.append)
    assert "optimizer state mapped: momentum of 65 parameters restored" in lines[0]
    assert "resumed vgg16_quant_project" in lines[1] and "at epoch 1" in lines[1]
    assert sum(line.startswith("epoch ") for line in lines) == 1  # only epoch 2 ran
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 2
    assert res["epoch"] == 2
    with pytest.raises(ModelError, match="vgg16_quant_project"):
        train(data=dataset, epochs=2, out=tmp_path, device="cpu", resume=out / "last.pt", model_name="vgg16_quant")


def test_train_option_errors(dataset, tmp_path):
    with pytest.raises(ModelError, match="epochs"):
        train(data=dataset, epochs=0, out=tmp_path)
    with pytest.raises(ModelError, match="limit"):
        train(data=dataset, epochs=1, out=tmp_path, limit=0)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ModelError, match="not a directory"):
        train(data=dataset, epochs=1, out=tmp_path / "file", device="cpu")
    with pytest.raises(ModelError, match="device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="CUDA is not available"):
            resolve_device("cuda")


# ----------------------------------------------------------------------------- checkpoints
@pytest.fixture(scope="module")
def project_sd():
    return build_model("vgg16_quant_project", seed=0).state_dict()


def test_accepts_bare_and_notebook_formats(project_sd, tmp_path):
    torch.save(project_sd, tmp_path / "bare.pt")
    ck = load_checkpoint(tmp_path / "bare.pt")
    assert ck["model"] is None and ck["epoch"] == 0 and set(ck["state_dict"]) == set(project_sd)
    assert infer_model_name(ck["state_dict"]) == "vgg16_quant_project"
    model, _, name = model_from_checkpoint(tmp_path / "bare.pt")
    assert name == "vgg16_quant_project"
    assert torch.equal(model.features[27].weight, project_sd["features.27.weight"])
    # course notebook: {"state_dict", "epoch", "best_prec", "optimizer"}, DataParallel
    # "module." prefix, and QuantConv2d.weight_q registered as a parameter
    sd = {"module." + k: v for k, v in project_sd.items()}
    sd["module.features.27.weight_q"] = torch.zeros(8, 8, 3, 3)
    torch.save({"epoch": 200, "state_dict": sd, "best_prec": 91.6, "optimizer": {}}, tmp_path / "nb.pth.tar")
    model = build_model("vgg16_quant_project")
    ck = load_checkpoint(tmp_path / "nb.pth.tar", model)
    assert ck["epoch"] == 200 and ck["best_prec"] == 91.6
    assert torch.equal(model.features[27].weight, project_sd["features.27.weight"])


class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_unsafe_checkpoint_refused_without_running(project_sd, tmp_path):
    marker = str(tmp_path / "pwned")
    torch.save({"state_dict": project_sd, "epoch": 1, "payload": Evil(marker)}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(tmp_path / "evil.pt")
    msg = str(e.value)
    assert msg.startswith(f"{tmp_path / 'evil.pt'}: refused: needs pickle code to load")
    assert "\n" not in msg
    assert not os.path.exists(marker)
    # a plain pickle (not even a torch zip) with a __reduce__ payload
    with open(tmp_path / "evil.pkl", "wb") as f:
        pickle.dump({"state_dict": Evil(marker)}, f, protocol=2)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(tmp_path / "evil.pkl")
    assert not os.path.exists(marker)


def test_custom_class_refused(tmp_path):
    torch.save({"state_dict": {"w": torch.zeros(1)}, "cfg": Evil("/nonexistent/x")}, tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(tmp_path / "c.pt")


def test_bad_files(tmp_path, project_sd):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="not a file"):
        load_checkpoint(tmp_path)
    (tmp_path / "text.pt").write_text("this is not a checkpoint\n")
    (tmp_path / "empty.pt").write_bytes(b"")
    torch.save(project_sd, tmp_path / "ok.pt")
    raw = (tmp_path / "ok.pt").read_bytes()
    (tmp_path / "trunc.pt").write_bytes(raw[: len(raw) // 3])
    with zipfile.ZipFile(tmp_path / "zip.pt", "w") as z:
        z.writestr("hello.txt", "hi")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    torch.save({"state_dict": [1, 2]}, tmp_path / "bad_sd.pt")
    for name in ("text.pt", "empty.pt", "trunc.pt", "zip.pt", "list.pt", "bad_sd.pt"):
        with pytest.raises(CheckpointError) as e:
            load_checkpoint(tmp_path / name)
        msg = str(e.value)
        assert "\n" not in msg and str(tmp_path / name) in msg, msg


def test_wrong_architecture(tmp_path, project_sd):
    classic = build_model("vgg16_quant", seed=0)
    torch.save({"state_dict": classic.state_dict()}, tmp_path / "classic.pt")
    with pytest.raises(CheckpointError, match="wrong architecture.*features.24"):
        load_checkpoint(tmp_path / "classic.pt", build_model("vgg16_quant_project"))
    sd = dict(project_sd)
    sd["features.27.weight"] = torch.zeros(8, 8, 1, 1)
    torch.save(sd, tmp_path / "shape.pt")
    with pytest.raises(CheckpointError, match=r"'features.27.weight' has shape \(8, 8, 1, 1\)"):
        load_checkpoint(tmp_path / "shape.pt", build_model("vgg16_quant_project"))
    sd = dict(project_sd)
    sd["features.99.weight"] = torch.zeros(1)
    torch.save(sd, tmp_path / "extra.pt")
    with pytest.raises(CheckpointError, match="unexpected key 'features.99.weight'"):
        load_checkpoint(tmp_path / "extra.pt", build_model("vgg16_quant_project"))
    with pytest.raises(CheckpointError, match="unexpected key 'features.99.weight'"):
        model_from_checkpoint(tmp_path / "extra.pt")


def test_save_checkpoint_roundtrip(tmp_path):
    model = build_model("vgg16_quant", seed=1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    p = save_checkpoint(tmp_path / "x.pt", model, "vgg16_quant", 3, 55.5, opt)
    m2, ck, name = model_from_checkpoint(p)
    assert name == "vgg16_quant" and ck["epoch"] == 3 and ck["best_prec"] == 55.5
    assert torch.equal(m2.features[0].weight, model.features[0].weight)
    assert not (tmp_path / "x.pt.tmp").exists()
