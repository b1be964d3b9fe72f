// Classic text-vector testbench (pure Verilog, no cocotb): reads the files written by
// `python -m model export --out DIR`, drives the core one instruction word per cycle,
// and prints one match line per output.
//
//   weight-stationary:    +DIR=<dir>            activation_tile0.txt, weight_itile0_otile0_kij*.txt,
//                                               out.txt; optional: psum_kij*.txt, acc_address.txt
//   output-stationary:    +DIR=<dir> +OS        activation_os.txt, weight_os.txt, out_os.txt
//   course part 2 (WS):   +DIR=<dir> +A2        the array's 2-bit mode: activation_tile0.txt holds
//                                               2 x row 2-bit lanes, the weight files 2 x row 4-bit
//                                               lanes (two weights per PE)
//   +OTILE=<o> (WS):      the files of output-channel tile o of a multi-tile export:
//                         weight_itile0_otile<o>_kij*.txt, psum_itile0_otile<o>_kij*.txt,
//                         out_otile<o>.txt
//   +GROUP=<g> (OS):      pixel group g (output pixels 8g..8g+7) of an export with more than
//                         row output pixels: activation_os_group<g>.txt, and with +OTILE=<o>
//                         weight_os_otile<o>.txt; the expected outputs out_os_group<g>_otile<o>.txt
//                         (group 0 of oc tile 0 keeps the classic names; model/vectors.py
//                         os_file_names)
//
// Every file is read and checked line by line before the run, with the rules of the
// Python readers (model/vectors.py): leading lines starting with '#' are headers (any
// number, none included); then exactly the expected number of data lines, each lanes x
// bits characters of 0/1, ending in '\n' (CRLF and trailing whitespace are refused).
// A bad file ends the run at once with "FAIL: <file>:<line>: <reason>".
// WS checks every psum vector as it is written to pmem against psum_kij*.txt when those
// files are there (all nine, or none: then the report says psums were not checked);
// without acc_address.txt the accumulation addresses come from the layer geometry.
// Ends with "PASS: ..." and $finish (exit status 0), or "FAIL: ..." naming the first
// differing file:line, then $fatal (exit status 1). A watchdog ends a run that waits for
// data that never comes.
//
// Widths are parameters (defaults: the project's 8x8 array of 4-bit operands, 16-bit
// psums), e.g. for files exported with --psum-bw 20: iverilog -Pclassic_tb.psum_bw=20.
`timescale 1ns/1ps
`include "core_inst.vh"
module classic_tb #(
    parameter row = `CORE_ROW,                // activation lanes (input channels) per line
    parameter col = `CORE_COL,                // psum / output lanes (output channels) per line
    parameter bw = `CORE_BW,                 // bits per activation / weight lane
    parameter psum_bw = `CORE_PSUM_BW,           // bits per psum / output lane
    parameter acc_bw = `CORE_ACC_BW,            // SFP accumulator bits (>= psum_bw)
    parameter addr_bw = `ADDR_BITS,   // bits per acc_address.txt line (pmem address)
    parameter out_h = 4,              // output map (stride 1, padding 1, 3x3)
    parameter out_w = 4
);
    localparam len_kij = 9;
    localparam len_nij = (out_h + 2) * (out_w + 2);  // padded input map
    localparam len_onij = out_h * out_w;
    localparam len_acc = len_kij * len_onij;
    localparam len_os_steps = row * len_kij;         // input channels x kij
    localparam weight_base = 1 << (`ADDR_BITS - 1);  // xmem: activations at 0.., weights above
    localparam path_chars = 4096;                    // PATH_MAX on Linux
    localparam act_bits = row * bw;
    localparam psum_bits = col * psum_bw;
    localparam line_bits = psum_bits > act_bits ? (psum_bits > addr_bw ? psum_bits : addr_bw)
                                                : (act_bits > addr_bw ? act_bits : addr_bw);
    localparam line_chars = line_bits + 2;           // the longest data line, '\r' or ' ', '\n'
    localparam max_lines = len_kij * len_nij > len_acc ? len_kij * len_nij : len_acc;

    reg                    clk = 1'b0;
    reg                    reset = 1'b1;
    reg  [`INST_WIDTH-1:0] inst;
    reg  [act_bits-1:0]    D_xmem = 0;
    wire                   ofifo_valid;
    wire [psum_bits-1:0]   sfp_out;
    wire                   sfp_valid;
    wire [7:0]             errors;
    wire [31:0]            cycles, busy;

    wire [psum_bits-1:0]   ofifo_data;             // the psum vector the OFIFO takes

    // A psum width the core cannot build with fails here, in one error line, the core left
    // out: mac.v would refuse a narrow one once per MAC (128 lines), an absurd one fails both
    // sfp.v's and corelet.v's checks. corelet.v's own check names a width just too narrow for
    // the WS column sums (model/hwconfig.py psum_bw_range).
    generate
        if (psum_bw <= 2 * bw + 1 || psum_bw > acc_bw) begin : g_bad_psum_bw
            classic_tb_parameter_error_psum_bw_must_exceed_2_bw_plus_1_and_fit_acc_bw bad_parameter();
        end else begin : g_core
            core #(.bw(bw), .psum_bw(psum_bw), .acc_bw(acc_bw), .row(row), .col(col)) u_core (
                .clk(clk), .reset(reset), .inst(inst), .D_xmem(D_xmem), .D_wmem({2*row*bw{1'b0}}),
                .ofifo_valid(ofifo_valid), .sfp_out(sfp_out), .sfp_valid(sfp_valid),
                .errors(errors), .fifo_flags(), .cycles(cycles), .busy(busy)
            );
            assign ofifo_data = u_core.u_corelet.ofifo_data;
        end
    endgenerate

    always #5 clk = ~clk;

    localparam watchdog_cycles = 20000;
    initial begin
        #(watchdog_cycles * 10);
        $display("FAIL: timeout after %0d cycles (a vector never arrived)", watchdog_cycles);
        $fatal(1, "classic_tb: FAIL");
    end

    reg [8*path_chars-1:0]    dir;
    reg [8*(path_chars+64)-1:0] path;
    reg [8*64-1:0]            name;
    reg [8*160-1:0]           reason;
    integer i, k, t, n_match, outputs, psum_errors, psums_checked;

    // the first mismatch seen (file:line), for the verdict
    reg [8*(path_chars+64)-1:0] first_path;
    integer first_line;

    // ---- the loaded files ----
    reg [line_bits-1:0] vec [0:max_lines-1];         // the last file read, line j = data line j
    integer n_headers;                               // its header lines
    reg [act_bits-1:0]  act [0:len_os_steps > len_nij ? len_os_steps - 1 : len_nij - 1];
    reg [act_bits-1:0]  wgt [0:len_os_steps > 2 * len_kij * col ? len_os_steps - 1 : 2 * len_kij * col - 1];
    reg [psum_bits-1:0] psum_want [0:len_kij * len_nij - 1];
    integer             psum_headers [0:len_kij - 1];
    reg [addr_bw-1:0]   acc_addr [0:len_acc - 1];
    reg [psum_bits-1:0] out_want [0:len_onij - 1];
    integer             out_headers;
    reg                 have_psums, have_acc;
    // +A2: 2-bit mode (two 2-bit activations per lane, two weights per PE); +OTILE=<o>
    reg                 a2;
    integer             otile;                        // -1: the single-tile names
    integer             group;                        // OS pixel group (+GROUP, default 0)
    integer             halves;                       // weight words (LOADs) per column: 1 or 2

    // file names of kij i (the single-tile or the oc tile's)
    task psum_name(input integer i);
        if (otile < 0) $sformat(name, "psum_kij%0d.txt", i);
        else $sformat(name, "psum_itile0_otile%0d_kij%0d.txt", otile, i);
    endtask

    task fail_file(input integer line);
        begin
            $display("FAIL: %0s:%0d: %0s", path, line, reason);
            $fatal(1, "classic_tb: FAIL");
        end
    endtask

    // One line of the open file fd: its length (without '\n'), first and last character.
    // A line longer than the buffer is read to its end, so its true length is reported.
    // $fgets shows a chunk only up to a NUL byte (a C string ends there), so each chunk's
    // bytes are counted with $ftell too: more bytes than shown mean a NUL (nul_column, the
    // first one's; last_char is then read back with $fgetc). read_error: the file cannot be read
    // (read_error_text, e.g. a directory), told apart from its end by $feof.
    reg [8*line_chars-1:0] text;
    reg [63:0] line_len;                             // a line of 2**31 characters or more too
    integer got, c, pos, taken, nul_column, error;
    reg [7:0] first_char, last_char;
    reg       at_eof, newline, read_error;
    reg [8*80-1:0] read_error_text;
    task read_line(input integer fd);
        begin
            line_len = 0;
            at_eof = 1'b0;
            first_char = 0;
            last_char = 0;
            nul_column = 0;
            begin : chunks
                forever begin
                    pos = $ftell(fd);
                    got = $fgets(text, fd);
                    error = $ferror(fd, read_error_text);     // before $ftell, which clears it
                    taken = $ftell(fd) - pos;
                    if (line_len == 0 && got > 0) first_char = text[8 * got - 1 -: 8];
                    if (taken > got) begin             // a NUL byte in this chunk
                        if (nul_column == 0) nul_column = line_len + got + 1;
                        // $fgets showed the chunk up to the NUL: its last bytes ('\n'? before it a
                        // '\r' or a space?) are read back, seeking from the chunk's end (relative:
                        // $ftell is 32-bit). It stops at '\n', a full buffer or the end of the file.
                        c = $fseek(fd, -1, 1);
                        last_char = $fgetc(fd);
                        newline = last_char == "\n";
                        if (newline) begin
                            c = $fseek(fd, -2, 1);
                            last_char = $fgetc(fd);
                            c = $fseek(fd, 1, 1);
                        end
                        line_len = line_len + taken - newline;
                        if (newline || taken < line_chars) disable chunks;
                    end else begin
                        if (got == 0) begin
                            at_eof = (line_len == 0);
                            read_error = !$feof(fd) && error != 0;
                            disable chunks;
                        end
                        if (text[7:0] == "\n") begin
                            line_len = line_len + got - 1;
                            if (got > 1) last_char = text[15:8];
                            disable chunks;
                        end
                        line_len = line_len + got;
                        last_char = text[7:0];
                        if (got < line_chars) disable chunks;    // last line without '\n'
                    end
                end
            end
        end
    endtask

    // Read <dir>/<file>: headers, then exactly n_lines data lines of lanes x width bits
    // into vec[]. A missing optional file sets found = 0; every other problem ends the run.
    task load(input [8*64-1:0] file, input integer lanes, input integer width,
              input integer n_lines, input optional, output found);
        integer fd, line, n_data, length, j, nl, shown;
        reg [line_bits-1:0] v;
        begin
            $sformat(path, "%0s/%0s", dir, file);
            fd = $fopen(path, "r");
            found = fd != 0;
            if (fd == 0) begin
                // Icarus's $ferror(0, ...) gives the errno of the failed $fopen: a missing file
                // (ENOENT, 2) is told from one that cannot be opened, as model/vectors.py does
                error = $ferror(0, read_error_text);
                if (error != 2) begin
                    $sformat(reason, "cannot read: %0s", read_error_text);
                    fail_file(0);
                end
                if (!optional) begin
                    reason = "file not found";
                    fail_file(0);
                end
            end
            if (fd != 0) begin
                length = lanes * width;
                line = 0;
                n_data = 0;
                n_headers = 0;
                read_error = 1'b0;
                read_line(fd);
                while (!at_eof) begin
                    line = line + 1;
                    if (first_char == "#" && n_data == 0) begin
                        n_headers = n_headers + 1;
                    end else begin
                        if (n_data == n_lines)
                            $sformat(reason, "extra line after the %0d expected data lines", n_lines);
                        else if (first_char == "#")
                            reason = "comment line among the data lines";
                        else if (line_len == 0)
                            $sformat(reason, "empty line, expected %0d characters (%0d lanes x %0d bits)",
                                     length, lanes, width);
                        else if (last_char == 8'd13)       // '\r': Verilog-2005 has no such escape
                            reason = "carriage return (CRLF line ending)";
                        else if (last_char == " " || last_char == 8'd9)
                            reason = "trailing whitespace";
                        else if (line_len != length)
                            $sformat(reason, "line length %0d, expected %0d characters (%0d lanes x %0d bits)",
                                     line_len, length, lanes, width);
                        else
                            reason = "";
                        if (reason != "") fail_file(line);
                        v = 0;
                        // a valid line fits one chunk, the characters before a NUL byte too
                        shown = nul_column != 0 ? nul_column - 1 : length;
                        nl = nul_column == 0 && text[7:0] == "\n";
                        for (j = 0; j < length; j = j + 1) begin
                            c = j < shown ? text[8 * (shown - 1 - j + nl) +: 8] : 0;
                            if (c != "0" && c != "1") begin
                                if (c >= 32 && c < 127)
                                    $sformat(reason, "non-binary character '%c' at column %0d", c[7:0], j + 1);
                                else
                                    $sformat(reason, "non-binary character '\\x%h' at column %0d", c[7:0], j + 1);
                                fail_file(line);
                            end
                            v[length - 1 - j] = (c == "1");
                        end
                        vec[n_data] = v;
                        n_data = n_data + 1;
                    end
                    read_line(fd);
                end
                $fclose(fd);
                if (read_error) begin
                    if (read_error_text == "Is a directory")
                        reason = "is a directory, not a file";
                    else
                        $sformat(reason, "cannot read: %0s", read_error_text);
                    fail_file(0);
                end
                if (n_data < n_lines) begin
                    $sformat(reason, "expected %0d data lines, file ends after %0d", n_lines, n_data);
                    fail_file(line + 1);
                end
            end
        end
    endtask

    // ---- instruction helpers: each sets inst for one cycle ----
    function [`INST_WIDTH-1:0] idle;
        input dummy;
        begin
            idle = 0;
            idle[`INST_CEN_XMEM] = 1'b1;
            idle[`INST_WEN_XMEM] = 1'b1;
            idle[`INST_CEN_PMEM] = 1'b1;
            idle[`INST_WEN_PMEM] = 1'b1;
            idle[`INST_CEN_WMEM] = 1'b1;    // the classic flow leaves wmem off (and WSRC 0)
            idle[`INST_WEN_WMEM] = 1'b1;
        end
    endfunction

    task tick;
        begin
            @(posedge clk);
            #1;
        end
    endtask

    task xmem_write(input [`ADDR_BITS-1:0] addr, input [act_bits-1:0] data);
        begin
            inst = idle(0);
            inst[`INST_CEN_XMEM] = 1'b0;
            inst[`INST_WEN_XMEM] = 1'b0;
            inst[`INST_A_XMEM +: `ADDR_BITS] = addr;
            D_xmem = data;
            tick;
        end
    endtask

    // Read xmem[addr]; the word is on xmem Q during the next instruction.
    task xmem_read(input [`ADDR_BITS-1:0] addr);
        begin
            inst[`INST_CEN_XMEM] = 1'b0;
            inst[`INST_WEN_XMEM] = 1'b1;
            inst[`INST_A_XMEM +: `ADDR_BITS] = addr;
        end
    endtask

    // A mismatch at <dir>/<file>:<line>; the first one names the verdict.
    task mismatch(input [8*64-1:0] file, input integer line);
        begin
            if (first_line == 0) begin
                $sformat(first_path, "%0s/%0s", dir, file);
                first_line = line;
            end
        end
    endtask

    task check_output(input integer index, input [psum_bits-1:0] got_out, input [psum_bits-1:0] want,
                      input [8*64-1:0] file, input integer line);
        begin
            outputs = outputs + 1;
            if (got_out === want) begin
                n_match = n_match + 1;
                $display("output %2d match: %b", index, got_out);
            end else begin
                $display("output %2d MISMATCH (%0s:%0d): got %b expected %b", index, file, line, got_out, want);
                mismatch(file, line);
            end
        end
    endtask

    task finish;
        reg [8*96-1:0] psum_note;
        begin
            if (psums_checked > 0)
                $sformat(psum_note, ", %0d psum vectors match", psums_checked - psum_errors);
            else if (!$test$plusargs("OS"))
                psum_note = ", psums not checked (no psum_kij*.txt)";
            else
                $sformat(psum_note, ", OS pixel group %0d of oc tile %0d", group, otile < 0 ? 0 : otile);
            if (errors != 0) begin
                $display("FAIL: core error flags %b", errors);
                $fatal(1, "classic_tb: FAIL");
            end else if (first_line != 0) begin
                $display("FAIL: %0s:%0d: first differing line; %0d of %0d outputs match, %0d psum vectors differ",
                         first_path, first_line, n_match, outputs, psum_errors);
                $fatal(1, "classic_tb: FAIL");
            end else if (outputs == 0) begin
                $display("FAIL: no output was checked");
                $fatal(1, "classic_tb: FAIL");
            end else begin
                $display("PASS: %0d of %0d outputs match%0s (%0d cycles since reset)",
                         n_match, outputs, psum_note, cycles);
                $finish;
            end
        end
    endtask

    // ---- weight-stationary: every file first, then load per kij, psums to pmem, accumulation ----
    task load_ws;
        reg found;
        begin
            // 2-bit: channel j in bits 2j+1:2j, the xmem word of the 2-bit mode as it is
            load("activation_tile0.txt", halves * row, bw / halves, len_nij, 0, found);
            for (t = 0; t < len_nij; t = t + 1) act[t] = vec[t];
            for (i = 0; i < len_kij; i = i + 1) begin
                $sformat(name, "weight_itile0_otile%0d_kij%0d.txt", otile < 0 ? 0 : otile, i);
                load(name, halves * row, bw, col, 0, found);
                // 2-bit: column t's word h holds channels h*row .. h*row+row-1 (LOAD column h*col+t)
                for (t = 0; t < halves * col; t = t + 1)
                    wgt[i * halves * col + t] = vec[t % col][(t / col) * act_bits +: act_bits];
            end
            // psum files come as a set: all nine, or none
            for (i = 0; i < len_kij; i = i + 1) begin
                psum_name(i);
                load(name, col, psum_bw, len_nij, 1, found);
                if (i == 0) have_psums = found;
                if (found != have_psums) begin
                    // name the missing file
                    psum_name(found ? i : 0);
                    $sformat(reason, "file not found (%0s exists: the psum files come as a set of %0d)",
                             name, len_kij);
                    if (found) begin
                        psum_name(0);
                        $sformat(path, "%0s/%0s", dir, name);
                    end
                    fail_file(0);
                end
                psum_headers[i] = n_headers;
                for (t = 0; t < len_nij; t = t + 1) psum_want[i * len_nij + t] = vec[t];
            end
            load("acc_address.txt", 1, addr_bw, len_acc, 1, have_acc);
            for (t = 0; t < len_acc; t = t + 1)
                // o_nij-major, then kij: psum (kij, nij) of output pixel o_nij is at kij * len_nij + nij
                acc_addr[t] = have_acc ? vec[t][addr_bw-1:0]
                    : (t % len_kij) * len_nij + (t / len_kij / out_w) * (out_w + 2) + (t / len_kij) % out_w
                      + (t % len_kij / 3) * (out_w + 2) + (t % len_kij) % 3;
            if (otile < 0) name = "out.txt";
            else $sformat(name, "out_otile%0d.txt", otile);
            load(name, col, psum_bw, len_onij, 0, found);
            out_headers = n_headers;
            for (t = 0; t < len_onij; t = t + 1) out_want[t] = vec[t];
        end
    endtask

    task run_ws;
        begin
            load_ws;
            if (!have_psums) $display("note: no psum_kij*.txt: psums are not checked");
            if (!have_acc) $display("note: no acc_address.txt: accumulation addresses from the %0dx%0d layer", out_h, out_w);
            for (t = 0; t < len_nij; t = t + 1) xmem_write(t, act[t]);
            for (t = 0; t < len_kij * halves * col; t = t + 1) xmem_write(weight_base + t, wgt[t]);

            for (i = 0; i < len_kij; i = i + 1) begin
                // stage the weights column by column (read, then LOAD next cycle; 2-bit mode:
                // LOAD column c stages the lower rows' weight pairs, col + c the upper rows')
                for (t = 0; t <= halves * col; t = t + 1) begin
                    inst = idle(0);
                    if (t < halves * col) xmem_read(weight_base + i * halves * col + t);
                    if (t > 0) begin
                        inst[`INST_LOAD] = 1'b1;
                        inst[`INST_WCOL +: `WCOL_BITS] = t - 1;
                        inst[`INST_ACT2] = a2;
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
                        inst[`INST_ACT2] = a2;
                    end
                    tick;
                end
                // psums: pop each vector as it is ready, store at kij*len_nij + nij, compare with psum_kij<i>.txt
                t = 0;
                while (t < len_nij) begin
                    inst = idle(0);
                    if (ofifo_valid) begin
                        if (have_psums) begin
                            psums_checked = psums_checked + 1;
                            if (ofifo_data !== psum_want[i * len_nij + t]) begin
                                psum_errors = psum_errors + 1;
                                psum_name(i);
                                $display("psum kij %0d nij %0d MISMATCH (%0s:%0d): got %b expected %b", i, t,
                                         name, psum_headers[i] + t + 1, ofifo_data,
                                         psum_want[i * len_nij + t]);
                                mismatch(name, psum_headers[i] + t + 1);
                            end
                        end
                        inst[`INST_OFIFO_RD] = 1'b1;
                        inst[`INST_CEN_PMEM] = 1'b0;
                        inst[`INST_WEN_PMEM] = 1'b0;
                        inst[`INST_A_PMEM +: `ADDR_BITS] = i * len_nij + t;
                        t = t + 1;
                    end
                    tick;
                end
            end

            // accumulation pass: the nine addresses of each output pixel, outputs against out.txt
            for (k = 0; k < len_onij; k = k + 1) begin
                for (i = 0; i < len_kij; i = i + 1) begin
                    inst = idle(0);
                    inst[`INST_CEN_PMEM] = 1'b0;
                    inst[`INST_A_PMEM +: `ADDR_BITS] = acc_addr[k * len_kij + i];
                    inst[`INST_ACC] = 1'b1;
                    inst[`INST_ACC_FIRST] = (i == 0);
                    inst[`INST_EMIT] = (i == len_kij - 1);
                    inst[`INST_RELU] = (i == len_kij - 1);
                    tick;
                end
                inst = idle(0);
                while (!sfp_valid) tick;
                if (otile < 0) name = "out.txt";
                else $sformat(name, "out_otile%0d.txt", otile);
                check_output(k, sfp_out, out_want[k], name, out_headers + k + 1);
                tick;
            end
        end
    endtask

    // OS: activation step s (xmem[s]) into the L0, weight step s (xmem[weight_base+s]) into the IFIFO
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

    // ---- output-stationary: len_os_steps steps through L0 (activations) and IFIFO (weights), drain ----
    task run_os;
        reg found;
        reg [psum_bits-1:0] got_os [0:row-1];
        reg [8*64-1:0] out_name;
        begin
            // the names of model/vectors.py os_file_names
            if (group == 0) name = "activation_os.txt";
            else $sformat(name, "activation_os_group%0d.txt", group);
            load(name, row, bw, len_os_steps, 0, found);
            for (t = 0; t < len_os_steps; t = t + 1) act[t] = vec[t];
            if (otile <= 0) name = "weight_os.txt";
            else $sformat(name, "weight_os_otile%0d.txt", otile);
            load(name, col, bw, len_os_steps, 0, found);
            for (t = 0; t < len_os_steps; t = t + 1) wgt[t] = vec[t];
            if (group == 0 && otile <= 0) out_name = "out_os.txt";
            else $sformat(out_name, "out_os_group%0d_otile%0d.txt", group, otile < 0 ? 0 : otile);
            load(out_name, col, psum_bw, row, 0, found);
            out_headers = n_headers;
            for (t = 0; t < row; t = t + 1) out_want[t] = vec[t];

            for (t = 0; t < len_os_steps; t = t + 1) xmem_write(t, act[t]);
            for (t = 0; t < len_os_steps; t = t + 1) xmem_write(weight_base + t, wgt[t]);
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
            // pop each drained vector (row row-1 first) into the SFP with ReLU
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
                while (!sfp_valid) tick;
                got_os[i] = sfp_out;
                tick;
            end
            // compared in file order, so the verdict names the first differing line
            for (i = 0; i < row; i = i + 1)
                check_output(i, got_os[i], out_want[i], out_name, out_headers + i + 1);
        end
    endtask

    initial begin
        inst = idle(0);
        n_match = 0;
        outputs = 0;
        psum_errors = 0;
        psums_checked = 0;
        first_line = 0;
        have_psums = 1'b0;
        have_acc = 1'b0;
        a2 = $test$plusargs("A2");
        halves = a2 ? 2 : 1;
        if (!$value$plusargs("OTILE=%d", otile)) otile = -1;
        if (!$value$plusargs("GROUP=%d", group)) group = 0;
        if (otile < -1) begin
            $display("FAIL: +OTILE must be 0 or more, got %0d", otile);
            $fatal(1, "classic_tb: FAIL");
        end
        if (group < 0) begin
            $display("FAIL: +GROUP must be 0 or more, got %0d", group);
            $fatal(1, "classic_tb: FAIL");
        end
        if (group != 0 && !$test$plusargs("OS")) begin
            $display("FAIL: +GROUP (an OS pixel group) needs +OS");
            $fatal(1, "classic_tb: FAIL");
        end
        dir = 0;
        if (!$value$plusargs("DIR=%s", dir)) begin
            $display("FAIL: give the folder of the exported files with +DIR=<dir>");
            $fatal(1, "classic_tb: FAIL");
        end
        if (dir[8*path_chars-1 -: 8] != 0) begin
            $display("FAIL: +DIR is longer than %0d characters", path_chars - 1);
            $fatal(1, "classic_tb: FAIL");
        end
        if ($test$plusargs("WAVES")) begin
            $dumpfile("classic_tb.fst");
            $dumpvars(0, classic_tb);
        end
        repeat (3) tick;
        reset = 1'b0;
        tick;
        if ($test$plusargs("OS") && a2) begin
            $display("FAIL: +A2 (the 2-bit mode) is weight-stationary only, not with +OS");
            $fatal(1, "classic_tb: FAIL");
        end
        if ($test$plusargs("OS"))
            run_os;
        else
            run_ws;
        finish;
    end
endmodule
