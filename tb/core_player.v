// Replays a program (model/program.py Program.save_hex) into the core at full simulator
// speed, with no Python in the loop, and dumps what the core did for a checker:
//
//   +PROGRAM=<dir>   reads <dir>/inst.hex and <dir>/dxmem.hex (one word per line)
//   +CYCLES=<n>      number of program words
//   +START=<k>       the word where measurement starts (Program.compute_start)
//   writes <dir>/psums.hex    one line per pmem write: the 128-bit psum vector (col7..col0)
//          <dir>/outputs.txt  one line per SFP output: the vector in hex, then the cycle counter
//          <dir>/summary.txt  the cycle counter at START, then cycles, busy cycles and
//                             error flags at the end
`timescale 1ns/1ps
`include "core_inst.vh"
module core_player;
    localparam bw = 4;
    localparam psum_bw = 16;
    localparam row = 8;
    localparam col = 8;
    localparam max_cycles = 1 << 20;

    reg                    clk = 1'b0;
    reg                    reset = 1'b1;
    reg  [`INST_WIDTH-1:0] inst;
    reg  [row*bw-1:0]      D_xmem;
    wire                   ofifo_valid;
    wire [col*psum_bw-1:0] sfp_out;
    wire                   sfp_valid;
    wire [7:0]             errors;
    wire [4:0]             fifo_flags;
    wire [31:0]            cycles, busy;

    core #(.bw(bw), .psum_bw(psum_bw), .row(row), .col(col)) u_core (
        .clk(clk), .reset(reset), .inst(inst), .D_xmem(D_xmem),
        .ofifo_valid(ofifo_valid), .sfp_out(sfp_out), .sfp_valid(sfp_valid),
        .errors(errors), .fifo_flags(fifo_flags), .cycles(cycles), .busy(busy)
    );

    always #5 clk = ~clk;

    reg [`INST_WIDTH-1:0] program_words [0:max_cycles-1];
    reg [row*bw-1:0]      data_words [0:max_cycles-1];
    reg [1023:0]          dir, path;
    integer               n_cycles, start_word, start_counter, k, psum_fd, out_fd, summary_fd, progress;

    // Sample mid-cycle, when the instruction and the core outputs are stable.
    always @(negedge clk) begin
        if (!reset) begin
            if (!u_core.u_pmem.CEN && !u_core.u_pmem.WEN)
                $fwrite(psum_fd, "%h\n", u_core.u_pmem.D);
            if (sfp_valid)
                $fwrite(out_fd, "%h %0d\n", sfp_out, cycles);
        end
    end

    initial begin
        if (!$value$plusargs("PROGRAM=%s", dir) || !$value$plusargs("CYCLES=%d", n_cycles)) begin
            $display("core_player: give +PROGRAM=<dir> and +CYCLES=<n>");
            $finish;
        end
        if (!$value$plusargs("START=%d", start_word))
            start_word = 0;
        if (n_cycles > max_cycles) begin
            $display("core_player: %0d cycles exceed the player's %0d", n_cycles, max_cycles);
            $finish;
        end
        $sformat(path, "%0s/inst.hex", dir);
        $readmemh(path, program_words, 0, n_cycles - 1);
        $sformat(path, "%0s/dxmem.hex", dir);
        $readmemh(path, data_words, 0, n_cycles - 1);
        $sformat(path, "%0s/psums.hex", dir);
        psum_fd = $fopen(path, "w");
        $sformat(path, "%0s/outputs.txt", dir);
        out_fd = $fopen(path, "w");
        if ($test$plusargs("WAVES")) begin
            $dumpfile("core_player.fst");
            $dumpvars(0, core_player);
        end
        // idle word: active-low SRAM enables high
        inst = 0;
        inst[`INST_CEN_XMEM] = 1'b1;
        inst[`INST_WEN_XMEM] = 1'b1;
        inst[`INST_CEN_PMEM] = 1'b1;
        inst[`INST_WEN_PMEM] = 1'b1;
        D_xmem = 0;
        // inputs change 1 ns after the edge, so no simulator races them against the edge
        repeat (3) @(posedge clk);
        #1 reset = 1'b0;
        progress = n_cycles / 10;
        for (k = 0; k < n_cycles; k = k + 1) begin
            @(posedge clk);
            #1;
            inst = program_words[k];
            D_xmem = data_words[k];
            if (k == start_word) begin
                @(negedge clk);
                start_counter = cycles;
            end
            if (progress > 10000 && k % progress == 0 && k > 0)
                $display("core_player: %0d of %0d cycles", k, n_cycles);
        end
        @(posedge clk);
        @(posedge clk);
        $sformat(path, "%0s/summary.txt", dir);
        summary_fd = $fopen(path, "w");
        $fwrite(summary_fd, "start %0d\ncycles %0d\nbusy %0d\nerrors %0d\n", start_counter, cycles, busy, errors);
        $fclose(summary_fd);
        $fclose(psum_fd);
        $fclose(out_fd);
        $finish;
    end
endmodule
