"""Remove what this checkout left in the temp folder: the space-free build folders and
links that tb/runner.py makes when the checkout's path holds a space (Verilator's
makefiles cannot build there). Standard library only, so `make clean` runs without the
virtual environment. Usage: python3 tools/clean_temp.py"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))   # this checkout's tb/, also where tb is not installed
from tb.temp_twins import BUILD, LINK, ORIGIN, SHIM, temp_twin  # noqa: E402  (standard library only)


def _inside(text: str) -> bool:
    return Path(text) == REPO or REPO in Path(text).parents


def main() -> None:
    removed = 0
    tmp = Path(tempfile.gettempdir())
    for folder in tmp.glob(f"{BUILD}-*"):
        origin = folder / ORIGIN
        # another user's or a damaged marker is not this checkout's: leave it
        if origin.is_file() and _inside(origin.read_text(errors="replace")):
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    for link in tmp.glob(f"{LINK}-*"):
        if link.is_symlink() and _inside(os.readlink(link)):
            link.unlink(missing_ok=True)
            removed += 1
    # the verilator shim is named after the venv's Verilator package (tb/runner.py)
    for package in REPO.glob(".venv/lib/python*/site-packages/verilator"):
        shim = temp_twin(Path(os.path.realpath(package)), SHIM)
        if shim.is_dir() and not shim.is_symlink():
            shutil.rmtree(shim, ignore_errors=True)
            removed += 1
    print(f"removed {removed} temp folder(s) and link(s) of {REPO}")


if __name__ == "__main__":
    main()
