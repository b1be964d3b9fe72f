"""Instruction programs: a conv layer, cycle by cycle, for the core (rtl/core.v).

A program is one instruction word (and one D_xmem word) per cycle, plus what the checker
needs to name each result: the key of every pmem write and of every SFP output (see
Program). One module per job:

* ``isa``: the instruction word (layout from rtl/core_inst.vh via model.hwconfig),
  encode / decode, lane packing, the Timeline a schedule is built on, Program;
* ``memory_map``: a layer in ic / oc channel tiles (model.tiling.LayerGeometry, shared
  with the references), the xmem / pmem memory map, the analytic figures (useful MACs,
  SCALE-Sim);
* one module per schedule: ``ws_classic``, ``ws_fast``, ``output_stationary``;
* ``reference``: the reference value of every result a program names;
* ``network`` (imported on its own): a network's conv layer, levels or raw sums, per-geometry
  templates bound to data; ``signed_input``: a signed input as base-16 digits.
"""
from model.program.isa import FIELDS, INST_WIDTH, LANE_BITS, Program, Timeline, decode, encode, pack_lanes
from model.program.memory_map import (KIJ, PMEM_DEPTH, WEIGHT_BASE, XMEM_DEPTH, LayerGeometry, geometry,
                                      ofifo_latency, scalesim_cycles, useful_macs)
from model.program.output_stationary import os_program
from model.program.reference import ProgramReference, reference_results
from model.program.ws_classic import ws_classic
from model.program.ws_fast import plan_passes, ws_fast

# The schedules by name, as the tests, the bench and the demo choose them.
SCHEDULES = {"classic": ws_classic, "fast": ws_fast, "os": os_program}

__all__ = ["FIELDS", "INST_WIDTH", "KIJ", "LANE_BITS", "PMEM_DEPTH", "SCHEDULES", "WEIGHT_BASE", "XMEM_DEPTH",
           "LayerGeometry", "Program", "ProgramReference", "Timeline", "decode", "encode", "geometry",
           "ofifo_latency", "os_program", "pack_lanes", "plan_passes", "reference_results", "scalesim_cycles",
           "useful_macs", "ws_classic", "ws_fast"]
