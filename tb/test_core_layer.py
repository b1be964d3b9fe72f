"""The layer tests: conv layers from the PyTorch model or random integers through the core,
every psum and output bit for bit (the bench: tb/core_layer.py)."""
from __future__ import annotations

import numpy as np
import pytest

from tb.core_layer import SCHEDULES, run_case
from tb.layer_cases import model_case, network_case, random_case, saturating_case


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_model_layer(seed, schedule):
    """The squeezed 8->8 layer of the project VGG16, seeded weights and synthetic image."""
    run_case(model_case(seed=seed), schedule, f"core_layer-model{seed}-{schedule}")


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_random_layer(seed, schedule):
    run_case(random_case(8, 8, 4, 4, seed=100 + seed), schedule, f"core_layer-random{seed}-{schedule}")


def test_mixed_dataflows():
    """WS, OS and WS again in one simulation, no reset in between."""
    runs = run_case(random_case(8, 8, 4, 4, seed=7), "fast,os,classic,os,fast", "core_layer-mixed")
    assert [r["dataflow"] for r in runs] == ["ws", "os", "ws", "os", "ws"]


def test_mode_switch_mid_layer():
    """A WS layer cut off halfway, then OS, then an OS layer cut off, then WS: each checked
    layer starts with a flush, so what the cut-off one left in flight does no harm."""
    runs = run_case(random_case(8, 8, 4, 4, seed=8), "abort:fast,os,abort:os,fast", "core_layer-abort")
    assert [r["schedule"] for r in runs] == ["os", "fast"]


def test_os_activations_above_7():
    """Activations 8..15 through the OS path: the notebooks decoded them as signed."""
    case = random_case(8, 8, 4, 4, seed=9)
    case["x_int"] = (case["x_int"] % 8 + 8).astype(np.uint8)     # every activation in 8..15
    run_case(case, "os", "core_layer-os-high")


LONG = pytest.mark.long     # tb/conftest.py starts these first


@pytest.mark.parametrize("ic,oc,size,schedules", [
    pytest.param(64, 16, 8, "fast", marks=LONG),    # operands do not fit xmem at once: two passes
    pytest.param(16, 16, 8, "os", marks=LONG),      # 2 ic tiles x 2 oc tiles
    pytest.param(16, 16, 8, "fast", marks=LONG),
    pytest.param(24, 16, 4, "fast,classic", marks=LONG),  # 3 ic tiles x 2 oc tiles
    (3, 16, 4, "fast,classic,os"),                  # input channels padded to a tile (the first VGG layer's case)
])
def test_multi_tile_layer(ic, oc, size, schedules):
    runs = run_case(random_case(ic, oc, size, size, seed=ic * oc), schedules,
                    f"core_layer-{ic}x{oc}x{size}-{schedules.replace(',', '_')}")
    assert [r["schedule"] for r in runs] == schedules.split(",")


@pytest.mark.parametrize("array_size", [4, 16])
def test_array_sizes(array_size):
    """The core built with row = col = 4 and 16 (8 is every other test here): a layer that
    needs several ic/oc tiles on the small array and padded channels on the large one, in
    every schedule, back to back."""
    schedules = ",".join(sorted(SCHEDULES))
    runs = run_case(random_case(8, 8, 4, 4, seed=10 + array_size), schedules,
                    f"core_layer-array{array_size}", array_size=array_size)
    assert [r["schedule"] for r in runs] == schedules.split(",")


def test_network_requant_layer():
    """The SFP emits levels (quantile thresholds, every third channel descending): 20 -> 12
    (padded ic and oc tiles), every threshold and operand load in the program; against
    the independent integer conv + Requant.apply as well as the reference tiling."""
    x, w = random_case(20, 12, 4, 5, seed=21)["x_int"], random_case(20, 12, 4, 5, seed=21)["w_int"]
    runs = run_case(network_case(x, w, requant=True, seed=21, layer="random 20->12 requant"), "network",
                    "core_layer-network-requant")
    assert runs[0]["independent_checked"] == 12 * 4 * 5


def test_network_raw_layer():
    """Raw sums of 60,480 (all-15 x all-+7, 64 -> 8): beyond a 16-bit sfp_out lane, exact on
    sfp_wide and no error flag (the ReLU flow flags the same layer: test_core_numerics)."""
    case = saturating_case(+7)
    runs = run_case(network_case(case["x_int"], case["w_int"], requant=False, seed=0, layer=case["layer"]),
                    "network", "core_layer-network-raw")
    assert runs[0]["errors"] == [] and runs[0]["independent_checked"] == 8 * 4 * 4


@pytest.mark.parametrize("requant", [False, True])
def test_network_signed_first_layer(requant):
    """features.0's signed input: levels -255..15 (both ends included) as base-16 digits,
    the high digit's ic tile added times 16 in the SFP; against F.conv2d on the signed
    integers."""
    rng = np.random.default_rng(31)
    x = rng.integers(-255, 16, (3, 4, 4))
    x[0, 0, 0], x[1, 0, 0], x[2, 3, 3] = -255, 15, -16
    w = rng.integers(-7, 8, (16, 3, 3, 3))
    runs = run_case(network_case(x, w, requant=requant, seed=31, layer="signed 3->16 4x4"), "network",
                    f"core_layer-network-signed-{'requant' if requant else 'raw'}")
    assert runs[0]["independent_checked"] == 16 * 4 * 4
