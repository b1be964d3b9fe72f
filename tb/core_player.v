// Replays a program (model/program.py Program.save_hex) into the core at full simulator
// speed, with no Python in the loop, and dumps what the core did for a checker:
//
//   +PROGRAM=<dir>   reads <dir>/inst.hex and <dir>/dxmem.hex (one word per line; a data
//                    word is {D_wmem, D_xmem})
//   +CYCLES=<n>      number of program words
//   +START=<k>       the word where measurement starts (Program.compute_start)
//   +IDLE=<hex>      the idle instruction word (model.hwconfig: active-low enables high)
//   +NOPSUMS         do not dump the pmem writes (psums.hex stays empty)
//   writes <dir>/psums.hex    one line per pmem write: address, psum vector (last column first)
//          <dir>/outputs.txt  one line per SFP output: the vector in hex, the cycle counter, then
//                             sfp_wide in hex (acc_bw bits per lane)
//          <dir>/summary.txt  the cycle counter at START, then cycles, busy cycles and
//                             error flags at the end
//   prints "core_player: playing" (flushed) when the start-up is over and the first cycle begins
`timescale 1ns/1ps
`include "core_inst.vh"
// Parameters: the core's (defaults from core_inst.vh); set row/col to play another array.
module core_player #(
    parameter bw = `CORE_BW,
    parameter psum_bw = `CORE_PSUM_BW,
    parameter acc_bw = `CORE_ACC_BW,
    parameter row = `CORE_ROW,
    parameter col = `CORE_COL,
    parameter fifo_depth = `CORE_FIFO_DEPTH,
    parameter max_cycles = 1 << 21    // program memory, words (tb/player.py MAX_CYCLES sets it)
);
    localparam max_words = max_cycles;
    localparam half_period_ns = 5;
`include "core_top.vh"    // the core, its clock, the program memories, load_program

    reg [8*4096-1:0]      dir;                     // PATH_MAX characters
    reg [8*4160-1:0]      path;
    integer               n_cycles, start_word, start_counter, k, psum_fd, out_fd, summary_fd, progress;
    reg                   dump_psums = 1'b1;

    // Sample mid-cycle, when the instruction and the core outputs are stable.
    always @(negedge clk) begin
        if (!reset) begin
            if (dump_psums && pmem_write)
                $fwrite(psum_fd, "%h %h\n", u_core.u_pmem.A, u_core.u_pmem.D);
            if (sfp_valid)
                $fwrite(out_fd, "%h %0d %h\n", sfp_out, cycles, sfp_wide);
        end
    end

    initial begin
        if (!$value$plusargs("PROGRAM=%s", dir) || !$value$plusargs("CYCLES=%d", n_cycles)) begin
            $display("core_player: give +PROGRAM=<dir> and +CYCLES=<n>");
            $finish;
        end
        if (dir[8*4096-1 -: 8] != 0) begin
            $display("core_player: +PROGRAM is longer than 4095 characters");
            $fatal(1);
        end
        if ($test$plusargs("NOPSUMS"))
            dump_psums = 1'b0;
        if (!$value$plusargs("START=%d", start_word))
            start_word = 0;
        if (n_cycles > max_cycles) begin
            $display("core_player: %0d cycles exceed the player's %0d", n_cycles, max_cycles);
            $finish;
        end
        load_program(dir, n_cycles);
        $sformat(path, "%0s/psums.hex", dir);
        psum_fd = $fopen(path, "w");
        $sformat(path, "%0s/outputs.txt", dir);
        out_fd = $fopen(path, "w");
        if ($test$plusargs("WAVES")) begin
            $dumpfile("core_player.fst");
            $dumpvars(0, core_player);
        end
        if (!$value$plusargs("IDLE=%h", inst)) begin
            $display("core_player: give +IDLE=<idle instruction word in hex>");
            $finish;
        end
        {D_wmem, D_xmem} = 0;
        // start-up is over (process, elaboration, program memory, files): tb/player.py times
        // the simulation from this line
        $display("core_player: playing");
        $fflush;
        // inputs change 1 ns after the edge, so no simulator races them against the edge
        repeat (3) @(posedge clk);
        #1 reset = 1'b0;
        progress = n_cycles / 10;
        for (k = 0; k < n_cycles; k = k + 1) begin
            @(posedge clk);
            #1;
            inst = program_words[k];
            {D_wmem, D_xmem} = data_words[k];
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
