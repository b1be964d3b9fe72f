// The SFP's requantization thresholds (model/requant.py Requant): for each output channel
// of a layer, oc tile `tile` x lane c, `levels` signed thresholds of thr_bw = acc_bw + 1
// bits and a descending bit.
//
// Write (wr, from xmem Q = data): level < levels stores data's low bits as part `part`
// (data_bw bits each, low part first) of threshold `level` of lane `lane` in `wr_tile`;
// level == levels stores the tile's descending bits, data bit c -> lane c.
// Read (rd): at the edge, the thresholds and descending bits of `rd_tile` go to thr / desc
// (the execute edge of an SFP emit; the SFP compares at the next edge).
// The thresholds live in block RAM: memories of `group` thresholds side by side, a word
// per tile; a write enables only its (lane, threshold, part) bits, the read is registered
// and nothing is reset (a program loads what it uses). Each threshold has a slot of
// slot_bw bits, thr_bw rounded up to whole 9-bit block-RAM bytes: byte enables come in 9
// bits on the ECP5 (DP16KD), as on most FPGAs, so a slot never shares a byte with another
// threshold (else yosys falls back to LUT RAM). Four 27-bit slots fill three 36-bit
// DP16KD words exactly, so the 8x8 core's 120 thresholds take 30 x 3 = 90 DP16KDs (the
// read width, 3,240 bits a cycle, sets the count; 64 of each DP16KD's 512 words are used).
// A threshold wr and an rd of one tile in one cycle read the old word here but undefined
// data from an ECP5 block RAM; no_rw_check spares yosys the collision logic it would add
// per read bit, and model/program_check.py refuses a program that does it (THR_WR of a
// threshold of the tile that a REQUANT emit of the instruction before reads: the SFP
// reads at that emit's execute edge, which is the THR_WR's write edge).
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
    input  wire [$clog2(tiles)-1:0]     wr_tile,
    input  wire [$clog2(tiles)-1:0]     rd_tile,
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
            desc_mem[wr_tile] <= data[col-1:0];
        if (rd)
            desc <= desc_mem[rd_tile];
    end

    localparam slot_bw = (thr_bw + 8) / 9 * 9;
    localparam group = 4;
    localparam last_lo = (parts - 1) * data_bw;     // the last part holds the rest
    localparam last_bw = thr_bw - last_lo;
    localparam [`THR_PART_BITS-1:0] last_part = parts[`THR_PART_BITS-1:0] - 1'b1;

    genvar g, i;
    generate
        for (g = 0; g < col*levels; g = g + group) begin : g_group
            // slot j of this group: threshold (g + j) % levels of lane (g + j) / levels
            localparam n = (col*levels - g < group) ? col*levels - g : group;
            (* ram_style = "block", no_rw_check *) reg [n*slot_bw-1:0] mem [0:tiles-1];
            /* verilator lint_off UNUSEDSIGNAL */
            reg [n*slot_bw-1:0] q;                  // its padding bits are never written nor used
            /* verilator lint_on UNUSEDSIGNAL */
            wire [n-1:0] sel;                       // slot j is the written threshold
            for (i = 0; i < n; i = i + 1) begin : g_slot
                localparam integer lane_n = (g + i) / levels, level_n = (g + i) % levels;
                localparam [`WCOL_BITS-1:0] lane_i = lane_n[`WCOL_BITS-1:0];
                localparam [`THR_LEVEL_BITS-1:0] level_i = level_n[`THR_LEVEL_BITS-1:0];
                assign sel[i] = lane == lane_i && level == level_i;
                assign thr[(g + i)*thr_bw +: thr_bw] = q[i*slot_bw +: thr_bw];
            end
            integer j, p;
            // wr is tested first, once: a simulator then reads nothing more on the edges
            // without a threshold write (Icarus pays per signal read, in col*levels/group processes)
            always @(posedge clk) begin
                if (wr)
                    for (j = 0; j < n; j = j + 1)
                        if (sel[j]) begin
                            for (p = 0; p < parts - 1; p = p + 1)
                                if (part == p[`THR_PART_BITS-1:0])
                                    mem[wr_tile][j*slot_bw + p*data_bw +: data_bw] <= data;
                            if (part == last_part)
                                mem[wr_tile][j*slot_bw + last_lo +: last_bw] <= data[last_bw-1:0];
                        end
                if (rd)
                    q <= mem[rd_tile];
            end
        end
    endgenerate
endmodule
`default_nettype wire
