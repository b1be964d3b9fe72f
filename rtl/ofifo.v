// Output FIFO: one psum FIFO per column, written by the array's south edge column by
// column (each column finishes at its own skewed cycle). A vector is ready (valid) only
// when every column holds data; rd pops all columns together.
`default_nettype none
module ofifo #(
    parameter psum_bw = 16,
    parameter col = 8,
    parameter depth = 64
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

    fifo_bank #(.width(psum_bw), .lanes(col), .depth(depth), .skew_rd(0)) u_bank (
        .clk(clk),
        .reset(reset),
        .wr(wr),
        .wr_data(wr_data),
        .rd(rd),
        .rd_data(rd_data),
        .empty(empty),
        .full(lane_full),
        .overflow(overflow),
        .underflow(underflow)
    );

    assign valid = ~|empty;
    assign full = |lane_full;
endmodule
`default_nettype wire
