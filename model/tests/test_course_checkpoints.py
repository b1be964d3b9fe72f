"""Checkpoints written the course notebooks' way, for each layout: load, evaluate, resume, export.

The course QuantConv2d registers ``weight_q`` as a parameter right after ``act_alpha``, so
its state_dict and its SGD optimizer (built over ``model.parameters()``) hold one more
entry per conv than ours; ``weight_q`` never gets a gradient, so it has no momentum.
"""

import numpy as np
import pytest
import torch

from model.checkpoint import load_checkpoint, map_optimizer_state, model_from_checkpoint, save_checkpoint
from model.cli import main
from model.data import write_synthetic_cifar
from model.errors import CheckpointError, LayerError
from model.train import train
from model.vgg import MODELS, build_model, layout_from_state_dict, parse_layout

BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def course_state(model):
    """The course model's state_dict: ours plus ``<conv>.weight_q`` after each ``act_alpha``."""
    sd = {}
    for key, t in model.state_dict().items():
        sd[key] = t.clone()
        if key.endswith(".act_alpha"):
            conv = model.get_submodule(key.rsplit(".", 1)[0])
            sd[key[: -len("act_alpha")] + "weight_q"] = conv.quantize_weight().detach()
    return sd


def course_optimizer(sd, seed=0):
    """A real SGD state over the course model's parameters (course order, weight_q gradient-free)."""
    g = torch.Generator().manual_seed(seed)
    params = {k: torch.nn.Parameter(v.clone()) for k, v in sd.items() if k.rsplit(".", 1)[-1] not in BUFFERS}
    opt = torch.optim.SGD(params.values(), lr=1e-2, momentum=0.9, weight_decay=4e-4)
    for key, p in params.items():
        p.grad = None if key.endswith("weight_q") else torch.randn(p.shape, generator=g)
    opt.step()
    return opt.state_dict(), list(params)


def save_course(path, model, prefix="", epoch=7, best_prec=np.float64(61.5), optimizer=True, **extra):
    sd = course_state(model)
    state = {"epoch": epoch, "state_dict": {prefix + k: v for k, v in sd.items()}, "best_prec": best_prec, **extra}
    if optimizer:
        state["optimizer"] = course_optimizer(sd)[0]
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_synthetic_cifar(tmp_path_factory.mktemp("cifar"), n_train=10, n_test=6, seed=2)


def call(argv, capsys):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("name", ["vgg16_quant_project", "vgg16_quant_project_part1", "vgg16_quant_project_part2"])
@pytest.mark.parametrize("prefix", ["", "module.", "_orig_mod.", "_orig_mod.module."])
def test_course_checkpoint_loads_as_saved(name, prefix, tmp_path):
    model = build_model(name, seed=3)
    path = save_course(tmp_path / "model_best.pth.tar", model, prefix)
    loaded, ckpt, label = model_from_checkpoint(path)
    assert label == name and ckpt["epoch"] == 7 and ckpt["best_prec"] == 61.5
    assert ckpt["weight_q"] == 13 and loaded.act_quant == "course"
    assert loaded.a_bit == MODELS[name].a_bit
    for key, t in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], t), key


def test_eval_resume_export_of_a_course_checkpoint(dataset, tmp_path, capsys):
    model = build_model("vgg16_quant_project_part1", seed=4)
    path = save_course(tmp_path / "checkpoint.pth", model, "module.", epoch=np.int64(1))
    rc, out, err = call(["eval", "--checkpoint", path, "--data", dataset, "--device", "cpu"], capsys)
    assert rc == 0, err
    assert out.startswith("Test set: Accuracy: ") and "/6 (" in out
    assert "model vgg16_quant_project_part1, activation quantizer course" in err

    lines = []
    train(data=dataset, epochs=2, out=tmp_path / "run", device="cpu", batch_size=4, resume=path,
          print_freq=0, log=lines.append)
    n_params = len(list(model.parameters()))  # every one had a gradient in the course optimizer
    assert lines[0].endswith(f"optimizer state mapped: momentum of {n_params} parameters restored "
                             f"(13 weight_q entries dropped)")
    assert "resumed vgg16_quant_project_part1" in lines[1] and "at epoch 1" in lines[1]
    assert load_checkpoint(tmp_path / "run" / "last.pt")["model"] == "vgg16_quant_project_part1"

    out_dir = tmp_path / "export"
    rc, out, err = call(["export", "--checkpoint", path, "--out", out_dir, "--data", dataset, "--image", "2"], capsys)
    assert rc == 0, err
    assert "layer        features.27  (8 -> 8 channels" in out and "test image 2:" in out
    assert "model        vgg16_quant_project_part1, activation quantizer course" in out
    assert (out_dir / "tensors.npz").is_file()


def test_optimizer_state_is_mapped_by_name(tmp_path):
    model = build_model("vgg16_quant_project", seed=5)
    sd = course_state(model)
    saved, order = course_optimizer(sd, seed=1)
    path = tmp_path / "c.pth"
    torch.save({"epoch": 3, "state_dict": sd, "best_prec": 10.0, "optimizer": saved}, path)
    ckpt = load_checkpoint(path)
    state, why = map_optimizer_state(ckpt, model)
    assert state is not None, why
    opt = torch.optim.SGD(model.parameters(), lr=1e-2, momentum=0.9)
    opt.load_state_dict(state)
    names = [n for n, _ in model.named_parameters()]
    for name in ("features.27.weight", "features.27.act_alpha", "features.27.weight_quant.wgt_alpha", "classifier.bias"):
        ours = opt.state[dict(model.named_parameters())[name]]["momentum_buffer"]
        assert torch.equal(ours, saved["state"][order.index(name)]["momentum_buffer"]), name
    assert len(opt.state) == len(names)
    # A state that does not fit: one line, and train starts a fresh optimizer.
    saved["param_groups"][0]["params"] = saved["param_groups"][0]["params"][:-1]
    torch.save({"epoch": 3, "state_dict": sd, "best_prec": 10.0, "optimizer": saved}, path)
    state, why = map_optimizer_state(load_checkpoint(path), model)
    assert state is None and why == f"the saved optimizer covers {len(order) - 1} parameters, the saved model has {len(order)}"


def test_fresh_optimizer_and_best_only_on_improvement(dataset, tmp_path):
    model = build_model("vgg16_quant_project", seed=6)
    path = save_course(tmp_path / "c.pth", model, optimizer=False, epoch=1, best_prec=np.float64(100.0))
    lines = []
    train(data=dataset, epochs=2, out=tmp_path / "run", device="cpu", batch_size=4, resume=path,
          print_freq=0, log=lines.append)
    assert lines[0] == (f"=> {path}: optimizer state not used (the checkpoint holds no optimizer state); "
                        f"starting a fresh SGD optimizer")
    # 100% cannot be beaten: no best.pt, and one line says so.
    assert not (tmp_path / "run" / "best.pt").exists()
    assert lines[-1].startswith(f"=> no {tmp_path / 'run' / 'best.pt'}: no epoch beat the best accuracy so far (100.00%)")
    assert load_checkpoint(tmp_path / "run" / "last.pt")["best_prec"] == 100.0


def test_model_option_is_honoured(dataset, tmp_path, capsys):
    path = save_course(tmp_path / "c.pth", build_model("vgg16_quant_project", seed=7))
    for cmd in (["eval", "--data", dataset], ["export", "--out", tmp_path / "x"],
                ["train", "--data", dataset, "--epochs", "9", "--out", tmp_path / "r"]):
        flag = "--resume" if cmd[0] == "train" else "--checkpoint"
        rc, _, err = call(cmd + [flag, path, "--model", "vgg16_quant_project_part1"], capsys)
        assert rc == 1, err
        assert err.strip().endswith("wrong architecture: missing key 'features.32.weight' "
                                    "(its keys and shapes are those of vgg16_quant_project)"), err
    rc, _, err = call(["eval", "--checkpoint", path, "--data", dataset, "--model", "vgg17"], capsys)
    assert rc == 2 and "unknown model 'vgg17'" in err


def test_signed_first_layer_refused_on_the_array_unless_unsigned(tmp_path, capsys):
    path = save_course(tmp_path / "c.pth", build_model("vgg16_quant_project", seed=8))
    rc, out, err = call(["export", "--checkpoint", path, "--out", tmp_path / "a", "--layer", "features.0"], capsys)
    assert rc == 1
    line = err.strip()
    assert "\n" not in line and line.startswith("error: features.0: its input activations are signed (levels -")
    assert line.endswith("course quantizer) and the array takes unsigned 0..15: capture another layer, "
                         "or run the unsigned quantizer (--act-quant unsigned)")
    rc, out, err = call(["export", "--checkpoint", path, "--out", tmp_path / "b", "--layer", "features.0",
                         "--act-quant", "unsigned"], capsys)
    assert rc == 0, err
    assert np.load(tmp_path / "b" / "tensors.npz")["x_int"].min() == 0


def test_numpy_metadata_cuda_saved_and_unsafe_globals(tmp_path, monkeypatch):
    model = build_model("vgg16_quant_project", seed=9)
    sd = course_state(model)
    # Saved on a CUDA machine: the storages are tagged "cuda:0".
    with monkeypatch.context() as m:
        m.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        torch.save({"epoch": np.int64(5), "state_dict": sd, "best_prec": np.float32(88.25)}, tmp_path / "gpu.pth")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(tmp_path / "gpu.pth", weights_only=False)
    ckpt = load_checkpoint(tmp_path / "gpu.pth")
    assert (ckpt["epoch"], ckpt["best_prec"]) == (5, 88.25)
    assert ckpt["state_dict"]["features.0.weight"].device.type == "cpu"
    # Only the numpy scalar globals are allowed: an object array still needs pickle code.
    torch.save({"state_dict": sd, "best_prec": np.array([1, 2], dtype=object)}, tmp_path / "obj.pth")
    with pytest.raises(CheckpointError, match="refused: needs pickle code"):
        load_checkpoint(tmp_path / "obj.pth")


def test_non_finite_weights_refused(tmp_path):
    sd = course_state(build_model("vgg16_quant_project", seed=10))
    sd["features.3.weight"][0, 0, 0, :2] = torch.tensor([float("nan"), float("inf")])
    torch.save({"state_dict": sd}, tmp_path / "nan.pth")
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(tmp_path / "nan.pth")
    assert str(e.value) == (f"{tmp_path / 'nan.pth'}: refused: 'features.3.weight' holds non-finite values "
                            f"(1 NaN, 1 inf of 36864); the training that wrote it diverged")


def test_unreadable_files_in_one_line(tmp_path):
    """Truncated, empty, non-pickle and plain-pickle files: one line each, no torch advice cut
    mid-sentence, no UserWarning about the pickle protocol before the refusal."""
    import pickle
    import warnings

    raw = save_checkpoint(tmp_path / "m.pt", build_model("8,M,8", seed=0), "8,M,8", 1, 0.0).read_bytes()
    cases = [(raw[:100], "not a torch checkpoint (truncated or corrupt zip archive)"),
             (raw[:len(raw) // 2], "not a torch checkpoint (truncated or corrupt zip archive)"),
             (raw[:-10], "not a torch checkpoint (truncated or corrupt zip archive)"),
             (b"", "empty file, not a checkpoint"),
             (b"junk", "not a torch checkpoint (neither a zip archive nor a pickle)"),
             (pickle.dumps({"state_dict": {}}, protocol=4),
              "refused: not a plain-tensor torch checkpoint (pickle opcode 149)")]
    for data, message in cases:
        (tmp_path / "bad.pt").write_bytes(data)
        with warnings.catch_warnings(record=True) as seen, pytest.raises(CheckpointError) as e:
            warnings.simplefilter("always")
            load_checkpoint(tmp_path / "bad.pt")
        assert str(e.value) == f"{tmp_path / 'bad.pt'}: {message}", data[:20]
        assert [str(w.message) for w in seen] == [], data[:20]


def test_unknown_model_name_in_the_file_is_blamed_on_the_file(tmp_path):
    """A model name the checkpoint itself holds (the user typed no --model) is reported as the
    file's, for a full and a packed checkpoint; --model overrides it."""
    from model.packed import write_packed

    model = build_model("8,M,8", seed=0)
    full = save_checkpoint(tmp_path / "full.pt", model, "resnet20", 1, 0.0)
    packed = write_packed(tmp_path / "m.q4", model.state_dict(), "../../etc")
    layout = save_checkpoint(tmp_path / "layout.pt", model, "8,Q,8", 1, 0.0)
    valid = ", ".join(MODELS)
    for path, name in ((full, "resnet20"), (packed, "../../etc")):
        with pytest.raises(CheckpointError) as e:
            model_from_checkpoint(path)
        assert str(e.value) == (f"{path}: names model {name!r}, not one of {valid} nor a layout string; "
                                "--model NAME reads it as another")
        assert model_from_checkpoint(path, "8,M,8")[2] == model.layout.label
    with pytest.raises(CheckpointError, match=rf"^{layout}: names model '8,Q,8', a layout that does not parse \("):
        model_from_checkpoint(layout)


def test_resnet20_is_named(tmp_path):
    sd = {"conv1.weight": torch.zeros(16, 3, 3, 3), "bn1.weight": torch.ones(16), "linear.weight": torch.zeros(10, 64)}
    for stage, width in ((1, 16), (2, 32), (3, 64)):
        for block in range(3):
            for conv in (1, 2):
                sd[f"layer{stage}.{block}.conv{conv}.weight"] = torch.zeros(width, width, 3, 3)
                sd[f"layer{stage}.{block}.bn{conv}.weight"] = torch.ones(width)
    torch.save({"epoch": 1, "state_dict": {"module." + k: v for k, v in sd.items()}}, tmp_path / "r20.pth")
    with pytest.raises(CheckpointError) as e:
        model_from_checkpoint(tmp_path / "r20.pth", "vgg16_quant_project")
    assert str(e.value) == (f"{tmp_path / 'r20.pth'}: looks like a ResNet-20 (3 stages of 3/3/3 basic blocks), "
                            f"not a VGG16_quant; this tool runs VGG16_quant layouts only")


def test_layouts_detected_from_keys_and_config_strings(tmp_path):
    for name, layout in MODELS.items():
        assert layout_from_state_dict(build_model(name).state_dict()) is layout
        assert parse_layout(layout.config) is layout
    # Part 2 with an extra Identity: indices shift, the network (and a_bit=2) stays.
    shifted = parse_layout("64,64,M,128,128,M,256,256,256,M,16,16n,I,512n,M,512,512,512,M;a_bit=2")
    assert shifted.name is None and shifted.same_network(MODELS["vgg16_quant_project_part2"])
    model = build_model(shifted, seed=0)
    assert [n for n, m in model.named_modules() if type(m).__name__ == "QuantConv2d"][-4] == "features.30"
    torch.save({"state_dict": course_state(model)}, tmp_path / "p2.pth")
    loaded, _, label = model_from_checkpoint(tmp_path / "p2.pth")
    assert label == shifted.config and loaded.a_bit == 2
    # A student's own variant, by config string: loads, runs, is found again from its keys.
    own = "32,M,64n,M,128,128,M,8,8n,M,256,M;w_bit=4"
    model = build_model(own, seed=1)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    torch.save(model.state_dict(), tmp_path / "own.pt")
    loaded, _, label = model_from_checkpoint(tmp_path / "own.pt")
    assert label == "32,M,64n,M,128,128,M,8,8n,M,256,M;a_bit=4;w_bit=4"
    with pytest.raises(Exception, match="bad token 'X'"):
        parse_layout("64,X,M")


def test_capture_names_signed_layer(tmp_path):
    from model.capture import default_capture

    with pytest.raises(LayerError, match="features.0: its input activations are signed"):
        default_capture(layer="features.0")
    assert default_capture(layer="features.0", act_quant="unsigned").x_int.min() == 0
