#include "monolith/native_training/runtime/layout/layout_kernels.h"

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "monolith/native_training/runtime/common/prefetch.h"

namespace monolith {
namespace layout {
namespace {

// Eight (four) floats as a GCC/Clang vector: the pooling loops below keep whole tiles of a slice in
// registers while the fids are added, instead of re-reading and re-writing the destination per fid
// (that store-to-load chain, not the arithmetic, bounded the scalar loops). Built with -mavx (see
// BUILD), V8 is one YMM register; the results do not depend on the vector width.
typedef float V8 __attribute__((vector_size(32)));
typedef float V4 __attribute__((vector_size(16)));
template <class V>
inline V Load(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <class V>
inline void Store(float* p, V v) {
  std::memcpy(p, &v, sizeof v);
}

// Non-temporal stores are weakly ordered: a thread that streamed output rows fences before it
// reports its work done.
inline void StreamFence() { __builtin_ia32_sfence(); }

inline void Add(float* __restrict dst, const float* __restrict src, int w) {
  int t = 0;
  for (; t + 8 <= w; t += 8) Store<V8>(dst + t, Load<V8>(dst + t) + Load<V8>(src + t));
  for (; t < w; ++t) dst[t] += src[t];
}

// A width-1 slice pooled in the same pass over an entry's fids as a wider one (typically a bias
// layout next to a vector layout): one loop over the fids instead of two.
struct Rider {
  int64_t off;  // element of E(f) pooled
  bool assign;
  float* dst;
};

// One tile of kTiles vectors V at dst: a[j] = (assign ? term_0 : dst + term_0), then += term_k
// (MEAN: term / n), with the rider (if kRider) pooled in the same loop. The rider and the tile
// count are compile-time so that every accumulator stays in a register. `stream` (with assign):
// a 32-byte aligned V8 tile is written with non-temporal stores (see PooledTarget::stream).
template <bool kMean, bool kRider, class V, int kTiles, class Srcs>
[[gnu::always_inline]] inline void PoolTile(const Srcs& srcs, int64_t n, int64_t off, float nf,
                                            bool assign, bool stream, float* __restrict dst,
                                            const Rider* rider) {
  constexpr int kLanes = sizeof(V) / sizeof(float);
  auto term = [&](int64_t k, int j) {
    const V x = Load<V>(srcs[k] + off + j * kLanes);
    return kMean ? x / nf : x;
  };
  const int64_t rider_off = kRider ? rider->off : 0;
  auto rider_term = [&](int64_t k) { return kMean ? srcs[k][rider_off] / nf : srcs[k][rider_off]; };
  V a[kTiles];
#pragma GCC unroll 4
  for (int j = 0; j < kTiles; ++j) a[j] = assign ? term(0, j) : Load<V>(dst + j * kLanes) + term(0, j);
  float ra = 0.f;
  if (kRider) ra = rider->assign ? rider_term(0) : *rider->dst + rider_term(0);
  for (int64_t k = 1; k < n; ++k) {
#pragma GCC unroll 4
    for (int j = 0; j < kTiles; ++j) a[j] += term(k, j);
    if (kRider) ra += rider_term(k);
  }
  if (kRider) *rider->dst = ra;
  if constexpr (std::is_same<V, V8>::value) {
    if (stream && (reinterpret_cast<uintptr_t>(dst) & 31) == 0) {
#pragma GCC unroll 4
      for (int j = 0; j < kTiles; ++j) __builtin_ia32_movntps256(dst + j * kLanes, a[j]);
      return;
    }
  }
#pragma GCC unroll 4
  for (int j = 0; j < kTiles; ++j) Store<V>(dst + j * kLanes, a[j]);
}

// Pools the terms srcs[k][off, off + w) (MEAN: term / n, term by term as upstream, not Σ · (1/n),
// so results are bit-identical) for k in [0, n) onto dst[0, w), left to right per element exactly
// like upstream's per-fid `+=`. With `assign` the first term is stored instead (an exclusive region
// that was not zeroed; upstream assigns the first fid too), and n == 0 stores zeros. The rider
// (kRider, w >= 8) is pooled the same way during the first tile. `stream`: see PoolTile.
template <bool kMean, bool kRider = false, class Srcs>
[[gnu::always_inline]] inline void PoolTerms(const Srcs& srcs, int64_t n, int64_t off, int w, float nf, bool assign,
                                             bool stream, float* __restrict dst, const Rider* rider = nullptr) {
  if (n == 0) {
    if (assign) std::fill(dst, dst + w, 0.f);
    if (kRider && rider->assign) *rider->dst = 0.f;
    return;
  }
  int t = 0;
  if (kRider) {  // the first tile, with the rider
    t = w >= 32 ? 32 : w >= 16 ? 16 : 8;
    if (t == 32) {
      PoolTile<kMean, kRider, V8, 4>(srcs, n, off, nf, assign, stream, dst, rider);
    } else if (t == 16) {
      PoolTile<kMean, kRider, V8, 2>(srcs, n, off, nf, assign, stream, dst, rider);
    } else {
      PoolTile<kMean, kRider, V8, 1>(srcs, n, off, nf, assign, stream, dst, rider);
    }
  }
  for (; t + 32 <= w; t += 32) PoolTile<kMean, false, V8, 4>(srcs, n, off + t, nf, assign, stream, dst + t, nullptr);
  if (t + 16 <= w) {
    PoolTile<kMean, false, V8, 2>(srcs, n, off + t, nf, assign, stream, dst + t, nullptr);
    t += 16;
  }
  if (t + 8 <= w) {
    PoolTile<kMean, false, V8, 1>(srcs, n, off + t, nf, assign, stream, dst + t, nullptr);
    t += 8;
  }
  if (t + 4 <= w) {
    PoolTile<kMean, false, V4, 1>(srcs, n, off + t, nf, assign, false, dst + t, nullptr);
    t += 4;
  }
  for (; t < w; ++t) {
    auto term1 = [&](int64_t k) { return kMean ? srcs[k][off + t] / nf : srcs[k][off + t]; };
    float a = assign ? term1(0) : dst[t] + term1(0);
    for (int64_t k = 1; k < n; ++k) a += term1(k);
    dst[t] = a;
  }
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

// Fids resolved per PoolTerms call: long entries are pooled in chunks, which keeps the addition
// order (a chunk continues from the partial sum stored by the previous one).
constexpr int64_t kChunk = 32;

// Pools the fids [begin, end) of one entry into dst (the slice's region of one row). `assign`: the
// region belongs to this slice alone and was not zeroed, so every element of it is stored.
inline bool PoolEntry(const SliceInfo& s, const std::vector<Block>& blocks, const Offsets& o,
                      int64_t begin, int64_t end, float* dst, bool assign, std::string* err) {
  const int64_t n = end - begin;
  const int w = s.width;
  if (s.pooling == kFirstN) {
    const int64_t kept = std::min<int64_t>(n, s.max_sequence_length);
    for (int64_t k = 0; k < kept; ++k) {
      const float* src = Resolve(blocks, o.fid_offset[begin + k], s, err);
      if (!src) return false;
      if (assign) {
        std::memcpy(dst + k * s.seq_stride, src, w * sizeof(float));
      } else {
        Add(dst + k * s.seq_stride, src, w);
      }
    }
    if (assign) {
      for (int64_t k = kept; k < s.max_sequence_length; ++k) std::fill_n(dst + k * s.seq_stride, w, 0.f);
    }
    return true;
  }
  if (n == 0) {
    if (assign) std::fill_n(dst, w, 0.f);
    return true;
  }
  const float nf = static_cast<float>(n);
  const float* srcs[kChunk];
  for (int64_t c = begin; c < end; c += kChunk) {
    const int64_t m = std::min(kChunk, end - c);
    for (int64_t k = 0; k < m; ++k) {
      srcs[k] = Resolve(blocks, o.fid_offset[c + k], s, err);
      if (!srcs[k]) return false;
    }
    const bool first = assign && c == begin;
    if (s.pooling == kMean) {
      PoolTerms<true>(srcs, m, 0, w, nf, first, false, dst);
    } else {
      PoolTerms<false>(srcs, m, 0, w, nf, first, false, dst);
    }
  }
  return true;
}

// Starts loading (or, for the gradient scatter, acquiring for writing) the embeddings of entry e.
// Fids are random rows of large tables, so without this every fid costs a full cache-miss latency;
// issued a few entries ahead. Invalid offsets are skipped here and reported by the pooling itself.
inline void PrefetchEntry(const std::vector<Block>& blocks, const Offsets& o, const SliceInfo& s,
                          int64_t e, bool for_write) {
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
    if (off + s.width > b.count) continue;
    if (for_write) {
      PrefetchLines<true>(b.data + off, s.width * sizeof(float));
    } else {
      PrefetchLines<false>(b.data + off, s.width * sizeof(float));
    }
  }
}

// A slice's upstream gradient elements of row r lie in a column of the row-major gradient, one
// cache line per row apart, so each is a miss; they are read (not written) ahead like the
// embeddings.
inline void PrefetchRegion(const float* g, int64_t region) { PrefetchLines(g, region * sizeof(float)); }

constexpr int64_t kPrefetchEntries = 4;
constexpr int64_t kPrefetchFids = 16;

// Adds (or, `assign`, copies) a pooled region into another row's region, element ranges only (a
// FIRSTN region may interleave with other slices').
inline void PlaceRegion(const SliceInfo& s, const float* src, float* dst, bool assign) {
  const int64_t copies = s.pooling == kFirstN ? s.max_sequence_length : 1;
  for (int64_t k = 0; k < copies; ++k) {
    if (assign) {
      std::memcpy(dst + k * s.seq_stride, src + k * s.seq_stride, s.width * sizeof(float));
    } else {
      Add(dst + k * s.seq_stride, src + k * s.seq_stride, s.width);
    }
  }
}

// A feature's slices from every layout, applied together so each fid is decoded and loaded once
// for all of them (a typical config pools every feature into a vector layout and a bias layout).
struct Step {
  int feature_idx = 0;
  std::vector<const SliceInfo*> slices;  // applied in this order for every row
  const SliceInfo* widest = nullptr;     // the slice reaching furthest into the embedding
};

// Groups the slices of all layouts into steps, keeping upstream's per-element operation order: an
// accumulating (non-exclusive) output receives its slices in layout order, since a slice joins a
// step no earlier than the step of the previous slice writing to the same output; exclusive
// outputs have one writer per element, so their slices may join any step of their feature.
std::vector<Step> PlanSteps(const LayoutConfig& config) {
  std::vector<Step> steps;
  std::vector<int64_t> last_step(config.outputs().size(), 0);
  for (const LayoutInfo& layout : config.layouts()) {
    for (const SliceInfo& s : layout.slices) {
      const bool ordered = !config.outputs()[s.output].exclusive;
      size_t j = ordered ? last_step[s.output] : 0;
      while (j < steps.size() && steps[j].feature_idx != s.feature_idx) ++j;
      if (j == steps.size()) steps.push_back(Step{s.feature_idx, {}, &s});
      Step& step = steps[j];
      step.slices.push_back(&s);
      if (s.start + s.width > step.widest->start + step.widest->width) step.widest = &s;
      last_step[s.output] = j;
    }
  }
  return steps;
}

// A shared feature, one absent from the batch (fe.count == 0), or a FIRSTN slice: pooled per slice.
std::string ForwardSliceRows(const LayoutConfig& config, const SliceInfo& s, const FeatureEntries& fe,
                             const std::vector<Block>& blocks, const Offsets& o, int64_t row_begin,
                             int64_t row_end, const std::vector<FloatBuffer>& outputs,
                             std::vector<float>* tmp) {
  float* out = outputs[s.output].data + s.offset;
  const int64_t row = config.outputs()[s.output].row_elems;
  const bool assign = config.outputs()[s.output].exclusive;
  std::string err;
  int64_t begin = 0, end = 0;
  if (fe.count == 0) {
    if (assign) {
      tmp->assign(s.region, 0.f);
      for (int64_t r = row_begin; r < row_end; ++r) PlaceRegion(s, tmp->data(), out + r * row, true);
    }
    return "";
  }
  if (fe.shared) {
    // Pool once, then place the value into every row (also correct for ADDN).
    tmp->assign(s.region, 0.f);
    if (!EntryFids(o, s, fe.start, &begin, &end, &err)) return err;
    if (!PoolEntry(s, blocks, o, begin, end, tmp->data(), assign, &err)) return err;
    for (int64_t r = row_begin; r < row_end; ++r) PlaceRegion(s, tmp->data(), out + r * row, assign);
    return "";
  }
  for (int64_t r = row_begin; r < row_end; ++r) {
    if (r + kPrefetchEntries < row_end) PrefetchEntry(blocks, o, s, fe.start + r + kPrefetchEntries, false);
    if (!EntryFids(o, s, fe.start + r, &begin, &end, &err)) return err;
    if (!PoolEntry(s, blocks, o, begin, end, out + r * row, assign, &err)) return err;
  }
  return "";
}

// Where one pooled slice writes: row r's region starts at base + r * row_elems.
struct PooledTarget {
  const SliceInfo* slice = nullptr;
  float* base = nullptr;
  int64_t row_elems = 0;
  bool assign = false;  // an exclusive output: stored, not added
  // A large exclusive output: each line is written once, whole, and long evicted from the core's
  // caches before anyone reads it, so plain stores cost a read of every line before overwriting
  // it. Streamed, the d64 / batch 4096 forward (105 MB of output) ran 10-30 % faster (micro and
  // TF benchmarks); at 26 MB (d16) no change either way.
  bool stream = false;
  float* Row(int64_t r) const { return base + r * row_elems; }
};

// Exclusive outputs of at least this many bytes are streamed (4x a core's L2 on the machines
// measured).
constexpr int64_t kStreamOutputBytes = 8 << 20;

// How ForwardRows pools a step's SUM/MEAN slices per row: `order` is applied in turn, and the
// rider (a width-1 slice), if any, joins the first of them (a slice of width >= 8). A slice may be
// moved (to the front, or into the rider pass) only if no other of these slices writes its output,
// or its output is exclusive, so every output element still receives its terms in upstream's order.
struct PooledPlan {
  std::vector<PooledTarget> order;
  bool has_rider = false;
  PooledTarget rider;
};

PooledPlan PlanPooled(const LayoutConfig& config, const std::vector<const SliceInfo*>& pooled,
                      const std::vector<FloatBuffer>& outputs) {
  auto movable = [&](const SliceInfo* s) {
    if (config.outputs()[s->output].exclusive) return true;
    for (const SliceInfo* t : pooled) {
      if (t != s && t->output == s->output) return false;
    }
    return true;
  };
  auto target = [&](const SliceInfo* s) {
    const OutputInfo& info = config.outputs()[s->output];
    const bool stream = info.exclusive && outputs[s->output].size * sizeof(float) >= kStreamOutputBytes;
    return PooledTarget{s, outputs[s->output].data + s->offset, info.row_elems, info.exclusive, stream};
  };
  PooledPlan plan;
  const SliceInfo* main = nullptr;
  for (const SliceInfo* s : pooled) {
    if (!main && s->width >= 8 && movable(s)) main = s;
  }
  if (main) plan.order.push_back(target(main));
  for (const SliceInfo* s : pooled) {
    if (s == main) continue;
    if (main && s->width == 1 && !plan.has_rider && movable(s)) {
      plan.has_rider = true;
      plan.rider = target(s);
    } else {
      plan.order.push_back(target(s));
    }
  }
  return plan;
}

// Checks that every fid of one entry, fids[0, n), lies inside its block for the elements
// [0, reach) of the step's widest slice, and resolves each to E(f) + lo in (*rows)[k] (null where
// !owns(fid)). Run just before the entry is pooled or scattered (its fids are then in L1), so the
// pooling loops run without checks, the first error met is the first in pooling order, and no
// loop decodes a fid again (checking, then decoding once per pooled tile or scattered fid, was a
// fifth of the instructions of the forward and backward).
template <class Owns>
inline bool ResolveFids(const std::vector<Block>& blocks, const uint64_t* fids, int64_t n, const SliceInfo& widest,
                        int64_t lo, const Owns& owns, std::vector<float*>* rows, std::string* err) {
  if (static_cast<int64_t>(rows->size()) < n) rows->resize(n);
  float** ptrs = rows->data();
  const Block* b = blocks.data();
  const uint64_t num_blocks = blocks.size();
  const int64_t reach = widest.start + widest.width;
  for (int64_t k = 0; k < n; ++k) {
    const uint64_t i1 = fids[k] >> 32;
    const int32_t i2 = static_cast<int32_t>(fids[k] & 0xffffffffu);
    if (i1 >= num_blocks || i2 < 0 || static_cast<int64_t>(i2) * b[i1].stride + reach > b[i1].count) {
      *err = ResolveError(blocks, fids[k], widest);
      return false;
    }
    ptrs[k] = owns(fids[k]) ? b[i1].data + static_cast<int64_t>(i2) * b[i1].stride + lo : nullptr;
  }
  return true;
}

// Prefetches (for writing: kForWrite) the embeddings of the fids kPrefetchFids positions after
// the entry [begin, end): those of a later entry, a few rows ahead. Prefetches never fault, and an
// invalid offset is reported when its entry is checked.
template <bool kForWrite>
inline void PrefetchFidsAhead(const std::vector<Block>& blocks, const Offsets& o, int64_t begin, int64_t end,
                              const SliceInfo& widest) {
  const Block* b = blocks.data();
  const uint64_t num_blocks = blocks.size();
  for (int64_t k = begin + kPrefetchFids, k_end = std::min(end + kPrefetchFids, o.num_fids); k < k_end; ++k) {
    const uint64_t i1 = o.fid_offset[k] >> 32;
    if (i1 < num_blocks) {
      const uintptr_t at = reinterpret_cast<uintptr_t>(b[i1].data) +
                           (static_cast<uint32_t>(o.fid_offset[k]) * b[i1].stride + widest.start) * sizeof(float);
      PrefetchLines<kForWrite>(reinterpret_cast<const float*>(at), widest.width * sizeof(float));
    }
  }
}

// Rows [row_begin, row_end) of every layout, step by step, each step over all the rows. Outputs
// that are not exclusive were zeroed by the caller. The per-element operation order is upstream's
// serial one, so any partition of the rows gives bit-identical results.
std::string ForwardRows(const LayoutConfig& config, const std::vector<Step>& steps,
                        const std::vector<Block>& blocks, const Offsets& o, int64_t row_begin,
                        int64_t row_end, const std::vector<FloatBuffer>& outputs) {
  std::vector<float> tmp;
  std::vector<float*> ptrs;              // the entry's resolved embeddings
  std::vector<const SliceInfo*> pooled;  // the step's SUM/MEAN slices
  Rider rider{};
  for (const Step& step : steps) {
    FeatureEntries fe;
    std::string err = DecodeFeature(o, *step.widest, &fe);
    if (!err.empty()) return err;
    pooled.clear();
    for (const SliceInfo* s : step.slices) {
      if (fe.count == 0 || fe.shared || s->pooling == kFirstN) {
        err = ForwardSliceRows(config, *s, fe, blocks, o, row_begin, row_end, outputs, &tmp);
        if (!err.empty()) return err;
      } else {
        pooled.push_back(s);
      }
    }
    if (pooled.empty()) continue;
    const SliceInfo& widest = *step.widest;
    const PooledPlan plan = PlanPooled(config, pooled, outputs);
    if (plan.has_rider) {
      rider.off = plan.rider.slice->start;
      rider.assign = plan.rider.assign;
    }
    const bool mean = widest.pooling == kMean;
    // Read once: the pooling's stores (memcpy, which may alias anything) would make the compiler
    // reload the vector's bounds for every row.
    const PooledTarget* targets = plan.order.data();
    const size_t num_targets = plan.order.size();
    int64_t begin = 0, end = 0;
    for (int64_t r = row_begin; r < row_end; ++r) {
      const int64_t e = fe.start + r;
      if (!EntryFids(o, widest, e, &begin, &end, &err)) return err;
      const int64_t n = end - begin;
      if (!ResolveFids(blocks, o.fid_offset + begin, n, widest, 0, [](uint64_t) { return true; }, &ptrs, &err)) {
        return err;
      }
      PrefetchFidsAhead<false>(blocks, o, begin, end, widest);
      const float* const* srcs = ptrs.data();
      const float nf = static_cast<float>(n);
      rider.dst = plan.rider.Row(r);
      for (size_t j = 0; j < num_targets; ++j) {
        const PooledTarget& t = targets[j];
        const int64_t off = t.slice->start;
        const int w = t.slice->width;
        if (j == 0 && plan.has_rider) {
          if (mean) {
            PoolTerms<true, true>(srcs, n, off, w, nf, t.assign, t.stream, t.Row(r), &rider);
          } else {
            PoolTerms<false, true>(srcs, n, off, w, nf, t.assign, t.stream, t.Row(r), &rider);
          }
        } else if (mean) {
          PoolTerms<true>(srcs, n, off, w, nf, t.assign, t.stream, t.Row(r));
        } else {
          PoolTerms<false>(srcs, n, off, w, nf, t.assign, t.stream, t.Row(r));
        }
      }
    }
  }
  return "";
}

// The gradient of a fid is scattered by the work item owning its block (block_owner[index1]), so
// items never write the same element and each element receives its terms in the serial order.
struct Ownership {
  const std::vector<int64_t>* block_owner = nullptr;
  int64_t item = 0;
  // >= 0 in a step whose fids all address this block (an owned one). Any other fid must belong to
  // an entry outside the scanned fid range, which only malformed offsets (rejected) give.
  int64_t only_block = -1;
  bool Owns(uint64_t v) const {
    return only_block >= 0 ? static_cast<int64_t>(v >> 32) == only_block : (*block_owner)[v >> 32] == item;
  }
};

// Scatters the gradient region g of one entry into its n fids' rows `rows` (E(f), resolved; null:
// another item's). MEAN adds g / n, computed once per entry into `g_over_n` (the values upstream
// computes per fid).
inline void ScatterEntry(const SliceInfo& s, float* const* rows, int64_t n, const float* g,
                         std::vector<float>* g_over_n) {
  const int64_t kept = s.pooling == kFirstN ? std::min<int64_t>(n, s.max_sequence_length) : n;
  if (s.pooling == kMean && n > 0) {
    const float nf = static_cast<float>(n);
    g_over_n->resize(s.width);
    for (int t = 0; t < s.width; ++t) (*g_over_n)[t] = g[t] / nf;
    g = g_over_n->data();
  }
  for (int64_t k = 0; k < kept; ++k) {
    if (rows[k] != nullptr) Add(rows[k] + s.start, s.pooling == kFirstN ? g + k * s.seq_stride : g, s.width);
  }
}

// Adds the row `sum` of kTiles * 8 floats, held in registers, to each non-null row of `rows`: for
// the usual embedding widths (multiples of 8 up to 64) each fid then costs one load and one store
// per tile (the generic Add re-read `sum` and ran a loop with a tail per fid: the backward was
// 10-15 % slower).
constexpr int kMaxRowTiles = 8;
template <int kTiles>
inline void ScatterTiles(const float* sum, float* const* rows, int64_t n) {
  V8 v[kTiles];
  for (int j = 0; j < kTiles; ++j) v[j] = Load<V8>(sum + 8 * j);
  for (int64_t k = 0; k < n; ++k) {
    float* d = rows[k];
    if (d == nullptr) continue;
#pragma GCC unroll 8
    for (int j = 0; j < kTiles; ++j) Store<V8>(d + 8 * j, Load<V8>(d + 8 * j) + v[j]);
  }
}

// ScatterTiles for a runtime tile count in [1, kMaxRowTiles].
inline void ScatterRow(int tiles, const float* sum, float* const* rows, int64_t n) {
  switch (tiles) {
    case 1: return ScatterTiles<1>(sum, rows, n);
    case 2: return ScatterTiles<2>(sum, rows, n);
    case 3: return ScatterTiles<3>(sum, rows, n);
    case 4: return ScatterTiles<4>(sum, rows, n);
    case 5: return ScatterTiles<5>(sum, rows, n);
    case 6: return ScatterTiles<6>(sum, rows, n);
    case 7: return ScatterTiles<7>(sum, rows, n);
    default: return ScatterTiles<kMaxRowTiles>(sum, rows, n);
  }
}

// Where a SUM/MEAN slice's upstream gradient lies: row r's region starts at base + r * row_elems.
// Resolved once per step, so the per-row loop does not index the config and the outputs.
struct SliceGrad {
  const float* base;
  int64_t row_elems;
  int64_t region;   // floats of one row's region (prefetched ahead)
  int64_t sum_off;  // its first element's position in the span's summed row
  int width;
  bool mean;
  const float* Row(int64_t r) const { return base + r * row_elems; }
};

// A SUM/MEAN step's slices, summed per row into one row over the elements [lo, lo + width) of E(f).
struct PooledSpan {
  std::vector<SliceGrad> slices;
  int64_t lo = 0;
  int width = 0;
  PooledSpan(const LayoutConfig& config, const Step& step, const std::vector<FloatBuffer>& grads) {
    if (step.widest->pooling == kFirstN) return;  // pooling is per feature: all or none of a step
    int64_t hi = 0;
    lo = step.widest->start;
    for (const SliceInfo* s : step.slices) {
      lo = std::min<int64_t>(lo, s->start);
      hi = std::max<int64_t>(hi, s->start + s->width);
    }
    width = static_cast<int>(hi - lo);
    for (const SliceInfo* s : step.slices) {
      slices.push_back({grads[s->output].data + s->offset, config.outputs()[s->output].row_elems, s->region,
                        s->start - lo, s->width, s->pooling == kMean});
    }
  }
};

// Adds one entry's gradient to each of its n fids' rows `rows` (E(f) + span.lo; null: another
// item's): the regions of the span's slices for row r are first summed, in slice order (MEAN terms
// g / n), into one row, so every fid's row is written once however many slices pool the feature (a
// bias slice beside a vector slice cost a second pass over the fids, a quarter of the backward).
// `sum` holds span.width floats.
inline void ScatterPooledEntry(const PooledSpan& span, int64_t r, float* const* rows, int64_t n, float* sum) {
  if (n == 0) return;
  const float nf = static_cast<float>(n);
  std::fill_n(sum, span.width, 0.f);
  for (const SliceGrad& sg : span.slices) {
    const float* g = sg.Row(r);
    float* d = sum + sg.sum_off;
    if (sg.mean) {
      for (int t = 0; t < sg.width; ++t) d[t] += g[t] / nf;
    } else {
      for (int t = 0; t < sg.width; ++t) d[t] += g[t];
    }
  }
  const int w = span.width;
  if (w % 8 == 0 && w <= 8 * kMaxRowTiles) {
    ScatterRow(w / 8, sum, rows, n);
    return;
  }
  for (int64_t k = 0; k < n; ++k) {
    if (rows[k] != nullptr) Add(rows[k], sum, w);
  }
}

// The backward of every step over all rows, scattering only the fids `own` owns. Per step, row by
// row, a FIRSTN feature's slices are scattered slice by slice, fid by fid; a SUM/MEAN feature's
// through ScatterPooledEntry. An element shared by two slices of a feature (a bias slice inside a
// vector slice) thus sums its terms in another order than upstream's layout-major loop (as
// upstream's parallel and GPU kernels do); the result does not depend on the partition.
// `step_block[j]`: the one block all fids of step j address, if so (-1 otherwise); only its owner
// runs such a step, without per-fid ownership checks. Each entry's fids are checked against the
// step's widest slice before any of them is scattered. Returns the error of the earliest failing
// step, its index in *error_step.
std::string BackwardRows(const LayoutConfig& config, const std::vector<Step>& steps,
                         const std::vector<int64_t>& step_block, const std::vector<Block>& blocks,
                         const Offsets& o, int64_t batch_size, const std::vector<FloatBuffer>& grads,
                         const std::vector<int64_t>& block_owner, int64_t item, size_t* error_step) {
  std::vector<float> tmp, g_over_n;
  std::vector<float*> ptrs;  // the entry's resolved gradient rows
  for (size_t j = 0; j < steps.size(); ++j) {
    const Step& step = steps[j];
    *error_step = j;
    const Ownership own{&block_owner, item, step_block[j]};
    auto owns = [&own](uint64_t v) { return own.Owns(v); };
    if (step_block[j] >= 0 && block_owner[step_block[j]] != item) continue;
    FeatureEntries fe;
    std::string err = DecodeFeature(o, *step.widest, &fe);
    if (!err.empty()) return err;
    if (fe.count == 0) continue;
    const SliceInfo& widest = *step.widest;
    int64_t begin = 0, end = 0;
    if (fe.shared) {
      // Every row pooled the same entry: sum the rows' gradients, then scatter once.
      if (!EntryFids(o, widest, fe.start, &begin, &end, &err)) return err;
      if (!ResolveFids(blocks, o.fid_offset + begin, end - begin, widest, 0, owns, &ptrs, &err)) return err;
      for (const SliceInfo* s : step.slices) {
        const float* g = grads[s->output].data + s->offset;
        const int64_t row = config.outputs()[s->output].row_elems;
        tmp.assign(s->region, 0.f);
        for (int64_t r = 0; r < batch_size; ++r) PlaceRegion(*s, g + r * row, tmp.data(), false);
        ScatterEntry(*s, ptrs.data(), end - begin, tmp.data(), &g_over_n);
      }
      continue;
    }
    const PooledSpan span(config, step, grads);
    if (!span.slices.empty()) {
      tmp.resize(span.width);
      for (int64_t r = 0; r < batch_size; ++r) {
        if (!EntryFids(o, widest, fe.start + r, &begin, &end, &err)) return err;
        if (!ResolveFids(blocks, o.fid_offset + begin, end - begin, widest, span.lo, owns, &ptrs, &err)) return err;
        PrefetchFidsAhead<true>(blocks, o, begin, end, widest);
        if (r + kPrefetchEntries < batch_size) {
          for (const SliceGrad& sg : span.slices) PrefetchRegion(sg.Row(r + kPrefetchEntries), sg.region);
        }
        ScatterPooledEntry(span, r, ptrs.data(), end - begin, tmp.data());
      }
      continue;
    }
    for (int64_t r = 0; r < batch_size; ++r) {  // FIRSTN: slice by slice, fid by fid
      if (!EntryFids(o, widest, fe.start + r, &begin, &end, &err)) return err;
      if (!ResolveFids(blocks, o.fid_offset + begin, end - begin, widest, 0, owns, &ptrs, &err)) return err;
      PrefetchFidsAhead<true>(blocks, o, begin, end, widest);
      if (r + kPrefetchEntries < batch_size) {
        for (const SliceInfo* s : step.slices) {
          PrefetchRegion(grads[s->output].data + s->offset + (r + kPrefetchEntries) * config.outputs()[s->output].row_elems, s->region);
        }
      }
      for (const SliceInfo* s : step.slices) {
        const float* g = grads[s->output].data + s->offset + r * config.outputs()[s->output].row_elems;
        ScatterEntry(*s, ptrs.data(), end - begin, g, &g_over_n);
      }
    }
  }
  return "";
}

// See BackwardRows. Every valid fid of a feature usually lies in its table's block (with one
// parameter server): then one item scatters the whole step and the others skip it, instead of
// every item walking every fid and upstream gradient row.
std::vector<int64_t> StepBlocks(const std::vector<Step>& steps, const std::vector<Block>& blocks,
                                const Offsets& o) {
  std::vector<int64_t> step_block(steps.size(), -1);
  for (size_t j = 0; j < steps.size(); ++j) {
    FeatureEntries fe;
    if (!DecodeFeature(o, *steps[j].widest, &fe).empty() || fe.count == 0 || fe.start + fe.count > o.num_entries) continue;
    const int64_t begin = o.feature_offset[fe.start];
    const int64_t end = fe.start + fe.count < o.num_entries ? o.feature_offset[fe.start + fe.count] : o.num_fids;
    if (begin < 0 || end <= begin || end > o.num_fids) continue;
    const uint64_t first = o.fid_offset[begin];
    // OR of every fid's block bits XOR the first's: branch-free, 3 instructions per fid instead of
    // the early-exit loop's 9 (this scan reads every fid once per backward).
    uint64_t differ = 0;
    for (int64_t k = begin + 1; k < end; ++k) differ |= (o.fid_offset[k] ^ first) >> 32;
    if (differ == 0 && (first >> 32) < blocks.size()) step_block[j] = first >> 32;
  }
  return step_block;
}

// Work items are contiguous row ranges, one per thread, each walking every step over all of its
// rows. A step reads only its feature's embeddings, so the longer its run of rows, the more of its
// (small) share of the tables is reused from cache; short row blocks cycling through every table
// thrashed the caches and made the op several times slower than a plain gather.
// per_item(row_begin, row_end) runs in parallel when a runner is given; returns the first error in
// row order.
std::string ForEachRowRange(int64_t batch_size, const ParallelRunner& runner, int num_threads,
                            const std::function<std::string(int64_t, int64_t)>& per_item) {
  const int64_t n = runner ? std::max<int64_t>(1, std::min<int64_t>(num_threads, batch_size)) : 1;
  std::vector<std::string> errors(n);
  auto fn = [&](int64_t i) { errors[i] = per_item(batch_size * i / n, batch_size * (i + 1) / n); };
  if (n > 1) {
    runner(n, fn);
  } else {
    fn(0);
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
                          const std::vector<FloatBuffer>& outputs, const ParallelRunner& runner,
                          int num_threads) {
  std::string err = CheckOutputs(config, batch_size, outputs);
  if (!err.empty()) return err;
  // Rows past batch_size (a fixed dim 0) are not written by any item.
  for (size_t i = 0; i < outputs.size(); ++i) {
    std::fill(outputs[i].data + batch_size * config.outputs()[i].row_elems, outputs[i].data + outputs[i].size, 0.f);
  }
  const std::vector<Step> steps = PlanSteps(config);
  return ForEachRowRange(batch_size, runner, num_threads, [&](int64_t row_begin, int64_t row_end) {
    // Each item zeroes the rows it accumulates into; exclusive outputs are stored, never zeroed.
    for (size_t i = 0; i < outputs.size(); ++i) {
      const OutputInfo& info = config.outputs()[i];
      if (!info.exclusive) std::fill(outputs[i].data + row_begin * info.row_elems, outputs[i].data + row_end * info.row_elems, 0.f);
    }
    std::string err = ForwardRows(config, steps, blocks, offsets, row_begin, row_end, outputs);
    StreamFence();  // the streamed rows are visible to whoever reads the outputs next
    return err;
  });
}

std::string LayoutBackward(const LayoutConfig& config, const std::vector<Block>& grad_blocks,
                           const Offsets& offsets, int64_t batch_size,
                           const std::vector<FloatBuffer>& output_grads,
                           const ParallelRunner& runner, int num_threads) {
  std::string err = CheckOutputs(config, batch_size, output_grads);
  if (!err.empty()) return err;
  const std::vector<Step> steps = PlanSteps(config);
  const std::vector<int64_t> step_block = StepBlocks(steps, grad_blocks, offsets);
  const int64_t n = runner ? std::max<int64_t>(1, std::min<int64_t>(num_threads, grad_blocks.size())) : 1;
  std::vector<int64_t> block_owner(grad_blocks.size());
  for (size_t b = 0; b < block_owner.size(); ++b) block_owner[b] = b % n;
  std::vector<std::string> errors(n);
  std::vector<size_t> error_steps(n);
  auto fn = [&](int64_t i) {
    errors[i] = BackwardRows(config, steps, step_block, grad_blocks, offsets, batch_size, output_grads,
                             block_owner, i, &error_steps[i]);
  };
  if (n > 1) {
    runner(n, fn);
  } else {
    fn(0);
  }
  int64_t first = -1;
  for (int64_t i = 0; i < n; ++i) {
    if (!errors[i].empty() && (first < 0 || error_steps[i] < error_steps[first])) first = i;
  }
  return first < 0 ? "" : errors[first];
}

}  // namespace layout
}  // namespace monolith
