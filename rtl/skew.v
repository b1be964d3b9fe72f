// Delay line that produces the systolic skew: lane i of out is `in` delayed by i cycles
// (lane 0 is `in` itself). Used for the per-row / per-column instruction skew.
`include "core_inst.vh"   // parameter defaults: the one hardware configuration
`default_nettype none
module skew #(
    parameter width = 1,
    parameter lanes = `CORE_ROW
) (
    input  wire                   clk,
    input  wire                   reset,
    input  wire [width-1:0]       in,
    output wire [lanes*width-1:0] out
);
    reg [width-1:0] stage [1:lanes-1];

    assign out[width-1:0] = in;

    genvar i;
    generate
        for (i = 1; i < lanes; i = i + 1) begin : g_lane
            wire [width-1:0] prev;
            if (i == 1) begin : g_first
                assign prev = in;
            end else begin : g_next
                assign prev = stage[i-1];
            end
            always @(posedge clk) begin
                if (reset)
                    stage[i] <= {width{1'b0}};
                else
                    stage[i] <= prev;
            end
            assign out[i*width +: width] = stage[i];
        end
    endgenerate
endmodule
`default_nettype wire
