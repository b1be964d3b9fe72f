// Synchronous FIFO, first-word fall-through: rd_data shows the oldest entry while the
// FIFO is not empty (zero when empty, never X); rd pops it.
// A write when full (and not popping in the same cycle) and a read when empty are
// refused: nothing is written or popped, and a sticky error flag is raised until reset.
`include "core_inst.vh"   // parameter defaults: the one hardware configuration
`default_nettype none
module fifo #(
    parameter width = `CORE_BW,
    parameter depth = `CORE_FIFO_DEPTH
) (
    input  wire             clk,
    input  wire             reset,
    input  wire             wr,
    input  wire [width-1:0] wr_data,
    input  wire             rd,
    output wire [width-1:0] rd_data,
    output wire             empty,
    output wire             full,
    output reg              overflow,
    output reg              underflow
);
    localparam aw = (depth > 1) ? $clog2(depth) : 1;
    localparam [31:0]   last_index_32 = depth - 1;
    localparam [aw-1:0] last_index = last_index_32[aw-1:0];

    reg [width-1:0] mem [0:depth-1];
    reg [aw-1:0]    wr_ptr;
    reg [aw-1:0]    rd_ptr;
    reg [aw:0]      count;

    assign empty = (count == 0);
    assign full = (count == depth);
    assign rd_data = empty ? {width{1'b0}} : mem[rd_ptr];

    wire do_rd = rd & ~empty;
    wire do_wr = wr & (~full | do_rd);

    function [aw-1:0] next_ptr(input [aw-1:0] ptr);
        next_ptr = (ptr == last_index) ? {aw{1'b0}} : ptr + 1'b1;
    endfunction

    always @(posedge clk) begin
        if (reset) begin
            wr_ptr <= {aw{1'b0}};
            rd_ptr <= {aw{1'b0}};
            count <= {(aw+1){1'b0}};
            overflow <= 1'b0;
            underflow <= 1'b0;
        end else if (wr | rd) begin     // an idle FIFO's process reads nothing more
            if (do_wr) begin
                mem[wr_ptr] <= wr_data;
                wr_ptr <= next_ptr(wr_ptr);
            end
            if (do_rd)
                rd_ptr <= next_ptr(rd_ptr);
            count <= count + do_wr - do_rd;
            if (wr & ~do_wr)
                overflow <= 1'b1;
            if (rd & ~do_rd)
                underflow <= 1'b1;
        end
    end
endmodule
`default_nettype wire
