// Special function processor: accumulates psum vectors into a bank of `depth` sums
// (one per output pixel in flight), then emits a sum, optionally through ReLU.
//
// Two stages. Issue (the edge that takes acc/first/emit/relu/addr): the controls are
// registered and the bank entry addr is read into a register, so the bank is a block RAM
// with a synchronous read and no reset of its contents. Execute (the next edge, which
// takes in_data, the psum vector that belongs to that issue): lane by lane at acc_bw bits,
// sum = (first ? 0 : bank[addr]) + (acc ? in_data : 0); bank[addr] <= sum when acc or
// first; with emit, out <= relu(sum) and out_valid pulses. A sum that does not fit
// acc_bw, or an emitted value that does not fit psum_bw, raises the sticky overflow flag
// instead of wrapping unnoticed. Back-to-back operations on one entry see the sum just
// written (forwarded past the block RAM's read-before-write).
// Needs acc_bw >= psum_bw (checked at elaboration).
`include "core_inst.vh"   // parameter defaults: the one hardware configuration
`default_nettype none
module sfp #(
    parameter col = `CORE_COL,
    parameter psum_bw = `CORE_PSUM_BW,
    parameter acc_bw = `CORE_ACC_BW,
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
    localparam aw = $clog2(depth);

    generate
        if (acc_bw < psum_bw) begin : g_bad_acc_bw
            // elaboration fails here by design: the accumulator must hold a psum
            sfp_parameter_error_acc_bw_must_be_at_least_psum_bw bad_parameter();
        end
    endgenerate

    // issue -> execute registers
    reg              acc_q, first_q, emit_q, relu_q;
    reg  [aw-1:0]    addr_q;
    reg  [col*acc_bw-1:0] bank_q;      // bank[addr] as read at the issue edge
    reg  [col*acc_bw-1:0] forward_q;   // the sum written at the issue edge ...
    reg                   use_forward; // ... into the entry that was read then

    reg  [col*acc_bw-1:0] bank [0:depth-1];
    wire [col*acc_bw-1:0] base = first_q ? {col*acc_bw{1'b0}} : use_forward ? forward_q : bank_q;
    wire [col*acc_bw-1:0] sum;
    wire [col*psum_bw-1:0] result;
    wire [col-1:0]         lane_acc_ovf;
    wire [col-1:0]         lane_out_ovf;
    wire                   write = (acc_q | first_q) & ~reset;   // reset cancels the operation in flight

    genvar c;
    generate
        for (c = 0; c < col; c = c + 1) begin : g_lane
            wire signed [psum_bw-1:0] in_c = in_data[c*psum_bw +: psum_bw];
            wire signed [acc_bw-1:0]  base_c = base[c*acc_bw +: acc_bw];
            wire signed [acc_bw:0]    addend = acc_q ? {{(acc_bw+1-psum_bw){in_c[psum_bw-1]}}, in_c}
                                                     : {(acc_bw+1){1'b0}};
            wire signed [acc_bw:0]    wide = {base_c[acc_bw-1], base_c} + addend;
            wire signed [acc_bw-1:0]  sum_c = wide[acc_bw-1:0];
            wire signed [acc_bw-1:0]  act_c = (relu_q && sum_c[acc_bw-1]) ? {acc_bw{1'b0}} : sum_c;
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
            use_forward <= 1'b0;
            out <= {col*psum_bw{1'b0}};
            out_valid <= 1'b0;
            overflow <= 1'b0;
        end else begin
            acc_q <= acc;
            first_q <= first;
            emit_q <= emit;
            relu_q <= relu;
            use_forward <= write && addr == addr_q;
            out_valid <= emit_q;
            if (emit_q)
                out <= result;
            if ((acc_q && |lane_acc_ovf) || (emit_q && |lane_out_ovf))
                overflow <= 1'b1;
        end
    end

    // data registers without reset (they only matter after an issue)
    always @(posedge clk) begin
        addr_q <= addr;
        forward_q <= sum;
    end
endmodule
`default_nettype wire
