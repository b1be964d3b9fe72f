`ifndef CORE_INST_VH
`define CORE_INST_VH
// The core's hardware configuration: the one definition the RTL (parameter defaults,
// port widths) and Python (model/hwconfig.py parses this file: program builders, core
// model, benches, README checks) share. Change a value here, nowhere else.

// ---- sizes: defaults of core.v's parameters (a build may override row/col) ----
`define CORE_ROW 8            // array rows = L0 lanes = activation lanes of an xmem word
`define CORE_COL 8            // array columns = IFIFO / OFIFO lanes
`define CORE_BW 4             // bits per activation / weight lane (xmem word = row * CORE_BW bits)
`define CORE_PSUM_BW 16       // psum lane width (pmem word = col * CORE_PSUM_BW bits)
`define CORE_ACC_BW 20        // SFP bank sum width
`define CORE_FIFO_DEPTH 64    // entries per L0 / IFIFO / OFIFO lane
`define CORE_WEIGHT_BASE 1024 // xmem: activations at 0.., weights at CORE_WEIGHT_BASE.. (classic flow)
// xmem / wmem / pmem depth: 1 << ADDR_BITS; activation buffer: 1 << ABUF_BITS; SFP bank: 1 << ACC_BITS

// ---- sticky error flags: bit order of core.errors ----
`define ERR_L0_OVERFLOW 0
`define ERR_L0_UNDERFLOW 1
`define ERR_IFIFO_OVERFLOW 2
`define ERR_IFIFO_UNDERFLOW 3
`define ERR_OFIFO_OVERFLOW 4
`define ERR_OFIFO_UNDERFLOW 5
`define ERR_SFP_OVERFLOW 6
`define ERR_OS_PE_OVERFLOW 7   // some PE's held OS sum left psum_bw
`define ERR_COUNT 8

// ---- instruction word: one word per cycle. Bits 0..33 are the classic layout
// (the course's DESIGN.md contract, section 4); extensions sit above bit 33. A field whose comment says
// "active low" is 1 in the idle word (a cycle that does nothing), every other bit 0.
// "xmem Q" is the word read from xmem by the previous cycle's instruction ("wmem Q" likewise:
// wmem entries are two weight words wide, low word first); with WSRC, LOAD and IFIFO_WR take
// wmem Q's low word instead of xmem Q.
`define INST_LOAD 0   // WS: xmem Q -> staged weights of column WCOL (nibble r -> row r)
`define INST_EXECUTE 1   // the L0 heads enter the array as valid activations (row skew)
`define INST_L0_WR 2   // push xmem Q (or zeros, L0_ZERO, or an abuf entry, L0_ABUF) into the L0, nibble r -> row r
`define INST_L0_RD 3   // pop the L0 (row r pops r cycles later)
`define INST_IFIFO_RD 4   // pop the IFIFO into the north edge (column c pops c cycles later)
`define INST_IFIFO_WR 5   // push xmem Q into the IFIFO, nibble c -> column c
`define INST_OFIFO_RD 6   // pop one psum vector from the OFIFO (all columns)
`define INST_A_XMEM 7   // 11 bits: xmem address
`define INST_WEN_XMEM 18  // active low: write D_xmem
`define INST_CEN_XMEM 19  // active low: xmem enabled
`define INST_A_PMEM 20  // 11 bits: pmem address
`define INST_WEN_PMEM 31  // active low: write the OFIFO head into pmem
`define INST_CEN_PMEM 32  // active low: pmem enabled
`define INST_ACC 33  // SFP accumulates: pmem Q (read by this instruction) or the OFIFO head
`define INST_OS 34   // dataflow: 0 weight-stationary, 1 output-stationary
`define INST_START 35   // first activation of a tile: WS takes the staged weights, OS restarts sums
`define INST_DRAIN 36   // OS: shift the held psums one row south into the OFIFO (column skew)
`define INST_ACC_SRC 37   // SFP source: 0 pmem Q, 1 the OFIFO head popped by this instruction
`define INST_ACC_FIRST 38   // SFP: start a new sum in bank entry ACC_ADDR
`define INST_EMIT 39   // SFP: put the sum on sfp_out (sfp_valid pulses)
`define INST_RELU 40   // SFP: apply ReLU when emitting
`define INST_L0_ZERO 41   // with L0_WR: push zeros (padding) instead of xmem Q
`define INST_ABUF_WR 42   // xmem Q -> activation buffer entry ABUF_WADDR
`define INST_L0_ABUF 43   // with L0_WR: push activation buffer entry ABUF_RADDR instead of xmem Q
`define INST_FLUSH 44   // empty the FIFOs, clear the array/SFP pipelines and error flags (not the SRAMs, abuf, SFP bank, counters)
`define INST_WCOL 45   // WCOL_BITS: column for LOAD
`define INST_ABUF_WADDR 49   // ABUF_BITS
`define INST_ABUF_RADDR 55   // ABUF_BITS
`define INST_ACC_ADDR 61   // ACC_BITS: SFP bank entry
`define INST_ACT2 74   // 2-bit mode (WS): with EXECUTE the lanes hold two 2-bit activations; with LOAD the word is a 2-bit weight half (WCOL >= col: upper rows)
`define INST_REQUANT 75   // SFP: emit each sum's level (0..15, the thresholds of tile THR_TILE) instead of the sum
`define INST_RAW 76   // SFP: emit the whole acc_bw sum (on sfp_wide) without the psum_bw check of sfp_out
`define INST_ACC_SHIFT 77   // SFP: the psum is added times 2**CORE_BW (a signed input's high digit)
`define INST_THR_WR 78   // xmem Q -> the SFP's thresholds: part THR_PART of threshold THR_LEVEL of lane THR_LANE in tile THR_TILE
`define INST_THR_TILE 79   // THR_TILE_BITS: oc tile of a threshold write, or whose thresholds a REQUANT emit uses
`define INST_THR_LANE 85   // WCOL_BITS: column (lane) of a threshold write
`define INST_THR_LEVEL 89   // THR_LEVEL_BITS: threshold 0..14; 15 writes the tile's descending bits (xmem Q bit c -> lane c)
`define INST_THR_PART 93   // THR_PART_BITS: which xmem-word-wide part of the threshold (low part 0)
`define INST_A_WMEM 96   // 11 bits: wmem (weight memory) read address
`define INST_WEN_WMEM 107  // active low: write D_wmem into wmem entry A_WMEM_W (the write port)
`define INST_CEN_WMEM 108  // active low: read wmem entry A_WMEM (the read port; Q holds until the next read)
`define INST_WSRC 109   // LOAD and IFIFO_WR take wmem Q's low word instead of xmem Q (0: the classic flow)
`define INST_A_WMEM_W 110   // 11 bits: wmem write address
`define INST_LOAD2 121   // WS: wmem Q's high word -> staged weights of column WCOL2 (beside a LOAD; 4-bit mode)
`define INST_WCOL2 122   // WCOL_BITS: column for LOAD2
`define INST_DRAIN_SHADOW 126   // OS, with DRAIN: shift the shadow sums (the group before the one computing) instead of the live ones
`define INST_WIDTH 127

`define ADDR_BITS 11
`define WCOL_BITS 4
`define ABUF_BITS 6
`define ACC_BITS 13
`define THR_TILE_BITS 6   // threshold memory: 64 oc tiles (512 channels at 8 columns)
`define THR_LEVEL_BITS 4  // 15 thresholds and the descending bits (4-bit activations)
`define THR_PART_BITS 3   // a threshold (acc_bw + 1 bits) in up to 8 xmem-word parts

`endif
