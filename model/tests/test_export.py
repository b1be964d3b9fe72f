"""model.export: end to end through the CLI, byte-identity with the notebook loops, errors."""
import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from model import export, seed_style
from model import vectors as V
from model.errors import ModelError, PsumOverflowError
from model.tiling import random_layer

ROOT = Path(__file__).resolve().parents[2]


def _cli(*argv):
    env = dict(os.environ)
    env.pop("MODEL_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "model", *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def _args(*argv):
    p = argparse.ArgumentParser()
    export.add_arguments(p)
    return p.parse_args(list(argv))


def _capture(x, w, name="synthetic", a_bit=4, w_bit=4):
    from model.capture import LayerCapture
    import torch
    import torch.nn.functional as F
    out = F.conv2d(torch.tensor(x, dtype=torch.float64)[None],
                   torch.tensor(w, dtype=torch.float64), padding=1)[0].numpy().astype(np.int32)
    return LayerCapture(layer_name=name, x_int=x.astype(np.uint8), w_int=w.astype(np.int8),
                        act_delta=0.25, w_delta=0.5, out_int=out,
                        out_float=(out * 0.125).astype(np.float32), recovery_error=0.0,
                        a_bit=a_bit, w_bit=w_bit, stride=1, padding=1)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "ws"
    r = _cli("export", "--out", str(out))
    assert r.returncode == 0, r.stderr
    return out, r.stdout


def test_export_default_end_to_end(exported, tmp_path):
    out, stdout = exported
    names = sorted(os.listdir(out))
    assert "tensors.npz" in names and "acc_address.txt" in names and "out.txt" in names
    assert len(names) == 1 + 9 + 9 + 1 + 1 + 1
    for word in ("layer", "x_int", "act_delta", "recovery error", "overflow", "written"):
        assert word in stdout
    assert "values 8..15 present: yes" in stdout
    t = np.load(out / "tensors.npz")
    x, w, o = t["x_int"], t["w_int"], t["out_int"]
    assert x.dtype == np.uint8 and w.dtype == np.int8 and o.dtype == np.int32
    assert t["psum"].dtype == np.int32 and t["psum"].shape == (1, 1, 8, 36, 9)
    assert x.shape == (8, 4, 4) and w.shape == (8, 8, 3, 3) and o.shape == (8, 4, 4)
    assert str(t["layer"]) and float(t["recovery_error"]) < 1e-5
    assert float(t["act_delta"]) > 0 and float(t["w_delta"]) > 0
    # the activation file carries values 8..15 (unsigned, the OS slip of the notebook)
    a = V.read_activation(out / "activation_tile0.txt", n_lines=36)
    assert a.max() >= 8 and a.min() >= 0
    np.testing.assert_array_equal(a.reshape(8, 6, 6)[:, 1:-1, 1:-1], x)
    # files agree with the tensors
    for k in range(9):
        np.testing.assert_array_equal(V.read_psum(out / f"psum_kij{k}.txt", n_lines=36),
                                      t["psum"][0, 0, :, :, k])
    np.testing.assert_array_equal(V.read_out(out / "out.txt", n_lines=16),
                                  np.maximum(o, 0).reshape(8, 16))
    # byte-identical to the notebook writer loops on the same tensors
    seed = tmp_path / "seed"
    seed.mkdir()
    seed_style.write_ws(seed, x, w)
    for name in os.listdir(seed):
        assert (seed / name).read_bytes() == (out / name).read_bytes(), name


def test_export_os(tmp_path, rng):
    x, w = random_layer(rng, 8, 8, 4, 4)
    lines = []
    written = export.export_capture(_capture(x, w), tmp_path / "os", "os", echo=lines.append)
    names = sorted(p.name for p in written)
    assert names == ["activation_os.txt", "activation_os_group1.txt", "out_os.txt",
                     "out_os_group1_otile0.txt", "tensors.npz", "weight_os.txt"]
    seed = tmp_path / "seed"
    seed.mkdir()
    seed_style.write_os(seed, x, w)
    for name in ("activation_os.txt", "weight_os.txt", "out_os.txt"):
        assert (seed / name).read_bytes() == (tmp_path / "os" / name).read_bytes()
    assert any("dataflow os" in line for line in lines)


def test_export_ranges_name_the_top_half_of_the_layers_levels(tmp_path, rng):
    """The range line names the unsigned levels with the top bit set for the layer's a_bit
    (2..3 for a 2-bit layer, not the 4-bit 8..15)."""
    x, w = random_layer(rng, 8, 8, 4, 4, a_bit=2)
    lines = []
    export.export_capture(_capture(x, w, a_bit=2), tmp_path / "two", echo=lines.append)
    ranges = [l for l in lines if l.startswith("ranges")]
    assert len(ranges) == 1 and f"(values 2..3 present: yes, {(x >= 2).sum()} values)" in ranges[0], ranges


def test_export_overflow_is_reported_then_refused(tmp_path):
    x, w = np.full((64, 3, 3), 15), np.full((8, 64, 3, 3), 7)
    lines = []
    with pytest.raises(PsumOverflowError, match=r"does not fit 16-bit"):
        export.export_capture(_capture(x, w), tmp_path / "ov", echo=lines.append)
    assert os.listdir(tmp_path / "ov") == []               # refused before any file is written
    text = "\n".join(lines)
    assert "overflow     values do not fit 16-bit" in text and "out[oc=0, o_nij=4] = 60480" in text
    lines = []
    export.export_capture(_capture(x, w), tmp_path / "wide", psum_bw=20, echo=lines.append)
    assert any("overflow     none" in line for line in lines)


def test_export_warns_when_the_classic_bench_reads_another_width(tmp_path, rng):
    """--psum-bw 20 writes 160-bit psum lines: export says the classic bench must be built
    for them (it used to report 207 differing psums without a word); 16 bits: no warning."""
    x, w = random_layer(rng, 8, 8, 4, 4)
    for bw, warned in ((20, True), (export.CLASSIC_TB_PSUM_BW, False)):
        lines = []
        export.export_capture(_capture(x, w), tmp_path / str(bw), psum_bw=bw, echo=lines.append)
        warnings = [l for l in lines if l.startswith("warning")]
        assert len(warnings) == warned, lines
        assert all(f"make classic PSUM_BW={bw}" in l for l in warnings), warnings


def test_export_refuses_bits_wider_than_the_lanes(tmp_path, rng):
    """A layout with w_bit=8 (or a_bit above 4) is refused before anything is written, naming
    the widths (it used to fail at the first weight file, after the summary lines)."""
    x, w = random_layer(rng, 8, 8, 4, 4)
    for bits in ({"w_bit": 8}, {"a_bit": 5}):
        with pytest.raises(ModelError, match=r"synthetic: w_bit=\d a_bit=\d: the array's vectors carry 4-bit"):
            export.export_capture(_capture(x, w, **bits), tmp_path / "wide", echo=print)
        assert not (tmp_path / "wide").exists()


def test_export_of_many_files_shows_progress(tmp_path, rng, capsys):
    """A layer of thousands of files (a deep one writes tens of thousands) shows a progress
    bar on stderr; a small one writes quietly."""
    for ic, files, bar in ((8, 22, False), (64, 1_170, True)):      # + tensors.npz
        x, w = random_layer(rng, ic, ic, 4, 4)
        written = export.export_capture(_capture(x, w), tmp_path / str(ic), echo=lambda line: None)
        err = capsys.readouterr().err
        assert len(written) == files and (f"write {tmp_path / str(ic)}" in err) == bar, err[-500:]


def test_export_refuses_a_layer_whose_reference_outgrows_memory(tmp_path, rng, monkeypatch):
    """A layer whose reference psums outgrow the machine's memory is refused in one line
    naming the layer and the size, before a folder or a numpy allocation (a 4096 -> 4096
    layer ended in numpy's MemoryError). The machine is made small for the test."""
    x, w = random_layer(rng, 8, 8, 4, 4)
    need = export._reference_bytes(_capture(x, w))
    assert need == 3 * 8 * 1 * 8 * 9 * 6 * 6
    pages = {"SC_PAGE_SIZE": 1, "SC_PHYS_PAGES": need - 1}
    monkeypatch.setattr(export.os, "sysconf", pages.__getitem__)
    with pytest.raises(ModelError, match=r"^synthetic: the reference tiling of this 8 -> 8 channel, 4x4 layer needs "
                                         r"about 0 GiB for its psums, this machine has 0 GiB; nothing written$"):
        export.export_capture(_capture(x, w), tmp_path / "big", echo=print)
    assert not (tmp_path / "big").exists()
    pages["SC_PHYS_PAGES"] = need
    export.export_capture(_capture(x, w), tmp_path / "big", echo=lambda line: None)


def test_export_into_a_used_folder_removes_the_earlier_set(tmp_path, rng):
    """A WS export into a folder that holds another layer's WS set removes that set's other
    files (the classic bench read them with the new ones), says so, and leaves the OS
    files alone."""
    x2, w2 = random_layer(rng, 8, 16, 4, 4)                 # two oc tiles: out_otile*, psum_itile*
    export.export_capture(_capture(x2, w2), tmp_path, echo=lambda line: None)
    export.export_capture(_capture(x2, w2), tmp_path, dataflow="os", echo=lambda line: None)
    os_files = sorted(p.name for p in tmp_path.glob("*_os*.txt"))
    x, w = random_layer(rng, 8, 8, 4, 4)
    lines = []
    written = export.export_capture(_capture(x, w), tmp_path, echo=lines.append)
    assert sorted(p.name for p in tmp_path.iterdir() if "_os" not in p.name) == sorted(p.name for p in written)
    assert sorted(p.name for p in tmp_path.glob("*_os*.txt")) == os_files and os_files
    notes = [l for l in lines if l.startswith("note") and "earlier export" in l]
    # oc tile 1's 9 weights, both tiles' 18 psum_itile* and 2 out_otile*: the new set has psum_kij*, out.txt
    assert len(notes) == 1 and "removed 29 WS file(s)" in notes[0], lines


def test_export_checks_out_before_the_capture_and_creates_it_after(tmp_path):
    """export --out is checked first (a file is refused before the capture) but created only
    once the layer is known good: a refused --layer leaves no empty folder behind."""
    r = _cli("export", "--out", str(tmp_path / "new"), "--layer", "12")
    assert r.returncode == 1 and "features.12 is a ReLU" in r.stderr and not (tmp_path / "new").exists()
    (tmp_path / "file").write_text("x")
    r = _cli("export", "--out", str(tmp_path / "file" / "sub"))
    assert r.returncode == 1 and r.stderr.strip().endswith(f"{tmp_path / 'file'} is not a directory") and not r.stdout


def test_export_bad_out(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    with pytest.raises(ModelError, match=r"^--out .*afile: exists and is not a directory$"):
        export.run(_args("--out", str(f)))
    with pytest.raises(ModelError, match=r"is not a directory"):
        export.run(_args("--out", str(f / "sub")))
    with pytest.raises(ModelError, match=r"--psum-bw"):
        export.export_capture(_capture(np.zeros((8, 2, 2), int), np.zeros((8, 8, 3, 3), int)),
                              tmp_path / "x", psum_bw=1)
    args = _args("--out", str(tmp_path / "y"))
    args.psum_bw = 65                                     # a Namespace built without argparse
    with pytest.raises(ModelError, match=r"^--psum-bw must be an integer in 2..32, got 65$"):
        export.run(args)
    assert not (tmp_path / "y").exists()                  # refused before the capture and the mkdir


def test_export_cli_bad_psum_bw_before_capture(tmp_path):
    out = tmp_path / "never"
    r = _cli("export", "--out", str(out), "--psum-bw", "65")
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "--psum-bw" in r.stderr and "2..32" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and not out.exists()


def test_export_cli_bad_out_one_line(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    r = _cli("export", "--out", str(f))
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "exists and is not a directory" in r.stderr
    assert "Traceback" not in r.stderr
