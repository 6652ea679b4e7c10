// Convolution kernels: im2col + GEMM on chunks of images, and a direct kernel for depthwise
// (ConvImpl::kIm2col); and, at the bottom, conv.h's entry points, which pick this or the
// oneDNN implementation (conv_onednn.cpp).
//
// Images are processed in chunks of `chunk_images(g)` images: enough that a chunk's GEMM has
// at least kChunkColumns output columns (a 7x7 output alone gives a 49-wide GEMM, too
// narrow to keep the vector units busy), and few enough that the chunk's columns stay in
// L2. Per chunk and group:
//   forward         Y[og, B*P]   = W[og, kg] col[kg, B*P]             (then scattered to y)
//   input grad      col[kg, B*P] = W^T dY[og, B*P],  col2im into dx
//   weight grad     dW[og, kg]   = dY[og, B*P] col^T                 (one partial per chunk)
// with P = OH*OW, kg = C/groups * KH * KW, and dY the chunk's gradient gathered to
// [O, B*P]. Chunks run in parallel, each thread with its own scratch. The chunk size depends
// on the shapes only, and the weight-gradient partials are summed in chunk order, so dW is
// the same for any number of threads.
//
// The GEMMs are our own Highway micro-kernels, not OpenBLAS: these products are skinny
// (16-64 rows) and OpenBLAS spends as long packing them as multiplying. Two shapes cover
// all three products without any transposed copy:
//   gemm_bcast  C = A B     with A read by (row, col) strides, broadcast one element at a
//                           time; B and C rows are vectors (forward: A = W; input grad: A = W^T)
//   gemm_dot    C = A B^T   dot products of rows, vectors along the long reduction
//                           (weight grad: rows of dY against rows of col)
// perf on this project's Xeon (AVX-512), ResNet-20's 16-channel 28x28 conv with OpenBLAS:
// sgemm_kernel 32% of the time, its packing copies 17%. All ResNet-20 conv shapes at batch
// 128, forward + backward, 2 threads, wall: 1.42 s with OpenBLAS, 1.15 s with these kernels
// (both on a loaded machine); 1 thread, CPU time: ~0.47-0.57 s (PyTorch 1.13's oneDNN:
// ~0.30-0.36 s). The remaining gap is mostly im2col/col2im traffic (~30% in perf).

// clang-format off
#ifndef HWY_DISABLED_TARGETS
#define HWY_DISABLED_TARGETS (HWY_SSSE3 | HWY_SSE4)  // the baseline is x86-64-v3
#endif
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/conv.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// clang-format on

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "hwy/highway.h"
#include "kernels/cpu/conv.h"
#include "kernels/cpu/parallel.h"

HWY_BEFORE_NAMESPACE();
namespace qilin::kernels::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Register tiles. AVX2 has 16 vector registers: 6x2 accumulators for gemm_bcast, 3x4 for
// gemm_dot. AVX-512 has 32: 8x2 and 4x4.
#if HWY_TARGET == HWY_AVX2
constexpr int kBcastRows = 6;
constexpr int kDotRowsA = 3;
#else
constexpr int kBcastRows = 8;
constexpr int kDotRowsA = 4;
#endif
constexpr int kDotRowsB = 4;
// Depth of one pass of gemm_bcast: a 256 x 2-vector panel of B (32 KiB with AVX-512) stays
// in L1 while every row tile of A streams past it.
constexpr int64_t kBcastDepth = 256;

// C[0..MR) x [0, 2L) (= or +=) sum_k A(i, k) B[k, :], columns beyond `cols` untouched.
template <int MR, bool kTail>
HWY_INLINE void bcast_tile(int64_t depth, const float* HWY_RESTRICT a, int64_t rs_a,
                           int64_t cs_a, const float* HWY_RESTRICT b, int64_t ldb,
                           float* HWY_RESTRICT c, int64_t ldc, int64_t cols, bool accumulate) {
  const hn::ScalableTag<float> d;
  using V = hn::Vec<decltype(d)>;
  const int64_t L = static_cast<int64_t>(hn::Lanes(d));
  const auto m0 = hn::FirstN(d, static_cast<size_t>(std::min(cols, L)));
  const auto m1 = hn::FirstN(d, static_cast<size_t>(cols > L ? cols - L : 0));
  V acc0[MR], acc1[MR];
  for (int i = 0; i < MR; ++i) acc0[i] = acc1[i] = hn::Zero(d);
  for (int64_t k = 0; k < depth; ++k) {
    const float* bk = b + k * ldb;
    const V b0 = kTail ? hn::MaskedLoad(m0, d, bk) : hn::LoadU(d, bk);
    const V b1 = kTail ? hn::MaskedLoad(m1, d, bk + L) : hn::LoadU(d, bk + L);
    const float* ak = a + k * cs_a;
    for (int i = 0; i < MR; ++i) {
      const V ai = hn::Set(d, ak[i * rs_a]);
      acc0[i] = hn::MulAdd(ai, b0, acc0[i]);
      acc1[i] = hn::MulAdd(ai, b1, acc1[i]);
    }
  }
  for (int i = 0; i < MR; ++i) {
    float* ci = c + i * ldc;
    if (kTail) {
      if (accumulate) {
        acc0[i] = hn::Add(acc0[i], hn::MaskedLoad(m0, d, ci));
        acc1[i] = hn::Add(acc1[i], hn::MaskedLoad(m1, d, ci + L));
      }
      hn::BlendedStore(acc0[i], m0, d, ci);
      hn::BlendedStore(acc1[i], m1, d, ci + L);
    } else {
      if (accumulate) {
        acc0[i] = hn::Add(acc0[i], hn::LoadU(d, ci));
        acc1[i] = hn::Add(acc1[i], hn::LoadU(d, ci + L));
      }
      hn::StoreU(acc0[i], d, ci);
      hn::StoreU(acc1[i], d, ci + L);
    }
  }
}

template <int MR>
HWY_INLINE void bcast_rows(int64_t depth, const float* a, int64_t rs_a, int64_t cs_a,
                           const float* b, int64_t ldb, float* c, int64_t ldc, int64_t cols,
                           int64_t nr, bool accumulate) {
  if (cols == nr) {
    bcast_tile<MR, false>(depth, a, rs_a, cs_a, b, ldb, c, ldc, cols, accumulate);
  } else {
    bcast_tile<MR, true>(depth, a, rs_a, cs_a, b, ldb, c, ldc, cols, accumulate);
  }
}

template <int MR>
HWY_INLINE void bcast_remainder(int64_t rows, int64_t depth, const float* a, int64_t rs_a,
                                int64_t cs_a, const float* b, int64_t ldb, float* c,
                                int64_t ldc, int64_t cols, int64_t nr, bool accumulate) {
  if constexpr (MR > 1) {
    if (rows == MR - 1) {
      bcast_rows<MR - 1>(depth, a, rs_a, cs_a, b, ldb, c, ldc, cols, nr, accumulate);
    } else {
      bcast_remainder<MR - 1>(rows, depth, a, rs_a, cs_a, b, ldb, c, ldc, cols, nr, accumulate);
    }
  }
}

// C[M, N] (= or += when accumulate) A B: A(i, k) = a[i * rs_a + k * cs_a], B row-major
// [K, N] (ldb), C row-major (ldc). Column tiles outer, so a B panel is reused by all rows.
void GemmBcast(int64_t M, int64_t N, int64_t K, const float* a, int64_t rs_a, int64_t cs_a,
               const float* b, int64_t ldb, float* c, int64_t ldc, bool accumulate) {
  const hn::ScalableTag<float> d;
  const int64_t nr = 2 * static_cast<int64_t>(hn::Lanes(d));
  for (int64_t k0 = 0; k0 < K; k0 += kBcastDepth) {
    const int64_t depth = std::min(kBcastDepth, K - k0);
    const bool acc = accumulate || k0 > 0;
    const float* ak = a + k0 * cs_a;
    const float* bk = b + k0 * ldb;
    for (int64_t n0 = 0; n0 < N; n0 += nr) {
      const int64_t cols = std::min(nr, N - n0);
      int64_t m0 = 0;
      for (; m0 + kBcastRows <= M; m0 += kBcastRows)
        bcast_rows<kBcastRows>(depth, ak + m0 * rs_a, rs_a, cs_a, bk + n0, ldb,
                               c + m0 * ldc + n0, ldc, cols, nr, acc);
      if (m0 < M)
        bcast_remainder<kBcastRows>(M - m0, depth, ak + m0 * rs_a, rs_a, cs_a, bk + n0, ldb,
                                    c + m0 * ldc + n0, ldc, cols, nr, acc);
    }
  }
  if (K == 0 && !accumulate)
    for (int64_t i = 0; i < M; ++i) std::memset(c + i * ldc, 0, sizeof(float) * N);
}

// C[0..MA) x [0..MB) = dot products of rows of A and rows of B over [0, len).
template <int MA, int MB>
HWY_INLINE void dot_tile(int64_t len, const float* HWY_RESTRICT a, int64_t lda,
                         const float* HWY_RESTRICT b, int64_t ldb, float* HWY_RESTRICT c,
                         int64_t ldc) {
  const hn::ScalableTag<float> d;
  using V = hn::Vec<decltype(d)>;
  const int64_t L = static_cast<int64_t>(hn::Lanes(d));
  V acc[MA][MB];
  for (int i = 0; i < MA; ++i)
    for (int j = 0; j < MB; ++j) acc[i][j] = hn::Zero(d);
  int64_t p = 0;
  for (; p + L <= len; p += L) {
    V bv[MB];
    for (int j = 0; j < MB; ++j) bv[j] = hn::LoadU(d, b + j * ldb + p);
    for (int i = 0; i < MA; ++i) {
      const V av = hn::LoadU(d, a + i * lda + p);
      for (int j = 0; j < MB; ++j) acc[i][j] = hn::MulAdd(av, bv[j], acc[i][j]);
    }
  }
  if (p < len) {
    const auto m = hn::FirstN(d, static_cast<size_t>(len - p));
    V bv[MB];
    for (int j = 0; j < MB; ++j) bv[j] = hn::MaskedLoad(m, d, b + j * ldb + p);
    for (int i = 0; i < MA; ++i) {
      const V av = hn::MaskedLoad(m, d, a + i * lda + p);
      for (int j = 0; j < MB; ++j) acc[i][j] = hn::MulAdd(av, bv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < MA; ++i)
    for (int j = 0; j < MB; ++j) c[i * ldc + j] = hn::GetLane(hn::SumOfLanes(d, acc[i][j]));
}

template <int MA>
HWY_INLINE void dot_row_tiles(int64_t N, int64_t len, const float* a, int64_t lda,
                              const float* b, int64_t ldb, float* c, int64_t ldc) {
  int64_t j0 = 0;
  for (; j0 + kDotRowsB <= N; j0 += kDotRowsB)
    dot_tile<MA, kDotRowsB>(len, a, lda, b + j0 * ldb, ldb, c + j0, ldc);
  for (; j0 < N; ++j0) dot_tile<MA, 1>(len, a, lda, b + j0 * ldb, ldb, c + j0, ldc);
}

// C[M, N] = A B^T: C[i][j] = sum_p A[i * lda + p] B[j * ldb + p], p < len. (writes)
void GemmDot(int64_t M, int64_t N, int64_t len, const float* a, int64_t lda, const float* b,
             int64_t ldb, float* c, int64_t ldc) {
  int64_t i0 = 0;
  for (; i0 + kDotRowsA <= M; i0 += kDotRowsA)
    dot_row_tiles<kDotRowsA>(N, len, a + i0 * lda, lda, b, ldb, c + i0 * ldc, ldc);
  for (; i0 < M; ++i0) dot_row_tiles<1>(N, len, a + i0 * lda, lda, b, ldb, c + i0 * ldc, ldc);
}

}  // namespace HWY_NAMESPACE
}  // namespace qilin::kernels::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace qilin::kernels::cpu {
namespace {

HWY_EXPORT(GemmBcast);
HWY_EXPORT(GemmDot);

void gemm_bcast(int64_t M, int64_t N, int64_t K, const float* a, int64_t rs_a, int64_t cs_a,
                const float* b, int64_t ldb, float* c, int64_t ldc) {
  HWY_DYNAMIC_DISPATCH(GemmBcast)(M, N, K, a, rs_a, cs_a, b, ldb, c, ldc, false);
}
void gemm_dot(int64_t M, int64_t N, int64_t len, const float* a, int64_t lda, const float* b,
              int64_t ldb, float* c, int64_t ldc) {
  HWY_DYNAMIC_DISPATCH(GemmDot)(M, N, len, a, lda, b, ldb, c, ldc);
}

// Output columns per GEMM worth batching images for (see the file comment).
constexpr int64_t kChunkColumns = 256;

struct Dims {
  int64_t cg, og, kg;      // channels in / out per group, GEMM depth per group
  int64_t in_plane, out_plane;
  int64_t images;          // images per chunk
  int64_t chunks;
};

Dims dims_of(const Conv2dGeometry& g) {
  Dims d;
  d.cg = g.in_c / g.groups;
  d.og = g.out_c / g.groups;
  d.kg = d.cg * g.kernel_h * g.kernel_w;
  d.in_plane = g.in_h * g.in_w;
  d.out_plane = g.out_h * g.out_w;
  d.images = std::clamp<int64_t>((kChunkColumns + d.out_plane - 1) / std::max<int64_t>(d.out_plane, 1),
                                 1, std::max<int64_t>(g.batch, 1));
  d.chunks = (g.batch + d.images - 1) / d.images;
  return d;
}

// A 1x1, stride-1, unpadded conv: the image itself is its column matrix.
bool is_pointwise(const Conv2dGeometry& g) {
  return g.kernel_h == 1 && g.kernel_w == 1 && g.stride_h == 1 && g.stride_w == 1 &&
         g.pad_h == 0 && g.pad_w == 0;
}

bool is_depthwise(const Conv2dGeometry& g) { return g.groups > 1 && g.in_c == g.groups; }

// Output positions [lo, hi) along one axis whose input index o * stride - pad + k lies in
// [0, in): the rest of the row reads padding.
struct Span {
  int64_t lo, hi;
};
inline Span valid_span(int64_t k, int64_t stride, int64_t pad, int64_t in, int64_t out) {
  const int64_t first = pad - k;  // o * stride >= first
  const int64_t lo = first <= 0 ? 0 : (first + stride - 1) / stride;
  const int64_t last = in - 1 + pad - k;  // o * stride <= last
  const int64_t hi = last < 0 ? 0 : std::min(out, last / stride + 1);
  return {std::min(lo, hi), hi};
}

// Per-thread scratch kept between calls (OpenMP's pool threads persist): a fresh buffer of
// this size per call costs page faults that showed up at ~4% of a conv's time in perf.
float* scratch(int slot, size_t n) {
  thread_local std::vector<float> buffers[4];
  std::vector<float>& buf = buffers[slot];
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}
enum ScratchSlot { kColSlot = 0, kChunkSlot = 1, kPlaneSlot = 2 };

int64_t padded_h(const Conv2dGeometry& g) { return g.in_h + 2 * g.pad_h; }
int64_t padded_w(const Conv2dGeometry& g) { return g.in_w + 2 * g.pad_w; }

// dst[r * W + i] = src[r * src_stride + i] for r < rows, i < W (W known at compile time).
template <int W>
inline void copy_rows(float* __restrict dst, const float* __restrict src, int64_t rows,
                      int64_t src_stride) {
  for (int64_t r = 0; r < rows; ++r) {
    float tmp[W];
    std::memcpy(tmp, src + r * src_stride, sizeof(tmp));
    std::memcpy(dst + r * W, tmp, sizeof(tmp));
  }
}

// Rows (c, kh, kw) of channels [c0, c0 + cg) of one image into col (row stride ld_col):
// col[(c * KH + kh) * KW + kw][oh * OW + ow] = x[c0 + c][oh sh - ph + kh][ow sw - pw + kw],
// zero in the padding. Each channel is first copied into a zero-bordered plane, so the
// copies below have no bounds logic (rows of a 7x7 output are too short for memcpy calls:
// that version spent 30% of a 64-channel 7x7 conv in im2col). (writes)
void im2col(float* col, int64_t ld_col, const float* x_img, int64_t c0, int64_t cg,
            const Conv2dGeometry& g) {
  const int64_t hp = padded_h(g), wp = padded_w(g);
  const bool padded = g.pad_h > 0 || g.pad_w > 0;
  float* plane = padded ? scratch(kPlaneSlot, static_cast<size_t>(hp * wp)) : nullptr;
  if (padded) std::memset(plane, 0, sizeof(float) * static_cast<size_t>(hp * wp));
  for (int64_t c = 0; c < cg; ++c) {
    const float* xc = x_img + (c0 + c) * g.in_h * g.in_w;
    if (padded) {
      for (int64_t ih = 0; ih < g.in_h; ++ih) {
        float* dst = plane + (ih + g.pad_h) * wp + g.pad_w;
        const float* src = xc + ih * g.in_w;
        for (int64_t iw = 0; iw < g.in_w; ++iw) dst[iw] = src[iw];
      }
      xc = plane;
    }
    for (int64_t kh = 0; kh < g.kernel_h; ++kh) {
      for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
        float* dst = col + ((c * g.kernel_h + kh) * g.kernel_w + kw) * ld_col;
        const float* src = xc + kh * wp + kw;
        if (g.stride_w == 1) {
          switch (g.out_w) {  // fixed widths compile to a few vector moves per row
            case 7: copy_rows<7>(dst, src, g.out_h, g.stride_h * wp); break;
            case 14: copy_rows<14>(dst, src, g.out_h, g.stride_h * wp); break;
            case 28: copy_rows<28>(dst, src, g.out_h, g.stride_h * wp); break;
            default:
              for (int64_t oh = 0; oh < g.out_h; ++oh)
                for (int64_t ow = 0; ow < g.out_w; ++ow)
                  dst[oh * g.out_w + ow] = src[oh * g.stride_h * wp + ow];
          }
        } else {
          for (int64_t oh = 0; oh < g.out_h; ++oh)
            for (int64_t ow = 0; ow < g.out_w; ++ow)
              dst[oh * g.out_w + ow] = src[oh * g.stride_h * wp + ow * g.stride_w];
        }
      }
    }
  }
}

// The adjoint of im2col: every column entry is added back to the input pixel it was read
// from, through a zero-bordered plane whose interior is then copied to dx; entries that
// read padding are dropped. (writes channels [c0, c0 + cg) of dx_img)
void col2im(float* dx_img, const float* col, int64_t ld_col, int64_t c0, int64_t cg,
            const Conv2dGeometry& g) {
  const int64_t hp = padded_h(g), wp = padded_w(g);
  float* plane = scratch(kPlaneSlot, static_cast<size_t>(hp * wp));
  for (int64_t c = 0; c < cg; ++c) {
    std::memset(plane, 0, sizeof(float) * static_cast<size_t>(hp * wp));
    for (int64_t kh = 0; kh < g.kernel_h; ++kh) {
      for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
        const float* src = col + ((c * g.kernel_h + kh) * g.kernel_w + kw) * ld_col;
        for (int64_t oh = 0; oh < g.out_h; ++oh) {
          float* d = plane + (oh * g.stride_h + kh) * wp + kw;
          const float* s = src + oh * g.out_w;
          if (g.stride_w == 1) {
            for (int64_t ow = 0; ow < g.out_w; ++ow) d[ow] += s[ow];
          } else {
            for (int64_t ow = 0; ow < g.out_w; ++ow) d[ow * g.stride_w] += s[ow];
          }
        }
      }
    }
    float* dxc = dx_img + (c0 + c) * g.in_h * g.in_w;
    for (int64_t ih = 0; ih < g.in_h; ++ih) {
      const float* src = plane + (ih + g.pad_h) * wp + g.pad_w;
      float* dst = dxc + ih * g.in_w;
      for (int64_t iw = 0; iw < g.in_w; ++iw) dst[iw] = src[iw];
    }
  }
}

// dY of images [n0, n0 + nb) laid out as [O, nb * P] (row o holds image b at column b * P).
void gather_chunk(float* dst, const float* src, int64_t n0, int64_t nb, int64_t channels,
                  int64_t plane) {
  const int64_t ld = nb * plane;
  for (int64_t b = 0; b < nb; ++b)
    for (int64_t o = 0; o < channels; ++o)
      std::memcpy(dst + o * ld + b * plane, src + ((n0 + b) * channels + o) * plane,
                  sizeof(float) * static_cast<size_t>(plane));
}

// Work of one chunk in parallel_for's units (about 8 multiply-adds per streamed element).
int64_t chunk_cost(const Conv2dGeometry& g, const Dims& d) {
  return std::max<int64_t>(1, g.out_c * d.kg * d.images * d.out_plane / 8);
}

// ---- depthwise (one input channel per group): direct loops over planes ----
// Output channel o reads input channel o / og (og = out_c / in_c output channels per input).

void depthwise_forward(float* y, const float* x, const float* w, const float* bias,
                       const Conv2dGeometry& g, const Dims& d) {
  const int64_t kk = g.kernel_h * g.kernel_w;
  parallel_for(g.batch * g.out_c, d.out_plane * kk, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t n = p / g.out_c, o = p % g.out_c;
      const float* xc = x + (n * g.in_c + o / d.og) * d.in_plane;
      const float* wo = w + o * kk;
      float* yp = y + p * d.out_plane;
      const float b = bias != nullptr ? bias[o] : 0.0f;
      for (int64_t i = 0; i < d.out_plane; ++i) yp[i] = b;
      for (int64_t kh = 0; kh < g.kernel_h; ++kh) {
        const Span rows = valid_span(kh, g.stride_h, g.pad_h, g.in_h, g.out_h);
        for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
          const Span cols = valid_span(kw, g.stride_w, g.pad_w, g.in_w, g.out_w);
          const float wv = wo[kh * g.kernel_w + kw];
          const int64_t shift = kw - g.pad_w;
          for (int64_t oh = rows.lo; oh < rows.hi; ++oh) {
            const float* src = xc + (oh * g.stride_h - g.pad_h + kh) * g.in_w;
            float* dst = yp + oh * g.out_w;
#pragma omp simd
            for (int64_t ow = cols.lo; ow < cols.hi; ++ow)
              dst[ow] += wv * src[ow * g.stride_w + shift];
          }
        }
      }
    }
  });
}

void depthwise_backward_input(float* dx, const float* dy, const float* w, const Conv2dGeometry& g,
                              const Dims& d) {
  const int64_t kk = g.kernel_h * g.kernel_w;
  parallel_for(g.batch * g.in_c, d.og * d.out_plane * kk, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t n = p / g.in_c, c = p % g.in_c;
      float* dxc = dx + p * d.in_plane;
      std::memset(dxc, 0, sizeof(float) * static_cast<size_t>(d.in_plane));
      for (int64_t o = c * d.og; o < (c + 1) * d.og; ++o) {
        const float* dyp = dy + (n * g.out_c + o) * d.out_plane;
        for (int64_t kh = 0; kh < g.kernel_h; ++kh) {
          const Span rows = valid_span(kh, g.stride_h, g.pad_h, g.in_h, g.out_h);
          for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
            const Span cols = valid_span(kw, g.stride_w, g.pad_w, g.in_w, g.out_w);
            const float wv = w[o * kk + kh * g.kernel_w + kw];
            const int64_t shift = kw - g.pad_w;
            for (int64_t oh = rows.lo; oh < rows.hi; ++oh) {
              float* dst = dxc + (oh * g.stride_h - g.pad_h + kh) * g.in_w;
              const float* src = dyp + oh * g.out_w;
              for (int64_t ow = cols.lo; ow < cols.hi; ++ow)
                dst[ow * g.stride_w + shift] += wv * src[ow];
            }
          }
        }
      }
    }
  });
}

// One output channel per item; its sums run over the batch in order (deterministic).
void depthwise_backward_weight(float* dw, float* dbias, const float* dy, const float* x,
                               const Conv2dGeometry& g, const Dims& d) {
  const int64_t kk = g.kernel_h * g.kernel_w;
  parallel_for(g.out_c, g.batch * d.out_plane * (kk + 1), [&](int64_t o0, int64_t o1) {
    for (int64_t o = o0; o < o1; ++o) {
      const int64_t c = o / d.og;
      if (dbias != nullptr) {
        double sum = 0;  // one double accumulator per channel: N * P terms
        for (int64_t n = 0; n < g.batch; ++n) {
          const float* dyp = dy + (n * g.out_c + o) * d.out_plane;
          float s = 0.0f;
#pragma omp simd reduction(+ : s)
          for (int64_t i = 0; i < d.out_plane; ++i) s += dyp[i];
          sum += s;
        }
        dbias[o] = static_cast<float>(sum);
      }
      if (dw == nullptr) continue;
      for (int64_t kh = 0; kh < g.kernel_h; ++kh) {
        const Span rows = valid_span(kh, g.stride_h, g.pad_h, g.in_h, g.out_h);
        for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
          const Span cols = valid_span(kw, g.stride_w, g.pad_w, g.in_w, g.out_w);
          const int64_t shift = kw - g.pad_w;
          float sum = 0.0f;
          for (int64_t n = 0; n < g.batch; ++n) {
            const float* xc = x + (n * g.in_c + c) * d.in_plane;
            const float* dyp = dy + (n * g.out_c + o) * d.out_plane;
            for (int64_t oh = rows.lo; oh < rows.hi; ++oh) {
              const float* xr = xc + (oh * g.stride_h - g.pad_h + kh) * g.in_w;
              const float* dr = dyp + oh * g.out_w;
#pragma omp simd reduction(+ : sum)
              for (int64_t ow = cols.lo; ow < cols.hi; ++ow)
                sum += dr[ow] * xr[ow * g.stride_w + shift];
            }
          }
          dw[o * kk + kh * g.kernel_w + kw] = sum;
        }
      }
    }
  });
}

void im2col_conv2d_forward(float* y, const float* x, const float* w, const float* bias,
                           const Conv2dGeometry& g) {
  const Dims d = dims_of(g);
  if (g.batch == 0 || d.out_plane == 0 || g.out_c == 0) return;
  if (is_depthwise(g)) return depthwise_forward(y, x, w, bias, g, d);
  const int64_t P = d.out_plane;
  const bool direct = is_pointwise(g) && d.images == 1;  // x is the column matrix
  parallel_for(d.chunks, chunk_cost(g, d), [&](int64_t c_begin, int64_t c_end) {
    float* col = direct ? nullptr : scratch(kColSlot, static_cast<size_t>(d.kg * d.images * P));
    float* out = d.images > 1 ? scratch(kChunkSlot, static_cast<size_t>(g.out_c * d.images * P))
                              : nullptr;
    for (int64_t chunk = c_begin; chunk < c_end; ++chunk) {
      const int64_t n0 = chunk * d.images, nb = std::min(d.images, g.batch - n0);
      const int64_t ld = nb * P;
      for (int64_t gi = 0; gi < g.groups; ++gi) {
        const float* colp = col;
        if (direct) {
          colp = x + (n0 * g.in_c + gi * d.cg) * d.in_plane;
        } else {
          for (int64_t b = 0; b < nb; ++b)
            im2col(col + b * P, ld, x + (n0 + b) * g.in_c * d.in_plane, gi * d.cg, d.cg, g);
        }
        float* outp = d.images > 1 ? out + gi * d.og * ld : y + (n0 * g.out_c + gi * d.og) * P;
        gemm_bcast(d.og, ld, d.kg, w + gi * d.og * d.kg, d.kg, 1, colp, ld, outp, ld);
      }
      if (d.images > 1) {  // [O, nb * P] -> [nb, O, P], adding the bias on the way
        for (int64_t b = 0; b < nb; ++b)
          for (int64_t o = 0; o < g.out_c; ++o) {
            const float* src = out + o * ld + b * P;
            float* dst = y + ((n0 + b) * g.out_c + o) * P;
            const float bo = bias != nullptr ? bias[o] : 0.0f;
#pragma omp simd
            for (int64_t i = 0; i < P; ++i) dst[i] = src[i] + bo;
          }
      } else if (bias != nullptr) {
        for (int64_t o = 0; o < g.out_c; ++o) {
          float* dst = y + (n0 * g.out_c + o) * P;
#pragma omp simd
          for (int64_t i = 0; i < P; ++i) dst[i] += bias[o];
        }
      }
    }
  });
}

void im2col_conv2d_backward_input(float* dx, const float* dy, const float* w,
                                  const Conv2dGeometry& g) {
  const Dims d = dims_of(g);
  if (g.batch == 0 || d.in_plane == 0 || g.in_c == 0) return;
  if (is_depthwise(g)) return depthwise_backward_input(dx, dy, w, g, d);
  const int64_t P = d.out_plane;
  if (P == 0 || g.out_c == 0) {
    std::memset(dx, 0, sizeof(float) * static_cast<size_t>(g.batch * g.in_c * d.in_plane));
    return;
  }
  const bool direct = is_pointwise(g) && d.images == 1;  // the GEMM writes dx itself
  parallel_for(d.chunks, chunk_cost(g, d), [&](int64_t c_begin, int64_t c_end) {
    float* col = direct ? nullptr : scratch(kColSlot, static_cast<size_t>(d.kg * d.images * P));
    float* dyc = d.images > 1 ? scratch(kChunkSlot, static_cast<size_t>(g.out_c * d.images * P))
                              : nullptr;
    for (int64_t chunk = c_begin; chunk < c_end; ++chunk) {
      const int64_t n0 = chunk * d.images, nb = std::min(d.images, g.batch - n0);
      const int64_t ld = nb * P;
      const float* dyp = dy + n0 * g.out_c * P;
      if (d.images > 1) {
        gather_chunk(dyc, dy, n0, nb, g.out_c, P);
        dyp = dyc;
      }
      float* dx_chunk = dx + n0 * g.in_c * d.in_plane;
      for (int64_t gi = 0; gi < g.groups; ++gi) {
        const float* wg = w + gi * d.og * d.kg;
        if (direct) {
          gemm_bcast(d.kg, ld, d.og, wg, 1, d.kg, dyp + gi * d.og * ld, ld,
                     dx_chunk + gi * d.cg * d.in_plane, ld);
          continue;
        }
        gemm_bcast(d.kg, ld, d.og, wg, 1, d.kg, dyp + gi * d.og * ld, ld, col, ld);
        for (int64_t b = 0; b < nb; ++b)
          col2im(dx_chunk + b * g.in_c * d.in_plane, col + b * P, ld, gi * d.cg, d.cg, g);
      }
    }
  });
}

void im2col_conv2d_backward_weight(float* dw, float* dbias, const float* dy, const float* x,
                                   const Conv2dGeometry& g) {
  const Dims d = dims_of(g);
  const int64_t w_size = g.out_c * d.kg;
  const int64_t P = d.out_plane;
  if (g.batch == 0 || P == 0) {
    if (dw != nullptr) std::memset(dw, 0, sizeof(float) * static_cast<size_t>(w_size));
    if (dbias != nullptr) std::memset(dbias, 0, sizeof(float) * static_cast<size_t>(g.out_c));
    return;
  }
  if (is_depthwise(g)) return depthwise_backward_weight(dw, dbias, dy, x, g, d);
  const bool direct = is_pointwise(g) && d.images == 1;
  // One partial per chunk, summed below in chunk order.
  std::vector<float> partial_w(dw != nullptr ? static_cast<size_t>(d.chunks * w_size) : 0);
  std::vector<float> partial_b(dbias != nullptr ? static_cast<size_t>(d.chunks * g.out_c) : 0);
  parallel_for(d.chunks, chunk_cost(g, d), [&](int64_t c_begin, int64_t c_end) {
    float* col = direct || dw == nullptr
                     ? nullptr
                     : scratch(kColSlot, static_cast<size_t>(d.kg * d.images * P));
    float* dyc = d.images > 1 ? scratch(kChunkSlot, static_cast<size_t>(g.out_c * d.images * P))
                              : nullptr;
    for (int64_t chunk = c_begin; chunk < c_end; ++chunk) {
      const int64_t n0 = chunk * d.images, nb = std::min(d.images, g.batch - n0);
      const int64_t ld = nb * P;
      const float* dyp = dy + n0 * g.out_c * P;
      if (d.images > 1) {
        gather_chunk(dyc, dy, n0, nb, g.out_c, P);
        dyp = dyc;
      }
      if (dbias != nullptr) {
        for (int64_t o = 0; o < g.out_c; ++o) {
          const float* row = dyp + o * ld;
          float s = 0.0f;
#pragma omp simd reduction(+ : s)
          for (int64_t i = 0; i < ld; ++i) s += row[i];
          partial_b[chunk * g.out_c + o] = s;
        }
      }
      if (dw == nullptr) continue;
      for (int64_t gi = 0; gi < g.groups; ++gi) {
        const float* colp = col;
        if (direct) {
          colp = x + (n0 * g.in_c + gi * d.cg) * d.in_plane;
        } else {
          for (int64_t b = 0; b < nb; ++b)
            im2col(col + b * P, ld, x + (n0 + b) * g.in_c * d.in_plane, gi * d.cg, d.cg, g);
        }
        gemm_dot(d.og, d.kg, ld, dyp + gi * d.og * ld, ld, colp, ld,
                 partial_w.data() + chunk * w_size + gi * d.og * d.kg, d.kg);
      }
    }
  });
  auto reduce = [&](float* out, const std::vector<float>& parts, int64_t size) {
    parallel_for(size, d.chunks, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) out[i] = 0.0f;
      for (int64_t chunk = 0; chunk < d.chunks; ++chunk) {
        const float* p = parts.data() + chunk * size;
#pragma omp simd
        for (int64_t i = i0; i < i1; ++i) out[i] += p[i];
      }
    });
  };
  if (dw != nullptr) reduce(dw, partial_w, w_size);
  if (dbias != nullptr) reduce(dbias, partial_b, g.out_c);
}

ConvImpl impl_from_environment() {
  const char* value = std::getenv("QILIN_CONV_IMPL");
  if (value == nullptr || *value == '\0') return ConvImpl::kOneDnn;
  const std::string name(value);
  if (name == "onednn") return ConvImpl::kOneDnn;
  if (name == "im2col") return ConvImpl::kIm2col;
  QILIN_FAIL("QILIN_CONV_IMPL=", name, ": expected one of im2col, onednn");
}

std::atomic<ConvImpl>& default_impl() {
  static std::atomic<ConvImpl> impl{impl_from_environment()};
  return impl;
}

// oneDNN for non-degenerate shapes when selected; a zero-sized dimension (which oneDNN's
// primitives reject or treat unevenly) goes to im2col, which handles every such case.
bool use_onednn(const Conv2dGeometry& g) {
  const ConvImpl impl = g.impl == ConvImpl::kDefault ? default_conv_impl() : g.impl;
  return impl == ConvImpl::kOneDnn && g.batch > 0 && g.in_c > 0 && g.out_c > 0 &&
         g.in_h * g.in_w > 0 && g.out_h * g.out_w > 0;
}

}  // namespace

ConvImpl default_conv_impl() { return default_impl().load(std::memory_order_relaxed); }

void set_default_conv_impl(ConvImpl impl) {
  QILIN_CHECK(impl != ConvImpl::kDefault, "set_default_conv_impl: pass kIm2col or kOneDnn");
  default_impl().store(impl, std::memory_order_relaxed);
}

void conv2d_forward(float* y, const float* x, const float* w, const float* bias,
                    const Conv2dGeometry& g) {
  if (use_onednn(g)) return onednn_conv2d_forward(y, x, w, bias, g);
  im2col_conv2d_forward(y, x, w, bias, g);
}

void conv2d_backward(float* dx, float* dw, float* dbias, const float* dy, const float* x,
                     const float* w, const Conv2dGeometry& g) {
  if (use_onednn(g)) return onednn_conv2d_backward(dx, dw, dbias, dy, x, w, g);
  if (dx != nullptr) im2col_conv2d_backward_input(dx, dy, w, g);
  if (dw != nullptr || dbias != nullptr) im2col_conv2d_backward_weight(dw, dbias, dy, x, g);
}

void conv2d_backward_input(float* dx, const float* dy, const float* w, const Conv2dGeometry& g) {
  conv2d_backward(dx, nullptr, nullptr, dy, nullptr, w, g);
}

void conv2d_backward_weight(float* dw, float* dbias, const float* dy, const float* x,
                            const Conv2dGeometry& g) {
  conv2d_backward(nullptr, dw, dbias, dy, x, nullptr, g);
}

}  // namespace qilin::kernels::cpu
#endif  // HWY_ONCE
