// `lanes` FIFOs side by side; lane i takes bits [i*width +: width] of the packed buses.
// With skew_rd = 1, a read pops lane 0 at once and lane i i cycles later: this is the L0
// (lanes = rows, activations into the array's west edge) and the IFIFO (lanes = columns,
// weights into the north edge). Error flags are the OR of the lanes' sticky flags.
`include "core_inst.vh"   // parameter defaults: the one hardware configuration
`default_nettype none
module fifo_bank #(
    parameter width = `CORE_BW,
    parameter lanes = `CORE_ROW,
    parameter depth = `CORE_FIFO_DEPTH,
    parameter skew_rd = 1
) (
    input  wire                   clk,
    input  wire                   reset,
    input  wire [lanes-1:0]       wr,
    input  wire [lanes*width-1:0] wr_data,
    input  wire                   rd,
    output wire [lanes*width-1:0] rd_data,
    output wire [lanes-1:0]       empty,
    output wire [lanes-1:0]       full,
    output wire                   overflow,
    output wire                   underflow
);
    wire [lanes-1:0] lane_rd;
    wire [lanes-1:0] lane_overflow;
    wire [lanes-1:0] lane_underflow;

    generate
        if (skew_rd) begin : g_skew
            skew #(.width(1), .lanes(lanes)) u_rd_skew (
                .clk(clk), .reset(reset), .in(rd), .out(lane_rd)
            );
        end else begin : g_flat
            assign lane_rd = {lanes{rd}};
        end
    endgenerate

    genvar i;
    generate
        for (i = 0; i < lanes; i = i + 1) begin : g_lane
            fifo #(.width(width), .depth(depth)) u_fifo (
                .clk(clk),
                .reset(reset),
                .wr(wr[i]),
                .wr_data(wr_data[i*width +: width]),
                .rd(lane_rd[i]),
                .rd_data(rd_data[i*width +: width]),
                .empty(empty[i]),
                .full(full[i]),
                .overflow(lane_overflow[i]),
                .underflow(lane_underflow[i])
            );
        end
    endgenerate

    assign overflow = |lane_overflow;
    assign underflow = |lane_underflow;
endmodule
`default_nettype wire
