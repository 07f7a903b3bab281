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
) ();

// Stimulus (reg, written by cocotb) and observed (wire) signals. The top has no ports
// on purpose: version 5.006 of Verilator copies top-level input ports from its C++
// wrapper at every input evaluation, which silently overwrites the values cocotb
// writes to them (verilator/verilator#3919, fixed in later releases).
reg                          clk;
reg                          rst;

reg  [ADDR_WIDTH-3:0]        rd_cmd_addr;
reg  [LEN_WIDTH-1:0]         rd_cmd_len;
reg                          rd_cmd_valid;
wire                         rd_cmd_ready;
wire [DATA_WIDTH-1:0]        rd_data;
wire [DATA_WIDTH/32-1:0]     rd_keep;
wire                         rd_last;
wire                         rd_valid;
reg                          rd_ready;
wire                         rd_busy;
wire                         rd_error;

reg  [ADDR_WIDTH-3:0]        wr_cmd_addr;
reg  [LEN_WIDTH-1:0]         wr_cmd_len;
reg                          wr_cmd_valid;
wire                         wr_cmd_ready;
reg  [DATA_WIDTH-1:0]        wr_data;
reg                          wr_valid;
wire                         wr_ready;
wire                         wr_busy;
wire                         wr_done;
wire                         wr_error;

wire [0:0]                   m_axi_awid;
wire [ADDR_WIDTH-1:0]        m_axi_awaddr;
wire [7:0]                   m_axi_awlen;
wire [2:0]                   m_axi_awsize;
wire [1:0]                   m_axi_awburst;
wire                         m_axi_awlock;
wire [3:0]                   m_axi_awcache;
wire [2:0]                   m_axi_awprot;
wire                         m_axi_awvalid;
reg                          m_axi_awready;
wire [DATA_WIDTH-1:0]        m_axi_wdata;
wire [DATA_WIDTH/8-1:0]      m_axi_wstrb;
wire                         m_axi_wlast;
wire                         m_axi_wvalid;
reg                          m_axi_wready;
reg  [0:0]                   m_axi_bid;
reg  [1:0]                   m_axi_bresp;
reg                          m_axi_bvalid;
wire                         m_axi_bready;
wire [0:0]                   m_axi_arid;
wire [ADDR_WIDTH-1:0]        m_axi_araddr;
wire [7:0]                   m_axi_arlen;
wire [2:0]                   m_axi_arsize;
wire [1:0]                   m_axi_arburst;
wire                         m_axi_arlock;
wire [3:0]                   m_axi_arcache;
wire [2:0]                   m_axi_arprot;
wire                         m_axi_arvalid;
reg                          m_axi_arready;
reg  [0:0]                   m_axi_rid;
reg  [DATA_WIDTH-1:0]        m_axi_rdata;
reg  [1:0]                   m_axi_rresp;
reg                          m_axi_rlast;
reg                          m_axi_rvalid;
wire                         m_axi_rready;

reg  [7:0]                   s_axil_awaddr;
reg  [2:0]                   s_axil_awprot;
reg                          s_axil_awvalid;
wire                         s_axil_awready;
reg  [31:0]                  s_axil_wdata;
reg  [3:0]                   s_axil_wstrb;
reg                          s_axil_wvalid;
wire                         s_axil_wready;
wire [1:0]                   s_axil_bresp;
wire                         s_axil_bvalid;
reg                          s_axil_bready;
reg  [7:0]                   s_axil_araddr;
reg  [2:0]                   s_axil_arprot;
reg                          s_axil_arvalid;
wire                         s_axil_arready;
wire [31:0]                  s_axil_rdata;
wire [1:0]                   s_axil_rresp;
wire                         s_axil_rvalid;
reg                          s_axil_rready;

wire                         regs_start;
wire                         regs_busy;
wire                         regs_abort;
wire                         regs_irq;
reg                          regs_refuse;
reg                          regs_done;
reg                          regs_error;
wire [63:0]                  regs_gmem_in, regs_gmem_w, regs_gmem_out;

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
    .drain(1'b0), .busy(rd_busy), .error(rd_error), .error_resp(), .error_addr()
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
    .drain(1'b0), .busy(wr_busy), .done(wr_done), .error(wr_error), .error_resp(),
    .error_addr()
);

// the desc_* outputs are read hierarchically by the test (dut.u_regs.desc_*)
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
    .start(regs_start), .busy(regs_busy), .abort_req(regs_abort), .irq(regs_irq),
    .refuse(regs_refuse), .refuse_code(8'd8),
    .done(regs_done), .error(regs_error), .error_code(8'd0), .error_addr(64'h12_3456_789A),
    .gmem_in(regs_gmem_in), .gmem_w(regs_gmem_w), .gmem_out(regs_gmem_out)
);
/* verilator lint_on PINMISSING */

endmodule

`resetall
