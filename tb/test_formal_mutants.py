"""The mutants of `make formal` (formal/formal.py) still apply to the RTL, and the mutant
proofs read the mutated copy. The proofs themselves run in `make formal` (also in CI): a
solver run per mutant is too slow for this regression."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from formal import formal as driver


@pytest.mark.parametrize("proof, mutant", [(p, m) for p, ms in driver.MUTANTS.items() for m in ms],
                         ids=lambda v: v if isinstance(v, str) else v.name)
def test_mutant_reads_the_mutated_rtl(proof, mutant, tmp_path):
    sby = driver.mutant_sby(proof, mutant, tmp_path)
    text = sby.read_text()
    files = text.split("[files]\n", 1)[1].split()
    assert mutant.file in files
    for name in files:
        assert (tmp_path / name).is_file(), f"{sby}: [files] entry {name} does not exist"
    original = (driver.REPO / "rtl" / mutant.file).read_text()
    mutated = (tmp_path / mutant.file).read_text()
    assert mutated == original.replace(mutant.original, mutant.mutated) != original


def test_mutant_text_gone_is_an_error(tmp_path):
    gone = driver.Mutant("gone", "fifo.v", "no such text in the FIFO", "x", "nothing")
    with pytest.raises(driver.FormalError, match=re.escape("rtl/fifo.v no longer holds the text")):
        driver.mutant_sby("fifo", gone, tmp_path)
