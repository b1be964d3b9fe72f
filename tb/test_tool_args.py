"""Bad arguments of the long-running tools fail at once, in one line, before any work:
tb/conv_bench.py (make conv-bench), synth/synth.py (make synth) and make classic's options."""
from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import subprocess

import numpy as np
import pytest

from model import vectors as V
from model.errors import VectorFileError
from model.tiling import random_layer, ws_reference
from tb import conv_bench, runner

spec = importlib.util.spec_from_file_location("synth_tool", runner.REPO / "synth" / "synth.py")
synth = importlib.util.module_from_spec(spec)
spec.loader.exec_module(synth)


@pytest.mark.parametrize("args, message", [
    (["--batch", "-1"], "error: --batch must be 0 or more, got -1"),
    (["--size", "0"], "error: --size must be a positive multiple of 32 (vgg16_quant_project halves the map 5 times), got 0"),
    (["--size", "16"], "error: --size must be a positive multiple of 32 (vgg16_quant_project halves the map 5 times), got 16"),
    (["--out", "README.md"], "error: --out README.md: not a folder"),
])
def test_conv_bench_refuses(args, message, capsys, monkeypatch):
    monkeypatch.chdir(runner.REPO)
    assert conv_bench.main(args) == 2
    assert capsys.readouterr().err.strip() == message


@pytest.mark.parametrize("args, message", [
    (["--out", "build/a b"], "--out build/a b: no spaces below the repository"),
    (["--out", "README.md"], "--out README.md: not a folder"),
    (["--out", "/elsewhere"], "--out /elsewhere: must lie inside the repository"),
    (["--freq", "nan"], "--freq nan: must be a number of MHz above 0 and at most 1000.0"),
    (["--freq", "0"], "--freq 0.0: must be a number of MHz above 0 and at most 1000.0"),
    (["--freq", "1e12"], "--freq 1000000000000.0: must be a number of MHz above 0 and at most 1000.0"),
    (["--seed", "-1"], "--seed -1: must be 0 or more"),
    (["--bench", "missing.json"], "--bench missing.json: not found"),
    (["--bench", "README.md"], "--bench README.md: not a bench.json of `make bench` (JSONDecodeError"),
])
def test_synth_refuses_before_synthesis(args, message, capsys):
    """(A missing --bench behind each other bad argument: a check that were lost would stop
    there rather than start an hour of synthesis.)"""
    if "--bench" not in args:
        args = args + ["--bench", "missing.json"]
    assert synth.main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1, err


@pytest.mark.parametrize("args, message", [
    (["DATAFLOW=xs"], "DATAFLOW must be ws or os, got 'xs'"),
    (["A_BIT=3"], "A_BIT must be 2 or 4, got '3'"),
    (["DATAFLOW=os", "GROUP=abc"], "GROUP must be a number 0..9999, got 'abc'"),
    (["DATAFLOW=os", "GROUP=-1"], "GROUP must be a number 0..9999, got '-1'"),
    (["DATAFLOW=os", "GROUP=4294967297"], "GROUP must be a number 0..9999, got '4294967297'"),
    (["OTILE=1x"], "OTILE must be a number 0..9999, got '1x'"),
    (["GROUP=0"], "GROUP=0 is an OS pixel group: it needs DATAFLOW=os"),
    (["VECTORS=", "GROUP=1", "DATAFLOW=os"],
     "VECTORS is empty: name a folder (make drops the leading spaces of a command-line value), or leave VECTORS "
     "out to run the bench's own export"),
    (["DATAFLOW=ws os"], "DATAFLOW must be ws or os, got 'ws os'"),
    (["DATAFLOW=ws "], "DATAFLOW must be ws or os, got 'ws '"),
    (["A_BIT=4 2"], "A_BIT must be 2 or 4, got '4 2'"),
    (["PSUM_BW=abc"], "PSUM_BW must be a number of bits in 11..20 (what the core builds with), got 'abc'"),
    (["PSUM_BW=16 -DFOO"], "PSUM_BW must be a number of bits in 11..20 (what the core builds with), got '16 -DFOO'"),
    (["PSUM_BW=0"], "PSUM_BW must be a number of bits in 11..20 (what the core builds with), got '0'"),
    (["PSUM_BW=10"], "PSUM_BW must be a number of bits in 11..20 (what the core builds with), got '10'"),
    (["PSUM_BW=21"], "PSUM_BW must be a number of bits in 11..20 (what the core builds with), got '21'"),
    (["PSUM_BW=1$x6"], "PSUM_BW must be a number of bits in 11..20 (what the core builds with), got '1$x6'"),
    (["VECTORS=my\nvectors"], "VECTORS holds a line break: name a folder without one"),
    (["DATAFLOW=os", "GROUP=1$x"], "GROUP must be a number 0..9999, got '1$x'"),
])
def test_make_classic_refuses(args, message):
    """make classic on your own files: a mistyped option stops make in one line (it used to
    run the WS bench and pass; a '$' in GROUP was dropped by make: 1$x ran group 1)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "MFLAGS"))}
    done = subprocess.run(["make", "--no-print-directory", "-n", "classic", "VECTORS=vectors", *args],
                          cwd=runner.REPO, env=env, capture_output=True, text=True)
    assert done.returncode != 0 and done.stderr.strip().endswith(f"*** {message}.  Stop."), done.stderr


CANNOT_CARRY = "holds a '\"', '`', '\\', '$' or line break, which the recipes' shell cannot carry: name a build folder without one"


@pytest.mark.parametrize("build, message", [(v, f"BUILD={v} {CANNOT_CARRY}") for v in ['a"b', "a`b", "a\\b", "a$b", "a\nb"]]
                         + [(" ", "BUILD is empty: name a build folder")])
def test_make_refuses_a_build_folder_the_shell_cannot_carry(build, message):
    """BUILD reaches the recipes in double quotes: a value with a '"' ended make classic, demo,
    clean ... in a shell syntax error, an empty one made build/classic at /; every target now
    stops at once, in one line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "MFLAGS"))}
    done = subprocess.run(["make", "--no-print-directory", "-n", "clean", f"BUILD={build}"],
                          cwd=runner.REPO, env=env, capture_output=True, text=True)
    assert done.returncode != 0 and done.stderr.strip().endswith(f"*** {message}.  Stop."), done.stderr


@pytest.mark.parametrize("args, message", [
    (["GROUP=1", "DATAFLOW=os"], "OTILE and GROUP choose files of VECTORS=<folder>; without it make classic runs "
                                 "every group and tile of its own export"),
    (["DATAFLOW=os"], "DATAFLOW and A_BIT describe the files of VECTORS=<folder>; without it make classic runs "
                      "both dataflows and both precisions of its own export"),
    (["A_BIT=2"], "DATAFLOW and A_BIT describe the files of VECTORS=<folder>; without it make classic runs "
                  "both dataflows and both precisions of its own export"),
])
def test_make_classic_refuses_options_of_vectors_without_it(args, message):
    """GROUP, OTILE, DATAFLOW and A_BIT describe the user's folder: without VECTORS they are
    refused (make classic would run its own export and ignore them)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "MFLAGS"))}
    done = subprocess.run(["make", "--no-print-directory", "-n", "classic", *args],
                          cwd=runner.REPO, env=env, capture_output=True, text=True)
    assert done.returncode != 0 and done.stderr.strip().endswith(f"*** {message}.  Stop."), done.stderr


def test_make_classic_checks_group_without_a_shell(tmp_path):
    """GROUP is checked with make's own functions: a value with a shell command in it is
    refused, and the command never runs (not even under make -n)."""
    marker = tmp_path / "ran"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "MFLAGS"))}
    value = f"1';touch {marker};echo '1"
    done = subprocess.run(["make", "--no-print-directory", "-n", "classic", "VECTORS=vectors", "DATAFLOW=os",
                           f"GROUP={value}"], cwd=runner.REPO, env=env, capture_output=True, text=True)
    assert done.returncode != 0 and f"GROUP must be a number 0..9999, got '{value}'" in done.stderr, done.stderr
    assert not marker.exists()


@pytest.mark.skipif(shutil.which("iverilog") is None or not (runner.REPO / ".venv" / "bin" / "python").exists(),
                    reason="needs iverilog and the repository's .venv")
def test_make_classic_takes_any_folder_name(tmp_path):
    """VECTORS is a folder's name, whatever its characters: quotes, '$', a backslash, a
    backquote, spaces, a leading '-' and a make function reach classic_tb.v as they are (a
    double quote used to end in a shell syntax error, a '$' was expanded by make)."""
    x, w = random_layer(np.random.default_rng(3), 8, 8, 4, 4)
    name = "-my \"odd\" 'vectors' $HOME \\n `true` $(shell touch ran)"
    V.write_ws_files(tmp_path / name, ws_reference(x, w))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "MFLAGS"))}
    done = subprocess.run(["make", "--no-print-directory", "classic", f"VECTORS={tmp_path / name}",
                           f"BUILD={tmp_path / 'build'}"], cwd=runner.REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert f"classic_tb on {tmp_path / name} " in done.stdout
    assert "PASS: 16 of 16 outputs match, 324 psum vectors match" in done.stdout
    assert not (runner.REPO / "ran").exists(), "make ran the $(shell ...) in the folder name"


@pytest.mark.skipif(shutil.which("iverilog") is None or not (runner.REPO / ".venv" / "bin" / "python").exists(),
                    reason="needs iverilog and the repository's .venv")
@pytest.mark.parametrize("name", ["my\tvectors", "données ü"])
def test_make_classic_refuses_a_path_icarus_cannot_open(tmp_path, name):
    """A tab or a non-ASCII character in the folder's path: Icarus's $fopen refuses the one,
    vvp turns every byte of the other above 0x7f into 0xff, so classic_tb.v would report its
    first file as missing; make classic says why, in one line, before it runs."""
    folder = tmp_path / name
    folder.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "MFLAGS"))}
    done = subprocess.run(["make", "--no-print-directory", "classic", f"VECTORS={folder}", f"BUILD={tmp_path / 'build'}"],
                          cwd=runner.REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert (f"make classic: the path {folder} holds a control or non-ASCII character, which classic_tb.v cannot "
            "open (Icarus mangles it): use a folder whose path has neither") in done.stderr, done.stderr


@pytest.mark.skipif(shutil.which("iverilog") is None or not (runner.REPO / ".venv" / "bin" / "python").exists(),
                    reason="needs iverilog and the repository's .venv")
def test_make_classic_refuses_a_named_pipe(tmp_path):
    """A named pipe in place of out.txt: classic_tb.v's $fopen waited for a writer for ever
    (vvp ignores Ctrl-C); make classic refuses it before the run, in the Python reader's words."""
    x, w = random_layer(np.random.default_rng(3), 8, 8, 4, 4)
    folder = tmp_path / "vectors"
    V.write_ws_files(folder, ws_reference(x, w))
    fifo = folder / "out.txt"
    fifo.unlink()
    os.mkfifo(fifo)
    with pytest.raises(VectorFileError) as ei:
        V.read_out(fifo)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "MFLAGS"))}
    try:
        done = subprocess.run(["make", "--no-print-directory", "classic", f"VECTORS={folder}",
                               f"BUILD={tmp_path / 'build'}"], cwd=runner.REPO, env=env, capture_output=True,
                              text=True, timeout=60)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(OSError):       # a writer's open releases the bench's blocked $fopen
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("make classic waited on the named pipe")
    assert done.returncode != 0 and f"make classic: {ei.value}\n" in done.stderr, done.stderr


@pytest.mark.skipif(shutil.which("iverilog") is None or not (runner.REPO / ".venv" / "bin" / "python").exists(),
                    reason="needs iverilog and the repository's .venv")
def test_make_classic_asks_for_otile_on_a_folder_of_oc_tiles(tmp_path):
    """A WS folder of two oc tiles without OTILE: make classic says to give OTILE (the bench
    reported out.txt as not found); with OTILE=1 the tile passes."""
    x, w = random_layer(np.random.default_rng(4), 8, 16, 4, 4)
    folder = tmp_path / "tiles"
    V.write_ws_files(folder, ws_reference(x, w))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "MFLAGS"))}
    make = ["make", "--no-print-directory", "classic", f"VECTORS={folder}", f"BUILD={tmp_path / 'build'}"]
    done = subprocess.run(make, cwd=runner.REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and (f"make classic: {folder} holds oc tiles (out_otile0.txt, ...), not out.txt: "
                                     "give OTILE=o, one make classic per tile") in done.stderr, done.stderr
    done = subprocess.run(make + ["OTILE=1"], cwd=runner.REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "PASS: 16 of 16 outputs match" in done.stdout, done.stdout[-2000:] + done.stderr
