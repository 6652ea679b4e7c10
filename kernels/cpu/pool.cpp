// 2-D pooling kernels. Parallel over planes (N * C); within a plane, forward walks output
// windows and backward zeroes the input-gradient plane, then scatters each output's
// gradient into its window, so no two threads touch the same element.
#include "kernels/cpu/pool.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/cpu/parallel.h"

namespace qilin::kernels::cpu {
namespace {

// One window of a padded pooling: [h0, h1) x [w0, w1) clipped to the input, and the divisor
// of avg_pool2d (PyTorch's AvgPoolKernel.cpp: pool_size before clipping to the input).
struct Window {
  int64_t h0, h1, w0, w1;
  int64_t divisor;
};

inline Window window(const Pool2dGeometry& g, int64_t oh, int64_t ow, bool count_include_pad) {
  int64_t h0 = oh * g.stride_h - g.pad_h, w0 = ow * g.stride_w - g.pad_w;
  int64_t h1 = std::min(h0 + g.kernel_h, g.in_h + g.pad_h);
  int64_t w1 = std::min(w0 + g.kernel_w, g.in_w + g.pad_w);
  const int64_t padded_size = (h1 - h0) * (w1 - w0);
  h0 = std::max<int64_t>(h0, 0);
  w0 = std::max<int64_t>(w0, 0);
  h1 = std::min(h1, g.in_h);
  w1 = std::min(w1, g.in_w);
  const int64_t divisor = count_include_pad ? padded_size : (h1 - h0) * (w1 - w0);
  return {h0, h1, w0, w1, std::max<int64_t>(divisor, 1)};
}

// Adaptive bin i of `out` bins over `in`: [floor(i in / out), ceil((i + 1) in / out)).
inline int64_t bin_start(int64_t i, int64_t in, int64_t out) { return (i * in) / out; }
inline int64_t bin_end(int64_t i, int64_t in, int64_t out) {
  return ((i + 1) * in + out - 1) / out;
}

inline int64_t plane_in(const Pool2dGeometry& g) { return g.in_h * g.in_w; }
inline int64_t plane_out(const Pool2dGeometry& g) { return g.out_h * g.out_w; }

}  // namespace

void max_pool2d_forward(float* y, int32_t* argmax, const float* x, const Pool2dGeometry& g) {
  const int64_t cost = plane_out(g) * g.kernel_h * g.kernel_w;
  parallel_for(g.planes, cost, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const float* xp = x + p * plane_in(g);
      float* yp = y + p * plane_out(g);
      int32_t* ap = argmax + p * plane_out(g);
      for (int64_t oh = 0; oh < g.out_h; ++oh) {
        for (int64_t ow = 0; ow < g.out_w; ++ow) {
          const Window win = window(g, oh, ow, true);
          float best = -std::numeric_limits<float>::infinity();
          int64_t best_i = win.h0 * g.in_w + win.w0;
          for (int64_t ih = win.h0; ih < win.h1; ++ih) {
            for (int64_t iw = win.w0; iw < win.w1; ++iw) {
              const float v = xp[ih * g.in_w + iw];
              // PyTorch's MaxPoolKernel: strictly greater keeps the first maximum; NaN wins.
              if (v > best || std::isnan(v)) {
                best = v;
                best_i = ih * g.in_w + iw;
              }
            }
          }
          yp[oh * g.out_w + ow] = best;
          ap[oh * g.out_w + ow] = static_cast<int32_t>(best_i);
        }
      }
    }
  });
}

void max_pool2d_backward(float* dx, const float* dy, const int32_t* argmax,
                         const Pool2dGeometry& g) {
  parallel_for(g.planes, plane_in(g) + plane_out(g), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      float* dxp = dx + p * plane_in(g);
      const float* dyp = dy + p * plane_out(g);
      const int32_t* ap = argmax + p * plane_out(g);
      std::memset(dxp, 0, sizeof(float) * static_cast<size_t>(plane_in(g)));
      for (int64_t o = 0; o < plane_out(g); ++o) dxp[ap[o]] += dyp[o];
    }
  });
}

void avg_pool2d_forward(float* y, const float* x, const Pool2dGeometry& g,
                        bool count_include_pad) {
  const int64_t cost = plane_out(g) * g.kernel_h * g.kernel_w;
  parallel_for(g.planes, cost, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const float* xp = x + p * plane_in(g);
      float* yp = y + p * plane_out(g);
      for (int64_t oh = 0; oh < g.out_h; ++oh) {
        for (int64_t ow = 0; ow < g.out_w; ++ow) {
          const Window win = window(g, oh, ow, count_include_pad);
          float sum = 0.0f;
          for (int64_t ih = win.h0; ih < win.h1; ++ih)
            for (int64_t iw = win.w0; iw < win.w1; ++iw) sum += xp[ih * g.in_w + iw];
          yp[oh * g.out_w + ow] = sum / static_cast<float>(win.divisor);
        }
      }
    }
  });
}

void avg_pool2d_backward(float* dx, const float* dy, const Pool2dGeometry& g,
                         bool count_include_pad) {
  const int64_t cost = plane_in(g) + plane_out(g) * g.kernel_h * g.kernel_w;
  parallel_for(g.planes, cost, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      float* dxp = dx + p * plane_in(g);
      const float* dyp = dy + p * plane_out(g);
      std::memset(dxp, 0, sizeof(float) * static_cast<size_t>(plane_in(g)));
      for (int64_t oh = 0; oh < g.out_h; ++oh) {
        for (int64_t ow = 0; ow < g.out_w; ++ow) {
          const Window win = window(g, oh, ow, count_include_pad);
          const float share = dyp[oh * g.out_w + ow] / static_cast<float>(win.divisor);
          for (int64_t ih = win.h0; ih < win.h1; ++ih)
            for (int64_t iw = win.w0; iw < win.w1; ++iw) dxp[ih * g.in_w + iw] += share;
        }
      }
    }
  });
}

void adaptive_avg_pool2d_forward(float* y, const float* x, const Pool2dGeometry& g) {
  parallel_for(g.planes, plane_in(g) + plane_out(g), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const float* xp = x + p * plane_in(g);
      float* yp = y + p * plane_out(g);
      for (int64_t oh = 0; oh < g.out_h; ++oh) {
        const int64_t h0 = bin_start(oh, g.in_h, g.out_h), h1 = bin_end(oh, g.in_h, g.out_h);
        for (int64_t ow = 0; ow < g.out_w; ++ow) {
          const int64_t w0 = bin_start(ow, g.in_w, g.out_w), w1 = bin_end(ow, g.in_w, g.out_w);
          float sum = 0.0f;
          for (int64_t ih = h0; ih < h1; ++ih)
            for (int64_t iw = w0; iw < w1; ++iw) sum += xp[ih * g.in_w + iw];
          yp[oh * g.out_w + ow] = sum / static_cast<float>((h1 - h0) * (w1 - w0));
        }
      }
    }
  });
}

void adaptive_avg_pool2d_backward(float* dx, const float* dy, const Pool2dGeometry& g) {
  parallel_for(g.planes, 2 * plane_in(g) + plane_out(g), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      float* dxp = dx + p * plane_in(g);
      const float* dyp = dy + p * plane_out(g);
      std::memset(dxp, 0, sizeof(float) * static_cast<size_t>(plane_in(g)));
      for (int64_t oh = 0; oh < g.out_h; ++oh) {
        const int64_t h0 = bin_start(oh, g.in_h, g.out_h), h1 = bin_end(oh, g.in_h, g.out_h);
        for (int64_t ow = 0; ow < g.out_w; ++ow) {
          const int64_t w0 = bin_start(ow, g.in_w, g.out_w), w1 = bin_end(ow, g.in_w, g.out_w);
          const float share =
              dyp[oh * g.out_w + ow] / static_cast<float>((h1 - h0) * (w1 - w0));
          for (int64_t ih = h0; ih < h1; ++ih)
            for (int64_t iw = w0; iw < w1; ++iw) dxp[ih * g.in_w + iw] += share;
        }
      }
    }
  });
}

}  // namespace qilin::kernels::cpu
