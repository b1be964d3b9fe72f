// The SFP's requantization thresholds (model/requant.py Requant): for each output channel
// of a layer, oc tile `tile` x lane c, `levels` signed thresholds of thr_bw = acc_bw + 1
// bits and a descending bit.
//
// Write (wr, from xmem Q = data): level < levels stores data's low bits as part `part`
// (data_bw bits each, low part first) of threshold `level` of lane `lane` in `tile`;
// level == levels stores the tile's descending bits, data bit c -> lane c.
// Read (rd): at the edge, the thresholds and descending bits of `tile` go to thr / desc
// (the issue edge of an SFP emit; the SFP compares at the next edge).
// One small memory per (lane, threshold, part), each with a plain one-word write port, so
// the store maps onto RAM blocks; nothing is reset (a program loads what it uses).
`include "core_inst.vh"   // parameter defaults: the one hardware configuration
`default_nettype none
module sfp_thresholds #(
    parameter col = `CORE_COL,
    parameter acc_bw = `CORE_ACC_BW,
    parameter data_bw = `CORE_ROW * `CORE_BW,
    parameter levels = (1 << `CORE_BW) - 1,
    parameter tiles = 1 << `THR_TILE_BITS
) (
    input  wire                         clk,
    input  wire                         wr,
    input  wire                         rd,
    input  wire [$clog2(tiles)-1:0]     tile,
    input  wire [`WCOL_BITS-1:0]        lane,
    input  wire [`THR_LEVEL_BITS-1:0]   level,
    input  wire [`THR_PART_BITS-1:0]    part,
    /* verilator lint_off UNUSEDSIGNAL */
    input  wire [data_bw-1:0]           data,     // xmem Q: a threshold uses its low thr_bw bits
    /* verilator lint_on UNUSEDSIGNAL */
    output wire [col*levels*(acc_bw+1)-1:0] thr,    // lane c threshold k at (c*levels + k)*thr_bw
    output reg  [col-1:0]               desc
);
    localparam thr_bw = acc_bw + 1;
    localparam parts = (thr_bw + data_bw - 1) / data_bw;
    localparam [`THR_LEVEL_BITS-1:0] desc_level = levels[`THR_LEVEL_BITS-1:0];

    generate
        if (levels >= (1 << `THR_LEVEL_BITS)) begin : g_bad_levels
            sfp_thresholds_parameter_error_levels_must_fit_below_the_thr_level_field bad_parameter();
        end
        if (parts > (1 << `THR_PART_BITS)) begin : g_bad_parts
            sfp_thresholds_parameter_error_threshold_needs_more_parts_than_the_thr_part_field bad_parameter();
        end
        if (col > data_bw) begin : g_bad_desc
            sfp_thresholds_parameter_error_descending_bits_of_a_tile_must_fit_one_xmem_word bad_parameter();
        end
    endgenerate

    reg [col-1:0] desc_mem [0:tiles-1];
    always @(posedge clk) begin
        if (wr && level == desc_level)
            desc_mem[tile] <= data[col-1:0];
        if (rd)
            desc <= desc_mem[tile];
    end

    genvar c, k, p;
    generate
        for (c = 0; c < col; c = c + 1) begin : g_lane
            for (k = 0; k < levels; k = k + 1) begin : g_level
                for (p = 0; p < parts; p = p + 1) begin : g_part
                    localparam lo = p * data_bw;
                    localparam w = (thr_bw - lo < data_bw) ? thr_bw - lo : data_bw;
                    localparam [`WCOL_BITS-1:0] lane_c = c[`WCOL_BITS-1:0];
                    localparam [`THR_LEVEL_BITS-1:0] level_k = k[`THR_LEVEL_BITS-1:0];
                    localparam [`THR_PART_BITS-1:0] part_p = p[`THR_PART_BITS-1:0];
                    reg [w-1:0] mem [0:tiles-1];
                    reg [w-1:0] q;
                    always @(posedge clk) begin
                        if (wr && lane == lane_c && level == level_k && part == part_p)
                            mem[tile] <= data[w-1:0];
                        if (rd)
                            q <= mem[tile];
                    end
                    assign thr[(c*levels + k)*thr_bw + lo +: w] = q;
                end
            end
        end
    endgenerate
endmodule
`default_nettype wire
