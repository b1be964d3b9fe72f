// One multiply-accumulate: out = c + a * b.
// a: unsigned activation (0 .. 2**bw-1), b: two's complement weight, c/out: two's complement psum,
// wrapping modulo 2**psum_bw (the reference reports any real value that would). Needs
// psum_bw > 2*bw + 1, the width of the product.
`include "core_inst.vh"   // parameter defaults: the one hardware configuration
`default_nettype none
module mac #(
    parameter bw = `CORE_BW,
    parameter psum_bw = `CORE_PSUM_BW
) (
    input  wire [bw-1:0]      a,
    input  wire [bw-1:0]      b,
    input  wire [psum_bw-1:0] c,
    output wire [psum_bw-1:0] out
);
    generate
        if (psum_bw <= 2 * bw + 1) begin : g_bad_psum_bw
            // elaboration fails here by design: the psum must hold a product
            mac_parameter_error_psum_bw_must_exceed_2_bw_plus_1 bad_parameter();
        end
    endgenerate

    // Zero-extend a by one bit so the signed multiply treats it as unsigned.
    wire signed [bw:0]     a_ext = {1'b0, a};
    wire signed [bw-1:0]   b_s = b;
    wire signed [2*bw:0]   product = a_ext * b_s;
    assign out = c + {{(psum_bw-2*bw-1){product[2*bw]}}, product};
endmodule
`default_nettype wire
