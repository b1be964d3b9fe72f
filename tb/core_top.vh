// The core, its clock and its program memories: what the two top levels that play programs
// into it share (tb/core_harness.v for the cocotb benches, tb/core_player.v standalone).
// The includer declares the parameters bw, psum_bw, acc_bw, row, col, fifo_depth,
// max_words (program memory, words) and half_period_ns (ns), and drives reset, inst,
// D_xmem and D_wmem. The /*verilator public*/ marks are for the cocotb build (tb/core_harness.v says
// why); they keep three signals of the player's Verilator build unoptimized, nothing else.
    reg                    clk = 1'b0;
    reg                    reset /*verilator public_flat_rw*/ = 1'b1;
    reg  [`INST_WIDTH-1:0] inst;
    reg  [row*bw-1:0]      D_xmem;
    reg  [2*row*bw-1:0]    D_wmem;
    wire                   ofifo_valid;
    wire [col*psum_bw-1:0] sfp_out;
    wire                   sfp_valid;
    wire [col*acc_bw-1:0]  sfp_wide;
    wire [`ERR_COUNT-1:0]  errors /*verilator public_flat_rw*/;
    wire [4:0]             fifo_flags;
    wire [31:0]            cycles;
    wire [31:0]            busy /*verilator public_flat_rw*/;

    core #(
        .bw(bw), .psum_bw(psum_bw), .acc_bw(acc_bw), .row(row), .col(col), .fifo_depth(fifo_depth)
    ) u_core (
        .clk(clk), .reset(reset), .inst(inst), .D_xmem(D_xmem), .D_wmem(D_wmem),
        .ofifo_valid(ofifo_valid), .sfp_out(sfp_out), .sfp_valid(sfp_valid), .sfp_wide(sfp_wide),
        .errors(errors), .fifo_flags(fifo_flags), .cycles(cycles), .busy(busy)
    );

    always #(half_period_ns) clk = ~clk;

    // what the recorders sample mid-cycle: a pmem write in this cycle
    wire pmem_write = !u_core.u_pmem.CEN && !u_core.u_pmem.WEN;

    // word k of a program: inst and {D_wmem, D_xmem} of its cycle k (model/program Program.save_hex)
    reg [`INST_WIDTH-1:0] program_words [0:max_words-1];
    reg [3*row*bw-1:0]    data_words [0:max_words-1];
    reg [8*4160-1:0]      load_path;

    // <dir>/inst.hex and <dir>/dxmem.hex, n_load words each, into the program memories
    task load_program(input [8*4096-1:0] dir, input integer n_load);
        begin
            $sformat(load_path, "%0s/inst.hex", dir);
            $readmemh(load_path, program_words, 0, n_load - 1);
            $sformat(load_path, "%0s/dxmem.hex", dir);
            $readmemh(load_path, data_words, 0, n_load - 1);
        end
    endtask
