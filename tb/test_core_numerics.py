"""Layer tests at the edges of the numbers: overflow, large sums, the ReLU edge.

Through the whole core, like tb/test_core_layer.py (same bench, same checks): every psum
and output bit for bit, the cycle and busy counters, and the error flags, which must be
exactly those the reference's overflow report calls for (tb/core_tb.expected_flags).
"""
from __future__ import annotations

from layer_cases import relu_edge_case, saturating_case
from test_core_layer import run_case


def test_overflow_raises_a_flag_in_both_dataflows():
    """64 -> 8, all 15 x all +7: sums of 60,480 do not fit 16 bits. WS holds them in the
    20-bit SFP but cannot emit them on a 16-bit lane; OS cannot hold them in the PE. Each
    dataflow must say so with its flag; every value that fits is still compared."""
    case = dict(saturating_case(+7), allow_overflow=True)
    runs = run_case(case, "fast,os", "core_numerics-overflow")
    assert [(r["dataflow"], r["errors"]) for r in runs] == [
        ("ws", ["SFP overflow"]), ("os", ["OS PE overflow"])], runs
    # WS psums (8 x 105) all fit and are compared. Of the 16 output pixels, the 4 interior
    # (9 taps: 60,480) and 8 edge ones (6 taps: 40,320) do not fit; the 4 corners (4 taps:
    # 26,880) do and are compared.
    ws = runs[0]
    assert ws["psums_checked"] == 1152 and ws["vectors_not_representable"] == 12, ws


def test_large_negative_sums_clip_to_zero():
    """64 -> 8, all 15 x all -7: sums of -60,480 fit the SFP's 20 bits but not 16; ReLU
    must emit 0, with no flag (an accumulator that wrapped at 16 bits would emit 5,056)."""
    runs = run_case(saturating_case(-7), "fast", "core_numerics-negative")
    assert runs[0]["errors"] == [] and runs[0]["outputs_checked"] == 16, runs


def test_relu_edge():
    """Sums of -2, -1, 0, 1, 2 at every pixel: ReLU must turn exactly the negative ones
    (-1 included) into 0, in both dataflows."""
    run_case(relu_edge_case(), "fast,classic,os", "core_numerics-relu-edge")
