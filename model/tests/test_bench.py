"""model.bench: runs on tiny sizes and prints its table (no timing assertions)."""
import argparse

import pytest

from model import bench
from model.errors import ModelError


def _args(*argv):
    p = argparse.ArgumentParser()
    bench.add_arguments(p)
    return p.parse_args(list(argv))


def test_bench_prints_table():
    lines = []
    rc = bench.run(_args("--layer", "8,16,4", "--loop-layer", "8,8,2", "--loop-layer", "3,9,2",
                         "--repeats", "1"), echo=lines.append)
    assert rc == 0
    text = "\n".join(lines)
    assert lines[0].split()[:3] == ["implementation", "layer", "time"]
    assert "vectorized ws_reference" in text and "8->16 4x4" in text
    assert "seed-style loops" in text and "8->8 2x2" in text and "3->9 2x2" in text
    assert "EXTRAPOLATED from 3->9 2x2" in text and "psums match ws_reference" in text
    assert "speedup" in lines[-1]


def test_bench_defaults_and_errors():
    a = _args()
    assert a.layer == "64,64,32" and a.repeats == 5 and a.loop_layer is None
    assert bench.parse_layer("8,8,6") == (8, 8, 6)
    with pytest.raises(ModelError, match="IC,OC,HW"):
        bench.parse_layer("8x8")
    with pytest.raises(ModelError, match="--repeats"):
        bench.run(argparse.Namespace(**{**vars(_args()), "repeats": 0}))
