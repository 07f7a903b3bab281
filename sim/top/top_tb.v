// top_tb.v - cocotb top for efgen_top (efgen.rtl.top): stimulus regs and observed wires.
//
// Port-less on purpose: Verilator 5.006 copies top-level input ports from its C++
// wrapper at every evaluation, overwriting the values cocotb writes to them
// (verilator/verilator#3919). cocotbext-axi drives s_axil_* (AxiLiteMaster) and the
// three AXI masters m_axi0_*, m_axi1_* (AxiRamRead) and m_axi2_* (AxiRamWrite; with
// EFGEN_FUSE also AxiRamRead on its read channel).
// rst is active high here (cocotbext-axi's models take it so); the DUT gets ap_rst_n.
// AW, DW: efgen_top's AXI address and data bits (RtlParams.addr_width, axi_width;
// efgen.cosim.layers.simulate overrides them).
`timescale 1ns / 1ps
`default_nettype none

module top_tb #(parameter AW = 32, parameter DW = 32) ();

reg clk;
reg rst;
wire irq;
reg  [7:0] s_axil_awaddr;
reg  [2:0] s_axil_awprot;
reg  s_axil_awvalid;
reg  [31:0] s_axil_wdata;
reg  [3:0] s_axil_wstrb;
reg  s_axil_wvalid;
reg  s_axil_bready;
reg  [7:0] s_axil_araddr;
reg  [2:0] s_axil_arprot;
reg  s_axil_arvalid;
reg  s_axil_rready;
wire s_axil_awready;
wire s_axil_wready;
wire [1:0] s_axil_bresp;
wire s_axil_bvalid;
wire s_axil_arready;
wire [31:0] s_axil_rdata;
wire [1:0] s_axil_rresp;
wire s_axil_rvalid;
wire m_axi0_arid;
wire [AW-1:0] m_axi0_araddr;
wire [7:0] m_axi0_arlen;
wire [2:0] m_axi0_arsize;
wire [1:0] m_axi0_arburst;
wire m_axi0_arlock;
wire [3:0] m_axi0_arcache;
wire [2:0] m_axi0_arprot;
wire m_axi0_arvalid;
wire m_axi0_rready;
reg  m_axi0_arready;
reg  m_axi0_rid;
reg  [DW-1:0] m_axi0_rdata;
reg  [1:0] m_axi0_rresp;
reg  m_axi0_rlast;
reg  m_axi0_rvalid;
wire m_axi1_arid;
wire [AW-1:0] m_axi1_araddr;
wire [7:0] m_axi1_arlen;
wire [2:0] m_axi1_arsize;
wire [1:0] m_axi1_arburst;
wire m_axi1_arlock;
wire [3:0] m_axi1_arcache;
wire [2:0] m_axi1_arprot;
wire m_axi1_arvalid;
wire m_axi1_rready;
reg  m_axi1_arready;
reg  m_axi1_rid;
reg  [DW-1:0] m_axi1_rdata;
reg  [1:0] m_axi1_rresp;
reg  m_axi1_rlast;
reg  m_axi1_rvalid;
wire m_axi2_awid;
wire [AW-1:0] m_axi2_awaddr;
wire [7:0] m_axi2_awlen;
wire [2:0] m_axi2_awsize;
wire [1:0] m_axi2_awburst;
wire m_axi2_awlock;
wire [3:0] m_axi2_awcache;
wire [2:0] m_axi2_awprot;
wire m_axi2_awvalid;
wire [DW-1:0] m_axi2_wdata;
wire [DW/8-1:0] m_axi2_wstrb;
wire m_axi2_wlast;
wire m_axi2_wvalid;
wire m_axi2_bready;
reg  m_axi2_awready;
reg  m_axi2_wready;
reg  m_axi2_bid;
reg  [1:0] m_axi2_bresp;
reg  m_axi2_bvalid;
// m_axi2's read channel: the fused datapath's second load stream (RtlParams.fuse;
// efgen.cosim.layers.simulate defines EFGEN_FUSE for those builds); tied off otherwise
wire m_axi2_arid;
wire [AW-1:0] m_axi2_araddr;
wire [7:0] m_axi2_arlen;
wire [2:0] m_axi2_arsize;
wire [1:0] m_axi2_arburst;
wire m_axi2_arlock;
wire [3:0] m_axi2_arcache;
wire [2:0] m_axi2_arprot;
wire m_axi2_arvalid;
wire m_axi2_rready;
reg  m_axi2_arready;
reg  m_axi2_rid;
reg  [DW-1:0] m_axi2_rdata;
reg  [1:0] m_axi2_rresp;
reg  m_axi2_rlast;
reg  m_axi2_rvalid;
`ifndef EFGEN_FUSE
assign m_axi2_arid = 1'b0;
assign m_axi2_araddr = {AW{1'b0}};
assign m_axi2_arlen = 8'd0;
assign m_axi2_arsize = 3'd0;
assign m_axi2_arburst = 2'd0;
assign m_axi2_arlock = 1'b0;
assign m_axi2_arcache = 4'd0;
assign m_axi2_arprot = 3'd0;
assign m_axi2_arvalid = 1'b0;
assign m_axi2_rready = 1'b0;
`endif

efgen_top dut (
    .clk(clk),
    .ap_rst_n(!rst),
    .irq(irq),
    .s_axil_awaddr(s_axil_awaddr),
    .s_axil_awprot(s_axil_awprot),
    .s_axil_awvalid(s_axil_awvalid),
    .s_axil_wdata(s_axil_wdata),
    .s_axil_wstrb(s_axil_wstrb),
    .s_axil_wvalid(s_axil_wvalid),
    .s_axil_bready(s_axil_bready),
    .s_axil_araddr(s_axil_araddr),
    .s_axil_arprot(s_axil_arprot),
    .s_axil_arvalid(s_axil_arvalid),
    .s_axil_rready(s_axil_rready),
    .s_axil_awready(s_axil_awready),
    .s_axil_wready(s_axil_wready),
    .s_axil_bresp(s_axil_bresp),
    .s_axil_bvalid(s_axil_bvalid),
    .s_axil_arready(s_axil_arready),
    .s_axil_rdata(s_axil_rdata),
    .s_axil_rresp(s_axil_rresp),
    .s_axil_rvalid(s_axil_rvalid),
    .m_axi0_arid(m_axi0_arid),
    .m_axi0_araddr(m_axi0_araddr),
    .m_axi0_arlen(m_axi0_arlen),
    .m_axi0_arsize(m_axi0_arsize),
    .m_axi0_arburst(m_axi0_arburst),
    .m_axi0_arlock(m_axi0_arlock),
    .m_axi0_arcache(m_axi0_arcache),
    .m_axi0_arprot(m_axi0_arprot),
    .m_axi0_arvalid(m_axi0_arvalid),
    .m_axi0_rready(m_axi0_rready),
    .m_axi0_arready(m_axi0_arready),
    .m_axi0_rid(m_axi0_rid),
    .m_axi0_rdata(m_axi0_rdata),
    .m_axi0_rresp(m_axi0_rresp),
    .m_axi0_rlast(m_axi0_rlast),
    .m_axi0_rvalid(m_axi0_rvalid),
    .m_axi1_arid(m_axi1_arid),
    .m_axi1_araddr(m_axi1_araddr),
    .m_axi1_arlen(m_axi1_arlen),
    .m_axi1_arsize(m_axi1_arsize),
    .m_axi1_arburst(m_axi1_arburst),
    .m_axi1_arlock(m_axi1_arlock),
    .m_axi1_arcache(m_axi1_arcache),
    .m_axi1_arprot(m_axi1_arprot),
    .m_axi1_arvalid(m_axi1_arvalid),
    .m_axi1_rready(m_axi1_rready),
    .m_axi1_arready(m_axi1_arready),
    .m_axi1_rid(m_axi1_rid),
    .m_axi1_rdata(m_axi1_rdata),
    .m_axi1_rresp(m_axi1_rresp),
    .m_axi1_rlast(m_axi1_rlast),
    .m_axi1_rvalid(m_axi1_rvalid),
    .m_axi2_awid(m_axi2_awid),
    .m_axi2_awaddr(m_axi2_awaddr),
    .m_axi2_awlen(m_axi2_awlen),
    .m_axi2_awsize(m_axi2_awsize),
    .m_axi2_awburst(m_axi2_awburst),
    .m_axi2_awlock(m_axi2_awlock),
    .m_axi2_awcache(m_axi2_awcache),
    .m_axi2_awprot(m_axi2_awprot),
    .m_axi2_awvalid(m_axi2_awvalid),
    .m_axi2_wdata(m_axi2_wdata),
    .m_axi2_wstrb(m_axi2_wstrb),
    .m_axi2_wlast(m_axi2_wlast),
    .m_axi2_wvalid(m_axi2_wvalid),
    .m_axi2_bready(m_axi2_bready),
    .m_axi2_awready(m_axi2_awready),
    .m_axi2_wready(m_axi2_wready),
    .m_axi2_bid(m_axi2_bid),
    .m_axi2_bresp(m_axi2_bresp),
    .m_axi2_bvalid(m_axi2_bvalid)
`ifdef EFGEN_FUSE
    ,
    .m_axi2_arid(m_axi2_arid),
    .m_axi2_araddr(m_axi2_araddr),
    .m_axi2_arlen(m_axi2_arlen),
    .m_axi2_arsize(m_axi2_arsize),
    .m_axi2_arburst(m_axi2_arburst),
    .m_axi2_arlock(m_axi2_arlock),
    .m_axi2_arcache(m_axi2_arcache),
    .m_axi2_arprot(m_axi2_arprot),
    .m_axi2_arvalid(m_axi2_arvalid),
    .m_axi2_rready(m_axi2_rready),
    .m_axi2_arready(m_axi2_arready),
    .m_axi2_rid(m_axi2_rid),
    .m_axi2_rdata(m_axi2_rdata),
    .m_axi2_rresp(m_axi2_rresp),
    .m_axi2_rlast(m_axi2_rlast),
    .m_axi2_rvalid(m_axi2_rvalid)
`endif
);

endmodule

`default_nettype wire
