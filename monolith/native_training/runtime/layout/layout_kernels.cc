#include "monolith/native_training/runtime/layout/layout_kernels.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>

namespace monolith {
namespace layout {
namespace {

// Inner loops over one slice of one embedding; __restrict lets the compiler vectorise them.
inline void Add(float* __restrict dst, const float* __restrict src, int w) {
  for (int t = 0; t < w; ++t) dst[t] += src[t];
}
inline void AddDiv(float* __restrict dst, const float* __restrict src, int w, float n) {
  // Σ (x / n), term by term, as upstream (not Σx · (1/n)): bit-identical MEAN results.
  for (int t = 0; t < w; ++t) dst[t] += src[t] / n;
}

// The entries of one feature, decoded from nfl_offset (fused_layout.md §3.1).
struct FeatureEntries {
  bool shared = false;
  int64_t start = 0;
  int64_t count = 0;
};

std::string DecodeFeature(const Offsets& o, const SliceInfo& s, FeatureEntries* fe) {
  const int fi = s.feature_idx;
  if (fi >= o.num_nfl) {
    return "feature " + s.feature_name + ": nfl_offset has " + std::to_string(o.num_nfl) +
           " entries, feature index is " + std::to_string(fi);
  }
  fe->shared = o.nfl_offset[fi] & kSharedBit;
  fe->start = o.nfl_offset[fi] & ~kSharedBit;
  const int64_t next = fi + 1 < o.num_nfl ? (o.nfl_offset[fi + 1] & ~kSharedBit) : o.num_entries;
  fe->count = next - fe->start;
  if (fe->count < 0) {
    return "feature " + s.feature_name + ": nfl_offset entries decrease at feature index " +
           std::to_string(fi);
  }
  return "";
}

// Error messages are built out of line so that the per-fid fast paths stay small and inlined.
[[gnu::noinline, gnu::cold]] std::string EntryError(const Offsets& o, const SliceInfo& s, int64_t e) {
  if (e < 0 || e >= o.num_entries) {
    return "feature " + s.feature_name + ": entry " + std::to_string(e) +
           " out of range of feature_offset (size " + std::to_string(o.num_entries) + ")";
  }
  const int64_t begin = o.feature_offset[e];
  const int64_t end = e + 1 < o.num_entries ? o.feature_offset[e + 1] : o.num_fids;
  return "feature " + s.feature_name + ": feature_offset entry " + std::to_string(e) +
         " gives fids [" + std::to_string(begin) + ", " + std::to_string(end) +
         ") outside fid_offset (size " + std::to_string(o.num_fids) + ")";
}

// fid_offset range [*begin, *end) of entry e; false (with *err set) when out of range.
inline bool EntryFids(const Offsets& o, const SliceInfo& s, int64_t e, int64_t* begin,
                      int64_t* end, std::string* err) {
  if (e >= 0 && e < o.num_entries) {
    *begin = o.feature_offset[e];
    *end = e + 1 < o.num_entries ? o.feature_offset[e + 1] : o.num_fids;
    if (*begin >= 0 && *end >= *begin && *end <= o.num_fids) return true;
  }
  *err = EntryError(o, s, e);
  return false;
}

[[gnu::noinline, gnu::cold]] std::string ResolveError(const std::vector<Block>& blocks, uint64_t v,
                                                      const SliceInfo& s) {
  const int32_t i1 = static_cast<int32_t>(v >> 32);
  const int32_t i2 = static_cast<int32_t>(v & 0xffffffffu);
  if (i1 < 0 || i1 >= static_cast<int64_t>(blocks.size()) || i2 < 0) {
    return "feature " + s.feature_name + ": fid_offset (" + std::to_string(i1) + ", " +
           std::to_string(i2) + ") out of range of " + std::to_string(blocks.size()) +
           " embedding blocks";
  }
  const Block& b = blocks[i1];
  const int64_t off = static_cast<int64_t>(i2) * b.stride + s.start;
  return "feature " + s.feature_name + ": embedding elements [" + std::to_string(off) + ", " +
         std::to_string(off + s.width) + ") out of range of block " + std::to_string(i1) +
         " (size " + std::to_string(b.count) + "); wrong embedding dim?";
}

// Address of E(f)[slice.start] for one fid_offset value, bounds-checked against its block.
inline float* Resolve(const std::vector<Block>& blocks, uint64_t v, const SliceInfo& s,
                      std::string* err) {
  const int32_t i1 = static_cast<int32_t>(v >> 32);
  const int32_t i2 = static_cast<int32_t>(v & 0xffffffffu);
  if (i1 >= 0 && i1 < static_cast<int64_t>(blocks.size()) && i2 >= 0) {
    const Block& b = blocks[i1];
    const int64_t off = static_cast<int64_t>(i2) * b.stride + s.start;
    if (off + s.width <= b.count) return b.data + off;
  }
  *err = ResolveError(blocks, v, s);
  return nullptr;
}

// Pools the fids [begin, end) of one entry into dst (the slice's region of one row).
inline bool PoolEntry(const SliceInfo& s, const std::vector<Block>& blocks, const Offsets& o,
                      int64_t begin, int64_t end, float* dst, std::string* err) {
  const int64_t n = end - begin;
  const int w = s.width;
  if (s.pooling == kFirstN) {
    const int64_t kept = std::min<int64_t>(n, s.max_sequence_length);
    for (int64_t k = 0; k < kept; ++k) {
      const float* src = Resolve(blocks, o.fid_offset[begin + k], s, err);
      if (!src) return false;
      Add(dst + k * s.seq_stride, src, w);
    }
  } else if (s.pooling == kMean) {
    const float nf = static_cast<float>(n);
    for (int64_t k = begin; k < end; ++k) {
      const float* src = Resolve(blocks, o.fid_offset[k], s, err);
      if (!src) return false;
      AddDiv(dst, src, w, nf);
    }
  } else {
    for (int64_t k = begin; k < end; ++k) {
      const float* src = Resolve(blocks, o.fid_offset[k], s, err);
      if (!src) return false;
      Add(dst, src, w);
    }
  }
  return true;
}

// Starts loading the embeddings of entry e. Fids are random rows of large tables, so without this
// every fid costs a full memory latency; issued a few entries ahead of the pooling. Invalid
// offsets are skipped here and reported by the pooling itself.
inline void PrefetchEntry(const std::vector<Block>& blocks, const Offsets& o, const SliceInfo& s,
                          int64_t e) {
  if (e >= o.num_entries) return;
  const int64_t begin = o.feature_offset[e];
  const int64_t end = e + 1 < o.num_entries ? o.feature_offset[e + 1] : o.num_fids;
  if (begin < 0 || end > o.num_fids) return;
  for (int64_t k = begin; k < end; ++k) {
    const uint64_t v = o.fid_offset[k];
    const uint32_t i1 = static_cast<uint32_t>(v >> 32);
    const uint32_t i2 = static_cast<uint32_t>(v & 0xffffffffu);
    if (i1 >= blocks.size()) continue;
    const Block& b = blocks[i1];
    const int64_t off = static_cast<int64_t>(i2) * b.stride + s.start;
    if (off + s.width <= b.count) __builtin_prefetch(b.data + off);
  }
}

constexpr int64_t kPrefetchEntries = 4;

// Adds a pooled region (as laid out in one output row) into another row's region.
inline void AddRegion(const SliceInfo& s, const float* src, float* dst) {
  if (s.pooling == kFirstN) {
    for (int k = 0; k < s.max_sequence_length; ++k) {
      Add(dst + k * s.seq_stride, src + k * s.seq_stride, s.width);
    }
  } else {
    Add(dst, src, s.width);
  }
}

// Rows [row_begin, row_end) of one layout, slices in order (the per-element operation order of
// upstream's serial kernel, so any partition of the rows gives bit-identical results).
std::string ForwardLayout(const LayoutConfig& config, const LayoutInfo& layout,
                          const std::vector<Block>& blocks, const Offsets& o, int64_t row_begin,
                          int64_t row_end, const std::vector<FloatBuffer>& outputs) {
  std::vector<float> shared_tmp;
  for (const SliceInfo& s : layout.slices) {
    FeatureEntries fe;
    std::string err = DecodeFeature(o, s, &fe);
    if (!err.empty()) return err;
    if (fe.count == 0) continue;
    float* out = outputs[s.output].data;
    const int64_t row = config.outputs()[s.output].row_elems;
    int64_t begin = 0, end = 0;
    if (fe.shared) {
      // Pool once, then add the value into every row (also correct for ADDN).
      shared_tmp.assign(s.region, 0.f);
      if (!EntryFids(o, s, fe.start, &begin, &end, &err)) return err;
      if (!PoolEntry(s, blocks, o, begin, end, shared_tmp.data(), &err)) return err;
      for (int64_t r = row_begin; r < row_end; ++r) AddRegion(s, shared_tmp.data(), out + r * row + s.offset);
      continue;
    }
    for (int64_t r = row_begin; r < row_end; ++r) {
      if (r + kPrefetchEntries < row_end) PrefetchEntry(blocks, o, s, fe.start + r + kPrefetchEntries);
      if (!EntryFids(o, s, fe.start + r, &begin, &end, &err)) return err;
      if (!PoolEntry(s, blocks, o, begin, end, out + r * row + s.offset, &err)) return err;
    }
  }
  return "";
}

constexpr int kNumLocks = 512;

// Scatters the gradient region g of one entry into the fids' gradient blocks.
inline bool ScatterEntry(const SliceInfo& s, const std::vector<Block>& blocks, const Offsets& o,
                         int64_t begin, int64_t end, const float* g, std::mutex* locks,
                         std::string* err) {
  const int64_t n = end - begin;
  const int64_t kept = s.pooling == kFirstN ? std::min<int64_t>(n, s.max_sequence_length) : n;
  const float nf = static_cast<float>(n);
  for (int64_t k = 0; k < kept; ++k) {
    const uint64_t v = o.fid_offset[begin + k];
    float* dst = Resolve(blocks, v, s, err);
    if (!dst) return false;
    std::unique_lock<std::mutex> lock;
    if (locks) lock = std::unique_lock<std::mutex>(locks[((v >> 32) * (v & 0xffffffffu)) % kNumLocks]);
    if (s.pooling == kFirstN) {
      Add(dst, g + k * s.seq_stride, s.width);
    } else if (s.pooling == kMean) {
      AddDiv(dst, g, s.width, nf);
    } else {
      Add(dst, g, s.width);
    }
  }
  return true;
}

std::string BackwardLayout(const LayoutConfig& config, const LayoutInfo& layout,
                           const std::vector<Block>& blocks, const Offsets& o, int64_t row_begin,
                           int64_t row_end, const std::vector<FloatBuffer>& grads, std::mutex* locks) {
  std::vector<float> shared_tmp;
  for (const SliceInfo& s : layout.slices) {
    FeatureEntries fe;
    std::string err = DecodeFeature(o, s, &fe);
    if (!err.empty()) return err;
    if (fe.count == 0) continue;
    const float* g = grads[s.output].data;
    const int64_t row = config.outputs()[s.output].row_elems;
    int64_t begin = 0, end = 0;
    if (fe.shared) {
      // Every row pooled the same entry: sum the rows' gradients, then scatter once.
      shared_tmp.assign(s.region, 0.f);
      for (int64_t r = row_begin; r < row_end; ++r) AddRegion(s, g + r * row + s.offset, shared_tmp.data());
      if (!EntryFids(o, s, fe.start, &begin, &end, &err)) return err;
      if (!ScatterEntry(s, blocks, o, begin, end, shared_tmp.data(), locks, &err)) return err;
      continue;
    }
    for (int64_t r = row_begin; r < row_end; ++r) {
      if (r + kPrefetchEntries < row_end) PrefetchEntry(blocks, o, s, fe.start + r + kPrefetchEntries);
      if (!EntryFids(o, s, fe.start + r, &begin, &end, &err)) return err;
      if (!ScatterEntry(s, blocks, o, begin, end, g + r * row + s.offset, locks, &err)) return err;
    }
  }
  return "";
}

// Rows per work item: a block of rows of one layout keeps its output rows in cache while the
// slices are walked, and gives the thread pool enough items even with few layouts.
constexpr int64_t kRowBlock = 64;

// Runs per_item(layout, row_begin, row_end) over every (layout, block of rows), in parallel when a
// runner is given, and returns the first error in (layout, row) order.
std::string ForEachWorkItem(
    const LayoutConfig& config, int64_t batch_size, const ParallelRunner& runner,
    const std::function<std::string(const LayoutInfo&, int64_t, int64_t)>& per_item) {
  const auto& layouts = config.layouts();
  const int64_t row_blocks = std::max<int64_t>(1, (batch_size + kRowBlock - 1) / kRowBlock);
  const int64_t n = layouts.size() * row_blocks;
  std::vector<std::string> errors(n);
  auto fn = [&](int64_t i) {
    const int64_t begin = (i % row_blocks) * kRowBlock;
    errors[i] = per_item(layouts[i / row_blocks], begin, std::min(batch_size, begin + kRowBlock));
  };
  if (runner && n > 1) {
    runner(n, fn);
  } else {
    for (int64_t i = 0; i < n; ++i) fn(i);
  }
  for (const std::string& e : errors) {
    if (!e.empty()) return e;
  }
  return "";
}

}  // namespace

std::vector<Block> BuildBlocksV1(const std::vector<FloatBuffer>& tensors,
                                 const std::vector<int64_t>& cols) {
  std::vector<Block> blocks;
  for (size_t i = 0; i < tensors.size(); ++i) blocks.push_back({tensors[i].data, cols[i], tensors[i].size});
  return blocks;
}

std::string BuildBlocksV2(const LayoutConfig& config, int ps_num,
                          const std::vector<FloatBuffer>& tensors,
                          const std::vector<std::vector<int64_t>>& row_splits,
                          std::vector<Block>* blocks) {
  const size_t num_tables = config.tables().size();
  blocks->clear();
  if (tensors.size() != ps_num * num_tables || row_splits.size() != tensors.size()) {
    return "version 2 needs ps_num * num_tables = " + std::to_string(ps_num * num_tables) +
           " embedding tensors and row splits, got " + std::to_string(tensors.size()) + " and " +
           std::to_string(row_splits.size());
  }
  for (size_t ti = 0; ti < num_tables; ++ti) {
    const TableInfo& table = config.tables()[ti];
    for (int ps = 0; ps < ps_num; ++ps) {
      const size_t idx = ti * ps_num + ps;
      const std::vector<int64_t>& split = row_splits[idx];
      if (split.size() != table.features.size() + 1) {
        return "table " + table.name + ": fid_list_row_split " + std::to_string(idx) + " has " +
               std::to_string(split.size()) + " entries, expected " +
               std::to_string(table.features.size() + 1);
      }
      int64_t elem = 0;
      for (size_t k = 0; k < table.features.size(); ++k) {
        const FeatureInfo& f = config.features()[table.features[k]];
        const int64_t rows = split[k + 1] - split[k];
        if (rows < 0 || elem + rows * f.dims_sum > tensors[idx].size) {
          return "feature " + f.name + ": fid_list_row_split " + std::to_string(idx) +
                 " does not match embedding tensor of size " + std::to_string(tensors[idx].size);
        }
        blocks->push_back({tensors[idx].data + elem, f.dims_sum, rows * f.dims_sum});
        elem += rows * f.dims_sum;
      }
    }
  }
  return "";
}

std::vector<Block> BuildBlocksV3(const std::vector<FloatBuffer>& tensors) {
  std::vector<Block> blocks;
  for (const FloatBuffer& t : tensors) blocks.push_back({t.data, 1, t.size});
  return blocks;
}

std::string BuildBlocksV4(const LayoutConfig& config, int ps_num, const FloatBuffer& buffer,
                          const int32_t* piece_lengths, int64_t num_pieces,
                          std::vector<Block>* blocks) {
  const int64_t num_tables = config.tables().size();
  if (num_pieces != ps_num * num_tables) {
    return "fid_list_emb_row_lenth has " + std::to_string(num_pieces) +
           " entries, expected ps_num * num_tables = " + std::to_string(ps_num * num_tables);
  }
  blocks->assign(num_pieces, Block{});
  int64_t elem = 0;
  for (int ps = 0; ps < ps_num; ++ps) {
    for (int64_t ti = 0; ti < num_tables; ++ti) {
      const int32_t len = piece_lengths[ps * num_tables + ti];
      if (len < 0) return "fid_list_emb_row_lenth has a negative entry";
      (*blocks)[ti * ps_num + ps] = {buffer.data + elem, 1, len};
      elem += len;
    }
  }
  if (elem != buffer.size) {
    return "fid_list_emb_row_lenth sums to " + std::to_string(elem) +
           " but the embedding buffer has " + std::to_string(buffer.size) + " elements";
  }
  return "";
}

std::string CheckOutputs(const LayoutConfig& config, int64_t batch_size,
                         const std::vector<FloatBuffer>& outputs) {
  if (batch_size < 0) return "batch_size must be >= 0, got " + std::to_string(batch_size);
  if (outputs.size() != config.outputs().size()) {
    return "expected " + std::to_string(config.outputs().size()) + " layout tensors, got " +
           std::to_string(outputs.size());
  }
  for (size_t i = 0; i < outputs.size(); ++i) {
    const OutputInfo& info = config.outputs()[i];
    if (info.Rows(batch_size) < batch_size || outputs[i].size < batch_size * info.row_elems) {
      return "layout tensor " + std::to_string(i) + " cannot hold " + std::to_string(batch_size) +
             " rows of " + std::to_string(info.row_elems) + " elements";
    }
  }
  return "";
}

std::string LayoutForward(const LayoutConfig& config, const std::vector<Block>& blocks,
                          const Offsets& offsets, int64_t batch_size,
                          const std::vector<FloatBuffer>& outputs, const ParallelRunner& runner) {
  std::string err = CheckOutputs(config, batch_size, outputs);
  if (!err.empty()) return err;
  for (const FloatBuffer& o : outputs) std::fill(o.data, o.data + o.size, 0.f);
  return ForEachWorkItem(config, batch_size, runner,
                         [&](const LayoutInfo& layout, int64_t row_begin, int64_t row_end) {
                           return ForwardLayout(config, layout, blocks, offsets, row_begin, row_end,
                                                outputs);
                         });
}

std::string LayoutBackward(const LayoutConfig& config, const std::vector<Block>& grad_blocks,
                           const Offsets& offsets, int64_t batch_size,
                           const std::vector<FloatBuffer>& output_grads,
                           const ParallelRunner& runner) {
  std::string err = CheckOutputs(config, batch_size, output_grads);
  if (!err.empty()) return err;
  // Work items may share fids, so concurrent items lock striped mutexes around each scatter.
  std::unique_ptr<std::mutex[]> locks;
  if (runner) locks.reset(new std::mutex[kNumLocks]);
  return ForEachWorkItem(config, batch_size, runner,
                         [&](const LayoutInfo& layout, int64_t row_begin, int64_t row_end) {
                           return BackwardLayout(config, layout, grad_blocks, offsets, row_begin,
                                                 row_end, output_grads, locks.get());
                         });
}

}  // namespace layout
}  // namespace monolith
