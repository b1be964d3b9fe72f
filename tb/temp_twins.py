"""What tb/runner.py makes in the temp folder for a path that holds a space (Verilator's
makefiles cannot build there), named in one place for the runner and for
tools/clean_temp.py (`make clean`). Standard library only: make clean runs without the
virtual environment."""
from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

ORIGIN = "origin.txt"     # in a temp build folder: the path it stands for
BUILD = "sim_build"       # kind of a temp build folder (runner.build_dir_without_spaces)
LINK = "space-free"       # kind of a space-free symlink (runner.space_free)
SHIM = "verilator-bin"    # kind of a folder with a space-free `verilator` (runner, for cocotb)


def temp_twin(path: Path, kind: str) -> Path:
    """A name in the temp folder, one per (`path`, `kind`): <kind>-<16 hex digits>."""
    return Path(tempfile.gettempdir()) / f"{kind}-{hashlib.sha256(str(path).encode()).hexdigest()[:16]}"
