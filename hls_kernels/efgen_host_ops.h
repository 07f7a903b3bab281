// efgen_host_ops.h - the host runtime's own descriptor ops (op >= EFGEN_OP_HOST_BASE):
// the glue of gradient filtering and error-map pruning around the engine's 1x1
// convolutions on pooled maps, and the host-level control of mini-batch dropping,
// instance filtering and selective layer update (efgen/methods, efgen/hls/methods.py,
// eif.py, slu.py). Plain C++ run by the
// host between kernel calls, not by efgen_top; efgen/csim/interp.py states the same ops
// with efgen.methods.golden, and C-simulation checks each against it.
//
// Layouts as everywhere (efgen/layout.py): feature maps blocked by T = EFGEN_LANES,
// addr(b, c, r, x) = ((b*ceil(C/T) + c/T)*H*W + r*W + x)*T + c%T; weights by (Tm, Tn)
// pairs, addr(m, n, i, j) = ((pair*KH + i)*KW + j)*Tm*Tn + (m%Tm)*Tn + n%Tn with
// pair = (m/Tm)*ceil(N/Tn) + n/Tn.
#ifndef EFGEN_HOST_OPS_H
#define EFGEN_HOST_OPS_H

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "efgen_desc.h"
#include "efgen_params.h"

static inline int64_t efgen_fm_addr(int C, int H, int W, int b, int c, int r, int x) {
  const int cb = (C + EFGEN_LANES - 1) / EFGEN_LANES;
  return ((static_cast<int64_t>(b) * cb + c / EFGEN_LANES) * H * W +
          static_cast<int64_t>(r) * W + x) * EFGEN_LANES + c % EFGEN_LANES;
}

static inline int64_t efgen_w_addr(int N, int K, int m, int n, int i, int j) {
  const int nb = (N + EFGEN_TN - 1) / EFGEN_TN;
  const int64_t pair = static_cast<int64_t>(m / EFGEN_TM) * nb + n / EFGEN_TN;
  return ((pair * K + i) * K + j) * EFGEN_TM * EFGEN_TN + (m % EFGEN_TM) * EFGEN_TN +
         n % EFGEN_TN;
}

// Centred patch grid of gradient filtering: patches and the offset of patch 0.
static inline int efgen_gf_patches(int n_out, int r) { return (n_out + r - 1) / r; }
static inline int efgen_gf_offset(int n_out, int r) {
  const int p = efgen_gf_patches(n_out, r);
  return (p * r - n_out + 1) / 2;                           // ceil((p*r - n_out) / 2) >= 0
}
static inline int efgen_gf_in_offset(int n_in, int n_out, int r, int s) {
  const int span = efgen_gf_patches(n_out, r) * r * s - n_in;   // may be negative
  return span >= 0 ? (span + 1) / 2 : -((-span) / 2);            // ceil(span / 2)
}

// GF_XSUM: a[0] = x (B, in_c, in_h, in_w) summed over (r*s)^2 input patches -> a[7]
// (B, in_c, Ph, Pw). kh = r, stride = s, out_h/out_w = the conv's output.
static void efgen_gf_xsum(const EfgenDesc& d, float* mem) {
  const int r = d.kh, s = d.stride, k = r * s;
  const int ph = efgen_gf_patches(d.out_h, r), pw = efgen_gf_patches(d.out_w, r);
  const int oh = efgen_gf_in_offset(d.in_h, d.out_h, r, s);
  const int ow = efgen_gf_in_offset(d.in_w, d.out_w, r, s);
  for (int b = 0; b < d.batch; ++b)
    for (int c = 0; c < d.in_c; ++c)
      for (int p = 0; p < ph; ++p)
        for (int q = 0; q < pw; ++q) {
          float acc = 0.0f;
          for (int i = p * k - oh; i < (p + 1) * k - oh; ++i)
            for (int j = q * k - ow; j < (q + 1) * k - ow; ++j)
              if (i >= 0 && i < d.in_h && j >= 0 && j < d.in_w)
                acc += mem[d.a[0] + efgen_fm_addr(d.in_c, d.in_h, d.in_w, b, c, i, j)];
          mem[d.a[7] + efgen_fm_addr(d.in_c, ph, pw, b, c, p, q)] = acc;
        }
}

// GF_POOL: a[0] = dy (B, out_c, out_h, out_w) averaged over r x r patches (border patches
// over their real elements) -> a[7] (B, out_c, Ph, Pw). kh = r.
static void efgen_gf_pool(const EfgenDesc& d, float* mem) {
  const int r = d.kh;
  const int ph = efgen_gf_patches(d.out_h, r), pw = efgen_gf_patches(d.out_w, r);
  const int oh = efgen_gf_offset(d.out_h, r), ow = efgen_gf_offset(d.out_w, r);
  for (int b = 0; b < d.batch; ++b)
    for (int c = 0; c < d.out_c; ++c)
      for (int p = 0; p < ph; ++p)
        for (int q = 0; q < pw; ++q) {
          float acc = 0.0f;
          int n = 0;
          for (int i = p * r - oh; i < (p + 1) * r - oh; ++i)
            for (int j = q * r - ow; j < (q + 1) * r - ow; ++j)
              if (i >= 0 && i < d.out_h && j >= 0 && j < d.out_w) {
                acc += mem[d.a[0] + efgen_fm_addr(d.out_c, d.out_h, d.out_w, b, c, i, j)];
                ++n;
              }
          mem[d.a[7] + efgen_fm_addr(d.out_c, ph, pw, b, c, p, q)] = acc / static_cast<float>(n);
        }
}

// GF_COPYBACK: a[0] = dx_sum (B, in_c, Ph, Pw) copied over each (r*s)^2 input patch ->
// a[7] (B, in_c, in_h, in_w); FLAG_MASK: times (a[6] > 0). kh = r, stride = s.
static void efgen_gf_copyback(const EfgenDesc& d, float* mem) {
  const int r = d.kh, s = d.stride, k = r * s;
  const int ph = efgen_gf_patches(d.out_h, r), pw = efgen_gf_patches(d.out_w, r);
  const int oh = efgen_gf_in_offset(d.in_h, d.out_h, r, s);
  const int ow = efgen_gf_in_offset(d.in_w, d.out_w, r, s);
  const bool mask = (d.flags & EFGEN_FLAG_MASK) != 0;
  for (int b = 0; b < d.batch; ++b)
    for (int c = 0; c < d.in_c; ++c)
      for (int i = 0; i < d.in_h; ++i)
        for (int j = 0; j < d.in_w; ++j) {
          const int ii = i + oh, jj = j + ow;    // rows/columns no patch covers get 0
          const int64_t o = efgen_fm_addr(d.in_c, d.in_h, d.in_w, b, c, i, j);
          float v = 0.0f;
          if (ii >= 0 && jj >= 0 && ii / k < ph && jj / k < pw)
            v = mem[d.a[0] + efgen_fm_addr(d.in_c, ph, pw, b, c, ii / k, jj / k)];
          if (mask && !(mem[d.a[6] + o] > 0.0f)) v = 0.0f;
          mem[d.a[7] + o] = v;
        }
}

// GF_WSUM: a[1] = W (out_c, in_c, K, K) summed over its taps -> a[7] (out_c, in_c, 1, 1).
// kw = K.
static void efgen_gf_wsum(const EfgenDesc& d, float* mem) {
  const int K = d.kw;
  for (int m = 0; m < d.out_c; ++m)
    for (int n = 0; n < d.in_c; ++n) {
      float acc = 0.0f;
      for (int i = 0; i < K; ++i)
        for (int j = 0; j < K; ++j) acc += mem[d.a[1] + efgen_w_addr(d.in_c, K, m, n, i, j)];
      mem[d.a[7] + efgen_w_addr(d.in_c, 1, m, n, 0, 0)] = acc;
    }
}

// GF_TAPSGD: the gradient a[0] (out_c, in_c, 1, 1) is every tap's: SGD on a[2] = W and
// a[3] = vel (out_c, in_c, K, K); debug copy of the broadcast gradient to a[6] if non-zero.
static void efgen_gf_tapsgd(const EfgenDesc& d, float* mem) {
  const int K = d.kw;
  for (int m = 0; m < d.out_c; ++m)
    for (int n = 0; n < d.in_c; ++n) {
      const float g = mem[d.a[0] + efgen_w_addr(d.in_c, 1, m, n, 0, 0)];
      for (int i = 0; i < K; ++i)
        for (int j = 0; j < K; ++j) {
          const int64_t o = efgen_w_addr(d.in_c, K, m, n, i, j);
          const float w = mem[d.a[2] + o];
          const float v = d.momentum * mem[d.a[3] + o] + (g + d.weight_decay * w);
          mem[d.a[3] + o] = v;
          mem[d.a[2] + o] = w - d.lr * v;
          if (d.a[6]) mem[d.a[6] + o] = g;
        }
    }
}

// EMP: channel scores mean|dy_c| + eps * mean|W_c| (eps carries weight_norm), the top
// n_src channels (ties to the lower index) keep their error; the 0/1 channel list to a[5]
// if non-zero. a[0] = dy (B, out_c, out_h, out_w), a[1] = W (out_c, in_c, K, K).
// Without FLAG_GATHER: a[7] = dy with the pruned channels zeroed (same shape).
// With FLAG_GATHER: a[7] = the kept channels' error, gathered in channel order into a
// (B, n_src, out_h, out_w) map, and, if a[2] is non-zero, the kept filters into a
// (n_src, in_c, K, K) weight: the engine's BP and WU then run on n_src channels only.
static void efgen_emp(const EfgenDesc& d, float* mem) {
  const int C = d.out_c, K = d.kw;
  std::vector<double> score(C, 0.0);
  const double n_err = static_cast<double>(d.batch) * d.out_h * d.out_w;
  const double n_w = static_cast<double>(d.in_c) * K * K;
  for (int c = 0; c < C; ++c) {
    double e = 0.0, w = 0.0;
    for (int b = 0; b < d.batch; ++b)
      for (int i = 0; i < d.out_h; ++i)
        for (int j = 0; j < d.out_w; ++j)
          e += std::fabs(mem[d.a[0] + efgen_fm_addr(C, d.out_h, d.out_w, b, c, i, j)]);
    for (int n = 0; n < d.in_c; ++n)
      for (int i = 0; i < K; ++i)
        for (int j = 0; j < K; ++j) w += std::fabs(mem[d.a[1] + efgen_w_addr(d.in_c, K, c, n, i, j)]);
    score[c] = e / n_err + static_cast<double>(d.eps) * (w / n_w);
  }
  std::vector<char> keep(C, 0);
  for (int k = 0; k < d.n_src; ++k) {          // selection: the highest, lowest index first
    int best = -1;
    for (int c = 0; c < C; ++c)
      if (!keep[c] && (best < 0 || score[c] > score[best])) best = c;
    keep[best] = 1;
  }
  if (d.flags & EFGEN_FLAG_GATHER) {
    int kc = 0;
    for (int c = 0; c < C; ++c) {
      if (!keep[c]) continue;
      for (int b = 0; b < d.batch; ++b)
        for (int i = 0; i < d.out_h; ++i)
          for (int j = 0; j < d.out_w; ++j)
            mem[d.a[7] + efgen_fm_addr(d.n_src, d.out_h, d.out_w, b, kc, i, j)] =
                mem[d.a[0] + efgen_fm_addr(C, d.out_h, d.out_w, b, c, i, j)];
      if (d.a[2])
        for (int n = 0; n < d.in_c; ++n)
          for (int i = 0; i < K; ++i)
            for (int j = 0; j < K; ++j)
              mem[d.a[2] + efgen_w_addr(d.in_c, K, kc, n, i, j)] =
                  mem[d.a[1] + efgen_w_addr(d.in_c, K, c, n, i, j)];
      ++kc;
    }
  } else {
    for (int b = 0; b < d.batch; ++b)
      for (int c = 0; c < C; ++c)
        for (int i = 0; i < d.out_h; ++i)
          for (int j = 0; j < d.out_w; ++j) {
            const int64_t o = efgen_fm_addr(C, d.out_h, d.out_w, b, c, i, j);
            mem[d.a[7] + o] = keep[c] ? mem[d.a[0] + o] : 0.0f;
          }
  }
  if (d.a[5])
    for (int c = 0; c < C; ++c) mem[d.a[5] + c] = keep[c] ? 1.0f : 0.0f;
}

// EMP_SGD: a[0] = the weight gradient of the kept channels (n_src, in_c, K, K), as the
// engine's WU on the gathered error wrote it; a[1] = the 0/1 channel list (out_c). SGD of
// a[2] = W and a[3] = vel (out_c, in_c, K, K): the kept filters with their gradient, the
// pruned ones with a zero gradient (momentum and weight decay still apply, as in the
// golden model); a debug copy of the whole gradient to a[6] if non-zero.
static void efgen_emp_sgd(const EfgenDesc& d, float* mem) {
  const int K = d.kw;
  int kc = 0;
  for (int m = 0; m < d.out_c; ++m) {
    const bool kept = mem[d.a[1] + m] > 0.5f;
    for (int n = 0; n < d.in_c; ++n)
      for (int i = 0; i < K; ++i)
        for (int j = 0; j < K; ++j) {
          const int64_t o = efgen_w_addr(d.in_c, K, m, n, i, j);
          const float g = kept ? mem[d.a[0] + efgen_w_addr(d.in_c, K, kc, n, i, j)] : 0.0f;
          const float w = mem[d.a[2] + o];
          const float v = d.momentum * mem[d.a[3] + o] + (g + d.weight_decay * w);
          mem[d.a[3] + o] = v;
          mem[d.a[2] + o] = w - d.lr * v;
          if (d.a[6]) mem[d.a[6] + o] = g;
        }
    if (kept) ++kc;
  }
}

// SGD0: the update of a dropped mini-batch (SMD with update_on_drop), or of a gated
// block's parameters when no sample ran it (SLU): SGD with a zero gradient,
// v = momentum*v + weight_decay*p, p -= lr*v, on a[2] (in_c words) and, if non-zero,
// a[4] (out_c words), with their momentum contiguous in a[3] (in_c + out_c words); a
// non-zero a[6] (the gradient's debug copy, in_c + out_c words) is zeroed. Layout-free:
// padding words are zero and stay zero.
static void efgen_sgd0(const EfgenDesc& d, float* mem) {
  if (d.a[6])
    for (int i = 0; i < d.in_c + d.out_c; ++i) mem[d.a[6] + i] = 0.0f;
  for (int part = 0; part < 2; ++part) {
    const int64_t p = part ? d.a[4] : d.a[2];
    const int n = part ? d.out_c : d.in_c;
    const int64_t v = d.a[3] + (part ? d.in_c : 0);
    if (!p) continue;
    for (int i = 0; i < n; ++i) {
      const float w = mem[p + i];
      const float vel = d.momentum * mem[v + i] + (0.0f + d.weight_decay * w);
      mem[v + i] = vel;
      mem[p + i] = w - d.lr * vel;
    }
  }
}

// BN_EVAL: inference-mode batchnorm of the EIF filter net (efgen.golden.ops.bn_fp_eval,
// the golden filter's forward(train=False)): y = (x - rm) * (gamma / sqrt(rv + eps)) +
// beta, ReLU with FLAG_RELU; a[0]=x a[1]=gamma a[2]=beta a[4]=rm a[5]=rv -> a[7]=y.
static void efgen_bn_eval(const EfgenDesc& d, float* mem) {
  const int C = d.in_c, H = d.in_h, W = d.in_w;
  for (int c = 0; c < C; ++c) {
    const float scale = mem[d.a[1] + c] / std::sqrt(mem[d.a[5] + c] + d.eps);
    const float mean = mem[d.a[4] + c], beta = mem[d.a[2] + c];
    for (int b = 0; b < d.batch; ++b)
      for (int r = 0; r < H; ++r)
        for (int x = 0; x < W; ++x) {
          const int64_t i = efgen_fm_addr(C, H, W, b, c, r, x);
          const float y = (mem[d.a[0] + i] - mean) * scale + beta;
          mem[d.a[7] + i] = (d.flags & EFGEN_FLAG_RELU) && !(y > 0.0f) ? 0.0f : y;
        }
  }
}

// EIF (early instance filtering, efgen.methods.step.filter_keep): each instance's
// cross-entropy under the filter net (logits a[0], blocked (batch, out_c); labels a[2],
// batch floats), the n_src instances of highest loss (ties by index: a stable sort),
// their 0/1 mask (batch words) then their labels (n_src words, index order) to a[5], and
// their images (in_c x in_h x in_w, blocked: one image is contiguous) from a[1] (batch
// images) to a[3] (n_src images), in index order.
static void efgen_eif(const EfgenDesc& d, float* mem) {
  const int B = d.batch, K = d.n_src, C = d.out_c;
  std::vector<double> loss(B);
  std::vector<int> order(B);
  for (int b = 0; b < B; ++b) {
    double mx = mem[d.a[0] + efgen_fm_addr(C, 1, 1, b, 0, 0, 0)];
    for (int c = 1; c < C; ++c)
      mx = std::fmax(mx, static_cast<double>(mem[d.a[0] + efgen_fm_addr(C, 1, 1, b, c, 0, 0)]));
    double sum = 0.0;
    for (int c = 0; c < C; ++c)
      sum += std::exp(mem[d.a[0] + efgen_fm_addr(C, 1, 1, b, c, 0, 0)] - mx);
    const int label = static_cast<int>(mem[d.a[2] + b]);
    loss[b] = std::log(sum) - (mem[d.a[0] + efgen_fm_addr(C, 1, 1, b, label, 0, 0)] - mx);
    order[b] = b;
  }
  std::stable_sort(order.begin(), order.end(),
                   [&loss](int i, int j) { return loss[i] > loss[j]; });
  for (int b = 0; b < B; ++b) mem[d.a[5] + b] = 0.0f;
  for (int k = 0; k < K; ++k) mem[d.a[5] + order[k]] = 1.0f;
  const int64_t words = efgen_fm_addr(d.in_c, d.in_h, d.in_w, 1, 0, 0, 0);   // one image
  int k = 0;
  for (int b = 0; b < B; ++b) {
    if (mem[d.a[5] + b] == 0.0f) continue;
    mem[d.a[5] + B + k] = mem[d.a[2] + b];
    for (int64_t i = 0; i < words; ++i) mem[d.a[3] + k * words + i] = mem[d.a[1] + b * words + i];
    ++k;
  }
}

// Selective layer update (SLU, E2-Train; efgen/hls/slu.py): a gated block's branch runs
// on the images whose run flag is set (a[5]: batch floats, 1 = runs) as a compact
// sub-batch (its first k images). One image of a blocked map is contiguous, so rows move
// whole. The op's geometry is in_c x in_h x in_w; batch is the full batch.
static inline int64_t efgen_slu_words(const EfgenDesc& d) {
  return efgen_fm_addr(d.in_c, d.in_h, d.in_w, 1, 0, 0, 0);
}

// SLU_GATHER: a[0] (batch images) -> a[7] (the running images, in index order).
static void efgen_slu_gather(const EfgenDesc& d, float* mem) {
  const int64_t words = efgen_slu_words(d);
  int64_t k = 0;
  for (int b = 0; b < d.batch; ++b) {
    if (mem[d.a[5] + b] == 0.0f) continue;
    for (int64_t i = 0; i < words; ++i) mem[d.a[7] + k * words + i] = mem[d.a[0] + b * words + i];
    ++k;
  }
}

// SLU_SCATTER: a[7]'s compact rows (the running images, in index order) to their images,
// in place, from the last image down (compact row j <= its image b, so no row is
// overwritten before it moves); the skipped images' rows are zero (no error through the
// branch).
static void efgen_slu_scatter(const EfgenDesc& d, float* mem) {
  const int64_t words = efgen_slu_words(d);
  int64_t j = -1;
  for (int b = 0; b < d.batch; ++b) j += mem[d.a[5] + b] != 0.0f ? 1 : 0;
  for (int b = d.batch - 1; b >= 0; --b) {
    float* row = mem + d.a[7] + b * words;
    if (mem[d.a[5] + b] != 0.0f) {
      if (j != b)
        for (int64_t i = 0; i < words; ++i) row[i] = mem[d.a[7] + j * words + i];
      --j;
    } else {
      for (int64_t i = 0; i < words; ++i) row[i] = 0.0f;
    }
  }
}

// SLU_ADD: the gated block's add: a[7] = a[1] (the shortcut, every image) plus a[0]'s
// compact branch rows on the running images; the skipped images' output is the
// shortcut itself. FLAG_RELU: clamped (a fused ReLU after the add).
static void efgen_slu_add(const EfgenDesc& d, float* mem) {
  const int64_t words = efgen_slu_words(d);
  const bool relu = (d.flags & EFGEN_FLAG_RELU) != 0;
  int64_t k = 0;
  for (int b = 0; b < d.batch; ++b) {
    const bool run = mem[d.a[5] + b] != 0.0f;
    const float* sc = mem + d.a[1] + b * words;
    const float* br = mem + d.a[0] + k * words;
    float* y = mem + d.a[7] + b * words;
    for (int64_t i = 0; i < words; ++i) {
      const float v = run ? sc[i] + br[i] : sc[i];
      y[i] = relu && !(v > 0.0f) ? 0.0f : v;
    }
    if (run) ++k;
  }
}

static inline void efgen_host_op(const EfgenDesc& d, float* mem) {
  switch (d.op) {
    case EFGEN_OP_HOST_GF_XSUM: efgen_gf_xsum(d, mem); break;
    case EFGEN_OP_HOST_GF_POOL: efgen_gf_pool(d, mem); break;
    case EFGEN_OP_HOST_GF_COPYBACK: efgen_gf_copyback(d, mem); break;
    case EFGEN_OP_HOST_GF_WSUM: efgen_gf_wsum(d, mem); break;
    case EFGEN_OP_HOST_GF_TAPSGD: efgen_gf_tapsgd(d, mem); break;
    case EFGEN_OP_HOST_EMP: efgen_emp(d, mem); break;
    case EFGEN_OP_HOST_EMP_SGD: efgen_emp_sgd(d, mem); break;
    case EFGEN_OP_HOST_SGD0: efgen_sgd0(d, mem); break;
    case EFGEN_OP_HOST_EIF: efgen_eif(d, mem); break;
    case EFGEN_OP_HOST_BN_EVAL: efgen_bn_eval(d, mem); break;
    case EFGEN_OP_HOST_SLU_GATHER: efgen_slu_gather(d, mem); break;
    case EFGEN_OP_HOST_SLU_SCATTER: efgen_slu_scatter(d, mem); break;
    case EFGEN_OP_HOST_SLU_ADD: efgen_slu_add(d, mem); break;
    default: break;
  }
}

#endif  // EFGEN_HOST_OPS_H
