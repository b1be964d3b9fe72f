"""Checkout paths with spaces: the make targets and the Verilator build still work.

The repository's tracked files are copied under a folder whose path holds spaces (the
virtual environment is linked in, not reinstalled), and make runs there.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import runner
from model import vectors as V
from model.tiling import random_layer, ws_reference

VENV = runner.REPO / ".venv"


@pytest.fixture(scope="module")
def spaced_checkout(tmp_path_factory) -> Path:
    if not (VENV / "bin" / "python").exists() or shutil.which("iverilog") is None:
        pytest.skip("needs the repository's .venv and iverilog")
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=runner.REPO,
                           capture_output=True, text=True, check=True).stdout.split("\n")
    root = tmp_path_factory.mktemp("paths") / "a checkout with spaces" / "repo"
    for name in filter(None, files):
        if (runner.REPO / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(runner.REPO / name, root / name)   # dates kept: make sees the venv up to date
    (root / ".venv").symlink_to(VENV)
    return root


def make(root: Path, *targets: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "MFLAGS"))}
    return subprocess.run(["make", "--no-print-directory", *targets], cwd=root, env=env,
                          capture_output=True, text=True, timeout=600)


def test_make_lint_and_classic_under_a_path_with_spaces(spaced_checkout, tmp_path):
    """make lint (Verilator from the venv: the quoted VERILATOR_ROOT/PATH) and make classic on
    a folder of vectors whose path also holds spaces: PASS with exit status 0; a malformed
    file: FAIL naming file:line, non-zero exit status."""
    done = make(spaced_checkout, "lint")
    assert done.returncode == 0 and "lint clean" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]

    x, w = random_layer(np.random.default_rng(3), 8, 8, 4, 4)
    vectors = tmp_path / "my vectors"
    V.write_ws_files(vectors, ws_reference(x, w))
    done = make(spaced_checkout, "classic", f"VECTORS={vectors}")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "PASS: 16 of 16 outputs match, 324 psum vectors match" in done.stdout

    out = vectors / "out.txt"
    lines = out.read_text().split("\n")
    lines[3] = "2" + lines[3][1:]                                  # line 4, column 1
    out.write_text("\n".join(lines))
    done = make(spaced_checkout, "classic", f"VECTORS={vectors}")
    assert done.returncode != 0
    assert f"FAIL: {out}:4: non-binary character '2' at column 1" in done.stdout, done.stdout[-2000:]


def test_verilator_builds_outside_paths_with_spaces(monkeypatch, tmp_path):
    """GNU Make (Verilator's generated makefiles) cannot build in a folder with a space, nor
    include $(VERILATOR_ROOT) from one: the runner builds in a space-free twin folder and hands
    Verilator space-free links; without a space nothing moves."""
    spaced = tmp_path / "with space" / "sim_build"
    monkeypatch.setattr(runner, "SIM_BUILD", spaced)
    monkeypatch.setenv("SIM", "verilator")
    folder = runner.build_dir("mac", {"bw": 4})
    assert " " not in str(folder) and folder.name == "mac-bw4-verilator"
    monkeypatch.setenv("SIM", "icarus")
    assert runner.build_dir("mac", {"bw": 4}).parent == spaced
    spaced.mkdir(parents=True)
    link = runner.space_free(spaced)
    assert " " not in str(link) and link.resolve() == spaced.resolve()
    assert runner.space_free(spaced) == link and runner.space_free(tmp_path) == tmp_path
    shutil.rmtree(folder.parent)   # the temp twins of this test's folder
    link.unlink()


def test_make_clean_removes_its_temp_twins(tmp_path):
    """tools/clean_temp.py (make clean) removes the temp build folders and links that stand
    for paths inside its checkout, and leaves another checkout's alone: the names and the
    origin marker that tb/runner.py writes (tb/temp_twins.py), with the standard library only."""
    import sys

    from tb.temp_twins import SHIM, temp_twin

    repo, other = tmp_path / "a checkout" / "repo", tmp_path / "another checkout"
    for name in ("tools/clean_temp.py", "tb/__init__.py", "tb/temp_twins.py"):   # what make clean runs
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(runner.REPO / name, repo / name)
    (repo / "sim_build").mkdir()
    other.mkdir()
    package = repo / ".venv" / "lib" / "python3.11" / "site-packages" / "verilator"
    package.mkdir(parents=True)
    shim = temp_twin(package.resolve(), SHIM)      # what runner makes for cocotb's Verilator
    shim.mkdir()
    mine = [runner.build_dir_without_spaces(repo / "sim_build"), runner.space_free(repo / "sim_build"), shim]
    theirs = [runner.build_dir_without_spaces(other / "build"), runner.space_free(other)]
    assert all(" " not in str(p) and os.path.lexists(p) for p in mine + theirs)
    # -S: no site-packages (make clean runs the system python3, without the venv's packages)
    done = subprocess.run([sys.executable, "-S", str(repo / "tools" / "clean_temp.py")], capture_output=True, text=True)
    assert done.returncode == 0 and "removed 3 " in done.stdout, done.stdout + done.stderr
    assert not any(os.path.lexists(p) for p in mine), "make clean left a twin of its checkout"
    assert all(os.path.lexists(p) for p in theirs), "make clean removed another checkout's twin"
    shutil.rmtree(theirs[0])
    theirs[1].unlink()


def test_program_player_long_path_with_spaces(tmp_path):
    """tb/bench.py's player (tb/core_player.v) reads and writes its files under a 200+
    character folder with spaces (its 128-character registers used to cut the path)."""
    import bench

    x, w = random_layer(np.random.default_rng(4), 8, 8, 4, 4)
    out = tmp_path / ("a long folder name with spaces " * 7)
    assert len(str(out)) > 200
    row = bench.bench_row(bench.Player("icarus", tmp_path / "build"), "long path", x, w, "fast", out)
    assert row.outputs_checked == 16 and row.psums_checked == 144


def test_program_player_non_ascii_path(tmp_path):
    """The Icarus player builds and plays under a folder whose path holds a non-ASCII
    character (vvp turns every byte above 0x7f of a plusarg into 0xff, so its $fopen missed
    the folder): it plays from an ASCII twin link, every psum and output checked."""
    import bench

    x, w = random_layer(np.random.default_rng(4), 8, 8, 4, 4)
    folder = tmp_path / "dätä ü"
    row = bench.bench_row(bench.Player("icarus", folder / "build"), "non ascii", x, w, "fast", folder / "out")
    assert row.outputs_checked == 16 and row.psums_checked == 144
    link = runner.vvp_safe(folder / "out" / "non_ascii-fast")
    assert str(link).isascii() and link.resolve() == (folder / "out" / "non_ascii-fast").resolve()
    link.unlink()
    assert runner.vvp_safe(tmp_path) == tmp_path


def test_vvp_safe_refuses_a_non_ascii_temp_folder(tmp_path, monkeypatch):
    """No ASCII twin where the temp folder itself is not ASCII: one line naming both."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tëmp"))
    with pytest.raises(runner.ModelError, match=r"^.*/ü: holds a control or non-ASCII character, which Icarus "
                                                r"cannot open, and so does the temp folder .*/tëmp \(set TMPDIR"):
        runner.vvp_safe(tmp_path / "ü")
