// GPU vs CPU comparison of the fused layout kernels (versions 3, 4 and multi-request 5) on random
// configs and batches, forward and backward, plus a bad-offset case. TF-free, so it runs on any
// machine with a GPU. Skips (exit 0, with a message) when built without --config=cuda or when no
// CUDA device is present.
#include <cstdio>

#include "monolith/native_training/runtime/layout/layout_test_util.h"

#ifdef MONOLITH_USE_CUDA
#include "monolith/native_training/runtime/layout/layout_gpu.h"

namespace monolith {
namespace layout {
namespace {

using namespace test_util;  // NOLINT: the shared test helpers

// A device copy of a host vector, freed on destruction.
template <typename T>
class DeviceVector {
 public:
  explicit DeviceVector(const std::vector<T>& host) : size_(host.size()) {
    ptr_ = static_cast<T*>(gpu::Malloc(size_ * sizeof(T)));
    EXPECT_TRUE(ptr_ != nullptr);
    if (size_) gpu::CopyToDevice(ptr_, host.data(), size_ * sizeof(T));
  }
  ~DeviceVector() { gpu::Free(ptr_); }
  DeviceVector(const DeviceVector&) = delete;
  DeviceVector(DeviceVector&& o) : ptr_(o.ptr_), size_(o.size_) { o.ptr_ = nullptr; }
  T* data() const { return ptr_; }
  int64_t size() const { return size_; }
  std::vector<T> ToHost() const {
    std::vector<T> h(size_);
    if (size_) gpu::CopyToHost(h.data(), ptr_, size_ * sizeof(T));
    return h;
  }

 private:
  T* ptr_;
  int64_t size_;
};

// The version's block table over device tensors (same builders as the CPU kernels).
std::vector<Block> DeviceBlocks(int version, const LayoutConfig& c, int ps_num,
                                const std::vector<DeviceVector<float>>& tensors,
                                const std::vector<int32_t>& piece_lengths) {
  std::vector<Block> blocks;
  if (version == 4) {
    EXPECT_TRUE(BuildBlocksV4(c, ps_num, {tensors[0].data(), tensors[0].size()},
                              piece_lengths.data(), piece_lengths.size(), &blocks)
                    .empty());
    return blocks;
  }
  std::vector<FloatBuffer> bufs;
  for (const auto& t : tensors) bufs.push_back({t.data(), t.size()});
  return BuildBlocksV3(bufs);
}

struct DeviceOffsets {
  DeviceVector<uint64_t> fid;
  DeviceVector<int32_t> feature;
  DeviceVector<uint32_t> nfl;
  Offsets view() const {
    return Offsets{fid.data(), fid.size(), feature.data(), feature.size(), nfl.data(), nfl.size()};
  }
};

gpu::Request SingleRequest(const Offsets& o, int64_t batch, int64_t num_blocks) {
  gpu::Request r;
  r.batch_size = batch;
  r.num_nfl = o.num_nfl;
  r.num_entries = o.num_entries;
  r.num_fids = o.num_fids;
  r.num_blocks = num_blocks;
  return r;
}

std::vector<std::vector<float>> GpuForward(const LayoutConfig& c, const std::vector<Block>& blocks,
                                           const Offsets& offsets,
                                           const std::vector<gpu::Request>& requests,
                                           int64_t rows, std::string* error = nullptr) {
  std::vector<DeviceVector<float>> outs;
  std::vector<FloatBuffer> bufs;
  for (const OutputInfo& info : c.outputs()) {
    outs.emplace_back(std::vector<float>(info.Rows(rows) * info.row_elems, -7.f));
    bufs.push_back({outs.back().data(), outs.back().size()});
  }
  const std::string err = gpu::LayoutForward(c, blocks, offsets, requests, bufs, nullptr);
  if (error) {
    *error = err;
  } else {
    if (!err.empty()) std::fprintf(stderr, "gpu forward error: %s\n", err.c_str());
    EXPECT_TRUE(err.empty());
  }
  std::vector<std::vector<float>> host;
  for (const auto& o : outs) host.push_back(o.ToHost());
  return host;
}

void TestRandomGpuVsCpu() {
  std::mt19937 rng(99);
  int cases = 0;
  for (int iter = 0; iter < 200; ++iter) {
    const int batch = 1 + iter % 7;
    RandomCase rc = MakeRandomCase(&rng, iter % 2 == 0, batch);
    const LayoutConfig c = MustParse(rc.config);
    BatchFids fids;
    std::vector<std::string_view> views(rc.protos.begin(), rc.protos.end());
    EXPECT_TRUE((rc.example_batch ? ExtractFromExampleBatch(c, views[0], &fids)
                                  : ExtractFromExamples(c, views, &fids))
                    .empty());
    for (int version : {3, 4}) {
      const int P = 1 + iter % 3;
      ShardingResult s;
      EXPECT_TRUE(ShardFids(c, fids, P, iter % 3 != 0, version, 320000, nullptr, &s).empty());
      const VersionInputs in = MakeInputs(version, c, s, MakeEmbeddings(c, s));
      const auto want = RunForward(c, in.blocks, OffsetsOf(s), batch);

      std::vector<DeviceVector<float>> dev_emb;
      for (const auto& t : in.tensors) dev_emb.emplace_back(t);
      const std::vector<Block> blocks = DeviceBlocks(version, c, P, dev_emb, in.piece_lengths);
      DeviceOffsets off{DeviceVector<uint64_t>(s.fid_offset), DeviceVector<int32_t>(s.feature_offset),
                        DeviceVector<uint32_t>(s.nfl_offset)};
      const auto got = GpuForward(c, blocks, off.view(), {SingleRequest(off.view(), batch, blocks.size())},
                                  batch);
      for (size_t i = 0; i < want.size(); ++i) EXPECT_TRUE(Near(got[i], want[i]));

      // Backward with random upstream gradients.
      std::vector<std::vector<float>> g;
      std::vector<DeviceVector<float>> dev_g;
      std::vector<FloatBuffer> gbufs;
      for (const auto& w : want) {
        g.emplace_back(w.size());
        for (float& x : g.back()) x = std::uniform_real_distribution<float>(-1, 1)(rng);
        dev_g.emplace_back(g.back());
        gbufs.push_back({dev_g.back().data(), dev_g.back().size()});
      }
      const auto want_grad = RunBackward(version, c, s, in, batch, g);
      std::vector<DeviceVector<float>> dev_grad;
      std::vector<FloatBuffer> grad_bufs;
      for (const auto& t : in.tensors) {
        dev_grad.emplace_back(std::vector<float>(t.size(), 3.f));  // must be zeroed by the kernel
        grad_bufs.push_back({dev_grad.back().data(), dev_grad.back().size()});
      }
      const std::vector<Block> grad_blocks = DeviceBlocks(version, c, P, dev_grad, in.piece_lengths);
      const std::string err =
          gpu::LayoutBackward(c, grad_blocks, off.view(), batch, gbufs, grad_bufs, nullptr);
      if (!err.empty()) std::fprintf(stderr, "gpu backward error: %s\n", err.c_str());
      EXPECT_TRUE(err.empty());
      for (size_t i = 0; i < dev_grad.size(); ++i) EXPECT_TRUE(Near(dev_grad[i].ToHost(), want_grad[i], 1e-3f));
      ++cases;
    }
  }
  std::printf("random GPU vs CPU: %d cases passed\n", cases);
}

// v5: two requests with the same config, concatenated as a serving batcher does.
void TestMultiRequest() {
  std::mt19937 rng(5);
  for (int iter = 0; iter < 50; ++iter) {
    RandomCase first = MakeRandomCase(&rng, false, 2 + iter % 3);
    const LayoutConfig c = MustParse(first.config);
    std::vector<ShardingResult> parts;
    std::vector<std::vector<std::vector<float>>> embs, want;
    std::vector<int> batches;
    for (int r = 0; r < 2; ++r) {
      // Request 1: another random batch read with request 0's config (fids of features it
      // does not configure are ignored, so some of its entries are empty).
      RandomCase rc = r == 0 ? first : MakeRandomCase(&rng, false, 1 + iter % 4);
      BatchFids fids;
      std::vector<std::string_view> views(rc.protos.begin(), rc.protos.end());
      const std::string err = rc.example_batch ? ExtractFromExampleBatch(c, views[0], &fids)
                                               : ExtractFromExamples(c, views, &fids);
      EXPECT_TRUE(err.empty());
      ShardingResult s;
      EXPECT_TRUE(ShardFids(c, fids, 2, true, 5, 320000, nullptr, &s).empty());
      embs.push_back(MakeEmbeddings(c, s));
      const VersionInputs in = MakeInputs(5, c, s, embs.back());
      want.push_back(RunForward(c, in.blocks, OffsetsOf(s), s.batch_size));
      batches.push_back(s.batch_size);
      parts.push_back(std::move(s));
    }
    const int64_t M = embs[0].size();
    std::vector<uint64_t> fid;
    std::vector<int32_t> feature;
    std::vector<uint32_t> nfl;
    std::vector<std::vector<float>> tensors(M);
    std::vector<Block> blocks;
    std::vector<gpu::Request> requests;
    std::vector<int64_t> emb_begin(M, 0);
    int64_t rows = 0;
    for (int r = 0; r < 2; ++r) {
      const ShardingResult& s = parts[r];
      gpu::Request q;
      q.batch_size = s.batch_size;
      q.row_begin = rows;
      q.nfl_begin = nfl.size();
      q.num_nfl = s.nfl_offset.size();
      q.entry_begin = feature.size();
      q.num_entries = s.feature_offset.size();
      q.fid_begin = fid.size();
      q.num_fids = s.fid_offset.size();
      q.block_begin = r * M;
      q.num_blocks = M;
      requests.push_back(q);
      rows += s.batch_size;
      fid.insert(fid.end(), s.fid_offset.begin(), s.fid_offset.end());
      feature.insert(feature.end(), s.feature_offset.begin(), s.feature_offset.end());
      nfl.insert(nfl.end(), s.nfl_offset.begin(), s.nfl_offset.end());
      for (int64_t i = 0; i < M; ++i) tensors[i].insert(tensors[i].end(), embs[r][i].begin(), embs[r][i].end());
    }
    std::vector<DeviceVector<float>> dev_emb;
    for (const auto& t : tensors) dev_emb.emplace_back(t);
    for (int r = 0; r < 2; ++r) {
      for (int64_t i = 0; i < M; ++i) {
        const int64_t n = embs[r][i].size();
        blocks.push_back({dev_emb[i].data() + emb_begin[i], 1, n});
        emb_begin[i] += n;
      }
    }
    DeviceOffsets off{DeviceVector<uint64_t>(fid), DeviceVector<int32_t>(feature), DeviceVector<uint32_t>(nfl)};
    const auto got = GpuForward(c, blocks, off.view(), requests, rows);
    for (size_t i = 0; i < got.size(); ++i) {
      const int64_t row_elems = c.outputs()[i].row_elems;
      std::vector<float> expect = want[0][i];
      expect.insert(expect.end(), want[1][i].begin(), want[1][i].end());
      EXPECT_TRUE(static_cast<int64_t>(expect.size()) == rows * row_elems);
      EXPECT_TRUE(Near(got[i], expect));
    }
  }
  std::printf("multi-request v5: passed\n");
}

void TestBadOffsetsOnGpu() {
  Msg cfgs;
  AddFeature(&cfgs, "fa", FeatureConfigMsg("t1", kSum, {4}));
  AddLayout(&cfgs, "vec", OutConfigMsg(kConcat, {{"fa", 0, 4}}, {{-1, 4}}));
  const LayoutConfig c = MustParse(cfgs.str());
  std::vector<DeviceVector<float>> emb;
  emb.emplace_back(std::vector<float>(8, 1.f));
  const std::vector<Block> blocks = DeviceBlocks(3, c, 1, emb, {});
  // Row 1's fid starts at element 6: its 4 elements run past the 8-element block.
  DeviceOffsets off{DeviceVector<uint64_t>({0, 6}), DeviceVector<int32_t>({0, 1, 2}),
                    DeviceVector<uint32_t>({0, 2})};
  std::string err;
  GpuForward(c, blocks, off.view(), {SingleRequest(off.view(), 2, 1)}, 2, &err);
  std::fprintf(stderr, "expected error: %s\n", err.c_str());
  EXPECT_TRUE(err.find("feature fa") != std::string::npos);
  DeviceOffsets off2{DeviceVector<uint64_t>({0, uint64_t{9} << 32}), DeviceVector<int32_t>({0, 1, 2}),
                     DeviceVector<uint32_t>({0, 2})};
  GpuForward(c, blocks, off2.view(), {SingleRequest(off2.view(), 2, 1)}, 2, &err);
  EXPECT_TRUE(err.find("feature fa") != std::string::npos);
  std::printf("bad offsets on GPU: passed\n");
}

}  // namespace
}  // namespace layout
}  // namespace monolith
#endif  // MONOLITH_USE_CUDA

int main() {
#ifndef MONOLITH_USE_CUDA
  std::printf("layout_gpu_test: built without --config=cuda; GPU cases skipped\n");
#else
  if (!monolith::layout::gpu::Available()) {
    std::printf("layout_gpu_test: no CUDA device; GPU cases skipped\n");
    return 0;
  }
  monolith::layout::TestRandomGpuVsCpu();
  monolith::layout::TestMultiRequest();
  monolith::layout::TestBadOffsetsOnGpu();
#endif
  return 0;
}
