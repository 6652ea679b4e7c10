// `qilin interp bench`: the interpolated functions against the native ones and a plain copy
// on this machine's CPU (the paper's Tables 3, 11 and 12 in one command; issue 4, Must show 4).
// bench/bench_interp adds the lookup-only bound loops to the same table.
//
// Method. One buffer set of n float32 inputs drawn from a distribution typical of the
// function's place in a network (exp: x - max <= 0, as inside a softmax; the others centred
// normals that fall almost entirely inside the default domains), dy uniform in [-1, 1].
// Every candidate (copy, native, each table method and piece count, and any extra rows) is
// warmed up twice, then the candidates of one function are timed round-robin, one call each
// per round, each right after at least 20 ms of untimed calls of itself (so that no call pays
// for writing back the previous candidate's output, or for the machine's slow return to full
// memory speed after a compute-bound candidate), for `reps` rounds: drift and interference hit every
// candidate alike. A row's time is its median; a ratio to copy (or to native, or to the bound) is the median over
// rounds of the per-round ratio, so it compares calls made a few milliseconds apart.
// Timing `consecutive` instead times each candidate in its own block, 20 ms of warm-up calls
// then `reps` calls in a row, as bench/torch_interp.py times PyTorch's kernels (two warm-up
// calls there; each of its kernels runs right after the previous one's block, so there is no
// compute-bound gap to recover from); ratios are then ratios of medians.
// Bytes per element: forward 8 (x in, y out), backward 12 (x and dy in, dx out). Copy is
// y = x forward and dx = x * dy backward, with the same threading as the kernels.
// Backward `in_place` (the default) runs every backward as the layers run it in training:
// dx written over dy (core/autograd.h grad_buffer: the engine hands an activation the only
// handle on its incoming gradient), dy refreshed from a pristine copy, untimed, before each
// call; the copy reference is then dy = x * dy. Out of place, dx is a separate array, as
// PyTorch's autograd allocates it.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/interp.h"
#include "train/table.h"

namespace qilin {

// A timed candidate: forward and (optionally) backward calls over the bench's buffers.
struct InterpBenchCall {
  std::string method;  // e.g. "uniform", "bound:gather-pd"
  int64_t pieces = 0;  // 0: not a table
  std::function<void()> forward;
  std::function<void()> backward;  // empty: no backward row
  bool is_bound = false;           // a lookup-only bound loop (bench/bench_interp.cpp)
};

// The buffers the calls run on (n floats each).
struct InterpBenchBuffers {
  const float* x;
  const float* dy;
  float* y;
  float* dx;
  int64_t n;
};

// Extra candidates for one (function, piece count): the uniform table's view and the buffers.
using InterpBenchExtra =
    std::function<std::vector<InterpBenchCall>(const InterpTableView&, const InterpBenchBuffers&)>;

struct InterpBenchOptions {
  std::vector<InterpFn> fns{InterpFn::kExp, InterpFn::kSigmoid, InterpFn::kTanh, InterpFn::kGelu};
  std::vector<int64_t> segments{16, 64, 256, 1024, 4096, 16384, 65536};
  // Table methods timed besides native: uniform, binary_search, nonuniform, igelu (gelu).
  std::vector<InterpMethod> methods{InterpMethod::kUniform, InterpMethod::kBinarySearch,
                                    InterpMethod::kIgelu};
  int64_t n = 5000000;
  int reps = 21;
  bool consecutive = false;  // time each candidate in a block of reps calls (see above)
  bool in_place = true;      // backward writes dx over dy (see above)
  InterpBenchExtra extra;    // bench/bench_interp: the bound loops
};

// Rows: fn, method, pieces, forward ms / GB/s / ratio to copy / speed-up over native, the
// same for backward, and (with extra bound rows) the ratio to the fastest bound variant of
// the piece count. Notes on the inputs go to `log` (one line per function).
Table interp_bench_table(const InterpBenchOptions& options,
                         const std::function<void(const std::string&)>& log = {});

}  // namespace qilin
