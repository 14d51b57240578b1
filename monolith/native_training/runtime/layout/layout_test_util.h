// Test-only helpers shared by layout_core_test and layout_gpu_test: random configs and batches,
// embeddings laid out as a sharding result says, per-version inputs, CPU forward/backward runners
// and a direct per-fid reference. Included by exactly one source file per test binary.
#ifndef MONOLITH_NATIVE_TRAINING_RUNTIME_LAYOUT_LAYOUT_TEST_UTIL_H_
#define MONOLITH_NATIVE_TRAINING_RUNTIME_LAYOUT_LAYOUT_TEST_UTIL_H_

#include <cmath>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "monolith/native_training/runtime/layout/batch_fids.h"
#include "monolith/native_training/runtime/layout/layout_config.h"
#include "monolith/native_training/runtime/layout/layout_kernels.h"
#include "monolith/native_training/runtime/layout/sharding.h"
#include "monolith/native_training/runtime/layout/test_protos.h"

namespace monolith {
namespace layout {
namespace test_util {

using testing::AddFeature;
using testing::AddLayout;
using testing::FeatureConfigMsg;
using testing::FidFeature;
using testing::Msg;
using testing::OutConfigMsg;

LayoutConfig MustParse(const std::string& bytes) {
  LayoutConfig c;
  std::string err = LayoutConfig::Parse(bytes, &c);
  if (!err.empty()) std::fprintf(stderr, "parse error: %s\n", err.c_str());
  EXPECT_TRUE(err.empty());
  return c;
}

// Embedding value of element t of a fid (a table's embedding depends on the fid only).
float Emb(uint64_t fid, int64_t t) {
  uint64_t h = (fid + 0x9E3779B97F4A7C15ull * (t + 1)) * 0xBF58476D1CE4E5B9ull;
  return static_cast<float>((h >> 40) % 2001) / 1000.f - 1.f;
}

// Embedding tensors per (table, shard), table-major, laid out as the sharding result says.
std::vector<std::vector<float>> MakeEmbeddings(const LayoutConfig& c, const ShardingResult& s,
                                               const std::map<uint64_t, std::vector<float>>* fixed = nullptr) {
  const int P = s.ps_num;
  std::vector<std::vector<float>> out(c.tables().size() * P);
  for (size_t ti = 0; ti < c.tables().size(); ++ti) {
    for (int ps = 0; ps < P; ++ps) {
      const int i = ti * P + ps;
      const auto& split = s.row_splits[i];
      for (size_t k = 0; k < c.tables()[ti].features.size(); ++k) {
        const int64_t dims = c.features()[c.tables()[ti].features[k]].dims_sum;
        for (int64_t row = split[k]; row < split[k + 1]; ++row) {
          const uint64_t fid = s.fids[s.list_begin[i] + row];
          for (int64_t t = 0; t < dims; ++t) out[i].push_back(fixed ? fixed->at(fid)[t] : Emb(fid, t));
        }
      }
      EXPECT_TRUE(static_cast<int64_t>(out[i].size()) == s.emb_elems[i]);
    }
  }
  return out;
}

// Holds the embedding inputs of one op version and its block table.
struct VersionInputs {
  std::vector<std::vector<float>> tensors;  // v4: one tensor
  std::vector<int32_t> piece_lengths;       // v4
  std::vector<Block> blocks;
};

VersionInputs MakeInputs(int version, const LayoutConfig& c, const ShardingResult& s,
                         const std::vector<std::vector<float>>& table_major) {
  VersionInputs in;
  const int P = s.ps_num;
  const int T = c.tables().size();
  std::vector<FloatBuffer> bufs;
  if (version == 4) {
    in.tensors.resize(1);
    for (int ps = 0; ps < P; ++ps) {
      for (int ti = 0; ti < T; ++ti) {
        const auto& piece = table_major[ti * P + ps];
        in.tensors[0].insert(in.tensors[0].end(), piece.begin(), piece.end());
        in.piece_lengths.push_back(piece.size());
      }
    }
    std::string err = BuildBlocksV4(c, P, {in.tensors[0].data(), (int64_t)in.tensors[0].size()},
                                    in.piece_lengths.data(), in.piece_lengths.size(), &in.blocks);
    EXPECT_TRUE(err.empty());
    return in;
  }
  in.tensors = table_major;
  for (auto& t : in.tensors) bufs.push_back({t.data(), (int64_t)t.size()});
  if (version == 1) {
    std::vector<int64_t> cols;
    for (int ti = 0; ti < T; ++ti) {
      for (int ps = 0; ps < P; ++ps) cols.push_back(c.features()[c.tables()[ti].features[0]].dims_sum);
    }
    in.blocks = BuildBlocksV1(bufs, cols);
  } else if (version == 2) {
    std::string err = BuildBlocksV2(c, P, bufs, s.row_splits, &in.blocks);
    EXPECT_TRUE(err.empty());
  } else {
    in.blocks = BuildBlocksV3(bufs);
  }
  return in;
}

// Work items of the parallel runs: more than the test batches' rows or blocks at times.
constexpr int kTestThreads = 3;

Offsets OffsetsOf(const ShardingResult& s) {
  return Offsets{s.fid_offset.data(), (int64_t)s.fid_offset.size(), s.feature_offset.data(),
                 (int64_t)s.feature_offset.size(), s.nfl_offset.data(), (int64_t)s.nfl_offset.size()};
}

std::vector<std::vector<float>> RunForward(const LayoutConfig& c, const std::vector<Block>& blocks,
                                           const Offsets& o, int64_t batch,
                                           const ParallelRunner& runner = nullptr,
                                           std::string* error = nullptr) {
  std::vector<std::vector<float>> outs;
  std::vector<FloatBuffer> bufs;
  for (const OutputInfo& info : c.outputs()) outs.emplace_back(info.Rows(batch) * info.row_elems, -7.f);
  for (auto& v : outs) bufs.push_back({v.data(), (int64_t)v.size()});
  std::string err = LayoutForward(c, blocks, o, batch, bufs, runner, kTestThreads);
  if (error) {
    *error = err;
  } else {
    if (!err.empty()) std::fprintf(stderr, "forward error: %s\n", err.c_str());
    EXPECT_TRUE(err.empty());
  }
  return outs;
}

// Gradient buffers shaped like the version's inputs.
std::vector<std::vector<float>> RunBackward(int version, const LayoutConfig& c, const ShardingResult& s,
                                            const VersionInputs& in, int64_t batch,
                                            const std::vector<std::vector<float>>& grads,
                                            const ParallelRunner& runner = nullptr) {
  std::vector<std::vector<float>> out;
  for (const auto& t : in.tensors) out.emplace_back(t.size(), 0.f);
  VersionInputs gin;
  if (version == 4) {
    // Re-point the v4 blocks into the gradient buffer.
    std::string err = BuildBlocksV4(c, s.ps_num, {out[0].data(), (int64_t)out[0].size()},
                                    in.piece_lengths.data(), in.piece_lengths.size(), &gin.blocks);
    EXPECT_TRUE(err.empty());
  } else {
    std::vector<FloatBuffer> bufs;
    for (auto& t : out) bufs.push_back({t.data(), (int64_t)t.size()});
    if (version == 1) {
      std::vector<int64_t> cols;
      for (const Block& b : in.blocks) cols.push_back(b.stride);
      gin.blocks = BuildBlocksV1(bufs, cols);
    } else if (version == 2) {
      EXPECT_TRUE(BuildBlocksV2(c, s.ps_num, bufs, s.row_splits, &gin.blocks).empty());
    } else {
      gin.blocks = BuildBlocksV3(bufs);
    }
  }
  std::vector<FloatBuffer> gbufs;
  for (auto& g : grads) gbufs.push_back({const_cast<float*>(g.data()), (int64_t)g.size()});
  std::string err = LayoutBackward(c, gin.blocks, OffsetsOf(s), batch, gbufs, runner, kTestThreads);
  if (!err.empty()) std::fprintf(stderr, "backward error: %s\n", err.c_str());
  EXPECT_TRUE(err.empty());
  return out;
}

bool Near(const std::vector<float>& a, const std::vector<float>& b, float tol = 1e-4f) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!(std::fabs(a[i] - b[i]) <= tol * (1 + std::fabs(b[i])))) {  // NaN is never near
      std::fprintf(stderr, "mismatch at %zu: %f vs %f\n", i, a[i], b[i]);
      return false;
    }
  }
  return true;
}

ParallelRunner ThreadRunner() {
  return [](int64_t n, const std::function<void(int64_t)>& fn) {
    std::vector<std::thread> threads;
    for (int64_t i = 0; i < n; ++i) threads.emplace_back(fn, i);
    for (auto& t : threads) t.join();
  };
}

// ---------------------------------------------------------------------------------------------
// Random configs against a direct reference.

struct RandomCase {
  std::string config;
  std::vector<std::string> protos;  // Examples, or one ExampleBatch
  bool example_batch = false;
  // fids[feature][row] (shared features: the same list in every row)
  std::map<std::string, std::vector<std::vector<uint64_t>>> fids;
};

RandomCase MakeRandomCase(std::mt19937* rng, bool uniform_table_dims, int batch) {
  auto rnd = [rng](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(*rng); };
  RandomCase rc;
  rc.example_batch = rnd(0, 1);
  const int num_tables = rnd(1, 3), num_features = rnd(1, 7);
  std::vector<int> table_dims(num_tables);
  for (int& d : table_dims) d = rnd(1, 9);
  Msg cfgs;
  struct F {
    std::string name;
    int dims, pooling, L;
  };
  std::vector<F> feats;
  for (int i = 0; i < num_features; ++i) {
    const int t = rnd(0, num_tables - 1);
    F f{"f" + std::to_string(rnd(0, 99)) + "_" + std::to_string(i), 0, rnd(0, 2), rnd(1, 4)};
    if (f.pooling == 2) f.pooling = kFirstN;
    f.dims = uniform_table_dims ? table_dims[t] : rnd(1, 9);
    std::vector<int64_t> slice_dims;
    for (int left = f.dims; left > 0;) {
      const int d = rnd(1, left);
      slice_dims.push_back(d);
      left -= d;
    }
    AddFeature(&cfgs, f.name, FeatureConfigMsg("table" + std::to_string(t), f.pooling, slice_dims,
                                               f.pooling == kFirstN ? f.L : 0));
    feats.push_back(f);
  }
  // Layouts: one of each type, over random slices.
  auto slice_of = [&](const F& f, int width) {
    const int start = rnd(0, f.dims - width);
    return testing::Slice{f.name, start, start + width};
  };
  {
    std::vector<testing::Slice> slices;
    std::vector<std::vector<int64_t>> shapes;
    for (const F& f : feats) {
      if (rnd(0, 2) == 0) continue;
      slices.push_back(slice_of(f, rnd(1, f.dims)));
      const int w = slices.back().end - slices.back().start;
      shapes.push_back(f.pooling == kFirstN ? std::vector<int64_t>{-1, f.L, w} : std::vector<int64_t>{-1, w});
    }
    AddLayout(&cfgs, "none", OutConfigMsg(kNone, slices, shapes));
  }
  {
    std::vector<testing::Slice> slices;
    int total = 0;
    for (const F& f : feats) {
      if (f.pooling == kFirstN || rnd(0, 2) == 0) continue;
      slices.push_back(slice_of(f, rnd(1, f.dims)));
      total += slices.back().end - slices.back().start;
    }
    if (!slices.empty()) AddLayout(&cfgs, "concat", OutConfigMsg(kConcat, slices, {{-1, total}}));
  }
  {
    std::vector<testing::Slice> slices;
    for (const F& f : feats) {
      if (f.pooling != kFirstN) slices.push_back(slice_of(f, 1));
    }
    if (!slices.empty()) {
      AddLayout(&cfgs, "addn", OutConfigMsg(kAddN, slices, {{-1, 1}}));
      AddLayout(&cfgs, "stack", OutConfigMsg(kStack, slices, {{-1, (int64_t)slices.size(), 1}}));
    }
  }
  rc.config = cfgs.str();

  // Data: fids drawn from a small pool so that duplicates and shared fids occur.
  Msg eb;
  std::vector<Msg> examples(batch);
  for (size_t i = 0; i < feats.size(); ++i) {
    const F& f = feats[i];
    const int mode = rnd(0, 3);  // 0 absent, 1 shared (ExampleBatch only), else individual
    auto draw = [&]() {
      std::vector<uint64_t> v(rnd(0, 5));
      for (auto& x : v) x = static_cast<uint64_t>(rnd(1, 40)) << 8 | i;
      return v;
    };
    auto& rows = rc.fids[f.name];
    rows.assign(batch, {});
    if (mode == 0) continue;
    if (rc.example_batch) {
      Msg list;
      list.Bytes(1, f.name).Varint(3, mode == 1 ? 1 : 0);
      if (mode == 1) {
        auto v = draw();
        list.Sub(2, FidFeature(v));
        for (auto& r : rows) r = v;
      } else {
        for (int b = 0; b < batch; ++b) {
          rows[b] = draw();
          list.Sub(2, FidFeature(rows[b]));
        }
      }
      eb.Sub(1, list);
    } else {
      for (int b = 0; b < batch; ++b) {
        rows[b] = draw();
        if (!rows[b].empty()) examples[b].Sub(1, Msg().Bytes(1, f.name).Sub(2, FidFeature(rows[b])));
      }
    }
  }
  if (rc.example_batch) {
    eb.Varint(3, batch);
    rc.protos.push_back(eb.str());
  } else {
    for (const Msg& m : examples) rc.protos.push_back(m.str());
  }
  return rc;
}

// Direct pooling from fid values.
std::vector<std::vector<float>> Reference(const LayoutConfig& c, const RandomCase& rc, int batch) {
  std::vector<std::vector<float>> outs;
  for (const OutputInfo& info : c.outputs()) outs.emplace_back(batch * info.row_elems, 0.f);
  for (const LayoutInfo& layout : c.layouts()) {
    for (const SliceInfo& s : layout.slices) {
      const int64_t row = c.outputs()[s.output].row_elems;
      for (int b = 0; b < batch; ++b) {
        const auto& fids = rc.fids.at(s.feature_name)[b];
        float* dst = outs[s.output].data() + b * row + s.offset;
        for (size_t k = 0; k < fids.size(); ++k) {
          for (int t = 0; t < s.width; ++t) {
            const float v = Emb(fids[k], s.start + t);
            if (s.pooling == kFirstN) {
              if ((int)k < s.max_sequence_length) dst[k * s.seq_stride + t] += v;
            } else {
              dst[t] += s.pooling == kMean ? v / fids.size() : v;
            }
          }
        }
      }
    }
  }
  return outs;
}

}  // namespace test_util
}  // namespace layout
}  // namespace monolith

#endif  // MONOLITH_NATIVE_TRAINING_RUNTIME_LAYOUT_LAYOUT_TEST_UTIL_H_
