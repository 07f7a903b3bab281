// vector_engine.h - the vector engine: every layer-phase of a training step that is
// not a convolution (batchnorm, ReLU, pooling, residual add, error sums, option-A
// shortcut, flatten), as Vitis HLS C++ that also compiles unchanged with
// g++ -std=c++17 -Wall -Wextra -Werror -pedantic for C-simulation.
//
//   void efgen_vector_engine(const EfgenDesc& d, const float* mem_in,
//                            const float* mem_w, float* mem_out);
//   int  efgen_vector_check(const EfgenDesc& d);  // 0, or an EfgenVectorStatus error
//
// One call executes one descriptor (efgen_desc.h); a descriptor that
// efgen_vector_check rejects (bad geometry, or an op code that is not the vector
// engine's: NOP, convolution) is not executed: nothing is read or written.
// The three pointers view one DRAM image of 32-bit words (they alias in
// C-simulation); every a[i] is a word address in it. Reads of the streamed feature
// map / error go through mem_in; second operands, mask sources and parameter vectors
// through mem_w; every write through mem_out.
//
// Layouts (efgen/layout.py, "blocked" with T = EFGEN_LANES lanes):
//   addr(b, c, r, x) = ((b*ceil(C/T) + c/T)*H*W + r*W + x)*T + c%T
// A lane vector is the T words of one pixel of one channel block. The engine moves
// whole lane vectors (one per cycle per port in the pipelined loops) and writes the
// pad lanes (c >= C) of every feature map / error it produces as zeros. Nothing
// outside the op's output tensors is written.
//
// Flags: FLAG_RELU clamps the stored value of every FP op that writes a feature map
// (fused ReLU of conv/linear/BN/add producers; accepted on all FP ops here).
// FLAG_MASK multiplies the stored error of every BP op (and ERRSUM) by (src > 0),
// src = a[6] (a[1] for BN_BP), a tensor of the written error's shape and layout; as in
// efgen/golden/ops.relu_bp the masked value is selected (where(src > 0, e, 0)).
//
// Geometry: in_* / out_* describe the layer (efgen_desc.h). Element-wise ops
// (RELU_FP/BP, ADD_FP, ERRSUM) use out_c/out_h/out_w; BN_FP/BN_BP use in_*; pooling,
// shortcut and flatten use both (flatten: the (C, H, W) map is in_*).
//
// Params (efgen_params.h, included here unless already defined): EFGEN_LANES (T) and
// EFGEN_MAX_C, the largest channel count of any tensor; per-channel on-chip arrays
// are sized by it (a BN descriptor with more channels is rejected).
//
// Numerics (compared with efgen/golden/ops.py in float32): BN statistics and the BN
// BP sums are accumulated in double in one pass (sum and sum of squares; var =
// E[x^2] - mean^2 in double, clamped at 0), then rounded to float; everything else is
// float, in the golden's operation order (xhat = (x - mean)*invstd, y = gamma*xhat +
// beta; dx = (gamma*invstd/n) * ((n*dy - dbeta) - xhat*dgamma); SGD g = grad + wd*p,
// v = momentum*v + g, p -= lr*v). Pooling BP accumulates window contributions in the
// golden's (i, j) order.
//
// HLS micro-architecture: every pass is one flat loop, PIPELINE II=1, over lane
// vectors (T lanes unrolled; flatten, a transposition, over words), with counters
// instead of divisions. Loop-carried float reductions over long runs (BN sums) use
// kIL interleaved partial accumulators (DEPENDENCE distance kIL) so II=1 holds;
// the short window reductions of pooling (and the global pool) are sequential, so
// there the tool may raise II to the adder latency. Pooling gathers its windows
// from DRAM (an input vector is re-read by every window that covers it: K*K/S^2
// reads per element, exactly 1 when windows do not overlap); no line buffer, since
// no maximum map width is in the params header.
#ifndef EFGEN_VECTOR_ENGINE_H
#define EFGEN_VECTOR_ENGINE_H

#include <cmath>
#include <cstdint>
#include <limits>

#include "efgen_desc.h"

#if !defined(EFGEN_LANES) || !defined(EFGEN_MAX_C)
#include "efgen_params.h"
#endif
#if !defined(EFGEN_LANES) || !defined(EFGEN_MAX_C)
#error "vector_engine.h: EFGEN_LANES and EFGEN_MAX_C must be defined (efgen_params.h)"
#endif

#include "efgen_hls.h"

enum EfgenVectorStatus : int32_t {
  EFGEN_VECTOR_OK = 0,
  EFGEN_VECTOR_ERR_OP = 1,        // not a vector-engine op
  EFGEN_VECTOR_ERR_GEOMETRY = 2,  // a size < 1, or out_* inconsistent with in_*, kernel,
                                  // stride, padding (see efgen_vector_check)
  EFGEN_VECTOR_ERR_CHANNELS = 3,  // batchnorm with more than EFGEN_MAX_C channels
  EFGEN_VECTOR_ERR_NSRC = 4,      // ERRSUM with n_src outside 1..4
  EFGEN_VECTOR_ERR_ADDRESS = 5,   // an address slot the op uses is negative
};

namespace efgen_vec {

constexpr int kT = EFGEN_LANES;                                  // lanes per vector
constexpr int kMaxC = EFGEN_MAX_C;                               // channels, max
constexpr int kMaxCB = (EFGEN_MAX_C + EFGEN_LANES - 1) / EFGEN_LANES;  // blocks, max
constexpr int kIL = 8;  // interleaved partial sums (>= latency of a double add)
static_assert(kT >= 1, "EFGEN_LANES must be positive");
static_assert(kMaxC >= 1, "EFGEN_MAX_C must be positive");

static inline int n_blocks(int c) { return (c + kT - 1) / kT; }

// floor(a / b) for b > 0 and any sign of a.
static inline int floor_div(int a, int b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

static inline void vload(const float* mem, int64_t addr, float (&v)[kT]) {
  EFGEN_PRAGMA(HLS INLINE)
  for (int t = 0; t < kT; ++t) {
    EFGEN_PRAGMA(HLS UNROLL)
    v[t] = mem[addr + t];
  }
}

static inline void vzero(float (&v)[kT]) {
  EFGEN_PRAGMA(HLS INLINE)
  for (int t = 0; t < kT; ++t) {
    EFGEN_PRAGMA(HLS UNROLL)
    v[t] = 0.0f;
  }
}

// The store of every feature-map / error vector: lanes >= `valid` (channels past C)
// are zero; `relu` clamps at 0; `mask` keeps a lane only where the mask source, read
// at the same offset of the tensor at `mask_base`, is > 0.
struct Store {
  int64_t base;       // output tensor
  int64_t mask_base;  // mask source tensor (same shape and layout)
  bool relu;
  bool mask;
};

static inline Store make_store(const EfgenDesc& d, bool fp, int64_t mask_base) {
  Store s;
  s.base = d.a[7];
  s.mask_base = mask_base;
  s.relu = fp && (d.flags & EFGEN_FLAG_RELU) != 0;
  s.mask = !fp && (d.flags & EFGEN_FLAG_MASK) != 0;
  return s;
}

static inline float finish(const Store& s, float v, bool lane_ok, float m) {
  EFGEN_PRAGMA(HLS INLINE)
  float r = lane_ok ? v : 0.0f;
  if (s.relu && r < 0.0f) r = 0.0f;
  if (s.mask && !(m > 0.0f)) r = 0.0f;
  return r;
}

static inline void vstore(const Store& s, const float* mem_m, float* mem_out, int64_t off,
                   const float (&v)[kT], int valid) {
  EFGEN_PRAGMA(HLS INLINE)
  float m[kT];
  EFGEN_PRAGMA(HLS ARRAY_PARTITION variable=m type=complete)
  if (s.mask) {
    vload(mem_m, s.mask_base + off, m);
  } else {
    vzero(m);
  }
  for (int t = 0; t < kT; ++t) {
    EFGEN_PRAGMA(HLS UNROLL)
    mem_out[s.base + off + t] = finish(s, v[t], t < valid, m[t]);
  }
}

// ------------------------------------------------------------------ element-wise
// RELU_FP, RELU_BP, ADD_FP, ERRSUM on the tensor (batch, out_c, out_h, out_w):
// one read per operand and one write per vector.
static inline void eltwise(const EfgenDesc& d, const float* mem_in, const float* mem_w,
                    float* mem_out) {
  const int C = d.out_c;
  const int CB = n_blocks(C);
  const int64_t HW = int64_t(d.out_h) * d.out_w;
  const int64_t nvec = int64_t(d.batch) * CB * HW;
  const int op = d.op;
  const bool fp = op == EFGEN_OP_RELU_FP || op == EFGEN_OP_ADD_FP;
  const int nsrc =  // operands summed (ADD_FP, ERRSUM)
      op == EFGEN_OP_ADD_FP ? 2 : (d.n_src < 1 ? 1 : (d.n_src > 4 ? 4 : d.n_src));
  const Store st = make_store(d, fp, d.a[6]);
  int64_t p = 0;
  int cb = 0;
  EFGEN_LABEL(eltwise_loop)
  for (int64_t i = 0; i < nvec; ++i) {
    EFGEN_PRAGMA(HLS PIPELINE II=1)
    const int64_t off = i * kT;
    float v[kT], u[kT];
    EFGEN_PRAGMA(HLS ARRAY_PARTITION variable=v type=complete)
    EFGEN_PRAGMA(HLS ARRAY_PARTITION variable=u type=complete)
    vload(mem_in, d.a[0] + off, v);
    if (op == EFGEN_OP_RELU_FP) {
      for (int t = 0; t < kT; ++t) {
        EFGEN_PRAGMA(HLS UNROLL)
        v[t] = v[t] < 0.0f ? 0.0f : v[t];
      }
    } else if (op == EFGEN_OP_RELU_BP) {  // dx = dy where y > 0
      vload(mem_w, d.a[1] + off, u);
      for (int t = 0; t < kT; ++t) {
        EFGEN_PRAGMA(HLS UNROLL)
        v[t] = u[t] > 0.0f ? v[t] : 0.0f;
      }
    } else {  // ADD_FP (a + b) or ERRSUM (((a0 + a1) + a2) + a3); ports alternate
      for (int k = 1; k < 4; ++k) {
        EFGEN_PRAGMA(HLS UNROLL)
        if (k < nsrc) {
          if (k & 1) {
            vload(mem_w, d.a[k] + off, u);
          } else {
            vload(mem_in, d.a[k] + off, u);
          }
          for (int t = 0; t < kT; ++t) {
            EFGEN_PRAGMA(HLS UNROLL)
            v[t] += u[t];
          }
        }
      }
    }
    vstore(st, mem_w, mem_out, off, v, C - cb * kT);
    if (++p == HW) {
      p = 0;
      if (++cb == CB) cb = 0;
    }
  }
}

// -------------------------------------------------------------------- batchnorm
// Per-channel on-chip state is kept as [block][lane] arrays, lanes partitioned.
// Reads C words at `addr` into a[c/T][c%T]; lanes past C become 0.
static inline void load_chan(const float* mem, int64_t addr, int C, float (&a)[kMaxCB][kT]) {
  const int CB = n_blocks(C);
  EFGEN_LABEL(load_chan_loop)
  for (int cb = 0; cb < CB; ++cb) {
    EFGEN_PRAGMA(HLS PIPELINE II=1)
    for (int t = 0; t < kT; ++t) {
      EFGEN_PRAGMA(HLS UNROLL)
      const int c = cb * kT + t;
      a[cb][t] = c < C ? mem[addr + c] : 0.0f;
    }
  }
}

// One streaming pass over the (batch, C, H*W) tensor(s) at a0 (mem_in) and a1 (mem_w)
// accumulating, per channel, s0 += f0 and s1 += f1 in double; for BN FP f0 = x,
// f1 = x*x; for BN BP f0 = dy, f1 = dy*xhat (the product in float, as the golden).
// Each input is read once.
static inline void chan_sums(bool bp, int batch, int C, int64_t HW, const float* mem_in,
                      int64_t a0, const float* mem_w, int64_t a1,
                      const float (&mean)[kMaxCB][kT], const float (&invstd)[kMaxCB][kT],
                      double (&s0)[kMaxCB][kT], double (&s1)[kMaxCB][kT]) {
  const int CB = n_blocks(C);
  for (int cb = 0; cb < CB; ++cb) {
    for (int t = 0; t < kT; ++t) {
      EFGEN_PRAGMA(HLS UNROLL)
      s0[cb][t] = 0.0;
      s1[cb][t] = 0.0;
    }
  }
  double p0[kIL][kT], p1[kIL][kT];
  EFGEN_PRAGMA(HLS ARRAY_PARTITION variable=p0 type=complete dim=2)
  EFGEN_PRAGMA(HLS ARRAY_PARTITION variable=p1 type=complete dim=2)
  static_assert(kIL == 8, "the DEPENDENCE distances below assume kIL == 8");
  int64_t off = 0;
  EFGEN_LABEL(sum_runs)
  for (int run = 0; run < batch * CB; ++run) {  // a run: one (b, cb) block, H*W vectors
    const int cb = run % CB;
    for (int k = 0; k < kIL; ++k) {
      for (int t = 0; t < kT; ++t) {
        EFGEN_PRAGMA(HLS UNROLL)
        p0[k][t] = 0.0;
        p1[k][t] = 0.0;
      }
    }
    int slot = 0;
    EFGEN_LABEL(sum_pixels)
    for (int64_t p = 0; p < HW; ++p) {
      EFGEN_PRAGMA(HLS PIPELINE II=1)
      EFGEN_PRAGMA(HLS DEPENDENCE variable=p0 type=inter direction=RAW distance=8
                   dependent=true)
      EFGEN_PRAGMA(HLS DEPENDENCE variable=p1 type=inter direction=RAW distance=8
                   dependent=true)
      float u[kT], x[kT];
      EFGEN_PRAGMA(HLS ARRAY_PARTITION variable=u type=complete)
      EFGEN_PRAGMA(HLS ARRAY_PARTITION variable=x type=complete)
      vload(mem_in, a0 + off, u);
      if (bp) {
        vload(mem_w, a1 + off, x);
      } else {
        vzero(x);
      }
      for (int t = 0; t < kT; ++t) {
        EFGEN_PRAGMA(HLS UNROLL)
        if (bp) {
          const float xhat = (x[t] - mean[cb][t]) * invstd[cb][t];
          p1[slot][t] += double(u[t] * xhat);  // the product in float, as the golden
        } else {
          p1[slot][t] += double(u[t]) * double(u[t]);  // exact in double
        }
        p0[slot][t] += double(u[t]);
      }
      slot = slot == kIL - 1 ? 0 : slot + 1;
      off += kT;
    }
    for (int k = 0; k < kIL; ++k) {
      for (int t = 0; t < kT; ++t) {
        EFGEN_PRAGMA(HLS UNROLL)
        s0[cb][t] += p0[k][t];
        s1[cb][t] += p1[k][t];
      }
    }
  }
}

// BN_FP: stats pass (read x), per-channel statistics, running-stat update, then the
// normalise pass (read x, write y; fused ReLU with FLAG_RELU).
static inline void bn_fp(const EfgenDesc& d, const float* mem_in, const float* mem_w,
                  float* mem_out) {
  const int C = d.in_c;
  if (C < 1 || C > kMaxC || d.batch < 1) return;
  const int CB = n_blocks(C);
  const int64_t HW = int64_t(d.in_h) * d.in_w;
  const int64_t n = int64_t(d.batch) * HW;  // elements per channel
  if (n < 1) return;
  float mean[kMaxCB][kT], invstd[kMaxCB][kT], gamma[kMaxCB][kT], beta[kMaxCB][kT];
  double s0[kMaxCB][kT], s1[kMaxCB][kT];
  EFGEN_PRAGMA(HLS ARRAY_PARTITION variable=mean type=complete dim=2)
  EFGEN_PRAGMA(HLS ARRAY_PARTITION variable=invstd type=complete dim=2)
  EFGEN_PRAGMA(HLS ARRAY_PARTITION variable=gamma type=complete dim=2)
  EFGEN_PRAGMA(HLS ARRAY_PARTITION variable=beta type=complete dim=2)
  EFGEN_PRAGMA(HLS ARRAY_PARTITION variable=s0 type=complete dim=2)
  EFGEN_PRAGMA(HLS ARRAY_PARTITION variable=s1 type=complete dim=2)
  load_chan(mem_w, d.a[1], C, gamma);
  load_chan(mem_w, d.a[2], C, beta);
  for (int cb = 0; cb < CB; ++cb) {  // unused by the FP sums; keeps them defined
    for (int t = 0; t < kT; ++t) {
      EFGEN_PRAGMA(HLS UNROLL)
      mean[cb][t] = 0.0f;
      invstd[cb][t] = 0.0f;
    }
  }
  chan_sums(false, d.batch, C, HW, mem_in, d.a[0], mem_w, d.a[0], mean, invstd, s0, s1);

  // Statistics (biased var), running update (PyTorch: unbiased var, n/(n-1)).
  const float mom = d.bn_momentum;
  const float keep = float(1.0 - double(d.bn_momentum));
  const float unbias = n > 1 ? float(double(n) / double(n - 1)) : 1.0f;
  const double inv_n = 1.0 / double(n);
  EFGEN_LABEL(bn_stats)
  for (int c = 0; c < C; ++c) {
    EFGEN_PRAGMA(HLS PIPELINE II=1)
    const int cb = c / kT, t = c % kT;
    const double m = s0[cb][t] * inv_n;
    double var = s1[cb][t] * inv_n - m * m;
    if (var < 0.0) var = 0.0;
    const float mf = float(m), vf = float(var);
    mean[cb][t] = mf;
    invstd[cb][t] = 1.0f / std::sqrt(vf + d.eps);
    mem_out[d.a[3] + c] = mf;
    mem_out[d.a[3] + C + c] = vf;
    const float rm = mem_w[d.a[4] + c], rv = mem_w[d.a[5] + c];
    mem_out[d.a[4] + c] = keep * rm + mom * mf;
    mem_out[d.a[5] + c] = keep * rv + mom * (vf * unbias);
  }

  // Normalise pass.
  const Store st = make_store(d, true, 0);
  const int64_t nvec = int64_t(d.batch) * CB * HW;
  int64_t p = 0;
  int cb = 0;
  EFGEN_LABEL(bn_normalise)
  for (int64_t i = 0; i < nvec; ++i) {
    EFGEN_PRAGMA(HLS PIPELINE II=1)
    const int64_t off = i * kT;
    float x[kT];
    EFGEN_PRAGMA(HLS ARRAY_PARTITION variable=x type=complete)
    vload(mem_in, d.a[0] + off, x);
    for (int t = 0; t < kT; ++t) {
      EFGEN_PRAGMA(HLS UNROLL)
      const float xhat = (x[t] - mean[cb][t]) * invstd[cb][t];
      x[t] = gamma[cb][t] * xhat + beta[cb][t];
    }
    vstore(st, mem_w, mem_out, off, x, C - cb * kT);
    if (++p == HW) {
      p = 0;
      if (++cb == CB) cb = 0;
    }
  }
}

// BN_BP: sums pass (read dy, x) -> dbeta = sum(dy), dgamma = sum(dy*xhat); debug
// copies; SGD of gamma/beta (FLAG_TRAIN); dx pass (FLAG_DX; read dy, x, write dx)
// with the OLD gamma; FLAG_MASK by x = a[1] (the x already read).
static inline void bn_bp(const EfgenDesc& d, const float* mem_in, const float* mem_w,
                  float* mem_out) {
  const int C = d.in_c;
  if (C < 1 || C > kMaxC || d.batch < 1) return;
  const int CB = n_blocks(C);
  const int64_t HW = int64_t(d.in_h) * d.in_w;
  const int64_t n = int64_t(d.batch) * HW;
  if (n < 1) return;
  float mean[kMaxCB][kT], invstd[kMaxCB][kT], gamma[kMaxCB][kT];
  float dgamma[kMaxCB][kT], dbeta[kMaxCB][kT], coef[kMaxCB][kT];
  double s0[kMaxCB][kT], s1[kMaxCB][kT];
  EFGEN_PRAGMA(HLS ARRAY_PARTITION variable=mean type=complete dim=2)
  EFGEN_PRAGMA(HLS ARRAY_PARTITION variable=invstd type=complete dim=2)
  EFGEN_PRAGMA(HLS ARRAY_PARTITION variable=gamma type=complete dim=2)
  EFGEN_PRAGMA(HLS ARRAY_PARTITION variable=dgamma type=complete dim=2)
  EFGEN_PRAGMA(HLS ARRAY_PARTITION variable=dbeta type=complete dim=2)
  EFGEN_PRAGMA(HLS ARRAY_PARTITION variable=coef type=complete dim=2)
  EFGEN_PRAGMA(HLS ARRAY_PARTITION variable=s0 type=complete dim=2)
  EFGEN_PRAGMA(HLS ARRAY_PARTITION variable=s1 type=complete dim=2)
  load_chan(mem_w, d.a[2], C, mean);
  load_chan(mem_w, d.a[2] + C, C, invstd);  // the biased var, inverted below
  load_chan(mem_w, d.a[3], C, gamma);
  for (int cb = 0; cb < CB; ++cb) {
    for (int t = 0; t < kT; ++t) {
      EFGEN_PRAGMA(HLS UNROLL)
      invstd[cb][t] = 1.0f / std::sqrt(invstd[cb][t] + d.eps);
    }
  }
  chan_sums(true, d.batch, C, HW, mem_in, d.a[0], mem_w, d.a[1], mean, invstd, s0, s1);
  const float nf = float(n);
  for (int cb = 0; cb < CB; ++cb) {
    for (int t = 0; t < kT; ++t) {
      EFGEN_PRAGMA(HLS UNROLL)
      dbeta[cb][t] = float(s0[cb][t]);
      dgamma[cb][t] = float(s1[cb][t]);
      coef[cb][t] = gamma[cb][t] * invstd[cb][t] / nf;
    }
  }

  // Debug copies of the gradients (before weight decay): dgamma[C] then dbeta[C].
  if (d.a[6] != 0) {
    EFGEN_LABEL(bn_debug_copy)
    for (int c = 0; c < C; ++c) {
      EFGEN_PRAGMA(HLS PIPELINE II=1)
      mem_out[d.a[6] + c] = dgamma[c / kT][c % kT];
      mem_out[d.a[6] + C + c] = dbeta[c / kT][c % kT];
    }
  }

  // SGD of gamma (a[3], velocity a[5]) and beta (a[4], velocity a[5] + C).
  if (d.flags & EFGEN_FLAG_TRAIN) {
    EFGEN_LABEL(bn_sgd)
    for (int c = 0; c < 2 * C; ++c) {
      EFGEN_PRAGMA(HLS PIPELINE II=1)
      const bool is_beta = c >= C;
      const int ch = is_beta ? c - C : c;
      const int64_t pa = is_beta ? d.a[4] + ch : d.a[3] + ch;
      const float g = is_beta ? dbeta[ch / kT][ch % kT] : dgamma[ch / kT][ch % kT];
      const float prm = mem_w[pa];
      const float vel = d.momentum * mem_w[d.a[5] + c] + (g + d.weight_decay * prm);
      mem_out[d.a[5] + c] = vel;
      mem_out[pa] = prm - d.lr * vel;
    }
  }

  if (!(d.flags & EFGEN_FLAG_DX)) return;
  Store st = make_store(d, false, d.a[1]);
  const int64_t nvec = int64_t(d.batch) * CB * HW;
  int64_t p = 0;
  int cb = 0;
  EFGEN_LABEL(bn_dx)
  for (int64_t i = 0; i < nvec; ++i) {
    EFGEN_PRAGMA(HLS PIPELINE II=1)
    const int64_t off = i * kT;
    float dy[kT], x[kT], dx[kT];
    EFGEN_PRAGMA(HLS ARRAY_PARTITION variable=dy type=complete)
    EFGEN_PRAGMA(HLS ARRAY_PARTITION variable=x type=complete)
    EFGEN_PRAGMA(HLS ARRAY_PARTITION variable=dx type=complete)
    vload(mem_in, d.a[0] + off, dy);
    vload(mem_w, d.a[1] + off, x);
    for (int t = 0; t < kT; ++t) {
      EFGEN_PRAGMA(HLS UNROLL)
      const float xhat = (x[t] - mean[cb][t]) * invstd[cb][t];
      const float e = coef[cb][t] * ((nf * dy[t] - dbeta[cb][t]) - xhat * dgamma[cb][t]);
      dx[t] = finish(st, e, cb * kT + t < C, x[t]);  // mask source = x (a[1])
    }
    for (int t = 0; t < kT; ++t) {
      EFGEN_PRAGMA(HLS UNROLL)
      mem_out[st.base + off + t] = dx[t];
    }
    if (++p == HW) {
      p = 0;
      if (++cb == CB) cb = 0;
    }
  }
}

// --------------------------------------------------------------------- pooling
// FP: one iteration per (output pixel, window offset), window offsets innermost in
// row-major order; the output vector is stored after the window's last offset.
// Max: padding is -inf, the FIRST maximum wins (strict >), argmax = i*kw + j (float).
// Avg: padding counts as zero, divisor kh*kw. Global pooling is kh = in_h,
// kw = in_w, stride 1, pad 0.
static inline void pool_fp(const EfgenDesc& d, const float* mem_in, const float* mem_w,
                    float* mem_out) {
  const bool is_max = d.op == EFGEN_OP_MAXPOOL_FP;
  const int C = d.in_c, H = d.in_h, W = d.in_w, OH = d.out_h, OW = d.out_w;
  const int KH = d.kh, KW = d.kw, S = d.stride, P = d.pad;
  const int CB = n_blocks(C);
  const int64_t HW = int64_t(H) * W;
  const int64_t total = int64_t(d.batch) * CB * OH * OW * KH * KW;
  const float ninf = -std::numeric_limits<float>::infinity();
  const float div = float(KH * KW);
  const Store st = make_store(d, true, 0);
  Store sa = st;  // argmax: plain store
  sa.base = d.a[6];
  sa.relu = false;
  int i = 0, j = 0, ox = 0, oy = 0, cb = 0;
  int64_t in_base = d.a[0];  // lane 0 of pixel (0, 0) of the current (b, cb) block
  int64_t out_off = 0;
  float acc[kT], idx[kT];
  EFGEN_PRAGMA(HLS ARRAY_PARTITION variable=acc type=complete)
  EFGEN_PRAGMA(HLS ARRAY_PARTITION variable=idx type=complete)
  vzero(acc);
  vzero(idx);
  EFGEN_LABEL(pool_fp_loop)
  for (int64_t it = 0; it < total; ++it) {
    EFGEN_PRAGMA(HLS PIPELINE II=1)
    const int r = oy * S - P + i, x = ox * S - P + j;
    const bool inside = r >= 0 && r < H && x >= 0 && x < W;
    const int k = i * KW + j;
    float v[kT];
    EFGEN_PRAGMA(HLS ARRAY_PARTITION variable=v type=complete)
    if (inside) {
      vload(mem_in, in_base + (int64_t(r) * W + x) * kT, v);
    } else {
      for (int t = 0; t < kT; ++t) {
        EFGEN_PRAGMA(HLS UNROLL)
        v[t] = is_max ? ninf : 0.0f;
      }
    }
    for (int t = 0; t < kT; ++t) {
      EFGEN_PRAGMA(HLS UNROLL)
      if (is_max) {
        if (k == 0 || v[t] > acc[t]) {
          acc[t] = v[t];
          idx[t] = float(k);
        }
      } else {
        acc[t] = k == 0 ? v[t] : acc[t] + v[t];
      }
    }
    if (++j == KW) {
      j = 0;
      if (++i == KH) {  // window done: store
        i = 0;
        float y[kT];
        EFGEN_PRAGMA(HLS ARRAY_PARTITION variable=y type=complete)
        for (int t = 0; t < kT; ++t) {
          EFGEN_PRAGMA(HLS UNROLL)
          y[t] = is_max ? acc[t] : acc[t] / div;
        }
        vstore(st, mem_w, mem_out, out_off, y, C - cb * kT);
        if (is_max) vstore(sa, mem_w, mem_out, out_off, idx, C - cb * kT);
        out_off += kT;
        if (++ox == OW) {
          ox = 0;
          if (++oy == OH) {
            oy = 0;
            in_base += HW * kT;
            if (++cb == CB) cb = 0;
          }
        }
      }
    }
  }
}

// BP: one iteration per (input pixel, candidate window): the windows covering input
// row r are oy = (r+P)/S - si, window row i = (r+P)%S + si*S, si = 0..ceil(kh/S)-1
// (i ascending), likewise for columns; the error is gathered in the golden's (i, j)
// order. Max: a window contributes dy where its argmax (a[1]) equals i*kw + j. Avg:
// each window contributes dy / (kh*kw). Every dx vector is written (zeros included).
static inline void pool_bp(const EfgenDesc& d, const float* mem_in, const float* mem_w,
                    float* mem_out) {
  const bool is_max = d.op == EFGEN_OP_MAXPOOL_BP;
  const int C = d.in_c, H = d.in_h, W = d.in_w, OH = d.out_h, OW = d.out_w;
  const int KH = d.kh, KW = d.kw, S = d.stride, P = d.pad;
  if (S < 1 || KH < 1 || KW < 1) return;
  const int CB = n_blocks(C);
  const int NI = (KH + S - 1) / S, NJ = (KW + S - 1) / S;
  const int64_t OHW = int64_t(OH) * OW;
  const int64_t total = int64_t(d.batch) * CB * H * W * NI * NJ;
  const float div = float(KH * KW);
  const Store st = make_store(d, false, d.a[6]);
  const int q0 = P / S, r0 = P % S;
  int si = 0, sj = 0, x = 0, r = 0, cb = 0;
  int rq = q0, rr = r0, xq = q0, xr = r0;  // (r+P)/S, (r+P)%S, (x+P)/S, (x+P)%S
  int64_t dy_base = 0;  // vector offset of the (b, cb) block in dy / argmax
  int64_t out_off = 0;
  float acc[kT];
  EFGEN_PRAGMA(HLS ARRAY_PARTITION variable=acc type=complete)
  vzero(acc);
  EFGEN_LABEL(pool_bp_loop)
  for (int64_t it = 0; it < total; ++it) {
    EFGEN_PRAGMA(HLS PIPELINE II=1)
    const int oy = rq - si, wi = rr + si * S;
    const int ox = xq - sj, wj = xr + sj * S;
    const bool hit = oy >= 0 && oy < OH && wi < KH && ox >= 0 && ox < OW && wj < KW;
    const bool first = si == 0 && sj == 0;
    float g[kT], a[kT];
    EFGEN_PRAGMA(HLS ARRAY_PARTITION variable=g type=complete)
    EFGEN_PRAGMA(HLS ARRAY_PARTITION variable=a type=complete)
    if (hit) {
      const int64_t o = dy_base + (int64_t(oy) * OW + ox) * kT;
      vload(mem_in, d.a[0] + o, g);
      if (is_max) {
        vload(mem_w, d.a[1] + o, a);
      } else {
        vzero(a);
      }
    } else {
      vzero(g);
      vzero(a);
    }
    const float k = float(wi * KW + wj);
    for (int t = 0; t < kT; ++t) {
      EFGEN_PRAGMA(HLS UNROLL)
      float c = 0.0f;
      if (hit) c = is_max ? (a[t] == k ? g[t] : 0.0f) : g[t] / div;
      acc[t] = first ? c : acc[t] + c;
    }
    if (++sj == NJ) {
      sj = 0;
      if (++si == NI) {  // all candidate windows seen: store dx
        si = 0;
        vstore(st, mem_w, mem_out, out_off, acc, C - cb * kT);
        out_off += kT;
        if (++xr == S) {
          xr = 0;
          ++xq;
        }
        if (++x == W) {
          x = 0;
          xq = q0;
          xr = r0;
          if (++rr == S) {
            rr = 0;
            ++rq;
          }
          if (++r == H) {  // next (b, cb) block
            r = 0;
            rq = q0;
            rr = r0;
            dy_base += OHW * kT;
            if (++cb == CB) cb = 0;
          }
        }
      }
    }
  }
}

// ------------------------------------------------------------ option-A shortcut
// Output lane t of block cbo is input channel ci = cbo*T + t - lo, lo = (out_c -
// in_c)/2; the T source channels of a vector span at most two input blocks, read as
// two vectors (one per read port) and lane-shifted.
static inline void lane_shift(const float (&lo_v)[kT], const float (&hi_v)[kT], int sh,
                       float (&out)[kT]) {
  EFGEN_PRAGMA(HLS INLINE)
  for (int t = 0; t < kT; ++t) {
    EFGEN_PRAGMA(HLS UNROLL)
    const int s = t + sh;
    out[t] = s < kT ? lo_v[s < kT ? s : 0] : hi_v[s >= kT ? s - kT : 0];
  }
}

static inline void shortcut_fp(const EfgenDesc& d, const float* mem_in, const float* mem_w,
                        float* mem_out) {
  const int Ci = d.in_c, Co = d.out_c, W = d.in_w, OH = d.out_h, OW = d.out_w;
  const int S = d.stride;
  if (Co < Ci) return;
  const int lo = (Co - Ci) / 2;
  const int CBi = n_blocks(Ci), CBo = n_blocks(Co);
  const int64_t HW = int64_t(d.in_h) * W;
  const int64_t total = int64_t(d.batch) * CBo * OH * OW;
  const Store st = make_store(d, true, 0);
  int ox = 0, oy = 0, cbo = 0, b = 0;
  EFGEN_LABEL(shortcut_fp_loop)
  for (int64_t it = 0; it < total; ++it) {
    EFGEN_PRAGMA(HLS PIPELINE II=1)
    const int base = cbo * kT - lo;  // input channel of lane 0
    const int q = floor_div(base, kT), sh = base - q * kT;
    const int64_t pix = (int64_t(oy) * S * W + int64_t(ox) * S) * kT;
    float va[kT], vb[kT], y[kT];
    EFGEN_PRAGMA(HLS ARRAY_PARTITION variable=va type=complete)
    EFGEN_PRAGMA(HLS ARRAY_PARTITION variable=vb type=complete)
    EFGEN_PRAGMA(HLS ARRAY_PARTITION variable=y type=complete)
    if (q >= 0 && q < CBi) {
      vload(mem_in, d.a[0] + (int64_t(b) * CBi + q) * HW * kT + pix, va);
    } else {
      vzero(va);
    }
    if (sh != 0 && q + 1 >= 0 && q + 1 < CBi) {
      vload(mem_w, d.a[0] + (int64_t(b) * CBi + q + 1) * HW * kT + pix, vb);
    } else {
      vzero(vb);
    }
    lane_shift(va, vb, sh, y);
    for (int t = 0; t < kT; ++t) {
      EFGEN_PRAGMA(HLS UNROLL)
      const int ci = base + t;
      if (ci < 0 || ci >= Ci) y[t] = 0.0f;
    }
    vstore(st, mem_w, mem_out, it * kT, y, Co - cbo * kT);
    if (++ox == OW) {
      ox = 0;
      if (++oy == OH) {
        oy = 0;
        if (++cbo == CBo) {
          cbo = 0;
          ++b;
        }
      }
    }
  }
}

// dx lane t of block cbi, pixel (r, x): dy channel cbi*T + t + lo at (r/S, x/S) when
// r and x are multiples of S, else 0.
static inline void shortcut_bp(const EfgenDesc& d, const float* mem_in, const float* mem_w,
                        float* mem_out) {
  const int Ci = d.in_c, Co = d.out_c, H = d.in_h, W = d.in_w, OW = d.out_w;
  const int S = d.stride;
  if (Co < Ci || S < 1) return;
  const int lo = (Co - Ci) / 2;
  const int CBi = n_blocks(Ci), CBo = n_blocks(Co);
  const int64_t OHW = int64_t(d.out_h) * OW;
  const int64_t total = int64_t(d.batch) * CBi * H * W;
  const Store st = make_store(d, false, d.a[6]);
  int x = 0, r = 0, xs = 0, rs = 0, ox = 0, oy = 0, cbi = 0, b = 0;
  EFGEN_LABEL(shortcut_bp_loop)
  for (int64_t it = 0; it < total; ++it) {
    EFGEN_PRAGMA(HLS PIPELINE II=1)
    const int base = cbi * kT + lo;  // dy channel of lane 0 (>= 0)
    const int q = base / kT, sh = base % kT;
    const bool sampled = rs == 0 && xs == 0;
    const int64_t pix = (int64_t(oy) * OW + ox) * kT;
    float va[kT], vb[kT], v[kT];
    EFGEN_PRAGMA(HLS ARRAY_PARTITION variable=va type=complete)
    EFGEN_PRAGMA(HLS ARRAY_PARTITION variable=vb type=complete)
    EFGEN_PRAGMA(HLS ARRAY_PARTITION variable=v type=complete)
    if (sampled && q < CBo) {
      vload(mem_in, d.a[0] + (int64_t(b) * CBo + q) * OHW * kT + pix, va);
    } else {
      vzero(va);
    }
    if (sampled && sh != 0 && q + 1 < CBo) {
      vload(mem_w, d.a[0] + (int64_t(b) * CBo + q + 1) * OHW * kT + pix, vb);
    } else {
      vzero(vb);
    }
    lane_shift(va, vb, sh, v);
    vstore(st, mem_w, mem_out, it * kT, v, Ci - cbi * kT);
    if (++xs == S) {
      xs = 0;
      ++ox;
    }
    if (++x == W) {
      x = 0;
      xs = 0;
      ox = 0;
      if (++rs == S) {
        rs = 0;
        ++oy;
      }
      if (++r == H) {
        r = 0;
        rs = 0;
        oy = 0;
        if (++cbi == CBi) {
          cbi = 0;
          ++b;
        }
      }
    }
  }
}

// ---------------------------------------------------------------------- flatten
// (B, C, H, W) blocked <-> (B, F = C*H*W, 1, 1) blocked, flat index f = c*H*W + r*W + x;
// the (B, F) side is per image F contiguous words padded to ceil(F/T)*T. A transpose:
// one word per iteration.
static inline void flatten_fp(const EfgenDesc& d, const float* mem_in, const float* mem_w,
                       float* mem_out) {
  (void)mem_w;
  const int C = d.in_c;
  const int CB = n_blocks(C);
  const int64_t HW = int64_t(d.in_h) * d.in_w;
  const int64_t F = int64_t(C) * HW;
  const int64_t FW = (F + kT - 1) / kT * kT;  // words per image on the flat side
  const int64_t total = int64_t(d.batch) * FW;
  const bool relu = (d.flags & EFGEN_FLAG_RELU) != 0;
  int64_t f = 0, p = 0, in_img = d.a[0];
  int lane = 0, blk = 0;
  EFGEN_LABEL(flatten_fp_loop)
  for (int64_t it = 0; it < total; ++it) {
    EFGEN_PRAGMA(HLS PIPELINE II=1)
    float v = 0.0f;
    if (f < F) v = mem_in[in_img + (int64_t(blk) * HW + p) * kT + lane];
    if (relu && v < 0.0f) v = 0.0f;
    mem_out[d.a[7] + it] = v;
    if (++p == HW) {
      p = 0;
      if (++lane == kT) {
        lane = 0;
        ++blk;
      }
    }
    if (++f == FW) {
      f = 0;
      p = 0;
      lane = 0;
      blk = 0;
      in_img += int64_t(CB) * HW * kT;
    }
  }
}

static inline void flatten_bp(const EfgenDesc& d, const float* mem_in, const float* mem_w,
                       float* mem_out) {
  const int C = d.in_c;
  const int CB = n_blocks(C);
  const int64_t HW = int64_t(d.in_h) * d.in_w;
  const int64_t F = int64_t(C) * HW;
  const int64_t FW = (F + kT - 1) / kT * kT;
  const int64_t total = int64_t(d.batch) * CB * HW * kT;
  const bool mask = (d.flags & EFGEN_FLAG_MASK) != 0;
  int64_t p = 0, dy_img = d.a[0];
  int lane = 0, cb = 0;
  EFGEN_LABEL(flatten_bp_loop)
  for (int64_t it = 0; it < total; ++it) {
    EFGEN_PRAGMA(HLS PIPELINE II=1)
    const int c = cb * kT + lane;
    float v = 0.0f;
    if (c < C) v = mem_in[dy_img + int64_t(c) * HW + p];
    if (mask && !(mem_w[d.a[6] + it] > 0.0f)) v = 0.0f;
    mem_out[d.a[7] + it] = v;
    if (++lane == kT) {
      lane = 0;
      if (++p == HW) {
        p = 0;
        if (++cb == CB) {
          cb = 0;
          dy_img += FW;
        }
      }
    }
  }
}

}  // namespace efgen_vec

// Validates a descriptor for the vector engine. Geometry rules (what the engine reads):
//   all ops: batch >= 1.  RELU_FP/BP, ADD_FP, ERRSUM: out_c, out_h, out_w >= 1.
//   BN_FP/BP: in_c, in_h, in_w >= 1 and in_c <= EFGEN_MAX_C.
//   pooling: in_* >= 1, kh, kw, stride >= 1, 0 <= pad, kh <= in_h + 2*pad (likewise w),
//     out_h = (in_h + 2*pad - kh)/stride + 1 (floor; likewise out_w).
//   SHORTCUT: in_* >= 1, out_c >= in_c, stride >= 1, out_h = ceil(in_h/stride) (and w).
//   FLATTEN: in_* >= 1, out_c = in_c*in_h*in_w, out_h = out_w = 1.
// Address slots used (must be >= 0): BN_FP 0-5, 7; BN_BP 0-5, 6 (0 = no debug copy),
// 7 with FLAG_DX; MAXPOOL_FP 0, 6, 7; MAXPOOL_BP, RELU_BP 0, 1, 7; ADD_FP 0, 1, 7;
// ERRSUM 0..n_src-1, 7; the rest 0, 7; plus 6 with FLAG_MASK on a BP op / ERRSUM.
static inline int efgen_vector_check(const EfgenDesc& d) {
  const int op = d.op;
  const bool mask = (d.flags & EFGEN_FLAG_MASK) != 0;
  uint32_t slots = 0x81;  // a[0], a[7]
  bool geo = d.batch >= 1;
  const bool in_ok = d.in_c >= 1 && d.in_h >= 1 && d.in_w >= 1;
  const bool out_ok = d.out_c >= 1 && d.out_h >= 1 && d.out_w >= 1;
  switch (op) {
    case EFGEN_OP_RELU_FP:
    case EFGEN_OP_ADD_FP:
    case EFGEN_OP_RELU_BP:
    case EFGEN_OP_ERRSUM:
      geo = geo && out_ok;
      if (op == EFGEN_OP_ERRSUM) {
        if (d.n_src < 1 || d.n_src > 4) return EFGEN_VECTOR_ERR_NSRC;
        slots |= (1u << d.n_src) - 1u;
      }
      if (op == EFGEN_OP_ADD_FP || op == EFGEN_OP_RELU_BP) slots |= 0x2;
      if (op != EFGEN_OP_RELU_FP && op != EFGEN_OP_ADD_FP && mask) slots |= 0x40;
      break;
    case EFGEN_OP_BN_FP:
    case EFGEN_OP_BN_BP:
      if (!geo || !in_ok) return EFGEN_VECTOR_ERR_GEOMETRY;
      if (d.in_c > efgen_vec::kMaxC) return EFGEN_VECTOR_ERR_CHANNELS;
      slots = 0x3f;
      if (op == EFGEN_OP_BN_FP || (d.flags & EFGEN_FLAG_DX)) slots |= 0x80;
      if (op == EFGEN_OP_BN_BP) slots |= 0x40;
      break;
    case EFGEN_OP_MAXPOOL_FP:
    case EFGEN_OP_MAXPOOL_BP:
    case EFGEN_OP_AVGPOOL_FP:
    case EFGEN_OP_AVGPOOL_BP: {
      const bool k_ok = d.kh >= 1 && d.kw >= 1 && d.stride >= 1 && d.pad >= 0;
      geo = geo && in_ok && k_ok && d.kh <= d.in_h + 2 * d.pad &&
            d.kw <= d.in_w + 2 * d.pad;
      geo = geo && d.out_h == (d.in_h + 2 * d.pad - d.kh) / d.stride + 1 &&
            d.out_w == (d.in_w + 2 * d.pad - d.kw) / d.stride + 1;
      if (op == EFGEN_OP_MAXPOOL_FP) slots |= 0x40;
      if (op == EFGEN_OP_MAXPOOL_BP) slots |= 0x2;
      if ((op == EFGEN_OP_MAXPOOL_BP || op == EFGEN_OP_AVGPOOL_BP) && mask) slots |= 0x40;
      break;
    }
    case EFGEN_OP_SHORTCUT_FP:
    case EFGEN_OP_SHORTCUT_BP:
      geo = geo && in_ok && d.stride >= 1 && d.out_c >= d.in_c &&
            d.out_h == (d.in_h + d.stride - 1) / d.stride &&
            d.out_w == (d.in_w + d.stride - 1) / d.stride;
      if (op == EFGEN_OP_SHORTCUT_BP && mask) slots |= 0x40;
      break;
    case EFGEN_OP_FLATTEN_FP:
    case EFGEN_OP_FLATTEN_BP:
      geo = geo && in_ok && int64_t(d.out_c) == int64_t(d.in_c) * d.in_h * d.in_w &&
            d.out_h == 1 && d.out_w == 1;
      if (op == EFGEN_OP_FLATTEN_BP && mask) slots |= 0x40;
      break;
    default:
      return EFGEN_VECTOR_ERR_OP;
  }
  if (!geo) return EFGEN_VECTOR_ERR_GEOMETRY;
  for (int i = 0; i < 8; ++i) {
    if (((slots >> i) & 1u) && d.a[i] < 0) return EFGEN_VECTOR_ERR_ADDRESS;
  }
  return EFGEN_VECTOR_OK;
}

// One descriptor of the vector engine (see efgen_vector_check for what is rejected).
static inline void efgen_vector_engine(const EfgenDesc& d, const float* mem_in, const float* mem_w,
                                float* mem_out) {
  if (efgen_vector_check(d) != EFGEN_VECTOR_OK) return;
  switch (d.op) {
    case EFGEN_OP_BN_FP:
      efgen_vec::bn_fp(d, mem_in, mem_w, mem_out);
      break;
    case EFGEN_OP_BN_BP:
      efgen_vec::bn_bp(d, mem_in, mem_w, mem_out);
      break;
    case EFGEN_OP_RELU_FP:
    case EFGEN_OP_RELU_BP:
    case EFGEN_OP_ADD_FP:
    case EFGEN_OP_ERRSUM:
      efgen_vec::eltwise(d, mem_in, mem_w, mem_out);
      break;
    case EFGEN_OP_MAXPOOL_FP:
    case EFGEN_OP_AVGPOOL_FP:
      efgen_vec::pool_fp(d, mem_in, mem_w, mem_out);
      break;
    case EFGEN_OP_MAXPOOL_BP:
    case EFGEN_OP_AVGPOOL_BP:
      efgen_vec::pool_bp(d, mem_in, mem_w, mem_out);
      break;
    case EFGEN_OP_SHORTCUT_FP:
      efgen_vec::shortcut_fp(d, mem_in, mem_w, mem_out);
      break;
    case EFGEN_OP_SHORTCUT_BP:
      efgen_vec::shortcut_bp(d, mem_in, mem_w, mem_out);
      break;
    case EFGEN_OP_FLATTEN_FP:
      efgen_vec::flatten_fp(d, mem_in, mem_w, mem_out);
      break;
    case EFGEN_OP_FLATTEN_BP:
      efgen_vec::flatten_bp(d, mem_in, mem_w, mem_out);
      break;
    default:
      break;
  }
}

#endif  // EFGEN_VECTOR_ENGINE_H
