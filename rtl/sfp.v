// Special function processor: accumulates psum vectors into a bank of `depth` sums
// (one per output pixel in flight), then emits a sum, optionally through ReLU.
//
// Each cycle: sum = (first ? 0 : bank[addr]) + (acc ? in_data : 0), lane by lane, at
// acc_bw bits; bank[addr] <= sum when acc or first; with emit, out <= relu(sum) and
// out_valid pulses. A sum that does not fit acc_bw, or an emitted value that does not
// fit psum_bw, raises the sticky overflow flag instead of wrapping unnoticed.
`default_nettype none
module sfp #(
    parameter col = 8,
    parameter psum_bw = 16,
    parameter acc_bw = 16,
    parameter depth = 16
) (
    input  wire                     clk,
    input  wire                     reset,
    input  wire                     acc,
    input  wire                     first,
    input  wire                     emit,
    input  wire                     relu,
    input  wire [$clog2(depth)-1:0] addr,
    input  wire [col*psum_bw-1:0]   in_data,
    output reg  [col*psum_bw-1:0]   out,
    output reg                      out_valid,
    output reg                      overflow
);
    reg  [col*acc_bw-1:0] bank [0:depth-1];
    wire [col*acc_bw-1:0] base = first ? {col*acc_bw{1'b0}} : bank[addr];
    wire [col*acc_bw-1:0] sum;
    wire [col*psum_bw-1:0] result;
    wire [col-1:0]         lane_acc_ovf;
    wire [col-1:0]         lane_out_ovf;

    genvar c;
    generate
        for (c = 0; c < col; c = c + 1) begin : g_lane
            wire signed [psum_bw-1:0] in_c = in_data[c*psum_bw +: psum_bw];
            wire signed [acc_bw-1:0]  base_c = base[c*acc_bw +: acc_bw];
            wire signed [acc_bw:0]    addend = acc ? {{(acc_bw+1-psum_bw){in_c[psum_bw-1]}}, in_c}
                                                   : {(acc_bw+1){1'b0}};
            wire signed [acc_bw:0]    wide = {base_c[acc_bw-1], base_c} + addend;
            wire signed [acc_bw-1:0]  sum_c = wide[acc_bw-1:0];
            wire signed [acc_bw-1:0]  act_c = (relu && sum_c[acc_bw-1]) ? {acc_bw{1'b0}} : sum_c;
            assign sum[c*acc_bw +: acc_bw] = sum_c;
            assign result[c*psum_bw +: psum_bw] = act_c[psum_bw-1:0];
            assign lane_acc_ovf[c] = wide[acc_bw] != wide[acc_bw-1];
            // the emitted value fits psum_bw when its dropped high bits are all sign copies
            if (acc_bw > psum_bw) begin : g_narrow
                assign lane_out_ovf[c] = (act_c[acc_bw-1:psum_bw-1] != {(acc_bw-psum_bw+1){1'b0}})
                                      && (act_c[acc_bw-1:psum_bw-1] != {(acc_bw-psum_bw+1){1'b1}});
            end else begin : g_same
                assign lane_out_ovf[c] = 1'b0;
            end
        end
    endgenerate

    always @(posedge clk) begin
        if (reset) begin
            out <= {col*psum_bw{1'b0}};
            out_valid <= 1'b0;
            overflow <= 1'b0;
        end else begin
            if (acc | first)
                bank[addr] <= sum;
            out_valid <= emit;
            if (emit)
                out <= result;
            if ((acc && |lane_acc_ovf) || (emit && |lane_out_ovf))
                overflow <= 1'b1;
        end
    end
endmodule
`default_nettype wire
