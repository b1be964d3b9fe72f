// The cocotb layer benches' top level: `core` with its clock, reset, program player and
// result recorders in HDL, so Python wakes once per program, not once per cycle
// (tb/core_tb.py, CoreTB, drives it).
//
// Per program, Python writes program<prog_index>/inst.hex and dxmem.hex ({D_wmem, D_xmem}; Program.save_hex)
// in the simulator's working directory, sets prog_index, n_words and start_word, and
// raises go. The player (a clocked state machine) loads both files and plays word k on
// `inst` during cycle k (set by rising edge k, like a register), then idles two cycles so
// the last writes land, and raises done (go low lowers it). Meanwhile the recorders append,
// sampled mid-cycle (falling edge) when the inputs are stable, every field in hex (%h: in
// its bus's digits, so every line of a file is alike and Python reads a file in one go;
// {$time}: Icarus prints a bare $time without leading zeros):
//   program<k>/psums.txt    per pmem write:  time (ns), pmem address, the psum vector
//   program<k>/outputs.txt  per SFP output:  time (ns), the cycle counter, the vector,
//                           sfp_wide (acc_bw bits per lane)
// start_counter holds the core's cycle counter in the cycle of word start_word.
// What Python reads or writes is marked /*verilator public...*/: the Verilator build leaves
// out cocotb's --public-flat-rw, which would keep every signal of the core unoptimized
// (tb/runner.py, HarnessVerilator).
`timescale 1ns/1ps
`include "core_inst.vh"
`default_nettype none
module core_harness #(
    parameter bw /*verilator public*/ = `CORE_BW,
    parameter psum_bw /*verilator public*/ = `CORE_PSUM_BW,
    parameter acc_bw /*verilator public*/ = `CORE_ACC_BW,
    parameter row /*verilator public*/ = `CORE_ROW,
    parameter col /*verilator public*/ = `CORE_COL,
    parameter fifo_depth /*verilator public*/ = `CORE_FIFO_DEPTH,
    parameter max_words /*verilator public*/ = 1 << 16,      // longest program the player holds
    parameter half_period_ns = 5
) ();
`include "core_top.vh"    // the core, its clock, the program memories, load_program

    // written by Python before go
    reg        go /*verilator public_flat_rw*/ = 1'b0;
    reg [31:0] prog_index /*verilator public_flat_rw*/ = 0;
    reg [31:0] n_words /*verilator public_flat_rw*/ = 0;
    reg [31:0] start_word /*verilator public_flat_rw*/ = 0;
    // read by Python after done
    reg        done /*verilator public_flat_rw*/ = 1'b0;
    reg [31:0] start_counter /*verilator public_flat_rw*/ = 0;
    reg [31:0] pc = 0;             // the word on inst (for the waveform)

    reg [8*4096-1:0]      path;
    reg                   recording = 1'b0;
    integer               psum_fd, out_fd;

    // idle word: active-low SRAM enables high (an all-zero word would write the SRAMs)
    function [`INST_WIDTH-1:0] idle_word(input dummy);
        begin
            idle_word = {`INST_WIDTH{1'b0}};
            idle_word[`INST_CEN_XMEM] = 1'b1;
            idle_word[`INST_WEN_XMEM] = 1'b1;
            idle_word[`INST_CEN_PMEM] = 1'b1;
            idle_word[`INST_WEN_PMEM] = 1'b1;
            idle_word[`INST_CEN_WMEM] = 1'b1;
            idle_word[`INST_WEN_WMEM] = 1'b1;
        end
    endfunction

    // Reset and player are clocked processes, so `inst` changes exactly like a register's
    // output in every simulator (Verilator resumed an initial block's @(posedge clk) out
    // of step with the core's flops).
    localparam [1:0] WAIT_GO = 2'd0, PLAY = 2'd1, TAIL = 2'd2, WAIT_RELEASE = 2'd3;
    reg [1:0] state = WAIT_GO;
    reg [1:0] tail = 2'd0;
    reg       at_start = 1'b0;     // inst holds word start_word

    reg [1:0] reset_cycles = 2'd0;
    initial begin
        inst = idle_word(1'b0);
        {D_wmem, D_xmem} = {3*row*bw{1'b0}};
    end
    always @(posedge clk) begin     // reset for the first 3 rising edges
        if (reset_cycles == 2'd2)
            reset <= 1'b0;
        else
            reset_cycles <= reset_cycles + 2'd1;
    end

    always @(posedge clk) begin
        at_start <= 1'b0;
        case (state)
            WAIT_GO:
                if (go && !reset) begin
                    if (n_words > max_words) begin
                        $display("core_harness: a program of %0d words exceeds max_words = %0d", n_words, max_words);
                        $finish;
                    end
                    $sformat(path, "program%0d", prog_index);
                    load_program(path, n_words);
                    $sformat(path, "program%0d/psums.txt", prog_index);
                    psum_fd = $fopen(path, "w");
                    $sformat(path, "program%0d/outputs.txt", prog_index);
                    out_fd = $fopen(path, "w");
                    recording <= 1'b1;
                    pc <= 0;
                    state <= PLAY;
                end
            PLAY: begin
                inst <= program_words[pc];
                {D_wmem, D_xmem} <= data_words[pc];
                at_start <= pc == start_word;
                pc <= pc + 1;
                if (pc + 1 == n_words)
                    state <= TAIL;
                tail <= 2'd0;
            end
            TAIL: begin     // idle words, two more cycles, so the last writes land
                inst <= idle_word(1'b0);
                {D_wmem, D_xmem} <= {3*row*bw{1'b0}};
                tail <= tail + 2'd1;
                if (tail == 2'd2) begin
                    recording <= 1'b0;
                    $fclose(psum_fd);
                    $fclose(out_fd);
                    done <= 1'b1;
                    state <= WAIT_RELEASE;
                end
            end
            WAIT_RELEASE:
                if (!go) begin
                    done <= 1'b0;
                    state <= WAIT_GO;
                end
        endcase
    end

    always @(negedge clk) begin
        if (at_start)
            start_counter <= cycles;
        if (recording) begin
            if (pmem_write)
                $fwrite(psum_fd, "%h %h %h\n", {$time}, u_core.u_pmem.A, u_core.u_pmem.D);
            if (sfp_valid)
                $fwrite(out_fd, "%h %h %h %h\n", {$time}, cycles, sfp_out, sfp_wide);
        end
    end
endmodule
`default_nettype wire
