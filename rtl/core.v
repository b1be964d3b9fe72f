// The core: corelet + activation/weight SRAM (xmem) + weight SRAM (wmem) + psum SRAM (pmem),
// driven by one instruction word per cycle (core_inst.vh, which also holds the parameter
// defaults). The classic flow keeps activations at 0.. and weights at CORE_WEIGHT_BASE.. of
// xmem; wmem is the weight memory (WSRC: LOAD / IFIFO_WR take wmem Q's low word, LOAD2
// its high word), two weight words per entry, with a write port of its own fed by the
// host's D_wmem bus and a read port: the host writes a weight entry and an xmem word, and
// the array reads a weight entry, all in one cycle.
// pmem holds psum vectors (col x psum_bw bits).
// Counters: `cycles` counts every cycle since reset, `busy` the cycles in which an
// activation vector entered the array (each makes row x col MACs), so busy / cycles is
// the MAC utilization measured by the RTL itself. errors holds the sticky FIFO/SFP
// error flags (bit order ERR_* in core_inst.vh), fifo_flags the live full/empty state.
`include "core_inst.vh"
`default_nettype none
module core #(
    parameter bw = `CORE_BW,
    parameter psum_bw = `CORE_PSUM_BW,
    parameter acc_bw = `CORE_ACC_BW,
    parameter row = `CORE_ROW,
    parameter col = `CORE_COL,
    parameter fifo_depth = `CORE_FIFO_DEPTH
) (
    input  wire                   clk,
    input  wire                   reset,
    input  wire [`INST_WIDTH-1:0]  inst,
    input  wire [row*bw-1:0]      D_xmem,
    input  wire [2*row*bw-1:0]    D_wmem,     // two weight words: a wmem entry
    output wire                   ofifo_valid,
    output wire [col*psum_bw-1:0] sfp_out,
    output wire                   sfp_valid,
    output wire [col*acc_bw-1:0]  sfp_wide,   // sfp_out at acc_bw bits: raw sums, levels
    output wire [`ERR_COUNT-1:0]   errors,
    output wire [4:0]             fifo_flags,
    output reg  [31:0]            cycles,
    output reg  [31:0]            busy
);

    // The SRAM depths follow from the instruction's address fields (core_inst.vh).
    localparam xmem_depth = 1 << `ADDR_BITS;
    localparam wmem_depth = 1 << `ADDR_BITS;
    localparam pmem_depth = 1 << `ADDR_BITS;

    wire [row*bw-1:0]      xmem_q;
    wire [2*row*bw-1:0]    wmem_q;
    wire [col*psum_bw-1:0] pmem_q;
    wire [col*psum_bw-1:0] ofifo_data;

    sram #(.width(row*bw), .depth(xmem_depth)) u_xmem (
        .CLK(clk),
        .CEN(inst[`INST_CEN_XMEM]),
        .WEN(inst[`INST_WEN_XMEM]),
        .A(inst[`INST_A_XMEM +: `ADDR_BITS]),
        .D(D_xmem),
        .Q(xmem_q)
    );

    sram_1r1w #(.width(2*row*bw), .depth(wmem_depth)) u_wmem (
        .CLK(clk),
        .WEN(inst[`INST_WEN_WMEM]),
        .WA(inst[`INST_A_WMEM_W +: `ADDR_BITS]),
        .D(D_wmem),
        .REN(inst[`INST_CEN_WMEM]),
        .RA(inst[`INST_A_WMEM +: `ADDR_BITS]),
        .Q(wmem_q)
    );

    sram #(.width(col*psum_bw), .depth(pmem_depth)) u_pmem (
        .CLK(clk),
        .CEN(inst[`INST_CEN_PMEM]),
        .WEN(inst[`INST_WEN_PMEM]),
        .A(inst[`INST_A_PMEM +: `ADDR_BITS]),
        .D(ofifo_data),
        .Q(pmem_q)
    );

    corelet #(
        .bw(bw), .psum_bw(psum_bw), .acc_bw(acc_bw), .row(row), .col(col),
        .fifo_depth(fifo_depth)
    ) u_corelet (
        .clk(clk), .reset(reset),
        .inst(inst),
        .xmem_q(xmem_q),
        .wmem_q(wmem_q),
        .pmem_q(pmem_q),
        .ofifo_data(ofifo_data),
        .ofifo_valid(ofifo_valid),
        .sfp_out(sfp_out),
        .sfp_valid(sfp_valid),
        .sfp_wide(sfp_wide),
        .errors(errors),
        .fifo_flags(fifo_flags)
    );

    always @(posedge clk) begin
        if (reset) begin
            cycles <= 32'd0;
            busy <= 32'd0;
        end else begin
            cycles <= cycles + 32'd1;
            busy <= busy + {31'd0, inst[`INST_EXECUTE]};
        end
    end
endmodule
`default_nettype wire
