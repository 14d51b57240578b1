// Micro-benchmark of the fused layout core (no TensorFlow): LayoutForward / LayoutBackward (version
// 3 addressing) on fused_layout_bench.py's workload (100 features over 10 tables, half SUM half
// MEAN, 3-7 fids per entry, a CONCAT layout of every feature's full embedding plus an ADDN bias
// layout). Peer in the same run: upstream's CPU algorithm, a serial per-fid loop that adds each
// fid's embedding slice into its output (and, backward, each output gradient into the fid's row).
// Prints milliseconds (minimum over the runs) and the ratio peer / core for 1 and 2 threads.
//
//   bazel run -c opt //benchmarks:fused_layout_micro_bench -- [dim batch runs]  (default 16 4096 10)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "monolith/native_training/runtime/layout/layout_config.h"
#include "monolith/native_training/runtime/layout/layout_kernels.h"
#include "monolith/native_training/runtime/layout/test_protos.h"

namespace {

using namespace monolith::layout;  // NOLINT: a benchmark of this one library
using testing::AddFeature;
using testing::AddLayout;
using testing::FeatureConfigMsg;
using testing::Msg;
using testing::OutConfigMsg;

constexpr int kTables = 10;
constexpr int kFeaturesPerTable = 10;
constexpr int kVocab = 2000;

// 64-byte aligned floats, like TensorFlow's tensors (the core streams whole aligned cache lines).
template <class T>
struct AlignedAllocator {
  using value_type = T;
  AlignedAllocator() = default;
  template <class U>
  AlignedAllocator(const AlignedAllocator<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(std::aligned_alloc(64, (n * sizeof(T) + 63) / 64 * 64)); }
  void deallocate(T* p, size_t) { std::free(p); }
  bool operator==(const AlignedAllocator&) const { return true; }
  bool operator!=(const AlignedAllocator&) const { return false; }
};
using Floats = std::vector<float, AlignedAllocator<float>>;

struct Workload {
  LayoutConfig config;
  std::vector<Floats> tables;  // per table: kFeaturesPerTable * kVocab rows of dim
  std::vector<uint64_t> fid_offset;        // v3: (table << 32) | element offset
  std::vector<int32_t> feature_offset;
  std::vector<uint32_t> nfl_offset;
  int dim = 0;
  int64_t batch = 0;
};

Workload MakeWorkload(int dim, int64_t batch) {
  Workload w;
  w.dim = dim;
  w.batch = batch;
  Msg cfgs;
  std::vector<testing::Slice> concat, bias;
  char name[32];
  for (int t = 0; t < kTables; ++t) {
    for (int k = 0; k < kFeaturesPerTable; ++k) {
      std::snprintf(name, sizeof name, "f%d_%d", t, k);
      AddFeature(&cfgs, name, FeatureConfigMsg("t" + std::to_string(t), t < kTables / 2 ? kSum : kMean, {dim}));
      concat.push_back({name, 0, dim});
      bias.push_back({name, 0, 1});
    }
  }
  AddLayout(&cfgs, "concat", OutConfigMsg(kConcat, concat, {{-1, kTables * kFeaturesPerTable * dim}}));
  AddLayout(&cfgs, "bias", OutConfigMsg(kAddN, bias, {{-1, 1}}));
  const std::string err = LayoutConfig::Parse(cfgs.str(), &w.config);
  if (!err.empty()) {
    std::fprintf(stderr, "config: %s\n", err.c_str());
    std::exit(1);
  }
  std::mt19937 rng(0);
  std::uniform_real_distribution<float> value(-1, 1);
  for (int t = 0; t < kTables; ++t) {
    w.tables.emplace_back(static_cast<size_t>(kFeaturesPerTable) * kVocab * dim);
    for (float& x : w.tables.back()) x = value(rng);
  }
  // Features in sorted-name order (f0_0 ... f9_9 sorts like (table, k) here).
  for (const FeatureInfo& f : w.config.features()) {
    const int t = f.name[1] - '0', k = f.name[3] - '0';
    w.nfl_offset.push_back(w.feature_offset.size());
    for (int64_t r = 0; r < batch; ++r) {
      w.feature_offset.push_back(w.fid_offset.size());
      for (int n = std::uniform_int_distribution<int>(3, 7)(rng); n > 0; --n) {
        const uint64_t row = k * kVocab + std::uniform_int_distribution<int>(0, kVocab - 1)(rng);
        w.fid_offset.push_back(static_cast<uint64_t>(t) << 32 | row * dim);
      }
    }
  }
  return w;
}

Offsets OffsetsOf(const Workload& w) {
  return Offsets{w.fid_offset.data(), static_cast<int64_t>(w.fid_offset.size()), w.feature_offset.data(),
                 static_cast<int64_t>(w.feature_offset.size()), w.nfl_offset.data(),
                 static_cast<int64_t>(w.nfl_offset.size())};
}

// Upstream's serial CPU loop order: per layout, slice and row, each fid of the row's entry;
// visit(slice, element offset of the row's slice region in its output, the fid's slice in its
// table, entry length).
template <class Visit>
void ForEachTerm(const Workload& w, Visit&& visit) {
  const Offsets o = OffsetsOf(w);
  for (const LayoutInfo& layout : w.config.layouts()) {
    for (const SliceInfo& s : layout.slices) {
      const int64_t row_elems = w.config.outputs()[s.output].row_elems;
      for (int64_t r = 0; r < w.batch; ++r) {
        const int64_t e = o.nfl_offset[s.feature_idx] + r;
        const int64_t begin = o.feature_offset[e], end = e + 1 < o.num_entries ? o.feature_offset[e + 1] : o.num_fids;
        for (int64_t i = begin; i < end; ++i) {
          visit(s, r * row_elems + s.offset, o.fid_offset[i] >> 32, (o.fid_offset[i] & 0xffffffffu) + s.start,
                end - begin);
        }
      }
    }
  }
}

// The peer: each fid's slice added into the output (MEAN: element / n). `outputs` must be zeroed.
void PeerForward(const Workload& w, std::vector<Floats>* outputs) {
  ForEachTerm(w, [&](const SliceInfo& s, int64_t out, int64_t table, int64_t elem, int64_t n) {
    float* dst = (*outputs)[s.output].data() + out;
    const float* src = w.tables[table].data() + elem;
    for (int t = 0; t < s.width; ++t) dst[t] += s.pooling == kMean ? src[t] / n : src[t];
  });
}

// Its adjoint: each output gradient added into the fid's row. `table_grads` must be zeroed.
void PeerBackward(const Workload& w, const std::vector<Floats>& grads, std::vector<Floats>* table_grads) {
  ForEachTerm(w, [&](const SliceInfo& s, int64_t out, int64_t table, int64_t elem, int64_t n) {
    const float* g = grads[s.output].data() + out;
    float* dst = (*table_grads)[table].data() + elem;
    for (int t = 0; t < s.width; ++t) dst[t] += s.pooling == kMean ? g[t] / n : g[t];
  });
}

ParallelRunner Threads() {
  return [](int64_t n, const std::function<void(int64_t)>& fn) {
    std::vector<std::thread> threads;
    for (int64_t i = 0; i < n; ++i) threads.emplace_back(fn, i);
    for (auto& t : threads) t.join();
  };
}

double MinMs(int runs, const std::function<void()>& fn) {
  double best = 1e30;
  for (int i = 0; i < runs; ++i) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  return best;
}

void Check(const std::string& err) {
  if (!err.empty()) {
    std::fprintf(stderr, "layout error: %s\n", err.c_str());
    std::exit(1);
  }
}

void MustMatch(const std::vector<Floats>& want, const std::vector<Floats>& got,
               const char* what) {
  for (size_t i = 0; i < want.size(); ++i) {
    for (size_t j = 0; j < want[i].size(); ++j) {
      if (std::abs(want[i][j] - got[i][j]) > 1e-4f * (1 + std::abs(want[i][j]))) {
        std::fprintf(stderr, "%s differs from the peer at tensor %zu element %zu: %f vs %f\n", what, i, j,
                     got[i][j], want[i][j]);
        std::exit(1);
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int dim = argc > 1 ? std::atoi(argv[1]) : 16;
  const int64_t batch = argc > 2 ? std::atoll(argv[2]) : 4096;
  const int runs = argc > 3 ? std::atoi(argv[3]) : 10;
  const Workload w = MakeWorkload(dim, batch);
  const Offsets o = OffsetsOf(w);
  std::vector<FloatBuffer> tables, table_grads;
  std::vector<Floats> grad_storage;
  for (const auto& t : w.tables) {
    tables.push_back({const_cast<float*>(t.data()), static_cast<int64_t>(t.size())});
    grad_storage.emplace_back(t.size());
  }
  for (auto& g : grad_storage) table_grads.push_back({g.data(), static_cast<int64_t>(g.size())});
  const std::vector<Block> blocks = BuildBlocksV3(tables), grad_blocks = BuildBlocksV3(table_grads);
  std::vector<Floats> outputs, peer_outputs, output_grads;
  std::vector<FloatBuffer> out_bufs, grad_bufs;
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> value(-1, 1);
  for (const OutputInfo& info : w.config.outputs()) {
    outputs.emplace_back(batch * info.row_elems);
    output_grads.emplace_back(batch * info.row_elems);
    for (float& g : output_grads.back()) g = value(rng);
  }
  for (auto& t : outputs) out_bufs.push_back({t.data(), static_cast<int64_t>(t.size())});
  for (auto& t : output_grads) grad_bufs.push_back({t.data(), static_cast<int64_t>(t.size())});
  std::printf("dim %d batch %lld: %lld fids, %d runs (minimum ms)\n", dim, static_cast<long long>(batch),
              static_cast<long long>(w.fid_offset.size()), runs);

  const double peer_fwd = MinMs(runs, [&] {
    peer_outputs.assign(outputs.size(), {});
    for (size_t i = 0; i < outputs.size(); ++i) peer_outputs[i].assign(outputs[i].size(), 0.f);
    PeerForward(w, &peer_outputs);
  });
  std::vector<Floats> peer_grads;
  const double peer_bwd = MinMs(runs, [&] {
    peer_grads.assign(w.tables.size(), {});
    for (size_t i = 0; i < w.tables.size(); ++i) peer_grads[i].assign(w.tables[i].size(), 0.f);
    PeerBackward(w, output_grads, &peer_grads);
  });
  std::printf("%-8s %10s %10s %8s %10s %10s %8s\n", "threads", "fwd ms", "peer ms", "ratio", "bwd ms",
              "peer ms", "ratio");
  for (int threads : {1, 2}) {
    const ParallelRunner runner = threads > 1 ? Threads() : nullptr;
    const double fwd = MinMs(runs, [&] { Check(LayoutForward(w.config, blocks, o, batch, out_bufs, runner, threads)); });
    MustMatch(peer_outputs, outputs, "forward");
    const double bwd = MinMs(runs, [&] {
      ZeroBuffers(table_grads, runner);
      Check(LayoutBackward(w.config, grad_blocks, o, batch, grad_bufs, runner, threads));
    });
    MustMatch(peer_grads, grad_storage, "backward");
    std::printf("%-8d %10.2f %10.2f %7.2fx %10.2f %10.2f %7.2fx\n", threads, fwd, peer_fwd, peer_fwd / fwd, bwd,
                peer_bwd, peer_bwd / bwd);
  }
  return 0;
}
