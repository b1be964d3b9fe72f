// Bounded proof of rtl/fifo.v against its contract (make formal; README "Formal"):
//  * occupancy: accepted writes minus accepted reads, never above depth; empty and full
//    are exactly occupancy 0 and depth;
//  * no data lost or invented: for an arbitrary (solver-chosen) write index n, the n-th
//    accepted write's data is what rd_data shows when the n-th accepted read pops;
//  * overflow / underflow are exactly "some refused write / read since reset".
// Accepted, from the contract: a read when not empty; a write when not full, or when full
// with a read in the same cycle. Reset may come at any cycle; the first cycle is one.
`default_nettype none
module fifo_formal #(
    parameter width = 2,
    parameter depth = 2
) (
    input wire             clk,
    input wire             reset,
    input wire             wr,
    input wire [width-1:0] wr_data,
    input wire             rd
);
    wire [width-1:0] rd_data;
    wire empty, full, overflow, underflow;

    fifo #(.width(width), .depth(depth)) dut (
        .clk(clk), .reset(reset), .wr(wr), .wr_data(wr_data), .rd(rd),
        .rd_data(rd_data), .empty(empty), .full(full), .overflow(overflow), .underflow(underflow)
    );

    reg [3:0] occupancy = 0;
    reg [3:0] writes = 0, reads = 0;   // accepted since reset
    reg       spec_overflow = 0, spec_underflow = 0;
    (* anyconst *) reg [3:0] n;        // the tracked write
    reg [width-1:0] tracked;
    reg       started = 0;

    wire accept_rd = rd && occupancy != 0;
    wire accept_wr = wr && (occupancy != depth || accept_rd);

    always @(*) begin
        if (!started)
            assume(reset);
        if (started) begin
            assert(occupancy <= depth);
            assert(empty == (occupancy == 0));
            assert(full == (occupancy == depth));
            assert(overflow == spec_overflow);
            assert(underflow == spec_underflow);
            if (accept_rd && reads == n && writes > n)
                assert(rd_data == tracked);
        end
    end

    always @(posedge clk) begin
        started <= 1'b1;
        if (reset) begin
            occupancy <= 0;
            writes <= 0;
            reads <= 0;
            spec_overflow <= 1'b0;
            spec_underflow <= 1'b0;
        end else begin
            occupancy <= occupancy + accept_wr - accept_rd;
            writes <= writes + accept_wr;
            reads <= reads + accept_rd;
            if (accept_wr && writes == n)
                tracked <= wr_data;
            spec_overflow <= spec_overflow | (wr & ~accept_wr);
            spec_underflow <= spec_underflow | (rd & ~accept_rd);
        end
    end
endmodule
`default_nettype wire
