"""mac_tile: one PE, weight-stationary (WS) or output-stationary (OS).

WS (os_in = 0): psum_out <= psum_in + a * w, registered; w is w_active, except on the
activation that carries start_in, which uses the staged weight w_q (loaded by wload_en)
and makes it active. OS (os_in = 1): psum_q accumulates a * w_in, start_in restarts the
sum with this product, drain shifts psum_in into psum_q. w_q loads wload_data (wload_en)
or shifts w_in (w_shift); w_out shows it. a/valid/start/os go east one cycle later.

Driver: writes one input vector per cycle (right after a rising edge). Monitor: at each
rising edge samples the inputs that edge takes, then in ReadOnly the registered outputs it
made. Model: a cycle model of the PE written from the contract above. Checker: compares
every output every cycle.
"""
from __future__ import annotations

import cocotb
import pytest
from cocotb.simtime import get_sim_time
from cocotb.triggers import ReadOnly, RisingEdge, Timer

import runner
from tbutil import param, seeded_rng, start_clock_and_reset, uint

INPUTS = ("reset", "a_in", "valid_in", "start_in", "os_in", "wload_en", "wload_data",
          "w_shift", "w_in", "drain", "psum_in")
OUTPUTS = ("a_out", "valid_out", "start_out", "os_out", "w_out", "psum_out")
IDLE = {name: 0 for name in INPUTS}


def signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


class PeModel:
    """The PE's registers; outputs() is what the PE shows, clock() one rising edge."""

    def __init__(self, bw: int, psum_bw: int):
        self.bw, self.psum_bw = bw, psum_bw
        self.reset()

    def reset(self):
        self.fwd = {"a_out": 0, "valid_out": 0, "start_out": 0, "os_out": 0}
        self.w_q = 0        # staged (WS) / shifting (OS) weight, raw bits
        self.w_active = 0   # weight the WS products use
        self.psum_q = 0     # psum register, raw bits

    def outputs(self) -> dict:
        return dict(self.fwd, w_out=self.w_q, psum_out=self.psum_q)

    def clock(self, i: dict) -> None:
        if i["reset"]:
            self.reset()
            return
        a = i["a_in"]
        mask = (1 << self.psum_bw) - 1
        if i["valid_in"] and i["os_in"]:
            base = 0 if i["start_in"] else signed(self.psum_q, self.psum_bw)
            product = a * signed(i["w_in"], self.bw)
        else:
            weight = self.w_q if i["start_in"] else self.w_active
            base = signed(i["psum_in"], self.psum_bw)
            product = a * signed(weight, self.bw)
        if i["drain"]:
            psum_q = i["psum_in"]
        elif i["valid_in"]:
            psum_q = (base + product) & mask
        else:
            psum_q = self.psum_q
        if i["valid_in"] and not i["os_in"] and i["start_in"]:
            self.w_active = self.w_q
        if i["wload_en"]:
            self.w_q = i["wload_data"]
        elif i["w_shift"]:
            self.w_q = i["w_in"]
        self.psum_q = psum_q
        self.fwd = {"a_out": a, "valid_out": i["valid_in"], "start_out": i["start_in"],
                    "os_out": i["os_in"]}


class TB:
    def __init__(self, dut):
        self.dut = dut
        self.bw = param(dut, "bw")
        self.psum_bw = param(dut, "psum_bw")
        self.model = PeModel(self.bw, self.psum_bw)
        self.cycle = 0
        self.checked = 0
        self.macs = {"ws": 0, "os": 0, "drain": 0, "ws_start": 0, "os_start": 0}
        dut._log.info("mac_tile bw=%d psum_bw=%d", self.bw, self.psum_bw)

    async def start(self):
        self.write(IDLE)
        await start_clock_and_reset(self.dut)
        cocotb.start_soon(self._monitor())

    def write(self, inputs: dict) -> None:
        for name in INPUTS:
            value = inputs.get(name, 0)
            if name in ("psum_in",):
                value &= (1 << self.psum_bw) - 1
            elif name in ("wload_data", "w_in"):
                value &= (1 << self.bw) - 1
            getattr(self.dut, name).value = value

    async def drive(self, **inputs) -> None:
        """Present one input vector (unnamed inputs 0) for the next rising edge."""
        self.write(inputs)
        await RisingEdge(self.dut.clk)

    async def peek(self) -> dict:
        """The PE's registered outputs now (between edges); returns still before the next edge."""
        await ReadOnly()
        out = {name: uint(getattr(self.dut, name)) for name in OUTPUTS}
        out["psum"] = signed(out["psum_out"], self.psum_bw)
        out["w"] = signed(out["w_out"], self.bw)
        await Timer(1, "ps")  # leave the read-only phase so the caller may drive again
        return out

    async def _monitor(self):
        dut = self.dut
        while True:
            await RisingEdge(dut.clk)
            inputs = {name: uint(getattr(dut, name)) for name in INPUTS}  # what this edge takes
            await ReadOnly()
            got = {name: uint(getattr(dut, name)) for name in OUTPUTS}    # what it made
            self._count(inputs)
            self.model.clock(inputs)
            want = self.model.outputs()
            self.cycle += 1
            for name in OUTPUTS:
                assert got[name] == want[name], self._diff(name, got[name], want[name], inputs)
            self.checked += 1

    def _diff(self, name: str, got: int, want: int, inputs: dict) -> str:
        if name == "psum_out":
            values = f"expected {signed(want, self.psum_bw)}, got {signed(got, self.psum_bw)}"
        else:
            values = f"expected {want:#x}, got {got:#x}"
        return f"edge {self.cycle} ({get_sim_time('ns'):.0f} ns): {name} {values}; inputs at that edge {inputs}"

    def _count(self, i):
        if i["reset"]:
            return
        if i["drain"]:
            self.macs["drain"] += 1
        elif i["valid_in"]:
            kind = "os" if i["os_in"] else "ws"
            self.macs[kind] += 1
            self.macs[kind + "_start"] += i["start_in"]


def rand_inputs(rng, tb: TB, mode: str) -> dict:
    bw, pb = tb.bw, tb.psum_bw
    psum_corner = rng.choice([0, -1, (1 << (pb - 1)) - 1, -(1 << (pb - 1)), 32767, -32768])
    psum = psum_corner if rng.random() < 0.2 else rng.randrange(-(1 << (pb - 1)), 1 << (pb - 1))
    i = {
        "a_in": rng.getrandbits(bw),
        "w_in": rng.getrandbits(bw),
        "wload_data": rng.getrandbits(bw),
        "psum_in": psum,
    }
    if mode == "ws":
        i.update(valid_in=int(rng.random() < 0.8), start_in=int(rng.random() < 0.15), os_in=0,
                 wload_en=int(rng.random() < 0.2), w_shift=0, drain=0)
    elif mode == "os":
        i.update(valid_in=int(rng.random() < 0.85), start_in=int(rng.random() < 0.1), os_in=1,
                 wload_en=0, w_shift=int(rng.random() < 0.9), drain=int(rng.random() < 0.08))
    else:
        i.update({k: int(rng.random() < 0.5) for k in ("valid_in", "start_in", "os_in", "wload_en", "w_shift", "drain")})
    return i


@cocotb.test()
async def test_ws_weight_switch(dut):
    """WS: staged weight is used from the start activation on; w_active otherwise."""
    tb = TB(dut)
    await tb.start()
    await tb.drive(wload_en=1, wload_data=3)                  # stage 3
    await tb.drive(valid_in=1, a_in=2, psum_in=10)            # no start: w_active (0 after reset)
    assert (await tb.peek())["psum"] == 10, "before any start the active weight must be 0"
    await tb.drive(valid_in=1, start_in=1, a_in=2, psum_in=10)  # start: uses staged 3
    assert (await tb.peek())["psum"] == 16, "the start activation must use the staged weight (10 + 2*3)"
    await tb.drive(wload_en=1, wload_data=-5, valid_in=1, a_in=4, psum_in=-1)  # stage -5 while computing
    assert (await tb.peek())["psum"] == 11, "staging a weight must not change the active one (-1 + 4*3)"
    await tb.drive(valid_in=1, a_in=15, psum_in=0)            # still the old active weight
    assert (await tb.peek())["psum"] == 45, "without start the active weight stays 3 (15*3)"
    await tb.drive(valid_in=0, a_in=15, psum_in=7)            # bubble: psum holds
    assert (await tb.peek())["psum"] == 45, "a cycle without valid must hold the psum"
    await tb.drive(valid_in=1, start_in=1, a_in=15, psum_in=7)  # the new tile: -5
    assert (await tb.peek())["psum"] == 7 - 75, "start must switch to the staged -5 (7 + 15*-5)"
    await tb.drive(valid_in=1, a_in=1, psum_in=0)
    assert (await tb.peek())["psum"] == -5, "after the switch -5 stays active"
    # start without valid is no switch
    await tb.drive(wload_en=1, wload_data=7)
    await tb.drive(start_in=1, a_in=1)
    await tb.drive(valid_in=1, a_in=1, psum_in=0)
    assert (await tb.peek())["psum"] == -5, "a start without valid must not switch the weight"
    # OS operation never touches the WS active weight
    await tb.drive(valid_in=1, start_in=1, os_in=1, a_in=1, w_in=2)
    await tb.drive(valid_in=1, a_in=1, psum_in=100)
    assert (await tb.peek())["psum"] == 95, "an OS start must not load the WS active weight (100 + 1*-5)"


@cocotb.test()
async def test_forwarding(dut):
    """a/valid/start/os reach the east outputs exactly one cycle later."""
    tb = TB(dut)
    rng = seeded_rng(dut)
    await tb.start()
    for _ in range(60):
        i = {"a_in": rng.getrandbits(tb.bw), "valid_in": rng.getrandbits(1),
             "start_in": rng.getrandbits(1), "os_in": rng.getrandbits(1)}
        await tb.drive(**i)
        out = await tb.peek()
        for src, dst in (("a_in", "a_out"), ("valid_in", "valid_out"), ("start_in", "start_out"), ("os_in", "os_out")):
            assert out[dst] == i[src], (
                f"{get_sim_time('ns'):.0f} ns: {dst} expected {i[src]} (the {src} of the edge just passed), got {out[dst]}"
            )


@cocotb.test()
async def test_os_accumulate_drain(dut):
    """OS: start restarts, psum accumulates a*w_in, drain loads psum_in (over valid)."""
    tb = TB(dut)
    rng = seeded_rng(dut)
    await tb.start()
    await tb.drive(valid_in=1, os_in=1, a_in=9, w_in=5, psum_in=1234)  # leaves stale state
    for group in range(4):
        steps = [(rng.getrandbits(tb.bw), rng.randrange(-8, 8)) for _ in range(rng.randint(1, 12))]
        total = 0
        for k, (a, w) in enumerate(steps):
            await tb.drive(valid_in=1, os_in=1, start_in=int(k == 0), a_in=a, w_in=w,
                           psum_in=rng.getrandbits(tb.psum_bw))  # psum_in is ignored in OS
            total += a * w
            got = (await tb.peek())["psum"]
            assert got == total, f"group {group} step {k}: expected running sum {total}, got {got}"
        await tb.drive(os_in=1, a_in=3, w_in=3)  # no valid: hold
        assert (await tb.peek())["psum"] == total, "the OS sum must hold without valid"
        value = rng.randrange(-(1 << (tb.psum_bw - 1)), 1 << (tb.psum_bw - 1))
        await tb.drive(drain=1, valid_in=1, os_in=1, a_in=15, w_in=7, psum_in=value)
        assert (await tb.peek())["psum"] == value, "drain must load psum_in, and win over valid"


@cocotb.test()
async def test_w_shift_chain(dut):
    """w_out is w_q: w_shift takes w_in, wload_en wins over w_shift, otherwise it holds."""
    tb = TB(dut)
    rng = seeded_rng(dut)
    await tb.start()
    held = 0
    for _ in range(80):
        shift, load = rng.random() < 0.6, rng.random() < 0.2
        w_in, data = rng.randrange(-8, 8), rng.randrange(-8, 8)
        await tb.drive(w_shift=int(shift), wload_en=int(load), w_in=w_in, wload_data=data, os_in=1)
        held = data if load else (w_in if shift else held)
        got = (await tb.peek())["w"]
        assert got == held, f"shift={shift} load={load} w_in={w_in} data={data}: w_out expected {held}, got {got}"


@cocotb.test()
async def test_random(dut):
    """Long random sequences (WS-like, OS-like, anything) against the PE model, with resets."""
    tb = TB(dut)
    rng = seeded_rng(dut)
    await tb.start()
    for burst in range(60):
        mode = rng.choice(["ws", "os", "any"])
        for _ in range(rng.randint(20, 120)):
            await tb.drive(**rand_inputs(rng, tb, mode))
        if rng.random() < 0.2:
            await tb.drive(reset=1, **rand_inputs(rng, tb, "any"))
    await tb.drive()
    dut._log.info("checked %d cycles: %s", tb.checked, tb.macs)
    for kind in ("ws", "os", "drain", "ws_start", "os_start"):
        assert tb.macs[kind] > 20, f"random stimulus too thin: only {tb.macs[kind]} {kind} operations"


@pytest.mark.parametrize("bw,psum_bw", [(4, 16), (4, 20)])
def test_mac_tile(bw, psum_bw):
    runner.run("mac_tile", "test_mac_tile", parameters={"bw": bw, "psum_bw": psum_bw}, name="mac_tile")
