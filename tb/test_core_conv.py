"""tb.core_conv.CoreConv: conv layers of a small network chained through the RTL (the Icarus
player and the cocotb bench), against the integer conv (F.conv2d) and Requant.apply."""
from __future__ import annotations

import numpy as np
import pytest

from model.errors import ModelError
from model.requant import Requant
from tb import runner
from tb.core_conv import ConvRun, CoreConv
from tb.layer_cases import int_conv, quantile_requant


@pytest.mark.parametrize("sim", ["icarus", "cocotb"])
def test_small_network_chain(sim):
    """A signed 3-channel image (levels -255..15) -> 8 channels (levels) -> max-pool on the
    host -> 12 channels (raw sums): each layer's RTL output equals the reference, the
    second layer's input is the first's output from the core; the cycles include the loads."""
    rng = np.random.default_rng(4)
    conv = CoreConv(sim=sim, build=runner.SIM_BUILD / f"core_conv-{sim}")
    x = rng.integers(-255, 16, (3, 4, 4))
    w0, w1 = rng.integers(-7, 8, (8, 3, 3, 3)), rng.integers(-7, 8, (12, 8, 3, 3))
    rq = quantile_requant(int_conv(x, w0), rng)
    first = conv.run(x, w0, rq)
    np.testing.assert_array_equal(first.out, rq.apply(int_conv(x, w0)))
    assert first.out.min() == 0 and first.out.max() == 15 and first.errors == []
    pooled = first.out.reshape(8, 2, 2, 2, 2).max(axis=(2, 4))
    second = conv.run(pooled, w1, None)
    np.testing.assert_array_equal(second.out, int_conv(pooled, w1))
    assert second.macs == 8 * 12 * 9 * 2 * 2 and second.busy > 0 and second.cycles > second.busy
    assert first.cycles > 15 * 8 * 2       # the threshold words went through xmem first


def test_the_template_is_reused(tmp_path):
    """The second image of a geometry binds new words into the same template."""
    rng = np.random.default_rng(5)
    conv = CoreConv(sim="icarus", build=runner.SIM_BUILD / "core_conv-icarus")
    w = rng.integers(-7, 8, (8, 8, 3, 3))
    runs = [conv.run(rng.integers(0, 16, (8, 3, 3)), w) for _ in range(2)]
    assert runs[0].cycles == runs[1].cycles and not np.array_equal(runs[0].out, runs[1].out)


def test_refusals():
    conv = CoreConv(sim="icarus", build=runner.SIM_BUILD / "core_conv-icarus")
    w = np.zeros((8, 3, 3, 3), dtype=np.int64)
    with pytest.raises(ModelError, match=r"^x_int: levels -300\.\.-300; a signed first layer takes -255\.\.15"):
        conv.run(np.full((3, 2, 2), -300), w)
    with pytest.raises(ModelError, match="requant has 4 channels, the layer 8"):
        conv.run(np.zeros((3, 2, 2)), w, Requant(np.zeros((4, 15), dtype=np.int64), np.zeros(4, dtype=bool)))
    with pytest.raises(ModelError, match="w_int has 3 input channels but x_int has 2"):
        conv.run(np.zeros((2, 2, 2)), w)
    with pytest.raises(ModelError, match="sim must be one of"):
        CoreConv(sim="xsim")
    flagged = ConvRun(out=np.zeros(0), cycles=1, busy=1, macs=1, errors=["SFP overflow"])
    with pytest.raises(ModelError, match="the core raised SFP overflow"):
        CoreConv._check(flagged, conv_template())


def conv_template():
    from model.hwconfig import CONFIG
    from model.program.network import LayerShape, template

    return template(LayerShape(8, 8, 2, 2, CONFIG.row, "raw"))
