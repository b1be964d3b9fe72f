// Bounded proof of rtl/sfp.v against an abstract model of the accumulation (make formal;
// README "Formal"). The model keeps each bank entry as an exact integer (16 bits: no
// wrap within the bound) and replays the SFP's three stages: an operation issued at one
// edge (acc/first/emit/relu/addr) executes at the next with that cycle's in_data:
// sum = (first ? 0 : entry) + (acc ? in * (shift ? 2**shift_bits : 1) : 0), written
// back when acc or first; an emit sends relu(sum) to out (psum_bw bits) and out_wide
// (acc_bw bits) at the edge after that. Proven, lane by lane:
//  * overflow is exactly "since reset, a sum written back did not fit acc_bw bits, or
//    an emitted value of a plain emit (not raw) did not fit psum_bw bits" (sticky);
//  * out_valid is set exactly by the edge after the one that executes an emit (the emit
//    edge; the psum_bw check is at that edge too), and while the flag is
//    clear, out and out_wide are the model's value (this covers the forwarding of a sum
//    to the next operation on the same entry).
// The bank has no reset: the proof assumes the program's contract that an operation
// without `first` reads only an entry written since the last reset (a new program starts
// every entry it uses with `first`). A reset cancels the operation in flight. Reset may
// come at any cycle; the first cycle is one.
// Requantization is not in this proof: requant and the threshold writes are tied to 0
// (tb/test_sfp.py checks the levels). A port added later needs a tie-off here.
`include "core_inst.vh"   // the threshold ports' field widths
`default_nettype none
module sfp_formal #(
    parameter col = 1,
    parameter psum_bw = 4,
    parameter acc_bw = 5,
    parameter depth = 2,
    parameter shift_bits = 2
) (
    input wire                     clk,
    input wire                     reset,
    input wire                     acc,
    input wire                     first,
    input wire                     emit,
    input wire                     relu,
    input wire [$clog2(depth)-1:0] addr,
    input wire [col*psum_bw-1:0]   in_data,
    input wire                     shift,
    input wire                     raw
);
    localparam aw = $clog2(depth);
    localparam W = 16;               // the model's exact integers

    wire [col*psum_bw-1:0] out;
    wire [col*acc_bw-1:0] out_wide;
    wire out_valid, overflow;

    // one threshold tile of one level: the smallest store the tied-off requant path allows
    sfp #(.col(col), .psum_bw(psum_bw), .acc_bw(acc_bw), .depth(depth), .shift_bits(shift_bits),
          .levels(1), .thr_data_bw(acc_bw + 1), .thr_tiles(2)) dut (
        .clk(clk), .reset(reset), .acc(acc), .first(first), .emit(emit), .relu(relu),
        .addr(addr), .in_data(in_data), .out(out), .out_valid(out_valid), .overflow(overflow),
        .shift(shift), .raw(raw), .requant(1'b0), .thr_wr(1'b0), .thr_tile(1'b0),
        .thr_lane({`WCOL_BITS{1'b0}}), .thr_level({`THR_LEVEL_BITS{1'b0}}), .thr_part({`THR_PART_BITS{1'b0}}),
        .thr_data({(acc_bw + 1){1'b0}}), .out_wide(out_wide)
    );

    // the operation issued at the last edge, executing at the next one
    reg          p_acc = 0, p_first = 0, p_emit = 0, p_relu = 0, p_shift = 0, p_raw = 0;
    // the emit executed at the last edge, on out after the next one
    reg          e_emit = 0, e_raw = 0;
    reg [col-1:0] e_out_misfit = 0;
    reg [col*psum_bw-1:0] e_out = 0;
    reg [col*acc_bw-1:0]  e_out_wide = 0;
    reg [aw-1:0] p_addr;
    reg [depth-1:0] written = 0;     // entries written since reset
    reg          spec_overflow = 0, spec_out_valid = 0;
    reg [col*psum_bw-1:0] spec_out = 0;
    reg [col*acc_bw-1:0]  spec_out_wide = 0;
    reg          started = 0;

    wire write = (p_acc | p_first) & ~reset;
    wire [depth-1:0] written_now = written | (write ? {{(depth-1){1'b0}}, 1'b1} << p_addr : {depth{1'b0}});
    wire [col-1:0] sum_misfit, out_misfit;
    wire [col*psum_bw-1:0] model_out;
    wire [col*acc_bw-1:0]  model_out_wide;

    localparam signed [W-1:0] acc_max = (1 <<< (acc_bw-1)) - 1, acc_min = -(1 <<< (acc_bw-1));
    localparam signed [W-1:0] psum_max = (1 <<< (psum_bw-1)) - 1, psum_min = -(1 <<< (psum_bw-1));

    genvar c;
    generate
        for (c = 0; c < col; c = c + 1) begin : g_lane
            reg  signed [W-1:0] entry [0:depth-1];
            wire signed [psum_bw-1:0] in_c = in_data[c*psum_bw +: psum_bw];
            wire signed [W-1:0] base = p_first ? {W{1'b0}} : entry[p_addr];
            wire signed [W-1:0] in_w = {{(W-psum_bw){in_c[psum_bw-1]}}, in_c};
            wire signed [W-1:0] sum = base + (p_acc ? (p_shift ? in_w * (1 <<< shift_bits) : in_w) : {W{1'b0}});
            wire signed [W-1:0] act = (p_relu && sum < 0) ? {W{1'b0}} : sum;
            assign sum_misfit[c] = sum > acc_max || sum < acc_min;
            assign out_misfit[c] = act > psum_max || act < psum_min;
            assign model_out[c*psum_bw +: psum_bw] = act[psum_bw-1:0];
            assign model_out_wide[c*acc_bw +: acc_bw] = act[acc_bw-1:0];
            always @(posedge clk)
                if (write)
                    entry[p_addr] <= sum;
        end
    endgenerate

    always @(*) begin
        if (!started)
            assume(reset);
        if (!reset && (acc || emit) && !first)
            assume(written_now[addr]);
        if (started) begin
            assert(overflow == spec_overflow);
            assert(out_valid == spec_out_valid);
            if (!spec_overflow) begin
                assert(out == spec_out);
                assert(out_wide == spec_out_wide);
            end
        end
    end

    always @(posedge clk) begin
        started <= 1'b1;
        p_addr <= addr;
        written <= reset ? {depth{1'b0}} : written_now;
        if (reset) begin
            {p_acc, p_first, p_emit, p_relu, p_shift, p_raw} <= 6'b0;
            {e_emit, e_raw} <= 2'b0;
            spec_overflow <= 1'b0;
            spec_out_valid <= 1'b0;
            spec_out <= {col*psum_bw{1'b0}};
            spec_out_wide <= {col*acc_bw{1'b0}};
        end else begin
            {p_acc, p_first, p_emit, p_relu, p_shift, p_raw} <= {acc, first, emit, relu, shift, raw};
            {e_emit, e_raw} <= {p_emit, p_raw};
            e_out_misfit <= out_misfit;
            e_out <= model_out;
            e_out_wide <= model_out_wide;
            spec_overflow <= spec_overflow | ((p_acc | p_first) & |sum_misfit) | (e_emit & ~e_raw & |e_out_misfit);
            spec_out_valid <= e_emit;
            if (e_emit) begin
                spec_out <= e_out;
                spec_out_wide <= e_out_wide;
            end
        end
    end
endmodule
`default_nettype wire
