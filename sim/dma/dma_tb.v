// dma_tb.v - cocotb top for the DMA engines and the descriptor registers.
//
// axi_dma_rd owns the AR/R channels and axi_dma_wr the AW/W/B channels of one AXI4
// port (m_axi_*, driven by cocotbext-axi's AxiRam), so a single build per parameter
// set tests both engines; desc_regs sits on s_axil_* (AxiLiteMaster). The descriptor
// field ports are left unconnected here: the tests read them hierarchically
// (dut.u_regs.desc_<field>).

`resetall
`timescale 1ns / 1ps
`default_nettype none

module dma_tb #(
    parameter DATA_WIDTH  = 128,
    parameter ADDR_WIDTH  = 32,
    parameter LEN_WIDTH   = 32,
    parameter MAX_BURST   = 256,
    parameter OUTSTANDING = 4
) (
    input  wire                     clk,
    input  wire                     rst,

    input  wire [ADDR_WIDTH-3:0]    rd_cmd_addr,
    input  wire [LEN_WIDTH-1:0]     rd_cmd_len,
    input  wire                     rd_cmd_valid,
    output wire                     rd_cmd_ready,
    output wire [DATA_WIDTH-1:0]    rd_data,
    output wire [DATA_WIDTH/32-1:0] rd_keep,
    output wire                     rd_last,
    output wire                     rd_valid,
    input  wire                     rd_ready,
    output wire                     rd_busy,
    output wire                     rd_error,

    input  wire [ADDR_WIDTH-3:0]    wr_cmd_addr,
    input  wire [LEN_WIDTH-1:0]     wr_cmd_len,
    input  wire                     wr_cmd_valid,
    output wire                     wr_cmd_ready,
    input  wire [DATA_WIDTH-1:0]    wr_data,
    input  wire                     wr_valid,
    output wire                     wr_ready,
    output wire                     wr_busy,
    output wire                     wr_done,
    output wire                     wr_error,

    output wire [0:0]               m_axi_awid,
    output wire [ADDR_WIDTH-1:0]    m_axi_awaddr,
    output wire [7:0]               m_axi_awlen,
    output wire [2:0]               m_axi_awsize,
    output wire [1:0]               m_axi_awburst,
    output wire                     m_axi_awlock,
    output wire [3:0]               m_axi_awcache,
    output wire [2:0]               m_axi_awprot,
    output wire                     m_axi_awvalid,
    input  wire                     m_axi_awready,
    output wire [DATA_WIDTH-1:0]    m_axi_wdata,
    output wire [DATA_WIDTH/8-1:0]  m_axi_wstrb,
    output wire                     m_axi_wlast,
    output wire                     m_axi_wvalid,
    input  wire                     m_axi_wready,
    input  wire [0:0]               m_axi_bid,
    input  wire [1:0]               m_axi_bresp,
    input  wire                     m_axi_bvalid,
    output wire                     m_axi_bready,
    output wire [0:0]               m_axi_arid,
    output wire [ADDR_WIDTH-1:0]    m_axi_araddr,
    output wire [7:0]               m_axi_arlen,
    output wire [2:0]               m_axi_arsize,
    output wire [1:0]               m_axi_arburst,
    output wire                     m_axi_arlock,
    output wire [3:0]               m_axi_arcache,
    output wire [2:0]               m_axi_arprot,
    output wire                     m_axi_arvalid,
    input  wire                     m_axi_arready,
    input  wire [0:0]               m_axi_rid,
    input  wire [DATA_WIDTH-1:0]    m_axi_rdata,
    input  wire [1:0]               m_axi_rresp,
    input  wire                     m_axi_rlast,
    input  wire                     m_axi_rvalid,
    output wire                     m_axi_rready,

    input  wire [7:0]               s_axil_awaddr,
    input  wire [2:0]               s_axil_awprot,
    input  wire                     s_axil_awvalid,
    output wire                     s_axil_awready,
    input  wire [31:0]              s_axil_wdata,
    input  wire [3:0]               s_axil_wstrb,
    input  wire                     s_axil_wvalid,
    output wire                     s_axil_wready,
    output wire [1:0]               s_axil_bresp,
    output wire                     s_axil_bvalid,
    input  wire                     s_axil_bready,
    input  wire [7:0]               s_axil_araddr,
    input  wire [2:0]               s_axil_arprot,
    input  wire                     s_axil_arvalid,
    output wire                     s_axil_arready,
    output wire [31:0]              s_axil_rdata,
    output wire [1:0]               s_axil_rresp,
    output wire                     s_axil_rvalid,
    input  wire                     s_axil_rready,

    output wire                     regs_start,
    output wire                     regs_busy,
    input  wire                     regs_done,
    input  wire                     regs_error
);

axi_dma_rd #(
    .DATA_WIDTH(DATA_WIDTH), .ADDR_WIDTH(ADDR_WIDTH), .ID_WIDTH(1), .LEN_WIDTH(LEN_WIDTH),
    .MAX_BURST(MAX_BURST), .OUTSTANDING(OUTSTANDING)
) u_rd (
    .clk(clk), .rst(rst),
    .s_cmd_addr(rd_cmd_addr), .s_cmd_len(rd_cmd_len), .s_cmd_valid(rd_cmd_valid),
    .s_cmd_ready(rd_cmd_ready),
    .m_data(rd_data), .m_keep(rd_keep), .m_last(rd_last), .m_valid(rd_valid),
    .m_ready(rd_ready),
    .m_axi_arid(m_axi_arid), .m_axi_araddr(m_axi_araddr), .m_axi_arlen(m_axi_arlen),
    .m_axi_arsize(m_axi_arsize), .m_axi_arburst(m_axi_arburst), .m_axi_arlock(m_axi_arlock),
    .m_axi_arcache(m_axi_arcache), .m_axi_arprot(m_axi_arprot),
    .m_axi_arvalid(m_axi_arvalid), .m_axi_arready(m_axi_arready),
    .m_axi_rid(m_axi_rid), .m_axi_rdata(m_axi_rdata), .m_axi_rresp(m_axi_rresp),
    .m_axi_rlast(m_axi_rlast), .m_axi_rvalid(m_axi_rvalid), .m_axi_rready(m_axi_rready),
    .busy(rd_busy), .error(rd_error)
);

axi_dma_wr #(
    .DATA_WIDTH(DATA_WIDTH), .ADDR_WIDTH(ADDR_WIDTH), .ID_WIDTH(1), .LEN_WIDTH(LEN_WIDTH),
    .MAX_BURST(MAX_BURST), .OUTSTANDING(OUTSTANDING)
) u_wr (
    .clk(clk), .rst(rst),
    .s_cmd_addr(wr_cmd_addr), .s_cmd_len(wr_cmd_len), .s_cmd_valid(wr_cmd_valid),
    .s_cmd_ready(wr_cmd_ready),
    .s_data(wr_data), .s_valid(wr_valid), .s_ready(wr_ready),
    .m_axi_awid(m_axi_awid), .m_axi_awaddr(m_axi_awaddr), .m_axi_awlen(m_axi_awlen),
    .m_axi_awsize(m_axi_awsize), .m_axi_awburst(m_axi_awburst), .m_axi_awlock(m_axi_awlock),
    .m_axi_awcache(m_axi_awcache), .m_axi_awprot(m_axi_awprot),
    .m_axi_awvalid(m_axi_awvalid), .m_axi_awready(m_axi_awready),
    .m_axi_wdata(m_axi_wdata), .m_axi_wstrb(m_axi_wstrb), .m_axi_wlast(m_axi_wlast),
    .m_axi_wvalid(m_axi_wvalid), .m_axi_wready(m_axi_wready),
    .m_axi_bid(m_axi_bid), .m_axi_bresp(m_axi_bresp), .m_axi_bvalid(m_axi_bvalid),
    .m_axi_bready(m_axi_bready),
    .busy(wr_busy), .done(wr_done), .error(wr_error)
);

/* verilator lint_off PINMISSING */
desc_regs u_regs (
    .clk(clk), .rst(rst),
    .s_axil_awaddr(s_axil_awaddr), .s_axil_awprot(s_axil_awprot),
    .s_axil_awvalid(s_axil_awvalid), .s_axil_awready(s_axil_awready),
    .s_axil_wdata(s_axil_wdata), .s_axil_wstrb(s_axil_wstrb),
    .s_axil_wvalid(s_axil_wvalid), .s_axil_wready(s_axil_wready),
    .s_axil_bresp(s_axil_bresp), .s_axil_bvalid(s_axil_bvalid), .s_axil_bready(s_axil_bready),
    .s_axil_araddr(s_axil_araddr), .s_axil_arprot(s_axil_arprot),
    .s_axil_arvalid(s_axil_arvalid), .s_axil_arready(s_axil_arready),
    .s_axil_rdata(s_axil_rdata), .s_axil_rresp(s_axil_rresp),
    .s_axil_rvalid(s_axil_rvalid), .s_axil_rready(s_axil_rready),
    .start(regs_start), .busy(regs_busy), .done(regs_done), .error(regs_error)
);
/* verilator lint_on PINMISSING */

endmodule

`resetall
