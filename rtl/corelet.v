// Everything between the SRAMs: abuf -> L0 -> array <- IFIFO, array -> OFIFO -> SFP.
// Takes the instruction word and the SRAM read data; gives the OFIFO head (pmem write
// data) and the SFP output. Weights (LOAD, IFIFO_WR) come from xmem Q, or with WSRC from
// wmem Q's low word (the weight memory's own port); LOAD2 stages a second column from wmem
// Q's high word in the same cycle.
`include "core_inst.vh"
`default_nettype none
module corelet #(
    parameter bw = `CORE_BW,
    parameter psum_bw = `CORE_PSUM_BW,
    parameter acc_bw = `CORE_ACC_BW,
    parameter row = `CORE_ROW,
    parameter col = `CORE_COL,
    parameter fifo_depth = `CORE_FIFO_DEPTH
) (
    input  wire                   clk,
    input  wire                   reset,
    /* verilator lint_off UNUSEDSIGNAL */
    input  wire [`INST_WIDTH-1:0]  inst,      // the SRAM fields are decoded by the core
    /* verilator lint_on UNUSEDSIGNAL */
    input  wire [row*bw-1:0]      xmem_q,
    input  wire [2*row*bw-1:0]    wmem_q,    // two weight words, the low one first
    input  wire [col*psum_bw-1:0] pmem_q,
    output wire [col*psum_bw-1:0] ofifo_data,
    output wire                   ofifo_valid,
    output wire [col*psum_bw-1:0] sfp_out,
    output wire                   sfp_valid,
    output wire [col*acc_bw-1:0]  sfp_wide,  // the SFP output at acc_bw bits (raw sums, levels)
    output wire [`ERR_COUNT-1:0]   errors,   // sticky flags, bit order ERR_* (core_inst.vh)
    output wire [4:0]             fifo_flags // {ofifo full, ififo any full, ififo all empty, l0 any full, l0 all empty}
);

    // The activation buffer and the SFP bank are as deep as their instruction fields reach.
    localparam abuf_depth = 1 << `ABUF_BITS;
    localparam sfp_depth = 1 << `ACC_BITS;
    // largest activation sum one PE multiplies per weight magnitude: 15, or 2-bit mode's 3 + 3
    localparam ws_pe_max = ((1 << bw) - 1) > 2 * ((1 << (bw / 2)) - 1) ? ((1 << bw) - 1) : 2 * ((1 << (bw / 2)) - 1);

    // Parameter assumptions, checked at elaboration: a bad configuration names itself in
    // the build error (the instance of a module that does not exist).
    generate
        if (col > (1 << `WCOL_BITS)) begin : g_bad_col
            corelet_parameter_error_col_exceeds_wcol_field bad_parameter();
        end
        if (col > row) begin : g_bad_col_row
            corelet_parameter_error_ififo_lanes_col_must_fit_the_row_wide_xmem_word bad_parameter();
        end
        // WS psums carry no overflow flag: a column of row products must always fit, at
        // 4 bits (one product per PE) and in 2-bit mode (two products of bw/2-bit activations)
        if (row * ws_pe_max * (1 << (bw - 1)) >= (1 << (psum_bw - 1))) begin : g_bad_ws_psum
            corelet_parameter_error_row_products_do_not_fit_psum_bw bad_parameter();
        end
    endgenerate

    wire os = inst[`INST_OS];
    // A flush starts a layer from a clean datapath whatever the last one left in flight.
    wire clear = reset | inst[`INST_FLUSH];
    // the word LOAD stages and IFIFO_WR pushes: like xmem Q, read by the previous instruction
    wire              wsrc = inst[`INST_WSRC];
    wire [row*bw-1:0] weight_q = wsrc ? wmem_q[row*bw-1:0] : xmem_q;

    // ---- west: activation reuse buffer, then the L0 ----
    wire [row*bw-1:0] abuf_out;
    abuf #(.width(row*bw), .depth(abuf_depth)) u_abuf (
        .clk(clk),
        .wr(inst[`INST_ABUF_WR]),
        .waddr(inst[`INST_ABUF_WADDR +: `ABUF_BITS]),
        .wdata(xmem_q),
        .raddr(inst[`INST_ABUF_RADDR +: `ABUF_BITS]),
        .rdata(abuf_out)
    );
    wire [row*bw-1:0] l0_in = inst[`INST_L0_ZERO] ? {row*bw{1'b0}}
                            : inst[`INST_L0_ABUF] ? abuf_out : xmem_q;

    wire [row*bw-1:0] l0_out;
    wire [row-1:0]    l0_empty, l0_full;
    wire              l0_ovf, l0_udf;
    fifo_bank #(.width(bw), .lanes(row), .depth(fifo_depth), .skew_rd(1)) u_l0 (
        .clk(clk), .reset(clear),
        .wr({row{inst[`INST_L0_WR]}}),
        .wr_data(l0_in),
        .rd(inst[`INST_L0_RD]),
        .rd_data(l0_out),
        .empty(l0_empty), .full(l0_full),
        .overflow(l0_ovf), .underflow(l0_udf)
    );

    // ---- north: IFIFO ----
    wire [col*bw-1:0] ififo_out;
    wire [col-1:0]    ififo_empty, ififo_full;
    wire              ififo_ovf, ififo_udf;
    fifo_bank #(.width(bw), .lanes(col), .depth(fifo_depth), .skew_rd(1)) u_ififo (
        .clk(clk), .reset(clear),
        .wr({col{inst[`INST_IFIFO_WR]}}),
        .wr_data(weight_q[col*bw-1:0]),
        .rd(inst[`INST_IFIFO_RD]),
        .rd_data(ififo_out),
        .empty(ififo_empty), .full(ififo_full),
        .overflow(ififo_ovf), .underflow(ififo_udf)
    );

    // ---- the array ----
    wire [`WCOL_BITS-1:0]   wcol = inst[`INST_WCOL +: `WCOL_BITS];
    // 2-bit mode (ACT2): LOAD column wcol stages the lower rows' weight pairs, column
    // col + c the upper rows' of column c (so 2-bit mode needs 2 * col <= 2**WCOL_BITS)
    wire                   act2 = inst[`INST_ACT2];
    localparam [`WCOL_BITS:0] col_w = col;
    wire                   wload_half = act2 & ({1'b0, wcol} >= col_w);
    wire [`WCOL_BITS-1:0]   wload_col = wload_half ? wcol - col_w[`WCOL_BITS-1:0] : wcol;
    wire [col-1:0]         wload_en = inst[`INST_LOAD] ? ({{(col-1){1'b0}}, 1'b1} << wload_col) : {col{1'b0}};
    // LOAD2 (4-bit mode): wmem Q's high word -> column wcol2, beside the LOAD of column wcol
    wire [`WCOL_BITS-1:0]   wcol2 = inst[`INST_WCOL2 +: `WCOL_BITS];
    wire [col-1:0]         wload2_en = inst[`INST_LOAD2] ? ({{(col-1){1'b0}}, 1'b1} << wcol2) : {col{1'b0}};
    wire [col*psum_bw-1:0] array_psum;
    wire [col-1:0]         array_valid;
    wire                   pe_ovf;
    mac_array #(.bw(bw), .psum_bw(psum_bw), .row(row), .col(col)) u_array (
        .clk(clk), .reset(clear),
        .a_in(l0_out),
        .valid(inst[`INST_EXECUTE]),
        .start(inst[`INST_START]),
        .os(os),
        .act2(act2),
        .wload_en(wload_en),
        .wload_act2(act2),
        .wload_half(wload_half),
        .wload_data(weight_q),
        .wload2_en(wload2_en),
        .wload2_data(wmem_q[2*row*bw-1:row*bw]),
        .w_in(ififo_out),
        .drain(inst[`INST_DRAIN]),
        .drain_shadow(inst[`INST_DRAIN_SHADOW]),
        .psum_out(array_psum),
        .psum_valid(array_valid),
        .os_overflow(pe_ovf)
    );

    // ---- south: OFIFO ----
    wire ofifo_full, ofifo_ovf, ofifo_udf;
    ofifo #(.psum_bw(psum_bw), .col(col), .depth(fifo_depth)) u_ofifo (
        .clk(clk), .reset(clear),
        .wr(array_valid),
        .wr_data(array_psum),
        .rd(inst[`INST_OFIFO_RD]),
        .rd_data(ofifo_data),
        .valid(ofifo_valid),
        .full(ofifo_full),
        .overflow(ofifo_ovf), .underflow(ofifo_udf)
    );

    // ---- SFP: issues with the instruction; its psum vector (pmem Q, or the OFIFO head
    // popped by that instruction) arrives one cycle later ----
    reg                    sfp_from_ofifo;
    reg [col*psum_bw-1:0]  ofifo_head_q;
    wire                   sfp_ovf;
    always @(posedge clk) begin
        if (clear) begin
            sfp_from_ofifo <= 1'b0;
            ofifo_head_q <= {col*psum_bw{1'b0}};
        end else begin
            sfp_from_ofifo <= inst[`INST_ACC_SRC];
            ofifo_head_q <= ofifo_data;
        end
    end

    sfp #(.col(col), .psum_bw(psum_bw), .acc_bw(acc_bw), .depth(sfp_depth), .shift_bits(bw),
          .levels((1 << bw) - 1), .thr_data_bw(row*bw), .thr_tiles(1 << `THR_TILE_BITS)) u_sfp (
        .clk(clk), .reset(clear),
        .acc(inst[`INST_ACC]),
        .first(inst[`INST_ACC_FIRST]),
        .emit(inst[`INST_EMIT]),
        .relu(inst[`INST_RELU]),
        .addr(inst[`INST_ACC_ADDR +: `ACC_BITS]),
        .in_data(sfp_from_ofifo ? ofifo_head_q : pmem_q),
        .out(sfp_out),
        .out_valid(sfp_valid),
        .overflow(sfp_ovf),
        .shift(inst[`INST_ACC_SHIFT]),
        .raw(inst[`INST_RAW]),
        .requant(inst[`INST_REQUANT]),
        .thr_wr(inst[`INST_THR_WR]),
        .thr_tile(inst[`INST_THR_TILE +: `THR_TILE_BITS]),
        .thr_lane(inst[`INST_THR_LANE +: `WCOL_BITS]),
        .thr_level(inst[`INST_THR_LEVEL +: `THR_LEVEL_BITS]),
        .thr_part(inst[`INST_THR_PART +: `THR_PART_BITS]),
        .thr_data(xmem_q),
        .out_wide(sfp_wide)
    );

    assign errors[`ERR_L0_OVERFLOW] = l0_ovf;
    assign errors[`ERR_L0_UNDERFLOW] = l0_udf;
    assign errors[`ERR_IFIFO_OVERFLOW] = ififo_ovf;
    assign errors[`ERR_IFIFO_UNDERFLOW] = ififo_udf;
    assign errors[`ERR_OFIFO_OVERFLOW] = ofifo_ovf;
    assign errors[`ERR_OFIFO_UNDERFLOW] = ofifo_udf;
    assign errors[`ERR_SFP_OVERFLOW] = sfp_ovf;
    assign errors[`ERR_OS_PE_OVERFLOW] = pe_ovf;
    assign fifo_flags = {ofifo_full, |ififo_full, &ififo_empty, |l0_full, &l0_empty};
endmodule
`default_nettype wire
