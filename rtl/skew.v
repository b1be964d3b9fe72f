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
    generate
        if (lanes == 1) begin : g_one
            assign out = in;
        end else begin : g_line
            // One register for the whole line, bits (i-1)*width +: width = `in` delayed by i
            // cycles, and one clocked process: a simulator wakes one process per edge, not
            // lanes - 1, and out is one concatenation, not a net driven in lanes parts.
            reg  [(lanes-1)*width-1:0] stage;
            wire [lanes*width-1:0]     taps = {stage, in};
            always @(posedge clk) begin
                if (reset)
                    stage <= {(lanes-1)*width{1'b0}};
                else
                    stage <= taps[(lanes-1)*width-1:0];
            end
            assign out = taps;
        end
    endgenerate
endmodule
`default_nettype wire
