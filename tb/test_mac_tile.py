"""mac_tile: one PE, weight-stationary (WS) or output-stationary (OS).

WS (os_in = 0): psum_out <= psum_in + a * w, registered; w is w_active, except on the
activation that carries start_in, which uses the staged weight w_q (loaded by wload_en)
and makes it active. OS (os_in = 1): psum_q accumulates a * w_in, start_in restarts the
sum with this product and moves the finished one into shadow_q; drain shifts psum_in into
psum_q, or with drain_shadow into shadow_q (psum_out shows shadow_q while drain_shadow is
up), so a shadow drain and a product share a cycle; an OS sum that leaves psum_bw
raises the sticky os_overflow flag (until reset). w_q loads wload_data (wload_en) or
shifts w_in (w_shift); w_out shows it. a/valid/start/os/act2 go east one cycle later.
2-bit mode (act2_in = 1, WS only): the lane holds two half-width activations, the low
one times the slot-0 weight plus the high one times the slot-1 weight (w1_q staged by
wload1_en, made active by the same start); in 4-bit mode and in OS the slot-1 product is 0.

Driver: writes one input vector per cycle, on the falling edge. Monitor: at each rising
edge samples the inputs that edge takes, then in ReadOnly the registered outputs it made.
Model: a cycle model of the PE written from the contract above. Checker: compares every
output every cycle. Driver, monitor and checker are tbutil.LockstepTB; this file gives the
ports and the model.
"""
from __future__ import annotations

from collections import Counter

import cocotb
import pytest
from cocotb.simtime import get_sim_time
from cocotb.triggers import FallingEdge

import runner
from tbutil import LockstepTB, param, seeded_rng, signed


class PeModel:
    """The PE's registers; outputs() is what the PE shows, clock() one rising edge.
    Weights and psums are signed values."""

    def __init__(self, bw: int, psum_bw: int):
        self.bw, self.psum_bw = bw, psum_bw
        self.reset()

    def reset(self):
        self.fwd = {"a_out": 0, "valid_out": 0, "start_out": 0, "os_out": 0, "act2_out": 0}
        self.w_q = 0        # staged (WS) / shifting (OS) weight
        self.w_active = 0   # weight the WS products use
        self.w1_q = 0       # 2-bit mode: staged / active slot-1 weight
        self.w1_active = 0
        self.psum_q = 0     # psum register
        self.shadow_q = 0   # OS: the previous group's finished sum
        self.os_overflow = 0
        self.drain_shadow = 0   # the input that selects psum_out (combinational)

    def outputs(self) -> dict:
        psum_out = self.shadow_q if self.drain_shadow else self.psum_q
        return dict(self.fwd, w_out=self.w_q, psum_out=psum_out, os_overflow=self.os_overflow)

    def clock(self, i: dict) -> Counter:
        """One rising edge; returns the operation it did (for coverage)."""
        if i["reset"]:
            self.reset()
        self.drain_shadow = i["drain_shadow"]
        if i["reset"]:
            return Counter()
        a = i["a_in"]
        if i["valid_in"] and i["os_in"]:
            base = 0 if i["start_in"] else self.psum_q
            product = a * i["w_in"]
        else:
            weight = self.w_q if i["start_in"] else self.w_active
            base = i["psum_in"]
            product = a * weight
            if i["act2_in"]:                 # two half-width activations, two weights
                half = self.bw // 2
                weight1 = self.w1_q if i["start_in"] else self.w1_active
                lo, hi = a & ((1 << half) - 1), a >> half
                product = lo * weight + hi * weight1
        os_wrapped = False
        live_drain = i["drain"] and not i["drain_shadow"]
        capture = i["valid_in"] and i["os_in"] and i["start_in"]
        if i["drain"] and i["drain_shadow"]:   # a shadow drain wins over a capture
            self.shadow_q = i["psum_in"]
        elif capture:
            self.shadow_q = self.psum_q
        if live_drain:
            psum_q = i["psum_in"]
        elif i["valid_in"]:
            psum_q = signed(base + product, self.psum_bw)
            os_wrapped = bool(i["os_in"]) and psum_q != base + product
        else:
            psum_q = self.psum_q
        self.os_overflow |= int(os_wrapped)
        if i["valid_in"] and not i["os_in"] and i["start_in"]:
            self.w_active = self.w_q
            self.w1_active = self.w1_q
        if i["wload1_en"]:
            self.w1_q = i["wload1_data"]
        if i["wload_en"]:
            self.w_q = i["wload_data"]
        elif i["w_shift"]:
            self.w_q = i["w_in"]
        self.psum_q = psum_q
        self.fwd = {"a_out": a, "valid_out": i["valid_in"], "start_out": i["start_in"],
                    "os_out": i["os_in"], "act2_out": i["act2_in"]}
        if live_drain:
            return Counter(drain=1)
        cover = Counter(shadow_drain=i["drain"] and i["drain_shadow"])
        if i["valid_in"]:
            kind = "os" if i["os_in"] else ("ws2" if i["act2_in"] else "ws")
            cover.update({kind: 1, kind + "_start": i["start_in"], "os_overflow": os_wrapped,
                          "overlap": cover["shadow_drain"] and i["os_in"]})
        return cover


class TB(LockstepTB):
    INPUTS = ("reset", "a_in", "valid_in", "start_in", "os_in", "act2_in", "wload_en", "wload_data",
              "wload1_en", "wload1_data", "w_shift", "w_in", "drain", "drain_shadow", "psum_in")
    OUTPUTS = ("a_out", "valid_out", "start_out", "os_out", "act2_out", "w_out", "psum_out", "os_overflow")
    SIGNED = ("wload_data", "wload1_data", "w_in", "psum_in", "w_out", "psum_out")

    def __init__(self, dut):
        self.bw = param(dut, "bw")
        self.psum_bw = param(dut, "psum_bw")
        super().__init__(dut, PeModel(self.bw, self.psum_bw))
        dut._log.info("mac_tile bw=%d psum_bw=%d", self.bw, self.psum_bw)

    def model_state(self) -> str:
        m = self.model
        return (f"w_q {m.w_q}, w_active {m.w_active}, w1_q {m.w1_q}, w1_active {m.w1_active}, psum_q {m.psum_q}, "
                f"shadow_q {m.shadow_q}, os_overflow {m.os_overflow}")

    async def start(self):
        """As LockstepTB's, then on to the falling edge, where drive() expects to be."""
        await super().start()
        await FallingEdge(self.dut.clk)

    async def drive(self, **inputs) -> dict:
        """Present one input vector now, on a falling edge (unnamed inputs 0), for the next
        rising edge; return the outputs that edge made, on the falling edge after it.
        Back-to-back drive()s take one edge each."""
        self.set(**inputs)
        await FallingEdge(self.dut.clk)
        return self.outputs()


def rand_inputs(rng, tb: TB, mode: str) -> dict:
    bw, pb = tb.bw, tb.psum_bw
    psum_corner = rng.choice([0, -1, (1 << (pb - 1)) - 1, -(1 << (pb - 1)), 32767, -32768])
    psum = psum_corner if rng.random() < 0.2 else rng.randrange(-(1 << (pb - 1)), 1 << (pb - 1))
    i = {
        "a_in": rng.getrandbits(bw),
        "w_in": rng.getrandbits(bw),
        "wload_data": rng.getrandbits(bw),
        "wload1_data": rng.getrandbits(bw),
        "wload1_en": int(rng.random() < 0.2),
        "act2_in": int(rng.random() < 0.5),
        "psum_in": psum,
    }
    if mode == "ws":
        i.update(valid_in=int(rng.random() < 0.8), start_in=int(rng.random() < 0.15), os_in=0,
                 wload_en=int(rng.random() < 0.2), w_shift=0, drain=0, drain_shadow=0)
    elif mode == "os":
        i.update(valid_in=int(rng.random() < 0.85), start_in=int(rng.random() < 0.1), os_in=1,
                 wload_en=0, w_shift=int(rng.random() < 0.9), drain=int(rng.random() < 0.15),
                 drain_shadow=int(rng.random() < 0.5))
    else:
        i.update({k: int(rng.random() < 0.5) for k in ("valid_in", "start_in", "os_in", "wload_en", "w_shift", "drain",
                                                          "drain_shadow")})
    return i


@cocotb.test()
async def test_ws_weight_switch(dut):
    """WS: staged weight is used from the start activation on; w_active otherwise."""
    tb = TB(dut)
    await tb.start()
    await tb.drive(wload_en=1, wload_data=3)                  # stage 3
    out = await tb.drive(valid_in=1, a_in=2, psum_in=10)            # no start: w_active (0 after reset)
    assert out["psum_out"] == 10, "before any start the active weight must be 0"
    out = await tb.drive(valid_in=1, start_in=1, a_in=2, psum_in=10)  # start: uses staged 3
    assert out["psum_out"] == 16, "the start activation must use the staged weight (10 + 2*3)"
    out = await tb.drive(wload_en=1, wload_data=-5, valid_in=1, a_in=4, psum_in=-1)  # stage -5 while computing
    assert out["psum_out"] == 11, "staging a weight must not change the active one (-1 + 4*3)"
    out = await tb.drive(valid_in=1, a_in=15, psum_in=0)            # still the old active weight
    assert out["psum_out"] == 45, "without start the active weight stays 3 (15*3)"
    out = await tb.drive(valid_in=0, a_in=15, psum_in=7)            # bubble: psum holds
    assert out["psum_out"] == 45, "a cycle without valid must hold the psum"
    out = await tb.drive(valid_in=1, start_in=1, a_in=15, psum_in=7)  # the new tile: -5
    assert out["psum_out"] == 7 - 75, "start must switch to the staged -5 (7 + 15*-5)"
    out = await tb.drive(valid_in=1, a_in=1, psum_in=0)
    assert out["psum_out"] == -5, "after the switch -5 stays active"
    # start without valid is no switch
    await tb.drive(wload_en=1, wload_data=7)
    await tb.drive(start_in=1, a_in=1)
    out = await tb.drive(valid_in=1, a_in=1, psum_in=0)
    assert out["psum_out"] == -5, "a start without valid must not switch the weight"
    # OS operation never touches the WS active weight
    await tb.drive(valid_in=1, start_in=1, os_in=1, a_in=1, w_in=2)
    out = await tb.drive(valid_in=1, a_in=1, psum_in=100)
    assert out["psum_out"] == 95, "an OS start must not load the WS active weight (100 + 1*-5)"


@cocotb.test()
async def test_ws2_exhaustive(dut):
    """2-bit mode: every activation lane (two 2-bit activations, 0..3 each) with every pair
    of slot weights (-8..7 each), 4,096 combinations, each on a start that switches to the
    pair staged the cycle before, then held for a second product without start; psum_in
    walks the 16-bit corners so the wrap is exercised too. The lockstep checker compares
    every output every edge; here the psum is also checked against the formula itself."""
    tb = TB(dut)
    await tb.start()
    top = (1 << (tb.psum_bw - 1)) - 1
    corners = [0, 1, -1, top, -top - 1, 12345, -12345]
    half = tb.bw // 2
    weights = [(w0, w1) for w0 in range(-8, 8) for w1 in range(-8, 8)]
    await tb.drive(wload_en=1, wload_data=weights[0][0], wload1_en=1, wload1_data=weights[0][1])
    checked = 0
    for k, (w0, w1) in enumerate(weights):
        nxt = weights[(k + 1) % len(weights)]
        for a in range(1 << tb.bw):
            base = corners[(k + a) % len(corners)]
            first = a == 0
            # the first activation of a pair carries start; the last stages the next pair
            stage = {"wload_en": 1, "wload_data": nxt[0], "wload1_en": 1, "wload1_data": nxt[1]} \
                if a == (1 << tb.bw) - 1 else {}
            out = await tb.drive(valid_in=1, act2_in=1, start_in=int(first), a_in=a, psum_in=base, **stage)
            want = signed(base + (a & ((1 << half) - 1)) * w0 + (a >> half) * w1, tb.psum_bw)
            assert out["psum_out"] == want, (
                f"2-bit a={a} (lo {a & 3}, hi {a >> half}) w0={w0} w1={w1} psum_in={base}: "
                f"expected {want}, got {out['psum_out']}")
            checked += 1
    assert checked == 16 * 256, checked
    # mode switch on the next activation, no flush needed: the same lane in 4-bit mode
    out = await tb.drive(valid_in=1, start_in=1, a_in=15, psum_in=0)
    assert out["psum_out"] == 15 * weights[0][0], f"4-bit after 2-bit: {out}"
    # OS ignores act2: a single product of the whole lane
    out = await tb.drive(valid_in=1, os_in=1, act2_in=1, start_in=1, a_in=13, w_in=-3)
    assert out["psum_out"] == -39, f"OS with act2 must take the whole lane: {out}"


@cocotb.test()
async def test_forwarding(dut):
    """a/valid/start/os/act2 reach the east outputs exactly one cycle later."""
    tb = TB(dut)
    rng = seeded_rng(dut)
    await tb.start()
    for _ in range(60):
        i = {"a_in": rng.getrandbits(tb.bw), "valid_in": rng.getrandbits(1),
             "start_in": rng.getrandbits(1), "os_in": rng.getrandbits(1), "act2_in": rng.getrandbits(1)}
        out = await tb.drive(**i)
        for src, dst in (("a_in", "a_out"), ("valid_in", "valid_out"), ("start_in", "start_out"),
                         ("os_in", "os_out"), ("act2_in", "act2_out")):
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
            out = await tb.drive(valid_in=1, os_in=1, start_in=int(k == 0), a_in=a, w_in=w,
                                 psum_in=rng.getrandbits(tb.psum_bw))  # psum_in is ignored in OS
            total += a * w
            got = out["psum_out"]
            assert got == total, f"group {group} step {k}: expected running sum {total}, got {got}"
        out = await tb.drive(os_in=1, a_in=3, w_in=3)  # no valid: hold
        assert out["psum_out"] == total, "the OS sum must hold without valid"
        value = rng.randrange(-(1 << (tb.psum_bw - 1)), 1 << (tb.psum_bw - 1))
        out = await tb.drive(drain=1, valid_in=1, os_in=1, a_in=15, w_in=7, psum_in=value)
        assert out["psum_out"] == value, "drain must load psum_in, and win over valid"


@cocotb.test()
async def test_os_shadow_drain(dut):
    """OS overlap: the start of group B moves group A's finished sum into shadow_q; a shadow
    drain (drain + drain_shadow) then shows it on psum_out and loads psum_in into shadow_q
    while B's products accumulate undisturbed in psum_q; a live drain still loads psum_q."""
    tb = TB(dut)
    rng = seeded_rng(dut)
    await tb.start()
    sum_a = 0
    for k in range(5):
        a, w = rng.getrandbits(tb.bw), rng.randrange(-8, 8)
        await tb.drive(valid_in=1, os_in=1, start_in=int(k == 0), a_in=a, w_in=w)
        sum_a += a * w
    sum_b = 0
    for k in range(6):
        a, w = rng.getrandbits(tb.bw), rng.randrange(-8, 8)
        value = rng.randrange(-(1 << (tb.psum_bw - 1)), 1 << (tb.psum_bw - 1))
        drain = int(k >= 2)                     # B's steps 2.. overlap the shadow drain
        out = await tb.drive(valid_in=1, os_in=1, start_in=int(k == 0), a_in=a, w_in=w,
                             drain=drain, drain_shadow=1, psum_in=value)
        sum_b += a * w
        held = value if drain else sum_a        # shadow_q after this edge
        assert out["psum_out"] == held, f"B step {k}: shadow_q expected {held} (A's sum {sum_a}), got {out['psum_out']}"
    out = await tb.drive(os_in=1)
    assert out["psum_out"] == sum_b, f"B's sum in psum_q: expected {sum_b}, got {out['psum_out']}"
    out = await tb.drive(os_in=1, drain=1, psum_in=-3)
    assert out["psum_out"] == -3, f"a live drain loads psum_q: {out}"


@cocotb.test()
async def test_os_overflow_flag(dut):
    """OS: the flag rises on the step whose sum leaves psum_bw (either sign) and stays up
    while the sum comes back in range; reset clears it, also when the steps overlap a shadow
    drain (w = -8). A drained value and WS sums, which the core bounds at elaboration,
    never raise it."""
    tb = TB(dut)
    await tb.start()
    top = (1 << (tb.psum_bw - 1)) - 1
    for w in (7, -8):
        a = (1 << tb.bw) - 1
        total, k = 0, 0
        while True:
            overlap = int(w < 0)
            out = await tb.drive(valid_in=1, os_in=1, start_in=int(k == 0), a_in=a, w_in=w,
                                 drain=overlap, drain_shadow=overlap)
            total, k = total + a * w, k + 1
            inside = -top - 1 <= total <= top
            assert out["os_overflow"] == int(not inside), (
                f"w={w} step {k}: running sum {total}, flag {out['os_overflow']}")
            if not inside:
                break
        out = await tb.drive(valid_in=1, os_in=1, start_in=1, a_in=1, w_in=1)
        assert out["os_overflow"] == 1 and out["psum_out"] == 1, f"the flag must be sticky: {out}"
        await tb.drive(reset=1)
        out = await tb.drive(drain=1, psum_in=top, os_in=1)
        assert out["os_overflow"] == 0 and out["psum_out"] == top, f"reset clears, drain never raises: {out}"
    await tb.drive(wload_en=1, wload_data=7)
    out = await tb.drive(valid_in=1, start_in=1, a_in=15, psum_in=top)
    assert out["psum_out"] == top + 105 - (1 << tb.psum_bw) and out["os_overflow"] == 0, (
        f"a WS sum wraps (the core bounds WS psums) and never raises the OS flag: {out}")


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
        out = await tb.drive(w_shift=int(shift), wload_en=int(load), w_in=w_in, wload_data=data, os_in=1)
        held = data if load else (w_in if shift else held)
        got = out["w_out"]
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
    dut._log.info("checked %d cycles: %s", tb.edges, dict(tb.cover))
    for kind in ("ws", "ws2", "os", "drain", "ws_start", "ws2_start", "os_start", "shadow_drain", "overlap"):
        assert tb.cover[kind] > 20, f"random stimulus too thin: only {tb.cover[kind]} {kind} operations"
    tb.assert_covered("os_overflow")


@pytest.mark.parametrize("bw,psum_bw", [(4, 16), pytest.param(4, 20, marks=pytest.mark.long)])  # long: started first
def test_mac_tile(bw, psum_bw):
    runner.run("mac_tile", "test_mac_tile", parameters={"bw": bw, "psum_bw": psum_bw}, name="mac_tile")
