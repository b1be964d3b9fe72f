// Special function processor: accumulates psum vectors into a bank of `depth` sums
// (one per output pixel in flight), then emits a sum, optionally through ReLU, or its
// requantized level (the next layer's activation).
//
// Three stages, so that the bank read, the add and the output select are each one cycle
// (README "On an FPGA": they made the critical path in one). Issue (the edge that takes
// acc/first/emit/relu/addr): the controls are registered and the bank entry addr is read
// into a register, so the bank is a block RAM with a synchronous read and no reset of its
// contents. Execute (the next edge, which takes in_data, the psum vector that belongs to
// that issue): lane by lane at acc_bw bits, sum = (first ? 0 : bank[addr]) + (acc ?
// in_data : 0); bank[addr] <= sum when acc or first; the sum and the emit's controls are
// registered. Emit (the edge after): with emit, out <= relu(sum) and out_valid pulses. So
// an operation issued at edge e is on out after edge e + 2 (model/hwconfig.py
// CoreConfig.sfp_latency counts it from the instruction). A sum that does not fit acc_bw
// (checked at execute), or an emitted value that does not fit psum_bw (checked at emit),
// raises the sticky overflow flag instead of wrapping unnoticed. Back-to-back operations
// on one entry see the sum just written (forwarded past the block RAM's read-before-write).
// Extensions (added ports; the ones above keep their meaning):
// - shift: the psum is added times 2**shift_bits (the high digit of a signed input,
//   model/program/signed_input.py); the overflow check covers the wider addend.
// - out_wide: every emitted value at acc_bw bits (out holds its low psum_bw bits).
// - raw: emit without the psum_bw check (the value is on out_wide; acc overflow still flags).
// - requant: emit each lane's level instead of the sum: ascending channel
//   #{k : sum >= t_k}, descending #{k : sum <= t_k} (model/requant.py Requant.apply),
//   thresholds t of channel thr_tile * col + c (sfp_thresholds, loaded by thr_wr from
//   thr_data = xmem Q; the emit's thr_tile is registered at its issue edge and its
//   thresholds read at its execute edge, so they are there for the emit edge).
// Needs acc_bw >= psum_bw (checked at elaboration).
`include "core_inst.vh"   // parameter defaults: the one hardware configuration
`default_nettype none
module sfp #(
    parameter col = `CORE_COL,
    parameter psum_bw = `CORE_PSUM_BW,
    parameter acc_bw = `CORE_ACC_BW,
    parameter depth = 16,
    parameter shift_bits = `CORE_BW,
    parameter levels = (1 << `CORE_BW) - 1,
    parameter thr_data_bw = `CORE_ROW * `CORE_BW,
    parameter thr_tiles = 1 << `THR_TILE_BITS
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
    output reg                      overflow,
    input  wire                     shift,
    input  wire                     raw,
    input  wire                     requant,
    input  wire                     thr_wr,
    input  wire [$clog2(thr_tiles)-1:0] thr_tile,
    input  wire [`WCOL_BITS-1:0]    thr_lane,
    input  wire [`THR_LEVEL_BITS-1:0] thr_level,
    input  wire [`THR_PART_BITS-1:0] thr_part,
    input  wire [thr_data_bw-1:0]   thr_data,
    output reg  [col*acc_bw-1:0]    out_wide
);
    localparam aw = $clog2(depth);
    localparam thr_bw = acc_bw + 1;
    // the adder is wide enough for a shifted psum, so an overflow is seen, never wrapped
    localparam ext_bw = (acc_bw > psum_bw + shift_bits ? acc_bw : psum_bw + shift_bits) + 1;

    generate
        if (acc_bw < psum_bw) begin : g_bad_acc_bw
            // elaboration fails here by design: the accumulator must hold a psum
            sfp_parameter_error_acc_bw_must_be_at_least_psum_bw bad_parameter();
        end
    endgenerate

    // issue -> execute registers
    reg              acc_q, first_q, emit_q, relu_q, shift_q, raw_q, requant_q;
    reg  [aw-1:0]    addr_q;
    reg  [$clog2(thr_tiles)-1:0] thr_tile_q;
    reg  [col*acc_bw-1:0] bank_q;      // bank[addr] as read at the issue edge
    reg  [col*acc_bw-1:0] forward_q;   // the sum of the last execute edge: the emit stage's sum,
    reg                   use_forward; // and the base of the next operation when on its entry
    // execute -> emit registers (the sum is forward_q)
    reg              emit_q2, relu_q2, raw_q2, requant_q2;

    reg  [col*acc_bw-1:0] bank [0:depth-1];
    wire [col*acc_bw-1:0] base = first_q ? {col*acc_bw{1'b0}} : use_forward ? forward_q : bank_q;
    wire [col*acc_bw-1:0] sum;
    wire [col*psum_bw-1:0] result;
    wire [col*acc_bw-1:0]  result_wide;
    wire [col-1:0]         lane_acc_ovf;
    wire [col-1:0]         lane_out_ovf;
    wire                   write = (acc_q | first_q) & ~reset;   // reset cancels the operation in flight

    genvar c;
    generate
        for (c = 0; c < col; c = c + 1) begin : g_lane
            // execute: the add and its acc_bw check
            wire signed [psum_bw-1:0] in_c = in_data[c*psum_bw +: psum_bw];
            wire signed [acc_bw-1:0]  base_c = base[c*acc_bw +: acc_bw];
            wire signed [ext_bw-1:0]  in_ext = {{(ext_bw-psum_bw){in_c[psum_bw-1]}}, in_c};
            wire signed [ext_bw-1:0]  addend = !acc_q ? {ext_bw{1'b0}} : shift_q ? in_ext <<< shift_bits : in_ext;
            wire signed [ext_bw-1:0]  wide = {{(ext_bw-acc_bw){base_c[acc_bw-1]}}, base_c} + addend;
            wire signed [acc_bw-1:0]  sum_c = wide[acc_bw-1:0];
            assign sum[c*acc_bw +: acc_bw] = sum_c;
            // the sum fits acc_bw when the adder's bits above it are all sign copies
            assign lane_acc_ovf[c] = (wide[ext_bw-1:acc_bw-1] != {(ext_bw-acc_bw+1){1'b0}})
                                  && (wide[ext_bw-1:acc_bw-1] != {(ext_bw-acc_bw+1){1'b1}});
            // emit: ReLU of the registered sum and its psum_bw check
            wire signed [acc_bw-1:0]  held_c = forward_q[c*acc_bw +: acc_bw];
            wire signed [acc_bw-1:0]  act_c = (relu_q2 && held_c[acc_bw-1]) ? {acc_bw{1'b0}} : held_c;
            assign result[c*psum_bw +: psum_bw] = act_c[psum_bw-1:0];
            assign result_wide[c*acc_bw +: acc_bw] = act_c;
            // the emitted value fits psum_bw when its dropped high bits are all sign copies
            if (acc_bw > psum_bw) begin : g_narrow
                assign lane_out_ovf[c] = (act_c[acc_bw-1:psum_bw-1] != {(acc_bw-psum_bw+1){1'b0}})
                                      && (act_c[acc_bw-1:psum_bw-1] != {(acc_bw-psum_bw+1){1'b1}});
            end else begin : g_same
                assign lane_out_ovf[c] = 1'b0;
            end
        end
    endgenerate

    // Requantization: the thresholds of the emit's tile, read at its execute edge.
    wire [col*levels*thr_bw-1:0] thr;
    wire [col-1:0]               desc;
    sfp_thresholds #(.col(col), .acc_bw(acc_bw), .data_bw(thr_data_bw), .levels(levels), .tiles(thr_tiles)) u_thr (
        .clk(clk), .wr(thr_wr), .wr_tile(thr_tile), .rd(emit_q & requant_q), .rd_tile(thr_tile_q),
        .lane(thr_lane), .level(thr_level),
        .part(thr_part), .data(thr_data), .thr(thr), .desc(desc)
    );

    // lane c's level: how many of its thresholds the sum reaches (from below when ascending),
    // counted by a balanced adder tree of cnt_bw-bit partial counts (a chain of 15
    // increments was the emit stage's critical path)
    localparam cnt_bw = $clog2(levels + 1);
    function [col*acc_bw-1:0] requantize(input [col*acc_bw-1:0] sums);
        integer l, k, w;
        reg signed [thr_bw-1:0] s, t;
        reg [levels*cnt_bw-1:0] p;     // partial counts, cnt_bw bits each
        begin
            requantize = {col*acc_bw{1'b0}};
            for (l = 0; l < col; l = l + 1) begin
                s = {sums[l*acc_bw + acc_bw - 1], sums[l*acc_bw +: acc_bw]};
                for (k = 0; k < levels; k = k + 1) begin
                    t = thr[(l*levels + k)*thr_bw +: thr_bw];
                    if (desc[l] ? s <= t : s >= t)
                        p[k*cnt_bw +: cnt_bw] = 1;
                    else
                        p[k*cnt_bw +: cnt_bw] = 0;
                end
                // each round adds neighbours pairwise (an odd last one moves down unchanged)
                for (w = levels; w > 1; w = (w + 1) / 2) begin
                    for (k = 0; k < w / 2; k = k + 1)
                        p[k*cnt_bw +: cnt_bw] = p[2*k*cnt_bw +: cnt_bw] + p[(2*k + 1)*cnt_bw +: cnt_bw];
                    if (w % 2 == 1)
                        p[(w/2)*cnt_bw +: cnt_bw] = p[(w - 1)*cnt_bw +: cnt_bw];
                end
                requantize[l*acc_bw +: cnt_bw] = p[0 +: cnt_bw];
            end
        end
    endfunction

    function [col*psum_bw-1:0] narrow(input [col*acc_bw-1:0] lanes);
        integer l;
        begin
            for (l = 0; l < col; l = l + 1)
                narrow[l*psum_bw +: psum_bw] = lanes[l*acc_bw +: psum_bw];
        end
    endfunction

    // The bank: one write port (execute), one registered read port (issue), no reset.
    always @(posedge clk) begin
        if (write)
            bank[addr_q] <= sum;
        bank_q <= bank[addr];
    end

    always @(posedge clk) begin
        if (reset) begin
            acc_q <= 1'b0;
            first_q <= 1'b0;
            emit_q <= 1'b0;
            relu_q <= 1'b0;
            shift_q <= 1'b0;
            raw_q <= 1'b0;
            requant_q <= 1'b0;
            use_forward <= 1'b0;
            emit_q2 <= 1'b0;
            relu_q2 <= 1'b0;
            raw_q2 <= 1'b0;
            requant_q2 <= 1'b0;
            out <= {col*psum_bw{1'b0}};
            out_wide <= {col*acc_bw{1'b0}};
            out_valid <= 1'b0;
            overflow <= 1'b0;
        end else begin
            acc_q <= acc;
            first_q <= first;
            emit_q <= emit;
            relu_q <= relu;
            shift_q <= shift;
            raw_q <= raw;
            requant_q <= requant;
            use_forward <= write && addr == addr_q;
            emit_q2 <= emit_q;
            relu_q2 <= relu_q;
            raw_q2 <= raw_q;
            requant_q2 <= requant_q;
            out_valid <= emit_q2;
            if (emit_q2 && requant_q2) begin
                out_wide <= requantize(forward_q);
                out <= narrow(requantize(forward_q));
            end else if (emit_q2) begin
                out_wide <= result_wide;
                out <= result;
            end
            // raw and requant emits leave psum_bw (sfp_out) aside: only acc_bw must hold
            if ((acc_q && |lane_acc_ovf) || (emit_q2 && !raw_q2 && !requant_q2 && |lane_out_ovf))
                overflow <= 1'b1;
        end
    end

    // data registers without reset (they only matter after an issue)
    always @(posedge clk) begin
        addr_q <= addr;
        thr_tile_q <= thr_tile;
        forward_q <= sum;
    end
endmodule
`default_nettype wire
