"""mac: out = c + a * b, a unsigned bw-bit, b two's complement bw-bit, c/out psum_bw-bit.

Combinational: set the inputs, wait 1 ns, check. Every (a, b) pair is tried against a
set of psum-in values that includes the corners and values that make the sum wrap; the
MAC wraps modulo 2**psum_bw and the model does the same.
"""
from __future__ import annotations

import cocotb
import pytest
from cocotb.triggers import Timer

import runner
from tbutil import param, seeded_rng, signed


def mac_model(a: int, b: int, c: int, psum_bw: int) -> int:
    return signed(c + a * b, psum_bw)


class TB:
    def __init__(self, dut):
        self.dut = dut
        self.bw = param(dut, "bw")
        self.psum_bw = param(dut, "psum_bw")
        dut._log.info("mac bw=%d psum_bw=%d", self.bw, self.psum_bw)

    def a_values(self):
        return range(0, 1 << self.bw)

    def b_values(self):
        return range(-(1 << (self.bw - 1)), 1 << (self.bw - 1))

    async def apply(self, a: int, b: int, c: int) -> int:
        mask = (1 << self.psum_bw) - 1
        self.dut.a.value = a
        self.dut.b.value = b & ((1 << self.bw) - 1)
        self.dut.c.value = c & mask
        await Timer(1, "ns")
        return self.dut.out.value.to_signed()

    def psum_corners(self, rng) -> list[int]:
        lo, hi = -(1 << (self.psum_bw - 1)), (1 << (self.psum_bw - 1)) - 1
        # the 16-bit array corners, this width's corners, values one product from wrapping
        values = [0, -1, 1, 32767, -32768, 32767 - 50, -32768 + 50, lo, hi, lo + 7, hi - 7, 1000, -1000]
        values += [rng.randint(lo, hi) for _ in range(3)]
        return list(dict.fromkeys(v for v in values if lo <= v <= hi))


@cocotb.test()
async def test_exhaustive(dut):
    """All 2**(2*bw) operand pairs for each psum-in corner value."""
    tb = TB(dut)
    rng = seeded_rng(dut)
    checked = wrapped = 0
    for c in tb.psum_corners(rng):
        for a in tb.a_values():
            for b in tb.b_values():
                got = await tb.apply(a, b, c)
                want = mac_model(a, b, c, tb.psum_bw)
                assert got == want, (
                    f"a={a} b={b} c={c}: expected {want} ({c} + {a * b} mod 2**{tb.psum_bw}), got {got}"
                )
                checked += 1
                wrapped += want != c + a * b
    pairs = len(tb.a_values()) * len(tb.b_values())
    assert checked >= pairs * 5, f"only {checked} cases checked"
    assert wrapped > 0, "no case made the psum wrap: the corner list misses the wrap-around"
    dut._log.info("%d cases checked, %d of them wrap around 2**%d", checked, wrapped, tb.psum_bw)


@cocotb.test()
async def test_product_extremes(dut):
    """Directed: the largest products of either sign, from zero and across the wrap."""
    tb = TB(dut)
    amax = (1 << tb.bw) - 1
    bmin, bmax = -(1 << (tb.bw - 1)), (1 << (tb.bw - 1)) - 1
    top = (1 << (tb.psum_bw - 1)) - 1
    cases = [
        (amax, bmin, 0, amax * bmin),            # most negative product
        (amax, bmax, 0, amax * bmax),            # most positive product
        (amax, bmax, top, -top - 1 + amax * bmax - 1),  # positive overflow wraps to negative
        (amax, bmin, -top - 1, top + 1 + amax * bmin),  # negative overflow wraps to positive
        (0, bmin, -1, -1),
        (1, -1, 0, -1),
    ]
    for a, b, c, want in cases:
        got = await tb.apply(a, b, c)
        assert got == want, f"a={a} b={b} c={c}: expected {want}, got {got}"


@pytest.mark.parametrize("bw,psum_bw", [(4, 16), (4, 20), (4, 12)])
def test_mac(bw, psum_bw):
    runner.run("mac", "test_mac", parameters={"bw": bw, "psum_bw": psum_bw}, name="mac")
