"""Elaboration-time parameter checks: a configuration the RTL cannot compute correctly
fails to build, and the build error names the broken assumption.

Each check is a generate branch that instantiates a module that does not exist, named
after the assumption (Verilog-2005 has no $error at elaboration). Every case is built
with Icarus and linted with Verilator, the two simulators of the regression; the default
configuration of the same top must build (the control).
"""
from __future__ import annotations

import os
import subprocess

import pytest

import runner

# (top, parameters, the check's module name that the error must show)
BAD = [
    ("mac", {"bw": 4, "psum_bw": 9}, "mac_parameter_error_psum_bw_must_exceed_2_bw_plus_1"),
    ("sfp", {"psum_bw": 16, "acc_bw": 12}, "sfp_parameter_error_acc_bw_must_be_at_least_psum_bw"),
    ("corelet", {"row": 4, "col": 8}, "corelet_parameter_error_ififo_lanes_col_must_fit_the_row_wide_xmem_word"),
    ("corelet", {"row": 32, "col": 32}, "corelet_parameter_error_col_exceeds_wcol_field"),
    ("corelet", {"psum_bw": 10}, "corelet_parameter_error_row_products_do_not_fit_psum_bw"),
]


def icarus(top: str, parameters: dict) -> subprocess.CompletedProcess:
    params = [f"-P{top}.{k}={v}" for k, v in parameters.items()]
    return subprocess.run(["iverilog", "-g2005", "-I", str(runner.RTL), "-s", top, "-o", os.devnull,
                           *params, *map(str, runner.sources(top))],
                          capture_output=True, text=True)


def verilator(top: str, parameters: dict) -> subprocess.CompletedProcess:
    params = [f"-G{k}={v}" for k, v in parameters.items()]
    return subprocess.run([runner.verilator_bin(), "--lint-only", "-Wno-fatal", "-I" + str(runner.RTL), "--top-module", top,
                           *params, *map(str, runner.sources(top))],
                          capture_output=True, text=True,
                          env=dict(os.environ, VERILATOR_ROOT=str(runner.verilator_root())))


@pytest.mark.parametrize("tool", [icarus, verilator], ids=["icarus", "verilator"])
@pytest.mark.parametrize("top,parameters,check", BAD, ids=[check.split("_error_")[1] for _, _, check in BAD])
def test_bad_parameters_fail_to_build(tool, top, parameters, check):
    bad = tool(top, parameters)
    assert bad.returncode != 0 and check in bad.stdout + bad.stderr, (
        f"{top} {parameters}: expected the build to fail naming {check}; exit {bad.returncode}:\n"
        f"{bad.stdout}{bad.stderr}")
    good = tool(top, {})
    assert good.returncode == 0, f"{top} with its default parameters must build:\n{good.stdout}{good.stderr}"
