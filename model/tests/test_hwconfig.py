"""model.hwconfig: rtl/core_inst.vh is the one hardware configuration; the RTL defaults and
the README's tables and figures agree with it."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from model.errors import ModelError
from model.hwconfig import CONFIG, read_config

ROOT = Path(__file__).resolve().parents[2]


def test_header_values_and_derived_widths():
    c = CONFIG
    assert (c.row, c.col, c.lane_bits) == (8, 8, 4)       # the course's array (README figures)
    assert c.xmem_word_bits == 32 and c.pmem_word_bits == 128
    assert c.xmem_depth == c.wmem_depth == c.pmem_depth == 2048 and c.weight_base == 1024
    assert c.ofifo_latency == 16
    big = c.with_array(16)
    assert (big.xmem_word_bits, big.pmem_word_bits, big.ofifo_latency) == (64, 256, 32)
    assert c.with_array(4).parameters() == {"row": 4, "col": 4} and c.parameters() == {}
    assert c.isa.decode(c.isa.idle) == {**{k: 0 for k in c.isa.fields}, **c.isa.idle_fields}
    assert c.isa.active_low == {"cen_xmem", "wen_xmem", "cen_wmem", "wen_wmem", "cen_pmem", "wen_pmem"}
    assert c.isa.fields["a_wmem"] == (96, c.addr_bits) and c.isa.fields["wsrc"][0] > c.isa.fields["cen_wmem"][0]
    assert c.error_names[0] == "L0 overflow" and c.error_names[-1] == "OS PE overflow"


@pytest.mark.parametrize("n", [0, 17, 2.0, True])
def test_array_sizes_the_core_cannot_have(n):
    with pytest.raises(ModelError):
        CONFIG.with_array(n)


def test_missing_define_is_one_line(tmp_path):
    header = tmp_path / "core_inst.vh"
    header.write_text((ROOT / "rtl" / "core_inst.vh").read_text().replace("`define CORE_ROW", "`define OLD_ROW"))
    with pytest.raises(ModelError, match=r"core_inst.vh: no `define CORE_ROW$"):
        read_config(header)


@pytest.mark.parametrize("module", ["core", "corelet"])
def test_rtl_parameter_defaults_come_from_the_header(module):
    text = (ROOT / "rtl" / f"{module}.v").read_text()
    defaults = dict(re.findall(r"parameter\s+(\w+)\s*=\s*([^,\n)]+)", text))
    assert defaults, module
    literal = {k: v for k, v in defaults.items() if not v.strip().startswith("`CORE_")}
    assert not literal, f"rtl/{module}.v restates the configuration: {literal}"
    assert "[6:0]" not in text and "`ERR_COUNT" in text


def _readme() -> str:
    return (ROOT / "README.md").read_text()


def test_readme_instruction_table_matches_the_header():
    """Every row of the README's instruction table names fields at their offsets/widths."""
    text = _readme().split("### Instruction word", 1)[1].split("\n\n", 2)[1]
    seen = set()
    for line in text.splitlines()[2:]:
        bits, names = [cell.strip() for cell in line.strip("|").split("|")[:2]]
        names = [n.strip().lower() for n in re.split(r"[,/]", names)]
        if "-" in bits:                                   # a run of 1-bit fields, "37-40"
            lo, hi = map(int, bits.split("-"))
            spans = [str(b) for b in range(lo, hi + 1)]
        else:
            spans = [s.strip() for s in re.split(r"[,/]", bits)]
        assert len(spans) == len(names), line
        for name, span in zip(names, spans):
            offset, width = CONFIG.isa.fields[name]
            want = f"{offset + width - 1}:{offset}" if width > 1 else str(offset)
            assert span == want, f"README instruction table: {name} at {span}, rtl/core_inst.vh says {want}"
            seen.add(name)
    assert seen == set(CONFIG.isa.fields), f"not in the README table: {set(CONFIG.isa.fields) - seen}"


def test_readme_hardware_figures_match_the_header():
    c = CONFIG
    text = _readme()
    for figure in (f"xmem ({c.xmem_word_bits}b x {c.xmem_depth}", f"weights {c.weight_base}..",
                   f"wmem ({c.wmem_word_bits}b x {c.wmem_depth}",
                   f"abuf: {c.abuf_depth} x {c.xmem_word_bits}b", f"pmem ({c.pmem_word_bits}b x {c.pmem_depth})",
                   f"bank of sums ({c.acc_bw}b", f"{c.row} row FIFOs", f"{c.col} column FIFOs",
                   f"{c.row} x {c.col} mac_array", f"at {c.acc_bw} bits"):
        assert figure in text, f"README does not say {figure!r} (rtl/core_inst.vh)"


@pytest.mark.parametrize("row,col,ok", [(16, 16, True), (17, 17, False), (8, 16, False)])
def test_core_refuses_a_size_at_elaboration(row, col, ok, tmp_path):
    """The core fails to elaborate (corelet.v's checks) when WCOL cannot reach every column or col > row."""
    import shutil
    import subprocess

    if not shutil.which("iverilog"):
        pytest.skip("iverilog not installed")
    rtl = ROOT / "rtl"
    run = subprocess.run(["iverilog", "-g2005", f"-I{rtl}", "-o", str(tmp_path / "core.vvp"), "-s", "core",
                          f"-Pcore.row={row}", f"-Pcore.col={col}", *map(str, sorted(rtl.glob("*.v")))],
                         capture_output=True, text=True, timeout=120)
    assert (run.returncode == 0) == ok, run.stderr
    if not ok:
        assert "corelet_parameter_error_" in run.stderr
