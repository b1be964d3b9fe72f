"""model.vectors: formats, round trips, byte-identity with the notebook writer loops, errors."""
import contextlib
import filecmp
import os
import socket
import threading

import numpy as np
import pytest

from model import vectors as V
from model import seed_style
from model.errors import ModelError, PsumOverflowError, VectorFileError
from model.tiling import acc_addresses, os_reference, random_layer, ws_reference

NOTEBOOK_HEADERS = {
    "activation": ["#time0row7[msb-lsb],time0row6[msb-lst],....,time0row0[msb-lst]#",
                   "#time1row7[msb-lsb],time1row6[msb-lst],....,time1row0[msb-lst]#",
                   "#................#"],
    "weight": ["#col0row7[msb-lsb],col0row6[msb-lst],....,col0row0[msb-lst]#",
               "#col1row7[msb-lsb],col1row6[msb-lst],....,col1row0[msb-lst]#",
               "#................#"],
    "psum": ["#time0col7[msb-lsb],time0col6[msb-lst],....,time0col0[msb-lst]#",
             "#time1col7[msb-lsb],time1col6[msb-lst],....,time1col0[msb-lst]#",
             "#................#"],
}


def test_header_table():
    assert V.header_lines("activation") == NOTEBOOK_HEADERS["activation"]
    assert V.header_lines("activation_os") == NOTEBOOK_HEADERS["activation"]
    assert V.header_lines("weight") == NOTEBOOK_HEADERS["weight"]
    assert V.header_lines("weight_os") == NOTEBOOK_HEADERS["weight"]
    for k in ("psum", "out", "out_os"):
        assert V.header_lines(k) == NOTEBOOK_HEADERS["psum"]
    assert V.header_lines("acc_address") is None
    for k, t in V.HEADERS.items():
        for line in V.header_lines(k) or []:
            assert line.startswith("#") and " " not in line


def test_line_format(tmp_path):
    p = V.write_activation(tmp_path / "a.txt", np.array([[1], [2], [3], [4], [5], [6], [7], [15]]))
    assert p.read_bytes().split(b"\n")[3] == b"11110111011001010100001100100001"
    p = V.write_weight(tmp_path / "w.txt", np.array([[-1, 0, 0, 0, 0, 0, 0, 7]] * 8))
    assert p.read_bytes().split(b"\n")[3] == b"0111" + b"0000" * 6 + b"1111"
    p = V.write_psum(tmp_path / "p.txt", np.array([[-2], [0], [0], [0], [0], [0], [0], [300]]))
    line = p.read_bytes().split(b"\n")[3]
    assert line == b"0000000100101100" + b"0" * 96 + b"1111111111111110"
    p = V.write_acc_address(tmp_path / "acc.txt", [0, 37, 2047])
    assert p.read_bytes() == b"00000000000\n00000100101\n11111111111\n"


def _roundtrip(tmp_path, rng, writer, reader, shape, lo, hi, **rkw):
    v = rng.integers(lo, hi + 1, size=shape)
    v.flat[0], v.flat[-1] = lo, hi
    p = writer(tmp_path / f"{writer.__name__}.txt", v)
    got = reader(p, **rkw)
    np.testing.assert_array_equal(got, v)
    assert got.dtype == np.int64
    data = p.read_bytes()
    assert b" " not in data and b"\r" not in data and data.endswith(b"\n")


def test_roundtrip_every_kind(tmp_path, rng):
    _roundtrip(tmp_path, rng, V.write_activation, V.read_activation, (8, 36), 0, 15, n_lines=36)
    _roundtrip(tmp_path, rng, V.write_weight, V.read_weight, (8, 8), -8, 7)
    _roundtrip(tmp_path, rng, V.write_psum, V.read_psum, (8, 36), -32768, 32767, n_lines=36)
    _roundtrip(tmp_path, rng, V.write_out, V.read_out, (8, 16), -32768, 32767)
    _roundtrip(tmp_path, rng, V.write_acc_address, V.read_acc_address, (144,), 0, 2047,
               n_lines=144)
    _roundtrip(tmp_path, rng, V.write_activation_os, V.read_activation_os, (72, 8), 0, 15)
    _roundtrip(tmp_path, rng, V.write_weight_os, V.read_weight_os, (72, 8), -8, 7)
    _roundtrip(tmp_path, rng, V.write_out_os, V.read_out_os, (8, 8), -32768, 32767)
    # generic core with another width / lane count
    v = rng.integers(-(1 << 23), 1 << 23, size=(5, 3))
    V.write_lanes(tmp_path / "g.txt", v, 24, True, ["#a", "#b", "#c"])
    np.testing.assert_array_equal(V.read_lanes(tmp_path / "g.txt", 3, 24, True), v)
    V.write_psum(tmp_path / "p24.txt", v.T, width=24)
    np.testing.assert_array_equal(V.read_psum(tmp_path / "p24.txt", lanes=3, n_lines=5, width=24), v.T)


def _layer(rng, ic, oc, h, w=None):
    return random_layer(rng, ic, oc, h, h if w is None else w)


def _same_dirs(a, b):
    names = sorted(os.listdir(a))
    assert names == sorted(os.listdir(b))
    match, mismatch, errors = filecmp.cmpfiles(a, b, names, shallow=False)
    assert mismatch == [] and errors == []
    return names


@pytest.mark.parametrize("ic,oc,h,w", [(8, 8, 4, 4), (16, 16, 3, 2), (3, 11, 2, 3)])
def test_ws_files_byte_identical_to_notebook_loops(tmp_path, rng, ic, oc, h, w):
    x, wt = _layer(rng, ic, oc, h, w)
    (tmp_path / "seed").mkdir()
    seed_style.write_ws(tmp_path / "seed", x, wt)
    ref = ws_reference(x, wt)
    written = V.write_ws_files(tmp_path / "ours", ref)
    names = _same_dirs(tmp_path / "seed", tmp_path / "ours")
    assert sorted(p.name for p in written) == names
    if ic == 8 and oc == 8:
        assert {"activation_tile0.txt", "out.txt", "acc_address.txt", "psum_kij8.txt",
                "weight_itile0_otile0_kij8.txt"} <= set(names)
        assert len(names) == 1 + 9 + 9 + 1 + 1
        assert len(V.read_acc_address(tmp_path / "ours" / "acc_address.txt", 144)) == 144
    if ic == 16:
        assert "psum_itile1_otile0_kij3.txt" in names and "out_otile1.txt" in names
        assert "psum_kij0.txt" not in names and "out.txt" not in names


def test_ws_files_read_back(tmp_path, rng):
    x, wt = _layer(rng, 16, 12, 3, 4)
    ref = ws_reference(x, wt)
    V.write_ws_files(tmp_path, ref)
    n_nij = 5 * 6
    for i in range(2):
        a = V.read_activation(tmp_path / f"activation_tile{i}.txt", n_lines=n_nij)
        np.testing.assert_array_equal(a.reshape(8, 5, 6)[:, 1:-1, 1:-1], x[i * 8:(i + 1) * 8])
        for o in range(2):
            for k in range(9):
                p = V.read_psum(tmp_path / f"psum_itile{i}_otile{o}_kij{k}.txt", n_lines=n_nij)
                np.testing.assert_array_equal(p, ref.psum[i, o, :, :, k])
                wk = V.read_weight(tmp_path / f"weight_itile{i}_otile{o}_kij{k}.txt")
                oc_n = min(8, 12 - o * 8)
                np.testing.assert_array_equal(wk[:oc_n], wt[o * 8:o * 8 + oc_n, i * 8:(i + 1) * 8,
                                                        k // 3, k % 3])
    out = np.concatenate([V.read_out(tmp_path / f"out_otile{o}.txt", n_lines=12)
                          for o in range(2)])
    np.testing.assert_array_equal(out[:12], ref.out_relu)
    np.testing.assert_array_equal(V.read_acc_address(tmp_path / "acc_address.txt",
                                                     V.data_lines("acc_address", (3, 4))),
                                  acc_addresses(3, 4).reshape(-1))


@pytest.mark.parametrize("ic,oc,h,w", [(8, 8, 4, 4), (3, 11, 3, 5)])
def test_os_files_byte_identical_to_notebook_loops(tmp_path, rng, ic, oc, h, w):
    x, wt = _layer(rng, ic, oc, h, w)
    osr = os_reference(x, wt)
    ours = tmp_path / "ours"
    written = V.write_os_files(ours, osr)
    seed = tmp_path / "seed"
    seed.mkdir()
    names = V.os_file_names(osr.n_groups, osr.n_oc_tiles)
    for g in range(osr.n_groups):
        for o in range(osr.n_oc_tiles):
            seed_style.write_os(seed, x, wt, nij_out_base=g * 8, oc_tile=o,
                                act_name=names["activation"][g], wgt_name=names["weight"][o],
                                out_name=names["out"][(g, o)])
    got = _same_dirs(seed, ours)
    assert sorted(p.name for p in written) == got
    assert {"activation_os.txt", "weight_os.txt", "out_os.txt"} <= set(got)
    a = V.read_activation_os(ours / "activation_os.txt", n_lines=72)
    np.testing.assert_array_equal(a, osr.activation[0, 0])
    np.testing.assert_array_equal(V.read_weight_os(ours / "weight_os.txt", n_lines=72),
                                  osr.weight[0, 0])
    np.testing.assert_array_equal(V.read_out_os(ours / "out_os.txt"), osr.out_relu[0, 0])
    if oc > 8:
        assert "weight_os_otile1.txt" in got and "out_os_group1_otile1.txt" in got


def test_default_file_names():
    n = V.ws_file_names(1, 1)
    assert n["activation"] == ["activation_tile0.txt"] and n["out"] == ["out.txt"]
    assert n["psum"][(0, 0, 4)] == "psum_kij4.txt"
    assert n["weight"][(0, 0, 4)] == "weight_itile0_otile0_kij4.txt"
    n = V.ws_file_names(2, 3)
    assert n["psum"][(1, 2, 4)] == "psum_itile1_otile2_kij4.txt"
    assert n["out"][2] == "out_otile2.txt"
    n = V.os_file_names(2, 2)
    assert n["activation"] == ["activation_os.txt", "activation_os_group1.txt"]
    assert n["weight"] == ["weight_os.txt", "weight_os_otile1.txt"]
    assert n["out"][(0, 0)] == "out_os.txt" and n["out"][(1, 0)] == "out_os_group1_otile0.txt"
    assert V.acc_address_fits(4, 4) and V.acc_address_fits(13, 13)
    assert not V.acc_address_fits(14, 14)


def test_acc_address_skipped_when_it_does_not_fit(tmp_path, rng):
    x, wt = _layer(rng, 1, 1, 14)
    names = [p.name for p in V.write_ws_files(tmp_path, ws_reference(x, wt))]
    assert "acc_address.txt" not in names and "out.txt" in names


# ---------------------------------------------------------------------------- errors
GOOD_ACT = "\n".join(NOTEBOOK_HEADERS["activation"] + ["0" * 32, "01" * 16, "1" * 32]) + "\n"


def _reject(tmp_path, text, line, pattern, reader=V.read_activation, **kw):
    p = tmp_path / "bad.txt"
    p.write_bytes(text.encode() if isinstance(text, str) else text)
    with pytest.raises(VectorFileError) as ei:
        reader(p, **kw)
    msg = str(ei.value)
    assert msg.startswith(f"{p}:{line}: "), msg
    assert pattern in msg, msg
    assert "\n" not in msg


def test_good_file_reads(tmp_path):
    p = tmp_path / "ok.txt"
    p.write_text(GOOD_ACT)
    a = V.read_activation(p, n_lines=3)
    assert a.shape == (8, 3) and a[:, 2].tolist() == [15] * 8 and a[:, 1].tolist() == [5] * 8
    p.write_text(GOOD_ACT[:-1])                       # missing final newline is accepted
    assert V.read_activation(p, n_lines=3).shape == (8, 3)


@pytest.mark.parametrize("headers", [[], ["#one header, with spaces#"], NOTEBOOK_HEADERS["activation"]])
def test_headers_are_the_leading_hash_lines(tmp_path, headers):
    """One notebook writes the OS and some WS files without headers: any number of
    leading '#' lines is read as the header, the data is the same."""
    p = tmp_path / "h.txt"
    p.write_text("\n".join(headers + GOOD_ACT.split("\n")[3:]))
    np.testing.assert_array_equal(V.read_activation(p, n_lines=3),
                                  [[0, 5, 15]] * 8)


def test_line_counts_come_from_the_kind(tmp_path, rng):
    """Default arguments: the classic layer's count per kind; one line missing or extra fails."""
    counts = {"activation": 36, "psum": 36, "out": 16, "acc_address": 144,
              "activation_os": 72, "weight_os": 72, "weight": 8, "out_os": 8}
    assert {k: V.data_lines(k) for k in counts} == counts
    assert V.data_lines("activation", (32, 32)) == 34 * 34 and V.data_lines("weight_os", ic=3) == 27
    for kind, n in counts.items():
        fk = V.KINDS[kind]
        lanes = 1 if kind == "acc_address" else 8
        lo, hi = V.field_range(fk.width, fk.signed)
        v = rng.integers(lo, hi + 1, size=(n, lanes))
        reader = getattr(V, f"read_{kind}")
        for extra in (-1, 1):
            rows = v[:n + extra] if extra < 0 else np.concatenate([v, v[:1]])
            p = V.write_lanes(tmp_path / f"{kind}.txt", rows, fk.width, fk.signed,
                              V.header_lines(kind), fk.lane)
            n_head = 0 if V.HEADERS[kind] is None else 3
            want = (f"{p}:{n_head + n}: expected {n} data lines, file ends after {n - 1}" if extra < 0
                    else f"{p}:{n_head + n + 1}: extra line after the {n} expected data lines")
            with pytest.raises(VectorFileError) as ei:
                reader(p)
            assert str(ei.value) == want


def test_malformed_files(tmp_path):
    lines = GOOD_ACT.split("\n")
    with pytest.raises(VectorFileError, match=r"nope\.txt:0: file not found"):
        V.read_activation(tmp_path / "nope.txt")
    _reject(tmp_path, "\n".join(lines[:4] + ["#x#"] + lines[5:]), 5, "comment line among the data lines")
    _reject(tmp_path, "\n".join(lines[:4] + ["0" * 31] + lines[5:]), 5,
            "line length 31, expected 32 characters (8 lanes x 4 bits)")
    _reject(tmp_path, "\n".join(lines[:4] + ["0" * 33] + lines[5:]), 5, "line length 33")
    _reject(tmp_path, "\n".join(lines[:5] + ["0" * 10 + "2" + "0" * 21] + lines[6:]), 6,
            "non-binary character '2' at column 11")
    _reject(tmp_path, "\n".join(lines[:5] + ["0" * 31 + "x"] + lines[6:]), 6,
            "non-binary character 'x' at column 32")
    _reject(tmp_path, "\n".join(lines[:5] + ["0" * 32 + " "] + lines[6:]), 6, "trailing whitespace")
    _reject(tmp_path, "\n".join(lines[:5] + ["0" * 32 + "\t"] + lines[6:]), 6, "trailing whitespace")
    _reject(tmp_path, GOOD_ACT.replace("\n", "\r\n"), 4, "carriage return (CRLF line ending)")
    _reject(tmp_path, GOOD_ACT.replace("1" * 32 + "\n", "1" * 32 + "\r\n"), 6,
            "carriage return")
    _reject(tmp_path, GOOD_ACT, 7, "expected 4 data lines, file ends after 3", n_lines=4)
    _reject(tmp_path, GOOD_ACT + "garbage\n", 7, "extra line after the 3 expected data lines", n_lines=3)
    _reject(tmp_path, GOOD_ACT + "\n", 7, "empty line, expected 32 characters")
    _reject(tmp_path, "\n".join(NOTEBOOK_HEADERS["activation"]) + "\n", 4,
            "expected 36 data lines, file ends after 0")
    _reject(tmp_path, "#only a header\n", 2, "no data lines", reader=V.read_lanes, lanes=8, width=4,
            signed=False)
    _reject(tmp_path, GOOD_ACT, 4, "line length 32, expected 128", reader=V.read_psum)
    _reject(tmp_path, "00000000000\n#x#\n", 2, "comment line among the data lines",
            reader=V.read_acc_address)
    _reject(tmp_path, b"\xff" * 32 + b"\n", 1, "non-binary character '\\xff' at column 1", n_lines=1)
    body = "\n".join(NOTEBOOK_HEADERS["weight"] + ["0" * 32] * 7) + "\n"
    _reject(tmp_path, body, 11, "expected 8 data lines, file ends after 7", reader=V.read_weight)
    with pytest.raises(VectorFileError, match=r":0: is a directory"):
        V.read_out(tmp_path)


@pytest.mark.parametrize("kind", ["named pipe", "socket"])
def test_a_file_that_is_not_regular_is_refused(tmp_path, kind):
    """A named pipe is refused before the open, which waited for a writer for ever (a writer
    10 s on releases a reader that opens it: the test then fails rather than hangs); a
    socket likewise, not reported as unreadable."""
    path = tmp_path / "out.txt"
    with contextlib.ExitStack() as stack:
        if kind == "named pipe":
            os.mkfifo(path)
            release = threading.Timer(10, lambda: os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK)))
            release.start()
            stack.callback(release.cancel)
        else:
            stack.enter_context(socket.socket(socket.AF_UNIX)).bind(str(path))
        with pytest.raises(VectorFileError) as ei:
            V.read_out(path)
    assert str(ei.value) == f"{path}:0: not a regular file (a named pipe, a device or a socket)"


def test_writers_refuse_out_of_range(tmp_path):
    cases = [
        (V.write_activation, np.full((8, 2), 16), "16", "4-bit unsigned"),
        (V.write_activation, np.full((8, 2), -1), "-1", "4-bit unsigned"),
        (V.write_weight, np.full((8, 8), 8), "8", "4-bit two's complement"),
        (V.write_psum, np.full((8, 2), 32768), "32768", "16-bit two's complement"),
        (V.write_out, np.full((8, 2), -32769), "-32769", "16-bit two's complement"),
        (V.write_acc_address, np.array([0, 2048]), "2048", "11-bit unsigned"),
        (V.write_activation_os, np.full((9, 8), 99), "99", "4-bit unsigned"),
        (V.write_weight_os, np.full((9, 8), -9), "-9", "4-bit two's complement"),
        (V.write_out_os, np.full((8, 8), 1 << 20), str(1 << 20), "16-bit two's complement"),
    ]
    for writer, values, shown, field in cases:
        p = tmp_path / f"{writer.__name__}.txt"
        with pytest.raises(PsumOverflowError) as ei:
            writer(p, values)
        msg = str(ei.value)
        assert str(p) in msg and f"value {shown} " in msg and field in msg, msg
        assert "\n" not in msg
        assert not p.exists()
    with pytest.raises(ModelError, match=r"f\.txt: psum must hold integers, got 0.5"):
        V.write_psum(tmp_path / "f.txt", np.full((8, 2), 0.5))
    assert not (tmp_path / "f.txt").exists()


def test_write_files_refuse_overflowing_layer_up_front(tmp_path):
    x, wt = np.full((64, 4, 4), 15), np.full((8, 64, 3, 3), 7)
    ref = ws_reference(x, wt)
    assert ref.overflows
    with pytest.raises(PsumOverflowError) as info:
        V.write_ws_files(tmp_path, ref)
    msg = str(info.value)
    assert msg.startswith(f"{tmp_path}: not writing") and ref.overflows[0] in msg, msg
    assert "does not fit 16-bit" in msg and "nothing written" in msg and "\n" not in msg
    assert os.listdir(tmp_path) == []                     # no file at all, whatever its name
    with pytest.raises(PsumOverflowError, match=r"os: not writing the layer's files: os_"):
        V.write_os_files(tmp_path / "os", os_reference(x, wt))
    assert not (tmp_path / "os").exists()
    # wide enough (17-bit lanes, as export --psum-bw 17 writes them): written
    assert V.write_ws_files(tmp_path / "wide", ws_reference(x, wt, psum_bw=17, acc_bw=17))


def test_bad_out_dir(tmp_path, rng):
    x, wt = _layer(rng, 8, 8, 2)
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ModelError, match="exists and is not a directory"):
        V.write_ws_files(f, ws_reference(x, wt))
    with pytest.raises(ModelError, match=r"sub: .*file is not a directory"):
        V.write_os_files(f / "sub", os_reference(x, wt))


def test_part2_activation_file_round_trip_and_refusal(tmp_path):
    """Course part 2: 16 2-bit lanes per line (channel 15 first), written and read back;
    a value above 3 is refused naming the file, line and lane, and nothing is written."""
    a = np.random.default_rng(2).integers(0, 4, size=(16, 36))
    path = V.write_activation2(tmp_path / "activation_tile0.txt", a)
    lines = path.read_text().splitlines()
    assert lines[0] == "#time0ch15[msb-lsb],time0ch14[msb-lst],....,time0ch0[msb-lst]#"
    assert len(lines) == 39 and lines[3] == "".join(f"{v:02b}" for v in a[::-1, 0])
    np.testing.assert_array_equal(V.read_activation2(path), a)
    a[9, 4] = 4
    with pytest.raises(PsumOverflowError, match=r"bad\.txt: value 4 at line 8 \(entry 4, ch9\) does not fit "
                                                r"2-bit unsigned \(0\.\.3\)"):
        V.write_activation2(tmp_path / "bad.txt", a)
    assert not (tmp_path / "bad.txt").exists()
