// Activation reuse buffer: a small register file between xmem and the L0. A word read
// from xmem once is pushed into the L0 many times (once per kij that needs it), which
// leaves the xmem port free for the next pass's activation writes while the array computes.
// Write: wr stores wdata (xmem Q) at waddr. Read: rdata = mem[raddr], no latency.
`include "core_inst.vh"   // parameter defaults: the one hardware configuration
`default_nettype none
module abuf #(
    parameter width = `CORE_ROW * `CORE_BW,
    parameter depth = 1 << `ABUF_BITS
) (
    input  wire                     clk,
    input  wire                     wr,
    input  wire [$clog2(depth)-1:0] waddr,
    input  wire [width-1:0]         wdata,
    input  wire [$clog2(depth)-1:0] raddr,
    output wire [width-1:0]         rdata
);
    reg [width-1:0] mem [0:depth-1];

    always @(posedge clk) begin
        if (wr)
            mem[waddr] <= wdata;
    end

    assign rdata = mem[raddr];
endmodule
`default_nettype wire
