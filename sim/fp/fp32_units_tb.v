// Testbench top for the FP32 units: fp32_add, fp32_mul and fp32_mac side by side on
// the same operands, so one simulator build and one vector stream test all three.
`timescale 1ns / 1ps
`default_nettype none

module fp32_units_tb (
    input  wire        clk,
    input  wire        rst,
    input  wire        in_valid,
    input  wire [31:0] a,
    input  wire [31:0] b,
    input  wire [31:0] c,
    output wire        add_valid,
    output wire [31:0] add_y,          // a + b
    output wire        mul_valid,
    output wire [31:0] mul_y,          // a * b
    output wire        mac_valid,
    output wire [31:0] mac_y           // a * b + c
);

fp32_add u_add (.clk(clk), .rst(rst), .in_valid(in_valid), .a(a), .b(b),
                .out_valid(add_valid), .y(add_y));

fp32_mul u_mul (.clk(clk), .rst(rst), .in_valid(in_valid), .a(a), .b(b),
                .out_valid(mul_valid), .y(mul_y));

fp32_mac u_mac (.clk(clk), .rst(rst), .in_valid(in_valid), .a(a), .b(b), .c(c),
                .out_valid(mac_valid), .y(mac_y));

endmodule

`default_nettype wire
