// efgen_desc.h - the layer-phase descriptor: one kernel call = one descriptor.
//
// The host writes one descriptor (over s_axilite in hardware) and starts the kernel.
// All tensors live in one DRAM image of 32-bit words (float); every address below is
// a WORD offset into that image. Layouts are those of efgen/layout.py:
//
//   feature maps / errors (B, C, H, W), lane block T = EFGEN_LANES:
//       addr(b, c, r, x) = ((b*ceil(C/T) + c/T)*H*W + r*W + x)*T + c%T
//     (a linear layer's (B, F) activations are (B, F, 1, 1)); pad lanes hold zeros.
//   weights (M, N, K, K), blocks (Tm, Tn) = (EFGEN_TM, EFGEN_TN):
//       addr(m, n, i, j) = (m/Tm*ceil(N/Tn) + n/Tn)*K*K*Tm*Tn + ((i*K + j)*Tm + m%Tm)*Tn + n%Tn
//     (a linear layer's (M, N) weights are (M, N, 1, 1)); the momentum buffer of a
//     weight tensor uses the same layout.
//   vectors (bias, gamma, beta, their momentum, BN statistics): plain arrays.
//
// Geometry fields always describe the LAYER (in_* = its input, out_* = its output),
// whatever the phase: BP reads the error of out_* and writes the error of in_*.
#ifndef EFGEN_DESC_H
#define EFGEN_DESC_H

#include <cstdint>

enum EfgenOp : int32_t {
  EFGEN_OP_NOP = 0,
  // The unified Tm x Tn convolution engine (conv and linear layers).
  EFGEN_OP_CONV_FP = 1,   // a[0]=x  a[1]=W  a[2]=bias(FLAG_BIAS)           -> a[7]=y
  EFGEN_OP_CONV_BP = 2,   // a[0]=dy a[1]=W  a[6]=x (mask source, FLAG_MASK) -> a[7]=dx
  EFGEN_OP_CONV_WU = 3,   // a[0]=dy a[1]=x; updates a[2]=W a[3]=vel(W) and, with FLAG_BIAS,
                          // a[4]=bias a[5]=vel(bias); debug copies of the gradients
                          // (before weight decay) to a[6]=dW (weight layout) and
                          // a[7]=db when those are non-zero.
  // The vector engine.
  EFGEN_OP_BN_FP = 10,    // a[0]=x a[1]=gamma a[2]=beta; a[3]=stats (mean[C] then biased
                          // var[C]) written; a[4]=running_mean a[5]=running_var updated
                          // in place (momentum `bn_momentum`, unbiased var); -> a[7]=y
  EFGEN_OP_BN_BP = 11,    // a[0]=dy a[1]=x a[2]=stats a[3]=gamma a[4]=beta a[5]=vel(gamma),
                          // vel(beta) (2*C words: gamma's then beta's); -> a[7]=dx when
                          // FLAG_DX (FLAG_MASK: times (x > 0), x = a[1]); gamma/beta
                          // updated by SGD when FLAG_TRAIN (dx uses the old gamma); debug
                          // copies of dgamma, dbeta (2*C words) to a[6] when non-zero.
  EFGEN_OP_BN_FIN = 12,   // restructured BN: a[6] = constants block (8*C words: s1 s2
                          // mean invstd gamma beta sdy sdyx; s1, s2 from the producing
                          // conv's FLAG_STATS store) -> mean, invstd, gamma, beta (k =
                          // a[4] before its update); a[1]=gamma a[2]=beta; a[3]=stats
                          // written; a[4], a[5] running statistics updated; a[7] != 0:
                          // y = bn(a[0]) materialised (FLAG_RELU: clamped)
  EFGEN_OP_RELU_FP = 20,  // a[0]=x -> a[7]=y
  EFGEN_OP_RELU_BP = 21,  // a[0]=dy a[1]=y -> a[7]=dx = dy * (y > 0)
  EFGEN_OP_MAXPOOL_FP = 30,  // a[0]=x -> a[7]=y, a[6]=argmax (window index i*K+j of the
                             // FIRST maximum, stored as a float-coded integer, same
                             // layout as y)
  EFGEN_OP_MAXPOOL_BP = 31,  // a[0]=dy a[1]=argmax a[6]=x (mask source) -> a[7]=dx
  EFGEN_OP_AVGPOOL_FP = 32,  // a[0]=x -> a[7]=y (divisor kh*kw; padding counts as zeros)
  EFGEN_OP_AVGPOOL_BP = 33,  // a[0]=dy a[6]=x (mask source) -> a[7]=dx
  EFGEN_OP_ADD_FP = 40,      // a[0]=a a[1]=b -> a[7]=y
  EFGEN_OP_ERRSUM = 41,      // a[0..n_src-1] summed (n_src 1..4) -> a[7]; FLAG_MASK:
                             // times (a[6] > 0)
  EFGEN_OP_SHORTCUT_FP = 50, // a[0]=x -> a[7]=y: x[:, :, ::S, ::S] with (out_c-in_c)/2
                             // zero channels before and the rest after
  EFGEN_OP_SHORTCUT_BP = 51, // a[0]=dy a[6]=x (mask source) -> a[7]=dx
  EFGEN_OP_FLATTEN_FP = 60,  // a[0]=x (B,C,H,W) -> a[7]=y (B, C*H*W, 1, 1), index c*H*W + r*W + x
  EFGEN_OP_FLATTEN_BP = 61,  // a[0]=dy (B, C*H*W, 1, 1) -> a[7]=dx (B,C,H,W); FLAG_MASK with a[6]
  // Host runtime ops (efgen_host_ops.h; never sent to efgen_top): gradient filtering's
  // patch sums, error pooling, copy-back, tap sums and broadcast SGD, error-map
  // pruning's channel selection, around the engine's convolutions; SMD's, EIF's and
  // SLU's host-level steps.
  EFGEN_OP_HOST_BASE = 100,
  EFGEN_OP_HOST_GF_XSUM = 100,     // a[0]=x -> a[7]=x summed over (r*s)^2 patches
  EFGEN_OP_HOST_GF_POOL = 101,     // a[0]=dy -> a[7]=dy averaged over r x r patches
  EFGEN_OP_HOST_GF_COPYBACK = 102, // a[0]=dx_sum -> a[7]=dx (FLAG_MASK with a[6])
  EFGEN_OP_HOST_GF_WSUM = 103,     // a[1]=W (K x K) -> a[7]=W summed over taps (1 x 1)
  EFGEN_OP_HOST_GF_TAPSGD = 104,   // a[0]=dW (1 x 1) -> SGD of a[2]=W a[3]=vel on every tap
  EFGEN_OP_HOST_EMP = 105,         // a[0]=dy a[1]=W -> a[7]=dy on the top n_src channels
                                   // (FLAG_GATHER: gathered, and W's kept filters to a[2])
  EFGEN_OP_HOST_EMP_SGD = 106,     // a[0]=dW (kept filters) a[1]=channel list -> SGD of
                                   // a[2]=W a[3]=vel (zero gradient on the pruned filters)
  EFGEN_OP_HOST_SGD0 = 107,        // SGD with a zero gradient (a dropped mini-batch):
                                   // a[2] (in_c words), a[4] (out_c words), vel a[3]
  EFGEN_OP_HOST_EIF = 108,         // EIF: a[0]=filter logits (batch, out_c) a[2]=labels
                                   // (batch floats) -> a[5]=kept mask (batch) + kept
                                   // labels (n_src); kept images a[1] -> a[3]
  EFGEN_OP_HOST_BN_EVAL = 109,     // inference-mode BN (the EIF filter net): BN_FP's a[]
  EFGEN_OP_HOST_SLU_GATHER = 110,  // SLU: the rows of a[0] (batch images) whose run flag
                                   // (a[5], batch floats) is set -> a[7], compact
  EFGEN_OP_HOST_SLU_SCATTER = 111, // SLU: a[7]'s compact rows back to their images in
                                   // place (a[5] flags), zero rows for skipped images
  EFGEN_OP_HOST_SLU_ADD = 112,     // SLU: a[7] = a[1] (shortcut, batch images) + a[0]'s
                                   // compact rows where a[5] is set (FLAG_RELU: clamp)
};

enum EfgenFlag : int32_t {
  EFGEN_FLAG_RELU = 1,    // FP: clamp at the store (a fused ReLU)
  EFGEN_FLAG_MASK = 2,    // BP: multiply the written error by (src > 0), src = the op's
                          // mask source (a[6], or a[1] for BN_BP): the layer's input
                          // activation, same layout and shape as the written error
  EFGEN_FLAG_BIAS = 4,    // conv/linear with bias
  EFGEN_FLAG_TRAIN = 8,   // BN BP: update gamma and beta
  EFGEN_FLAG_DX = 16,     // BN BP: write the input error
  EFGEN_FLAG_GATHER = 32, // HOST_EMP: gather the kept channels (host runtime only)
  EFGEN_FLAG_XF = 64,     // conv engine: a fused transform; its side record (16 words,
                          // efgen/hls/program.py) at a[3] (FP, BP) or a[7] (WU)
  EFGEN_FLAG_STATS = 128, // FLAG_XF: BN sums beside the store (CONV_FP: sum(y-k),
                          // sum((y-k)^2); CONV_BP with MASK and record MK: sum(dx),
                          // sum(dx*x_hat)) to the record's SSUM
  EFGEN_FLAG_SUMS = 256,  // BN_BP: sum(dy), sum(dy*x_hat) read from a[2] + 2C (a stats
                          // region of 4C words) instead of the sums pass
  EFGEN_FLAG_DXK = 512,   // BN_BP without FLAG_DX: the dx constants (8*C words: mean,
                          // invstd, coef, n, sum(dy), sum(dy*x_hat), 0, 0) to a[7], for
                          // the producing conv's loads (record LMODE 1)
  EFGEN_FLAG_ADDX = 1024, // BN_FIN with a[7]: y = relu?(bn(a[0]) + x2), a residual add
                          // fused into the materialisation (no ADD_FP pass); x2's word
                          // address is the int64 at a[6] + 8*C (two words, low first)
};

struct EfgenDesc {
  int32_t op;
  int32_t flags;
  int32_t batch;
  int32_t in_c, in_h, in_w;     // the layer's input
  int32_t out_c, out_h, out_w;  // the layer's output
  int32_t kh, kw, stride, pad;  // kernel (conv: kh == kw), stride, symmetric padding
  int32_t tr, tc, mc, order;    // conv engine tiling of this phase (order 0 = wo, 1 = io)
  int32_t n_src;                // ERRSUM: number of sources
  int64_t a[8];                 // DRAM word addresses (see EfgenOp)
  float lr, momentum, weight_decay;  // SGD: v = momentum*v + (g + wd*p); p -= lr*v
  float eps, bn_momentum;            // batchnorm
};

#endif  // EFGEN_DESC_H
