// vector_engine.h - the vector engine: every layer-phase of a training step that is
// not a convolution (batchnorm, ReLU, pooling, residual add, error sums, option-A
// shortcut, flatten), as Vitis HLS C++ that also compiles unchanged and warning-free
// with g++ -std=c++14 / -std=c++17 -Wall -Wextra -Werror -pedantic for C-simulation.
//
//   void efgen_vector_engine(const EfgenDesc& d, const float* mem_in,
//                            const float* mem_w, float* mem_out);
//   int  efgen_vector_check(const EfgenDesc& d);  // 0, or an EfgenVectorStatus error
//
// One call executes one descriptor (efgen_desc.h); a descriptor that
// efgen_vector_check rejects (bad geometry, an op code that is not the vector
// engine's, a map wider than the on-chip rows) is not executed: nothing is read or
// written. The three pointers view one DRAM image of 32-bit words (they alias in
// C-simulation; in hardware they are the m_axi bundles gmem0, gmem1, gmem2); every
// a[i] is a word address in it. Streamed feature maps / errors are read through
// mem_in, second operands, mask sources and parameter vectors through mem_w, every
// write goes through mem_out.
//
// Layouts (efgen/layout.py, "blocked" with T = EFGEN_LANES lanes):
//   addr(b, c, r, x) = ((b*ceil(C/T) + c/T)*H*W + r*W + x)*T + c%T
// A lane vector is the T words of one pixel of one channel block; a (b, c/T) block
// ("plane") is H*W consecutive vectors and a whole tensor is one contiguous run. The
// engine writes the pad lanes (c >= C) of every feature map / error it produces as
// zeros; it reads input pad lanes as DRAM holds them and never lets them reach an
// output. Nothing outside the op's output tensors is written.
//
// Flags: FLAG_RELU clamps the stored value of every FP op that writes a feature map.
// FLAG_MASK multiplies the stored error of every BP op (and ERRSUM) by (src > 0),
// src = a[6] (a[1] for BN_BP): where(src > 0, e, 0) as efgen/golden/ops.relu_bp.
// Geometry: element-wise ops (RELU_FP/BP, ADD_FP, ERRSUM) use out_c/out_h/out_w;
// BN_FP/BN_BP use in_*; pooling, shortcut and flatten use both (flatten: the (C, H, W)
// map is in_*).
//
// ---- Micro-architecture ----------------------------------------------------------
// Control code (op functions, passes, loops; all force-INLINEd into
// efgen_vector_engine) moves data; every float operator sits in one of six datapath
// functions ("units"), each INLINE off and limited to ONE instance by an ALLOCATION
// pragma in efgen_vector_engine, so the ops share them through muxed operands
// (efgen/model/operators.py and efgen/hls/manifest.py list them; tests/test_hls_vector.py
// counts the float operations of every function in g++'s SSA dump against that list,
// and the operator limits of the synthesis view against the instances it states).
// Per lane as written (the code has T lanes; the lane units instantiate W lanes' worth,
// see "Operator lanes" below):
//   unit_ew   T lanes: 2 fadd, 3 fcmp  - sums, ReLU gates, masks, fused ReLU, pad
//                                        lanes: the store stage of every feature map
//   unit_bn   T lanes: 3 fadd (one of them a subtraction: Vitis's fsub), 4 fmul -
//                                        every batchnorm pass (mean, centred variance,
//                                        BP sums, normalise, BP dx)
//   unit_pool T lanes: 1 fadd, 1 fmul, 2 fcmp - pooling FP/BP and the avg-pool scale
//   unit_tree  scalar: 7 fadd, 1 fmul  - fixed-order combine of the kIL partial sums
//   unit_rcp   scalar: 1 fadd, 1 fsqrt, 1 fdiv - 1/x and 1/sqrt(x + eps), the only
//                                        divider: 1/n, 1/(kh*kw), invstd are computed
//                                        once per op / channel, the streams multiply
//   unit_sgd   scalar: 3 fadd, 4 fmul  - SGD of gamma/beta, running statistics, BN coef
// plus int->float conversions of loop counters (sitofp) in op setup and in the pool
// window loops, and one scalar fcmp (the ReLU of flatten's word stream).
//
// Operator lanes: a lane unit's code has T = EFGEN_LANES copies of its per-lane
// operators, but every loop that streams lane vectors moves them through 32-bit m_axi
// ports that Vitis widens to the board's AXI width, W_axi = EFGEN_AXI_WORDS words per
// beat (efgen_params.h; 4 for 128-bit ports): a T-word vector takes ceil(T/W_axi) beats
// per stream, so those loops cannot start a vector more often than every ceil(T/W_axi)
// cycles anyway. Each lane unit therefore caps its operators at W = min(T, W_axi)
// lanes' worth, per operation: ALLOCATION operation limit = (operators per lane) x W
// (UG1399 2022.2, "pragma HLS allocation": `#pragma HLS allocation operation
// instances=<list> limit=<value>`, placed in the body of the function it limits, the
// type right after the keyword; e.g. `#pragma HLS allocation operation instances=fadd
// limit=4`). Vitis then has to share each operator between T/W lanes and the unit's
// II becomes ceil(T/W) (its PIPELINE II=1 target is relaxed by the limits), matching
// the port. Limits, from the EFGEN_VEC_* literals below:
//   unit_ew   fadd 2W, fcmp 3W       unit_bn fadd 2W, fsub W, fmul 4W
//   unit_pool fadd W, fmul W, fcmp 2W
// UG1399's operator list (config_op) names fsub apart from fadd, so unit_bn's
// subtraction has its own limit; it names no comparison (comparisons are LUT
// operators), so whether the fcmp limits are honoured is Vitis's to say. The two
// pooling scans (pool_fp_scan, pool_bp_scan) touch only on-chip rows: with T > W they
// also run at II = ceil(T/W) (one unit_pool call per iteration), where T lanes would
// have run them at II = 1. Scalar units and control code are not limited this way.
//
// Every DRAM access follows UG1399 "Preconditions and Limitations of Burst Transfer":
// it sits in a pipelined loop (PIPELINE II=1) that touches it on every iteration
// (never under an `if`: UG1448 214-232), at a word address that starts at a base
// computed once per run and grows by T (vectors) or 1 (words) per iteration - lane t
// reads base + t - with the trip count known before the loop starts, and with at most
// one read stream per bundle and one write stream (gmem2) per loop. An op that reads
// more tensors than that splits the work into sequential loops through on-chip
// buffers: element-wise ops with 3-5 streams run in chunks of EFGEN_VEC_CHUNK vectors
// (two streams per pass, the partial result in `ebuf`); stores that need a mask
// source read it in the store loop, after the operands were staged on chip. Zero
// padding (pooling, pad lanes, channels outside the shortcut's range) and masking are
// selects after the burst, never conditional accesses. Rows that an op does not need
// are skipped by loop-level conditions (no access is issued at all).
//
// Loops are flat and counter-driven: no division or modulo inside a pipelined loop
// (setup divides once per op by constants), LOOP_TRIPCOUNT on every loop (literals
// from efgen_params.h). Pooling reads each input row into a line buffer of kLines
// rows (tagged, so a row shared by vertically overlapping windows is read once when
// kh <= kLines) and reduces the windows on chip over (window column, output column)
// with the output columns padded to kIL + 1, so each accumulator is revisited only
// every >= kIL + 1 iterations; pooling BP keeps two tagged dy/argmax line pairs (each
// dy row read once when ceil(kh/stride) <= 2) and scatters them into a dx row
// accumulator in the golden's (i, j) order. The option-A shortcut reads whole rows of
// two channel blocks (FP: only rows oy*S, then every S-th vector of them) and shifts
// lanes on chip; flatten transposes through a row of the scratch, one burst per lane.
//
// Numerics: single precision only. Batchnorm statistics are two-pass (mean, then the
// centred sum of squares, as efgen/golden/ops.bn_fp_train); the BP sums are one pass.
// Each sum is a partial-sum reduction instead of a loop-carried float recurrence:
// kIL = 8 interleaved accumulators per channel, selected by a free-running slot counter
// (each accumulator is read-modified-written every 8th iteration, declared with the
// UG1399 DEPENDENCE pragma: inter, RAW, distance=8, dependent=true; 8 cycles must cover
// the fadd latency + RAM read/write at the target clock), then combined in a fixed
// pairwise order by unit_tree. Pooling accumulators recur every >= 9 iterations and
// carry the same pragma. Everything
// else follows the golden's operation order (xhat = (x - mean)*invstd, y = gamma*xhat
// + beta; dx = coef*((n*dy - dbeta) - xhat*dgamma); SGD g = grad + wd*p, v =
// momentum*v + g, p -= lr*v), with divisions replaced by products with reciprocals.
//
// Cost at II=1, from the loop structure (N = vectors of the streamed tensor; pipeline
// fill, burst latency and loop restarts not counted; with T > W every figure that
// counts vectors is times ceil(T/W), see "Operator lanes"): RELU_FP, ADD_FP, RELU_BP and
// ERRSUM with <= 2 streams N cycles, 3-4 streams 2N, 5 streams 3N; BN_FP 3N, BN_BP 2N
// (N without FLAG_DX), each plus about 10 per-channel loops of C cycles; pooling FP per
// output row: W per input row read, kw*max(OW, 9) per window row, OW (+ OW argmax)
// stored; pooling BP per dx row: OW per dy row read, kw*max(OW, 9) per covering window
// row, W stored; shortcut per row: W (FP, sampled rows) or OW (BP) read, OW or W
// stored; flatten: one cycle per word on the flat side plus one per vector.
//
// Only Vitis HLS can confirm: that each m_axi loop is inferred as one burst per run
// (INFO 214-115 "burst ... has been inferred", and none of the warnings 214-224 burst
// reverted on a bundle conflict or 214-232 conditional access), that every pipelined
// loop reaches II=1 (in particular the DEPENDENCE distance 8 against the actual fadd +
// RAM latency at the chosen clock; if the schedule says otherwise, raise kIL and widen
// unit_tree), that
// ALLOCATION shares the units as written (the pragma names them unqualified), that the
// operation limits of the lane units are met by sharing each operator between T/W
// lanes at II = ceil(T/W) (fcmp included), and the resulting DSP/LUT/BRAM figures.
// C-simulation (g++) confirms only the arithmetic: the pragmas are absent there.
#ifndef EFGEN_VECTOR_ENGINE_H
#define EFGEN_VECTOR_ENGINE_H

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "efgen_desc.h"

#if !defined(EFGEN_LANES) || !defined(EFGEN_MAX_C)
#include "efgen_params.h"
#endif
#if !defined(EFGEN_LANES) || !defined(EFGEN_MAX_C)
#error "vector_engine.h: EFGEN_LANES and EFGEN_MAX_C must be defined (efgen_params.h)"
#endif

#include "efgen_hls.h"

// ---- Params: efgen_params.h defines them per design (efgen/hls/manifest.py,
// vector_params); these defaults only serve standalone builds. Each is one literal,
// so the pragmas below see literals.
#ifndef EFGEN_MAX_W
#define EFGEN_MAX_W 64            // widest map of a pooling/shortcut descriptor (rows)
#endif
#ifndef EFGEN_MAX_H
#define EFGEN_MAX_H 64            // tallest such map (tripcount)
#endif
#ifndef EFGEN_MAX_CB
#define EFGEN_MAX_CB EFGEN_MAX_C  // channel blocks ceil(EFGEN_MAX_C/T) (tripcount)
#endif
#ifndef EFGEN_MAX_PLANES
#define EFGEN_MAX_PLANES 4096     // (image, channel block) planes of a tensor (tripcount)
#endif
#ifndef EFGEN_MAX_VECS
#define EFGEN_MAX_VECS 1048576    // lane vectors of a tensor (tripcount)
#endif
#ifndef EFGEN_MAX_POOL_K
#define EFGEN_MAX_POOL_K 8        // largest pooling window side (tripcount)
#endif
#ifndef EFGEN_MAX_POOL_SPAN
#define EFGEN_MAX_POOL_SPAN 576   // kw * max(out_w, 9) of a pooling row scan (tripcount)
#endif
#ifndef EFGEN_VEC_CHUNK
#define EFGEN_VEC_CHUNK 256       // vectors per element-wise chunk (ebuf depth)
#endif
#ifndef EFGEN_VEC_CHUNKS
#define EFGEN_VEC_CHUNKS 4096     // chunks of a tensor (tripcount)
#endif
#ifndef EFGEN_AXI_WORDS           // 32-bit words per beat of the board's AXI ports
#define EFGEN_AXI_WORDS 4
#endif

// ---- Operator lanes of the lane units: W = min(T, EFGEN_AXI_WORDS), and the
// ALLOCATION operation limits (operators per lane) x W. A pragma argument must be one
// literal: EFGEN_HLS expands macros but evaluates nothing (a macro `(2 * 4)` would reach
// the pragma as that text), so the multiples of W come from a table of literals.
#if EFGEN_AXI_WORDS < 1
#error "vector_engine.h: EFGEN_AXI_WORDS must be positive"
#endif
#if EFGEN_LANES < EFGEN_AXI_WORDS
#define EFGEN_VEC_W EFGEN_LANES
#else
#define EFGEN_VEC_W EFGEN_AXI_WORDS
#endif
#if EFGEN_VEC_W == 1
#define EFGEN_VEC_W1 1
#define EFGEN_VEC_W2 2
#define EFGEN_VEC_W3 3
#define EFGEN_VEC_W4 4
#elif EFGEN_VEC_W == 2
#define EFGEN_VEC_W1 2
#define EFGEN_VEC_W2 4
#define EFGEN_VEC_W3 6
#define EFGEN_VEC_W4 8
#elif EFGEN_VEC_W == 3
#define EFGEN_VEC_W1 3
#define EFGEN_VEC_W2 6
#define EFGEN_VEC_W3 9
#define EFGEN_VEC_W4 12
#elif EFGEN_VEC_W == 4
#define EFGEN_VEC_W1 4
#define EFGEN_VEC_W2 8
#define EFGEN_VEC_W3 12
#define EFGEN_VEC_W4 16
#elif EFGEN_VEC_W == 5
#define EFGEN_VEC_W1 5
#define EFGEN_VEC_W2 10
#define EFGEN_VEC_W3 15
#define EFGEN_VEC_W4 20
#elif EFGEN_VEC_W == 6
#define EFGEN_VEC_W1 6
#define EFGEN_VEC_W2 12
#define EFGEN_VEC_W3 18
#define EFGEN_VEC_W4 24
#elif EFGEN_VEC_W == 7
#define EFGEN_VEC_W1 7
#define EFGEN_VEC_W2 14
#define EFGEN_VEC_W3 21
#define EFGEN_VEC_W4 28
#elif EFGEN_VEC_W == 8
#define EFGEN_VEC_W1 8
#define EFGEN_VEC_W2 16
#define EFGEN_VEC_W3 24
#define EFGEN_VEC_W4 32
#elif EFGEN_VEC_W == 16
#define EFGEN_VEC_W1 16
#define EFGEN_VEC_W2 32
#define EFGEN_VEC_W3 48
#define EFGEN_VEC_W4 64
#else
#error "vector_engine.h: min(EFGEN_LANES, EFGEN_AXI_WORDS) outside 1..8 and 16: extend the EFGEN_VEC_W table"
#endif
#define EFGEN_VEC_EW_FADD EFGEN_VEC_W2     // unit_ew per lane: 2 fadd, 3 fcmp
#define EFGEN_VEC_EW_FCMP EFGEN_VEC_W3
#define EFGEN_VEC_BN_FADD EFGEN_VEC_W2     // unit_bn per lane: 2 fadd, 1 fsub, 4 fmul
#define EFGEN_VEC_BN_FSUB EFGEN_VEC_W1
#define EFGEN_VEC_BN_FMUL EFGEN_VEC_W4
#define EFGEN_VEC_POOL_FADD EFGEN_VEC_W1   // unit_pool per lane: 1 fadd, 1 fmul, 2 fcmp
#define EFGEN_VEC_POOL_FMUL EFGEN_VEC_W1
#define EFGEN_VEC_POOL_FCMP EFGEN_VEC_W2

// The pragmas of every loop over the T lanes of a vector.
#define EFGEN_VEC_LANES \
  EFGEN_HLS(UNROLL) EFGEN_HLS(LOOP_TRIPCOUNT min=EFGEN_LANES max=EFGEN_LANES)

enum EfgenVectorStatus : int32_t {
  EFGEN_VECTOR_OK = 0,
  EFGEN_VECTOR_ERR_OP = 1,        // not a vector-engine op
  EFGEN_VECTOR_ERR_GEOMETRY = 2,  // a size < 1, or out_* inconsistent with in_*, kernel,
                                  // stride, padding (see efgen_vector_check)
  EFGEN_VECTOR_ERR_CHANNELS = 3,  // batchnorm with more than EFGEN_MAX_C channels
  EFGEN_VECTOR_ERR_NSRC = 4,      // ERRSUM with n_src outside 1..4
  EFGEN_VECTOR_ERR_ADDRESS = 5,   // an address slot the op uses is negative
  EFGEN_VECTOR_ERR_WIDTH = 6,     // pooling/shortcut map wider than the on-chip rows
                                  // (in_w or out_w > max(EFGEN_MAX_W, 9))
};

namespace efgen_vec {

constexpr int kT = EFGEN_LANES;                                        // lanes
constexpr int kMaxC = EFGEN_MAX_C;                                     // channels, max
constexpr int kMaxCB = (EFGEN_MAX_C + EFGEN_LANES - 1) / EFGEN_LANES;  // blocks, max
constexpr int kIL = 8;       // interleaved partial sums (DEPENDENCE distance=8 below)
constexpr int kRowV = EFGEN_MAX_W > kIL + 1 ? EFGEN_MAX_W : kIL + 1;  // vectors per row
constexpr int kLines = 4;    // pooling FP line buffer rows (a power of two)
constexpr int kRows = 6;     // rows of the row scratch
constexpr int kChunk = EFGEN_VEC_CHUNK;
static_assert(kT >= 1, "EFGEN_LANES must be positive");
static_assert(kMaxC >= 1, "EFGEN_MAX_C must be positive");
static_assert(EFGEN_MAX_CB >= kMaxCB, "EFGEN_MAX_CB below ceil(EFGEN_MAX_C/EFGEN_LANES)");
static_assert(kChunk >= 1, "EFGEN_VEC_CHUNK must be positive");
static_assert(kLines == 4, "the line-tag loop's tripcount literal assumes 4 lines");

// Rows of the row scratch, per op (each row is its own set of T banks).
constexpr int kRowAcc = 4, kRowIdx = 5;              // pool FP: lines 0..3, acc, argmax
constexpr int kRowDx = 2;                           // pool BP: dy/argmax lines 0,1 | 3,4
constexpr int kRowA = 0, kRowB = 1;                  // shortcut (two input blocks), flatten

// Per-channel vectors of batchnorm, rows of `chan`.
enum Chan : int {
  kChMean = 0, kChVar, kChInvstd, kChGamma, kChBeta, kChDgamma, kChDbeta, kChCoef, kNChan
};

typedef float VecF[kT];
typedef float ChunkMem[kChunk][kT];
typedef float PartMem[2][kIL][kMaxCB][kT];
typedef float ChanMem[kNChan][kMaxCB][kT];
typedef float RowMem[kRows][kRowV][kT];
typedef int TagMem[kLines];

static inline int n_blocks(int c) { return (c + kT - 1) / kT; }

// ------------------------------------------------------------------ DRAM and copies
// One lane vector at word address o (a run's base plus T per vector): lane t is o + t.
static inline void vread(const float* mem, int64_t o, VecF& v) {
  EFGEN_HLS(INLINE)
  for (int t = 0; t < kT; ++t) {
    EFGEN_VEC_LANES
    v[t] = mem[o + t];
  }
}

static inline void vwrite(float* mem, int64_t o, const VecF& v) {
  EFGEN_HLS(INLINE)
  for (int t = 0; t < kT; ++t) {
    EFGEN_VEC_LANES
    mem[o + t] = v[t];
  }
}

static inline void vcopy(const float (&src)[kT], VecF& dst) {
  EFGEN_HLS(INLINE)
  for (int t = 0; t < kT; ++t) {
    EFGEN_VEC_LANES
    dst[t] = src[t];
  }
}

static inline void vput(const VecF& src, float (&dst)[kT]) {
  EFGEN_HLS(INLINE)
  for (int t = 0; t < kT; ++t) {
    EFGEN_VEC_LANES
    dst[t] = src[t];
  }
}

static inline void vfill(VecF& v, float x) {
  EFGEN_HLS(INLINE)
  for (int t = 0; t < kT; ++t) {
    EFGEN_VEC_LANES
    v[t] = x;
  }
}

// Position in a blocked tensor, advanced once per written vector: pixel in the plane,
// channel block, and the number of valid lanes of the block (C - cb*T).
struct BlockPos {
  int64_t p;
  int cb;
  int valid;
};

static inline BlockPos block_start(int C) {
  BlockPos b;
  b.p = 0;
  b.cb = 0;
  b.valid = C;
  return b;
}

static inline void block_step(BlockPos& b, int64_t HW, int CB, int C) {
  EFGEN_HLS(INLINE)
  if (++b.p == HW) {
    b.p = 0;
    if (++b.cb == CB) {
      b.cb = 0;
      b.valid = C;
    } else {
      b.valid -= kT;
    }
  }
}

// ============================================================================= units
// The only functions with float operators. Each is INLINE off, PIPELINE II=1 and has
// one instance (ALLOCATION in efgen_vector_engine); mode arguments are loop-invariant
// in every caller, so the selects are static muxes on the operator inputs. The lane
// units limit their operators to W lanes' worth (ALLOCATION operation, EFGEN_VEC_*
// above): II = ceil(T/W), the beats of a T-word vector on the AXI port.

// ---- unit_ew: the element-wise / store stage, T lanes: 2 fadd, 3 fcmp (W lanes'
// worth instantiated).
// Up to two streamed operands per pass, x0 then x1, each with a role: kSum adds it to
// the running value (the first term of a sum replaces it), kGate keeps the running
// value where the operand is > 0 (else 0). Sources come before gates in every op, so
// a gated-off lane stays 0. The output y is the running value with the fused ReLU
// (relu) and the pad lanes (t >= valid) applied.
enum EwRole : int { kNone = 0, kSum = 1, kGate = 2 };

struct EwCtl {
  int r0, r1;   // roles of x0, x1
  bool first;   // x0 is the first term: the running value `acc` is not read
  bool relu;    // clamp y at 0
};

static inline EwCtl ew_ctl(int r0, int r1, bool first, bool relu) {
  EwCtl c;
  c.r0 = r0;
  c.r1 = r1;
  c.first = first;
  c.relu = relu;
  return c;
}

static inline void unit_ew(const VecF& x0, const VecF& x1, const VecF& acc, const EwCtl c,
                           const int valid, VecF& acc_o, VecF& y) {
  EFGEN_HLS(INLINE off)
  EFGEN_HLS(PIPELINE II=1)
  EFGEN_HLS(ALLOCATION operation instances=fadd limit=EFGEN_VEC_EW_FADD)
  EFGEN_HLS(ALLOCATION operation instances=fcmp limit=EFGEN_VEC_EW_FCMP)
  for (int t = 0; t < kT; ++t) {
    EFGEN_VEC_LANES
    const float s0 = acc[t] + x0[t];
    const bool p0 = x0[t] > 0.0f;
    const float g0 = p0 ? acc[t] : 0.0f;
    const float a0 = c.r0 == kSum ? (c.first ? x0[t] : s0) : (c.r0 == kGate ? g0 : acc[t]);
    const float s1 = a0 + x1[t];
    const bool p1 = x1[t] > 0.0f;
    const float g1 = p1 ? a0 : 0.0f;
    const float a1 = c.r1 == kSum ? s1 : (c.r1 == kGate ? g1 : a0);
    const bool neg = a1 < 0.0f;
    acc_o[t] = a1;
    y[t] = (t < valid && !(c.relu && neg)) ? a1 : 0.0f;
  }
}

// ---- unit_bn: every batchnorm pass, T lanes: 3 fadd (2 adds, 1 subtract), 4 fmul
// (W lanes' worth instantiated).
// u = the gmem0 operand (x in FP, dy in BP), w = x; per-channel m = mean, s = invstd,
// k2 = beta | dbeta, k3 = gamma | dgamma, k4 = coef; p0, p1 = partial sums.
//   kBnMean: q0 = p0 + x                  kBnVar: q1 = p1 + (x - mean)^2
//   kBnSums: q0 = p0 + dy, q1 = p1 + dy*xhat
//   kBnNorm: y = beta + gamma*xhat        kBnDx:  y = coef*((n*dy - dbeta) - xhat*dgamma)
// (xhat = (x - mean)*invstd); q0/q1 of the unused sums are don't-cares.
enum BnMode : int { kBnMean = 0, kBnVar = 1, kBnSums = 2, kBnNorm = 3, kBnDx = 4 };

struct BnCtl {
  int mode;
  float n;  // elements per channel (kBnDx)
};

static inline void unit_bn(const VecF& u, const VecF& w, const VecF& p0, const VecF& p1,
                           const VecF& m, const VecF& s, const VecF& k2, const VecF& k3,
                           const VecF& k4, const BnCtl c, VecF& q0, VecF& q1, VecF& y) {
  EFGEN_HLS(INLINE off)
  EFGEN_HLS(PIPELINE II=1)
  EFGEN_HLS(ALLOCATION operation instances=fadd limit=EFGEN_VEC_BN_FADD)
  EFGEN_HLS(ALLOCATION operation instances=fsub limit=EFGEN_VEC_BN_FSUB)
  EFGEN_HLS(ALLOCATION operation instances=fmul limit=EFGEN_VEC_BN_FMUL)
  const bool red = c.mode <= kBnSums;
  for (int t = 0; t < kT; ++t) {
    EFGEN_VEC_LANES
    const float d = w[t] - m[t];
    const float h = d * s[t];
    const float fa = c.mode == kBnVar ? d : (c.mode == kBnSums ? u[t] : h);
    const float fb = c.mode == kBnVar ? d : (red ? h : k3[t]);
    const float f = fa * fb;
    const float e = u[t] * c.n;
    const float g = (red ? p0[t] : e) + (red ? u[t] : -k2[t]);
    const float ha = red ? p1[t] : (c.mode == kBnNorm ? k2[t] : g);
    const float z = ha + (c.mode == kBnDx ? -f : f);
    const float o = z * k4[t];
    q0[t] = g;
    q1[t] = z;
    y[t] = c.mode == kBnDx ? o : z;
  }
}

// ---- unit_pool: pooling, T lanes: 1 fadd, 1 fmul, 2 fcmp (W lanes' worth
// instantiated).
//   kPoolMax:   (acc, idx) <- (v, kf) where v > acc (strict: the first maximum stays)
//   kPoolAvg:   acc + v
//   kPoolMaxBp: acc + (aux == kf ? v : 0)   (aux = argmax, v = dy)
//   kPoolAvgBp: acc + v*inv
//   kPoolScale: v*inv                       (avg-pool output; inv = 1 for max)
enum PoolMode : int { kPoolMax = 0, kPoolAvg = 1, kPoolMaxBp = 2, kPoolAvgBp = 3,
                      kPoolScale = 4 };

struct PoolCtl {
  int mode;
  float kf;   // window index i*kw + j of this iteration
  float inv;  // 1/(kh*kw) (1 for max)
};

static inline void unit_pool(const VecF& v, const VecF& aux, const VecF& acc, const VecF& idx,
                             const PoolCtl c, VecF& acc_o, VecF& idx_o) {
  EFGEN_HLS(INLINE off)
  EFGEN_HLS(PIPELINE II=1)
  EFGEN_HLS(ALLOCATION operation instances=fadd limit=EFGEN_VEC_POOL_FADD)
  EFGEN_HLS(ALLOCATION operation instances=fmul limit=EFGEN_VEC_POOL_FMUL)
  EFGEN_HLS(ALLOCATION operation instances=fcmp limit=EFGEN_VEC_POOL_FCMP)
  for (int t = 0; t < kT; ++t) {
    EFGEN_VEC_LANES
    const bool gt = v[t] > acc[t];
    const bool hit = aux[t] == c.kf;
    const float sc = v[t] * c.inv;
    const float term = c.mode == kPoolAvg ? v[t] : (c.mode == kPoolMaxBp ? (hit ? v[t] : 0.0f) : sc);
    const float s = acc[t] + term;
    const bool take = c.mode == kPoolMax && gt;
    acc_o[t] = c.mode == kPoolMax ? (gt ? v[t] : acc[t]) : (c.mode == kPoolScale ? sc : s);
    idx_o[t] = take ? c.kf : idx[t];
  }
}

// ---- unit_tree: the fixed-order combine of one channel's kIL partial sums, times
// `scale`: 7 fadd, 1 fmul (scalar).
static_assert(kIL == 8, "unit_tree combines 8 partial sums");
static inline float unit_tree(const float (&p)[kIL], const float scale) {
  EFGEN_HLS(INLINE off)
  EFGEN_HLS(PIPELINE II=1)
  EFGEN_HLS(ARRAY_PARTITION variable=p type=complete)
  const float a = (p[0] + p[1]) + (p[2] + p[3]);
  const float b = (p[4] + p[5]) + (p[6] + p[7]);
  return (a + b) * scale;
}

// ---- unit_rcp: 1/x, or 1/sqrt(x + eps) with `root`: 1 fadd, 1 fsqrt, 1 fdiv (scalar).
// The engine's only divider.
static inline float unit_rcp(const float x, const float eps, const bool root) {
  EFGEN_HLS(INLINE off)
  EFGEN_HLS(PIPELINE II=1)
  const float r = std::sqrt(x + eps);
  return 1.0f / (root ? r : x);
}

// ---- unit_sgd: 3 fadd, 4 fmul (scalar). pk = p*k; v' = mom*v + (g + wd*pk);
// p' = pk - lr*v'. SGD (k = 1): the golden's g = grad + wd*p, v = momentum*v + g,
// p -= lr*v. Running statistic (g = 0, mom = 1 - bn_momentum, wd = bn_momentum):
// v' = keep*running + bn_momentum*(stat*k). BN coef (g = v = mom = 0, wd = 1/n):
// v' = (gamma*invstd)/n.
static inline void unit_sgd(const float p, const float k, const float g, const float v,
                            const float lr, const float mom, const float wd, float& v_o,
                            float& p_o) {
  EFGEN_HLS(INLINE off)
  EFGEN_HLS(PIPELINE II=1)
  const float pk = p * k;
  const float vn = mom * v + (g + wd * pk);
  v_o = vn;
  p_o = pk - lr * vn;
}

// ===================================================================== element-wise
// RELU_FP, RELU_BP, ADD_FP, ERRSUM on the tensor (batch, out_c, out_h, out_w), one
// contiguous run of B*ceil(C/T)*H*W vectors. The op's streams, in order: its sources
// (kSum), then its gates (kGate): RELU_FP x | ADD_FP a, b | RELU_BP dy, y (gate) |
// ERRSUM a[0..n_src-1]; then the mask source a[6] (gate) with FLAG_MASK on a BP op.
// Pass p reads streams 2p (gmem0) and 2p+1 (gmem1); the last pass writes. With one
// pass the whole tensor is one loop; with 2-3 passes (3-5 streams) the tensor runs in
// chunks of kChunk vectors, the running value between passes in `ebuf`.

// One pass over n vectors (a chunk, or the whole tensor when first && last). o0, o1,
// ow: word addresses of the pass's first vector in stream 0, stream 1, the output.
static inline void ew_pass(const float* mem_in, int64_t o0, const float* mem_w, int64_t o1,
                           float* mem_out, int64_t ow, const int64_t n, const EwCtl c,
                           const bool last, BlockPos& pos, const int64_t HW, const int CB,
                           const int C, ChunkMem& ebuf) {
  EFGEN_HLS(INLINE)
  VecF zero;
  EFGEN_HLS(ARRAY_PARTITION variable=zero type=complete)
  vfill(zero, 0.0f);
  if (!last) {  // a middle pass: two streams, the running value stays on chip
    EFGEN_LABEL(ew_mid)
    for (int64_t i = 0; i < n; ++i) {
      EFGEN_HLS(PIPELINE II=1)
      EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_VEC_CHUNK)
      EFGEN_HLS(DEPENDENCE variable=ebuf type=inter dependent=false)
      VecF x0, x1, a, ao, y;
      EFGEN_HLS(ARRAY_PARTITION variable=x0 type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=x1 type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=a type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=ao type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=y type=complete)
      vread(mem_in, o0, x0);
      vread(mem_w, o1, x1);
      vcopy(ebuf[i], a);
      unit_ew(x0, x1, a, c, kT, ao, y);
      vput(ao, ebuf[i]);
      o0 += kT;
      o1 += kT;
    }
  } else if (c.r1 != kNone) {  // the last pass, two streams
    int bi = 0;  // ebuf index (only read after a middle pass, when n <= kChunk)
    EFGEN_LABEL(ew_last2)
    for (int64_t i = 0; i < n; ++i) {
      EFGEN_HLS(PIPELINE II=1)
      EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_VECS)
      VecF x0, x1, a, ao, y;
      EFGEN_HLS(ARRAY_PARTITION variable=x0 type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=x1 type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=a type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=ao type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=y type=complete)
      vread(mem_in, o0, x0);
      vread(mem_w, o1, x1);
      vcopy(ebuf[bi], a);
      unit_ew(x0, x1, a, c, pos.valid, ao, y);
      vwrite(mem_out, ow, y);
      o0 += kT;
      o1 += kT;
      ow += kT;
      bi = bi == kChunk - 1 ? 0 : bi + 1;
      block_step(pos, HW, CB, C);
    }
  } else {  // the last pass, one stream
    int bi = 0;
    EFGEN_LABEL(ew_last1)
    for (int64_t i = 0; i < n; ++i) {
      EFGEN_HLS(PIPELINE II=1)
      EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_VECS)
      VecF x0, a, ao, y;
      EFGEN_HLS(ARRAY_PARTITION variable=x0 type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=a type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=ao type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=y type=complete)
      vread(mem_in, o0, x0);
      vcopy(ebuf[bi], a);
      unit_ew(x0, zero, a, c, pos.valid, ao, y);
      vwrite(mem_out, ow, y);
      o0 += kT;
      ow += kT;
      bi = bi == kChunk - 1 ? 0 : bi + 1;
      block_step(pos, HW, CB, C);
    }
  }
}

static inline void eltwise(const EfgenDesc& d, const float* mem_in, const float* mem_w,
                           float* mem_out, ChunkMem& ebuf) {
  EFGEN_HLS(INLINE)
  const int op = d.op;
  const int C = d.out_c;
  const int CB = n_blocks(C);
  const int64_t HW = int64_t(d.out_h) * d.out_w;
  const int64_t nvec = int64_t(d.batch) * CB * HW;
  const bool fp = op == EFGEN_OP_RELU_FP || op == EFGEN_OP_ADD_FP;
  const bool relu = op == EFGEN_OP_RELU_FP || (fp && (d.flags & EFGEN_FLAG_RELU) != 0);
  const bool mask = !fp && (d.flags & EFGEN_FLAG_MASK) != 0;
  int64_t sa[5] = {0, 0, 0, 0, 0};  // streams: word address, role
  int sr[6] = {kNone, kNone, kNone, kNone, kNone, kNone};
  int k = 0;
  if (op == EFGEN_OP_ERRSUM) {
    for (int i = 0; i < 4; ++i) {
      EFGEN_HLS(UNROLL)
      EFGEN_HLS(LOOP_TRIPCOUNT min=4 max=4)
      if (i < d.n_src) {
        sa[k] = d.a[i];
        sr[k++] = kSum;
      }
    }
  } else {
    sa[k] = d.a[0];
    sr[k++] = kSum;
    if (op != EFGEN_OP_RELU_FP) {
      sa[k] = d.a[1];
      sr[k++] = op == EFGEN_OP_RELU_BP ? kGate : kSum;
    }
  }
  if (mask) {
    sa[k] = d.a[6];
    sr[k++] = kGate;
  }
  const int passes = (k + 1) / 2;
  BlockPos pos = block_start(C);
  if (passes == 1) {
    ew_pass(mem_in, sa[0], mem_w, sa[1], mem_out, d.a[7], nvec,
            ew_ctl(sr[0], sr[1], true, relu), true, pos, HW, CB, C, ebuf);
    return;
  }
  EFGEN_LABEL(ew_chunks)
  for (int64_t c0 = 0; c0 < nvec; c0 += kChunk) {
    EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_VEC_CHUNKS)
    const int64_t n = nvec - c0 < kChunk ? nvec - c0 : int64_t(kChunk);
    const int64_t off = c0 * kT;
    EFGEN_LABEL(ew_passes)
    for (int p = 0; p < passes; ++p) {
      EFGEN_HLS(LOOP_TRIPCOUNT min=2 max=3)
      const int s = 2 * p;
      ew_pass(mem_in, sa[s] + off, mem_w, sa[s + 1 < 5 ? s + 1 : 4] + off, mem_out,
              d.a[7] + off, n, ew_ctl(sr[s], sr[s + 1], p == 0, relu), p == passes - 1, pos,
              HW, CB, C, ebuf);
    }
  }
}

// ======================================================================== batchnorm
// Per-channel state lives in `chan` ([vector][block][lane], lanes partitioned) and the
// partial sums in `part` ([sum][slot][block][lane]).

// C words at addr (gmem1) -> chan[which], one word per cycle.
static inline void load_chan(const float* mem_w, const int64_t addr, const int C,
                             const int which, ChanMem& chan) {
  EFGEN_HLS(INLINE)
  int cb = 0, t = 0;
  EFGEN_LABEL(load_chan)
  for (int c = 0; c < C; ++c) {
    EFGEN_HLS(PIPELINE II=1)
    EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_C)
    chan[which][cb][t] = mem_w[addr + c];
    if (++t == kT) {
      t = 0;
      ++cb;
    }
  }
}

// chan[which] -> C words at addr (gmem2).
static inline void store_chan(float* mem_out, const int64_t addr, const int C, const int which,
                              const ChanMem& chan) {
  EFGEN_HLS(INLINE)
  int cb = 0, t = 0;
  EFGEN_LABEL(store_chan)
  for (int c = 0; c < C; ++c) {
    EFGEN_HLS(PIPELINE II=1)
    EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_C)
    mem_out[addr + c] = chan[which][cb][t];
    if (++t == kT) {
      t = 0;
      ++cb;
    }
  }
}

// n words at addr (gmem2) set to v.
static inline void fill_words(float* mem_out, const int64_t addr, const int n, const float v) {
  EFGEN_HLS(INLINE)
  EFGEN_LABEL(fill_words)
  for (int c = 0; c < n; ++c) {
    EFGEN_HLS(PIPELINE II=1)
    EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_C)
    mem_out[addr + c] = v;
  }
}

// Zero both partial-sum sets of CB blocks (all slots and lanes: one block per cycle).
static inline void clear_part(const int CB, PartMem& part) {
  EFGEN_HLS(INLINE)
  EFGEN_LABEL(clear_part)
  for (int cb = 0; cb < CB; ++cb) {
    EFGEN_HLS(PIPELINE II=1)
    EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_CB)
    for (int s = 0; s < kIL; ++s) {
      EFGEN_HLS(UNROLL)
      EFGEN_HLS(LOOP_TRIPCOUNT min=8 max=8)
      for (int t = 0; t < kT; ++t) {
        EFGEN_VEC_LANES
        part[0][s][cb][t] = 0.0f;
        part[1][s][cb][t] = 0.0f;
      }
    }
  }
}

// chan[dst][c] = scale * (the pairwise combine of part[which][0..7][c]).
static inline void reduce_chan(const int C, const int which, const float scale, const int dst,
                               const PartMem& part, ChanMem& chan) {
  EFGEN_HLS(INLINE)
  int cb = 0, t = 0;
  EFGEN_LABEL(reduce_chan)
  for (int c = 0; c < C; ++c) {
    EFGEN_HLS(PIPELINE II=1)
    EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_C)
    float p[kIL];
    EFGEN_HLS(ARRAY_PARTITION variable=p type=complete)
    for (int s = 0; s < kIL; ++s) {
      EFGEN_HLS(UNROLL)
      EFGEN_HLS(LOOP_TRIPCOUNT min=8 max=8)
      p[s] = part[which][s][cb][t];
    }
    chan[dst][cb][t] = unit_tree(p, scale);
    if (++t == kT) {
      t = 0;
      ++cb;
    }
  }
}

// chan[kChInvstd][c] = 1/sqrt(chan[kChVar][c] + eps).
static inline void invstd_chan(const int C, const float eps, ChanMem& chan) {
  EFGEN_HLS(INLINE)
  int cb = 0, t = 0;
  EFGEN_LABEL(invstd_chan)
  for (int c = 0; c < C; ++c) {
    EFGEN_HLS(PIPELINE II=1)
    EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_C)
    chan[kChInvstd][cb][t] = unit_rcp(chan[kChVar][cb][t], eps, true);
    if (++t == kT) {
      t = 0;
      ++cb;
    }
  }
}

// A running statistic in place (read gmem1, write gmem2, same words):
// r = keep*r + mom*(chan[src]*k).
static inline void running_chan(const float* mem_w, float* mem_out, const int64_t addr,
                                const int C, const int src, const float keep, const float mom,
                                const float k, const ChanMem& chan) {
  EFGEN_HLS(INLINE)
  int cb = 0, t = 0;
  EFGEN_LABEL(running_chan)
  for (int c = 0; c < C; ++c) {
    EFGEN_HLS(PIPELINE II=1)
    EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_C)
    float v = 0.0f, unused = 0.0f;
    unit_sgd(chan[src][cb][t], k, 0.0f, mem_w[addr + c], 0.0f, keep, mom, v, unused);
    mem_out[addr + c] = v;
    if (++t == kT) {
      t = 0;
      ++cb;
    }
  }
}

// SGD of one parameter vector: the velocity in place at vaddr (gmem1 -> gmem2), the new
// parameter into chan[prm] (its old value is no longer needed on chip).
static inline void sgd_chan(const float* mem_w, float* mem_out, const int64_t vaddr, const int C,
                            const int grad, const int prm, const EfgenDesc& d, ChanMem& chan) {
  EFGEN_HLS(INLINE)
  int cb = 0, t = 0;
  EFGEN_LABEL(sgd_chan)
  for (int c = 0; c < C; ++c) {
    EFGEN_HLS(PIPELINE II=1)
    EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_C)
    float v = 0.0f, p = 0.0f;
    unit_sgd(chan[prm][cb][t], 1.0f, chan[grad][cb][t], mem_w[vaddr + c], d.lr, d.momentum,
             d.weight_decay, v, p);
    mem_out[vaddr + c] = v;
    chan[prm][cb][t] = p;
    if (++t == kT) {
      t = 0;
      ++cb;
    }
  }
}

// chan[kChCoef][c] = (gamma*invstd)/n.
static inline void coef_chan(const int C, const float inv_n, ChanMem& chan) {
  EFGEN_HLS(INLINE)
  int cb = 0, t = 0;
  EFGEN_LABEL(coef_chan)
  for (int c = 0; c < C; ++c) {
    EFGEN_HLS(PIPELINE II=1)
    EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_C)
    float v = 0.0f, unused = 0.0f;
    unit_sgd(chan[kChGamma][cb][t], chan[kChInvstd][cb][t], 0.0f, 0.0f, 0.0f, 0.0f, inv_n, v,
             unused);
    chan[kChCoef][cb][t] = v;
    if (++t == kT) {
      t = 0;
      ++cb;
    }
  }
}

// The per-channel operands of unit_bn for block cb and the partial sums of (slot, cb).
static inline void bn_gather(const ChanMem& chan, const PartMem& part, const int cb,
                             const int slot, const int i2, const int i3, VecF& m, VecF& s,
                             VecF& k2, VecF& k3, VecF& k4, VecF& p0, VecF& p1) {
  EFGEN_HLS(INLINE)
  vcopy(chan[kChMean][cb], m);
  vcopy(chan[kChInvstd][cb], s);
  vcopy(chan[i2][cb], k2);
  vcopy(chan[i3][cb], k3);
  vcopy(chan[kChCoef][cb], k4);
  vcopy(part[0][slot][cb], p0);
  vcopy(part[1][slot][cb], p1);
}

// One streaming pass over the (batch, C, H*W) tensor(s) of a batchnorm descriptor:
// kBnMean/kBnVar read x (a[0], gmem0); kBnSums reads dy (a[0], gmem0) and x (a[1],
// gmem1); kBnNorm reads x and writes y (a[7]); kBnDx reads dy and x and writes dx (a[7]),
// masked by x > 0 with FLAG_MASK. The reductions accumulate into part[.][slot][cb] with
// a free-running slot (0..7): an accumulator recurs exactly every 8 iterations.
// kBnNorm with x2 != 0 (BN_FIN with FLAG_ADDX) runs the two-stream loop of kBnDx: it
// also reads x2 (gmem1, beside x) and stores relu?(y + x2), a residual add in the BN's
// materialisation.
static inline void bn_pass(const int mode, const EfgenDesc& d, const float* mem_in,
                           const float* mem_w, float* mem_out, const float nf,
                           PartMem& part, ChanMem& chan, const int64_t x2 = 0) {
  EFGEN_HLS(INLINE)
  const int C = d.in_c;
  const int CB = n_blocks(C);
  const int64_t HW = int64_t(d.in_h) * d.in_w;
  const int64_t nvec = int64_t(d.batch) * CB * HW;
  BnCtl bc;
  bc.mode = mode;
  bc.n = nf;
  const int i2 = mode == kBnDx ? kChDbeta : kChBeta;
  const int i3 = mode == kBnDx ? kChDgamma : kChGamma;
  const bool mask = mode == kBnDx && (d.flags & EFGEN_FLAG_MASK) != 0;
  const bool relu = mode == kBnNorm && (d.flags & EFGEN_FLAG_RELU) != 0;
  const EwCtl ec = ew_ctl(kSum, mask ? kGate : (x2 != 0 ? kSum : kNone), true, relu);
  VecF zero;
  EFGEN_HLS(ARRAY_PARTITION variable=zero type=complete)
  vfill(zero, 0.0f);
  int64_t o0 = d.a[0], o1 = x2 != 0 ? x2 : d.a[1], ow = d.a[7];
  BlockPos pos = block_start(C);
  int slot = 0;
  if (mode == kBnMean || mode == kBnVar) {
    EFGEN_LABEL(bn_reduce_x)
    for (int64_t i = 0; i < nvec; ++i) {
      EFGEN_HLS(PIPELINE II=1)
      EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_VECS)
      EFGEN_HLS(DEPENDENCE variable=part type=inter direction=RAW distance=8 dependent=true)
      VecF u, q0, q1, y;
      VecF m, sd, k2, k3, k4, p0, p1;
      EFGEN_HLS(ARRAY_PARTITION variable=m type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=sd type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=k2 type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=k3 type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=k4 type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=p0 type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=p1 type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=u type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=q0 type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=q1 type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=y type=complete)
      vread(mem_in, o0, u);
      bn_gather(chan, part, pos.cb, slot, i2, i3, m, sd, k2, k3, k4, p0, p1);
      unit_bn(u, u, p0, p1, m, sd, k2, k3, k4, bc, q0, q1, y);
      vput(q0, part[0][slot][pos.cb]);
      vput(q1, part[1][slot][pos.cb]);
      o0 += kT;
      slot = slot == kIL - 1 ? 0 : slot + 1;
      block_step(pos, HW, CB, C);
    }
  } else if (mode == kBnSums) {
    EFGEN_LABEL(bn_reduce_dyx)
    for (int64_t i = 0; i < nvec; ++i) {
      EFGEN_HLS(PIPELINE II=1)
      EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_VECS)
      EFGEN_HLS(DEPENDENCE variable=part type=inter direction=RAW distance=8 dependent=true)
      VecF u, w, q0, q1, y;
      VecF m, sd, k2, k3, k4, p0, p1;
      EFGEN_HLS(ARRAY_PARTITION variable=m type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=sd type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=k2 type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=k3 type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=k4 type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=p0 type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=p1 type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=u type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=w type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=q0 type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=q1 type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=y type=complete)
      vread(mem_in, o0, u);
      vread(mem_w, o1, w);
      bn_gather(chan, part, pos.cb, slot, i2, i3, m, sd, k2, k3, k4, p0, p1);
      unit_bn(u, w, p0, p1, m, sd, k2, k3, k4, bc, q0, q1, y);
      vput(q0, part[0][slot][pos.cb]);
      vput(q1, part[1][slot][pos.cb]);
      o0 += kT;
      o1 += kT;
      slot = slot == kIL - 1 ? 0 : slot + 1;
      block_step(pos, HW, CB, C);
    }
  } else if (mode == kBnNorm && x2 == 0) {
    EFGEN_LABEL(bn_normalise)
    for (int64_t i = 0; i < nvec; ++i) {
      EFGEN_HLS(PIPELINE II=1)
      EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_VECS)
      VecF u, q0, q1, y, a, out;
      VecF m, sd, k2, k3, k4, p0, p1;
      EFGEN_HLS(ARRAY_PARTITION variable=m type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=sd type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=k2 type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=k3 type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=k4 type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=p0 type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=p1 type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=u type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=q0 type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=q1 type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=y type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=a type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=out type=complete)
      vread(mem_in, o0, u);
      bn_gather(chan, part, pos.cb, 0, i2, i3, m, sd, k2, k3, k4, p0, p1);
      unit_bn(u, u, p0, p1, m, sd, k2, k3, k4, bc, q0, q1, y);
      unit_ew(y, zero, zero, ec, pos.valid, a, out);
      vwrite(mem_out, ow, out);
      o0 += kT;
      ow += kT;
      block_step(pos, HW, CB, C);
    }
  } else {
    EFGEN_LABEL(bn_dx)
    for (int64_t i = 0; i < nvec; ++i) {
      EFGEN_HLS(PIPELINE II=1)
      EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_VECS)
      VecF u, w, q0, q1, y, a, out;
      VecF m, sd, k2, k3, k4, p0, p1;
      EFGEN_HLS(ARRAY_PARTITION variable=m type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=sd type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=k2 type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=k3 type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=k4 type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=p0 type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=p1 type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=u type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=w type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=q0 type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=q1 type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=y type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=a type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=out type=complete)
      vread(mem_in, o0, u);
      vread(mem_w, o1, w);
      bn_gather(chan, part, pos.cb, 0, i2, i3, m, sd, k2, k3, k4, p0, p1);
      // dx: x = w (a[1], also the mask source); norm: x = u, and w = x2 is added
      unit_bn(u, mode == kBnNorm ? u : w, p0, p1, m, sd, k2, k3, k4, bc, q0, q1, y);
      unit_ew(y, w, zero, ec, pos.valid, a, out);
      vwrite(mem_out, ow, out);
      o0 += kT;
      o1 += kT;
      ow += kT;
      block_step(pos, HW, CB, C);
    }
  }
}

// BN_FIN's statistics (restructured BN), from the sums the producing conv's store
// accumulated (constants block a[6]: s1 = sum(x-k), s2 = sum((x-k)^2), k = the running
// mean a[4] before its update), on unit_sgd and unit_rcp only (no float operator of its
// own): d = s1*(1/n), var = (1/n)*s2 - d*d, mean = k + d, invstd = 1/sqrt(var + eps).
static inline void bn_fin_stats(const EfgenDesc& d, const int C, const float inv_n,
                                const float* mem_w, ChanMem& chan) {
  EFGEN_HLS(INLINE)
  const int64_t blk = d.a[6];
  load_chan(mem_w, blk, C, kChDbeta, chan);       // s1 (scratch)
  load_chan(mem_w, blk + C, C, kChDgamma, chan);  // s2 (scratch)
  load_chan(mem_w, d.a[4], C, kChCoef, chan);     // k (scratch)
  int cb = 0, t = 0;
  EFGEN_LABEL(bn_fin_shift)
  for (int c = 0; c < C; ++c) {   // d = s1*(1/n)
    EFGEN_HLS(PIPELINE II=1)
    EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_C)
    float v = 0.0f, p = 0.0f;
    unit_sgd(chan[kChDbeta][cb][t], inv_n, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, v, p);
    chan[kChDbeta][cb][t] = p;
    if (++t == kT) {
      t = 0;
      ++cb;
    }
  }
  cb = 0;
  t = 0;
  EFGEN_LABEL(bn_fin_var)
  for (int c = 0; c < C; ++c) {   // var = (1/n)*s2 + (0 + (-1)*(d*d))
    EFGEN_HLS(PIPELINE II=1)
    EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_C)
    float v = 0.0f, unused = 0.0f;
    const float dd = chan[kChDbeta][cb][t];
    unit_sgd(dd, dd, 0.0f, chan[kChDgamma][cb][t], 0.0f, inv_n, -1.0f, v, unused);
    chan[kChVar][cb][t] = v;
    if (++t == kT) {
      t = 0;
      ++cb;
    }
  }
  cb = 0;
  t = 0;
  EFGEN_LABEL(bn_fin_mean)
  for (int c = 0; c < C; ++c) {   // mean = 0*0 + (k + 1*d)
    EFGEN_HLS(PIPELINE II=1)
    EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_C)
    float v = 0.0f, unused = 0.0f;
    unit_sgd(chan[kChDbeta][cb][t], 1.0f, chan[kChCoef][cb][t], 0.0f, 0.0f, 0.0f, 1.0f, v,
             unused);
    chan[kChMean][cb][t] = v;
    if (++t == kT) {
      t = 0;
      ++cb;
    }
  }
  invstd_chan(C, d.eps, chan);
}

// BN_FP: mean pass, centred variance pass (both read x), statistics (a[3]: mean[C] then
// biased var[C]), running statistics in place (a[4], a[5]: momentum bn_momentum,
// unbiased var), normalise pass (x -> y, fused ReLU with FLAG_RELU).
// BN_FIN (restructured BN) shares it: the statistics from the block's sums instead of
// the two passes (bn_fin_stats), the block's mean, invstd, gamma, beta written (what the
// consumers' loads apply), and the normalise pass only with a[7] != 0 (materialised).
static inline void bn_fp(const EfgenDesc& d, const float* mem_in, const float* mem_w,
                         float* mem_out, PartMem& part, ChanMem& chan) {
  EFGEN_HLS(INLINE)
  const int C = d.in_c;
  const int CB = n_blocks(C);
  const int64_t n = int64_t(d.batch) * d.in_h * d.in_w;  // elements per channel
  const float nf = float(n);
  const float inv_n = unit_rcp(nf, 0.0f, false);
  const bool fin = d.op == EFGEN_OP_BN_FIN;
  // FLAG_ADDX: the residual add's other operand (its address in the constants block),
  // read first: a negative address refuses the descriptor before anything is written.
  int64_t x2 = 0;
  if (fin && (d.flags & EFGEN_FLAG_ADDX) && d.a[7] != 0) {
    uint32_t aw[2] = {0, 0};
    EFGEN_LABEL(bn_fin_addx)
    for (int k = 0; k < 2; ++k) {
      EFGEN_HLS(PIPELINE II=1)
      EFGEN_HLS(LOOP_TRIPCOUNT min=2 max=2)
      std::memcpy(&aw[k], &mem_w[d.a[6] + 8 * int64_t(C) + k], sizeof aw[k]);
    }
    x2 = int64_t((uint64_t(aw[1]) << 32) | uint64_t(aw[0]));
    if (x2 <= 0) return;
  }
  if (fin) bn_fin_stats(d, C, inv_n, mem_w, chan);
  load_chan(mem_w, d.a[1], C, kChGamma, chan);
  load_chan(mem_w, d.a[2], C, kChBeta, chan);
  if (fin) {
    const int64_t blk = d.a[6];
    store_chan(mem_out, blk + 2 * int64_t(C), C, kChMean, chan);
    store_chan(mem_out, blk + 3 * int64_t(C), C, kChInvstd, chan);
    store_chan(mem_out, blk + 4 * int64_t(C), C, kChGamma, chan);
    store_chan(mem_out, blk + 5 * int64_t(C), C, kChBeta, chan);
  } else {
    clear_part(CB, part);
    bn_pass(kBnMean, d, mem_in, mem_w, mem_out, nf, part, chan);
    reduce_chan(C, 0, inv_n, kChMean, part, chan);
    clear_part(CB, part);
    bn_pass(kBnVar, d, mem_in, mem_w, mem_out, nf, part, chan);
    reduce_chan(C, 1, inv_n, kChVar, part, chan);
    invstd_chan(C, d.eps, chan);
  }
  store_chan(mem_out, d.a[3], C, kChMean, chan);
  store_chan(mem_out, d.a[3] + C, C, kChVar, chan);
  // PyTorch's running update: the unbiased variance, var * n/(n-1).
  const float keep = 1.0f - d.bn_momentum;
  const float unbias = n > 1 ? nf * unit_rcp(nf - 1.0f, 0.0f, false) : 1.0f;
  running_chan(mem_w, mem_out, d.a[4], C, kChMean, keep, d.bn_momentum, 1.0f, chan);
  running_chan(mem_w, mem_out, d.a[5], C, kChVar, keep, d.bn_momentum, unbias, chan);
  if (!fin || d.a[7] != 0) bn_pass(kBnNorm, d, mem_in, mem_w, mem_out, nf, part, chan, x2);
}

// BN_BP: sums pass (dy, x) -> dbeta = sum(dy), dgamma = sum(dy*xhat); coef =
// gamma*invstd/n with the OLD gamma; debug copies dgamma[C], dbeta[C] to a[6] (when
// non-zero); SGD of gamma (a[3]) and beta (a[4]) with velocities a[5] (gamma's C, then
// beta's C) when FLAG_TRAIN; dx pass when FLAG_DX.
static inline void bn_bp(const EfgenDesc& d, const float* mem_in, const float* mem_w,
                         float* mem_out, PartMem& part, ChanMem& chan) {
  EFGEN_HLS(INLINE)
  const int C = d.in_c;
  const int CB = n_blocks(C);
  const int64_t n = int64_t(d.batch) * d.in_h * d.in_w;
  const float nf = float(n);
  const float inv_n = unit_rcp(nf, 0.0f, false);
  load_chan(mem_w, d.a[2], C, kChMean, chan);
  load_chan(mem_w, d.a[2] + C, C, kChVar, chan);
  load_chan(mem_w, d.a[3], C, kChGamma, chan);
  invstd_chan(C, d.eps, chan);
  if (d.flags & EFGEN_FLAG_SUMS) {   // restructured BN: the finalising BP store's sums
    load_chan(mem_w, d.a[2] + 2 * int64_t(C), C, kChDbeta, chan);
    load_chan(mem_w, d.a[2] + 3 * int64_t(C), C, kChDgamma, chan);
  } else {
    clear_part(CB, part);
    bn_pass(kBnSums, d, mem_in, mem_w, mem_out, nf, part, chan);
    reduce_chan(C, 0, 1.0f, kChDbeta, part, chan);
    reduce_chan(C, 1, 1.0f, kChDgamma, part, chan);
  }
  coef_chan(C, inv_n, chan);
  if (!(d.flags & EFGEN_FLAG_DX) && (d.flags & EFGEN_FLAG_DXK)) {
    // restructured BN: the constants of the dx affine the producing conv's BP and WU
    // loads apply (mean, invstd, coef, n | sum(dy), sum(dy*x_hat), 0, 0), OLD gamma.
    const int64_t b = d.a[7];
    store_chan(mem_out, b, C, kChMean, chan);
    store_chan(mem_out, b + C, C, kChInvstd, chan);
    store_chan(mem_out, b + 2 * int64_t(C), C, kChCoef, chan);
    fill_words(mem_out, b + 3 * int64_t(C), C, nf);
    store_chan(mem_out, b + 4 * int64_t(C), C, kChDbeta, chan);
    store_chan(mem_out, b + 5 * int64_t(C), C, kChDgamma, chan);
    fill_words(mem_out, b + 6 * int64_t(C), 2 * C, 0.0f);
  }
  if (d.a[6] != 0) {
    store_chan(mem_out, d.a[6], C, kChDgamma, chan);
    store_chan(mem_out, d.a[6] + C, C, kChDbeta, chan);
  }
  if (d.flags & EFGEN_FLAG_TRAIN) {
    load_chan(mem_w, d.a[4], C, kChBeta, chan);
    sgd_chan(mem_w, mem_out, d.a[5], C, kChDgamma, kChGamma, d, chan);
    sgd_chan(mem_w, mem_out, d.a[5] + C, C, kChDbeta, kChBeta, d, chan);
    store_chan(mem_out, d.a[3], C, kChGamma, chan);
    store_chan(mem_out, d.a[4], C, kChBeta, chan);
  }
  if (d.flags & EFGEN_FLAG_DX) bn_pass(kBnDx, d, mem_in, mem_w, mem_out, nf, part, chan);
}

// ============================================================= rows (pool, shortcut)
// n vectors at o (gmem0) -> rows[ra][0..n).
static inline void load_row1(const float* mem_in, int64_t o, const int n, const int ra,
                             RowMem& rows) {
  EFGEN_HLS(INLINE)
  EFGEN_LABEL(load_row1)
  for (int x = 0; x < n; ++x) {
    EFGEN_HLS(PIPELINE II=1)
    EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_W)
    VecF v;
    EFGEN_HLS(ARRAY_PARTITION variable=v type=complete)
    vread(mem_in, o, v);
    vput(v, rows[ra][x]);
    o += kT;
  }
}

// n vectors at oa (gmem0) -> rows[ra], and n at ob (gmem1) -> rows[rb], in one loop.
static inline void load_row2(const float* mem_in, int64_t oa, const float* mem_w, int64_t ob,
                             const int n, const int ra, const int rb, RowMem& rows) {
  EFGEN_HLS(INLINE)
  EFGEN_LABEL(load_row2)
  for (int x = 0; x < n; ++x) {
    EFGEN_HLS(PIPELINE II=1)
    EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_W)
    VecF va, vb;
    EFGEN_HLS(ARRAY_PARTITION variable=va type=complete)
    EFGEN_HLS(ARRAY_PARTITION variable=vb type=complete)
    vread(mem_in, oa, va);
    vread(mem_w, ob, vb);
    vput(va, rows[ra][x]);
    vput(vb, rows[rb][x]);
    oa += kT;
    ob += kT;
  }
}

// Lane t of the result is lane t + sh of lo_v (t + sh < T) or of hi_v (else), kept where
// its channel c0 + t lies in [0, cn), else 0 (muxes only).
static inline void lane_shift(const float (&lo_v)[kT], const float (&hi_v)[kT], const int sh,
                              const int c0, const int cn, VecF& out) {
  EFGEN_HLS(INLINE)
  for (int t = 0; t < kT; ++t) {
    EFGEN_VEC_LANES
    const int s = t + sh;
    const float v = s < kT ? lo_v[s < kT ? s : 0] : hi_v[s >= kT ? s - kT : 0];
    const int c = c0 + t;
    out[t] = (c >= 0 && c < cn) ? v : 0.0f;
  }
}

// Where the vectors of a stored row come from: staged rows ra/rb, lane-shifted by sh
// with the channel window [0, cn) relative to c0 (lane_shift); output x takes staged
// column col, which starts at 0 and advances by cstep after every zs outputs; outputs
// that are not the first of their group of zs are 0 (zero insertion).
struct RowSrc {
  int ra, rb, sh, c0, cn, cstep, zs;
};

static inline RowSrc row_src(const int ra, const int rb, const int sh, const int c0,
                             const int cn, const int cstep, const int zs) {
  RowSrc r;
  r.ra = ra;
  r.rb = rb;
  r.sh = sh;
  r.c0 = c0;
  r.cn = cn;
  r.cstep = cstep;
  r.zs = zs;
  return r;
}

static inline RowSrc row_direct(const int r) { return row_src(r, r, 0, 0, kT, 1, 1); }

// The store of a staged row: n vectors through unit_ew (pad lanes t >= valid, fused
// ReLU, mask) to o (gmem2); with `mask`, the mask source vectors at om (gmem1) gate
// them. With `reset` the staged vector is zeroed once read (an accumulator row).
static inline void store_row(RowMem& rows, const RowSrc src, const int n, const EwCtl c,
                             const int valid, const bool mask, const bool reset,
                             const float* mem_w, int64_t om, float* mem_out, int64_t o) {
  EFGEN_HLS(INLINE)
  VecF zero;
  EFGEN_HLS(ARRAY_PARTITION variable=zero type=complete)
  vfill(zero, 0.0f);
  int col = 0, zi = 0;
  if (mask) {
    EFGEN_LABEL(store_row_mask)
    for (int x = 0; x < n; ++x) {
      EFGEN_HLS(PIPELINE II=1)
      EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_W)
      VecF v, m, a, y;
      EFGEN_HLS(ARRAY_PARTITION variable=v type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=m type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=a type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=y type=complete)
      lane_shift(rows[src.ra][col], rows[src.rb][col], src.sh, src.c0, zi == 0 ? src.cn : 0, v);
      if (reset) vput(zero, rows[src.ra][col]);  // on chip only
      vread(mem_w, om, m);
      unit_ew(v, m, zero, c, valid, a, y);
      vwrite(mem_out, o, y);
      om += kT;
      o += kT;
      if (++zi == src.zs) {
        zi = 0;
        col += src.cstep;
      }
    }
  } else {
    EFGEN_LABEL(store_row)
    for (int x = 0; x < n; ++x) {
      EFGEN_HLS(PIPELINE II=1)
      EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_W)
      VecF v, a, y;
      EFGEN_HLS(ARRAY_PARTITION variable=v type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=a type=complete)
      EFGEN_HLS(ARRAY_PARTITION variable=y type=complete)
      lane_shift(rows[src.ra][col], rows[src.rb][col], src.sh, src.c0, zi == 0 ? src.cn : 0, v);
      if (reset) vput(zero, rows[src.ra][col]);
      unit_ew(v, zero, zero, c, valid, a, y);
      vwrite(mem_out, o, y);
      o += kT;
      if (++zi == src.zs) {
        zi = 0;
        col += src.cstep;
      }
    }
  }
}

// ========================================================================== pooling
// FP, per (image, block) plane and output row oy: for each window row i, the input row
// r = oy*S - P + i (when inside the map) is in line r & 3 (read once per plane when
// kh <= kLines, tags say which row a line holds); a scan over (j, ox') with ox' in
// [0, OWp), OWp = max(OW, kIL + 1), folds x = ox'*S - P + j into the row's
// accumulators (padding and ox' >= OW fold the neutral value: -inf / 0), so each
// accumulator recurs every OWp >= 9 iterations. Then the output row (and the argmax
// row) is stored. Max: the FIRST maximum in the window's row-major order wins (strict
// >), argmax = i*kw + j as a float. Avg: padding counts as zero, divisor kh*kw (a
// product with its reciprocal). Global pooling is kh = in_h, kw = in_w.
static inline int pool_owp(const int ow) { return ow > kIL ? ow : kIL + 1; }

static inline void pool_fp(const EfgenDesc& d, const float* mem_in, float* mem_out,
                           RowMem& rows, TagMem& tags) {
  EFGEN_HLS(INLINE)
  const bool is_max = d.op == EFGEN_OP_MAXPOOL_FP;
  const int C = d.in_c, H = d.in_h, W = d.in_w, OH = d.out_h, OW = d.out_w;
  const int KW = d.kw, KH = d.kh, S = d.stride, P = d.pad;
  const int CB = n_blocks(C);
  const int OWp = pool_owp(OW);
  const int planes = d.batch * CB;
  const int64_t plane_words = int64_t(H) * W * kT;
  const int64_t row_words = int64_t(W) * kT;
  const float init = is_max ? -std::numeric_limits<float>::infinity() : 0.0f;
  const float inv = is_max ? 1.0f : unit_rcp(float(KH * KW), 0.0f, false);
  const bool relu = (d.flags & EFGEN_FLAG_RELU) != 0;
  PoolCtl pc;
  pc.mode = is_max ? kPoolMax : kPoolAvg;
  pc.kf = 0.0f;
  pc.inv = inv;
  PoolCtl sc = pc;
  sc.mode = kPoolScale;
  const EwCtl ey = ew_ctl(kSum, kNone, true, relu);
  const EwCtl ei = ew_ctl(kSum, kNone, true, false);
  VecF zero;
  EFGEN_HLS(ARRAY_PARTITION variable=zero type=complete)
  vfill(zero, 0.0f);
  EFGEN_LABEL(pool_fp_init)
  for (int x = 0; x < kRowV; ++x) {
    EFGEN_HLS(PIPELINE II=1)
    EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_W)
    for (int t = 0; t < kT; ++t) {
      EFGEN_VEC_LANES
      rows[kRowAcc][x][t] = init;
      rows[kRowIdx][x][t] = 0.0f;
    }
  }
  int64_t plane = d.a[0], oy_o = d.a[7], oa_o = d.a[6];
  int valid = C, cb = 0;
  EFGEN_LABEL(pool_fp_planes)
  for (int pl = 0; pl < planes; ++pl) {
    EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_PLANES)
    for (int l = 0; l < kLines; ++l) {
      EFGEN_HLS(UNROLL)
      EFGEN_HLS(LOOP_TRIPCOUNT min=4 max=4)
      tags[l] = -1;
    }
    int r0 = -P;
    EFGEN_LABEL(pool_fp_rows)
    for (int oy = 0; oy < OH; ++oy) {
      EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_H)
      EFGEN_LABEL(pool_fp_win_rows)
      for (int i = 0; i < KH; ++i) {
        EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_POOL_K)
        const int r = r0 + i;
        if (r < 0 || r >= H) continue;  // a padding row folds nothing
        const int line = r & (kLines - 1);
        if (tags[line] != r) {
          load_row1(mem_in, plane + int64_t(r) * row_words, W, line, rows);
          tags[line] = r;
        }
        const int k0 = i * KW;
        int j = 0, ox = 0, x = -P;
        EFGEN_LABEL(pool_fp_scan)
        for (int it = 0; it < KW * OWp; ++it) {
          EFGEN_HLS(PIPELINE II=1)
          EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_POOL_SPAN)
          EFGEN_HLS(DEPENDENCE variable=rows type=inter direction=RAW distance=8 dependent=true)
          const bool inside = ox < OW && x >= 0 && x < W;
          const int xs = inside ? x : 0;
          pc.kf = float(k0 + j);
          VecF v, a, k, ao, ko;
          EFGEN_HLS(ARRAY_PARTITION variable=v type=complete)
          EFGEN_HLS(ARRAY_PARTITION variable=a type=complete)
          EFGEN_HLS(ARRAY_PARTITION variable=k type=complete)
          EFGEN_HLS(ARRAY_PARTITION variable=ao type=complete)
          EFGEN_HLS(ARRAY_PARTITION variable=ko type=complete)
          for (int t = 0; t < kT; ++t) {
            EFGEN_VEC_LANES
            v[t] = inside ? rows[line][xs][t] : init;
          }
          vcopy(rows[kRowAcc][ox], a);
          vcopy(rows[kRowIdx][ox], k);
          unit_pool(v, zero, a, k, pc, ao, ko);
          vput(ao, rows[kRowAcc][ox]);
          vput(ko, rows[kRowIdx][ox]);
          x += S;
          if (++ox == OWp) {
            ox = 0;
            ++j;
            x = j - P;
          }
        }
      }
      // Store the output row (avg: times 1/(kh*kw)), resetting the accumulators.
      EFGEN_LABEL(pool_fp_store)
      for (int ox = 0; ox < OW; ++ox) {
        EFGEN_HLS(PIPELINE II=1)
        EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_W)
        VecF a, s, unused, ea, y;
        EFGEN_HLS(ARRAY_PARTITION variable=a type=complete)
        EFGEN_HLS(ARRAY_PARTITION variable=s type=complete)
        EFGEN_HLS(ARRAY_PARTITION variable=unused type=complete)
        EFGEN_HLS(ARRAY_PARTITION variable=ea type=complete)
        EFGEN_HLS(ARRAY_PARTITION variable=y type=complete)
        vcopy(rows[kRowAcc][ox], a);
        unit_pool(a, zero, zero, zero, sc, s, unused);
        unit_ew(s, zero, zero, ey, valid, ea, y);
        vwrite(mem_out, oy_o, y);
        vfill(a, init);
        vput(a, rows[kRowAcc][ox]);
        oy_o += kT;
      }
      if (is_max) {
        EFGEN_LABEL(pool_fp_store_arg)
        for (int ox = 0; ox < OW; ++ox) {
          EFGEN_HLS(PIPELINE II=1)
          EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_W)
          VecF a, ea, y;
          EFGEN_HLS(ARRAY_PARTITION variable=a type=complete)
          EFGEN_HLS(ARRAY_PARTITION variable=ea type=complete)
          EFGEN_HLS(ARRAY_PARTITION variable=y type=complete)
          vcopy(rows[kRowIdx][ox], a);
          unit_ew(a, zero, zero, ei, valid, ea, y);
          vwrite(mem_out, oa_o, y);
          vput(zero, rows[kRowIdx][ox]);
          oa_o += kT;
        }
      }
      r0 += S;
    }
    plane += plane_words;
    if (++cb == CB) {
      cb = 0;
      valid = C;
    } else {
      valid -= kT;
    }
  }
}

// BP, per plane and dx row r: the output rows whose windows cover r are oy = q - si
// with window row i = rr + si*S (q = (r+P)/S, rr = (r+P)%S, kept as counters), si
// ascending: i ascending, the golden's order. For each, the dy row (and the argmax row,
// gmem1) is in line pair oy & 1 (read once per plane when ceil(kh/S) <= 2, tags say
// which row a pair holds), then scattered over (j, ox') into the dx row accumulator: max
// adds dy where argmax == i*kw + j, avg adds dy/(kh*kw). The same x recurs every >=
// S*OWp - 1 >= kIL iterations. Then the dx row is stored (mask source a[6] on gmem1) and
// zeroed for the next row.
static inline void pool_bp(const EfgenDesc& d, const float* mem_in, const float* mem_w,
                           float* mem_out, RowMem& rows, TagMem& tags) {
  EFGEN_HLS(INLINE)
  const bool is_max = d.op == EFGEN_OP_MAXPOOL_BP;
  const int C = d.in_c, H = d.in_h, W = d.in_w, OH = d.out_h, OW = d.out_w;
  const int KH = d.kh, KW = d.kw, S = d.stride, P = d.pad;
  const int CB = n_blocks(C);
  const int OWp = pool_owp(OW);
  const int NI = (KH + S - 1) / S;
  const int q0 = P / S, rr0 = P % S;
  const int planes = d.batch * CB;
  const int64_t dy_plane_words = int64_t(OH) * OW * kT;
  const int64_t dy_row_words = int64_t(OW) * kT;
  const int64_t dx_row_words = int64_t(W) * kT;
  const float inv = is_max ? 1.0f : unit_rcp(float(KH * KW), 0.0f, false);
  const bool mask = (d.flags & EFGEN_FLAG_MASK) != 0;
  PoolCtl pc;
  pc.mode = is_max ? kPoolMaxBp : kPoolAvgBp;
  pc.kf = 0.0f;
  pc.inv = inv;
  const EwCtl es = ew_ctl(kSum, mask ? kGate : kNone, true, false);
  VecF zero;
  EFGEN_HLS(ARRAY_PARTITION variable=zero type=complete)
  vfill(zero, 0.0f);
  EFGEN_LABEL(pool_bp_init)
  for (int x = 0; x < kRowV; ++x) {
    EFGEN_HLS(PIPELINE II=1)
    EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_W)
    vput(zero, rows[kRowDx][x]);
  }
  int64_t dy_plane = d.a[0], arg_plane = d.a[1], dx_o = d.a[7], m_o = d.a[6];
  int valid = C, cb = 0;
  EFGEN_LABEL(pool_bp_planes)
  for (int pl = 0; pl < planes; ++pl) {
    EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_PLANES)
    tags[0] = -1;
    tags[1] = -1;
    int q = q0, rr = rr0;
    EFGEN_LABEL(pool_bp_rows)
    for (int r = 0; r < H; ++r) {
      EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_H)
      EFGEN_LABEL(pool_bp_win_rows)
      for (int si = 0; si < NI; ++si) {
        EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_POOL_K)
        const int i = rr + si * S, oy = q - si;
        if (i >= KH || oy < 0 || oy >= OH) continue;
        const int64_t ro = int64_t(oy) * dy_row_words;
        // dy row oy (and its argmax row) live in line pair oy & 1: rows (0, 1) or (3, 4).
        const int rdy = (oy & 1) ? 3 : 0, rarg = rdy + 1;
        if (tags[oy & 1] != oy) {
          if (is_max) {
            load_row2(mem_in, dy_plane + ro, mem_w, arg_plane + ro, OW, rdy, rarg, rows);
          } else {
            load_row1(mem_in, dy_plane + ro, OW, rdy, rows);
          }
          tags[oy & 1] = oy;
        }
        const int k0 = i * KW;
        int j = 0, ox = 0, x = -P;
        EFGEN_LABEL(pool_bp_scan)
        for (int it = 0; it < KW * OWp; ++it) {
          EFGEN_HLS(PIPELINE II=1)
          EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_POOL_SPAN)
          EFGEN_HLS(DEPENDENCE variable=rows type=inter direction=RAW distance=8 dependent=true)
          const bool inside = ox < OW && x >= 0 && x < W;
          const int xs = inside ? x : 0;
          const int os = ox < OW ? ox : 0;
          pc.kf = float(k0 + j);
          VecF v, g, a, ao, unused;
          EFGEN_HLS(ARRAY_PARTITION variable=v type=complete)
          EFGEN_HLS(ARRAY_PARTITION variable=g type=complete)
          EFGEN_HLS(ARRAY_PARTITION variable=a type=complete)
          EFGEN_HLS(ARRAY_PARTITION variable=ao type=complete)
          EFGEN_HLS(ARRAY_PARTITION variable=unused type=complete)
          vcopy(rows[rdy][os], v);
          vcopy(rows[rarg][os], g);
          vcopy(rows[kRowDx][xs], a);
          unit_pool(v, g, a, zero, pc, ao, unused);
          if (inside) vput(ao, rows[kRowDx][xs]);  // on chip only
          x += S;
          if (++ox == OWp) {
            ox = 0;
            ++j;
            x = j - P;
          }
        }
      }
      // Store the dx row (mask source on gmem1), zeroing the accumulators.
      store_row(rows, row_direct(kRowDx), W, es, valid, mask, true, mem_w, m_o, mem_out, dx_o);
      dx_o += dx_row_words;
      m_o += dx_row_words;
      if (++rr == S) {
        rr = 0;
        ++q;
      }
    }
    dy_plane += dy_plane_words;
    arg_plane += dy_plane_words;
    if (++cb == CB) {
      cb = 0;
      valid = C;
    } else {
      valid -= kT;
    }
  }
}

// ================================================================ option-A shortcut
// Lane t of output block cb is input channel cb*T + t - lo, lo = (out_c - in_c)/2: a
// lane shift of two consecutive input blocks (q, q+1), read as two row streams (gmem0,
// gmem1; block indices clamped into range, lanes whose channel is outside [0, in_c) are
// selected to 0). FP: y(oy, ox) = x(oy*S, ox*S); BP: dx(r, x) = dy(r/S, x/S) on the
// sampled rows/columns, 0 elsewhere.
static inline int clamp_block(const int q, const int n) { return q < 0 ? 0 : (q >= n ? n - 1 : q); }

static inline void shortcut_fp(const EfgenDesc& d, const float* mem_in, const float* mem_w,
                               float* mem_out, RowMem& rows) {
  EFGEN_HLS(INLINE)
  const int Ci = d.in_c, Co = d.out_c, H = d.in_h, W = d.in_w, OH = d.out_h, OW = d.out_w;
  const int S = d.stride;
  const int lo = (Co - Ci) / 2;
  const int lq = lo / kT, lr = lo % kT;  // base channel cb*T - lo = (cb - lq)*T - lr
  const int qoff = lr == 0 ? lq : lq + 1, sh = lr == 0 ? 0 : kT - lr;
  const int CBi = n_blocks(Ci), CBo = n_blocks(Co);
  const int64_t plane_words = int64_t(H) * W * kT;
  const int64_t row_step = int64_t(S) * W * kT;
  const int64_t orow_words = int64_t(OW) * kT;
  const EwCtl ey = ew_ctl(kSum, kNone, true, (d.flags & EFGEN_FLAG_RELU) != 0);
  int64_t img = d.a[0], y_o = d.a[7];
  int cb = 0, valid = Co;
  EFGEN_LABEL(shortcut_fp_planes)
  for (int pl = 0; pl < d.batch * CBo; ++pl) {
    EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_PLANES)
    const int q = cb - qoff;
    const int c0 = cb * kT - lo;  // input channel of lane 0
    const bool any = c0 + kT > 0 && c0 < Ci;
    int64_t ra = img + clamp_block(q, CBi) * plane_words;
    int64_t rb = img + clamp_block(q + 1, CBi) * plane_words;
    EFGEN_LABEL(shortcut_fp_rows)
    for (int oy = 0; oy < OH; ++oy) {
      EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_H)
      if (any) load_row2(mem_in, ra, mem_w, rb, W, kRowA, kRowB, rows);
      // y(oy, ox) = the shifted lanes of staged column ox*S.
      store_row(rows, row_src(kRowA, kRowB, sh, c0, Ci, S, 1), OW, ey, valid, false, false,
                mem_w, 0, mem_out, y_o);
      y_o += orow_words;
      ra += row_step;
      rb += row_step;
    }
    if (++cb == CBo) {
      cb = 0;
      valid = Co;
      img += int64_t(CBi) * plane_words;
    } else {
      valid -= kT;
    }
  }
}

static inline void shortcut_bp(const EfgenDesc& d, const float* mem_in, const float* mem_w,
                               float* mem_out, RowMem& rows) {
  EFGEN_HLS(INLINE)
  const int Ci = d.in_c, Co = d.out_c, H = d.in_h, W = d.in_w, OH = d.out_h, OW = d.out_w;
  const int S = d.stride;
  const int lo = (Co - Ci) / 2;
  const int lq = lo / kT, sh = lo % kT;  // dy channel of dx lane 0: (cb + lq)*T + sh
  const int CBi = n_blocks(Ci), CBo = n_blocks(Co);
  const int64_t plane_words = int64_t(OH) * OW * kT;
  const int64_t row_words = int64_t(OW) * kT;
  const int64_t dx_row_words = int64_t(W) * kT;
  const bool mask = (d.flags & EFGEN_FLAG_MASK) != 0;
  const EwCtl es = ew_ctl(kSum, mask ? kGate : kNone, true, false);
  int64_t img = d.a[0], dx_o = d.a[7], m_o = d.a[6];
  int cb = 0, valid = Ci;
  EFGEN_LABEL(shortcut_bp_planes)
  for (int pl = 0; pl < d.batch * CBi; ++pl) {
    EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_PLANES)
    const int q = cb + lq;
    int64_t ra = img + clamp_block(q, CBo) * plane_words;
    int64_t rb = img + clamp_block(q + 1, CBo) * plane_words;
    int rs = 0;
    EFGEN_LABEL(shortcut_bp_rows)
    for (int r = 0; r < H; ++r) {
      EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_H)
      const bool sampled = rs == 0;
      if (sampled) {
        load_row2(mem_in, ra, mem_w, rb, OW, kRowA, kRowB, rows);
        ra += row_words;
        rb += row_words;
      }
      // dx(r, x) = the shifted lanes of staged column x/S where r and x are multiples
      // of S, else 0 (all lanes 0 on rows that are not sampled).
      store_row(rows, row_src(kRowA, kRowB, sh, 0, sampled ? kT : 0, 1, S), W, es, valid, mask,
                false, mem_w, m_o, mem_out, dx_o);
      dx_o += dx_row_words;
      m_o += dx_row_words;
      if (++rs == S) rs = 0;
    }
    if (++cb == CBi) {
      cb = 0;
      valid = Ci;
      img += int64_t(CBo) * plane_words;
    } else {
      valid -= kT;
    }
  }
}

// ========================================================================== flatten
// (B, C, H, W) blocked <-> (B, F = C*H*W, 1, 1) blocked, flat index f = c*H*W + p; the
// flat side is per image F contiguous words padded to FW = ceil(F/T)*T. Per (image,
// block) plane, in chunks of kRowV pixels staged in row kRowA: FP reads the chunk's
// vectors (one burst) and writes each valid lane's words (one burst per lane); BP
// reads each valid lane's words (one burst per lane) and writes the chunk's vectors.
static inline void flatten_fp(const EfgenDesc& d, const float* mem_in, float* mem_out,
                              RowMem& rows) {
  EFGEN_HLS(INLINE)
  const int C = d.in_c;
  const int CB = n_blocks(C);
  const int64_t HW = int64_t(d.in_h) * d.in_w;
  const int64_t F = int64_t(C) * HW;
  const int64_t FW = (F + kT - 1) / kT * kT;
  const bool relu = (d.flags & EFGEN_FLAG_RELU) != 0;
  int64_t in_o = d.a[0], img = d.a[7];
  int cb = 0, valid = C;
  EFGEN_LABEL(flatten_fp_planes)
  for (int pl = 0; pl < d.batch * CB; ++pl) {
    EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_PLANES)
    const int nl = valid < kT ? valid : kT;
    EFGEN_LABEL(flatten_fp_chunks)
    for (int64_t p0 = 0; p0 < HW; p0 += kRowV) {
      EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_H)
      const int n = HW - p0 < kRowV ? int(HW - p0) : kRowV;
      load_row1(mem_in, in_o, n, kRowA, rows);
      in_o += int64_t(n) * kT;
      int64_t o = img + int64_t(cb) * kT * HW + p0;  // channel cb*T, pixel p0
      EFGEN_LABEL(flatten_fp_lanes)
      for (int t = 0; t < nl; ++t) {
        EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_LANES)
        EFGEN_LABEL(flatten_fp_words)
        for (int p = 0; p < n; ++p) {
          EFGEN_HLS(PIPELINE II=1)
          EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_W)
          const float v = rows[kRowA][p][t];
          mem_out[o + p] = (relu && v < 0.0f) ? 0.0f : v;
        }
        o += HW;
      }
    }
    if (++cb == CB) {  // image done: zero its pad words F..FW-1
      EFGEN_LABEL(flatten_fp_tail)
      for (int64_t f = F; f < FW; ++f) {
        EFGEN_HLS(PIPELINE II=1)
        EFGEN_HLS(LOOP_TRIPCOUNT min=0 max=EFGEN_LANES)
        mem_out[img + f] = 0.0f;
      }
      cb = 0;
      valid = C;
      img += FW;
    } else {
      valid -= kT;
    }
  }
}

static inline void flatten_bp(const EfgenDesc& d, const float* mem_in, const float* mem_w,
                              float* mem_out, RowMem& rows) {
  EFGEN_HLS(INLINE)
  const int C = d.in_c;
  const int CB = n_blocks(C);
  const int64_t HW = int64_t(d.in_h) * d.in_w;
  const int64_t F = int64_t(C) * HW;
  const int64_t FW = (F + kT - 1) / kT * kT;
  const bool mask = (d.flags & EFGEN_FLAG_MASK) != 0;
  const EwCtl es = ew_ctl(kSum, mask ? kGate : kNone, true, false);
  int64_t img = d.a[0], dx_o = d.a[7], m_o = d.a[6];
  int cb = 0, valid = C;
  EFGEN_LABEL(flatten_bp_planes)
  for (int pl = 0; pl < d.batch * CB; ++pl) {
    EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_PLANES)
    const int nl = valid < kT ? valid : kT;
    EFGEN_LABEL(flatten_bp_chunks)
    for (int64_t p0 = 0; p0 < HW; p0 += kRowV) {
      EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_H)
      const int n = HW - p0 < kRowV ? int(HW - p0) : kRowV;
      int64_t o = img + int64_t(cb) * kT * HW + p0;
      EFGEN_LABEL(flatten_bp_lanes)
      for (int t = 0; t < nl; ++t) {
        EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_LANES)
        EFGEN_LABEL(flatten_bp_words)
        for (int p = 0; p < n; ++p) {
          EFGEN_HLS(PIPELINE II=1)
          EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_W)
          rows[kRowA][p][t] = mem_in[o + p];
        }
        o += HW;
      }
      // Lanes >= nl hold stale words: store_row zeroes them (valid).
      store_row(rows, row_direct(kRowA), n, es, valid, mask, false, mem_w, m_o, mem_out,
                dx_o);
      dx_o += int64_t(n) * kT;
      m_o += int64_t(n) * kT;
    }
    if (++cb == CB) {
      cb = 0;
      valid = C;
      img += FW;
    } else {
      valid -= kT;
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
//   pooling and SHORTCUT: in_w and out_w <= max(EFGEN_MAX_W, 9) (the on-chip rows).
// Address slots used (must be >= 0): BN_FIN 0-7 (a[7] = 0: y not materialised); BN_FP 0-5, 7; BN_BP 0-5, 6 (0 = no debug copy),
// 7 with FLAG_DX or FLAG_DXK; MAXPOOL_FP 0, 6, 7; MAXPOOL_BP, RELU_BP 0, 1, 7; ADD_FP 0, 1, 7;
// ERRSUM 0..n_src-1, 7; the rest 0, 7; plus 6 with FLAG_MASK on a BP op / ERRSUM.
static inline int efgen_vector_check(const EfgenDesc& d) {
  const int op = d.op;
  const bool mask = (d.flags & EFGEN_FLAG_MASK) != 0;
  uint32_t slots = 0x81;  // a[0], a[7]
  bool geo = d.batch >= 1;
  bool wide = false;
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
    case EFGEN_OP_BN_FIN:
      if (!geo || !in_ok) return EFGEN_VECTOR_ERR_GEOMETRY;
      if (d.in_c > efgen_vec::kMaxC) return EFGEN_VECTOR_ERR_CHANNELS;
      slots = 0xff;
      break;
    case EFGEN_OP_BN_FP:
    case EFGEN_OP_BN_BP:
      if (!geo || !in_ok) return EFGEN_VECTOR_ERR_GEOMETRY;
      if (d.in_c > efgen_vec::kMaxC) return EFGEN_VECTOR_ERR_CHANNELS;
      slots = 0x3f;
      if (op == EFGEN_OP_BN_FP || (d.flags & (EFGEN_FLAG_DX | EFGEN_FLAG_DXK))) slots |= 0x80;
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
      wide = d.in_w > efgen_vec::kRowV || d.out_w > efgen_vec::kRowV;
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
      wide = d.in_w > efgen_vec::kRowV || d.out_w > efgen_vec::kRowV;
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
  if (wide) return EFGEN_VECTOR_ERR_WIDTH;
  bool bad = false;
  for (int i = 0; i < 8; ++i) {
    EFGEN_HLS(UNROLL)
    EFGEN_HLS(LOOP_TRIPCOUNT min=8 max=8)
    bad = bad || (((slots >> i) & 1u) && d.a[i] < 0);
  }
  if (bad) return EFGEN_VECTOR_ERR_ADDRESS;
  return EFGEN_VECTOR_OK;
}

// One descriptor of the vector engine (see efgen_vector_check for what is rejected).
// The on-chip arrays are static locals shared by all ops (efgen/hls/manifest.py):
//   ebuf  [kChunk][T]       element-wise running value between passes (3-5 streams)
//   part  [2][8][MAXCB][T]  batchnorm partial sums: [sum][slot][block][lane]
//   chan  [8][MAXCB][T]     batchnorm per-channel vectors (enum Chan)
//   rows  [6][kRowV][T]     row scratch: pool FP lines 0-3 + acc + argmax; pool BP two
//                           dy/argmax line pairs + dx; shortcut blocks q, q+1; flatten
//   tags  [4]               which map row each pooling line (pair) holds
static inline void efgen_vector_engine(const EfgenDesc& d, const float* mem_in,
                                       const float* mem_w, float* mem_out) {
  EFGEN_HLS(INLINE off)
  EFGEN_HLS(ALLOCATION function instances=unit_ew limit=1)
  EFGEN_HLS(ALLOCATION function instances=unit_bn limit=1)
  EFGEN_HLS(ALLOCATION function instances=unit_pool limit=1)
  EFGEN_HLS(ALLOCATION function instances=unit_tree limit=1)
  EFGEN_HLS(ALLOCATION function instances=unit_rcp limit=1)
  EFGEN_HLS(ALLOCATION function instances=unit_sgd limit=1)
  using namespace efgen_vec;
  static ChunkMem ebuf;
  static PartMem part;
  static ChanMem chan;
  static RowMem rows;
  static TagMem tags;
  EFGEN_HLS(ARRAY_PARTITION variable=ebuf type=complete dim=2)
  EFGEN_HLS(ARRAY_PARTITION variable=part type=complete dim=1)
  EFGEN_HLS(ARRAY_PARTITION variable=part type=complete dim=2)
  EFGEN_HLS(ARRAY_PARTITION variable=part type=complete dim=4)
  EFGEN_HLS(ARRAY_PARTITION variable=chan type=complete dim=1)
  EFGEN_HLS(ARRAY_PARTITION variable=chan type=complete dim=3)
  EFGEN_HLS(ARRAY_PARTITION variable=rows type=complete dim=1)
  EFGEN_HLS(ARRAY_PARTITION variable=rows type=complete dim=3)
  EFGEN_HLS(ARRAY_PARTITION variable=tags type=complete dim=1)
  if (efgen_vector_check(d) != EFGEN_VECTOR_OK) return;
  switch (d.op) {
    case EFGEN_OP_BN_FP:
    case EFGEN_OP_BN_FIN:
      bn_fp(d, mem_in, mem_w, mem_out, part, chan);
      break;
    case EFGEN_OP_BN_BP:
      bn_bp(d, mem_in, mem_w, mem_out, part, chan);
      break;

    case EFGEN_OP_RELU_FP:
    case EFGEN_OP_RELU_BP:
    case EFGEN_OP_ADD_FP:
    case EFGEN_OP_ERRSUM:
      eltwise(d, mem_in, mem_w, mem_out, ebuf);
      break;
    case EFGEN_OP_MAXPOOL_FP:
    case EFGEN_OP_AVGPOOL_FP:
      pool_fp(d, mem_in, mem_out, rows, tags);
      break;
    case EFGEN_OP_MAXPOOL_BP:
    case EFGEN_OP_AVGPOOL_BP:
      pool_bp(d, mem_in, mem_w, mem_out, rows, tags);
      break;
    case EFGEN_OP_SHORTCUT_FP:
      shortcut_fp(d, mem_in, mem_w, mem_out, rows);
      break;
    case EFGEN_OP_SHORTCUT_BP:
      shortcut_bp(d, mem_in, mem_w, mem_out, rows);
      break;
    case EFGEN_OP_FLATTEN_FP:
      flatten_fp(d, mem_in, mem_out, rows);
      break;
    case EFGEN_OP_FLATTEN_BP:
      flatten_bp(d, mem_in, mem_w, mem_out, rows);
      break;
    default:
      break;
  }
}

#endif  // EFGEN_VECTOR_ENGINE_H
