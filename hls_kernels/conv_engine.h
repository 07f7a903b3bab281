// conv_engine.h - the unified Tm x Tn convolution engine: FP, BP and WU of conv and
// linear layers, one descriptor (efgen_desc.h) per call.
//
//   void efgen_conv_engine(const EfgenDesc& d, float* mem_in, float* mem_w, float* mem_out);
//   int  efgen_conv_check(const EfgenDesc& d);   // 0, or an EfgenConvStatus error
//
// The three pointers address the same DRAM image of 32-bit words (in C simulation they
// are the same pointer; in hardware three m_axi bundles). Per DATAFLOW region each
// bundle carries at most one read stream and one write stream:
//   mem_in  (gmem0) reads the streamed feature map / error tiles; SGD reads and writes
//                   the velocity v;
//   mem_w   (gmem1) reads weights and bias (before the region), the BP mask source (in
//                   the region, by the storer); SGD reads and writes the parameters;
//   mem_out (gmem2) writes the outputs (FP y, BP dx) and the debug gradient copies (the
//                   storer); its read channel carries a fused load's second stream
//                   (record LX2: a second operand, or BN BP's y), read by the loader
//                   beside the tile on gmem0. Each pointer has one reading and one
//                   writing process in the region, the reader first (UG1448, HLS
//                   200-992 and the canonical dataflow rules).
// A descriptor that efgen_conv_check rejects is not executed (nothing is read or
// written), so no buffer can overflow whatever the host sends.
//
// Vitis HLS C++ (2022.2+) that also compiles, unchanged and warning-free, with
// g++ -std=c++14 and -std=c++17 -Wall -Wextra -Werror -pedantic. The kernel itself uses
// standard types only: no dynamic allocation, no recursion, no STL (efgen_dataflow.h's
// C-simulation model of the channels uses threads, outside the synthesised code).
// Every function has internal linkage (static inline), so two C-simulation libraries
// built with different parameters in one process never share code.
//
// ---- Micro-architecture: the reference RTL's (templates/rtl/engine_*.v.j2) ----------
// Per weight chunk (mc output blocks):
//   1. FP/BP: load_weights - the chunk's weights (and FP bias) into the weight buffer,
//      one linear burst per DRAM (m-block, n-block) pair. Not overlapped (the RTL
//      neither; the model prices it exposed) - unless EFGEN_WDB (double-buffered weight
//      chunks, issue 13): then two weight buffers, chunk ch's in buffer ch % 2, and
//      run_chunk_wdb runs the next chunk's load_weights (into the other buffer) beside
//      this chunk's run_chunk as the two processes of one DATAFLOW region (as the RTL's
//      weight streamer runs beside its tile loops).
//   2. run_chunk - a DATAFLOW region of three processes connected by streams of blocks
//      (efgen_dataflow.h = hls::stream_of_blocks, two blocks each: ping-pong):
//        ce_load  -> ifm_s (input tiles, Tn lanes)      -> ce_mac
//        ce_load  -> err_s (WU: error tiles, Tm lanes)  -> ce_mac
//        ce_mac   -> ofm_s (FP/BP: finished output groups) -> ce_store
//      Every process walks the chunk's steps with its own counters (struct Walk):
//        image, row tile, column tile, [wo: output block of the chunk,] reduction block
//      so the loader fetches step k+1 while the datapath computes step k and the storer
//      writes the group finished before: the overlap the model prices.
//   3. WU: sgd_writeback - gradients (folded from their partial sums) -> SGD -> DRAM.
//      With EFGEN_WDB (and a WU loader that does not read gmem2) chunk ch accumulates into
//      weight buffer ch % 2 while chunk ch-1's sgd_writeback runs from the other buffer:
//      run_chunk_wu_wdb, a DATAFLOW region of the two (v then read on gmem2's read channel).
//
// ce_mac calls mac_pass, the single Tm x Tn datapath: Tm*Tn fmul and Tm*Tn fadd shared
// by FP, BP and WU (ALLOCATION function limit=1, INLINE off; its two call sites are the
// conv and the WU branch). Per reduction lane pair (m, n) one multiplier; per output lane
// m, Tn adders that are the adder tree (Tn-1 adders, pairs (0,1), (2,3), ... per level,
// an odd last element waiting a level: efgen.rtl.engine.adder_tree) plus the
// accumulating adder in conv, and the Tn gradient accumulators of lanes n in WU. The
// operands are selected by the mode, as the RTL's fp_adder_a/b muxes do.
//   conv (FP, BP): for (blk, i, j) for (pixel q < span): acc[q] += tree_n(w[i][j] * x)
//       span = max(tr*tc, ACC_DIST): a pass shorter than the accumulator's read-add-write
//       distance is padded with idle iterations, so the accumulator dependence distance
//       is >= ACC_DIST and a DEPENDENCE pragma states it (II=1).
//   wu: for (blk, pixel q) for (i, j): g[copy][i][j] += dy[q] * x,  copy = q % G,
//       G = ceil(ACC_DIST / (K*K)) interleaved partial sums per gradient word (distance
//       G*K*K >= ACC_DIST); the write-back adds the copies ((g0 + g1) + g2) + ...
// Operand masking is the RTL's: lanes m >= m_valid, n >= n_valid multiply +0 by +0;
// an IFM position outside the tile's validity window (padding) or off the dilation grid
// (BP holes) reads +0. Padding and holes are never written into the IFM buffer: the
// loader bursts only real words and places them; the datapath selects +0 elsewhere.
// With these orders the DRAM image after a descriptor is bit-identical to the RTL's with
// its behavioural (IEEE float32) units (tests/test_rtl_top.py, the bit-exact twin test).
//
// BP flips the weights by 180 degrees and transposes them while they are loaded: bank
// [n % Tm][m % Tn] holds W[m][n][K-1-i][K-1-j]. When Tm != Tn that bank is chosen at run
// time (a Tm*Tn-way write decode in the loader), as in the RTL's engine_wload. The SGD
// write-back reads T words of one row of the weight buffer per iteration, the row and
// lane group chosen at run time (a (Tm*Tn/T):1 read mux per lane), through one T-lane
// float unit (ALLOCATION operation limits) shared by its loops.
//
// Float operators (W = EFGEN_AXI_WORDS, the words of one AXI beat): mac_pass Tm*Tn fmul +
// Tm*Tn fadd; ce_load W fadd (WU bias gradient); ce_store W fadd (FP bias);
// sgd_writeback W fmul + W fadd.
//
// Forms followed (AMD UG1399, Vitis HLS 2022.2):
//   - "Specifying Arrays as Stream-of-Blocks" / "Dataflow Optimization": the region is a
//     function body holding only channel declarations and process calls; each channel
//     has one producer and one consumer; acquire/release by scoped locks.
//   - "Optimizing Burst Transfers": every DRAM loop is a pipelined loop over a linear
//     address range (one run) with no condition on the access, one stream per bundle
//     and direction per region; m_axi widening by max_widen_bitwidth (efgen_top.cpp).
//   - "pragma HLS dependence" with distance: the accumulator RAW distance is >= ACC_DIST.
//   - "pragma HLS allocation" (function instances) and "pragma HLS inline off": one
//     datapath instance for both call sites.
//   - LOOP_TRIPCOUNT on every loop, from the schedule (efgen_params.h).
// Only Vitis can confirm what the tool makes of these: the achieved II, that the two
// mac_pass call sites share one instance, burst lengths, and timing.
#ifndef EFGEN_CONV_ENGINE_H
#define EFGEN_CONV_ENGINE_H

#include <cstdint>
#include <cstring>

#include "efgen_desc.h"
#include "efgen_params.h"

#include "efgen_dataflow.h"
#include "efgen_hls.h"

// Pixel lanes (issue 13): the array is Tm x Tn x P. A params header from before P
// existed describes a P = 1 design.
#ifndef EFGEN_P
#define EFGEN_P 1
#endif
// First-layer packing (issue 13): an FP or WU job whose reduction channels fill at most
// half the Tn lanes carries kernel taps in the idle lanes (efgen.model.engine.packed_taps).
#ifndef EFGEN_PACK
#define EFGEN_PACK 0
#endif
// Double-buffered weight chunks (issue 13, HwParams.wdb): FP/BP load chunk ch+1's weights
// while chunk ch computes (a second weight buffer of EFGEN_WBUF_DEPTH words a bank).
#ifndef EFGEN_WDB
#define EFGEN_WDB 0
#endif

// Depth of the per-lane bias buffer (FP bias values): one word per output block of a
// chunk. The generated params header may set it to the schedule's largest chunk; by
// default it covers the largest channel count.
#ifndef EFGEN_MAX_MC
#ifdef EFGEN_MAX_C
#define EFGEN_MAX_MC ((EFGEN_MAX_C + EFGEN_TM - 1) / EFGEN_TM)
#else
#define EFGEN_MAX_MC EFGEN_WBUF_DEPTH
#endif
#endif

// Words per bank of one block of the ping-pong channels: the Design's buffer depths, or
// (the generated params header) the most the schedule's tiles use. Accumulators (FP/BP)
// and error tiles (WU) are two channels (one dataflow direction each, where the RTL
// shares one OFM memory between the modes), each of two blocks of EFGEN_OFM_BLOCK.
#ifndef EFGEN_IFM_BLOCK
#define EFGEN_IFM_BLOCK EFGEN_IFM_DEPTH
#endif
#ifndef EFGEN_OFM_BLOCK
#define EFGEN_OFM_BLOCK EFGEN_OFM_DEPTH
#endif

// The accumulator's read-add-write distance in cycles (efgen.rtl.engine.ACC_DIST): the
// datapath revisits an accumulator no sooner than this many iterations later.
#ifndef EFGEN_ACC_DIST
#define EFGEN_ACC_DIST 6
#endif

// Loop tripcount bounds (the generated params header sets them from the schedule).
#ifndef EFGEN_MAX_TR
#define EFGEN_MAX_TR 32
#endif
#ifndef EFGEN_AXI_WORDS      // 32-bit words per beat of the board's AXI ports
#define EFGEN_AXI_WORDS 4
#endif
#ifndef EFGEN_MAX_TC
#define EFGEN_MAX_TC 32
#endif
#ifndef EFGEN_MAX_K
#define EFGEN_MAX_K 7
#endif
#ifndef EFGEN_MAX_STEPS      // steps of one chunk (tiles x blocks)
#define EFGEN_MAX_STEPS 4096
#endif
#ifndef EFGEN_MAX_GROUPS     // output groups of one chunk
#define EFGEN_MAX_GROUPS 4096
#endif
#ifndef EFGEN_MAX_CHUNKS     // weight chunks of one descriptor
#define EFGEN_MAX_CHUNKS 64
#endif
#ifndef EFGEN_MAX_NB         // reduction blocks
#define EFGEN_MAX_NB 64
#endif
#ifndef EFGEN_MAX_PASS       // datapath iterations of one step
#define EFGEN_MAX_PASS 65536
#endif
#ifndef EFGEN_MAX_RUN        // lane vectors of one DRAM run
#define EFGEN_MAX_RUN 4096
#endif
#ifndef EFGEN_MAX_RUNS       // DRAM runs of one tile
#define EFGEN_MAX_RUNS 256
#endif
#ifndef EFGEN_MAX_WROWS      // Tn-word (weight load) or T-word (SGD) rows of one pair
#define EFGEN_MAX_WROWS 1024
#endif
#ifndef EFGEN_MAX_FOLD       // SGD partial-sum fold iterations of one pair
#define EFGEN_MAX_FOLD 4096
#endif
#ifndef EFGEN_MAX_CHUNK_C    // output channels of one chunk
#define EFGEN_MAX_CHUNK_C 1024
#endif
#ifndef EFGEN_MAX_BACC       // WU bias partial sums per lane
#define EFGEN_MAX_BACC 512
#endif
#ifndef EFGEN_XF_MAX_C       // channels of a fused load stream (restructured BN)
#ifdef EFGEN_MAX_C
#define EFGEN_XF_MAX_C EFGEN_MAX_C
#else
#define EFGEN_XF_MAX_C 1024
#endif
#endif

enum EfgenConvStatus : int32_t {
  EFGEN_CONV_OK = 0,
  EFGEN_CONV_ERR_OP = 1,        // not CONV_FP / CONV_BP / CONV_WU
  EFGEN_CONV_ERR_GEOMETRY = 2,  // shapes, kernel, stride, padding inconsistent
  EFGEN_CONV_ERR_TILING = 3,    // tr, tc, mc < 1 or order not 0/1
  EFGEN_CONV_ERR_ADDRESS = 4,   // a used address slot is negative
  EFGEN_CONV_ERR_IFM = 5,       // input tile (with halo) exceeds EFGEN_IFM_BLOCK
  EFGEN_CONV_ERR_OFM = 6,       // output/error tiles exceed EFGEN_OFM_BLOCK
  EFGEN_CONV_ERR_WBUF = 7,      // weight chunk exceeds EFGEN_WBUF_DEPTH
  EFGEN_CONV_ERR_BIAS = 8,      // chunk exceeds EFGEN_MAX_MC with FLAG_BIAS
  EFGEN_CONV_ERR_XF = 9,        // FLAG_STATS outside FP or without FLAG_XF, the loaded
                                // map wider than EFGEN_XF_MAX_C channels, a chunk wider
                                // than EFGEN_MAX_MC with STATS or a BP record, or (found
                                // in the record, before anything is written) a BP
                                // record with a load transform (not built yet)
};

namespace efgen_ce {

constexpr int TM = EFGEN_TM;
constexpr int TN = EFGEN_TN;
constexpr int P = EFGEN_P;         // pixel lanes: adjacent output pixels of a tile row
constexpr bool PACK = EFGEN_PACK != 0;
constexpr int T = EFGEN_LANES;
constexpr int IFM_DEPTH = EFGEN_IFM_BLOCK;   // words per bank of one ping-pong block
constexpr int OFM_DEPTH = EFGEN_OFM_BLOCK;
constexpr int WBUF_DEPTH = EFGEN_WBUF_DEPTH;
constexpr int MAX_MC = EFGEN_MAX_MC;
constexpr int ACC_DIST = EFGEN_ACC_DIST;
constexpr int XF_MAX_C = EFGEN_XF_MAX_C;
constexpr int XF_D = (XF_MAX_C + T - 1) / T;   // per-lane depth of the constant buffers
constexpr int XF_TERMS = 2;    // terms of a fused load (the tile and a second operand)
constexpr int XF_CONSTS = 4;   // constants per channel and term: mean, invstd, gamma, beta
constexpr int NSUMS = 2;       // BN FP sums per channel: sum(y-k), sum((y-k)^2)
constexpr int XF_WORDS = 16;   // the side record (efgen/hls/program.py's docstring)

static_assert(TM >= 1 && TN >= 1 && T >= 1, "lanes must be positive");
static_assert(TM % T == 0 && TN % T == 0, "EFGEN_LANES must divide EFGEN_TM and EFGEN_TN");
static_assert(IFM_DEPTH >= 1 && OFM_DEPTH >= 1 && WBUF_DEPTH >= 1 && MAX_MC >= 1 &&
                  IFM_DEPTH <= EFGEN_IFM_DEPTH && OFM_DEPTH <= EFGEN_OFM_DEPTH,
              "buffer depths must be positive");
static_assert(ACC_DIST >= 1, "EFGEN_ACC_DIST must be positive");
static_assert(P >= 1, "EFGEN_P must be positive");

// The blocks the processes exchange (one ping-pong half each).
typedef float IfmBlock[TN][IFM_DEPTH];
typedef float OfmBlock[TM][OFM_DEPTH];

static inline int cdiv(int a, int b) { return a / b + (a % b != 0); }  // a >= 0, b > 0
static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }

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
  int G;             // WU: partial sums per gradient word, ceil(ACC_DIST / KP); else 1
  // Packing: `taps` kernel offsets side by side in the reduction lanes (1: none). Lane
  // n = t*RC + c (n < taps*RC) holds channel c at offset q*taps + t of kernel pass q;
  // KP = ceil(K*K / taps) passes; weight/gradient word (m, n, pass). The offset steps by
  // taps = tq_i*K + tq_j a pass; pk_i0/pk_j0 are lane n's offset in pass 0, pk_c its
  // channel (-1: idle lane).
  int taps, KP, tq_i, tq_j;
  int pk_i0[TN], pk_j0[TN], pk_c[TN];
  FmView src;        // read by the IFM loader: FP x, BP dy, WU x
  FmView dst;        // FP y / BP dx (stored), WU dy (error loader)
  FmView msk;        // BP mask source
  int64_t a[8];
  float lr, momentum, wd;
  // The fused transform (FLAG_XF; its side record, efgen/hls/program.py's docstring):
  // the input stream's value relu?(term1 + term2), term = gamma*((y-mean)*invstd)+beta
  // where the term has constants, and the store's BN FP sums (FLAG_STATS).
  bool xf, stats;
  int64_t rec;                   // the side record's word address
  int64_t lk1, lx2, lk2, sk, ssum, dbg;
  int64_t mk;                    // BP: the mask source's BN constants (mask = bn(src) > 0)
  int64_t se;                    // BP: another sender's error, added in the store (record SE)
  bool relu_in;
  int lmode;                     // 0: bn affine terms; 1: BN BP dx of the error stream (BP
                                 // input dy, WU error tiles) from dz and y (LX2)
  bool wdx2;                     // WU, LMODE 1 with MK: the dx constants at MK, y at SK, and
                                 // LK1/LX2/LK2/LRELU transform the input tiles as in FP
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
  j.xf = (d.flags & EFGEN_FLAG_XF) != 0;
  j.stats = (d.flags & EFGEN_FLAG_STATS) != 0;
  j.rec = j.xf ? (j.mode == WU ? d.a[7] : d.a[3]) : 0;
  if (j.xf) addr_ok = addr_ok && j.rec > 0;
  if (!addr_ok) return EFGEN_CONV_ERR_ADDRESS;
  if (j.stats && (j.mode == WU || !j.xf)) return EFGEN_CONV_ERR_XF;
  j.lk1 = j.lx2 = j.lk2 = j.sk = j.ssum = j.dbg = j.mk = j.se = 0;
  j.relu_in = false;
  j.lmode = 0;
  j.wdx2 = false;
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
  // WU keeps G partial sums per gradient word: a chunk the schedule sized for one copy
  // is split into smaller chunks (as the RTL's layer sequencer does).
  j.taps = 1;
  if (PACK && j.mode != BP && !major && j.K > 1 && 2 * j.RC <= TN)
    j.taps = imin(j.KK, TN / j.RC);
  j.KP = cdiv(j.KK, j.taps);
  j.tq_i = j.taps / j.K;
  j.tq_j = j.taps % j.K;
  for (int n = 0; n < TN; ++n) {
    EFGEN_HLS(UNROLL)
    const bool act = j.taps > 1 && n < j.taps * j.RC;
    j.pk_c[n] = act ? n % j.RC : -1;
    j.pk_i0[n] = act ? (n / j.RC) / j.K : 0;
    j.pk_j0[n] = act ? (n / j.RC) % j.K : 0;
  }
  j.G = j.mode == WU ? imax(1, cdiv(ACC_DIST, j.KP)) : 1;
  if (j.mode == WU && int64_t(j.mc) * j.NB * j.KP * j.G > WBUF_DEPTH &&
      int64_t(j.NB) * j.KP * j.G <= WBUF_DEPTH)
    j.mc = imax(1, int(WBUF_DEPTH / (int64_t(j.NB) * j.KP * j.G)));

  // Buffer limits (int64: a hostile descriptor must not overflow the checks).
  const int64_t ext_r = int64_t(j.tr - 1) * j.s + j.K;
  const int64_t ext_c = int64_t(j.tc - 1) * j.s + j.K;
  if (ext_r * ext_c > IFM_DEPTH) return EFGEN_CONV_ERR_IFM;
  if (int64_t(j.io ? j.mc : 1) * j.tr * j.tc > OFM_DEPTH) return EFGEN_CONV_ERR_OFM;
  if (int64_t(j.mc) * j.NB * j.KP * j.G > WBUF_DEPTH) return EFGEN_CONV_ERR_WBUF;
  if (bias && j.mode != BP && j.mc > MAX_MC) return EFGEN_CONV_ERR_BIAS;
  if (j.xf && (j.src.C > XF_MAX_C || (j.mode == WU && j.M > XF_MAX_C))) return EFGEN_CONV_ERR_XF;
  if ((j.stats || (j.xf && j.mode == BP)) && j.mc > MAX_MC) return EFGEN_CONV_ERR_XF;
  return EFGEN_CONV_OK;
}

// ---- the step walk ---------------------------------------------------------------------
//
// One chunk's steps, in order: image b, row tile r0, column tile c0, [wo: output block
// mbl,] reduction block nb. Every process keeps its own Walk and advances it with
// counters (no divides), so all agree on the sequence without exchanging it.

struct Walk {
  int b, r0, c0, tr, tc;  // image and output tile (clipped)
  int mbl;                // output block within the chunk ("wo" only)
  int nb;                 // reduction block
};

static inline void walk_first(const Job& j, Walk& w) {
  w.b = 0;
  w.r0 = 0;
  w.c0 = 0;
  w.tr = imin(j.tr, j.ro);
  w.tc = imin(j.tc, j.co);
  w.mbl = 0;
  w.nb = 0;
}

static inline void walk_next(const Job& j, Walk& w, int nmb) {
  if (++w.nb < j.NB) return;
  w.nb = 0;
  if (!j.io) {
    if (++w.mbl < nmb) return;
    w.mbl = 0;
  }
  w.c0 += j.tc;
  if (w.c0 < j.co) {
    w.tc = imin(j.tc, j.co - w.c0);
    return;
  }
  w.c0 = 0;
  w.tc = imin(j.tc, j.co);
  w.r0 += j.tr;
  if (w.r0 < j.ro) {
    w.tr = imin(j.tr, j.ro - w.r0);
    return;
  }
  w.r0 = 0;
  w.tr = imin(j.tr, j.ro);
  ++w.b;
}

// Output groups of a chunk (a group = the unit stored from one OFM block): tiles x
// (wo: nmb). Steps = groups x NB.
static inline int chunk_groups(const Job& j, int nmb) {
  return j.images * cdiv(j.ro, j.tr) * cdiv(j.co, j.tc) * (j.io ? 1 : nmb);
}

// ---- the IFM tile's validity window ------------------------------------------------------
//
// Buffer row u of a tile holds source position p0 + u (p0 = r0*s - off, dilated
// coordinates); it holds a real word iff the position is >= 0, on the dilation grid and
// inside the map. Real rows are lo, lo + dil, ..., hi; their source rows src .. src+n-1.
struct Axis {
  int lo, hi;   // first and last real buffer index (hi < lo: none)
  int src, n;   // first source index and count
};

static inline Axis axis(int p0, int ext, int dil, int size) {
  Axis a;
  a.lo = p0 >= 0 ? (dil - p0 % dil) % dil : -p0;
  a.src = (p0 + a.lo) / dil;
  a.n = a.lo > ext - 1 ? 0 : imin((ext - 1 - a.lo) / dil + 1, imax(0, size - a.src));
  a.hi = a.lo + (a.n - 1) * dil;
  return a;
}

struct Window {
  Axis r, c;
  int er, ec;   // buffer extent (rows x row pitch)
};

static inline Window window(const Job& j, const Walk& w) {
  Window v;
  v.er = (w.tr - 1) * j.s + j.K;
  v.ec = (w.tc - 1) * j.s + j.K;
  v.r = axis(w.r0 * j.s - j.off, v.er, j.dil, j.src.rows);
  v.c = axis(w.c0 * j.s - j.off, v.ec, j.dil, j.src.cols);
  return v;
}

// ---- DRAM runs -----------------------------------------------------------------------
//
// A rows x cols window of one lane block of a feature map, as linear DRAM runs of lane
// vectors (T words each): one run when whole rows are contiguous, one per row when the
// window is narrower than the map, one per pixel for image-major views (a linear
// layer's images are ceil(C/T) vectors apart).
struct Runs {
  int count, len;    // runs, lane vectors per run
  int per_row;       // 1: a run per row, 2: a run per pixel, 0: a single run
};

static inline Runs fm_runs(const FmView& v, int rows, int cols) {
  Runs r;
  if (v.major && cdiv(v.C, T) > 1) {
    r.count = rows * cols;
    r.len = 1;
    r.per_row = 2;
  } else if (cols == v.cols) {
    r.count = 1;
    r.len = rows * cols;
    r.per_row = 0;
  } else {
    r.count = rows;
    r.len = cols;
    r.per_row = 1;
  }
  return r;
}

// The first pixel (rr, cc) of the next run: a run per pixel steps the column, else the row.
static inline void run_next(const Runs& runs, int cols, int& rr, int& cc) {
  if (runs.per_row == 2 && ++cc < cols) return;
  cc = 0;
  ++rr;
}

// ---- ce_load: input tiles (and WU error tiles) ------------------------------------------

// One loaded term of the fused transform: gamma*((y - mean)*invstd) + beta (the golden's
// order), the channel's constants at kb[KMEAN..KBETA][t][cb].
enum XfConst : int { KMEAN = 0, KINVSTD = 1, KGAMMA = 2, KBETA = 3 };

static inline float xf_term(float y, const float kb[XF_CONSTS][T][XF_D], int t, int cb) {
  return kb[KGAMMA][t][cb] * ((y - kb[KMEAN][t][cb]) * kb[KINVSTD][t][cb]) + kb[KBETA][t][cb];
}

// BN BP dx (record LMODE 1) of the error dz at one position, y the BN's input there:
// coef*((n*dz - sdy) - x_hat*sdyx), x_hat = (y - mean)*invstd (efgen/golden/ops.bn_bp's
// order); constants term 0: mean, invstd, coef, n; term 1: sdy, sdyx.
enum XfDxConst : int { KCOEF = 2, KN = 3, KSDY = 0, KSDYX = 1 };

static inline float bndx_value(float dz, float y, int t, int cb,
                               const float kb[XF_TERMS][XF_CONSTS][T][XF_D]) {
  const float xhat = (y - kb[0][KMEAN][t][cb]) * kb[0][KINVSTD][t][cb];
  return kb[0][KCOEF][t][cb] * ((kb[0][KN][t][cb] * dz - kb[1][KSDY][t][cb]) -
                                xhat * kb[1][KSDYX][t][cb]);
}

// The value a fused load (FLAG_XF) places from the tile's word r and, with a second
// stream (LX2), the word r2 read beside it: relu?(term1 + term2), or BN BP dx of (dz = r,
// y = r2) for LMODE 1 (BP's input tiles). Without FLAG_XF the word itself.
static inline float xf_value(const Job& j, bool two, float r, float r2, int t, int cb,
                             const float kb[XF_TERMS][XF_CONSTS][T][XF_D]) {
  if (!j.xf || (j.lmode == 1 && ((j.mode == WU && !j.wdx2) || (j.mode == BP && !two))))
    return r;
  if (j.lmode == 1 && j.mode == BP) return bndx_value(r, r2, t, cb, kb);
  const float t1 = j.lk1 != 0 ? xf_term(r, kb[0], t, cb) : r;
  const float t2 = j.lk2 != 0 ? xf_term(r2, kb[1], t, cb) : r2;
  const float v = two ? t1 + t2 : t1;
  return j.relu_in && !(v > 0.0f || v != v) ? 0.0f : v;
}

// The next buffer position (row u, column v) of a window walk at column `col` of its run.
static inline void win_next(const Window& win, int dil, int& u, int& v, int& col) {
  v += dil;
  if (++col == win.c.n) {
    col = 0;
    v = win.c.lo;
    u += dil;
  }
}

// The real words of one input tile of reduction block nb: per lane block of the block
// that exists, the window's source rows as linear runs; word (sr, sc) lands at buffer
// row lo_r + (sr - src_r)*dil, column lo_c + (sc - src_c)*dil. With a second stream
// (`two`: FLAG_XF with LX2, the second operand or LMODE 1's y) the same loop also reads
// the word at the same offset from LX2 on mem_x2 (gmem2's read channel: one read stream
// per pointer and loop, in parallel with the tile's on gmem0; the loader is gmem2's only
// reader, the storer its only writer). Two loop variants, so no access sits under an if.
static inline void load_ifm_pass(IfmBlock& x, const Job& j, const Walk& w, const Window& win,
                                 const Runs& runs, bool two, const float* mem_in,
                                 const float* mem_x2,
                                 const float kb[XF_TERMS][XF_CONSTS][T][XF_D]) {
  const int nlb = imin(TN / T, cdiv(j.RC - w.nb * TN, T));   // lane blocks that exist
  const int64_t shift = two ? j.lx2 - j.src.base : 0;
EFGEN_LABEL(LOAD_IFM_BLOCKS)
  for (int g = 0; g < nlb; ++g) {
    EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_TN)
    const int c = w.nb * TN + g * T;
    int rr = 0, cc = 0;                 // first pixel of the run (window coordinates)
  EFGEN_LABEL(LOAD_IFM_RUNS)
    for (int k = 0; k < runs.count; ++k) {
      EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_RUNS)
      const int64_t a0 = view_addr(j.src, w.b, c, win.r.src + rr, win.c.src + cc);
      const int64_t a2 = a0 + shift;
      int u = win.r.lo + rr * j.dil, v = win.c.lo + cc * j.dil, col = cc;
      if (two) {
      EFGEN_LABEL(LOAD_IFM_WORDS2)
        for (int q = 0; q < runs.len; ++q) {
          EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_RUN)
          EFGEN_HLS(PIPELINE II=1)
          const int ia = u * win.ec + v;
          float val[T];
          for (int t = 0; t < T; ++t) {
            EFGEN_HLS(UNROLL)
            const float r = mem_in[a0 + int64_t(q) * T + t];
            const float r2 = mem_x2[a2 + int64_t(q) * T + t];
            val[t] = xf_value(j, true, r, r2, t, c / T, kb);
            if (j.taps == 1) x[g * T + t][ia] = val[t];
          }
          if (j.taps > 1) {
            for (int n = 0; n < TN; ++n) {
              EFGEN_HLS(UNROLL)
              if (j.pk_c[n] >= 0 && j.pk_c[n] / T == g) x[n][ia] = val[j.pk_c[n] % T];
            }
          }
          win_next(win, j.dil, u, v, col);
        }
      } else {
      EFGEN_LABEL(LOAD_IFM_WORDS)
        for (int q = 0; q < runs.len; ++q) {
          EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_RUN)
          EFGEN_HLS(PIPELINE II=1)
          const int ia = u * win.ec + v;
          float val[T];
          for (int t = 0; t < T; ++t) {
            EFGEN_HLS(UNROLL)
            const float r = mem_in[a0 + int64_t(q) * T + t];
            val[t] = xf_value(j, false, r, 0.0f, t, c / T, kb);
            if (j.taps == 1) x[g * T + t][ia] = val[t];
          }
          if (j.taps > 1) {
            // packed: lane n takes channel pk_c[n], wherever it sits (a TN-way write)
            for (int n = 0; n < TN; ++n) {
              EFGEN_HLS(UNROLL)
              if (j.pk_c[n] >= 0 && j.pk_c[n] / T == g) x[n][ia] = val[j.pk_c[n] % T];
            }
          }
          win_next(win, j.dil, u, v, col);
        }
      }
      run_next(runs, win.c.n, rr, cc);
    }
  }
}

static inline void load_ifm(IfmBlock& x, const Job& j, const Walk& w, const float* mem_in,
                            const float* mem_x2,
                            const float kb[XF_TERMS][XF_CONSTS][T][XF_D]) {
  const Window win = window(j, w);
  if (win.r.n <= 0 || win.c.n <= 0) return;
  const Runs runs = fm_runs(j.src, win.r.n, win.c.n);
  const bool two = j.xf && j.lx2 != 0 && !(j.mode == WU && j.lmode == 1 && !j.wdx2);
  load_ifm_pass(x, j, w, win, runs, two, mem_in, mem_x2, kb);
}

// WU: the chunk's error tiles, Tm lanes of dy, block mbl at mbl*tr*tc (pixel r*tc + c);
// the bias gradient accumulates as the words stream in, into ACC_DIST interleaved
// partial sums per lane and block (bacc[m][mbl*ACC_DIST + k]).
static inline void load_err(OfmBlock& e, float bacc[TM][MAX_MC * ACC_DIST], const Job& j,
                            const Walk& w, int ob0, int nmb, const float* mem_in) {
  const bool bias = (j.flags & EFGEN_FLAG_BIAS) != 0;
  const int npix = w.tr * w.tc;
  EFGEN_ASSERT(nmb * npix <= OFM_DEPTH);
  const Runs runs = fm_runs(j.dst, w.tr, w.tc);
EFGEN_LABEL(LOAD_ERR_BLOCKS)
  for (int mbl = 0; mbl < nmb; ++mbl) {
    EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_MC)
    const int nlb = cdiv(imin(TM, j.OC - (ob0 + mbl) * TM), T);
  EFGEN_LABEL(LOAD_ERR_LANES)
    for (int g = 0; g < nlb; ++g) {
      EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_TM)
      const int c = (ob0 + mbl) * TM + g * T;
      int rr = 0, cc = 0, pc = 0;
    EFGEN_LABEL(LOAD_ERR_RUNS)
      for (int k = 0; k < runs.count; ++k) {
        EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_RUNS)
        const int64_t a0 = view_addr(j.dst, w.b, c, w.r0 + rr, w.c0 + cc);
        int ea = mbl * npix + rr * w.tc + cc;
      EFGEN_LABEL(LOAD_ERR_WORDS)
        for (int q = 0; q < runs.len; ++q) {
          EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_RUN)
          EFGEN_HLS(PIPELINE II=1)
          EFGEN_HLS(DEPENDENCE variable=bacc type=inter direction=RAW dependent=true distance=EFGEN_ACC_DIST)
          for (int t = 0; t < T; ++t) {
            EFGEN_HLS(UNROLL)
            const float v = mem_in[a0 + int64_t(q) * T + t];
            e[g * T + t][ea] = v;
            const int ba = (bias ? mbl : 0) * ACC_DIST + pc;   // bias: mc <= MAX_MC
            const float s = bacc[g * T + t][ba] + v;
            if (bias) bacc[g * T + t][ba] = s;
          }
          ++ea;
          pc = pc == ACC_DIST - 1 ? 0 : pc + 1;
        }
        run_next(runs, w.tc, rr, cc);
      }
    }
  }
}


// WU with a BN BP dx record (LMODE 1), instead of load_err: the chunk's error tiles as
// the BN's dx (bndx_value) of dz (gmem0) and y (LX2, or SK with MK: the same offsets,
// read beside it on mem_x2: gmem2's read channel, as load_ifm's second stream), the
// constants kb (kbd with MK). Not with FLAG_BIAS (load_xf).
static inline void load_err_dx(OfmBlock& e, const Job& j, const Walk& w, int ob0, int nmb,
                               const float* mem_in, const float* mem_x2,
                               const float kb[XF_TERMS][XF_CONSTS][T][XF_D]) {
  const int npix = w.tr * w.tc;
  const Runs runs = fm_runs(j.dst, w.tr, w.tc);
  const int64_t shift = (j.wdx2 ? j.sk : j.lx2) - j.dst.base;
EFGEN_LABEL(LOAD_ERR_DX_BLOCKS)
  for (int mbl = 0; mbl < nmb; ++mbl) {
    EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_MC)
    const int nlb = cdiv(imin(TM, j.OC - (ob0 + mbl) * TM), T);
  EFGEN_LABEL(LOAD_ERR_DX_LANES)
    for (int g = 0; g < nlb; ++g) {
      EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_TM)
      const int c = (ob0 + mbl) * TM + g * T;
      int rr = 0, cc = 0;
    EFGEN_LABEL(LOAD_ERR_DX_RUNS)
      for (int k = 0; k < runs.count; ++k) {
        EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_RUNS)
        const int64_t a0 = view_addr(j.dst, w.b, c, w.r0 + rr, w.c0 + cc);
        const int64_t a2 = a0 + shift;
        int ea = mbl * npix + rr * w.tc + cc;
      EFGEN_LABEL(LOAD_ERR_DX_WORDS)
        for (int q = 0; q < runs.len; ++q) {
          EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_RUN)
          EFGEN_HLS(PIPELINE II=1)
          for (int t = 0; t < T; ++t) {
            EFGEN_HLS(UNROLL)
            const float dz = mem_in[a0 + int64_t(q) * T + t];
            const float y = mem_x2[a2 + int64_t(q) * T + t];
            e[g * T + t][ea] = bndx_value(dz, y, t, c / T, kb);
          }
          ++ea;
        }
        run_next(runs, w.tc, rr, cc);
      }
    }
  }
}

static inline void ce_load(const Job& j, int ob0, int nmb, const float* mem_in,
                           const float* mem_x2,
                           efgen_sob<IfmBlock>& ifm_s, efgen_sob<OfmBlock>& err_s,
                           float bacc[TM][MAX_MC * ACC_DIST],
                           const float kb[XF_TERMS][XF_CONSTS][T][XF_D],
                           const float kbd[XF_TERMS][XF_CONSTS][T][XF_D]) {
  EFGEN_HLS(INLINE off)
  // The bias-gradient adders: as many as the port brings words per beat (a T-word vector
  // takes T/EFGEN_AXI_WORDS beats, so more adders would only wait).
  EFGEN_HLS(ALLOCATION operation instances=fadd limit=EFGEN_AXI_WORDS)
  Walk w;
  walk_first(j, w);
  const int steps = chunk_groups(j, nmb) * j.NB;
EFGEN_LABEL(LOAD_STEPS)
  for (int k = 0; k < steps; ++k) {
    EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_STEPS)
    if (j.mode == WU && w.nb == 0) {
      efgen_wlock<OfmBlock> e(err_s);
      if (j.xf && j.lmode == 1)
        load_err_dx(e, j, w, ob0, nmb, mem_in, mem_x2, j.wdx2 ? kbd : kb);
      else
        load_err(e, bacc, j, w, ob0, nmb, mem_in);
    }
    {
      efgen_wlock<IfmBlock> x(ifm_s);
      load_ifm(x, j, w, mem_in, mem_x2, kb);
    }
    walk_next(j, w, nmb);
  }
}

// ---- ce_mac: the Tm x Tn datapath ----------------------------------------------------------

// One pass of the datapath over one step: nblk output blocks (io: the chunk's, wo: one)
// of one reduction block, one flat pipelined loop.
struct Pass {
  int nblk;           // output blocks
  int ob;             // first output block of the phase (lane validity)
  int tc, p;          // tile columns, pixel groups (P adjacent pixels of a row each)
  int ec;             // IFM row pitch
  Axis r, c;          // IFM validity window
  int n_valid;        // reduction lanes that hold channels
  int wbase, wstride; // weight word / gradient slot of block 0, and per block
  int bstride;        // OFM (conv) / error (WU) words per block
  bool init;          // conv: first reduction block; WU: first tile of the chunk
};

// The datapath's loop counters. Position along an IFM axis: index = outer + inner with
// outer = pixel*s and inner = kernel offset; *mod track them mod dil (the BP dilation
// grid); roff/ioff are the row offsets (times the row pitch) so no address multiplies.
struct MacCtr {
  int q, pr, pc, copy, kk, ki, kj;
  int qrow;                                          // pr * tc: the row's first pixel
  int u_out, u_in, u_omod, u_imod, u_ooff, u_ioff;   // IFM row
  int v_out, v_in, v_omod, v_imod;                   // IFM column
};

static inline void ctr_pixel_reset(MacCtr& c) {
  c.pr = 0;
  c.pc = 0;
  c.qrow = 0;
  c.u_out = 0;
  c.u_omod = 0;
  c.u_ooff = 0;
  c.v_out = 0;
  c.v_omod = 0;
}

static inline void ctr_kernel_reset(MacCtr& c) {
  c.kk = 0;
  c.ki = 0;
  c.kj = 0;
  c.u_in = 0;
  c.u_imod = 0;
  c.u_ioff = 0;
  c.v_in = 0;
  c.v_imod = 0;
}

static inline int mod_inc(int m, int dil) { return m == dil - 1 ? 0 : m + 1; }

// Next pixel group of the tile (row-major): P columns on, or the next row.
static inline void ctr_pixel_step(MacCtr& c, int tc, int s, int dil, int s_ec) {
  c.v_out += P * s;
  for (int k = 0; k < P; ++k) {
    EFGEN_HLS(UNROLL)
    c.v_omod = mod_inc(c.v_omod, dil);
  }
  c.pc += P;
  if (c.pc >= tc) {
    c.pc = 0;
    c.v_out = 0;
    c.v_omod = 0;
    ++c.pr;
    c.qrow += tc;
    c.u_out += s;
    c.u_omod = mod_inc(c.u_omod, dil);
    c.u_ooff += s_ec;
  }
}

// Next kernel offset (i, j); true when it wrapped to (0, 0).
static inline bool ctr_kernel_step(MacCtr& c, int K, int KK, int dil, int ec) {
  ++c.kk;
  ++c.kj;
  c.v_in += 1;
  c.v_imod = mod_inc(c.v_imod, dil);
  if (c.kj == K) {
    c.kj = 0;
    c.v_in = 0;
    c.v_imod = 0;
    ++c.ki;
    c.u_in += 1;
    c.u_imod = mod_inc(c.u_imod, dil);
    c.u_ioff += ec;
  }
  if (c.kk < KK) return false;
  ctr_kernel_reset(c);
  return true;
}

static inline bool on_grid(int omod, int imod, int lomod, int dil) {
  int t = omod + imod - lomod;
  if (t < 0) t += dil;
  if (t >= dil) t -= dil;
  return t == 0;
}

// conv (FP/BP): for (blk, i, j) for (q < span): acc[blk][q] (+)= tree_n(w * x), idle when
//     q >= p; span = max(p, ACC_DIST).
// wu:           for (blk, q < runs) for (i, j): g[blk][q % G][i][j] (+)= dy[blk][q] * x,
//     runs = max(p, G) on the first tile (the extra runs initialise unused copies), else p.
// q counts pixel groups: P adjacent pixels of one tile row, lane pp at column pc + pp
// (idle past the row's end). In conv each pixel lane has its own adder tree over n and
// accumulator; in WU the P products of a gradient word pass an adder tree over P
// (pairs (0,1), (2,3), ...) in front of its accumulator. With P = 1 every operation and
// its order are those of the P-less engine (the RTL's).
// blk: conv - the OFM block (accumulators, read-modify-write); wu - the error tiles.
static void mac_pass(const Job& j, const Pass& ps, IfmBlock& x, OfmBlock& blk,
                     float wbuf[TM][TN][WBUF_DEPTH]) {
  EFGEN_HLS(INLINE off)
  const bool wu = j.mode == WU;
  const int K = j.K, KP = j.KP, dil = j.dil, G = j.G;
  const bool pk = j.taps > 1;                     // packed lanes: per-lane kernel offsets
  const int span = wu ? (ps.init ? imax(ps.p, G) : ps.p) : imax(ps.p, ACC_DIST);
  const int iters = ps.nblk * KP * span;
  const int rlomod = ps.r.lo % dil, clomod = ps.c.lo % dil;
  const int s_ec = j.s * ps.ec;
  EFGEN_ASSERT(ps.wbase + (ps.nblk - 1) * ps.wstride + G * KP <= WBUF_DEPTH);
  EFGEN_ASSERT(ps.nblk * ps.bstride <= OFM_DEPTH);

  MacCtr c;
  c.q = 0;
  c.copy = 0;
  ctr_pixel_reset(c);
  ctr_kernel_reset(c);
  int bi = 0, wb = ps.wbase, ob = 0;              // block, its weight and OFM bases
  int m_valid = imin(TM, j.OC - ps.ob * TM);
  // packed lanes' kernel offsets (row, column, row times the pitch), reset with the kernel
  int li[TN], lj[TN], lro[TN];
  const int tq_iec = j.tq_i * ps.ec;
  for (int n = 0; n < TN; ++n) {
    EFGEN_HLS(UNROLL)
    li[n] = j.pk_i0[n];
    lj[n] = j.pk_j0[n];
    lro[n] = li[n] * ps.ec;
  }
EFGEN_LABEL(MAC)
  for (int it = 0; it < iters; ++it) {
    EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_PASS)
    EFGEN_HLS(PIPELINE II=1)
    EFGEN_HLS(DEPENDENCE variable=blk type=inter direction=RAW dependent=true distance=EFGEN_ACC_DIST)
    EFGEN_HLS(DEPENDENCE variable=wbuf type=inter direction=RAW dependent=true distance=EFGEN_ACC_DIST)
    const bool pix = c.q < ps.p;
    const int u = c.u_out + c.u_in;
    const bool row_ok = pix && u >= ps.r.lo && u <= ps.r.hi &&
                        on_grid(c.u_omod, c.u_imod, rlomod, dil);
    bool pixp[P], pos_ok[P];
    int ia[P], oa[P];
    int vom = c.v_omod;
  EFGEN_LABEL(MAC_P)
    for (int pp = 0; pp < P; ++pp) {
      EFGEN_HLS(UNROLL)
      const int v = c.v_out + pp * j.s + c.v_in;
      pixp[pp] = pix && c.pc + pp < ps.tc;
      pos_ok[pp] = pixp[pp] && row_ok && v >= ps.c.lo && v <= ps.c.hi &&
                   on_grid(vom, c.v_imod, clomod, dil);
      ia[pp] = pos_ok[pp] ? c.u_ooff + c.u_ioff + v : 0;
      oa[pp] = ob + (pixp[pp] ? c.qrow + c.pc + pp : 0);   // accumulator / error word
      vom = mod_inc(vom, dil);
    }
    const int wa = wb + (wu ? c.copy * KP : 0) + c.kk;     // weight word / gradient slot
    const bool first = wu ? ps.init && c.q < G : ps.init && c.kk == 0;
  EFGEN_LABEL(MAC_M)
    for (int m = 0; m < TM; ++m) {
      EFGEN_HLS(UNROLL)
      float wv[TN], prodp[P][TN];
      for (int n = 0; n < TN; ++n) {
        EFGEN_HLS(UNROLL)
        wv[n] = wbuf[m][n][wa];                            // weight (conv) / partial sum (wu)
      }
    EFGEN_LABEL(MAC_PIX)
      for (int pp = 0; pp < P; ++pp) {
        EFGEN_HLS(UNROLL)
        const float bv = blk[m][oa[pp]];                   // accumulator (conv) / dy (wu)
        float tv[TN];
      EFGEN_LABEL(MAC_N)
        for (int n = 0; n < TN; ++n) {
          EFGEN_HLS(UNROLL)
          const bool lane = m < m_valid && n < ps.n_valid;
          bool okn = pos_ok[pp];
          int ian = ia[pp];
          if (pk) {                                        // lane n's own kernel offset
            const int un = c.u_out + li[n], vn = c.v_out + pp * j.s + lj[n];
            okn = pixp[pp] && li[n] < K && un >= ps.r.lo && un <= ps.r.hi &&
                  vn >= ps.c.lo && vn <= ps.c.hi;
            ian = okn ? c.u_ooff + lro[n] + vn : 0;
          }
          const float a = lane && pixp[pp] ? (wu ? bv : wv[n]) : 0.0f;
          const float b = lane && okn ? x[n][ian] : 0.0f;
          prodp[pp][n] = a * b;                            // MAC_FMUL: Tm x Tn x P multipliers
          tv[n] = prodp[pp][n];
        }
        if (!wu) {
          // The Tn adders of lane (m, pp): adder jn > 0 is the tree node of level w (the
          // lowest set bit of jn) adding tv[jn-w] + tv[jn]; adder 0 adds the tree's root
          // to the accumulator.
        EFGEN_LABEL(MAC_TREE)
          for (int w = 1; w < TN; w *= 2) {
            EFGEN_HLS(UNROLL)
            for (int n = 0; n + w < TN; n += 2 * w) {
              EFGEN_HLS(UNROLL)
              tv[n] = tv[n] + tv[n + w];                   // MAC_FADD
            }
          }
          const float res0 = tv[0] + (first ? 0.0f : bv);  // MAC_FADD
          if (pixp[pp]) blk[m][oa[pp]] = res0;
        }
      }
      if (wu) {
        // Lane (m, n)'s gradient accumulator behind the adder tree over its P products
        // (P - 1 adders; in conv they are other pixel lanes' tree adders).
      EFGEN_LABEL(MAC_WB)
        for (int n = 0; n < TN; ++n) {
          EFGEN_HLS(UNROLL)
          float pv[P];
          for (int pp = 0; pp < P; ++pp) {
            EFGEN_HLS(UNROLL)
            pv[pp] = prodp[pp][n];
          }
          for (int w = 1; w < P; w *= 2) {
            EFGEN_HLS(UNROLL)
            for (int pp = 0; pp + w < P; pp += 2 * w) {
              EFGEN_HLS(UNROLL)
              pv[pp] = pv[pp] + pv[pp + w];                // MAC_FADD (P > 1)
            }
          }
          wbuf[m][n][wa] = pv[0] + (first ? 0.0f : wv[n]);   // MAC_FADD
        }
      }
    }
    // Advance: conv (blk, kk, q), wu (blk, q, kk).
    bool next_blk = false, kstep = false;
    if (!wu) {
      if (++c.q == span) {
        c.q = 0;
        ctr_pixel_reset(c);
        kstep = true;
        next_blk = ctr_kernel_step(c, K, KP, dil, ps.ec);
      } else {
        ctr_pixel_step(c, ps.tc, j.s, dil, s_ec);
      }
    } else {
      kstep = true;
      if (ctr_kernel_step(c, K, KP, dil, ps.ec)) {
        c.copy = c.copy == G - 1 ? 0 : c.copy + 1;
        if (++c.q == span) {
          c.q = 0;
          c.copy = 0;
          ctr_pixel_reset(c);
          next_blk = true;
        } else {
          ctr_pixel_step(c, ps.tc, j.s, dil, s_ec);
        }
      }
    }
    if (pk && kstep) {
      // packed lanes: the next pass's offsets, `taps` further (or pass 0's after the last)
      const bool wrap = c.kk == 0;
      for (int n = 0; n < TN; ++n) {
        EFGEN_HLS(UNROLL)
        int i2 = li[n] + j.tq_i, j2 = lj[n] + j.tq_j, r2 = lro[n] + tq_iec;
        if (j2 >= K) {
          j2 -= K;
          ++i2;
          r2 += ps.ec;
        }
        li[n] = wrap ? j.pk_i0[n] : i2;
        lj[n] = wrap ? j.pk_j0[n] : j2;
        lro[n] = wrap ? j.pk_i0[n] * ps.ec : r2;
      }
    }
    if (next_blk) {
      ++bi;
      wb += ps.wstride;
      ob += ps.bstride;
      m_valid = imin(TM, j.OC - (ps.ob + bi) * TM);
    }
  }
}

static inline Pass make_pass(const Job& j, const Walk& w, int ob0, int nmb) {
  Pass ps;
  const int mbl0 = j.io ? 0 : w.mbl;
  const Window win = window(j, w);
  ps.nblk = j.io ? nmb : 1;
  ps.ob = ob0 + mbl0;
  ps.tc = w.tc;
  ps.p = w.tr * cdiv(w.tc, P);                   // pixel groups
  ps.bstride = w.tr * w.tc;                      // OFM / error words per block
  ps.ec = win.ec;
  ps.r = win.r;
  ps.c = win.c;
  ps.n_valid = j.taps > 1 ? j.taps * j.RC : imin(TN, j.RC - w.nb * TN);
  ps.wstride = j.NB * j.KP * j.G;
  ps.wbase = mbl0 * ps.wstride + w.nb * j.KP * j.G;
  ps.init = j.mode == WU ? (w.b == 0 && w.r0 == 0 && w.c0 == 0) : w.nb == 0;
  return ps;
}

static inline void ce_mac(const Job& j, int ob0, int nmb, float wbuf[TM][TN][WBUF_DEPTH],
                          efgen_sob<IfmBlock>& ifm_s, efgen_sob<OfmBlock>& err_s,
                          efgen_sob<OfmBlock>& ofm_s) {
  EFGEN_HLS(INLINE off)
  EFGEN_HLS(ALLOCATION function instances=mac_pass limit=1)
  Walk w;
  walk_first(j, w);
  const int groups = chunk_groups(j, nmb);
EFGEN_LABEL(MAC_GROUPS)
  for (int g = 0; g < groups; ++g) {
    EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_GROUPS)
    if (j.mode == WU) {
      efgen_rlock<OfmBlock> e(err_s);            // the tile's error blocks
    EFGEN_LABEL(MAC_STEPS_WU)
      for (int nb = 0; nb < j.NB; ++nb) {
        EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_NB)
        efgen_rlock<IfmBlock> x(ifm_s);
        mac_pass(j, make_pass(j, w, ob0, nmb), x, e, wbuf);
        walk_next(j, w, nmb);
      }
    } else {
      efgen_wlock<OfmBlock> o(ofm_s);            // the group's accumulators
    EFGEN_LABEL(MAC_STEPS_CONV)
      for (int nb = 0; nb < j.NB; ++nb) {
        EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_NB)
        efgen_rlock<IfmBlock> x(ifm_s);
        mac_pass(j, make_pass(j, w, ob0, nmb), x, o, wbuf);
        walk_next(j, w, nmb);
      }
    }
  }
}

// ---- ce_store: finished output groups -------------------------------------------------------

// The storer writes whole lane vectors, unconditionally: the pad lanes (channels >= OC)
// of the last lane block as +0, as the layout defines them and as the RTL writes them.

// FP: y = acc (+ bias) (ReLU: x > 0 or NaN ? x : +0, the RTL's store op).
static inline void store_fp(const OfmBlock& o, int obase, const float bbuf[TM][MAX_MC],
                            const Job& j, const Walk& w, int ob, int mbl, float* mem_out,
                            const float skb[TM][MAX_MC],
                            float sacc[NSUMS][TM][MAX_MC * ACC_DIST]) {
  const bool bias = (j.flags & EFGEN_FLAG_BIAS) != 0;
  const bool relu = (j.flags & EFGEN_FLAG_RELU) != 0;
  const Runs runs = fm_runs(j.dst, w.tr, w.tc);
  const int nlb = cdiv(imin(TM, j.OC - ob * TM), T);
  int sc = 0;
EFGEN_LABEL(STORE_FP_LANES)
  for (int g = 0; g < nlb; ++g) {
    EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_TM)
    const int c = ob * TM + g * T;
    int rr = 0, cc = 0;
  EFGEN_LABEL(STORE_FP_RUNS)
    for (int k = 0; k < runs.count; ++k) {
      EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_RUNS)
      const int64_t a0 = view_addr(j.dst, w.b, c, w.r0 + rr, w.c0 + cc);
      int oa = obase + rr * w.tc + cc;
    EFGEN_LABEL(STORE_FP_WORDS)
      for (int q = 0; q < runs.len; ++q) {
        EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_RUN)
        EFGEN_HLS(PIPELINE II=1)
        EFGEN_HLS(DEPENDENCE variable=sacc type=inter direction=RAW dependent=true distance=EFGEN_ACC_DIST)
        for (int t = 0; t < T; ++t) {
          EFGEN_HLS(UNROLL)
          const float acc = o[g * T + t][oa];
          const float v = bias ? acc + bbuf[g * T + t][mbl] : acc;
          const float y = relu && !(v > 0.0f || v != v) ? 0.0f : v;
          mem_out[a0 + int64_t(q) * T + t] = c + t < j.OC ? y : 0.0f;
          // BN FP sums (FLAG_STATS): ACC_DIST interleaved partial sums per lane and block,
          // slot = the store's free-running word counter, as the WU bias gradient's.
          const int m = g * T + t;
          const int sa = (j.stats ? mbl : 0) * ACC_DIST + sc;
          const float dv = y - skb[m][j.stats ? mbl : 0];
          const float s1 = sacc[0][m][sa] + dv;
          const float s2 = sacc[1][m][sa] + dv * dv;
          if (j.stats && c + t < j.OC) {
            sacc[0][m][sa] = s1;
            sacc[1][m][sa] = s2;
          }
        }
        ++oa;
        sc = sc == ACC_DIST - 1 ? 0 : sc + 1;
      }
      run_next(runs, w.tc, rr, cc);
    }
  }
}

// BP's extra store streams: one lane block's tile of a tensor laid out as dx at word
// `base` (record SE: another sender's error; record SK: the BN input y whose x_hat the
// BP sums need), read into buf before the store loop that uses it: a read pass of its
// own on mem_w, serial with the store (the model's st_extra streams, priced serially).
static inline void load_se(float buf[T][OFM_DEPTH], const Job& j, const Walk& w, int c,
                           const Runs& runs, int64_t base, const float* mem_w) {
  FmView sv = j.dst;
  sv.base = base;
  int rr = 0, cc = 0;
EFGEN_LABEL(LOAD_SE_RUNS)
  for (int k = 0; k < runs.count; ++k) {
    EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_RUNS)
    const int64_t a0 = view_addr(sv, w.b, c, w.r0 + rr, w.c0 + cc);
    int pa = rr * w.tc + cc;
  EFGEN_LABEL(LOAD_SE_WORDS)
    for (int q = 0; q < runs.len; ++q) {
      EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_RUN)
      EFGEN_HLS(PIPELINE II=1)
      for (int t = 0; t < T; ++t) {
        EFGEN_HLS(UNROLL)
        buf[t][pa] = mem_w[a0 + int64_t(q) * T + t];
      }
      ++pa;
    }
    run_next(runs, w.tc, rr, cc);
  }
}

// BP: dx = acc (+ the error operand SE), times (x > 0) with x the mask source (FLAG_MASK),
// read on mem_w; with FLAG_STATS the BN BP sums of dx, x_hat from the mask source (SK = 0)
// or from the BN input y at SK (the BN output is stored: the mask is the plain src > 0).
static inline void store_bp(const OfmBlock& o, int obase, const Job& j, const Walk& w, int ob,
                            int mbl, const float* mem_w, float* mem_out,
                            const float kbs[XF_CONSTS][TM][MAX_MC],
                            float sacc[NSUMS][TM][MAX_MC * ACC_DIST],
                            float seb[T][OFM_DEPTH], float syb[T][OFM_DEPTH]) {
  const bool mask = (j.flags & EFGEN_FLAG_MASK) != 0;
  const FmView& mv = mask ? j.msk : j.dst;   // without a mask: a harmless read of dx itself
  const Runs runs = fm_runs(j.dst, w.tr, w.tc);
  const int nlb = cdiv(imin(TM, j.OC - ob * TM), T);
  int sc = 0;
EFGEN_LABEL(STORE_BP_LANES)
  for (int g = 0; g < nlb; ++g) {
    EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_TM)
    const int c = ob * TM + g * T;
    if (j.se != 0) load_se(seb, j, w, c, runs, j.se, mem_w);
    if (j.sk != 0) load_se(syb, j, w, c, runs, j.sk, mem_w);
    int rr = 0, cc = 0;
  EFGEN_LABEL(STORE_BP_RUNS)
    for (int k = 0; k < runs.count; ++k) {
      EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_RUNS)
      const int64_t a0 = view_addr(j.dst, w.b, c, w.r0 + rr, w.c0 + cc);
      const int64_t m0 = view_addr(mv, w.b, c, w.r0 + rr, w.c0 + cc);
      int oa = obase + rr * w.tc + cc;
      int pa = rr * w.tc + cc;
    EFGEN_LABEL(STORE_BP_WORDS)
      for (int q = 0; q < runs.len; ++q) {
        EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_RUN)
        EFGEN_HLS(PIPELINE II=1)
        EFGEN_HLS(DEPENDENCE variable=sacc type=inter direction=RAW dependent=true distance=EFGEN_ACC_DIST)
        for (int t = 0; t < T; ++t) {
          EFGEN_HLS(UNROLL)
          const float e = j.se != 0 ? o[g * T + t][oa] + seb[t][pa] : o[g * T + t][oa];
          const float src = mem_w[m0 + int64_t(q) * T + t];
          // A fused BN's mask recomputed from its input (record MK, SK = 0): bn(src) > 0.
          const int m = g * T + t;
          const int kb = j.mk != 0 ? mbl : 0;
          const float xsrc = j.sk != 0 ? syb[t][pa] : src;
          const float xhat = (xsrc - kbs[KMEAN][m][kb]) * kbs[KINVSTD][m][kb];
          const float ms = j.mk != 0 && j.sk == 0 ? kbs[KGAMMA][m][kb] * xhat + kbs[KBETA][m][kb]
                                                  : src;
          const float dx = mask && !(ms > 0.0f) ? 0.0f : e;
          mem_out[a0 + int64_t(q) * T + t] = c + t < j.OC ? dx : 0.0f;
          // BN BP sums of the finalised error (FLAG_STATS with MK): sum(dy), sum(dy*x_hat),
          // x_hat from the mask source the store reads anyway.
          const int sa = (j.stats ? mbl : 0) * ACC_DIST + sc;
          const float s1 = sacc[0][m][sa] + dx;
          const float s2 = sacc[1][m][sa] + dx * xhat;
          if (j.stats && c + t < j.OC) {
            sacc[0][m][sa] = s1;
            sacc[1][m][sa] = s2;
          }
        }
        ++oa;
        ++pa;
        sc = sc == ACC_DIST - 1 ? 0 : sc + 1;
      }
      run_next(runs, w.tc, rr, cc);
    }
  }
}

static inline void ce_store(const Job& j, int ob0, int nmb, const float bbuf[TM][MAX_MC],
                            efgen_sob<OfmBlock>& ofm_s, const float* mem_w, float* mem_out,
                            const float skb[TM][MAX_MC],
                            float sacc[NSUMS][TM][MAX_MC * ACC_DIST],
                            const float kbs[XF_CONSTS][TM][MAX_MC]) {
  EFGEN_HLS(INLINE off)
  EFGEN_HLS(ALLOCATION operation instances=fadd limit=EFGEN_AXI_WORDS)   // FP bias adders
  Walk w;
  walk_first(j, w);
  const int groups = j.mode == WU ? 0 : chunk_groups(j, nmb);
  const int nblk = j.io ? nmb : 1;
  // BP: one lane block's tiles of the error operand (record SE) and of the BN input y
  // (record SK), read before its store loop
  float seb[T][OFM_DEPTH];
  float syb[T][OFM_DEPTH];
  EFGEN_HLS(ARRAY_PARTITION variable=seb type=complete dim=1)
  EFGEN_HLS(ARRAY_PARTITION variable=syb type=complete dim=1)
EFGEN_LABEL(STORE_GROUPS)
  for (int g = 0; g < groups; ++g) {
    EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_GROUPS)
    {
      efgen_rlock<OfmBlock> o(ofm_s);
    EFGEN_LABEL(STORE_BLOCKS)
      for (int bl = 0; bl < nblk; ++bl) {
        EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_MC)
        const int mbl = j.io ? bl : w.mbl;
        const int obase = bl * w.tr * w.tc;
        if (j.mode == FP)
          store_fp(o, obase, bbuf, j, w, ob0 + mbl, mbl, mem_out, skb, sacc);
        else
          store_bp(o, obase, j, w, ob0 + mbl, mbl, mem_w, mem_out, kbs, sacc, seb, syb);
      }
    }
  EFGEN_LABEL(SKIP_STEPS)
    for (int nb = 0; nb < j.NB; ++nb) {
      EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_NB)
      walk_next(j, w, nmb);
    }
  }
}

// ---- one chunk: the DATAFLOW region ----------------------------------------------------------

static void run_chunk(const Job& j, int ob0, int nmb, float wbuf[TM][TN][WBUF_DEPTH],
                      const float bbuf[TM][MAX_MC], float bacc[TM][MAX_MC * ACC_DIST],
                      const float kb[XF_TERMS][XF_CONSTS][T][XF_D],
                      const float kbd[XF_TERMS][XF_CONSTS][T][XF_D], const float skb[TM][MAX_MC],
                      float sacc[NSUMS][TM][MAX_MC * ACC_DIST],
                      const float kbs[XF_CONSTS][TM][MAX_MC],
                      const float* mem_in, const float* mem_w, float* mem_out) {
  EFGEN_HLS(INLINE off)
  EFGEN_HLS(DATAFLOW)
  efgen_sob<IfmBlock> ifm_s;
  efgen_sob<OfmBlock> err_s;
  efgen_sob<OfmBlock> ofm_s;
  EFGEN_HLS(ARRAY_PARTITION variable=ifm_s type=complete dim=1)
  EFGEN_HLS(ARRAY_PARTITION variable=err_s type=complete dim=1)
  EFGEN_HLS(ARRAY_PARTITION variable=ofm_s type=complete dim=1)
  EFGEN_REGION(region);
  EFGEN_PROCESS(region, ce_load(j, ob0, nmb, mem_in, mem_out, ifm_s, err_s, bacc, kb, kbd));
  EFGEN_PROCESS(region, ce_mac(j, ob0, nmb, wbuf, ifm_s, err_s, ofm_s));
  EFGEN_PROCESS(region, ce_store(j, ob0, nmb, bbuf, ofm_s, mem_w, mem_out, skb, sacc, kbs));
  EFGEN_JOIN(region);
}

// ---- weights in (FP/BP), gradients out (WU) -------------------------------------------------


// FP/BP: the chunk's weights (output blocks ob0 .. ob0+nmb-1 of the phase, all
// reduction blocks), one linear burst per DRAM (m-block, n-block) pair, a row of Tn
// words (one (i, j, m) of the pair) per iteration. FP: word (mbl*NB + nb)*K*K + i*K + j
// of bank [m%Tm][n%Tn]. BP (roles of M and N swapped): bank [n%Tm][m%Tn] holds
// W[m][n][i][j] at kernel offset (K-1-i)*K + (K-1-j). FP with FLAG_BIAS also loads the
// chunk's bias into bbuf[m][mbl]. Words of pad lanes are read and dropped.
static inline void load_weights(float wbuf[TM][TN][WBUF_DEPTH], float bbuf[TM][MAX_MC],
                                const Job& j, int ob0, int nmb, const float* mem_w) {
  const int K = j.K, KK = j.KK;
  const int NBd = cdiv(j.N, TN);   // DRAM pair grid
  const bool bp = j.mode == BP;
  const int n_lo = ob0 * TM, n_hi = imin(j.N, (ob0 + nmb) * TM);
  const int mb_lo = bp ? 0 : ob0, mb_hi = bp ? cdiv(j.M, TM) : ob0 + nmb;
  const int nb_lo = bp ? n_lo / TN : 0, nb_hi = bp ? cdiv(n_hi, TN) : NBd;
EFGEN_LABEL(LOAD_W_PAIRS_M)
  for (int mb = mb_lo; mb < mb_hi; ++mb) {
    EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_CHUNKS)
  EFGEN_LABEL(LOAD_W_PAIRS_N)
    for (int nb = nb_lo; nb < nb_hi; ++nb) {
      EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_NB)
      const int64_t base = j.a[1] + (int64_t(mb) * NBd + nb) * KK * TM * TN;
      int kk = 0, ki = 0, kj = 0, mm = 0;
      int kq = 0, kt = 0;                 // packed: the offset's pass and tap slot
    EFGEN_LABEL(LOAD_W_ROWS)
      for (int it = 0; it < KK * TM; ++it) {
        EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_WROWS)
        EFGEN_HLS(PIPELINE II=1)
        const int m = mb * TM + mm;
        const int fkk = (K - 1 - ki) * K + (K - 1 - kj);
        for (int nn = 0; nn < TN; ++nn) {
          EFGEN_HLS(UNROLL)
          const float wv = mem_w[base + int64_t(it) * TN + nn];
          const int n = nb * TN + nn;
          if (!bp && m < j.M && n < j.N && j.taps == 1)
            wbuf[mm][nn][((mb - ob0) * j.NB + nb) * KK + kk] = wv;
          if (!bp && m < j.M && n < j.N && j.taps > 1)     // lane kt*N + n, pass kq
            wbuf[mm][kt * j.N + nn][(mb - ob0) * j.KP + kq] = wv;
          if (bp && m < j.M && n >= n_lo && n < n_hi)
            wbuf[n % TM][m % TN][((n / TM - ob0) * j.NB + m / TN) * KK + fkk] = wv;
        }
        if (++mm == TM) {
          mm = 0;
          ++kk;
          if (++kj == K) {
            kj = 0;
            ++ki;
          }
          if (++kt == j.taps) {
            kt = 0;
            ++kq;
          }
        }
      }
    }
  }
  if (j.mode == FP && (j.flags & EFGEN_FLAG_BIAS)) {
    // The chunk's bias: its valid channels, one word per cycle (a plain array of M words).
    const int nch = imin(nmb * TM, j.M - ob0 * TM);
    int m = 0, mbl = 0;
  EFGEN_LABEL(LOAD_BIAS)
    for (int k = 0; k < nch; ++k) {
      EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_CHUNK_C)
      EFGEN_HLS(PIPELINE II=1)
      bbuf[m][mbl] = mem_w[j.a[2] + int64_t(ob0) * TM + k];
      if (++m == TM) {
        m = 0;
        ++mbl;
      }
    }
  }
}

#if EFGEN_WDB
// The next chunk's weights (nmb = 0: none, after the last chunk) into the idle buffer.
static void load_next_weights(const Job& j, int ob0, int nmb, float wnext[TM][TN][WBUF_DEPTH],
                              float bnext[TM][MAX_MC], const float* mem_w) {
  EFGEN_HLS(INLINE off)
  if (nmb > 0) load_weights(wnext, bnext, j, ob0, nmb, mem_w);
}

// One chunk with double-buffered weights: a DATAFLOW region of two processes, the next
// chunk's weight load into (wnext, bnext) and this chunk's run_chunk from (wcur, bcur).
// The two touch different buffers, so they run concurrently (threads in C-simulation).
static void run_chunk_wdb(const Job& j, int ob0, int nmb, int nob0, int nnmb,
                          float wcur[TM][TN][WBUF_DEPTH], const float bcur[TM][MAX_MC],
                          float wnext[TM][TN][WBUF_DEPTH], float bnext[TM][MAX_MC],
                          float bacc[TM][MAX_MC * ACC_DIST],
                          const float kb[XF_TERMS][XF_CONSTS][T][XF_D],
                          const float kbd[XF_TERMS][XF_CONSTS][T][XF_D],
                          const float skb[TM][MAX_MC], float sacc[NSUMS][TM][MAX_MC * ACC_DIST],
                          const float kbs[XF_CONSTS][TM][MAX_MC],
                          const float* mem_in, const float* mem_w, float* mem_out) {
  EFGEN_HLS(INLINE off)
  EFGEN_HLS(DATAFLOW)
  EFGEN_REGION(region);
  EFGEN_PROCESS(region, load_next_weights(j, nob0, nnmb, wnext, bnext, mem_w));
  EFGEN_PROCESS(region, run_chunk(j, ob0, nmb, wcur, bcur, bacc, kb, kbd, skb, sacc, kbs,
                                  mem_in, mem_w, mem_out));
  EFGEN_JOIN(region);
}
#endif

// One SGD step on T lanes, efgen.golden.ops.sgd_update's and the RTL's order of float
// operations: g' = g + wd*p; v = momentum*v + g'; p = p - lr*v.
static inline void sgd_vec(const float g[T], float p[T], float v[T], float lr, float momentum,
                           float wd) {
  for (int t = 0; t < T; ++t) {
    EFGEN_HLS(UNROLL)
    const float gd = g[t] + wd * p[t];
    v[t] = momentum * v[t] + gd;
    p[t] = p[t] - lr * v[t];
  }
}

// The next T-word row of a DRAM weight pair: lane group tb of row mm of kernel offset kk
// (the pair's word order ((kk*Tm + mm)*Tn + nn)). Returns true when kk advanced.
static inline bool row_next(int& tb, int& mm, int& kk) {
  if (++tb < TN / T) return false;
  tb = 0;
  if (++mm < TM) return false;
  mm = 0;
  ++kk;
  return true;
}

// The bias gradient of lane m, block mbl: its ACC_DIST partial sums added in order.
static inline float bias_grad(const float bacc[TM][MAX_MC * ACC_DIST], int m, int mbl) {
  float s = bacc[m][mbl * ACC_DIST];
  for (int k = 1; k < ACC_DIST; ++k) {
    EFGEN_HLS(UNROLL)
    s = s + bacc[m][mbl * ACC_DIST + k];
  }
  return s;
}

// The gradient bank of reduction lane nn at tap slot kt (packed: lane kt*RC + nn; pad
// channels nn >= RC read bank 0, a word the write-back does not use).
static inline int gbank(const Job& j, int kt, int nn) {
  if (j.taps == 1) return nn;
  return nn < j.RC ? kt * j.RC + nn : 0;
}

// WU write-back of the chunk, DRAM pair by pair, T words per iteration:
//   1. G > 1: fold the partial sums, ((g0 + g1) + g2) + ..., copy-major over the pair so
//      a word is revisited no sooner than a pair later (T adders);
//   2. read p (mem_w) and v (mem_in), SGD, write p (mem_w) and v (mem_in) back;
//   3. a[6] != 0: the debug copy of the gradient (mem_out).
// Bias (FLAG_BIAS): the ACC_DIST partial sums of each lane folded in order, then the
// same SGD on a[4] (velocity a[5]), debug copy to a[7] when non-zero.
//   v is read through mem_vr and written through mem_vw: both mem_in (gmem0), except in
// the WU write-back that overlaps the next chunk's accumulation (EFGEN_WDB,
// run_chunk_wu_wdb), which reads v on gmem2's read channel (mem_out), idle in that WU.
static void sgd_writeback(float wbuf[TM][TN][WBUF_DEPTH],
                          const float bacc[TM][MAX_MC * ACC_DIST], const Job& j, int ob0,
                          int nmb, const float* mem_vr, float* mem_vw, float* mem_w,
                          float* mem_out) {
  // One float unit for the whole write-back (its loops run one after another): as many
  // multipliers and adders as the port brings words per beat, shared by the partial-sum
  // fold and the weight and bias SGD (three multiplies and three adds per word: three
  // times the two streams' bandwidth bound; the SGD is about 1% of a step).
  EFGEN_HLS(INLINE off)
  EFGEN_HLS(ALLOCATION operation instances=fmul limit=EFGEN_AXI_WORDS)
  EFGEN_HLS(ALLOCATION operation instances=fadd limit=EFGEN_AXI_WORDS)
  const int KK = j.KK, KP = j.KP, G = j.G;
  const int rows = KK * TM * (TN / T);          // T-word rows of one pair
  const int frows = KP * TM * (TN / T);         // rows of one partial-sum copy (packed: KP)
EFGEN_LABEL(SGD_PAIRS_M)
  for (int mbl = 0; mbl < nmb; ++mbl) {
    EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_MC)
  EFGEN_LABEL(SGD_PAIRS_N)
    for (int nb = 0; nb < j.NB; ++nb) {
      EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_NB)
      const int64_t off = (int64_t(ob0 + mbl) * j.NB + nb) * KK * TM * TN;
      const int slot0 = (mbl * j.NB + nb) * KP * G;
      if (G > 1) {
        int kk = 0, mm = 0, tb = 0, q = 1;
      EFGEN_LABEL(SGD_FOLD)
        for (int it = 0; it < (G - 1) * frows; ++it) {
          EFGEN_HLS(LOOP_TRIPCOUNT min=0 max=EFGEN_MAX_FOLD)
          EFGEN_HLS(PIPELINE II=1)
          for (int t = 0; t < T; ++t) {
            EFGEN_HLS(UNROLL)
            const int nn = tb * T + t;
            wbuf[mm][nn][slot0 + kk] = wbuf[mm][nn][slot0 + kk] + wbuf[mm][nn][slot0 + q * KP + kk];
          }
          if (row_next(tb, mm, kk) && kk == KP) {
            kk = 0;
            ++q;
          }
        }
      }
      int kk = 0, mm = 0, tb = 0;
      int kq = 0, kt = 0;                          // packed: offset kk's pass and tap slot
    EFGEN_LABEL(SGD_WORDS)
      for (int it = 0; it < rows; ++it) {
        EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_WROWS)
        EFGEN_HLS(PIPELINE II=1)
        const int m = (ob0 + mbl) * TM + mm;
        float g[T], p[T], v[T], p_in[T], v_in[T];
        for (int t = 0; t < T; ++t) {
          EFGEN_HLS(UNROLL)
          g[t] = wbuf[mm][gbank(j, kt, tb * T + t)][slot0 + (j.taps > 1 ? kq : kk)];
          p_in[t] = mem_w[j.a[2] + off + int64_t(it) * T + t];
          v_in[t] = mem_vr[j.a[3] + off + int64_t(it) * T + t];
          p[t] = p_in[t];
          v[t] = v_in[t];
        }
        sgd_vec(g, p, v, j.lr, j.momentum, j.wd);
        for (int t = 0; t < T; ++t) {
          EFGEN_HLS(UNROLL)
          // Pad words (m >= M or n >= N) are written back as read: bits unchanged.
          const bool ok = m < j.M && nb * TN + tb * T + t < j.N;
          mem_w[j.a[2] + off + int64_t(it) * T + t] = ok ? p[t] : p_in[t];
          mem_vw[j.a[3] + off + int64_t(it) * T + t] = ok ? v[t] : v_in[t];
        }
        if (row_next(tb, mm, kk) && ++kt == j.taps) {
          kt = 0;
          ++kq;
        }
      }
      if (j.a[6] != 0) {
        kk = 0;
        mm = 0;
        tb = 0;
        kq = 0;
        kt = 0;
      EFGEN_LABEL(SGD_DEBUG)
        for (int it = 0; it < rows; ++it) {
          EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_WROWS)
          EFGEN_HLS(PIPELINE II=1)
          const int m = (ob0 + mbl) * TM + mm;
          for (int t = 0; t < T; ++t) {
            EFGEN_HLS(UNROLL)
            const bool ok = m < j.M && nb * TN + tb * T + t < j.N;   // pad words: +0
            mem_out[j.a[6] + off + int64_t(it) * T + t] =
                ok ? wbuf[mm][gbank(j, kt, tb * T + t)][slot0 + (j.taps > 1 ? kq : kk)] : 0.0f;
          }
          if (row_next(tb, mm, kk) && ++kt == j.taps) {
            kt = 0;
            ++kq;
          }
        }
      }
    }
  }
  if (j.flags & EFGEN_FLAG_BIAS) {
    // The chunk's bias: its valid channels, one per cycle (a plain array of M words), on
    // lane 0 of the shared SGD datapath; the gradient is the lane's ACC_DIST partial sums
    // added in order.
    const int64_t ch0 = int64_t(ob0) * TM;
    const int nch = imin(nmb * TM, j.M - ob0 * TM);
    int m = 0, mbl = 0;
  EFGEN_LABEL(SGD_BIAS)
    for (int k = 0; k < nch; ++k) {
      EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_CHUNK_C)
      EFGEN_HLS(PIPELINE II=1)
      float g[T], p[T], v[T];
      for (int t = 0; t < T; ++t) {
        EFGEN_HLS(UNROLL)
        g[t] = 0.0f;
        p[t] = 0.0f;
        v[t] = 0.0f;
      }
      g[0] = bias_grad(bacc, m, mbl);
      p[0] = mem_w[j.a[4] + ch0 + k];
      v[0] = mem_vr[j.a[5] + ch0 + k];
      sgd_vec(g, p, v, j.lr, j.momentum, j.wd);
      mem_w[j.a[4] + ch0 + k] = p[0];
      mem_vw[j.a[5] + ch0 + k] = v[0];
      if (++m == TM) {
        m = 0;
        ++mbl;
      }
    }
    if (j.a[7] != 0) {
      m = 0;
      mbl = 0;
    EFGEN_LABEL(SGD_BIAS_DEBUG)
      for (int k = 0; k < nch; ++k) {
        EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_CHUNK_C)
        EFGEN_HLS(PIPELINE II=1)
        mem_out[j.a[7] + ch0 + k] = bias_grad(bacc, m, mbl);
        if (++m == TM) {
          m = 0;
          ++mbl;
        }
      }
    }
  }
}

#if EFGEN_WDB
// WU with double-buffered weight chunks: chunk ch accumulates its gradients into weight
// buffer ch % 2 (and its bias partial sums into bias buffer ch % 2), so chunk ch-1's
// write-back and chunk ch's accumulation touch different buffers. Per DRAM bundle the
// region keeps one reading and one writing process: the accumulation reads gmem0 (the
// input and error tiles); the write-back reads and writes the parameters on gmem1, reads
// v on gmem2's read channel and writes it on gmem0's write channel, and writes the debug
// copies on gmem2. A WU job whose loader reads gmem2 (a fused load's second stream or BN
// BP's y: wu_reads_x2) does not overlap.
static inline bool wu_reads_x2(const Job& j) {
  return j.xf && (j.lmode == 1 || j.lx2 != 0);
}

// The previous chunk's write-back (nmb = 0: none), the overlapping process.
static void sgd_prev(float wbuf[TM][TN][WBUF_DEPTH], const float bacc[TM][MAX_MC * ACC_DIST],
                     const Job& j, int ob0, int nmb, const float* mem_vr, float* mem_vw,
                     float* mem_w, float* mem_out) {
  EFGEN_HLS(INLINE off)
  if (nmb > 0) sgd_writeback(wbuf, bacc, j, ob0, nmb, mem_vr, mem_vw, mem_w, mem_out);
}

// One WU chunk with double-buffered weights: a DATAFLOW region of two processes, the
// previous chunk's write-back from (wprev, bprev) and this chunk's accumulation into
// (wcur, bcur).
static void run_chunk_wu_wdb(const Job& j, int pob0, int pnmb, int ob0, int nmb,
                             float wprev[TM][TN][WBUF_DEPTH],
                             const float bprev[TM][MAX_MC * ACC_DIST],
                             float wcur[TM][TN][WBUF_DEPTH], const float bbuf[TM][MAX_MC],
                             float bcur[TM][MAX_MC * ACC_DIST],
                             const float kb[XF_TERMS][XF_CONSTS][T][XF_D],
                             const float kbd[XF_TERMS][XF_CONSTS][T][XF_D],
                             const float skb[TM][MAX_MC], float sacc[NSUMS][TM][MAX_MC * ACC_DIST],
                             const float kbs[XF_CONSTS][TM][MAX_MC],
                             float* mem_in, float* mem_w, float* mem_out) {
  EFGEN_HLS(INLINE off)
  EFGEN_HLS(DATAFLOW)
  EFGEN_REGION(region);
  EFGEN_PROCESS(region, sgd_prev(wprev, bprev, j, pob0, pnmb, mem_out, mem_in, mem_w, mem_out));
  EFGEN_PROCESS(region, run_chunk(j, ob0, nmb, wcur, bbuf, bcur, kb, kbd, skb, sacc, kbs,
                                  mem_in, mem_w, mem_out));
  EFGEN_JOIN(region);
}
#endif

// The bias-gradient partial sums of a WU chunk of nmb blocks start at +0.
static inline void zero_bacc(float bacc[TM][MAX_MC * ACC_DIST], int nmb) {
EFGEN_LABEL(ZERO_BACC)
  for (int k = 0; k < nmb * ACC_DIST; ++k) {
    EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_BACC)
    EFGEN_HLS(PIPELINE II=1)
    for (int m = 0; m < TM; ++m) {
      EFGEN_HLS(UNROLL)
      bacc[m][k] = 0.0f;
    }
  }
}

// ---- the fused transform's parameters (FLAG_XF) ------------------------------------------

// An int64 word address stored in the record as two 32-bit words, low first.
static inline int64_t rec_addr(const uint32_t rw[XF_WORDS], int k) {
  return int64_t((uint64_t(rw[k + 1]) << 32) | uint64_t(rw[k]));
}

// The side record (XF_WORDS words, one per cycle) and the load stream's per-channel
// constants (mean, invstd, gamma, beta of each term: 4 x C words from LK), one word per
// cycle, before the chunks. A WU record's DBG replaces a[7] (the bias-gradient debug copy).
// Two terms' constants (mean, invstd, gamma, beta | the dx block's 4 + 4 rows) of C
// channels from base0 and base1 (0: the term has none), one word per cycle.
static void load_consts(float kb[XF_TERMS][XF_CONSTS][T][XF_D], int64_t base0, int64_t base1,
                        int C, const float* mem_w) {
EFGEN_LABEL(LOAD_XF_TERMS)
  for (int term = 0; term < XF_TERMS; ++term) {
    EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=2)
    const int64_t base = term == 0 ? base0 : base1;
    if (base == 0) continue;
  EFGEN_LABEL(LOAD_XF_KINDS)
    for (int q = 0; q < XF_CONSTS; ++q) {
      EFGEN_HLS(LOOP_TRIPCOUNT min=4 max=4)
      const int64_t row = base + int64_t(q) * C;
      int t = 0, cb = 0;
    EFGEN_LABEL(LOAD_XF_CONST)
      for (int ch = 0; ch < C; ++ch) {
        EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_XF_MAX_C)
        EFGEN_HLS(PIPELINE II=1)
        kb[term][q][t][cb] = mem_w[row + ch];
        if (++t == T) {
          t = 0;
          ++cb;
        }
      }
    }
  }
}

static bool load_xf(Job& j, float kb[XF_TERMS][XF_CONSTS][T][XF_D],
                    float kbd[XF_TERMS][XF_CONSTS][T][XF_D], const float* mem_w) {
  uint32_t rw[XF_WORDS];
EFGEN_LABEL(LOAD_XF_RECORD)
  for (int k = 0; k < XF_WORDS; ++k) {
    EFGEN_HLS(LOOP_TRIPCOUNT min=16 max=16)
    EFGEN_HLS(PIPELINE II=1)
    std::memcpy(&rw[k], &mem_w[j.rec + k], sizeof rw[k]);
  }
  j.lk1 = rec_addr(rw, 0);
  j.lx2 = rec_addr(rw, 2);
  j.lk2 = rec_addr(rw, 4);
  j.relu_in = rw[6] != 0;
  j.lmode = int(rw[7]);
  j.sk = rec_addr(rw, 8);
  j.ssum = rec_addr(rw, 10);
  j.dbg = rec_addr(rw, 12);
  j.mk = rec_addr(rw, 14);
  if (j.mode == WU) j.a[7] = j.dbg;
  if (j.mode == BP) j.se = j.dbg;     // words 12-13: WU's DBG, BP's error operand SE
  if (j.mode == FP && j.dbg != 0) return false;
  // BP loads dy plainly or as a BN's dx (LMODE 1); MK is BP's mask constants, or WU's dx
  // constants (LMODE 1, y at SK; the input tiles then transform as in FP); LMODE 1 needs
  // both constant sets and y, no ReLU on the error stream and (WU) no bias.
  const bool dx = j.lmode == 1;
  j.wdx2 = j.mode == WU && dx && j.mk != 0;
  if (j.lmode < 0 || j.lmode > 1 || (dx && j.mode == FP) || (j.mode == FP && j.mk != 0))
    return false;
  if (j.mode == BP && !dx && (j.lk1 != 0 || j.lx2 != 0 || j.relu_in)) return false;
  if (dx && !j.wdx2 && (j.lk1 == 0 || j.lk2 == 0 || j.lx2 == 0 || j.relu_in ||
                        (j.mode == WU && (j.flags & EFGEN_FLAG_BIAS))))
    return false;
  if (j.wdx2 && (j.sk == 0 || (j.flags & EFGEN_FLAG_BIAS))) return false;
  if (j.mode == BP && j.stats && (j.mk == 0 || !(j.flags & EFGEN_FLAG_MASK))) return false;
  if (j.mode == BP && j.sk != 0 && !j.stats) return false;   // SK: the BP sums' y only
  const int C = j.mode == WU && dx && !j.wdx2 ? j.M : j.src.C;   // the kb stream's channels
  load_consts(kb, j.lk1, j.lk2, C, mem_w);
  if (j.wdx2) load_consts(kbd, j.mk, j.mk + int64_t(XF_CONSTS) * j.M, j.M, mem_w);
  return true;
}

// BP with a record: the chunk's mask-source constants (mean, invstd, gamma, beta of the
// layer-input channels the chunk writes), one word per cycle.
static void mask_begin(const Job& j, int ob0, int nmb, float kbs[XF_CONSTS][TM][MAX_MC],
                       const float* mem_w) {
  const int nch = imin(nmb * TM, j.OC - ob0 * TM);
EFGEN_LABEL(MASK_K_KINDS)
  for (int q = 0; q < XF_CONSTS; ++q) {
    EFGEN_HLS(LOOP_TRIPCOUNT min=4 max=4)
    const int64_t row = j.mk + int64_t(q) * j.OC + int64_t(ob0) * TM;
    int m = 0, mbl = 0;
  EFGEN_LABEL(MASK_K)
    for (int k = 0; k < nch; ++k) {
      EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_CHUNK_C)
      EFGEN_HLS(PIPELINE II=1)
      kbs[q][m][mbl] = mem_w[row + k];
      if (++m == TM) {
        m = 0;
        ++mbl;
      }
    }
  }
}

// FLAG_STATS: the chunk's shift k (one word per channel) and its sums zeroed.
static void stats_begin(const Job& j, int ob0, int nmb, float skb[TM][MAX_MC],
                        float sacc[NSUMS][TM][MAX_MC * ACC_DIST], const float* mem_w) {
  const int nch = j.mode == FP ? imin(nmb * TM, j.OC - ob0 * TM) : 0;   // BP: no shift
EFGEN_LABEL(STATS_K)
  for (int k = 0; k < nch; ++k) {
    EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_CHUNK_C)
    EFGEN_HLS(PIPELINE II=1)
    skb[k % TM][k / TM] = mem_w[j.sk + int64_t(ob0) * TM + k];
  }
EFGEN_LABEL(STATS_ZERO)
  for (int k = 0; k < nmb * ACC_DIST; ++k) {
    EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_BACC)
    EFGEN_HLS(PIPELINE II=1)
    for (int m = 0; m < TM; ++m) {
      EFGEN_HLS(UNROLL)
      sacc[0][m][k] = 0.0f;
      sacc[1][m][k] = 0.0f;
    }
  }
}

// FLAG_STATS: the chunk's sums, each lane's ACC_DIST partial sums added in order, to
// SSUM and SSUM + C (C = the stored tensor's channels): FP sum(y-k), sum((y-k)^2); BP
// (the BN BP sums of the error it finalises) sum(dy), sum(dy*x_hat).
static void stats_end(const Job& j, int ob0, int nmb, const float sacc[NSUMS][TM][MAX_MC * ACC_DIST],
                      float* mem_out) {
  const int nch = imin(nmb * TM, j.OC - ob0 * TM);
EFGEN_LABEL(STATS_OUT)
  for (int k = 0; k < nch; ++k) {
    EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_CHUNK_C)
    EFGEN_HLS(PIPELINE II=1)
    const int m = k % TM, mbl = k / TM;
    for (int s = 0; s < NSUMS; ++s) {
      EFGEN_HLS(UNROLL)
      float v = sacc[s][m][mbl * ACC_DIST];
      for (int q = 1; q < ACC_DIST; ++q) {
        EFGEN_HLS(UNROLL)
        v = v + sacc[s][m][mbl * ACC_DIST + q];
      }
      mem_out[j.ssum + int64_t(s) * j.OC + int64_t(ob0) * TM + k] = v;
    }
  }
}

}  // namespace efgen_ce

// 0 when the engine would execute the descriptor, else an EfgenConvStatus.
static inline int efgen_conv_check(const EfgenDesc& d) {
  efgen_ce::Job j;
  return efgen_ce::make_job(d, j);
}

static inline void efgen_conv_engine(const EfgenDesc& d, float* mem_in, float* mem_w,
                                     float* mem_out) {
  using namespace efgen_ce;
  // On-chip state that outlives a chunk's DATAFLOW region: the weight buffer (weights,
  // or WU gradient partial sums; Tm x Tn banks, one read and one write port), the FP
  // bias and the WU bias-gradient partial sums. The IFM/OFM ping-pong blocks live in
  // run_chunk's streams of blocks.
  static float wbuf[TM][TN][WBUF_DEPTH];
  static float bbuf[TM][MAX_MC];
  static float bacc[TM][MAX_MC * ACC_DIST];
  // The fused transform (FLAG_XF): the load stream's per-channel constants (two terms x
  // mean, invstd, gamma, beta; lane-partitioned), the store's shift k and its BN FP sums.
  static float kb[XF_TERMS][XF_CONSTS][T][XF_D];
  static float kbd[XF_TERMS][XF_CONSTS][T][XF_D];   // WU: the error tiles' dx constants (MK)
  static float skb[TM][MAX_MC];
  static float sacc[NSUMS][TM][MAX_MC * ACC_DIST];
  static float kbs[XF_CONSTS][TM][MAX_MC];
  EFGEN_HLS(ARRAY_PARTITION variable=kbs type=complete dim=1)
  EFGEN_HLS(ARRAY_PARTITION variable=kbs type=complete dim=2)
  EFGEN_HLS(ARRAY_PARTITION variable=kb type=complete dim=1)
  EFGEN_HLS(ARRAY_PARTITION variable=kb type=complete dim=2)
  EFGEN_HLS(ARRAY_PARTITION variable=kb type=complete dim=3)
  EFGEN_HLS(ARRAY_PARTITION variable=kbd type=complete dim=1)
  EFGEN_HLS(ARRAY_PARTITION variable=kbd type=complete dim=2)
  EFGEN_HLS(ARRAY_PARTITION variable=kbd type=complete dim=3)
  EFGEN_HLS(ARRAY_PARTITION variable=skb type=complete dim=1)
  EFGEN_HLS(ARRAY_PARTITION variable=sacc type=complete dim=1)
  EFGEN_HLS(ARRAY_PARTITION variable=sacc type=complete dim=2)
  EFGEN_HLS(BIND_STORAGE variable=sacc type=ram_2p impl=lutram)
  EFGEN_HLS(ARRAY_PARTITION variable=wbuf type=complete dim=1)
  EFGEN_HLS(ARRAY_PARTITION variable=wbuf type=complete dim=2)
  EFGEN_HLS(BIND_STORAGE variable=wbuf type=ram_2p impl=bram)
  EFGEN_HLS(ARRAY_PARTITION variable=bbuf type=complete dim=1)
  EFGEN_HLS(BIND_STORAGE variable=bbuf type=ram_2p impl=lutram)
  EFGEN_HLS(ARRAY_PARTITION variable=bacc type=complete dim=1)
  EFGEN_HLS(BIND_STORAGE variable=bacc type=ram_2p impl=lutram)
#if EFGEN_WDB
  // the second weight buffer (and FP bias buffer): odd chunks' weights
  static float wbuf1[TM][TN][WBUF_DEPTH];
  static float bbuf1[TM][MAX_MC];
  EFGEN_HLS(ARRAY_PARTITION variable=wbuf1 type=complete dim=1)
  EFGEN_HLS(ARRAY_PARTITION variable=wbuf1 type=complete dim=2)
  EFGEN_HLS(BIND_STORAGE variable=wbuf1 type=ram_2p impl=bram)
  EFGEN_HLS(ARRAY_PARTITION variable=bbuf1 type=complete dim=1)
  EFGEN_HLS(BIND_STORAGE variable=bbuf1 type=ram_2p impl=lutram)
  // WU: the second bias-gradient buffer (odd chunks' partial sums)
  static float bacc1[TM][MAX_MC * ACC_DIST];
  EFGEN_HLS(ARRAY_PARTITION variable=bacc1 type=complete dim=1)
  EFGEN_HLS(BIND_STORAGE variable=bacc1 type=ram_2p impl=lutram)
#endif

  Job j;
  if (make_job(d, j) != EFGEN_CONV_OK) return;  // rejected: nothing read or written
  if (j.xf && !load_xf(j, kb, kbd, mem_w)) return;   // an unsupported record: nothing written

  const int nchunks = cdiv(j.MB, j.mc);
#if EFGEN_WDB
  if (j.mode != WU) {
    // FP/BP: chunk 0's weights first; then per chunk its run beside the next one's load
    load_weights(wbuf, bbuf, j, 0, imin(j.mc, j.MB), mem_w);
  EFGEN_LABEL(CHUNKS_WDB)
    for (int ch = 0; ch < nchunks; ++ch) {
      EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_CHUNKS)
      const int ob0 = ch * j.mc;
      const int nmb = imin(j.mc, j.MB - ob0);
      const int nob0 = ob0 + j.mc;
      const int nnmb = ch + 1 < nchunks ? imin(j.mc, j.MB - nob0) : 0;
      if (j.stats) stats_begin(j, ob0, nmb, skb, sacc, mem_w);
      if (j.mode == BP && j.mk != 0) mask_begin(j, ob0, nmb, kbs, mem_w);
      if (ch % 2 == 0)
        run_chunk_wdb(j, ob0, nmb, nob0, nnmb, wbuf, bbuf, wbuf1, bbuf1, bacc, kb, kbd, skb,
                      sacc, kbs, mem_in, mem_w, mem_out);
      else
        run_chunk_wdb(j, ob0, nmb, nob0, nnmb, wbuf1, bbuf1, wbuf, bbuf, bacc, kb, kbd, skb,
                      sacc, kbs, mem_in, mem_w, mem_out);
      if (j.stats) stats_end(j, ob0, nmb, sacc, mem_out);
    }
    return;
  }
  if (nchunks > 1 && !wu_reads_x2(j) && !j.stats) {
    // WU: chunk ch accumulates into buffer ch % 2 beside chunk ch-1's write-back (from
    // the other buffer); the last chunk's write-back after the loop
    const bool bias = (j.flags & EFGEN_FLAG_BIAS) != 0;
  EFGEN_LABEL(CHUNKS_WU_WDB)
    for (int ch = 0; ch < nchunks; ++ch) {
      EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_CHUNKS)
      const int ob0 = ch * j.mc;
      const int nmb = imin(j.mc, j.MB - ob0);
      const int pob0 = ob0 - j.mc;
      const int pnmb = ch > 0 ? j.mc : 0;      // every chunk but the last is full
      if (ch % 2 == 0) {
        if (bias) zero_bacc(bacc, nmb);
        run_chunk_wu_wdb(j, pob0, pnmb, ob0, nmb, wbuf1, bacc1, wbuf, bbuf, bacc, kb, kbd, skb,
                         sacc, kbs, mem_in, mem_w, mem_out);
      } else {
        if (bias) zero_bacc(bacc1, nmb);
        run_chunk_wu_wdb(j, pob0, pnmb, ob0, nmb, wbuf, bacc, wbuf1, bbuf, bacc1, kb, kbd, skb,
                         sacc, kbs, mem_in, mem_w, mem_out);
      }
    }
    const int lob0 = (nchunks - 1) * j.mc;
    const int lnmb = j.MB - lob0;
    if ((nchunks - 1) % 2 == 0)
      sgd_writeback(wbuf, bacc, j, lob0, lnmb, mem_in, mem_in, mem_w, mem_out);
    else
      sgd_writeback(wbuf1, bacc1, j, lob0, lnmb, mem_in, mem_in, mem_w, mem_out);
    return;
  }
#endif
EFGEN_LABEL(CHUNKS)
  for (int ch = 0; ch < nchunks; ++ch) {
    EFGEN_HLS(LOOP_TRIPCOUNT min=1 max=EFGEN_MAX_CHUNKS)
    const int ob0 = ch * j.mc;
    const int nmb = imin(j.mc, j.MB - ob0);
    if (j.mode == WU && (j.flags & EFGEN_FLAG_BIAS)) {   // mc <= MAX_MC (make_job)
      zero_bacc(bacc, nmb);
    } else if (j.mode != WU) {
      load_weights(wbuf, bbuf, j, ob0, nmb, mem_w);
    }
    if (j.stats) stats_begin(j, ob0, nmb, skb, sacc, mem_w);
    if (j.mode == BP && j.mk != 0) mask_begin(j, ob0, nmb, kbs, mem_w);
    run_chunk(j, ob0, nmb, wbuf, bbuf, bacc, kb, kbd, skb, sacc, kbs, mem_in, mem_w, mem_out);
    if (j.stats) stats_end(j, ob0, nmb, sacc, mem_out);
    if (j.mode == WU) sgd_writeback(wbuf, bacc, j, ob0, nmb, mem_in, mem_in, mem_w, mem_out);
  }
}

#endif  // EFGEN_CONV_ENGINE_H
