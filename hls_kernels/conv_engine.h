// conv_engine.h - the unified Tm x Tn convolution engine: FP, BP and WU of conv and
// linear layers, one descriptor (efgen_desc.h) per call.
//
//   void efgen_conv_engine(const EfgenDesc& d, const float* mem_in, const float* mem_w,
//                          float* mem_out);
//   int  efgen_conv_check(const EfgenDesc& d);   // 0, or an EfgenConvStatus error
//
// The three pointers address the same DRAM image of 32-bit words (in C simulation they
// are the same pointer; in hardware three m_axi masters): feature-map and error reads
// go through mem_in, weight and parameter reads through mem_w, every write through
// mem_out. A descriptor that efgen_conv_check rejects is not executed (nothing is
// read or written), so no buffer can overflow whatever the host sends.
//
// Vitis HLS C++ (2022.2+) that also compiles, unchanged and warning-free, with
// g++ -std=c++17 -Wall -Wextra -Werror -pedantic. Standard types only; no dynamic
// allocation, no recursion, no STL in the kernel.
//
// Every function has internal linkage (static inline). The on-chip buffers are static
// locals of efgen_conv_engine; with external linkage g++ would emit them (and the
// helpers, whose bodies depend on efgen_params.h) as shared "unique"/weak symbols, so
// two C-simulation libraries built with different parameters in one process would
// silently share the first one's buffers and code.
//
// ---- Pragma scheme -------------------------------------------------------------------
// Every HLS pragma is written EFGEN_HLS(<pragma text without "HLS">), for example
// EFGEN_HLS(PIPELINE II=1). Under __SYNTHESIS__ (defined by Vitis HLS) it becomes
// _Pragma("HLS PIPELINE II=1"); otherwise it expands to nothing, so g++ never sees an
// unknown pragma (-Wall includes -Wunknown-pragmas). EFGEN_HLS goes through one extra
// macro level, so macros in its argument (EFGEN_MAX_TR, ...) are expanded before the
// text is stringised: the tool sees literals. EFGEN_PRAGMA(x) (the same thing without
// the "HLS " prefix and without that expansion) is what the generated top function
// uses; both are defined only if not defined already, so headers can share them.
// Arguments hold one literal or one macro naming a literal (never an expression).
//
// ---- Engine (see efgen/golden/tiled.py and efgen/model/engine.py) -------------------
// Phase roles: OC = channels on the Tm accumulator lanes, RC = channels on the Tn
// reduction lanes; MB = ceil(OC/Tm) output blocks, NB = ceil(RC/Tn) reduction blocks.
//   FP: OC = out_c, RC = in_c; output map out_h x out_w; source x (a[0]), stride S,
//       padding P.
//   BP: OC = in_c, RC = out_c; output map in_h x in_w (the layer's INPUT); source dy
//       (a[0]) zero-dilated by S and padded by K-1-P by the loader's address logic
//       (only real dy words are read); stride-1 engine; weights flipped by 180 degrees
//       and transposed while they are loaded.
//   WU: gradient accumulators acc[Tm][Tn] in the weight buffer; error tiles of dy (a[0],
//       Tm lanes) in the OFM buffer; source x (a[1]), stride S, padding P.
// Per weight chunk of mc output blocks: FP/BP load the chunk's weights once (so once per
// batch), WU zeroes the chunk's accumulators; then a pipeline of steps over
//   image, row tile, column tile, [wo: output block of the chunk,] reduction block
// Each step loads one input tile (Tn lanes, halo ((tr-1)*s+K) x ((tc-1)*s+K), zero
// outside the map and beyond RC) into one IFM half while the previous step computes from
// the other half (ping-pong), and a finished output group is stored from one OFM half
// while the next group accumulates into the other. Order "wo" (0): one output block per
// group, reduction blocks innermost. Order "io" (1): the input tile is loaded once and
// all mc output blocks of the chunk accumulate into the OFM half (mc*tr*tc words per
// bank); the group is the whole tile. WU works like "io": its first step of a tile also
// loads the chunk's mc error tiles. After the batch, WU writes back w and v with SGD.
// In this C model the three parts of a step run one after the other.
//
// Linear layers (in = out = 1x1, K = 1, P = 0) run image-major: the batch is the column
// axis of a 1 x batch map (as the analytical model prices them), so tc images share
// every step; with tr = tc = 1 this is image by image. Addresses are unchanged.
//
// Synthesis notes: the accumulating loops carry a dependence through the OFM (FP/BP,
// distance tr*tc) or weight buffer (WU, distance K*K); no false-dependence pragma is
// given, so the tool raises II where a tile is smaller than the adder latency. The
// parts of a step are written as separate calls on separate buffer halves; overlapping
// them in hardware is left to the tool (or to a later dataflow rewrite).
#ifndef EFGEN_CONV_ENGINE_H
#define EFGEN_CONV_ENGINE_H

#include <cstdint>

#include "efgen_desc.h"
#include "efgen_params.h"

#include "efgen_hls.h"

// Depth of the per-lane bias buffer (FP bias values, WU bias-gradient accumulators):
// one word per output block of a chunk. The generated params header may set it to the
// schedule's largest chunk; by default it covers the largest channel count.
#ifndef EFGEN_MAX_MC
#ifdef EFGEN_MAX_C
#define EFGEN_MAX_MC ((EFGEN_MAX_C + EFGEN_TM - 1) / EFGEN_TM)
#else
#define EFGEN_MAX_MC EFGEN_WBUF_DEPTH
#endif
#endif

enum EfgenConvStatus : int32_t {
  EFGEN_CONV_OK = 0,
  EFGEN_CONV_ERR_OP = 1,        // not CONV_FP / CONV_BP / CONV_WU
  EFGEN_CONV_ERR_GEOMETRY = 2,  // shapes, kernel, stride, padding inconsistent
  EFGEN_CONV_ERR_TILING = 3,    // tr, tc, mc < 1 or order not 0/1
  EFGEN_CONV_ERR_ADDRESS = 4,   // a used address slot is negative
  EFGEN_CONV_ERR_IFM = 5,       // input tile (with halo) exceeds EFGEN_IFM_DEPTH
  EFGEN_CONV_ERR_OFM = 6,       // output/error tiles exceed EFGEN_OFM_DEPTH
  EFGEN_CONV_ERR_WBUF = 7,      // weight chunk exceeds EFGEN_WBUF_DEPTH
  EFGEN_CONV_ERR_BIAS = 8,      // chunk exceeds EFGEN_MAX_MC with FLAG_BIAS
};

namespace efgen_ce {

constexpr int TM = EFGEN_TM;
constexpr int TN = EFGEN_TN;
constexpr int T = EFGEN_LANES;
constexpr int IFM_DEPTH = EFGEN_IFM_DEPTH;
constexpr int OFM_DEPTH = EFGEN_OFM_DEPTH;
constexpr int WBUF_DEPTH = EFGEN_WBUF_DEPTH;
constexpr int MAX_MC = EFGEN_MAX_MC;

static_assert(TM >= 1 && TN >= 1 && T >= 1, "lanes must be positive");
static_assert(TM % T == 0 && TN % T == 0, "EFGEN_LANES must divide EFGEN_TM and EFGEN_TN");
static_assert(IFM_DEPTH >= 1 && OFM_DEPTH >= 1 && WBUF_DEPTH >= 1 && MAX_MC >= 1,
              "buffer depths must be positive");

static inline int cdiv(int a, int b) { return a / b + (a % b != 0); }  // a >= 0, b > 0
static inline int imin(int a, int b) { return a < b ? a : b; }

// ---- DRAM layouts (efgen/layout.py) ----------------------------------------------------

// Feature map / error (B, C, H, W), blocked by T lanes:
//   ((b*ceil(C/T) + c/T)*H*W + r*W + x)*T + c%T
static inline int64_t fm_addr(int b, int c, int r, int x, int C, int H, int W) {
  const int64_t blk = int64_t(b) * cdiv(C, T) + c / T;
  return (blk * H * W + int64_t(r) * W + x) * T + c % T;
}

// Weights (M, N, K, K), blocked by (Tm, Tn):
//   (m/Tm*ceil(N/Tn) + n/Tn)*K*K*Tm*Tn + ((i*K + j)*Tm + m%Tm)*Tn + n%Tn
static inline int64_t w_addr(int m, int n, int i, int j, int N, int K) {
  const int64_t pair = int64_t(m / TM) * cdiv(N, TN) + n / TN;
  return (pair * K * K + i * K + j) * (TM * TN) + (m % TM) * TN + n % TN;
}

// A feature map as the engine walks it: `rows` x `cols` pixels per image, `images`
// images. Normally rows x cols = H x W; image-major (linear layers) walks the batch as
// the columns of one 1 x B map.
struct FmView {
  int64_t base;
  int C, H, W;       // the tensor's layout geometry
  int rows, cols;    // the map the engine walks
  bool major;        // image-major: pixel (0, x) is image x
};

static inline int64_t view_addr(const FmView& v, int b, int c, int r, int x) {
  return v.base + (v.major ? fm_addr(x, c, 0, 0, v.C, 1, 1) : fm_addr(b, c, r, x, v.C, v.H, v.W));
}

// Position -> source index: pos/dil when pos >= 0 is a multiple of dil below n, else -1
// (padding, or a hole of the zero-dilated BP error).
static inline int src_index(int pos, int dil, int n) {
  if (pos < 0) return -1;
  const int q = dil == 1 ? pos : pos / dil;
  if (dil != 1 && q * dil != pos) return -1;
  return q < n ? q : -1;
}

// ---- the job: one descriptor, resolved -------------------------------------------------

enum Mode : int { FP = 0, BP = 1, WU = 2 };

struct Job {
  int mode;
  int flags;
  int M, N, K, KK;   // the layer's weight tensor (M, N, K, K)
  int OC, RC;        // phase channels on the Tm / Tn lanes
  int MB, NB;        // output / reduction blocks
  int ro, co;        // output map of the phase (WU: the error map)
  int images;        // images the tile loop runs over (1 when image-major)
  int s;             // stride over the on-chip tile
  int off, dil;      // source position = r0*s - off + u; source index = position/dil
  int tr, tc, mc;    // tile (clipped to the map) and output blocks per chunk (<= MB)
  bool io;           // "io" group (FP/BP order 1, always for WU)
  FmView src;        // read by the IFM loader: FP x, BP dy, WU x
  FmView dst;        // FP y / BP dx (stored), WU dy (error loader)
  FmView msk;        // BP mask source
  int64_t a[8];
  float lr, momentum, wd;
};

static inline FmView make_view(int64_t base, int C, int H, int W, int batch, bool major) {
  FmView v;
  v.base = base;
  v.C = C;
  v.H = H;
  v.W = W;
  v.rows = major ? 1 : H;
  v.cols = major ? batch : W;
  v.major = major;
  return v;
}

static inline bool conv_size_ok(int in, int out, int k, int s, int p) {
  const int64_t span = int64_t(in) + 2 * int64_t(p) - k;
  return span >= 0 && out == span / s + 1;
}

// Resolve and validate a descriptor; returns an EfgenConvStatus.
static inline int make_job(const EfgenDesc& d, Job& j) {
  if (d.op != EFGEN_OP_CONV_FP && d.op != EFGEN_OP_CONV_BP && d.op != EFGEN_OP_CONV_WU)
    return EFGEN_CONV_ERR_OP;
  if (d.batch < 1 || d.in_c < 1 || d.in_h < 1 || d.in_w < 1 || d.out_c < 1 || d.out_h < 1 ||
      d.out_w < 1 || d.kh < 1 || d.kw != d.kh || d.stride < 1 || d.pad < 0)
    return EFGEN_CONV_ERR_GEOMETRY;
  if (!conv_size_ok(d.in_h, d.out_h, d.kh, d.stride, d.pad) ||
      !conv_size_ok(d.in_w, d.out_w, d.kw, d.stride, d.pad))
    return EFGEN_CONV_ERR_GEOMETRY;
  if (d.tr < 1 || d.tc < 1 || d.mc < 1 || (d.order != 0 && d.order != 1))
    return EFGEN_CONV_ERR_TILING;
  const bool bias = (d.flags & EFGEN_FLAG_BIAS) != 0;
  j.mode = d.op == EFGEN_OP_CONV_FP ? FP : d.op == EFGEN_OP_CONV_BP ? BP : WU;
  j.flags = d.flags;
  for (int i = 0; i < 8; ++i) j.a[i] = d.a[i];
  bool addr_ok = d.a[0] >= 0 && d.a[1] >= 0;
  if (j.mode == FP) addr_ok = addr_ok && d.a[7] >= 0 && (!bias || d.a[2] >= 0);
  if (j.mode == BP)
    addr_ok = addr_ok && d.a[7] >= 0 && (!(d.flags & EFGEN_FLAG_MASK) || d.a[6] >= 0);
  if (j.mode == WU)
    addr_ok = addr_ok && d.a[2] >= 0 && d.a[3] >= 0 && d.a[6] >= 0 &&
              (!bias || (d.a[4] >= 0 && d.a[5] >= 0 && d.a[7] >= 0));
  if (!addr_ok) return EFGEN_CONV_ERR_ADDRESS;
  j.lr = d.lr;
  j.momentum = d.momentum;
  j.wd = d.weight_decay;

  if (int64_t(d.kh) * d.kh > WBUF_DEPTH) return EFGEN_CONV_ERR_WBUF;  // before K*K is formed
  j.M = d.out_c;
  j.N = d.in_c;
  j.K = d.kh;
  j.KK = d.kh * d.kh;
  const bool major = d.in_h == 1 && d.in_w == 1 && d.out_h == 1 && d.out_w == 1 &&
                     d.kh == 1 && d.pad == 0;
  const FmView x = make_view(j.mode == WU ? d.a[1] : d.a[0], d.in_c, d.in_h, d.in_w,
                             d.batch, major);
  const FmView y = make_view(j.mode == FP ? d.a[7] : d.a[0], d.out_c, d.out_h, d.out_w,
                             d.batch, major);
  j.images = major ? 1 : d.batch;
  if (j.mode == BP) {
    j.OC = d.in_c;
    j.RC = d.out_c;
    j.src = y;                                  // dy
    j.dst = make_view(d.a[7], d.in_c, d.in_h, d.in_w, d.batch, major);
    j.msk = make_view(d.a[6], d.in_c, d.in_h, d.in_w, d.batch, major);
    j.ro = j.dst.rows;
    j.co = j.dst.cols;
    j.s = 1;
    j.off = major ? 0 : d.kh - 1 - d.pad;       // dy[0] sits at K-1-P in dilated coords
    j.dil = major ? 1 : d.stride;
  } else {
    j.OC = d.out_c;
    j.RC = d.in_c;
    j.src = x;
    j.dst = y;                                  // FP: y (stored); WU: dy (loaded)
    j.msk = y;                                  // unused
    j.ro = y.rows;
    j.co = y.cols;
    j.s = major ? 1 : d.stride;
    j.off = major ? 0 : d.pad;
    j.dil = 1;
  }
  j.MB = cdiv(j.OC, TM);
  j.NB = cdiv(j.RC, TN);
  j.tr = imin(d.tr, j.ro);
  j.tc = imin(d.tc, j.co);
  j.mc = imin(d.mc, j.MB);
  j.io = j.mode == WU || d.order == 1;

  // Buffer limits (int64: a hostile descriptor must not overflow the checks).
  const int64_t ext_r = int64_t(j.tr - 1) * j.s + j.K;
  const int64_t ext_c = int64_t(j.tc - 1) * j.s + j.K;
  if (ext_r * ext_c > IFM_DEPTH) return EFGEN_CONV_ERR_IFM;
  if (int64_t(j.io ? j.mc : 1) * j.tr * j.tc > OFM_DEPTH) return EFGEN_CONV_ERR_OFM;
  if (int64_t(j.mc) * j.NB * j.KK > WBUF_DEPTH) return EFGEN_CONV_ERR_WBUF;
  if (bias && j.mode != BP && j.mc > MAX_MC) return EFGEN_CONV_ERR_BIAS;
  return EFGEN_CONV_OK;
}

// ---- one step of the pipeline ----------------------------------------------------------

struct Step {
  int b, r0, c0, tr, tc;  // image and output tile (clipped)
  int mbl;                // output block within the chunk ("wo" only)
  int nb;                 // reduction block
  int oh;                 // OFM half of this step's group
  bool valid;
};

static inline Step first_step(const Job& j) {
  Step s;
  s.b = 0;
  s.r0 = 0;
  s.c0 = 0;
  s.tr = imin(j.tr, j.ro);
  s.tc = imin(j.tc, j.co);
  s.mbl = 0;
  s.nb = 0;
  s.oh = 0;
  s.valid = true;
  return s;
}

// A group (the unit stored from one OFM half) ends with its last reduction block.
static inline bool ends_group(const Job& j, const Step& s) { return s.nb == j.NB - 1; }

static inline Step next_step(const Job& j, const Step& cur, int nmb) {
  Step s = cur;
  if (ends_group(j, cur)) s.oh = cur.oh ^ 1;
  if (++s.nb < j.NB) return s;
  s.nb = 0;
  if (!j.io) {
    if (++s.mbl < nmb) return s;
    s.mbl = 0;
  }
  s.c0 += j.tc;
  if (s.c0 < j.co) {
    s.tc = imin(j.tc, j.co - s.c0);
    return s;
  }
  s.c0 = 0;
  s.tc = imin(j.tc, j.co);
  s.r0 += j.tr;
  if (s.r0 < j.ro) {
    s.tr = imin(j.tr, j.ro - s.r0);
    return s;
  }
  s.r0 = 0;
  s.tr = imin(j.tr, j.ro);
  if (++s.b < j.images) return s;
  s.valid = false;
  return s;
}

// Input tile of reduction block nb: Tn lanes, ((tr-1)*s+K) x ((tc-1)*s+K) words per
// bank, row-major; zero outside the source map (padding, dilation holes) and beyond RC.
static inline void load_ifm(float ifm[2][TN][IFM_DEPTH], int h, const Job& j, const Step& st,
                            const float* mem_in) {
  const int er = (st.tr - 1) * j.s + j.K;
  const int ec = (st.tc - 1) * j.s + j.K;
  EFGEN_ASSERT(er * ec <= IFM_DEPTH);
  const int pr0 = st.r0 * j.s - j.off;
  const int pc0 = st.c0 * j.s - j.off;
EFGEN_LABEL(LOAD_IFM_BLOCKS)
  for (int g = 0; g < TN / T; ++g) {
    const int c = st.nb * TN + g * T;  // first channel of this lane block
    int u = 0, v = 0;
  EFGEN_LABEL(LOAD_IFM_WORDS)
    for (int k = 0; k < er * ec; ++k) {
      EFGEN_HLS(loop_tripcount min=1 max=EFGEN_IFM_DEPTH)
      EFGEN_HLS(PIPELINE II=1)
      const int sr = src_index(pr0 + u, j.dil, j.src.rows);
      const int sc = src_index(pc0 + v, j.dil, j.src.cols);
      const bool ok = sr >= 0 && sc >= 0 && c < j.src.C;
      const int64_t a = ok ? view_addr(j.src, st.b, c, sr, sc) : 0;
    EFGEN_LABEL(LOAD_IFM_LANES)
      for (int t = 0; t < T; ++t) {
        EFGEN_HLS(UNROLL)
        ifm[h][g * T + t][k] = (ok && c + t < j.src.C) ? mem_in[a + t] : 0.0f;
      }
      if (++v == ec) {
        v = 0;
        ++u;
      }
    }
  }
}

// WU: the chunk's error tiles (Tm lanes of dy, tr x tc) into OFM half h, block mbl at
// mbl*tr*tc; the bias gradient accumulates as the words stream in.
static inline void load_err(float ofm[2][TM][OFM_DEPTH], int h, float bacc[TM][MAX_MC],
                            const Job& j, const Step& st, int ob0, int nmb, const float* mem_in) {
  const bool bias = (j.flags & EFGEN_FLAG_BIAS) != 0;
  const int npix = st.tr * st.tc;
  EFGEN_ASSERT(nmb * npix <= OFM_DEPTH);
EFGEN_LABEL(LOAD_ERR_BLOCKS)
  for (int mbl = 0; mbl < nmb; ++mbl) {
    for (int g = 0; g < TM / T; ++g) {
      const int c = (ob0 + mbl) * TM + g * T;
    EFGEN_LABEL(LOAD_ERR_ROWS)
      for (int r = 0; r < st.tr; ++r) {
        EFGEN_HLS(loop_tripcount min=1 max=EFGEN_MAX_TR)
      EFGEN_LABEL(LOAD_ERR_COLS)
        for (int x = 0; x < st.tc; ++x) {
          EFGEN_HLS(loop_tripcount min=1 max=EFGEN_MAX_TC)
          EFGEN_HLS(PIPELINE II=1)
          const bool ok = c < j.dst.C;
          const int64_t a = ok ? view_addr(j.dst, st.b, c, st.r0 + r, st.c0 + x) : 0;
          for (int t = 0; t < T; ++t) {
            EFGEN_HLS(UNROLL)
            const float e = (ok && c + t < j.dst.C) ? mem_in[a + t] : 0.0f;
            ofm[h][g * T + t][mbl * npix + r * st.tc + x] = e;
            if (bias) bacc[g * T + t][mbl] += e;
          }
        }
      }
    }
  }
}

// FP/BP compute of one output block from one input tile:
//   out[m][r][c] (+)= sum_{n,i,j} w[m][n][i][j] * in[n][r*s+i][c*s+j]
// One pixel per cycle: a Tm x Tn multiply, an adder tree over Tn, Tm accumulators.
static inline void compute_conv(const float ifm[2][TN][IFM_DEPTH], int hi,
                                float ofm[2][TM][OFM_DEPTH], int ho,
                                const float wbuf[TM][TN][WBUF_DEPTH], int wbase, int obase,
                                const Job& j, const Step& st, bool first) {
  const int K = j.K, s = j.s;
  const int ec = (st.tc - 1) * s + K;
  EFGEN_ASSERT(wbase + j.KK <= WBUF_DEPTH);
  EFGEN_ASSERT(obase + st.tr * st.tc <= OFM_DEPTH);
EFGEN_LABEL(CONV_KI)
  for (int i = 0; i < K; ++i) {
    EFGEN_HLS(loop_tripcount min=1 max=EFGEN_MAX_K)
  EFGEN_LABEL(CONV_KJ)
    for (int jj = 0; jj < K; ++jj) {
      EFGEN_HLS(loop_tripcount min=1 max=EFGEN_MAX_K)
      const int wa = wbase + i * K + jj;
      const bool init = first && i == 0 && jj == 0;
    EFGEN_LABEL(CONV_ROWS)
      for (int r = 0; r < st.tr; ++r) {
        EFGEN_HLS(loop_tripcount min=1 max=EFGEN_MAX_TR)
      EFGEN_LABEL(CONV_COLS)
        for (int c = 0; c < st.tc; ++c) {
          EFGEN_HLS(loop_tripcount min=1 max=EFGEN_MAX_TC)
          EFGEN_HLS(PIPELINE II=1)
          const int ia = (r * s + i) * ec + c * s + jj;
          const int oa = obase + r * st.tc + c;
        EFGEN_LABEL(CONV_M)
          for (int m = 0; m < TM; ++m) {
            EFGEN_HLS(UNROLL)
            float p[TN];
            EFGEN_HLS(ARRAY_PARTITION variable=p type=complete dim=1)
            for (int n = 0; n < TN; ++n) {
              EFGEN_HLS(UNROLL)
              p[n] = wbuf[m][n][wa] * ifm[hi][n][ia];
            }
            // Adder tree over the Tn products (log2(Tn) levels, any Tn).
            for (int w = 1; w < TN; w *= 2) {
              EFGEN_HLS(UNROLL)
              for (int n = 0; n + w < TN; n += 2 * w) {
                EFGEN_HLS(UNROLL)
                p[n] += p[n + w];
              }
            }
            const float prev = init ? 0.0f : ofm[ho][m][oa];
            ofm[ho][m][oa] = prev + p[0];
          }
        }
      }
    }
  }
}

// WU compute of one output block from one error tile and one input tile:
//   acc[m][n][i][j] += err[m][r][c] * in[n][r*s+i][c*s+j]   (Tm*Tn accumulators)
static inline void compute_wu(const float ifm[2][TN][IFM_DEPTH], int hi,
                              const float ofm[2][TM][OFM_DEPTH], int ho,
                              float wbuf[TM][TN][WBUF_DEPTH], int wbase, int ebase, const Job& j,
                              const Step& st) {
  const int K = j.K, s = j.s;
  const int ec = (st.tc - 1) * s + K;
  EFGEN_ASSERT(wbase + j.KK <= WBUF_DEPTH);
  EFGEN_ASSERT(ebase + st.tr * st.tc <= OFM_DEPTH);
EFGEN_LABEL(WU_ROWS)
  for (int r = 0; r < st.tr; ++r) {
    EFGEN_HLS(loop_tripcount min=1 max=EFGEN_MAX_TR)
  EFGEN_LABEL(WU_COLS)
    for (int c = 0; c < st.tc; ++c) {
      EFGEN_HLS(loop_tripcount min=1 max=EFGEN_MAX_TC)
    EFGEN_LABEL(WU_KI)
      for (int i = 0; i < K; ++i) {
        EFGEN_HLS(loop_tripcount min=1 max=EFGEN_MAX_K)
      EFGEN_LABEL(WU_KJ)
        for (int jj = 0; jj < K; ++jj) {
          EFGEN_HLS(loop_tripcount min=1 max=EFGEN_MAX_K)
          EFGEN_HLS(PIPELINE II=1)
          const int ea = ebase + r * st.tc + c;
          const int ia = (r * s + i) * ec + c * s + jj;
          const int wa = wbase + i * K + jj;
        EFGEN_LABEL(WU_M)
          for (int m = 0; m < TM; ++m) {
            EFGEN_HLS(UNROLL)
          EFGEN_LABEL(WU_N)
            for (int n = 0; n < TN; ++n) {
              EFGEN_HLS(UNROLL)
              wbuf[m][n][wa] += ofm[ho][m][ea] * ifm[hi][n][ia];
            }
          }
        }
      }
    }
  }
}

// FP/BP store of output block ob (chunk-local mbl) from OFM half h at obase: only
// channels < OC and the tile's valid pixels are written; + bias, ReLU clamp (FP), times
// (x > 0) with x read from the mask source (BP, FLAG_MASK).
static inline void store_tile(const float ofm[2][TM][OFM_DEPTH], int h, int obase,
                              const float bbuf[TM][MAX_MC], const Job& j, const Step& st, int ob,
                              int mbl, const float* mem_in, float* mem_out) {
  const bool bias = j.mode == FP && (j.flags & EFGEN_FLAG_BIAS) != 0;
  const bool relu = j.mode == FP && (j.flags & EFGEN_FLAG_RELU) != 0;
  const bool mask = j.mode == BP && (j.flags & EFGEN_FLAG_MASK) != 0;
EFGEN_LABEL(STORE_BLOCKS)
  for (int g = 0; g < TM / T; ++g) {
    const int c = ob * TM + g * T;
    if (c >= j.OC) continue;  // lane blocks beyond the tensor do not exist
  EFGEN_LABEL(STORE_ROWS)
    for (int r = 0; r < st.tr; ++r) {
      EFGEN_HLS(loop_tripcount min=1 max=EFGEN_MAX_TR)
    EFGEN_LABEL(STORE_COLS)
      for (int x = 0; x < st.tc; ++x) {
        EFGEN_HLS(loop_tripcount min=1 max=EFGEN_MAX_TC)
        EFGEN_HLS(PIPELINE II=1)
        const int64_t a = view_addr(j.dst, st.b, c, st.r0 + r, st.c0 + x);
        const int64_t am = mask ? view_addr(j.msk, st.b, c, st.r0 + r, st.c0 + x) : 0;
      EFGEN_LABEL(STORE_LANES)
        for (int t = 0; t < T; ++t) {
          EFGEN_HLS(UNROLL)
          if (c + t < j.OC) {  // pad lanes of the last block are not written
            float v = ofm[h][g * T + t][obase + r * st.tc + x];
            if (bias) v += bbuf[g * T + t][mbl];
            if (relu) v = v < 0.0f ? 0.0f : v;
            if (mask) v = mem_in[am + t] > 0.0f ? v : 0.0f;
            mem_out[a + t] = v;
          }
        }
      }
    }
  }
}

// Zero the chunk's words of the weight buffer (pad lanes, WU accumulators) and of the
// bias buffer.
static inline void zero_chunk(float wbuf[TM][TN][WBUF_DEPTH], float bbuf[TM][MAX_MC], const Job& j,
                              int nmb) {
EFGEN_LABEL(ZERO_W)
  for (int a = 0; a < nmb * j.NB * j.KK; ++a) {
    EFGEN_HLS(loop_tripcount min=1 max=EFGEN_WBUF_DEPTH)
    EFGEN_HLS(PIPELINE II=1)
    for (int m = 0; m < TM; ++m) {
      EFGEN_HLS(UNROLL)
      for (int n = 0; n < TN; ++n) {
        EFGEN_HLS(UNROLL)
        wbuf[m][n][a] = 0.0f;
      }
    }
  }
EFGEN_LABEL(ZERO_B)
  for (int mbl = 0; mbl < nmb; ++mbl) {
    EFGEN_HLS(PIPELINE II=1)
    for (int m = 0; m < TM; ++m) {
      EFGEN_HLS(UNROLL)
      bbuf[m][mbl] = 0.0f;
    }
  }
}

// FP/BP: the chunk's weights (output blocks ob0 .. ob0+nmb-1 of the phase, all
// reduction blocks), read from DRAM one (m-block, n-block) pair at a time in storage
// order. FP: buffer word (mbl*NB + nb)*K*K + i*K + j of bank [m%Tm][n%Tn]. BP (roles of
// M and N swapped): bank [n%Tm][m%Tn] holds W[m][n][i][j] at kernel offset
// (K-1-i)*K + (K-1-j) (flip by 180 degrees, transpose). FP with FLAG_BIAS also loads
// the chunk's bias into bbuf[m][mbl].
static inline void load_weights(float wbuf[TM][TN][WBUF_DEPTH], float bbuf[TM][MAX_MC],
                                const Job& j, int ob0, int nmb, const float* mem_w) {
  zero_chunk(wbuf, bbuf, j, nmb);
  const int K = j.K, KK = j.KK;
  const int MBd = cdiv(j.M, TM), NBd = cdiv(j.N, TN);  // DRAM pair grid
  const bool bp = j.mode == BP;
  // DRAM pairs the chunk touches: FP its m-blocks x all n-blocks (one burst); BP all
  // m-blocks x the n-blocks covering its N range (one burst per m-block).
  const int n_lo = ob0 * TM, n_hi = imin(j.N, (ob0 + nmb) * TM);
  const int mb_lo = bp ? 0 : ob0, mb_hi = bp ? MBd : ob0 + nmb;
  const int nb_lo = bp ? n_lo / TN : 0, nb_hi = bp ? cdiv(n_hi, TN) : NBd;
EFGEN_LABEL(LOAD_W_MB)
  for (int mb = mb_lo; mb < mb_hi; ++mb) {
  EFGEN_LABEL(LOAD_W_NB)
    for (int nb = nb_lo; nb < nb_hi; ++nb) {
    EFGEN_LABEL(LOAD_W_KI)
      for (int i = 0; i < K; ++i) {
        EFGEN_HLS(loop_tripcount min=1 max=EFGEN_MAX_K)
      EFGEN_LABEL(LOAD_W_KJ)
        for (int jj = 0; jj < K; ++jj) {
          EFGEN_HLS(loop_tripcount min=1 max=EFGEN_MAX_K)
          const int kk = i * K + jj;
        EFGEN_LABEL(LOAD_W_M)
          for (int mm = 0; mm < TM; ++mm) {
            EFGEN_HLS(PIPELINE II=1)
            const int m = mb * TM + mm;
          EFGEN_LABEL(LOAD_W_N)
            for (int nn = 0; nn < TN; ++nn) {
              EFGEN_HLS(UNROLL)
              const int n = nb * TN + nn;
              const bool in_t = m < j.M && n < j.N;
              if (!bp && in_t) {
                const int wa = ((mb - ob0) * NBd + nb) * KK + kk;
                wbuf[mm][nn][wa] = mem_w[j.a[1] + w_addr(m, n, i, jj, j.N, K)];
              } else if (bp && in_t && n >= n_lo && n < n_hi) {
                const int obl = n / TM - ob0;
                const int wa = (obl * j.NB + m / TN) * KK + (KK - 1 - kk);
                wbuf[n % TM][m % TN][wa] = mem_w[j.a[1] + w_addr(m, n, i, jj, j.N, K)];
              }
            }
          }
        }
      }
    }
  }
  if (j.mode == FP && (j.flags & EFGEN_FLAG_BIAS)) {
  EFGEN_LABEL(LOAD_BIAS)
    for (int mbl = 0; mbl < nmb; ++mbl) {
      EFGEN_HLS(PIPELINE II=1)
      for (int m = 0; m < TM; ++m) {
        EFGEN_HLS(UNROLL)
        const int ch = (ob0 + mbl) * TM + m;
        bbuf[m][mbl] = ch < j.M ? mem_w[j.a[2] + ch] : 0.0f;
      }
    }
  }
}

// One SGD step, efgen.golden.ops.sgd_update's order of float operations:
//   g' = g + wd*p;  v = momentum*v + g';  p = p - lr*v
static inline void sgd(float g, float& p, float& v, float lr, float momentum, float wd) {
  const float gd = g + wd * p;
  v = momentum * v + gd;
  p = p - lr * v;
}

// WU write-back of the chunk: read w and v (mem_w), update, write them (mem_out) in the
// blocked weight layout, pair by pair; debug copy of the gradient to a[6] when non-zero.
// Bias (FLAG_BIAS): a[4] with velocity a[5], debug copy to a[7] when non-zero.
static inline void sgd_writeback(const float wbuf[TM][TN][WBUF_DEPTH], const float bbuf[TM][MAX_MC],
                                 const Job& j, int ob0, int nmb, const float* mem_w,
                                 float* mem_out) {
  const int K = j.K, KK = j.KK;
EFGEN_LABEL(SGD_MB)
  for (int mbl = 0; mbl < nmb; ++mbl) {
  EFGEN_LABEL(SGD_NB)
    for (int nb = 0; nb < j.NB; ++nb) {
    EFGEN_LABEL(SGD_KI)
      for (int i = 0; i < K; ++i) {
        EFGEN_HLS(loop_tripcount min=1 max=EFGEN_MAX_K)
      EFGEN_LABEL(SGD_KJ)
        for (int jj = 0; jj < K; ++jj) {
          EFGEN_HLS(loop_tripcount min=1 max=EFGEN_MAX_K)
          const int kk = i * K + jj;
        EFGEN_LABEL(SGD_M)
          for (int mm = 0; mm < TM; ++mm) {
            EFGEN_HLS(PIPELINE II=1)
            const int m = (ob0 + mbl) * TM + mm;
          EFGEN_LABEL(SGD_N)
            for (int nn = 0; nn < TN; ++nn) {
              EFGEN_HLS(UNROLL)
              const int n = nb * TN + nn;
              if (m < j.M && n < j.N) {  // pad lanes are neither read nor written
                const int64_t wa = w_addr(m, n, i, jj, j.N, K);
                const float g = wbuf[mm][nn][(mbl * j.NB + nb) * KK + kk];
                float p = mem_w[j.a[2] + wa];
                float v = mem_w[j.a[3] + wa];
                sgd(g, p, v, j.lr, j.momentum, j.wd);
                mem_out[j.a[2] + wa] = p;
                mem_out[j.a[3] + wa] = v;
                if (j.a[6] != 0) mem_out[j.a[6] + wa] = g;
              }
            }
          }
        }
      }
    }
  }
  if (j.flags & EFGEN_FLAG_BIAS) {
  EFGEN_LABEL(SGD_BIAS)
    for (int mbl = 0; mbl < nmb; ++mbl) {
      for (int mm = 0; mm < TM; ++mm) {
        EFGEN_HLS(PIPELINE II=1)
        const int m = (ob0 + mbl) * TM + mm;
        if (m < j.M) {
          const float g = bbuf[mm][mbl];
          float p = mem_w[j.a[4] + m];
          float v = mem_w[j.a[5] + m];
          sgd(g, p, v, j.lr, j.momentum, j.wd);
          mem_out[j.a[4] + m] = p;
          mem_out[j.a[5] + m] = v;
          if (j.a[7] != 0) mem_out[j.a[7] + m] = g;
        }
      }
    }
  }
}

// Load part of a step: the input tile of step st into IFM half h; WU's first step of a
// tile also loads the chunk's error tiles into the step's OFM half.
static inline void step_load(float ifm[2][TN][IFM_DEPTH], int h, float ofm[2][TM][OFM_DEPTH],
                             float bbuf[TM][MAX_MC], const Job& j, const Step& st, int ob0, int nmb,
                             const float* mem_in) {
  if (j.mode == WU && st.nb == 0) load_err(ofm, st.oh, bbuf, j, st, ob0, nmb, mem_in);
  load_ifm(ifm, h, j, st, mem_in);
}

// Compute part of a step, from IFM half h into (or, WU, from) the step's OFM half.
static inline void step_compute(const float ifm[2][TN][IFM_DEPTH], int h,
                                float ofm[2][TM][OFM_DEPTH], float wbuf[TM][TN][WBUF_DEPTH],
                                const Job& j, const Step& st, int nmb) {
  const int npix = st.tr * st.tc;
  if (!j.io) {
    compute_conv(ifm, h, ofm, st.oh, wbuf, (st.mbl * j.NB + st.nb) * j.KK, 0, j, st,
                 st.nb == 0);
    return;
  }
EFGEN_LABEL(STEP_BLOCKS)
  for (int mbl = 0; mbl < nmb; ++mbl) {
    const int wbase = (mbl * j.NB + st.nb) * j.KK;
    if (j.mode == WU)
      compute_wu(ifm, h, ofm, st.oh, wbuf, wbase, mbl * npix, j, st);
    else
      compute_conv(ifm, h, ofm, st.oh, wbuf, wbase, mbl * npix, j, st, st.nb == 0);
  }
}

// Store part: the finished group of step st (one block in "wo", all nmb in "io").
static inline void step_store(const float ofm[2][TM][OFM_DEPTH], const float bbuf[TM][MAX_MC],
                              const Job& j, const Step& st, int ob0, int nmb, const float* mem_in,
                              float* mem_out) {
  if (!j.io) {
    store_tile(ofm, st.oh, 0, bbuf, j, st, ob0 + st.mbl, st.mbl, mem_in, mem_out);
    return;
  }
  for (int mbl = 0; mbl < nmb; ++mbl)
    store_tile(ofm, st.oh, mbl * st.tr * st.tc, bbuf, j, st, ob0 + mbl, mbl, mem_in, mem_out);
}

}  // namespace efgen_ce

// 0 when the engine would execute the descriptor, else an EfgenConvStatus.
static inline int efgen_conv_check(const EfgenDesc& d) {
  efgen_ce::Job j;
  return efgen_ce::make_job(d, j);
}

static inline void efgen_conv_engine(const EfgenDesc& d, const float* mem_in, const float* mem_w,
                                     float* mem_out) {
  using namespace efgen_ce;
  // On-chip buffers. Lane dimensions are split into separate banks (complete
  // partition) so a cycle reads Tm x Tn weights, Tn inputs and Tm partial sums; the
  // leading dimension of ifm/ofm is the ping-pong half.
  static float wbuf[TM][TN][WBUF_DEPTH];
  static float ifm[2][TN][IFM_DEPTH];
  static float ofm[2][TM][OFM_DEPTH];
  static float bbuf[TM][MAX_MC];
  EFGEN_HLS(ARRAY_PARTITION variable=wbuf type=complete dim=1)
  EFGEN_HLS(ARRAY_PARTITION variable=wbuf type=complete dim=2)
  EFGEN_HLS(BIND_STORAGE variable=wbuf type=ram_2p impl=bram)
  EFGEN_HLS(ARRAY_PARTITION variable=ifm type=complete dim=1)
  EFGEN_HLS(ARRAY_PARTITION variable=ifm type=complete dim=2)
  EFGEN_HLS(BIND_STORAGE variable=ifm type=ram_2p impl=bram)
  EFGEN_HLS(ARRAY_PARTITION variable=ofm type=complete dim=1)
  EFGEN_HLS(ARRAY_PARTITION variable=ofm type=complete dim=2)
  EFGEN_HLS(BIND_STORAGE variable=ofm type=ram_2p impl=bram)
  EFGEN_HLS(ARRAY_PARTITION variable=bbuf type=complete dim=1)
  EFGEN_HLS(BIND_STORAGE variable=bbuf type=ram_2p impl=lutram)

  Job j;
  if (make_job(d, j) != EFGEN_CONV_OK) return;  // rejected: nothing read or written

EFGEN_LABEL(CHUNKS)
  for (int ob0 = 0; ob0 < j.MB; ob0 += j.mc) {
    const int nmb = imin(j.mc, j.MB - ob0);
    if (j.mode == WU)
      zero_chunk(wbuf, bbuf, j, nmb);
    else
      load_weights(wbuf, bbuf, j, ob0, nmb, mem_w);

    // The step pipeline: load step k+1 | compute step k | store the group step k-1
    // finished. Each part works on its own buffer half.
    Step cur = first_step(j);
    int ih = 0;
    step_load(ifm, ih, ofm, bbuf, j, cur, ob0, nmb, mem_in);
    bool pending = false;
    Step done = cur;
  EFGEN_LABEL(STEPS)
    for (;;) {
      const Step nxt = next_step(j, cur, nmb);
      if (nxt.valid) step_load(ifm, ih ^ 1, ofm, bbuf, j, nxt, ob0, nmb, mem_in);
      step_compute(ifm, ih, ofm, wbuf, j, cur, nmb);
      if (pending) step_store(ofm, bbuf, j, done, ob0, nmb, mem_in, mem_out);
      pending = j.mode != WU && ends_group(j, cur);
      done = cur;
      if (!nxt.valid) break;
      cur = nxt;
      ih ^= 1;
    }
    if (pending) step_store(ofm, bbuf, j, done, ob0, nmb, mem_in, mem_out);

    if (j.mode == WU) sgd_writeback(wbuf, bbuf, j, ob0, nmb, mem_w, mem_out);
  }
}

#endif  // EFGEN_CONV_ENGINE_H
