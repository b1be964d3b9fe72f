// Output FIFO: one psum FIFO per column, written by the array's south edge column by
// column (each column finishes at its own skewed cycle). A vector is ready (valid) only
// when every column holds data; rd pops all columns together.
`include "core_inst.vh"   // parameter defaults: the one hardware configuration
`default_nettype none
module ofifo #(
    parameter psum_bw = `CORE_PSUM_BW,
    parameter col = `CORE_COL,
    parameter depth = `CORE_FIFO_DEPTH
) (
    input  wire                   clk,
    input  wire                   reset,
    input  wire [col-1:0]         wr,
    input  wire [col*psum_bw-1:0] wr_data,
    input  wire                   rd,
    output wire [col*psum_bw-1:0] rd_data,
    output wire                   valid,
    output wire                   full,
    output wire                   overflow,
    output wire                   underflow
);
    wire [col-1:0] empty;
    wire [col-1:0] lane_full;
    /* verilator lint_off UNUSEDSIGNAL */
    wire           lane_underflow;  // never set: the bank only sees reads of a complete vector
    /* verilator lint_on UNUSEDSIGNAL */
    reg            refused_rd;

    fifo_bank #(.width(psum_bw), .lanes(col), .depth(depth), .skew_rd(0)) u_bank (
        .clk(clk),
        .reset(reset),
        .wr(wr),
        .wr_data(wr_data),
        .rd(rd & valid),
        .rd_data(rd_data),
        .empty(empty),
        .full(lane_full),
        .overflow(overflow),
        .underflow(lane_underflow)
    );

    always @(posedge clk) begin
        if (reset)
            refused_rd <= 1'b0;
        else if (rd & ~valid)
            refused_rd <= 1'b1;
    end

    assign valid = ~|empty;
    assign full = |lane_full;
    assign underflow = refused_rd;
endmodule
`default_nettype wire
