// Single-port synchronous SRAM, active-low controls: CEN = 0 enables the port, then
// WEN = 0 writes D to A, WEN = 1 reads A into Q on the next clock edge (one cycle of read
// latency). Q holds its value until the next read.
`include "core_inst.vh"   // parameter defaults: the one hardware configuration
`default_nettype none
module sram #(
    parameter width = `CORE_ROW * `CORE_BW,
    parameter depth = 1 << `ADDR_BITS
) (
    input  wire                     CLK,
    input  wire                     CEN,
    input  wire                     WEN,
    input  wire [$clog2(depth)-1:0] A,
    input  wire [width-1:0]         D,
    output reg  [width-1:0]         Q
);
    reg [width-1:0] mem [0:depth-1];

    initial Q = {width{1'b0}};

    always @(posedge CLK) begin
        if (!CEN) begin
            if (!WEN)
                mem[A] <= D;
            else
                Q <= mem[A];
        end
    end
endmodule
`default_nettype wire
