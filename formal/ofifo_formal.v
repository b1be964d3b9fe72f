// Bounded proof of rtl/ofifo.v against its contract (make formal; README "Formal"):
//  * all columns pop together or none: a read pops one entry from every column when each
//    holds one (valid) and nothing otherwise; the model keeps one occupancy per column
//    with that single, shared pop;
//  * valid is exactly "every column holds an entry", full exactly "some column is full";
//  * nothing lost or invented per column: for an arbitrary (solver-chosen) column c and
//    write index n, the n-th accepted write into column c is what column c of rd_data shows
//    when the n-th vector pops; an empty column reads zero;
//  * overflow is exactly "some column refused a write since reset", underflow exactly
//    "some read came without a valid vector since reset".
// A column accepts a write when not full, or when full while a vector pops in the same
// cycle (the FIFO contract). Reset may come at any cycle; the first cycle is one.
`default_nettype none
module ofifo_formal #(
    parameter psum_bw = 2,
    parameter col = 2,
    parameter depth = 2
) (
    input wire                   clk,
    input wire                   reset,
    input wire [col-1:0]         wr,
    input wire [col*psum_bw-1:0] wr_data,
    input wire                   rd
);
    wire [col*psum_bw-1:0] rd_data;
    wire valid, full, overflow, underflow;

    ofifo #(.psum_bw(psum_bw), .col(col), .depth(depth)) dut (
        .clk(clk), .reset(reset), .wr(wr), .wr_data(wr_data), .rd(rd),
        .rd_data(rd_data), .valid(valid), .full(full), .overflow(overflow), .underflow(underflow)
    );

    reg       spec_overflow = 0, spec_underflow = 0;
    reg [3:0] pops = 0;                // vectors popped since reset
    (* anyconst *) reg [3:0] n;        // the tracked write ...
    (* anyconst *) reg [$clog2(col)-1:0] c;  // ... into this column
    reg [psum_bw-1:0] tracked;
    reg       started = 0;

    wire [col-1:0] has_entry, is_full, accept_wr;
    wire [col*4-1:0] writes;           // accepted into each column since reset
    wire pop = rd && &has_entry;

    genvar k;
    generate
        for (k = 0; k < col; k = k + 1) begin : g_col
            reg [3:0] occupancy = 0;
            reg [3:0] accepted = 0;
            assign has_entry[k] = occupancy != 0;
            assign is_full[k] = occupancy == depth;
            assign accept_wr[k] = wr[k] && (!is_full[k] || pop);
            assign writes[k*4 +: 4] = accepted;
            always @(posedge clk) begin
                if (reset) begin
                    occupancy <= 0;
                    accepted <= 0;
                end else begin
                    occupancy <= occupancy + accept_wr[k] - pop;
                    accepted <= accepted + accept_wr[k];
                end
            end
        end
    endgenerate

    wire [psum_bw-1:0] rd_c = rd_data[c*psum_bw +: psum_bw];
    wire [3:0]         writes_c = writes[c*4 +: 4];

    always @(*) begin
        assume(c < col);
        if (!started)
            assume(reset);
        if (started) begin
            assert(valid == &has_entry);
            assert(full == |is_full);
            assert(overflow == spec_overflow);
            assert(underflow == spec_underflow);
            if (!has_entry[c])
                assert(rd_c == 0);
            if (pop && pops == n && writes_c > n)
                assert(rd_c == tracked);
        end
    end

    always @(posedge clk) begin
        started <= 1'b1;
        if (reset) begin
            pops <= 0;
            spec_overflow <= 1'b0;
            spec_underflow <= 1'b0;
        end else begin
            pops <= pops + pop;
            if (accept_wr[c] && writes_c == n)
                tracked <= wr_data[c*psum_bw +: psum_bw];
            spec_overflow <= spec_overflow | |(wr & ~accept_wr);
            spec_underflow <= spec_underflow | (rd & ~pop);
        end
    end
endmodule
`default_nettype wire
