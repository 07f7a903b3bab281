// sgd_tb.v - cocotb top for sgd_wb (efgen.rtl.sgd) with its DMA engines.
//
// sgd_wb reads W through u_rd_w (AR/R of port m_axi), V through u_rd_v (AR/R of port
// v_axi) and writes W' and V' through u_wr (AW/W/B of port m_axi), all three 32-bit
// axi_dma engines. cocotb puts one cocotbext-axi AxiRam on m_axi and an AxiRamRead on
// v_axi that share one memory: one DRAM, as in the real design. The weight buffer is
// behavioural: TM*TN banks of 2**WA words, one wide word per address, registered read
// (as engine_core's), loaded by cocotb through wbuf_we/wbuf_wa/wbuf_wd.
//
// The parameters must match the rendered sgd_wb (tests/test_rtl_sgd.py passes them).
// The top has no ports: Verilator 5.006 overwrites cocotb's writes to top-level inputs
// (verilator/verilator#3919), so every stimulus is a reg here.

`resetall
`timescale 1ns / 1ps
`default_nettype none

module sgd_tb #(
    parameter TM          = 2,
    parameter TN          = 2,
    parameter WA          = 9,
    parameter KW          = 3,
    parameter GW          = 3,
    parameter MAX_BURST   = 64,
    parameter OUTSTANDING = 4
) ();

localparam NB = TM * TN;

reg               clk;
reg               rst;
reg               start;
reg  [KW-1:0]     cfg_k;
reg  [GW-1:0]     cfg_g;
reg  [WA-1:0]     cfg_nblk;
reg  [29:0]       cfg_w_addr;
reg  [29:0]       cfg_v_addr;
reg  [31:0]       cfg_lr;
reg  [31:0]       cfg_mom;
reg  [31:0]       cfg_wd;
wire              busy;
wire              done;

// ---- behavioural weight buffer: engine_ram's read, two registers (RAM, output register)
reg               wbuf_we;
reg  [WA-1:0]     wbuf_wa;
reg  [NB*32-1:0]  wbuf_wd;
reg  [NB*32-1:0]  wbuf [0:(1<<WA)-1];
reg  [NB*32-1:0]  wb_rd_q;
reg  [NB*32-1:0]  wb_rd_data;
wire [WA-1:0]     wb_rd_addr;
always @(posedge clk) begin
    if (wbuf_we)
        wbuf[wbuf_wa] <= wbuf_wd;
    wb_rd_q    <= wbuf[wb_rd_addr];
    wb_rd_data <= wb_rd_q;
end

// ---- sgd_wb <-> DMA streams
wire [29:0] w_cmd_addr, v_cmd_addr, o_cmd_addr;
wire [31:0] w_cmd_len, v_cmd_len, o_cmd_len;
wire        w_cmd_valid, w_cmd_ready, v_cmd_valid, v_cmd_ready, o_cmd_valid, o_cmd_ready;
wire [31:0] w_data, v_data, o_data;
wire        w_valid, w_ready, v_valid, v_ready, o_valid, o_ready, o_done;
wire        rd_w_busy, rd_v_busy, wr_busy;
/* verilator lint_off UNUSEDSIGNAL */
wire        w_keep, w_last, v_keep, v_last;   // 32-bit streams: one word a beat
wire        rd_w_error, rd_v_error, wr_error;  // AxiRam answers OKAY
/* verilator lint_on UNUSEDSIGNAL */

wire [10:0] b_rd_addr_unused;    // efgen.rtl.top.wub_addr_bits(1)
sgd_wb u_sgd (
    .clk(clk), .rst(rst), .start(start),
    .cfg_k(cfg_k), .cfg_g(cfg_g), .cfg_nblk(cfg_nblk),
    .cfg_w_addr(cfg_w_addr), .cfg_v_addr(cfg_v_addr),
    .cfg_lr(cfg_lr), .cfg_mom(cfg_mom), .cfg_wd(cfg_wd),
    // the WU bias pass (layer_seq's bias RAM) is tested with efgen_top (tests/test_rtl_top.py)
    .cfg_bias(1'b0), .cfg_dbg(1'b0), .cfg_bwords(9'd0), .cfg_d_addr(30'd0),
    .b_rd_addr(b_rd_addr_unused), .b_rd_data(32'd0),
    .wb_rd_addr(wb_rd_addr), .wb_rd_data(wb_rd_data),
    .w_cmd_addr(w_cmd_addr), .w_cmd_len(w_cmd_len), .w_cmd_valid(w_cmd_valid),
    .w_cmd_ready(w_cmd_ready), .w_data(w_data), .w_valid(w_valid), .w_ready(w_ready),
    .v_cmd_addr(v_cmd_addr), .v_cmd_len(v_cmd_len), .v_cmd_valid(v_cmd_valid),
    .v_cmd_ready(v_cmd_ready), .v_data(v_data), .v_valid(v_valid), .v_ready(v_ready),
    .o_cmd_addr(o_cmd_addr), .o_cmd_len(o_cmd_len), .o_cmd_valid(o_cmd_valid),
    .o_cmd_ready(o_cmd_ready), .o_data(o_data), .o_valid(o_valid), .o_ready(o_ready),
    .o_done(o_done), .busy(busy), .done(done)
);

// ---- AXI4 ports: m_axi (W reads, all writes), v_axi (V reads)
wire [0:0]  m_axi_awid;
wire [31:0] m_axi_awaddr;
wire [7:0]  m_axi_awlen;
wire [2:0]  m_axi_awsize;
wire [1:0]  m_axi_awburst;
wire        m_axi_awlock;
wire [3:0]  m_axi_awcache;
wire [2:0]  m_axi_awprot;
wire        m_axi_awvalid;
reg         m_axi_awready;
wire [31:0] m_axi_wdata;
wire [3:0]  m_axi_wstrb;
wire        m_axi_wlast;
wire        m_axi_wvalid;
reg         m_axi_wready;
reg  [0:0]  m_axi_bid;
reg  [1:0]  m_axi_bresp;
reg         m_axi_bvalid;
wire        m_axi_bready;
wire [0:0]  m_axi_arid;
wire [31:0] m_axi_araddr;
wire [7:0]  m_axi_arlen;
wire [2:0]  m_axi_arsize;
wire [1:0]  m_axi_arburst;
wire        m_axi_arlock;
wire [3:0]  m_axi_arcache;
wire [2:0]  m_axi_arprot;
wire        m_axi_arvalid;
reg         m_axi_arready;
reg  [0:0]  m_axi_rid;
reg  [31:0] m_axi_rdata;
reg  [1:0]  m_axi_rresp;
reg         m_axi_rlast;
reg         m_axi_rvalid;
wire        m_axi_rready;

wire [0:0]  v_axi_arid;
wire [31:0] v_axi_araddr;
wire [7:0]  v_axi_arlen;
wire [2:0]  v_axi_arsize;
wire [1:0]  v_axi_arburst;
wire        v_axi_arlock;
wire [3:0]  v_axi_arcache;
wire [2:0]  v_axi_arprot;
wire        v_axi_arvalid;
reg         v_axi_arready;
reg  [0:0]  v_axi_rid;
reg  [31:0] v_axi_rdata;
reg  [1:0]  v_axi_rresp;
reg         v_axi_rlast;
reg         v_axi_rvalid;
wire        v_axi_rready;

axi_dma_rd #(
    .DATA_WIDTH(32), .ADDR_WIDTH(32), .ID_WIDTH(1), .LEN_WIDTH(32),
    .MAX_BURST(MAX_BURST), .OUTSTANDING(OUTSTANDING)
) u_rd_w (
    .clk(clk), .rst(rst),
    .s_cmd_addr(w_cmd_addr), .s_cmd_len(w_cmd_len), .s_cmd_valid(w_cmd_valid),
    .s_cmd_ready(w_cmd_ready),
    .m_data(w_data), .m_keep(w_keep), .m_last(w_last), .m_valid(w_valid), .m_ready(w_ready),
    .m_axi_arid(m_axi_arid), .m_axi_araddr(m_axi_araddr), .m_axi_arlen(m_axi_arlen),
    .m_axi_arsize(m_axi_arsize), .m_axi_arburst(m_axi_arburst), .m_axi_arlock(m_axi_arlock),
    .m_axi_arcache(m_axi_arcache), .m_axi_arprot(m_axi_arprot),
    .m_axi_arvalid(m_axi_arvalid), .m_axi_arready(m_axi_arready),
    .m_axi_rid(m_axi_rid), .m_axi_rdata(m_axi_rdata), .m_axi_rresp(m_axi_rresp),
    .m_axi_rlast(m_axi_rlast), .m_axi_rvalid(m_axi_rvalid), .m_axi_rready(m_axi_rready),
    .drain(1'b0), .busy(rd_w_busy), .error(rd_w_error), .error_resp(), .error_addr()
);

axi_dma_rd #(
    .DATA_WIDTH(32), .ADDR_WIDTH(32), .ID_WIDTH(1), .LEN_WIDTH(32),
    .MAX_BURST(MAX_BURST), .OUTSTANDING(OUTSTANDING)
) u_rd_v (
    .clk(clk), .rst(rst),
    .s_cmd_addr(v_cmd_addr), .s_cmd_len(v_cmd_len), .s_cmd_valid(v_cmd_valid),
    .s_cmd_ready(v_cmd_ready),
    .m_data(v_data), .m_keep(v_keep), .m_last(v_last), .m_valid(v_valid), .m_ready(v_ready),
    .m_axi_arid(v_axi_arid), .m_axi_araddr(v_axi_araddr), .m_axi_arlen(v_axi_arlen),
    .m_axi_arsize(v_axi_arsize), .m_axi_arburst(v_axi_arburst), .m_axi_arlock(v_axi_arlock),
    .m_axi_arcache(v_axi_arcache), .m_axi_arprot(v_axi_arprot),
    .m_axi_arvalid(v_axi_arvalid), .m_axi_arready(v_axi_arready),
    .m_axi_rid(v_axi_rid), .m_axi_rdata(v_axi_rdata), .m_axi_rresp(v_axi_rresp),
    .m_axi_rlast(v_axi_rlast), .m_axi_rvalid(v_axi_rvalid), .m_axi_rready(v_axi_rready),
    .drain(1'b0), .busy(rd_v_busy), .error(rd_v_error), .error_resp(), .error_addr()
);

axi_dma_wr #(
    .DATA_WIDTH(32), .ADDR_WIDTH(32), .ID_WIDTH(1), .LEN_WIDTH(32),
    .MAX_BURST(MAX_BURST), .OUTSTANDING(OUTSTANDING)
) u_wr (
    .clk(clk), .rst(rst),
    .s_cmd_addr(o_cmd_addr), .s_cmd_len(o_cmd_len), .s_cmd_valid(o_cmd_valid),
    .s_cmd_ready(o_cmd_ready),
    .s_data(o_data), .s_valid(o_valid), .s_ready(o_ready),
    .m_axi_awid(m_axi_awid), .m_axi_awaddr(m_axi_awaddr), .m_axi_awlen(m_axi_awlen),
    .m_axi_awsize(m_axi_awsize), .m_axi_awburst(m_axi_awburst), .m_axi_awlock(m_axi_awlock),
    .m_axi_awcache(m_axi_awcache), .m_axi_awprot(m_axi_awprot),
    .m_axi_awvalid(m_axi_awvalid), .m_axi_awready(m_axi_awready),
    .m_axi_wdata(m_axi_wdata), .m_axi_wstrb(m_axi_wstrb), .m_axi_wlast(m_axi_wlast),
    .m_axi_wvalid(m_axi_wvalid), .m_axi_wready(m_axi_wready),
    .m_axi_bid(m_axi_bid), .m_axi_bresp(m_axi_bresp), .m_axi_bvalid(m_axi_bvalid),
    .m_axi_bready(m_axi_bready),
    .drain(1'b0), .busy(wr_busy), .done(o_done), .error(wr_error), .error_resp(),
    .error_addr()
);

endmodule

`resetall
