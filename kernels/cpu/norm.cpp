// Layer norm and 2-D batch norm kernels (see norm.h). Memory-bound: plain loops that the
// compiler vectorizes (omp simd), no Highway needed. Layer norm runs rows in parallel, each
// row a few passes in L1; its dweight/dbias are per-thread partial sums added in thread
// order (deterministic for a given thread count). Batch norm runs channels in parallel,
// each channel's n planes a few passes in L2; channel sums are double over float plane sums.
#include "kernels/cpu/norm.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cpu/parallel.h"

namespace qilin::kernels::cpu {
namespace {

float row_sum(const float* x, int64_t n) {
  float s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += x[i];
  return s;
}

float row_centered_sq_sum(const float* x, float mean, int64_t n) {
  float s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += (x[i] - mean) * (x[i] - mean);
  return s;
}

// Splits [0, rows) over a team and calls fn(thread, begin, end); returns the team size used.
template <typename Fn>
int parallel_rows(int64_t rows, int64_t cost_per_row, Fn&& fn) {
  const int64_t work = rows * std::max<int64_t>(cost_per_row, 1);
  int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  threads = static_cast<int>(std::min<int64_t>(threads, std::max<int64_t>(1, work / kMinParallelWork)));
  if (threads <= 1) {
    fn(0, int64_t{0}, rows);
    return 1;
  }
#pragma omp parallel num_threads(threads)
  {
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t chunk = (rows + nt - 1) / nt;
    const int64_t begin = std::min(rows, t * chunk), end = std::min(rows, begin + chunk);
    fn(static_cast<int>(t), begin, end);
  }
  return threads;
}

}  // namespace

void layer_norm_forward(float* y, float* mean, float* rstd, const float* x, const float* weight,
                        const float* bias, int64_t rows, int64_t cols, float eps) {
  parallel_for(rows, cols * 3, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * cols;
      float* yr = y + r * cols;
      // Two passes (mean, then centred squares): no cancellation when |mean| >> std.
      const float mu = row_sum(xr, cols) / static_cast<float>(cols);
      const float var = row_centered_sq_sum(xr, mu, cols) / static_cast<float>(cols);
      const float rs = 1.0f / std::sqrt(var + eps);
      mean[r] = mu;
      rstd[r] = rs;
      if (weight && bias) {
#pragma omp simd
        for (int64_t c = 0; c < cols; ++c) yr[c] = (xr[c] - mu) * rs * weight[c] + bias[c];
      } else if (weight) {
#pragma omp simd
        for (int64_t c = 0; c < cols; ++c) yr[c] = (xr[c] - mu) * rs * weight[c];
      } else if (bias) {
#pragma omp simd
        for (int64_t c = 0; c < cols; ++c) yr[c] = (xr[c] - mu) * rs + bias[c];
      } else {
#pragma omp simd
        for (int64_t c = 0; c < cols; ++c) yr[c] = (xr[c] - mu) * rs;
      }
    }
  });
}

namespace {

// Rows [r0, r1) of the layer-norm backward; kWeight: whether weight is given (a template
// parameter so every inner loop is branch-free and vectorizes). pw, pb: this thread's
// dweight / dbias partial sums (+=), or null.
template <bool kWeight>
void layer_norm_backward_rows(float* dx, float* pw, float* pb, const float* dy, const float* x,
                              const float* mean, const float* rstd, const float* weight,
                              int64_t r0, int64_t r1, int64_t cols) {
  const float inv_cols = 1.0f / static_cast<float>(cols);
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = x + r * cols;
    const float* dyr = dy + r * cols;
    const float mu = mean[r], rs = rstd[r];
    if (pw) {
#pragma omp simd
      for (int64_t c = 0; c < cols; ++c) {
        pw[c] += dyr[c] * ((xr[c] - mu) * rs);
        pb[c] += dyr[c];
      }
    }
    if (!dx) continue;
    // g = dy * weight; a = mean(g), b = mean(g * xhat).
    float sum_g = 0, sum_g_xhat = 0;
#pragma omp simd reduction(+ : sum_g, sum_g_xhat)
    for (int64_t c = 0; c < cols; ++c) {
      const float g = kWeight ? dyr[c] * weight[c] : dyr[c];
      sum_g += g;
      sum_g_xhat += g * ((xr[c] - mu) * rs);
    }
    const float a = sum_g * inv_cols, b = sum_g_xhat * inv_cols;
    float* dxr = dx + r * cols;
#pragma omp simd
    for (int64_t c = 0; c < cols; ++c) {
      const float g = kWeight ? dyr[c] * weight[c] : dyr[c];
      dxr[c] = rs * (g - a - ((xr[c] - mu) * rs) * b);
    }
  }
}

}  // namespace

void layer_norm_backward(float* dx, float* dweight, float* dbias, const float* dy, const float* x,
                         const float* mean, const float* rstd, const float* weight, int64_t rows,
                         int64_t cols) {
  const bool param_grads = dweight || dbias;
  const int max_threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  // Per thread: dweight partial [cols] then dbias partial [cols].
  std::vector<float> partial(param_grads ? static_cast<size_t>(max_threads) * 2 * cols : 0, 0.0f);
  const int used = parallel_rows(rows, cols * 4, [&](int t, int64_t r0, int64_t r1) {
    float* pw = param_grads ? partial.data() + static_cast<size_t>(t) * 2 * cols : nullptr;
    float* pb = param_grads ? pw + cols : nullptr;
    if (weight) {
      layer_norm_backward_rows<true>(dx, pw, pb, dy, x, mean, rstd, weight, r0, r1, cols);
    } else {
      layer_norm_backward_rows<false>(dx, pw, pb, dy, x, mean, rstd, weight, r0, r1, cols);
    }
  });
  if (!param_grads) return;
  for (int64_t c = 0; c < cols; ++c) {
    float w = 0, b = 0;
    for (int t = 0; t < used; ++t) {
      w += partial[static_cast<size_t>(t) * 2 * cols + c];
      b += partial[static_cast<size_t>(t) * 2 * cols + cols + c];
    }
    if (dweight) dweight[c] = w;
    if (dbias) dbias[c] = b;
  }
}

void batch_norm2d_forward(float* y, float* mean, float* rstd, const float* x, const float* weight,
                          const float* bias, float* running_mean, float* running_var, int64_t n,
                          int64_t channels, int64_t hw, float eps, bool training, float factor) {
  const int64_t count = n * hw;  // elements per channel
  const int64_t plane_stride = channels * hw;
  parallel_for(channels, count * 3, [&](int64_t c0, int64_t c1) {
    for (int64_t ch = c0; ch < c1; ++ch) {
      const float* xc = x + ch * hw;
      float mu, rs;
      if (training) {
        double sum = 0;
        for (int64_t i = 0; i < n; ++i) sum += row_sum(xc + i * plane_stride, hw);
        mu = static_cast<float>(sum / static_cast<double>(count));
        double sq = 0;
        for (int64_t i = 0; i < n; ++i) sq += row_centered_sq_sum(xc + i * plane_stride, mu, hw);
        const double var = sq / static_cast<double>(count);  // biased: used to normalise
        rs = static_cast<float>(1.0 / std::sqrt(var + eps));
        if (running_mean) running_mean[ch] = (1.0f - factor) * running_mean[ch] + factor * mu;
        if (running_var) {
          // Unbiased for the running estimate (count > 1: the front-end checks).
          const double unbiased = sq / static_cast<double>(count - 1);
          running_var[ch] =
              static_cast<float>((1.0 - factor) * running_var[ch] + factor * unbiased);
        }
      } else {
        mu = running_mean[ch];
        rs = static_cast<float>(1.0 / std::sqrt(static_cast<double>(running_var[ch]) + eps));
      }
      mean[ch] = mu;
      rstd[ch] = rs;
      // y = x * scale + shift: one FMA per element.
      const float scale = (weight ? weight[ch] : 1.0f) * rs;
      const float shift = (bias ? bias[ch] : 0.0f) - mu * scale;
      for (int64_t i = 0; i < n; ++i) {
        const float* xp = xc + i * plane_stride;
        float* yp = y + ch * hw + i * plane_stride;
#pragma omp simd
        for (int64_t k = 0; k < hw; ++k) yp[k] = xp[k] * scale + shift;
      }
    }
  });
}

void batch_norm2d_backward(float* dx, float* dweight, float* dbias, const float* dy,
                           const float* x, const float* mean, const float* rstd,
                           const float* weight, int64_t n, int64_t channels, int64_t hw,
                           bool training) {
  const int64_t count = n * hw;
  const int64_t plane_stride = channels * hw;
  parallel_for(channels, count * 3, [&](int64_t c0, int64_t c1) {
    for (int64_t ch = c0; ch < c1; ++ch) {
      const float mu = mean[ch], rs = rstd[ch];
      const float w = weight ? weight[ch] : 1.0f;
      const bool need_sums = dweight || dbias || (dx && training);
      double sum_dy = 0, sum_dy_xmu = 0;  // sum dy, sum dy (x - mean)
      if (need_sums) {
        for (int64_t i = 0; i < n; ++i) {
          const int64_t off = ch * hw + i * plane_stride;
          const float* xp = x + off;
          const float* dyp = dy + off;
          float s = 0, sx = 0;
#pragma omp simd reduction(+ : s, sx)
          for (int64_t k = 0; k < hw; ++k) {
            s += dyp[k];
            sx += dyp[k] * (xp[k] - mu);
          }
          sum_dy += s;
          sum_dy_xmu += sx;
        }
      }
      if (dbias) dbias[ch] = static_cast<float>(sum_dy);
      if (dweight) dweight[ch] = static_cast<float>(sum_dy_xmu * rs);
      if (!dx) continue;
      // training: dx = k dy + kx (x - mean) + k0, with k = w rstd,
      //   kx = -k rstd^2 sum(dy (x - mean)) / count, k0 = -k sum(dy) / count.
      const float k = w * rs;
      const float kx = training ? static_cast<float>(-k * rs * rs * sum_dy_xmu / count) : 0.0f;
      const float k0 = training ? static_cast<float>(-k * sum_dy / count) : 0.0f;
      for (int64_t i = 0; i < n; ++i) {
        const int64_t off = ch * hw + i * plane_stride;
        const float* xp = x + off;
        const float* dyp = dy + off;
        float* dxp = dx + off;
#pragma omp simd
        for (int64_t j = 0; j < hw; ++j) dxp[j] = k * dyp[j] + kx * (xp[j] - mu) + k0;
      }
    }
  });
}

}  // namespace qilin::kernels::cpu
