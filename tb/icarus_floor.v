// The least an ROWS x COLS array can cost Icarus a cycle: each PE reduced to one line of the
// weight-stationary MAC (psum_out <= psum_in + a * w; a_out <= a_in), nothing else: no
// weight load, no OS, no 2-bit mode, no control, no core around it. tb/sim_speed.py
// (icarus_floor) times it in `make bench` next to the real core, and checks the bottom
// row's psums against numpy. Two structures (MEMORIES): 0, a clocked process per PE with
// its registers as signals, as rtl/mac_array.v; 1, one clocked process for the whole
// array with the PE state in memories (vvp reads a memory word without the signal cast).
// The row inputs change every cycle (a counter), as in a busy layer; the weights are fixed.
`default_nettype none
module icarus_floor #(
    parameter ROWS = 8,
    parameter COLS = 8,
    parameter BW = 4,
    parameter PSUM_BW = 16,
    parameter MEMORIES = 0
);
    reg clk = 1'b0;
    reg [31:0] t = 32'd0;
    integer cycles;
    event done;

    always #1 clk = ~clk;
    always @(posedge clk) t <= t + 32'd1;

    // weight of PE (r, c): ((r * COLS + c) * 5 mod 15) - 7, in -7 .. 7
    function integer weight(input integer r, input integer c);
        weight = ((r * COLS + c) * 5) % 15 - 7;
    endfunction

    genvar r, c;
    generate
        if (MEMORIES) begin : g_mem
            reg [BW-1:0] a [0:ROWS*COLS-1];
            reg [PSUM_BW-1:0] psum [0:ROWS*COLS-1];
            reg signed [BW:0] w [0:ROWS*COLS-1];
            integer i, j;
            initial
                for (i = 0; i < ROWS * COLS; i = i + 1) begin
                    a[i] = {BW{1'b0}};
                    psum[i] = {PSUM_BW{1'b0}};
                    w[i] = weight(i / COLS, i % COLS);
                end
            // south-east first: each PE reads its west and north neighbours' old values
            always @(posedge clk)
                for (i = ROWS - 1; i >= 0; i = i - 1)
                    for (j = COLS - 1; j >= 0; j = j - 1) begin
                        a[i*COLS+j] = j ? a[i*COLS+j-1] : t[BW-1:0] + 3 * i;   // row i's activation, as g_west's
                        psum[i*COLS+j] = (i ? $signed(psum[(i-1)*COLS+j]) : 0) + $signed(a[i*COLS+j]) * w[i*COLS+j];
                    end
            always @(done)
                for (j = 0; j < COLS; j = j + 1)
                    $display("psum %0d %0d", j, $signed(psum[(ROWS-1)*COLS+j]));
        end else begin : g_pe
            for (r = 0; r < ROWS; r = r + 1) begin : g_row
                for (c = 0; c < COLS; c = c + 1) begin : g_col
                    localparam integer W = weight(r, c);
                    reg [BW-1:0] a = {BW{1'b0}};
                    reg [PSUM_BW-1:0] psum = {PSUM_BW{1'b0}};
                    wire [BW-1:0] a_in;
                    wire [PSUM_BW-1:0] psum_in;
                    if (c == 0) begin : g_west
                        assign a_in = t[BW-1:0] + 3 * r;   // row r's activation at cycle t
                    end else begin : g_link
                        assign a_in = g_row[r].g_col[c - 1].a;
                    end
                    if (r == 0) begin : g_north
                        assign psum_in = {PSUM_BW{1'b0}};
                    end else begin : g_chain
                        assign psum_in = g_row[r - 1].g_col[c].psum;
                    end
                    always @(posedge clk) begin
                        a <= a_in;
                        psum <= $signed(psum_in) + $signed(a_in) * W;   // all signed: a_in sign-extends
                    end
                    if (r == ROWS - 1) begin : g_south
                        always @(done)
                            $display("psum %0d %0d", c, $signed(psum));
                    end
                end
            end
        end
    endgenerate

    // +cycles=N: simulate N cycles, then print the bottom row's psums ("psum <column> <value>")
    initial begin
        if (!$value$plusargs("cycles=%d", cycles)) begin
            $display("icarus_floor: +cycles=N missing");
            $finish;
        end
        repeat (cycles) @(posedge clk);
        #1 ->done;
        #1 $finish;
    end
endmodule
`default_nettype wire
