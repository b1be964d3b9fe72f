// Synchronous SRAM with one write port and one read port (1R1W), active-low enables:
// WEN = 0 writes D to WA; REN = 0 reads RA into Q on the next clock edge (one cycle of
// read latency); Q holds its value until the next read. Both may act in the same cycle
// (an ECP5 DP16KD is true dual-port: one port writes, the other reads). A read of the
// entry written in the same cycle is undefined on a block RAM: programs must not do it
// (model/program_check.py refuses it); here it returns the old contents.
`include "core_inst.vh"   // parameter defaults: the one hardware configuration
`default_nettype none
module sram_1r1w #(
    parameter width = 2 * `CORE_ROW * `CORE_BW,
    parameter depth = 1 << `ADDR_BITS
) (
    input  wire                     CLK,
    input  wire                     WEN,
    input  wire [$clog2(depth)-1:0] WA,
    input  wire [width-1:0]         D,
    input  wire                     REN,
    input  wire [$clog2(depth)-1:0] RA,
    output reg  [width-1:0]         Q
);
    reg [width-1:0] mem [0:depth-1];

    initial Q = {width{1'b0}};

    always @(posedge CLK) begin
        if (!WEN)
            mem[WA] <= D;
        if (!REN)
            Q <= mem[RA];
    end
endmodule
`default_nettype wire
