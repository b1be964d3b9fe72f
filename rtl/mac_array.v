// The row x col systolic array. Row r is PE row r (input channel r in WS, output pixel r
// in OS); column c is output channel c.
//
// The west control (valid, start, os) is given once, for row 0; row r sees it r cycles
// later, in step with the L0, which pops row r r cycles after row 0. Likewise the column
// control (os, which also shifts the OS weights south, drain and drain_shadow) reaches
// column c c cycles later, in step with the IFIFO.
// The south edge presents each column's psum with its own valid strobe.
//
// Weight staging (WS): wload_en selects the column. A 4-bit load (wload_act2 = 0) writes
// slot 0 of every row, nibble r -> row r. A 2-bit-mode load (wload_act2 = 1) writes both
// slots of one half of the column's rows (wload_half: 0 rows 0..row/2-1, 1 the rest):
// nibbles 2p and 2p+1 -> slots 0 and 1 of row half * row/2 + p. Two loads stage a
// column's 2 x row weights, and the half of row 0 can be loaded last-but-one: the upper
// rows see the start token row/2 cycles later. A second 4-bit load in the same cycle
// (wload2_en, wload2_data; 4-bit only) stages another column: nibble r of wload2_data -> row r.
//
// Every PE-to-PE link is its own small net (g_row[r].g_col[c].psum, .w, .a_east, ...), not a
// slice of one wide bus: a simulator then updates only the links that changed (Icarus
// rebuilt a whole 1,152-bit psum bus, and every slice of it, on each PE update).
`include "core_inst.vh"   // parameter defaults: the one hardware configuration
`default_nettype none
module mac_array #(
    parameter bw = `CORE_BW,
    parameter psum_bw = `CORE_PSUM_BW,
    parameter row = `CORE_ROW,
    parameter col = `CORE_COL
) (
    input  wire                   clk,
    input  wire                   reset,
    // west edge: activations per row (already skewed), control for row 0
    input  wire [row*bw-1:0]      a_in,
    input  wire                   valid,
    input  wire                   start,
    input  wire                   os,
    input  wire                   act2,        // 2-bit mode (WS): two activations per lane
    // WS weight staging: column one-hot, nibble r of the word for row r (2-bit: see above)
    input  wire [col-1:0]         wload_en,
    input  wire                   wload_act2,
    input  wire                   wload_half,
    input  wire [row*bw-1:0]      wload_data,
    input  wire [col-1:0]         wload2_en,
    input  wire [row*bw-1:0]      wload2_data,
    // north edge: OS weights per column (already skewed), drain for column 0
    input  wire [col*bw-1:0]      w_in,
    input  wire                   drain,
    input  wire                   drain_shadow,  // with drain: the shadow sums (mac_tile)
    // south edge
    output wire [col*psum_bw-1:0] psum_out,
    output wire [col-1:0]         psum_valid,
    // some PE's OS sum left psum_bw (sticky until reset)
    output wire                   os_overflow
);
    localparam half_rows = (row + 1) / 2;

    wire [row*4-1:0] west_ctl;
    wire [col*3-1:0] col_ctl;

    skew #(.width(4), .lanes(row)) u_row_skew (
        .clk(clk), .reset(reset), .in({act2, os, start, valid}), .out(west_ctl)
    );
    // a shadow drain is OS only: in WS psum_out must stay the live psum, which the PE below
    // adds (drain with drain_shadow in WS is then a live drain, as drain alone)
    skew #(.width(3), .lanes(col)) u_col_skew (
        .clk(clk), .reset(reset), .in({drain & drain_shadow & os, drain, os}), .out(col_ctl)
    );

    wire [row*col-1:0] pe_overflow;
    assign os_overflow = |pe_overflow;

    // g_row[r].g_col[c] holds what PE (r, c) drives: its east links (a_east, valid_east, ...)
    // and its south links (w, psum). The west edge feeds column 0, the north edge row 0.
    genvar r, c;
    generate
        for (r = 0; r < row; r = r + 1) begin : g_row
            for (c = 0; c < col; c = c + 1) begin : g_col
                /* verilator lint_off UNUSEDSIGNAL */
                wire [bw-1:0]      a_east;                      // the east edge is unused,
                wire               valid_east, start_east, os_east, act2_east;
                wire [bw-1:0]      w;                           // so are the OS weights south
                /* verilator lint_on UNUSEDSIGNAL */
                wire [psum_bw-1:0] psum;
                wire               overflow;                    // sticky OS overflow of this PE
                wire [bw-1:0]      a_west;
                wire               valid_west, start_west, os_west, act2_west;
                // 2-bit weight staging of this row: its half, and its nibble pair
                wire               in_half = wload_half == (r >= half_rows);
                wire [bw-1:0]      wload0, wload1;
                wire [bw-1:0]      wload4 = wload2_en[c] ? wload2_data[r*bw +: bw] : wload_data[r*bw +: bw];
                if (2 * (r % half_rows) + 1 < row) begin : g_pair
                    assign wload1 = wload_data[(2 * (r % half_rows) + 1)*bw +: bw];
                    assign wload0 = wload_act2 ? wload_data[(2 * (r % half_rows))*bw +: bw] : wload4;
                end else begin : g_no_pair   // odd row count: the last pair has one nibble
                    assign wload1 = {bw{1'b0}};
                    assign wload0 = wload_act2 ? {bw{1'b0}} : wload4;
                end
                wire [bw-1:0]      w_north;
                wire [psum_bw-1:0] psum_north;
                if (c == 0) begin : g_west
                    assign a_west = a_in[r*bw +: bw];
                    assign valid_west = west_ctl[4*r];
                    assign start_west = west_ctl[4*r+1];
                    assign os_west = west_ctl[4*r+2];
                    assign act2_west = west_ctl[4*r+3];
                end else begin : g_east
                    assign a_west = g_col[c-1].a_east;
                    assign valid_west = g_col[c-1].valid_east;
                    assign start_west = g_col[c-1].start_east;
                    assign os_west = g_col[c-1].os_east;
                    assign act2_west = g_col[c-1].act2_east;
                end
                if (r == 0) begin : g_north
                    assign w_north = w_in[c*bw +: bw];
                    assign psum_north = {psum_bw{1'b0}};
                end else begin : g_south
                    assign w_north = g_row[r-1].g_col[c].w;
                    assign psum_north = g_row[r-1].g_col[c].psum;
                end
                mac_tile #(.bw(bw), .psum_bw(psum_bw)) u_tile (
                    .clk(clk),
                    .reset(reset),
                    .a_in(a_west),
                    .valid_in(valid_west),
                    .start_in(start_west),
                    .os_in(os_west),
                    .act2_in(act2_west),
                    .a_out(a_east),
                    .valid_out(valid_east),
                    .start_out(start_east),
                    .os_out(os_east),
                    .act2_out(act2_east),
                    .wload_en((wload_en[c] | wload2_en[c]) & (~wload_act2 | in_half)),
                    .wload_data(wload0),
                    .wload1_en(wload_en[c] & wload_act2 & in_half),
                    .wload1_data(wload1),
                    .w_shift(col_ctl[3*c]),
                    .w_in(w_north),
                    .w_out(w),
                    .drain(col_ctl[3*c+1]),
                    .drain_shadow(col_ctl[3*c+2]),
                    .psum_in(psum_north),
                    .psum_out(psum),
                    .os_overflow(overflow)
                );
                assign pe_overflow[r*col + c] = overflow;
            end
        end
        // south edge. WS: the bottom PE registered a fresh psum; OS: this cycle's drain
        // moves the bottom PE's held (live or shadow) psum out.
        // The bus grows one concatenation per column (g_south_edge[c].psums: columns 0..c),
        // not as a net driven in col parts: Icarus resolves such a net bit by bit on every
        // change, and this one changes every cycle.
        for (c = 0; c < col; c = c + 1) begin : g_south_edge
            wire [(c+1)*psum_bw-1:0] psums;
            wire                     col_valid = (g_row[row-1].g_col[c].valid_east & ~g_row[row-1].g_col[c].os_east)
                                           | col_ctl[3*c+1];
            wire [c:0]               valids;
            if (c == 0) begin : g_first
                assign psums = g_row[row-1].g_col[c].psum;
                assign valids = col_valid;
            end else begin : g_next
                assign psums = {g_row[row-1].g_col[c].psum, g_south_edge[c-1].psums};
                assign valids = {col_valid, g_south_edge[c-1].valids};
            end
        end
        assign psum_out = g_south_edge[col-1].psums;
        assign psum_valid = g_south_edge[col-1].valids;
    endgenerate
endmodule
`default_nettype wire
