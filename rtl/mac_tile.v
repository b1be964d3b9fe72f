// One processing element of the systolic array, in either dataflow.
//
// Weight-stationary (os_in = 0): the weight is held in w_active; the activation moves
// west to east, the psum north to south: psum_out <= psum_in + a * w.
// The next weight tile is staged in w_q (column broadcast, wload_en) while the current
// one computes; the activation that carries start_in switches to it, so a new tile
// costs no bubble.
//
// Output-stationary (os_in = 1): the psum is held in psum_q; weights move north to
// south through w_q (w_shift every cycle of OS operation), activations west to east.
// start_in restarts the sum with this product, so stale state never leaks into a new
// output group, and moves the finished sum into shadow_q. drain shifts the held psums one
// row south (to the OFIFO): with drain_shadow the shadow sums (psum_out = shadow_q), so the
// previous group drains while the next one computes; without it the live sums in psum_q
// (the last group, and the classic flow, which has no next start).
// A held sum that leaves psum_bw two's complement raises the sticky os_overflow flag
// (until reset) instead of wrapping unnoticed. WS needs no such flag: the core checks at
// elaboration that a column of row products always fits psum_bw.
//
// 2-bit mode (act2_in = 1, weight-stationary only; it travels with the activation like
// os_in): the bw-bit activation lane carries two bw/2-bit activations, the low half for
// weight slot 0 and the high half for slot 1, and the PE adds both products:
// psum_out <= psum_in + a[lo] * w + a[hi] * w1. Slot 1 has its own staged (w1_q, loaded
// by wload1_en) and active (w1_active) register, switched by the same start token. In
// 4-bit mode the slot-1 activation is zero, so its product is too.
`include "core_inst.vh"   // parameter defaults: the one hardware configuration
`default_nettype none
module mac_tile #(
    parameter bw = `CORE_BW,
    parameter psum_bw = `CORE_PSUM_BW
) (
    input  wire               clk,
    input  wire               reset,
    // west -> east: activation and the control that travels with it
    input  wire [bw-1:0]      a_in,
    input  wire               valid_in,
    input  wire               start_in,
    input  wire               os_in,
    input  wire               act2_in,
    output wire [bw-1:0]      a_out,
    output wire               valid_out,
    output wire               start_out,
    output wire               os_out,
    output wire               act2_out,
    // weights: WS column-broadcast load, or OS chain from the north
    input  wire               wload_en,
    input  wire [bw-1:0]      wload_data,
    input  wire               wload1_en,     // 2-bit mode: stage the slot-1 weight
    input  wire [bw-1:0]      wload1_data,
    input  wire               w_shift,
    input  wire [bw-1:0]      w_in,
    output wire [bw-1:0]      w_out,
    // psums: north -> south
    input  wire               drain,
    input  wire               drain_shadow,  // OS (mac_array gates it): psum_out = shadow_q; with drain, shift it
    input  wire [psum_bw-1:0] psum_in,
    output wire [psum_bw-1:0] psum_out,
    output reg                os_overflow
);
    localparam hbw = bw / 2;   // bits of a 2-bit-mode activation (half a lane)

    reg [bw-1:0]      w_q;
    reg [bw-1:0]      w_active;
    reg [bw-1:0]      w1_q;
    reg [bw-1:0]      w1_active;
    reg [psum_bw-1:0] psum_q;
    reg [psum_bw-1:0] shadow_q;   // OS: the previous group's finished sum, until drained

    wire ws_op = valid_in & ~os_in;
    wire os_op = valid_in & os_in;
    wire act2 = act2_in & ~os_in;

    // slot 0 takes the whole lane (4-bit mode) or its low half; slot 1 the high half or 0
    wire [bw-1:0] a0 = act2 ? {{(bw-hbw){1'b0}}, a_in[hbw-1:0]} : a_in;
    wire [bw-1:0] a1 = act2 ? {{hbw{1'b0}}, a_in[bw-1:hbw]} : {bw{1'b0}};

    wire [bw-1:0]      ws_weight = start_in ? w_q : w_active;
    wire [bw-1:0]      ws_weight1 = start_in ? w1_q : w1_active;
    wire [psum_bw-1:0] os_base = start_in ? {psum_bw{1'b0}} : psum_q;
    wire [bw-1:0]      mac_w = os_op ? w_in : ws_weight;
    wire [psum_bw-1:0] mac_c = os_op ? os_base : psum_in;
    wire [psum_bw-1:0] sum0;
    wire [psum_bw-1:0] mac_out;

    mac #(.bw(bw), .psum_bw(psum_bw)) u_mac (
        .a(a0), .b(mac_w), .c(mac_c), .out(sum0)
    );
    mac #(.bw(bw), .psum_bw(psum_bw)) u_mac1 (
        .a(a1), .b(ws_weight1), .c(sum0), .out(mac_out)
    );

    // Signed addition overflows when both addends have one sign and the result the other;
    // the product is negative exactly when the weight is and the activation is not zero.
    // (OS has no slot-1 product: a1 is zero there, so mac_out is sum0.)
    wire product_neg = mac_w[bw-1] & |a0;
    wire os_add_ovf = (mac_c[psum_bw-1] == product_neg) && (sum0[psum_bw-1] != product_neg);
    // The clocked block reads few signals (a simulator such as Icarus pays for each one on
    // every edge, in 64 PEs): its conditions are nets, what travels east is one vector, and
    // the weight and flag registers, which a WS layer changes only now and then, sit behind
    // one condition.
    wire take_weights = ws_op & start_in;
    wire drain_live = drain & ~drain_shadow;
    wire set_overflow = os_op & ~drain_live & os_add_ovf;
    wire weight_ctl = wload_en | wload1_en | w_shift | take_weights | set_overflow;
    wire psum_en = drain_live | valid_in;
    wire [psum_bw-1:0] psum_d = drain_live ? psum_in : mac_out;
    // a shadow drain wins over a capture: the program never asks for both in one PE
    wire shadow_drain = drain & drain_shadow;
    wire shadow_en = shadow_drain | (os_op & start_in);
    wire [psum_bw-1:0] shadow_d = shadow_drain ? psum_in : psum_q;
    wire [bw+3:0] east_d = {act2_in, os_in, start_in, valid_in, a_in};
    reg  [bw+3:0] east_q;
    assign {act2_out, os_out, start_out, valid_out, a_out} = east_q;

    assign w_out = w_q;
    assign psum_out = drain_shadow ? shadow_q : psum_q;

    always @(posedge clk) begin
        if (reset) begin
            east_q <= {(bw+4){1'b0}};
            w_q <= {bw{1'b0}};
            w_active <= {bw{1'b0}};
            w1_q <= {bw{1'b0}};
            w1_active <= {bw{1'b0}};
            psum_q <= {psum_bw{1'b0}};
            shadow_q <= {psum_bw{1'b0}};
            os_overflow <= 1'b0;
        end else begin
            east_q <= east_d;
            if (psum_en)
                psum_q <= psum_d;
            if (shadow_en)
                shadow_q <= shadow_d;
            if (weight_ctl) begin
                if (wload_en)
                    w_q <= wload_data;
                else if (w_shift)
                    w_q <= w_in;
                if (wload1_en)
                    w1_q <= wload1_data;
                if (take_weights) begin
                    w_active <= w_q;
                    w1_active <= w1_q;
                end
                if (set_overflow)
                    os_overflow <= 1'b1;
            end
        end
    end
endmodule
`default_nettype wire
