"""Packed deployable checkpoints: bit-identical logits, exact size, one-line refusals."""

import json
import math
import struct
import zlib

import numpy as np
import pytest
import torch

from model import packed
from model.capture import default_capture
from model.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from model.cli import main
from model.data import synthetic_images, write_synthetic_cifar
from model.errors import CheckpointError
from model.vgg import build_model

NAME = "vgg16_quant_project"


def _trained_like_model():
    """The seeded model with weights, alphas and BatchNorm statistics drawn like a trained one's
    (Gaussian weights, alphas off their initial 3.0 / 8.0)."""
    model = build_model(NAME, seed=3)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("wgt_alpha"):
                t.fill_(1.5 + 2.0 * torch.rand((), generator=g).item())
            elif name.endswith("act_alpha"):
                t.fill_(2.0 + 8.0 * torch.rand((), generator=g).item())
            elif name.endswith(".weight") and t.dim() == 4:
                t.normal_(0.01, 0.05, generator=g)
            elif name.endswith("running_var"):
                t.uniform_(0.5, 2.0, generator=g)
            elif t.is_floating_point():
                t.add_(0.1 * torch.randn(t.shape, generator=g))
    return model


@pytest.fixture(scope="module")
def full_and_packed(tmp_path_factory):
    """A full checkpoint and its packed file, written by the pack verb (whose own check runs)."""
    d = tmp_path_factory.mktemp("packed")
    full = save_checkpoint(d / "full.pt", _trained_like_model(), NAME, 7, 12.5)
    assert main(["pack", "--checkpoint", str(full), "--out", str(d / "model.q4")]) == 0
    return full, d / "model.q4"


def _layout(path):
    """(header dict, byte offset of each tensor) of a packed file."""
    raw = path.read_bytes()
    _, _, hlen = struct.unpack_from("<8sII", raw)
    header = json.loads(raw[16:16 + hlen])
    pos, offsets = 16 + hlen, {}
    for t in header["tensors"]:
        offsets[t["name"]] = pos
        pos += t["nbytes"]
    assert pos + 4 == len(raw)                       # the CRC-32 ends the file
    return header, offsets


def test_int4_round_trip():
    levels = np.array([-7, -1, 0, 1, 7, 3, -4], dtype=np.int8)  # odd count
    raw = packed.pack_int4(levels)
    assert len(raw) == 4 and raw[0] == 0x9 | (0xF << 4)          # -7 -> 0x9 low nibble, -1 -> 0xF high
    assert raw[-1] >> 4 == 0                                     # padding nibble
    assert np.array_equal(packed.unpack_int4(raw, 7), levels)
    every = np.arange(-7, 8, dtype=np.int8)
    assert np.array_equal(packed.unpack_int4(packed.pack_int4(every), 15), every)
    with pytest.raises(CheckpointError, match="-7..7"):
        packed.pack_int4(np.array([-8, 0]))


def test_logits_bit_identical_and_size(full_and_packed):
    full, small = full_and_packed
    a, ck_a, _ = model_from_checkpoint(full)
    b, ck_b, name = model_from_checkpoint(small)
    assert name == NAME and ck_b["epoch"] == 7 and ck_b["best_prec"] == 12.5 and ck_b["optimizer"] == {}
    a.eval()
    b.eval()
    x, _ = synthetic_images(8, seed=11)
    with torch.no_grad():
        la, lb = a(x), b(x)
    assert torch.equal(la, lb)
    for (n, ma), mb in zip(a.named_modules(), b.modules()):
        if hasattr(ma, "weight_q") and ma.weight_q is not None:
            assert torch.equal(ma.weight_q, mb.weight_q), n               # the quantized weights
    sd_a, sd_b = ck_a["state_dict"], ck_b["state_dict"]
    assert list(sd_a) == list(sd_b)
    for k in sd_a:
        if not (k.endswith(".weight") and sd_a[k].dim() == 4):
            assert torch.equal(sd_a[k], sd_b[k]), k                        # alphas, BN, classifier as is
    # size: int4 levels two per byte, everything else 4 bytes (num_batches_tracked 8), one header
    header, _ = _layout(small)
    expected = sum(math.ceil(v.numel() / 2) if k.endswith(".weight") and v.dim() == 4
                   else v.numel() * v.element_size() for k, v in sd_a.items())
    assert sum(t["nbytes"] for t in header["tensors"]) == expected
    assert small.stat().st_size < 4.6e6 and full.stat().st_size > 7 * small.stat().st_size


def test_eval_cli_same_result(full_and_packed, tmp_path, capsys):
    data = write_synthetic_cifar(tmp_path, n_train=2, n_test=6, seed=5, train_files=1)
    lines = []
    for path in full_and_packed:
        assert main(["eval", "--checkpoint", str(path), "--data", str(data), "--device", "cpu"]) == 0
        lines.append(capsys.readouterr().out)
    assert lines[0] == lines[1] and lines[0].startswith("Test set: Accuracy: ") and "/6 (" in lines[0]


def test_export_capture_identical(full_and_packed):
    full, small = full_and_packed
    caps = [default_capture(checkpoint=p, image=2) for p in (full, small)]
    for field in ("x_int", "w_int", "out_int"):
        assert np.array_equal(np.asarray(getattr(caps[0], field)), np.asarray(getattr(caps[1], field))), field
    assert caps[0].act_delta == caps[1].act_delta and caps[0].w_delta == caps[1].w_delta


def test_unsigned_activation_quantizer_is_kept(tmp_path, capsys):
    """A checkpoint trained with --act-quant unsigned packs bit-identically: the header keeps the
    quantizer (it used to be rebuilt as "course", and pack called its own check an internal error)."""
    full = save_checkpoint(tmp_path / "u.pt", _trained_like_model(), NAME, 1, 0.0, act_quant="unsigned")
    assert main(["pack", "--checkpoint", str(full), "--out", str(tmp_path / "u.q4")]) == 0, capsys.readouterr().err
    model, ckpt, _ = model_from_checkpoint(tmp_path / "u.q4")
    assert ckpt["act_quant"] == model.act_quant == "unsigned"
    header, _ = _layout(tmp_path / "u.q4")
    header["act_quant"] = "signed"
    _corrupt(tmp_path / "u.q4", tmp_path / "s.q4", lambda raw, h, o: _set_header(raw, header))
    with pytest.raises(CheckpointError, match=r"header field 'act_quant' must be one of course, unsigned, "
                                              r"got 'signed'$"):
        load_checkpoint(tmp_path / "s.q4")


def test_pack_cli(full_and_packed, tmp_path, capsys):
    full, small = full_and_packed
    assert packed.is_packed(small) and not packed.is_packed(full)
    for argv, needle in (([str(tmp_path / "none.pt"), str(tmp_path / "x.q4")], "checkpoint not found"),
                         ([str(full), str(full)], "is the checkpoint itself"),
                         ([str(full), str(tmp_path)], "is a directory")):
        assert main(["pack", "--checkpoint", argv[0], "--out", argv[1]]) == 1
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and needle in err[0], err
    assert packed.is_packed(small) and not packed.is_packed(full)          # untouched


def _corrupt(src, dst, edit, keep_crc=False):
    """dst = src edited; a version-2 file's CRC-32 at its end follows the edit (so that the
    check the edit aims at is reached) unless keep_crc."""
    raw = bytearray(src.read_bytes())
    header, offsets = _layout(src)
    body = edit(raw[:-4], header, offsets)
    if keep_crc:
        body += raw[-4:]
    elif len(body) >= 12 and struct.unpack_from("<I", body, 8)[0] == 2:
        body += struct.pack("<I", zlib.crc32(bytes(body)))
    dst.write_bytes(bytes(body))
    return dst


def _set_header(raw, header):
    head = json.dumps(header).encode()
    _, _, hlen = struct.unpack_from("<8sII", raw)
    return bytearray(raw[:12] + struct.pack("<I", len(head)) + head + raw[16 + hlen:])   # magic, version kept


def _nan_bn(raw, header, offsets):
    struct.pack_into("<f", raw, offsets["features.1.running_var"], float("nan"))
    return raw


def _set_float(name, value):
    def edit(raw, header, offsets):
        struct.pack_into("<f", raw, offsets[name], value)
        return raw
    return edit


def _level_minus_8(raw, header, offsets):
    raw[offsets["features.27.weight"]] = (raw[offsets["features.27.weight"]] & 0xF0) | 0x8
    return raw


def _bad_nbytes(raw, header, offsets):
    header["tensors"][0]["nbytes"] += 1
    return _set_header(raw, header)


def _bad_dtype(raw, header, offsets):
    header["tensors"][0]["dtype"] = "float16"
    return _set_header(raw, header)


def _zero_levels(raw, header, offsets):
    start = offsets["features.0.weight"]
    raw[start:start + 64 * 3 * 9 // 2] = bytes(64 * 3 * 9 // 2)           # every level 0
    return raw


CASES = [
    ("version", lambda r, h, o: r[:8] + struct.pack("<I", 3) + r[12:], "version 3"),
    ("truncated", lambda r, h, o: r[:-100], "truncated ("),
    ("trailing", lambda r, h, o: r + b"\0\0", "2 bytes after the last tensor"),
    ("header", lambda r, h, o: r[:16] + b"[" + r[17:], "header is not JSON"),
    ("short", lambda r, h, o: r[:10], "shorter than the 16-byte prefix"),
    ("nan", _nan_bn, "'features.1.running_var' holds non-finite values"),
    ("act_alpha0", _set_float("features.0.act_alpha", 0.0), "'features.0.act_alpha' is 0; a clipping threshold"),
    ("wgt_alpha-1", _set_float("features.3.weight_quant.wgt_alpha", -1.0),
     "'features.3.weight_quant.wgt_alpha' is -1; a clipping threshold must be > 0"),
    ("minus8", _level_minus_8, "features.27.weight: weight level -8 is out of range"),
    ("nbytes", _bad_nbytes, "does not match"),
    ("dtype", _bad_dtype, "bad dtype 'float16'"),
    ("zero", _zero_levels, "features.0.weight: no float weight quantizes back"),
]


@pytest.mark.parametrize("case,edit,needle", CASES, ids=[c[0] for c in CASES])
def test_malformed_refused_in_one_line(full_and_packed, tmp_path, capsys, case, edit, needle):
    _, small = full_and_packed
    bad = _corrupt(small, tmp_path / f"{case}.q4", edit)
    with pytest.raises(CheckpointError, match="^" + str(bad).replace(".", r"\.")):
        load_checkpoint(bad)
    assert main(["export", "--checkpoint", str(bad), "--out", str(tmp_path / "exp")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and needle in err[0] and str(bad) in err[0], err


def test_a_changed_byte_fails_the_crc(full_and_packed, tmp_path, capsys):
    """One bit flipped anywhere after the prefix, in the classifier's floats (a value any
    float may hold) or in the header (two tensor names swapped, an epoch), is refused by the
    CRC-32 that ends a version-2 file; a version-1 file (packed before the CRC) still loads."""
    _, small = full_and_packed
    header, offsets = _layout(small)

    def flip(at):
        def edit(raw, header, offsets):
            raw[at] ^= 0x10
            return raw
        return edit

    for where, at in (("array", offsets["classifier.weight"] + 5), ("header", 16 + 2)):
        bad = _corrupt(small, tmp_path / f"{where}.q4", flip(at), keep_crc=True)
        with pytest.raises(CheckpointError, match=rf"^{bad}: corrupt packed checkpoint: its CRC-32 is [0-9a-f]{{8}}, "
                                                  r"the file says [0-9a-f]{8} \(changed after packing, or truncated\)$"):
            load_checkpoint(bad)
    assert load_checkpoint(_corrupt(small, tmp_path / "fixed.q4", flip(offsets["classifier.weight"] + 5)))["model"]

    raw = small.read_bytes()
    old = tmp_path / "v1.q4"
    old.write_bytes(raw[:8] + struct.pack("<I", 1) + raw[12:-4])
    loaded = load_checkpoint(old)["state_dict"]
    assert all(torch.equal(t, load_checkpoint(small)["state_dict"][k]) for k, t in loaded.items())


def test_wrong_magic(full_and_packed, tmp_path):
    _, small = full_and_packed
    bad = _corrupt(small, tmp_path / "magic.q4", lambda r, h, o: b"Q4VGGPK\1" + r[8:])
    assert not packed.is_packed(bad)
    with pytest.raises(CheckpointError, match=r"wrong magic b'Q4VGGPK\\x01'"):
        packed.read_packed(bad)
    with pytest.raises(CheckpointError, match="not a torch checkpoint"):   # the loader does not take it
        load_checkpoint(bad)


def test_pack_refuses_weights_other_than_4_bit(tmp_path, capsys):
    """A layout with w_bit 3 or 8 trains and evaluates, but the packed format holds 4-bit
    levels: pack refuses it up front in one line naming the checkpoint (it wrote the file,
    then called its own logit check an internal error)."""
    for w_bit in (3, 8):
        src = save_checkpoint(tmp_path / f"w{w_bit}.pt", build_model(f"8,8n,M;w_bit={w_bit}", seed=0),
                              f"8,8n,M;w_bit={w_bit}", 1, 0.0)
        assert main(["pack", "--checkpoint", str(src), "--out", str(tmp_path / f"w{w_bit}.q4")]) == 1
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and (f"{src} read as 8,8n,M;a_bit=4;w_bit={w_bit}: w_bit={w_bit}; the packed format "
                                  "holds 4-bit") in err[0], err
        assert not (tmp_path / f"w{w_bit}.q4").exists()


def test_full_checkpoint_act_quant_field_is_blamed_on_the_file(tmp_path):
    """An act_quant field that names no quantizer is the file's fault, named as such (it
    read as a bad --act-quant the user never typed)."""
    path = save_checkpoint(tmp_path / "a.pt", build_model("8,8n,M", seed=0), "8,8n,M", 1, 0.0)
    ckpt = torch.load(path, weights_only=True)
    ckpt["act_quant"] = "bogus"
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match=rf"^{path}: field 'act_quant' must be one of course, unsigned, got 'bogus'$"):
        load_checkpoint(path)
    for field, value in (("act_quant", 3), ("act_quant", ["unsigned"]), ("model", 7)):   # were taken as not named
        ckpt = torch.load(path, weights_only=True)
        ckpt["act_quant"], ckpt[field] = "course", value
        torch.save(ckpt, path)
        with pytest.raises(CheckpointError, match=rf"^{path}: field '{field}' must be a string, got "):
            load_checkpoint(path)


def test_overriding_what_the_checkpoint_names_is_noted(tmp_path, capsys):
    """--model with other bit widths, or --act-quant with the other quantizer, than the
    checkpoint names: the shapes agree, so it loads, with one note each on stderr (it ran
    silently); the same names, or none, say nothing."""
    path = save_checkpoint(tmp_path / "a2.pt", build_model("8,8n,M;a_bit=2", seed=0, act_quant="unsigned"),
                           "8,8n,M;a_bit=2", 1, 0.0, act_quant="unsigned")
    model_from_checkpoint(path)
    model_from_checkpoint(path, "8,8n,M;a_bit=2", act_quant="unsigned")
    assert capsys.readouterr().err == ""
    model, _, label = model_from_checkpoint(path, "8,8n,M", act_quant="course")
    assert label == "8,8n,M;a_bit=4;w_bit=4" and model.act_quant == "course"
    assert capsys.readouterr().err.splitlines() == [
        f"note: {path} names model 8,8n,M;a_bit=2;w_bit=4; --model reads it as 8,8n,M;a_bit=4;w_bit=4",
        f"note: {path} was saved with activation quantizer unsigned; --act-quant runs it with course"]
