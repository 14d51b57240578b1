// Tests of the TF-free cores: the worked example of fused_layout.md §9 (every version), a
// randomized comparison of every version against a direct per-fid reference (forward, and the
// backward as the exact adjoint of the linear forward), parallel == serial, bad inputs, and wide
// slices bit-identical to upstream's serial loop.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "monolith/native_training/runtime/layout/batch_fids.h"
#include "monolith/native_training/runtime/layout/layout_config.h"
#include "monolith/native_training/runtime/layout/layout_kernels.h"
#include "monolith/native_training/runtime/layout/sharding.h"
#include "monolith/native_training/runtime/layout/test_protos.h"
#include "monolith/native_training/runtime/layout/layout_test_util.h"

namespace monolith {
namespace layout {
namespace {

// The shared test helpers, with the proto builders test_util re-exports.
using namespace test_util;  // NOLINT

// ---------------------------------------------------------------------------------------------
// fused_layout.md §9.

std::string WorkedConfig(bool one_table) {
  Msg cfgs;
  AddFeature(&cfgs, "fa", FeatureConfigMsg("t1", kSum, {1, 2}));
  AddFeature(&cfgs, "fb", FeatureConfigMsg(one_table ? "t1" : "t2", kMean, {2}));
  AddLayout(&cfgs, "vec", OutConfigMsg(kConcat, {{"fa", 1, 3}, {"fb", 0, 2}}, {{-1, 4}}));
  AddLayout(&cfgs, "bias", OutConfigMsg(kAddN, {{"fa", 0, 1}, {"fb", 0, 1}}, {{-1, 1}}));
  AddLayout(&cfgs, "raw", OutConfigMsg(kNone, {{"fa", 0, 3}, {"fb", 0, 2}}, {{-1, 3}, {-1, 2}}));
  return cfgs.str();
}

std::string WorkedBatch() {
  Msg batch;
  Msg fa;
  fa.Bytes(1, "fa").Sub(2, FidFeature({10, 13})).Sub(2, FidFeature({13, 4})).Varint(3, 0).Varint(4, 1);
  Msg fb;
  fb.Bytes(1, "fb").Sub(2, FidFeature({7, 8})).Varint(3, 1).Varint(4, 2);
  batch.Sub(1, fa).Sub(1, fb).Varint(3, 2);
  return batch.str();
}

uint64_t Pack(uint64_t i1, uint64_t i2) { return i1 << 32 | i2; }

void TestWorkedExample() {
  const LayoutConfig c = MustParse(WorkedConfig(false));
  EXPECT_TRUE(c.num_out() == 4);
  EXPECT_TRUE(c.layouts()[0].name == "bias" && c.layouts()[1].name == "raw" && c.layouts()[2].name == "vec");
  EXPECT_TRUE(c.layouts()[2].slices[0].slice_idx == 1);
  // ADDN accumulates into zeroed rows; the others' slices tile their rows and are stored.
  EXPECT_TRUE(!c.outputs()[0].exclusive && c.outputs()[1].exclusive && c.outputs()[2].exclusive &&
              c.outputs()[3].exclusive);
  const std::string bytes = WorkedBatch();
  BatchFids batch;
  EXPECT_TRUE(ExtractFromExampleBatch(c, bytes, &batch).empty());
  const std::map<uint64_t, std::vector<float>> emb = {
      {10, {1, 2, 3}}, {4, {4, 5, 6}}, {13, {7, 8, 9}}, {8, {10, 20}}, {7, {30, 40}}};
  const std::vector<std::vector<float>> expected = {
      {28, 31}, {8, 10, 12, 11, 13, 15}, {20, 30, 20, 30}, {10, 12, 20, 30, 13, 15, 20, 30}};
  for (int version = 1; version <= 5; ++version) {
    ShardingResult s;
    EXPECT_TRUE(ShardFids(c, batch, 2, true, version, 320000, nullptr, &s).empty());
    EXPECT_TRUE((s.feature_offset == std::vector<int32_t>{0, 2, 4, 6}));
    EXPECT_TRUE((s.nfl_offset == std::vector<uint32_t>{0, 0x80000002u, 4}));
    EXPECT_TRUE((s.fids == std::vector<int64_t>{10, 4, 13, 8, 7}));
    EXPECT_TRUE((s.list_begin == std::vector<int64_t>{0, 2, 3, 4, 5}));
    EXPECT_TRUE((s.emb_elems == std::vector<int64_t>{6, 3, 2, 2}));
    const uint64_t fourth = version >= 3 ? 3 : 1;
    EXPECT_TRUE((s.fid_offset == std::vector<uint64_t>{Pack(0, 0), Pack(1, 0), Pack(1, 0), Pack(0, fourth),
                                                       Pack(3, 0), Pack(2, 0)}));
    const VersionInputs in = MakeInputs(version, c, s, MakeEmbeddings(c, s, &emb));
    if (version == 4) {
      EXPECT_TRUE((in.tensors[0] == std::vector<float>{1, 2, 3, 4, 5, 6, 10, 20, 7, 8, 9, 30, 40}));
      EXPECT_TRUE((in.piece_lengths == std::vector<int32_t>{6, 2, 3, 2}));
    }
    const auto outs = RunForward(c, in.blocks, OffsetsOf(s), s.batch_size);
    for (int i = 0; i < 4; ++i) EXPECT_TRUE(Near(outs[i], expected[i]));
    std::vector<std::vector<float>> ones;
    for (const auto& o : outs) ones.emplace_back(o.size(), 1.f);
    const auto g = RunBackward(version, c, s, in, s.batch_size, ones);
    // §9.5, pure accumulation (see LayoutBackward on Quirk Q1).
    if (version == 4) {
      EXPECT_TRUE(Near(g[0], {2, 2, 2, 2, 2, 2, 3, 2, 4, 4, 4, 3, 2}));
    } else {
      EXPECT_TRUE(Near(g[0], {2, 2, 2, 2, 2, 2}) && Near(g[1], {4, 4, 4}) && Near(g[2], {3, 2}) &&
                  Near(g[3], {3, 2}));
    }
  }

  // §9.6: both features in one table.
  const LayoutConfig c1 = MustParse(WorkedConfig(true));
  BatchFids batch1;
  EXPECT_TRUE(ExtractFromExampleBatch(c1, bytes, &batch1).empty());
  const std::vector<std::vector<uint64_t>> want = {
      {Pack(0, 0), Pack(1, 0), Pack(1, 0), Pack(0, 1), Pack(1, 1), Pack(0, 2)},
      {Pack(0, 0), Pack(2, 0), Pack(2, 0), Pack(0, 1), Pack(3, 0), Pack(1, 0)},
      {Pack(0, 0), Pack(1, 0), Pack(1, 0), Pack(0, 3), Pack(1, 3), Pack(0, 6)}};
  for (int version = 1; version <= 3; ++version) {
    ShardingResult s;
    EXPECT_TRUE(ShardFids(c1, batch1, 2, true, version, 320000, nullptr, &s).empty());
    EXPECT_TRUE(s.fid_offset == want[version - 1]);
    EXPECT_TRUE((s.row_splits[0] == std::vector<int64_t>{0, 2, 3}));
    EXPECT_TRUE((s.row_splits[1] == std::vector<int64_t>{0, 1, 2}));
    if (version == 1) continue;  // v1 cannot hold mixed dims in one table
    const VersionInputs in = MakeInputs(version, c1, s, MakeEmbeddings(c1, s, &emb));
    const auto outs = RunForward(c1, in.blocks, OffsetsOf(s), s.batch_size);
    for (int i = 0; i < 4; ++i) EXPECT_TRUE(Near(outs[i], expected[i]));
  }
}

// unique = false gives every occurrence its own position; Examples are never shared.
// A CONCAT shape wider than its slices: the forward cannot just store the slices, the columns no
// slice covers must come out zero (RunForward pre-fills outputs with -7).
void TestUncoveredColumnsAreZero() {
  Msg cfgs;
  AddFeature(&cfgs, "fa", FeatureConfigMsg("t1", kSum, {1, 2}));
  AddFeature(&cfgs, "fb", FeatureConfigMsg("t2", kMean, {2}));
  AddLayout(&cfgs, "vec", OutConfigMsg(kConcat, {{"fa", 1, 3}, {"fb", 0, 2}}, {{-1, 6}}));
  const LayoutConfig c = MustParse(cfgs.str());
  EXPECT_TRUE(!c.outputs()[0].exclusive);
  const std::string bytes = WorkedBatch();  // `batch` points into it
  BatchFids batch;
  EXPECT_TRUE(ExtractFromExampleBatch(c, bytes, &batch).empty());
  const std::map<uint64_t, std::vector<float>> emb = {
      {10, {1, 2, 3}}, {4, {4, 5, 6}}, {13, {7, 8, 9}}, {8, {10, 20}}, {7, {30, 40}}};
  ShardingResult s;
  EXPECT_TRUE(ShardFids(c, batch, 2, true, 3, 320000, nullptr, &s).empty());
  const VersionInputs in = MakeInputs(3, c, s, MakeEmbeddings(c, s, &emb));
  for (const ParallelRunner& runner : {ParallelRunner(), ThreadRunner()}) {
    const auto outs = RunForward(c, in.blocks, OffsetsOf(s), s.batch_size, runner);
    EXPECT_TRUE(Near(outs[0], {10, 12, 20, 30, 0, 0, 13, 15, 20, 30, 0, 0}));
  }
}

void TestExamplesNotUnique() {
  const LayoutConfig c = MustParse(WorkedConfig(false));
  std::vector<std::string> ex = {
      Msg().Sub(1, Msg().Bytes(1, "fa").Sub(2, FidFeature({10, 10}))).str(),
      Msg().Sub(1, Msg().Bytes(1, "unknown").Sub(2, FidFeature({5})))
          .Sub(1, Msg().Bytes(1, "fb").Sub(2, FidFeature({uint64_t{1} << 54 | 3}, /*v1=*/true))).str()};
  std::vector<std::string_view> views(ex.begin(), ex.end());
  BatchFids batch;
  EXPECT_TRUE(ExtractFromExamples(c, views, &batch).empty());
  ShardingResult s;
  EXPECT_TRUE(ShardFids(c, batch, 2, false, 3, 320000, nullptr, &s).empty());
  EXPECT_TRUE((s.nfl_offset == std::vector<uint32_t>{0, 2, 5}));
  EXPECT_TRUE((s.feature_offset == std::vector<int32_t>{0, 2, 2, 2, 3}));
  // fb's v1 fid converted to v2: slot 1 at bit 48.
  EXPECT_TRUE((s.fids == std::vector<int64_t>{10, 10, int64_t{1} << 48 | 3}));
  EXPECT_TRUE((s.fid_offset == std::vector<uint64_t>{Pack(0, 0), Pack(0, 3), Pack(3, 0)}));
}

void TestInstances() {
  Msg cfgs;
  AddFeature(&cfgs, "fc_slot_3", FeatureConfigMsg("t", kSum, {2}));
  AddFeature(&cfgs, "named", FeatureConfigMsg("t", kSum, {2}));
  const LayoutConfig c = MustParse(cfgs.str());
  const uint64_t v1a = uint64_t{3} << 54 | 7, v1b = uint64_t{4} << 54 | 7;
  Msg inst;
  inst.PackedFixed64(1, {v1a, v1b, v1a + 1});
  inst.Sub(9, Msg().Bytes(1, "named").PackedFixed64(2, {100}).Sub(6, Msg().PackedFixed64(1, {101, 102})));
  std::string bytes = inst.str();
  BatchFids batch;
  EXPECT_TRUE(ExtractFromInstances(c, {bytes}, &batch).empty());
  ShardingResult s;
  EXPECT_TRUE(ShardFids(c, batch, 1, true, 3, 320000, nullptr, &s).empty());
  const int64_t a = int64_t{3} << 48 | 7;
  EXPECT_TRUE((s.fids == std::vector<int64_t>{a, a + 1, 100, 101, 102}));
}

void TestRandomAgainstReference() {
  std::mt19937 rng(1234);
  for (int iter = 0; iter < 300; ++iter) {
    const bool uniform = iter % 2 == 0;
    const int batch = 1 + iter % 5;
    RandomCase rc = MakeRandomCase(&rng, uniform, batch);
    const LayoutConfig c = MustParse(rc.config);
    BatchFids fids;
    std::vector<std::string_view> views(rc.protos.begin(), rc.protos.end());
    std::string err = rc.example_batch ? ExtractFromExampleBatch(c, views[0], &fids)
                                       : ExtractFromExamples(c, views, &fids);
    EXPECT_TRUE(err.empty());
    const auto want = Reference(c, rc, batch);
    for (int version = uniform ? 1 : 2; version <= 5; ++version) {
      for (bool unique : {false, true}) {
        const int P = 1 + iter % 3;
        ShardingResult s, s_par;
        EXPECT_TRUE(ShardFids(c, fids, P, unique, version, 320000, nullptr, &s).empty());
        // Tiny watermark: many chunks, run on threads; results must be identical.
        EXPECT_TRUE(ShardFids(c, fids, P, unique, version, 3, ThreadRunner(), &s_par).empty());
        EXPECT_TRUE(s.fid_offset == s_par.fid_offset && s.fids == s_par.fids &&
                    s.row_splits == s_par.row_splits);
        EXPECT_TRUE(s.batch_size == batch);
        const VersionInputs in = MakeInputs(version, c, s, MakeEmbeddings(c, s));
        const auto got = RunForward(c, in.blocks, OffsetsOf(s), batch);
        for (size_t i = 0; i < want.size(); ++i) EXPECT_TRUE(Near(got[i], want[i]));
        EXPECT_TRUE(RunForward(c, in.blocks, OffsetsOf(s), batch, ThreadRunner()) == got);
        // The forward is linear in the embeddings E, out = A·E; the backward must be Aᵀ:
        // <Aᵀg, E> == <g, A·E> for a random g.
        std::vector<std::vector<float>> g;
        double lhs = 0, rhs = 0;
        for (size_t i = 0; i < got.size(); ++i) {
          g.emplace_back(got[i].size());
          for (size_t j = 0; j < got[i].size(); ++j) {
            g[i][j] = std::uniform_real_distribution<float>(-1, 1)(rng);
            rhs += static_cast<double>(g[i][j]) * got[i][j];
          }
        }
        const auto ge = RunBackward(version, c, s, in, batch, g);
        const auto ge_par = RunBackward(version, c, s, in, batch, g, ThreadRunner());
        EXPECT_TRUE(ge == ge_par);  // items own disjoint blocks: same sums in the same order
        for (size_t i = 0; i < ge.size(); ++i) {
          for (size_t j = 0; j < ge[i].size(); ++j) lhs += static_cast<double>(ge[i][j]) * in.tensors[i][j];
        }
        if (std::fabs(lhs - rhs) > 1e-3 * (1 + std::fabs(rhs))) {
          std::fprintf(stderr, "iter %d version %d: adjoint %f vs %f\n", iter, version, lhs, rhs);
          EXPECT_TRUE(false);
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Bad input: errors naming the feature, no out-of-bounds access.

void TestBadInput() {
  LayoutConfig c;
  Msg cfgs;
  AddFeature(&cfgs, "fa", FeatureConfigMsg("t1", kSum, {2}));
  AddLayout(&cfgs, "vec", OutConfigMsg(kConcat, {{"nope", 0, 2}}, {{-1, 2}}));
  std::string err = LayoutConfig::Parse(cfgs.str(), &c);
  EXPECT_TRUE(err.find("unknown feature nope") != std::string::npos);

  Msg addn;
  AddFeature(&addn, "fa", FeatureConfigMsg("t1", kFirstN, {2}, 3));
  AddLayout(&addn, "bias", OutConfigMsg(kAddN, {{"fa", 0, 2}}, {{-1, 2}}));
  EXPECT_TRUE(LayoutConfig::Parse(addn.str(), &c).find("ADDN") != std::string::npos);

  Msg small;
  AddFeature(&small, "fa", FeatureConfigMsg("t1", kSum, {4}));
  AddLayout(&small, "vec", OutConfigMsg(kConcat, {{"fa", 0, 4}}, {{-1, 3}}));
  EXPECT_TRUE(LayoutConfig::Parse(small.str(), &c).find("does not fit") != std::string::npos);
  EXPECT_TRUE(LayoutConfig::Parse(std::string("\xff\xff", 2), &c) == "Failed to parse the feature_cfgs_.");

  const LayoutConfig w = MustParse(WorkedConfig(false));
  const std::string bytes = WorkedBatch();
  BatchFids batch;
  EXPECT_TRUE(ExtractFromExampleBatch(w, bytes, &batch).empty());
  ShardingResult s;
  EXPECT_TRUE(ShardFids(w, batch, 2, true, 3, 320000, nullptr, &s).empty());
  const VersionInputs in = MakeInputs(3, w, s, MakeEmbeddings(w, s));

  // index1 out of range.
  ShardingResult bad = s;
  bad.fid_offset[0] = Pack(9, 0);
  RunForward(w, in.blocks, OffsetsOf(bad), 2, nullptr, &err);
  EXPECT_TRUE(err.find("feature fa") != std::string::npos && err.find("out of range") != std::string::npos);
  // Embedding too short (wrong dim).
  std::vector<Block> short_blocks = in.blocks;
  short_blocks[0].count = 2;
  RunForward(w, short_blocks, OffsetsOf(s), 2, nullptr, &err);
  EXPECT_TRUE(err.find("feature fa") != std::string::npos && err.find("wrong embedding dim") != std::string::npos);
  // feature_offset beyond fid_offset.
  bad = s;
  bad.feature_offset[1] = 100;
  RunForward(w, in.blocks, OffsetsOf(bad), 2, nullptr, &err);
  EXPECT_TRUE(err.find("outside fid_offset") != std::string::npos);
  // Batch larger than the entries.
  RunForward(w, in.blocks, OffsetsOf(s), 5, nullptr, &err);
  EXPECT_TRUE(err.find("feature fa") != std::string::npos);
  // nfl_offset too short.
  Offsets o = OffsetsOf(s);
  o.num_nfl = 1;
  RunForward(w, in.blocks, o, 2, nullptr, &err);
  EXPECT_TRUE(err.find("feature fb") != std::string::npos);
  // v2 / v4 list sizes.
  std::vector<Block> blocks;
  std::vector<float> buf(13);
  EXPECT_TRUE(!BuildBlocksV2(w, 3, {{buf.data(), 13}}, {{0, 1}}, &blocks).empty());
  std::vector<int32_t> lens = {6, 2, 3, 1};
  EXPECT_TRUE(BuildBlocksV4(w, 2, {buf.data(), 13}, lens.data(), 4, &blocks).find("sums to 12") != std::string::npos);
  // Malformed protos and INDIVIDUAL lists of the wrong length.
  EXPECT_TRUE(!ExtractFromExampleBatch(w, std::string("\x0a\x05\x01", 3), &batch).empty());
  Msg short_batch;
  short_batch.Sub(1, Msg().Bytes(1, "fa").Sub(2, FidFeature({1}))).Varint(3, 2);
  err = ExtractFromExampleBatch(w, short_batch.str(), &batch);
  EXPECT_TRUE(err.find("fa has 1 features") != std::string::npos);
  std::string truncated = Msg().Sub(1, Msg().Bytes(1, "fa").Sub(2, FidFeature({1, 2}))).str();
  truncated.pop_back();
  EXPECT_TRUE(!ExtractFromExamples(w, {truncated}, &batch).empty());
}

// ---------------------------------------------------------------------------------------------
// Wide slices (the vector tiles; e, 140 wide, takes three passes over its fids in the backward,
// the last one a partial tile; a bias slice pooled in the same pass), empty entries and duplicated
// fids: the forward is bit-identical to
// upstream's serial loop, the backward to its adjoint in the order BackwardRows documents, with or
// without threads. At 13,200 rows the concat output (15.8 MB) is written with streaming stores.

void TestWideSlicesExact(int batch) {
  std::mt19937 rng(7);
  auto rnd = [&rng](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  const std::vector<std::string> names = {"a", "b", "c", "d", "e"};  // sorted = feature order
  const std::vector<int> dims = {16, 64, 32, 48, 140};
  const std::vector<int> pooling = {kSum, kMean, kMean, kSum, kMean};
  const int num_features = names.size();
  Msg cfgs;
  std::vector<testing::Slice> concat, bias;
  for (int f = 0; f < num_features; ++f) {
    AddFeature(&cfgs, names[f], FeatureConfigMsg("t" + std::to_string(f % 2), pooling[f], {dims[f]}));
    concat.push_back({names[f], 0, dims[f]});
    bias.push_back({names[f], 0, 1});
  }
  bias.push_back({"b", 5, 6});  // a second slice of b into the same ADDN output keeps its order
  AddLayout(&cfgs, "bias", OutConfigMsg(kAddN, bias, {{-1, 1}}));
  AddLayout(&cfgs, "concat", OutConfigMsg(kConcat, concat, {{-1, 300}}));
  const LayoutConfig c = MustParse(cfgs.str());

  // One block per feature (rows of its dim); fids from 12 rows, so entries repeat rows.
  const int rows = 12;
  std::vector<std::vector<float>> tables(num_features);
  std::vector<Block> blocks;
  for (int f = 0; f < num_features; ++f) {
    for (int i = 0; i < rows * dims[f]; ++i) tables[f].push_back(rnd(-1000, 1000) / 997.f);
    blocks.push_back({tables[f].data(), dims[f], (int64_t)tables[f].size()});
  }
  std::vector<uint64_t> fid_offset;
  std::vector<int32_t> feature_offset;
  std::vector<uint32_t> nfl_offset;
  for (int f = 0; f < num_features; ++f) {
    nfl_offset.push_back(feature_offset.size());
    for (int r = 0; r < batch; ++r) {
      feature_offset.push_back(fid_offset.size());
      for (int k = rnd(0, 9); k > 0; --k) fid_offset.push_back(Pack(f, rnd(0, rows - 1)));
    }
  }
  const Offsets o{fid_offset.data(), (int64_t)fid_offset.size(), feature_offset.data(),
                  (int64_t)feature_offset.size(), nfl_offset.data(), (int64_t)nfl_offset.size()};
  auto fids_of = [&](int f, int r) {
    const int64_t e = f * batch + r;
    const int64_t end = e + 1 < (int64_t)feature_offset.size() ? feature_offset[e + 1] : fid_offset.size();
    return std::vector<uint64_t>(fid_offset.begin() + feature_offset[e], fid_offset.begin() + end);
  };

  // Upstream's serial loop: layout, slice, row, fid, each term added into zeros.
  std::vector<std::vector<float>> want;
  for (const OutputInfo& info : c.outputs()) want.emplace_back(batch * info.row_elems, 0.f);
  for (const LayoutInfo& layout : c.layouts()) {
    for (const SliceInfo& s : layout.slices) {
      for (int r = 0; r < batch; ++r) {
        const std::vector<uint64_t> fids = fids_of(s.feature_idx, r);
        float* dst = want[s.output].data() + r * c.outputs()[s.output].row_elems + s.offset;
        for (uint64_t v : fids) {
          const float* e = tables[v >> 32].data() + (v & 0xffffffffu) * dims[v >> 32] + s.start;
          for (int t = 0; t < s.width; ++t) dst[t] += s.pooling == kMean ? e[t] / fids.size() : e[t];
        }
      }
    }
  }
  // Outputs 64-byte aligned, as TensorFlow allocates them.
  std::vector<std::vector<float>> storage;
  std::vector<FloatBuffer> outs;
  for (const OutputInfo& info : c.outputs()) {
    storage.emplace_back(batch * info.row_elems + 16, -7.f);
    float* p = storage.back().data();
    while (reinterpret_cast<uintptr_t>(p) % 64) ++p;
    outs.push_back({p, batch * info.row_elems});
  }
  for (const ParallelRunner& runner : {ParallelRunner(), ThreadRunner()}) {
    EXPECT_TRUE(LayoutForward(c, blocks, o, batch, outs, runner, kTestThreads).empty());
    for (size_t i = 0; i < outs.size(); ++i) {
      EXPECT_TRUE(std::memcmp(outs[i].data, want[i].data(), want[i].size() * sizeof(float)) == 0);
    }
    // Backward of the upstream gradient `outs` (any values do).
    std::vector<std::vector<float>> grads(num_features);
    std::vector<Block> grad_blocks;
    // Each gradient is followed by a guard of -0.0: a masked-off lane written back, even as +0,
    // would flip it to +0.0.
    constexpr int kGuard = 8;
    for (int f = 0; f < num_features; ++f) {
      grads[f].assign(tables[f].size() + kGuard, -0.f);
      std::fill_n(grads[f].begin(), tables[f].size(), 0.f);
      grad_blocks.push_back({grads[f].data(), dims[f], (int64_t)tables[f].size()});
    }
    EXPECT_TRUE(LayoutBackward(c, grad_blocks, o, batch, outs, runner, kTestThreads).empty());
    // The adjoint, summed in the documented order: per feature step (its bias and concat slices;
    // b's second bias slice comes after e's), row by row: the slices' terms summed, slice by
    // slice, into one row over the elements they span, then added to each fid's row, fid by fid.
    const std::vector<SliceInfo>& bs = c.layouts()[0].slices;  // bias
    const std::vector<SliceInfo>& cs = c.layouts()[1].slices;  // concat
    const std::vector<std::vector<const SliceInfo*>> steps = {
        {&bs[0], &cs[0]}, {&bs[1], &cs[1]}, {&bs[2], &cs[2]}, {&bs[3], &cs[3]}, {&bs[4], &cs[4]}, {&bs[5]}};
    std::vector<std::vector<float>> adjoint(num_features);
    for (int f = 0; f < num_features; ++f) adjoint[f].assign(tables[f].size(), 0.f);
    for (const auto& step : steps) {
      int lo = step[0]->start, hi = 0;
      for (const SliceInfo* s : step) lo = std::min(lo, s->start), hi = std::max(hi, s->start + s->width);
      for (int r = 0; r < batch; ++r) {
        const std::vector<uint64_t> fids = fids_of(step[0]->feature_idx, r);
        std::vector<float> sum(hi - lo, 0.f);
        for (const SliceInfo* s : step) {
          const float* g = outs[s->output].data + r * c.outputs()[s->output].row_elems + s->offset;
          for (int t = 0; t < s->width; ++t) {
            sum[s->start - lo + t] += s->pooling == kMean ? g[t] / fids.size() : g[t];
          }
        }
        for (uint64_t fid : fids) {
          float* e = adjoint[fid >> 32].data() + (fid & 0xffffffffu) * dims[fid >> 32] + lo;
          for (int t = 0; t < hi - lo; ++t) e[t] += sum[t];
        }
      }
    }
    for (int f = 0; f < num_features; ++f) {
      const float* guard = grads[f].data() + tables[f].size();
      EXPECT_TRUE(std::memcmp(grads[f].data(), adjoint[f].data(), adjoint[f].size() * sizeof(float)) == 0);
      EXPECT_TRUE(std::all_of(guard, guard + kGuard, [](float x) { return std::signbit(x); }));
    }
  }
}

// Gradient buffers are zeroed whole, small ones with plain stores and large ones (9 MB here, from
// an unaligned start, in 1 MiB pieces) with streaming stores, with or without threads.
void TestZeroBuffers() {
  for (const ParallelRunner& runner : {ParallelRunner(), ThreadRunner()}) {
    std::vector<float> small(1000, 3.f), large((9 << 20) / sizeof(float) + 13, 3.f);
    ZeroBuffers({{small.data() + 1, 998}}, runner);
    EXPECT_TRUE(small.front() == 3.f && small.back() == 3.f);
    EXPECT_TRUE(std::all_of(small.begin() + 1, small.end() - 1, [](float x) { return x == 0.f; }));
    ZeroBuffers({{large.data() + 3, (int64_t)large.size() - 4}, {small.data(), 1}}, runner);
    EXPECT_TRUE(large[2] == 3.f && large.back() == 3.f && small[0] == 0.f);
    EXPECT_TRUE(std::all_of(large.begin() + 3, large.end() - 1, [](float x) { return x == 0.f; }));
  }
}

}  // namespace
}  // namespace layout
}  // namespace monolith

int main() {
  monolith::layout::TestWorkedExample();
  monolith::layout::TestUncoveredColumnsAreZero();
  monolith::layout::TestExamplesNotUnique();
  monolith::layout::TestInstances();
  monolith::layout::TestRandomAgainstReference();
  monolith::layout::TestBadInput();
  monolith::layout::TestWideSlicesExact(45);
  monolith::layout::TestWideSlicesExact(13200);
  monolith::layout::TestZeroBuffers();
  std::printf("PASSED\n");
  return 0;
}
