// CPU GEMM on OpenBLAS cblas_sgemm (Debian's OpenMP build). Holds: the single and
// strided-batched products, the bias row broadcast, and the OpenBLAS kernel-choice fix-up.
// Does not hold: im2col or any layout work (those live with their ops).
#include "kernels/cpu/gemm.h"

#include <cblas.h>
#include <dlfcn.h>

#include <climits>
#include <cstdlib>
#include <cstring>

#include "core/error.h"
#include "kernels/cpu/parallel.h"

namespace qilin::kernels::cpu {
namespace {

// OpenBLAS 0.3.21 (Debian 12, DYNAMIC_ARCH) chooses its kernels from the CPU's family/model.
// A model it does not know - this project's machine is an Emerald Rapids Xeon, family 6
// model 207 - falls back to the Prescott (SSE3) kernels. Measured on that machine, 2
// threads, 512 x [50,16]x[16,50]: Prescott 2041 us, SkylakeX 529 us; PyTorch 1.13 (same
// OpenBLAS) 5482 us. So when OpenBLAS fell back to Prescott and nobody chose a core with
// OPENBLAS_CORETYPE, we re-run its dynamic initialisation with a core named from the CPU's
// features. Both symbols are exported by every DYNAMIC_ARCH build; looked up with dlsym so
// a build without them simply keeps its own choice.
struct OpenBlasCoreChoice {
  std::string note;
  OpenBlasCoreChoice() {
    if (std::getenv("OPENBLAS_CORETYPE") != nullptr) {
      note = "OPENBLAS_CORETYPE set by the user";
      return;
    }
    if (std::strcmp(openblas_get_corename(), "Prescott") != 0) return;
    __builtin_cpu_init();
    const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    const char* core = avx512 ? "SkylakeX" : avx2 ? "Haswell" : nullptr;
    auto** table = static_cast<void**>(dlsym(RTLD_DEFAULT, "gotoblas"));
    auto* reinit = reinterpret_cast<void (*)()>(dlsym(RTLD_DEFAULT, "gotoblas_dynamic_init"));
    if (core == nullptr || table == nullptr || reinit == nullptr) return;
    // gotoblas_dynamic_init returns early while a table is set, and reads OPENBLAS_CORETYPE.
    setenv("OPENBLAS_CORETYPE", core, 0);
    *table = nullptr;
    reinit();
    unsetenv("OPENBLAS_CORETYPE");  // leave child processes (e.g. PyTorch parity runs) as they were
    note = std::string("forced: CPU model not known to this OpenBLAS, which chose Prescott");
  }
};

// Runs before main() (OpenBLAS's own constructor has run: it is a shared library we link).
const OpenBlasCoreChoice& core_choice() {
  static const OpenBlasCoreChoice choice;
  return choice;
}
[[maybe_unused]] const OpenBlasCoreChoice& kCoreChoiceAtLoad = core_choice();

int blas_int(int64_t v, const char* what) {
  QILIN_CHECK(v >= 0 && v <= INT_MAX, "gemm: ", what, " = ", v, " does not fit OpenBLAS's int");
  return static_cast<int>(v);
}

// Below this many multiply-adds per matrix a batched product runs one matrix per thread
// with single-threaded sgemm calls (OpenBLAS's OpenMP build runs serially inside a parallel
// region); above, each product uses OpenBLAS's own threading. Every ViT attention product
// (50x50x16 = 40 k MACs) is far below; not tuned beyond that.
constexpr int64_t kSmallGemmMacs = int64_t{1} << 20;

void sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda,
           const float* b, int ldb, float beta, float* c, int ldc) {
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) {  // BLAS leaves C untouched when k == 0 only for beta == 1: do it ourselves
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0 ? 0.0f : beta * c[i * ldc + j];
    return;
  }
  sgemm(trans_a, trans_b, blas_int(m, "m"), blas_int(n, "n"), blas_int(k, "k"), alpha, a,
        blas_int(lda, "lda"), b, blas_int(ldb, "ldb"), beta, c, blas_int(ldc, "ldc"));
}

void gemm_strided_batched(bool trans_a, bool trans_b, int64_t batch, int64_t m, int64_t n,
                          int64_t k, float alpha, const float* a, int64_t lda, int64_t stride_a,
                          const float* b, int64_t ldb, int64_t stride_b, float beta, float* c,
                          int64_t ldc, int64_t stride_c) {
  if (batch == 0 || m == 0 || n == 0) return;
  QILIN_CHECK(batch == 1 || stride_c != 0, "gemm_strided_batched: C may not be shared");
  const int64_t macs = m * n * k;
  if (batch == 1 || macs >= kSmallGemmMacs || k == 0) {
    for (int64_t i = 0; i < batch; ++i)
      gemm(trans_a, trans_b, m, n, k, alpha, a + i * stride_a, lda, b + i * stride_b, ldb, beta,
           c + i * stride_c, ldc);
    return;
  }
  const int mi = blas_int(m, "m"), ni = blas_int(n, "n"), ki = blas_int(k, "k");
  const int ldai = blas_int(lda, "lda"), ldbi = blas_int(ldb, "ldb"), ldci = blas_int(ldc, "ldc");
  // cost_per_item in parallel_for's units (elements of streaming work); a rough estimate of
  // 8 multiply-adds per streamed element.
  parallel_for(batch, std::max<int64_t>(1, macs / 8), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      sgemm(trans_a, trans_b, mi, ni, ki, alpha, a + i * stride_a, ldai, b + i * stride_b, ldbi,
            beta, c + i * stride_c, ldci);
  });
}

void broadcast_rows(float* c, const float* row, int64_t m, int64_t n) {
  parallel_for(m, n, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) std::memcpy(c + i * n, row, sizeof(float) * n);
  });
}

std::string gemm_backend() {
  std::string s = std::string(openblas_get_config()) + ", core " + openblas_get_corename();
  const std::string& note = core_choice().note;
  return note.empty() ? s : s + " (" + note + ")";
}

}  // namespace qilin::kernels::cpu
