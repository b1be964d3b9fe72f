"""tb/demo.py (make demo): the options that choose the layer, and what it says it ran.

The full run (capture, export, every schedule through the core) is the one of `make
demo` (default model and layer, so it ends with the part-2 layer's 2-bit row); the refusals
end before any simulation.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

import runner


def demo(*argv, cwd=runner.REPO, timeout=900):
    env = {k: v for k, v in os.environ.items() if k not in ("MODEL_DEBUG", "WAVES")}
    return subprocess.run([sys.executable, "-m", "model", "demo", *map(str, argv)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def one_line_error(done) -> str:
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: "), done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    return done.stderr.strip()


def test_demo_runs_and_names_the_layer(tmp_path):
    done = demo("--seed", "1", "--out", tmp_path / "out")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "layer     features.27 of vgg16_quant_project (seed 1)  (8 -> 8 channels, 4x4 output" in done.stdout
    assert ("2-bit     features.27 of vgg16_quant_project_part2 (seed 1)  (16 -> 16 channels, 4x4 output, "
            "a_bit=2") in done.stdout, done.stdout
    for schedule in ("classic", "fast", "os", "fast2"):
        assert any(line.split()[1:2] == [schedule] and line.endswith("all bit-exact")
                   for line in done.stdout.splitlines()), done.stdout


def test_demo_refuses_a_plain_vgg16_checkpoint(tmp_path):
    """A plain VGG16 checkpoint: its default layer (64 -> 64, 32x32) is refused in one line
    naming the layer and the checkpoint (it used to print a header naming features.27 and a
    source line of a traceback)."""
    from model.checkpoint import save_checkpoint
    from model.vgg import build_model

    path = save_checkpoint(tmp_path / "plain.pt", build_model("vgg16_quant", seed=0), "vgg16_quant", 1, 0.0)
    done = demo("--checkpoint", path, "--out", tmp_path / "out")
    assert done.returncode == 1
    assert one_line_error(done).startswith(f"error: features.3 of checkpoint {path} (64 -> 64 channels, "
                                           f"32x32 output")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv, message", [
    (["--seed", "-1"], "argument --seed: must be an integer in 0..4294967295"),
    (["--image", "10000"], "argument --image: must be an integer in 0..9999"),
    (["--model", "resnet"], "argument --model: unknown model 'resnet'"),
    (["--max-cycles", "0"], "argument --max-cycles: must be an integer >= 1"),
])
def test_demo_bad_options(argv, message, capsys):
    """Refused by the parser, naming the option (in-process: no torch start-up per case)."""
    from model.cli import main

    assert main(["demo", *argv]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and message in err, err


def _cap(ic=8, oc=8, map_hw=(4, 4), stride=1, padding=1, a_bit=4):
    from types import SimpleNamespace

    import numpy as np
    return SimpleNamespace(x_int=np.zeros((ic, *map_hw)), w_int=np.zeros((oc, ic, 3, 3)),
                           out_int=np.zeros((oc, *map_hw)), stride=stride, padding=padding, a_bit=a_bit)


@pytest.mark.parametrize("cap, said", [
    (_cap(), "make classic VECTORS=o"),
    (_cap(16, 16, a_bit=2), "make classic VECTORS=o A_BIT=2 OTILE=0 && make classic VECTORS=o A_BIT=2 OTILE=1"),
    (_cap(map_hw=(8, 8)), "this layer's is 8x8, 1 input tile(s), stride 1, padding 1"),
    (_cap(16), "this layer's is 4x4, 2 input tile(s)"),
    (_cap(stride=2), "stride 2, padding 1"),
])
def test_classic_commands(cap, said):
    """The make classic line(s) demo prints for the files it wrote: one per oc tile, A_BIT=2
    for a 2-bit layer, and a sentence instead for a layer classic_tb.v does not take."""
    from demo import classic_commands

    got = classic_commands(cap, "o")
    assert (got == said) if said.startswith("make") else (got.startswith("not for make classic") and said in got), got


def test_classic_commands_name_a_relative_folder_whole_outside_the_repository(tmp_path, monkeypatch):
    """make classic reads a relative VECTORS from the repository: run elsewhere, demo's line
    names the folder whole (it printed the relative name, which make then missed)."""
    from demo import classic_commands

    assert classic_commands(_cap(), "rel") == "make classic VECTORS=rel"   # in the repository
    monkeypatch.chdir(tmp_path)
    assert classic_commands(_cap(), "rel") == f"make classic VECTORS={tmp_path / 'rel'}"


@pytest.mark.parametrize("out", ["/tmp/démo", "/tmp/a\tb"])
def test_classic_commands_for_a_folder_classic_tb_cannot_open(out):
    """A folder whose path make classic refuses (non-ASCII or control characters: Icarus
    mangles them) gets a sentence saying so, not a command that fails."""
    from demo import classic_commands

    got = classic_commands(_cap(), out)
    assert got.startswith("not for make classic from this folder: its path holds a non-ASCII or control"), got


@pytest.mark.skipif(shutil.which("iverilog") is None or not (runner.REPO / ".venv" / "bin" / "python").exists(),
                    reason="needs iverilog and the repository's .venv")
def test_classic_commands_loop_runs_every_tile(tmp_path):
    """Above MAX_LISTED_TILES oc tiles demo prints a shell loop (a 64-tile layer printed one
    line of 64 commands); run verbatim, it passes every tile of a 5-tile export, and its exit
    status fails when one tile does."""
    import numpy as np

    from demo import MAX_LISTED_TILES, classic_commands
    from model import vectors as V
    from model.tiling import random_layer, ws_reference

    x, w = random_layer(np.random.default_rng(5), 8, 8 * (MAX_LISTED_TILES + 1), 4, 4)
    folder = tmp_path / "tiles"
    V.write_ws_files(folder, ws_reference(x, w))
    command = classic_commands(_cap(oc=8 * (MAX_LISTED_TILES + 1)), folder)
    assert command.startswith("o=0; while [ $o -lt 5 ] && make classic ") and "OTILE=$o" in command, command
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "MFLAGS"))}
    env["MAKEFLAGS"] = f"BUILD={tmp_path / 'build'}"
    done = subprocess.run(["sh", "-c", command], cwd=runner.REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and done.stdout.count("PASS: 16 of 16 outputs match") == 5, done.stdout[-2000:]
    (folder / "out_otile3.txt").write_text((folder / "out_otile2.txt").read_text())
    done = subprocess.run(["sh", "-c", command], cwd=runner.REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode != 0 and done.stdout.count("PASS") == 3, done.stdout[-2000:]
