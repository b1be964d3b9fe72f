// Classic text-vector testbench (pure Verilog, no cocotb): reads the files written by
// `python -m model export --out DIR`, drives the core one instruction word per cycle,
// and prints one match line per output.
//
//   weight-stationary:    +DIR=<dir>            activation_tile0.txt, weight_itile0_otile0_kij*.txt,
//                                               acc_address.txt, out.txt
//   output-stationary:    +DIR=<dir> +OS        activation_os.txt, weight_os.txt, out_os.txt
//
// WS also checks every psum vector as it is written to pmem against psum_kij*.txt.
// Ends with "PASS: n of n outputs match" or "FAIL: ..." and $finish; a watchdog ends a
// run that waits for data that never comes.
`timescale 1ns/1ps
`include "core_inst.vh"
module classic_tb;
    localparam bw = 4;
    localparam psum_bw = 16;
    localparam row = 8;
    localparam col = 8;
    localparam len_kij = 9;
    localparam len_nij = 36;         // 6x6 padded input map
    localparam len_onij = 16;        // 4x4 output map
    localparam len_os_steps = 72;    // 8 input channels x 9 kij
    localparam weight_base = 1024;

    reg                    clk = 1'b0;
    reg                    reset = 1'b1;
    reg  [`INST_WIDTH-1:0] inst;
    reg  [row*bw-1:0]      D_xmem = 0;
    wire                   ofifo_valid;
    wire [col*psum_bw-1:0] sfp_out;
    wire                   sfp_valid;
    wire [7:0]             errors;
    wire [31:0]            cycles, busy;

    core #(.bw(bw), .psum_bw(psum_bw), .row(row), .col(col)) u_core (
        .clk(clk), .reset(reset), .inst(inst), .D_xmem(D_xmem),
        .ofifo_valid(ofifo_valid), .sfp_out(sfp_out), .sfp_valid(sfp_valid),
        .errors(errors), .fifo_flags(), .cycles(cycles), .busy(busy)
    );

    always #5 clk = ~clk;

    localparam watchdog_cycles = 20000;
    initial begin
        #(watchdog_cycles * 10);
        $display("FAIL: timeout after %0d cycles (a vector never arrived)", watchdog_cycles);
        $finish;
    end

    reg [1023:0] dir;
    reg [1023:0] path;
    reg [1023:0] name;
    reg [8*64-1:0] header;
    integer fd, psum_fd, status, i, k, t, n_match, outputs, psum_errors, psums_checked;
    reg [col*psum_bw-1:0] expected_psum;
    reg [col*psum_bw-1:0] expected;
    reg [10:0] acc_addr;

    // ---- instruction helpers: each sets inst for one cycle ----
    function [`INST_WIDTH-1:0] idle;
        input dummy;
        begin
            idle = 0;
            idle[`INST_CEN_XMEM] = 1'b1;
            idle[`INST_WEN_XMEM] = 1'b1;
            idle[`INST_CEN_PMEM] = 1'b1;
            idle[`INST_WEN_PMEM] = 1'b1;
        end
    endfunction

    task tick;
        begin
            @(posedge clk);
            #1;
        end
    endtask

    // Open <dir>/<name> and skip its header lines; a missing file ends the run.
    function integer open_vectors(input [1023:0] name, input integer headers);
        integer f, h, scanned;
        begin
            $sformat(path, "%0s/%0s", dir, name);
            f = $fopen(path, "r");
            if (f == 0) begin
                $display("FAIL: cannot open %0s", path);
                $finish;
            end
            for (h = 0; h < headers; h = h + 1)
                scanned = $fscanf(f, "%s", header);
            open_vectors = f;
        end
    endfunction

    task xmem_write(input [10:0] addr, input [row*bw-1:0] data);
        begin
            inst = idle(0);
            inst[`INST_CEN_XMEM] = 1'b0;
            inst[`INST_WEN_XMEM] = 1'b0;
            inst[`INST_A_XMEM +: 11] = addr;
            D_xmem = data;
            tick;
        end
    endtask

    // Read xmem[addr]; the word is on xmem Q during the next instruction.
    task xmem_read(input [10:0] addr);
        begin
            inst[`INST_CEN_XMEM] = 1'b0;
            inst[`INST_WEN_XMEM] = 1'b1;
            inst[`INST_A_XMEM +: 11] = addr;
        end
    endtask

    task check_output(input integer index, input [col*psum_bw-1:0] want);
        begin
            while (!sfp_valid) tick;
            outputs = outputs + 1;
            if (sfp_out === want) begin
                n_match = n_match + 1;
                $display("output %2d match: %b", index, sfp_out);
            end else begin
                $display("output %2d MISMATCH: got %b expected %b", index, sfp_out, want);
            end
            tick;
        end
    endtask

    task finish;
        begin
            if (errors != 0)
                $display("FAIL: core error flags %b", errors);
            else if (psum_errors != 0)
                $display("FAIL: %0d psum vectors differ", psum_errors);
            else if (n_match == outputs && outputs > 0)
                if (psums_checked > 0)
                    $display("PASS: %0d of %0d outputs match, %0d psum vectors match (%0d cycles since reset)",
                             n_match, outputs, psums_checked, cycles);
                else
                    $display("PASS: %0d of %0d outputs match (%0d cycles since reset)", n_match, outputs, cycles);
            else
                $display("FAIL: %0d of %0d outputs match", n_match, outputs);
            $finish;
        end
    endtask

    // ---- weight-stationary: load per kij, 36 positions, psums to pmem, accumulation pass ----
    task run_ws;
        begin
            fd = open_vectors("activation_tile0.txt", 3);
            for (t = 0; t < len_nij; t = t + 1) begin
                status = $fscanf(fd, "%32b", D_xmem);
                xmem_write(t, D_xmem);
            end
            $fclose(fd);
            for (i = 0; i < len_kij; i = i + 1) begin
                $sformat(name, "weight_itile0_otile0_kij%0d.txt", i);
                fd = open_vectors(name, 3);
                for (t = 0; t < col; t = t + 1) begin
                    status = $fscanf(fd, "%32b", D_xmem);
                    xmem_write(weight_base + i * col + t, D_xmem);
                end
                $fclose(fd);
            end

            for (i = 0; i < len_kij; i = i + 1) begin
                // stage the weights column by column (read, then LOAD next cycle)
                for (t = 0; t <= col; t = t + 1) begin
                    inst = idle(0);
                    if (t < col) xmem_read(weight_base + i * col + t);
                    if (t > 0) begin
                        inst[`INST_LOAD] = 1'b1;
                        inst[`INST_WCOL +: `WCOL_BITS] = t - 1;
                    end
                    tick;
                end
                // activations: read -> L0 -> array, start on the first
                for (t = 0; t < len_nij + 2; t = t + 1) begin
                    inst = idle(0);
                    if (t < len_nij) xmem_read(t);
                    if (t >= 1 && t <= len_nij) inst[`INST_L0_WR] = 1'b1;
                    if (t >= 2) begin
                        inst[`INST_L0_RD] = 1'b1;
                        inst[`INST_EXECUTE] = 1'b1;
                        inst[`INST_START] = (t == 2);
                    end
                    tick;
                end
                // psums: pop each vector as it is ready, store at kij*36 + nij, compare with psum_kij<i>.txt
                $sformat(name, "psum_kij%0d.txt", i);
                psum_fd = open_vectors(name, 3);
                t = 0;
                while (t < len_nij) begin
                    inst = idle(0);
                    if (ofifo_valid) begin
                        status = $fscanf(psum_fd, "%128b", expected_psum);
                        psums_checked = psums_checked + 1;
                        if (u_core.u_corelet.ofifo_data !== expected_psum) begin
                            psum_errors = psum_errors + 1;
                            $display("psum kij %0d nij %0d MISMATCH: got %b expected %b", i, t,
                                     u_core.u_corelet.ofifo_data, expected_psum);
                        end
                        inst[`INST_OFIFO_RD] = 1'b1;
                        inst[`INST_CEN_PMEM] = 1'b0;
                        inst[`INST_WEN_PMEM] = 1'b0;
                        inst[`INST_A_PMEM +: 11] = i * len_nij + t;
                        t = t + 1;
                    end
                    tick;
                end
                $fclose(psum_fd);
            end

            // accumulation pass, addresses from acc_address.txt, outputs against out.txt
            fd = open_vectors("acc_address.txt", 0);
            begin : accumulate
                integer out_fd, o;
                out_fd = open_vectors("out.txt", 3);
                for (o = 0; o < len_onij; o = o + 1) begin
                    for (i = 0; i < len_kij; i = i + 1) begin
                        status = $fscanf(fd, "%11b", acc_addr);
                        inst = idle(0);
                        inst[`INST_CEN_PMEM] = 1'b0;
                        inst[`INST_A_PMEM +: 11] = acc_addr;
                        inst[`INST_ACC] = 1'b1;
                        inst[`INST_ACC_FIRST] = (i == 0);
                        inst[`INST_EMIT] = (i == len_kij - 1);
                        inst[`INST_RELU] = (i == len_kij - 1);
                        tick;
                    end
                    inst = idle(0);
                    status = $fscanf(out_fd, "%128b", expected);
                    check_output(o, expected);
                end
                $fclose(out_fd);
            end
            $fclose(fd);
        end
    endtask

    // OS: activation step s (xmem[s]) into the L0, weight step s (xmem[1024+s]) into the IFIFO
    localparam os_chunk = 32;
    task os_fill(input integer first, input integer count);
        begin
            for (t = 0; t <= 2 * count; t = t + 1) begin
                inst = idle(0);
                inst[`INST_OS] = 1'b1;
                if (t < 2 * count)
                    xmem_read(t % 2 ? weight_base + first + t / 2 : first + t / 2);
                if (t > 0) begin
                    inst[`INST_L0_WR] = (t % 2 == 1);
                    inst[`INST_IFIFO_WR] = (t % 2 == 0);
                end
                tick;
            end
        end
    endtask

    task os_stream(input integer first, input integer count);
        begin
            for (t = 0; t < count; t = t + 1) begin
                inst = idle(0);
                inst[`INST_OS] = 1'b1;
                inst[`INST_L0_RD] = 1'b1;
                inst[`INST_IFIFO_RD] = 1'b1;
                inst[`INST_EXECUTE] = 1'b1;
                inst[`INST_START] = (first + t == 0);
                tick;
            end
        end
    endtask

    // ---- output-stationary: 72 steps through L0 (activations) and IFIFO (weights), drain ----
    task run_os;
        begin : os
            integer out_fd;
            fd = open_vectors("activation_os.txt", 3);
            for (t = 0; t < len_os_steps; t = t + 1) begin
                status = $fscanf(fd, "%32b", D_xmem);
                xmem_write(t, D_xmem);
            end
            $fclose(fd);
            fd = open_vectors("weight_os.txt", 3);
            for (t = 0; t < len_os_steps; t = t + 1) begin
                status = $fscanf(fd, "%32b", D_xmem);
                xmem_write(weight_base + t, D_xmem);
            end
            $fclose(fd);
            // 64-deep FIFOs: fill and stream the steps in chunks; a bubble between chunks
            // is harmless because the L0 and IFIFO pops stay paired
            for (k = 0; k < len_os_steps; k = k + os_chunk) begin
                os_fill(k, (len_os_steps - k < os_chunk) ? len_os_steps - k : os_chunk);
                os_stream(k, (len_os_steps - k < os_chunk) ? len_os_steps - k : os_chunk);
            end
            // let the last products reach the far corner
            inst = idle(0);
            inst[`INST_OS] = 1'b1;
            for (t = 0; t < row + col; t = t + 1) tick;
            // drain: column c shifts c cycles after column 0; bottom row first
            for (t = 0; t < row; t = t + 1) begin
                inst = idle(0);
                inst[`INST_OS] = 1'b1;
                inst[`INST_DRAIN] = 1'b1;
                tick;
            end
            inst = idle(0);
            inst[`INST_OS] = 1'b1;
            for (t = 0; t < col; t = t + 1) tick;
            // pop each drained vector (row 7 first) into the SFP with ReLU, compare with out_os.txt
            out_fd = open_vectors("out_os.txt", 3);
            begin : outputs_os
                reg [col*psum_bw-1:0] want [0:row-1];
                for (i = 0; i < row; i = i + 1)
                    status = $fscanf(out_fd, "%128b", want[i]);
                for (i = row - 1; i >= 0; i = i - 1) begin
                    inst = idle(0);
                    inst[`INST_OFIFO_RD] = 1'b1;
                    inst[`INST_ACC] = 1'b1;
                    inst[`INST_ACC_SRC] = 1'b1;
                    inst[`INST_ACC_FIRST] = 1'b1;
                    inst[`INST_EMIT] = 1'b1;
                    inst[`INST_RELU] = 1'b1;
                    tick;
                    inst = idle(0);
                    check_output(i, want[i]);
                end
            end
            $fclose(out_fd);
        end
    endtask

    initial begin
        inst = idle(0);
        n_match = 0;
        outputs = 0;
        psum_errors = 0;
        psums_checked = 0;
        if (!$value$plusargs("DIR=%s", dir)) begin
            $display("FAIL: give the folder of the exported files with +DIR=<dir>");
            $finish;
        end
        if ($test$plusargs("WAVES")) begin
            $dumpfile("classic_tb.fst");
            $dumpvars(0, classic_tb);
        end
        repeat (3) tick;
        reset = 1'b0;
        tick;
        if ($test$plusargs("OS"))
            run_os;
        else
            run_ws;
        finish;
    end
endmodule
