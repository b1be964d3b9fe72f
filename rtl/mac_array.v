// The row x col systolic array. Row r is PE row r (input channel r in WS, output pixel r
// in OS); column c is output channel c.
//
// The west control (valid, start, os) is given once, for row 0; row r sees it r cycles
// later, in step with the L0, which pops row r r cycles after row 0. Likewise the column
// control (os, which also shifts the OS weights south, and drain) reaches column c c
// cycles later, in step with the IFIFO.
// The south edge presents each column's psum with its own valid strobe.
`default_nettype none
module mac_array #(
    parameter bw = 4,
    parameter psum_bw = 16,
    parameter row = 8,
    parameter col = 8
) (
    input  wire                   clk,
    input  wire                   reset,
    // west edge: activations per row (already skewed), control for row 0
    input  wire [row*bw-1:0]      a_in,
    input  wire                   valid,
    input  wire                   start,
    input  wire                   os,
    // WS weight staging: column one-hot, nibble r of the word for row r
    input  wire [col-1:0]         wload_en,
    input  wire [row*bw-1:0]      wload_data,
    // north edge: OS weights per column (already skewed), drain for column 0
    input  wire [col*bw-1:0]      w_in,
    input  wire                   drain,
    // south edge
    output wire [col*psum_bw-1:0] psum_out,
    output wire [col-1:0]         psum_valid,
    // some PE's OS sum left psum_bw (sticky until reset)
    output wire                   os_overflow
);
    wire [row*3-1:0] west_ctl;
    wire [col*2-1:0] col_ctl;

    skew #(.width(3), .lanes(row)) u_row_skew (
        .clk(clk), .reset(reset), .in({os, start, valid}), .out(west_ctl)
    );
    skew #(.width(2), .lanes(col)) u_col_skew (
        .clk(clk), .reset(reset), .in({drain, os}), .out(col_ctl)
    );

    wire [col-1:0] w_shift_c;
    wire [col-1:0] drain_c;
    genvar c;
    generate
        for (c = 0; c < col; c = c + 1) begin : g_colctl
            assign w_shift_c[c] = col_ctl[2*c];
            assign drain_c[c] = col_ctl[2*c+1];
        end
    endgenerate

    // Vertical buses between rows: index r carries what enters row r from the north.
    wire [(row+1)*col*psum_bw-1:0] psum_bus;
    /* verilator lint_off UNUSEDSIGNAL */
    wire [(row+1)*col*bw-1:0]      w_bus;     // the OS weights leave the south edge unused
    /* verilator lint_on UNUSEDSIGNAL */
    wire [col-1:0]                 ws_valid [0:row-1];
    wire [row-1:0]                 row_overflow;
    assign os_overflow = |row_overflow;

    assign psum_bus[col*psum_bw-1:0] = {col*psum_bw{1'b0}};
    assign w_bus[col*bw-1:0] = w_in;

    genvar r;
    generate
        for (r = 0; r < row; r = r + 1) begin : g_row
            mac_row #(.bw(bw), .psum_bw(psum_bw), .col(col)) u_row (
                .clk(clk),
                .reset(reset),
                .a_in(a_in[r*bw +: bw]),
                .valid_in(west_ctl[3*r]),
                .start_in(west_ctl[3*r+1]),
                .os_in(west_ctl[3*r+2]),
                .wload_en(wload_en),
                .wload_data(wload_data[r*bw +: bw]),
                .w_shift(w_shift_c),
                .w_in(w_bus[r*col*bw +: col*bw]),
                .w_out(w_bus[(r+1)*col*bw +: col*bw]),
                .drain(drain_c),
                .psum_in(psum_bus[r*col*psum_bw +: col*psum_bw]),
                .psum_out(psum_bus[(r+1)*col*psum_bw +: col*psum_bw]),
                .ws_valid_out(ws_valid[r]),
                .os_overflow(row_overflow[r])
            );
        end
    endgenerate

    assign psum_out = psum_bus[row*col*psum_bw +: col*psum_bw];
    // WS: the bottom PE registered a fresh psum; OS: this cycle's drain moves the bottom
    // PE's held psum out.
    assign psum_valid = ws_valid[row-1] | drain_c;
endmodule
`default_nettype wire
