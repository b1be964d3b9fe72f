// One row of the array: col PEs chained west to east.
// Per-column buses are packed with column 0 in the low bits.
`default_nettype none
module mac_row #(
    parameter bw = 4,
    parameter psum_bw = 16,
    parameter col = 8
) (
    input  wire                   clk,
    input  wire                   reset,
    input  wire [bw-1:0]          a_in,
    input  wire                   valid_in,
    input  wire                   start_in,
    input  wire                   os_in,
    input  wire [col-1:0]         wload_en,
    input  wire [bw-1:0]          wload_data,
    input  wire [col-1:0]         w_shift,
    input  wire [col*bw-1:0]      w_in,
    output wire [col*bw-1:0]      w_out,
    input  wire [col-1:0]         drain,
    input  wire [col*psum_bw-1:0] psum_in,
    output wire [col*psum_bw-1:0] psum_out,
    // registered valid of every PE for a weight-stationary product (bottom row: psum ready)
    output wire [col-1:0]         ws_valid_out,
    // OR of the PEs' sticky OS overflow flags
    output wire                   os_overflow
);
    // index c feeds column c; index col leaves the east edge unused
    /* verilator lint_off UNUSEDSIGNAL */
    wire [(col+1)*bw-1:0] a_chain;
    wire [col:0]          start_chain;
    /* verilator lint_on UNUSEDSIGNAL */
    wire [col:0]          valid_chain;
    wire [col:0]          os_chain;

    assign a_chain[bw-1:0] = a_in;
    assign valid_chain[0] = valid_in;
    assign start_chain[0] = start_in;
    assign os_chain[0] = os_in;
    wire [col-1:0] pe_overflow;
    assign os_overflow = |pe_overflow;

    genvar c;
    generate
        for (c = 0; c < col; c = c + 1) begin : g_col
            mac_tile #(.bw(bw), .psum_bw(psum_bw)) u_tile (
                .clk(clk),
                .reset(reset),
                .a_in(a_chain[c*bw +: bw]),
                .valid_in(valid_chain[c]),
                .start_in(start_chain[c]),
                .os_in(os_chain[c]),
                .a_out(a_chain[(c+1)*bw +: bw]),
                .valid_out(valid_chain[c+1]),
                .start_out(start_chain[c+1]),
                .os_out(os_chain[c+1]),
                .wload_en(wload_en[c]),
                .wload_data(wload_data),
                .w_shift(w_shift[c]),
                .w_in(w_in[c*bw +: bw]),
                .w_out(w_out[c*bw +: bw]),
                .drain(drain[c]),
                .psum_in(psum_in[c*psum_bw +: psum_bw]),
                .psum_out(psum_out[c*psum_bw +: psum_bw]),
                .os_overflow(pe_overflow[c])
            );
            assign ws_valid_out[c] = valid_chain[c+1] & ~os_chain[c+1];
        end
    endgenerate
endmodule
`default_nettype wire
