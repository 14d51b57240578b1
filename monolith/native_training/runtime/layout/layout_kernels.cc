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

// Where the first row of the entries [e0, e1) that fails fails: its entry's fid range is out of
// range of fid_offset, or one of its fids is outside its block for the elements [0, reach) of
// slice s. Only run once ResolvedRows' single pass has found a fault, so that the error is the one
// a row-by-row walk meets first.
[[gnu::noinline, gnu::cold]] std::string LocateFault(const std::vector<Block>& blocks, const Offsets& o,
                                                     const SliceInfo& s, int64_t e0, int64_t e1) {
  const int64_t reach = s.start + s.width;
  std::string err;
  for (int64_t e = e0; e < e1; ++e) {
    int64_t begin = 0, end = 0;
    if (!EntryFids(o, s, e, &begin, &end, &err)) return err;
    for (int64_t k = begin; k < end; ++k) {
      const uint64_t v = o.fid_offset[k];
      const uint64_t i1 = v >> 32;
      const int32_t i2 = static_cast<int32_t>(v & 0xffffffffu);
      if (i1 >= blocks.size() || i2 < 0 || static_cast<int64_t>(i2) * blocks[i1].stride + reach > blocks[i1].count) {
        return ResolveError(blocks, v, s);
      }
    }
  }
  return "feature " + s.feature_name + ": inconsistent fid offsets in entries [" + std::to_string(e0) + ", " +
         std::to_string(e1) + ")";
}

// Rows handled per ResolvedRows pass: their resolved fids (~5 per row) stay in L1.
constexpr int64_t kRowChunk = 256;
// How far ahead (in fids) the pooling and scatter loops prefetch embeddings.
constexpr int64_t kPrefetchFids = 16;

// Prefetches `bytes` at element `off` of a resolved fid's row, if any (for writing: kForWrite).
template <bool kForWrite>
inline void PrefetchFid(const float* row, int64_t off, int64_t bytes) {
  if (row != nullptr) PrefetchLines<kForWrite>(row + off, bytes);
}

// Consecutive entries [e0, e1) of one feature (the rows of a chunk) with their fid ranges checked
// and every fid resolved to its embedding address in one tight pass. The pooling and scatter loops
// then read addresses only: decoding, checking and prefetching each fid inside those loops cost
// as many instructions as the pooling itself.
class ResolvedRows {
 public:
  // Checks that the entries' fid ranges lie in fid_offset and that every fid lies inside its
  // block for the elements [0, reach) of `widest`, and resolves fid k to E(f) + lo (null where
  // !owns(fid)). On a fault, *err is the error the first failing row meets and false is returned.
  template <class Owns>
  bool Resolve(const std::vector<Block>& blocks, const Offsets& o, const SliceInfo& widest, int64_t e0,
               int64_t e1, int64_t lo, const Owns& owns, std::string* err) {
    const int64_t rows = e1 - e0;
    if (rows <= 0) return true;
    if (e0 < 0 || e1 > o.num_entries) return Fault(blocks, o, widest, e0, e1, err);
    // Non-decreasing offsets inside [0, num_fids]: every entry's range then lies inside that of
    // the chunk, [first, last). One branch-free pass, not a branch per row.
    const int32_t* fo = o.feature_offset + e0;
    const int64_t first = fo[0];
    const int64_t last = e1 < o.num_entries ? o.feature_offset[e1] : o.num_fids;
    if (bounds_.size() < static_cast<size_t>(rows + 1)) bounds_.resize(rows + 1);
    int64_t* bounds = bounds_.data();
    bool decreasing = false;
    bounds[0] = 0;
    for (int64_t i = 1; i < rows; ++i) {
      decreasing |= fo[i] < fo[i - 1];
      bounds[i] = fo[i] - first;
    }
    if (decreasing || first < 0 || last < fo[rows - 1] || last > o.num_fids) {
      return Fault(blocks, o, widest, e0, e1, err);
    }
    bounds[rows] = last - first;
    following_ = o.fid_offset + last;
    fids_end_ = o.fid_offset + o.num_fids;
    const int64_t n = last - first;
    if (ptrs_.size() < static_cast<size_t>(n + kPrefetchFids)) ptrs_.resize(n + kPrefetchFids);
    std::fill_n(ptrs_.data() + n, kPrefetchFids, nullptr);
    if (n == 0) return true;
    const uint64_t* fids = o.fid_offset + first;
    const int64_t reach = widest.start + widest.width;
    if (ResolveOneBlock(blocks, fids, n, reach, lo, owns)) return true;
    // Fids of several blocks (several parameter servers), or a fault.
    float** ptrs = ptrs_.data();
    const Block* b = blocks.data();
    const uint64_t num_blocks = blocks.size();
    for (int64_t k = 0; k < n; ++k) {
      const uint64_t i1 = fids[k] >> 32;
      const int32_t i2 = static_cast<int32_t>(fids[k] & 0xffffffffu);
      if (i1 >= num_blocks || i2 < 0) return Fault(blocks, o, widest, e0, e1, err);
      const int64_t at = static_cast<int64_t>(i2) * b[i1].stride;
      if (at + reach > b[i1].count) return Fault(blocks, o, widest, e0, e1, err);
      ptrs[k] = owns(fids[k]) ? b[i1].data + at + lo : nullptr;
    }
    return true;
  }

  int64_t Count(int64_t i) const { return bounds_[i + 1] - bounds_[i]; }
  // Row i's resolved fids, Count(i) of them, followed by at least kPrefetchFids more entries (a
  // later row's fids, or null past the chunk's last): loops read Fids(i)[k + kPrefetchFids] to
  // prefetch without a bounds check.
  float* const* Fids(int64_t i) const { return ptrs_.data() + bounds_[i]; }

  // Prefetches line i of the fid_offset values following the chunk's, those the next chunk
  // resolves: called once per row, so that they arrive spread over this chunk's work (read cold,
  // in one pass, they had cost a quarter of the backward).
  void PrefetchFollowing(int64_t i) const {
    if (following_ + 8 * i < fids_end_) PrefetchLine(following_ + 8 * i);
  }

  // Prefetches the first fids of the chunk (the loops prefetch kPrefetchFids ahead of themselves).
  template <bool kForWrite>
  void Head(int64_t off, int64_t bytes) const {
    for (int64_t k = 0; k < kPrefetchFids; ++k) PrefetchFid<kForWrite>(ptrs_[k], off, bytes);
  }
  // Prefetches, for each of row i's fids, the row of the fid kPrefetchFids positions later (a row
  // a few rows ahead).
  template <bool kForWrite>
  void PrefetchAhead(int64_t i, int64_t off, int64_t bytes) const {
    for (int64_t k = bounds_[i]; k < bounds_[i + 1]; ++k) PrefetchFid<kForWrite>(ptrs_[k + kPrefetchFids], off, bytes);
  }

 private:
  [[gnu::noinline, gnu::cold]] bool Fault(const std::vector<Block>& blocks, const Offsets& o, const SliceInfo& s,
                                          int64_t e0, int64_t e1, std::string* err) {
    *err = LocateFault(blocks, o, s, e0, e1);
    return false;
  }

  // The usual chunk, all of whose fids address the block of the first: resolved without a block
  // lookup per fid, and checked once for the largest index (7 instructions a fid instead of 25).
  // False (nothing decided) if a fid addresses another block or any index is out of range.
  template <class Owns>
  bool ResolveOneBlock(const std::vector<Block>& blocks, const uint64_t* fids, int64_t n, int64_t reach, int64_t lo,
                       const Owns& owns) {
    const uint64_t head = fids[0];
    if ((head >> 32) >= blocks.size()) return false;
    const Block& block = blocks[head >> 32];
    const int64_t stride = block.stride;
    float* const base = block.data + lo;
    float** ptrs = ptrs_.data();
    uint64_t differ = 0;
    uint32_t top = 0;
    for (int64_t k = 0; k < n; ++k) {
      const uint32_t i2 = static_cast<uint32_t>(fids[k]);
      differ |= fids[k] ^ head;
      top = std::max(top, i2);
      ptrs[k] = base + static_cast<int64_t>(i2) * stride;
    }
    if ((differ >> 32) != 0 || top > 0x7fffffffu || static_cast<int64_t>(top) * stride + reach > block.count) {
      return false;
    }
    if (!owns(head)) std::fill_n(ptrs, n, nullptr);
    return true;
  }

  const uint64_t* following_ = nullptr;  // the fid_offset values after the chunk's
  const uint64_t* fids_end_ = nullptr;
  std::vector<int64_t> bounds_ = {0};  // row i's fids are ptrs_[bounds_[i], bounds_[i + 1])
  std::vector<float*> ptrs_ = std::vector<float*>(kPrefetchFids, nullptr);
};

// Every fid of a forward pass is read: no ownership.
constexpr auto kAllFids = [](uint64_t) { return true; };

// Pools one entry's n resolved fids srcs (E(f)) into dst (the slice's region of one row).
// `assign`: the region belongs to this slice alone and was not zeroed, so every element of it is
// stored.
inline void PoolEntry(const SliceInfo& s, const float* const* srcs, int64_t n, float* dst, bool assign) {
  const int w = s.width;
  if (s.pooling == kFirstN) {
    const int64_t kept = std::min<int64_t>(n, s.max_sequence_length);
    for (int64_t k = 0; k < kept; ++k) {
      if (assign) {
        std::memcpy(dst + k * s.seq_stride, srcs[k] + s.start, w * sizeof(float));
      } else {
        Add(dst + k * s.seq_stride, srcs[k] + s.start, w);
      }
    }
    if (assign) {
      for (int64_t k = kept; k < s.max_sequence_length; ++k) std::fill_n(dst + k * s.seq_stride, w, 0.f);
    }
    return;
  }
  const float nf = static_cast<float>(n);
  if (s.pooling == kMean) {
    PoolTerms<true>(srcs, n, s.start, w, nf, assign, false, dst);
  } else {
    PoolTerms<false>(srcs, n, s.start, w, nf, assign, false, dst);
  }
}

// A slice's upstream gradient elements of row r lie in a column of the row-major gradient, one
// cache line per row apart, so each is a miss; they are read (not written) ahead like the
// embeddings.
inline void PrefetchRegion(const float* g, int64_t region) { PrefetchLines(g, region * sizeof(float)); }

// Rows ahead that a slice's upstream gradient is prefetched: each row is a miss to memory.
constexpr int64_t kPrefetchEntries = 4;

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
                             std::vector<float>* tmp, ResolvedRows* fids) {
  float* out = outputs[s.output].data + s.offset;
  const int64_t row = config.outputs()[s.output].row_elems;
  const bool assign = config.outputs()[s.output].exclusive;
  std::string err;
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
    if (!fids->Resolve(blocks, o, s, fe.start, fe.start + 1, 0, kAllFids, &err)) return err;
    PoolEntry(s, fids->Fids(0), fids->Count(0), tmp->data(), assign);
    for (int64_t r = row_begin; r < row_end; ++r) PlaceRegion(s, tmp->data(), out + r * row, assign);
    return "";
  }
  for (int64_t r0 = row_begin; r0 < row_end; r0 += kRowChunk) {
    const int64_t r1 = std::min(r0 + kRowChunk, row_end);
    if (!fids->Resolve(blocks, o, s, fe.start + r0, fe.start + r1, 0, kAllFids, &err)) return err;
    fids->Head<false>(s.start, s.width * sizeof(float));
    for (int64_t r = r0; r < r1; ++r) {
      fids->PrefetchAhead<false>(r - r0, s.start, s.width * sizeof(float));
      PoolEntry(s, fids->Fids(r - r0), fids->Count(r - r0), out + r * row, assign);
    }
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

// Rows [row_begin, row_end) of every layout, step by step, each step over all the rows. Outputs
// that are not exclusive were zeroed by the caller. The per-element operation order is upstream's
// serial one, so any partition of the rows gives bit-identical results.
std::string ForwardRows(const LayoutConfig& config, const std::vector<Step>& steps,
                        const std::vector<Block>& blocks, const Offsets& o, int64_t row_begin,
                        int64_t row_end, const std::vector<FloatBuffer>& outputs) {
  std::vector<float> tmp;
  ResolvedRows fids;
  std::vector<const SliceInfo*> pooled;  // the step's SUM/MEAN slices
  Rider rider{};
  for (const Step& step : steps) {
    FeatureEntries fe;
    std::string err = DecodeFeature(o, *step.widest, &fe);
    if (!err.empty()) return err;
    pooled.clear();
    for (const SliceInfo* s : step.slices) {
      if (fe.count == 0 || fe.shared || s->pooling == kFirstN) {
        err = ForwardSliceRows(config, *s, fe, blocks, o, row_begin, row_end, outputs, &tmp, &fids);
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
    const int64_t touch_bytes = widest.width * sizeof(float);
    for (int64_t r0 = row_begin; r0 < row_end; r0 += kRowChunk) {
      const int64_t r1 = std::min(r0 + kRowChunk, row_end);
      if (!fids.Resolve(blocks, o, widest, fe.start + r0, fe.start + r1, 0, kAllFids, &err)) return err;
      fids.Head<false>(widest.start, touch_bytes);
      for (int64_t r = r0; r < r1; ++r) {
        const float* const* srcs = fids.Fids(r - r0);
        const int64_t n = fids.Count(r - r0);
        fids.PrefetchFollowing(r - r0);
        fids.PrefetchAhead<false>(r - r0, widest.start, touch_bytes);
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

// Where a SUM/MEAN slice's upstream gradient lies: row r's region starts at base + r * row_elems.
// Resolved once per step, so the per-row loop does not index the config and the outputs.
struct SliceGrad {
  const float* base;
  int64_t row_elems;
  int64_t region;   // floats of one row's region (prefetched ahead)
  int64_t sum_off;  // its first element's position in the span's summed row
  int width;
  bool mean;
  bool tiled;  // covers whole tiles of the summed row (width and sum_off multiples of 8)
  const float* Row(int64_t r) const { return base + r * row_elems; }
};

// A SUM/MEAN step's slices, summed per row into one row over the elements [lo, lo + width) of E(f).
struct PooledSpan {
  std::vector<SliceGrad> slices;
  int64_t lo = 0;
  int width = 0;
  int tiles = 0;  // V8 tiles of the summed row, the last one padded
  PooledSpan(const LayoutConfig& config, const Step& step, const std::vector<FloatBuffer>& grads) {
    if (step.widest->pooling == kFirstN) return;  // pooling is per feature: all or none of a step
    int64_t hi = 0;
    lo = step.widest->start;
    for (const SliceInfo* s : step.slices) {
      lo = std::min<int64_t>(lo, s->start);
      hi = std::max<int64_t>(hi, s->start + s->width);
    }
    width = static_cast<int>(hi - lo);
    tiles = (width + 7) / 8;
    for (const SliceInfo* s : step.slices) {
      const int64_t sum_off = s->start - lo;
      slices.push_back({grads[s->output].data + s->offset, config.outputs()[s->output].row_elems, s->region, sum_off,
                        s->width, s->pooling == kMean, s->width % 8 == 0 && sum_off % 8 == 0});
    }
  }
};

// Adds, for the rows [r0, r1) of a chunk, each row's region of one slice into its tiles of `sums`
// (`tiles` per row): kTiled, whole tiles (sg.tiled); else element by element. MEAN (kMean) terms
// are g / n. The slice's fields are read into locals first: the stores into `sums` could alias
// them as far as the compiler knows, which reloaded them for every row.
template <bool kMean, bool kTiled>
void SumSlice(const SliceGrad& sg, const ResolvedRows& fids, int64_t r0, int64_t r1, int64_t batch_size, int tiles,
              V8* sums) {
  const float* const base = sg.base;
  const int64_t row_elems = sg.row_elems, region = sg.region, sum_off = sg.sum_off;
  const int width = sg.width;
  const int64_t prefetch_end = batch_size - kPrefetchEntries;
  for (int64_t r = r0; r < r1; ++r) {
    const float* g = base + r * row_elems;
    if (r < prefetch_end) PrefetchRegion(g + kPrefetchEntries * row_elems, region);
    const int64_t n = fids.Count(r - r0);
    if (n == 0) continue;
    const float nf = static_cast<float>(n);
    V8* row = sums + (r - r0) * tiles;
    if (kTiled) {
      V8* d = row + sum_off / 8;
      for (int j = 0; j < width / 8; ++j) {
        const V8 x = Load<V8>(g + 8 * j);
        d[j] += kMean ? x / nf : x;
      }
    } else {
      float* d = reinterpret_cast<float*>(row) + sum_off;
      for (int t = 0; t < width; ++t) d[t] += kMean ? g[t] / nf : g[t];
    }
  }
}

// Sums, for the rows [r0, r1) of a chunk, each row's regions of the span's slices into the row's
// tiles of `sums` (span.tiles per row, zeroed here): slice by slice in slice order, so every
// element gets its terms in that order. Slice-major over the chunk, each loop runs with its
// slice's layout fixed (a per-row walk over the slices cost ~130 instructions per row of a
// two-slice step) and walks one upstream-gradient column. Each row of it is a miss: the previous
// chunk's scatter prefetched them, and each loop also prefetches kPrefetchEntries rows ahead (for
// a step's first chunk).
void SumChunk(const PooledSpan& span, const ResolvedRows& fids, int64_t r0, int64_t r1, int64_t batch_size,
              V8* sums) {
  std::fill_n(sums, (r1 - r0) * span.tiles, V8{});
  for (const SliceGrad& sg : span.slices) {
    if (sg.mean) {
      if (sg.tiled) {
        SumSlice<true, true>(sg, fids, r0, r1, batch_size, span.tiles, sums);
      } else {
        SumSlice<true, false>(sg, fids, r0, r1, batch_size, span.tiles, sums);
      }
    } else if (sg.tiled) {
      SumSlice<false, true>(sg, fids, r0, r1, batch_size, span.tiles, sums);
    } else {
      SumSlice<false, false>(sg, fids, r0, r1, batch_size, span.tiles, sums);
    }
  }
}

typedef int32_t I8 __attribute__((vector_size(32)));
// kLanes[l]: all bits set in lanes [0, l).
constexpr I8 kLanes[9] = {{0, 0, 0, 0, 0, 0, 0, 0},         {-1, 0, 0, 0, 0, 0, 0, 0},
                          {-1, -1, 0, 0, 0, 0, 0, 0},       {-1, -1, -1, 0, 0, 0, 0, 0},
                          {-1, -1, -1, -1, 0, 0, 0, 0},     {-1, -1, -1, -1, -1, 0, 0, 0},
                          {-1, -1, -1, -1, -1, -1, 0, 0},   {-1, -1, -1, -1, -1, -1, -1, 0},
                          {-1, -1, -1, -1, -1, -1, -1, -1}};

// Adds the kTiles tiles `sum`, held in registers, at element `off` of each non-null row of
// `rows`; of the last tile only the first `tail` lanes (read and written masked). Each fid then
// costs one load and one store per tile. With prefetch_bytes > 0, also prefetches that many bytes
// of the row kPrefetchFids fids ahead, for writing.
template <int kTiles>
inline void ScatterTiles(const V8* sum, int tail, int64_t off, float* const* rows, int64_t n, int64_t prefetch_bytes) {
  V8 v[kTiles];
  for (int j = 0; j < kTiles; ++j) v[j] = sum[j];
  const I8 tail_mask = kLanes[tail];
  for (int64_t k = 0; k < n; ++k) {
    if (prefetch_bytes > 0) PrefetchFid<true>(rows[k + kPrefetchFids], 0, prefetch_bytes);
    if (rows[k] == nullptr) continue;
    float* d = rows[k] + off;
#pragma GCC unroll 8
    for (int j = 0; j + 1 < kTiles; ++j) Store<V8>(d + 8 * j, Load<V8>(d + 8 * j) + v[j]);
    float* last = d + 8 * (kTiles - 1);
    if (tail == 8) {
      Store<V8>(last, Load<V8>(last) + v[kTiles - 1]);
    } else {
      V8* at = reinterpret_cast<V8*>(last);
      __builtin_ia32_maskstoreps256(at, tail_mask, __builtin_ia32_maskloadps256(at, tail_mask) + v[kTiles - 1]);
    }
  }
}

// Adds one entry's summed gradient row `sum` (span.tiles tiles) to its n fids' rows `rows` (E(f)
// + span.lo; null: another item's), 8 tiles per pass over the fids (one pass for embeddings up to
// 64 wide), prefetching `prefetch_bytes` of the rows kPrefetchFids fids ahead. Summing the slices
// first writes every fid's row once however many slices pool the feature (a bias slice beside a
// vector slice cost a second pass over the fids, a quarter of the backward).
inline void ScatterPooledEntry(const PooledSpan& span, const V8* sum, float* const* rows, int64_t n,
                               int64_t prefetch_bytes) {
  for (int tile0 = 0; tile0 < span.tiles; tile0 += 8) {
    const int tiles = std::min(span.tiles - tile0, 8);
    const int tail = std::min(8 * (tile0 + tiles), span.width) - 8 * (tile0 + tiles - 1);
    const V8* at = sum + tile0;
    const int64_t off = 8 * tile0;
    const int64_t ahead = tile0 == 0 ? prefetch_bytes : 0;  // the first pass prefetches whole rows
    switch (tiles) {
      case 1: ScatterTiles<1>(at, tail, off, rows, n, ahead); break;
      case 2: ScatterTiles<2>(at, tail, off, rows, n, ahead); break;
      case 3: ScatterTiles<3>(at, tail, off, rows, n, ahead); break;
      case 4: ScatterTiles<4>(at, tail, off, rows, n, ahead); break;
      case 5: ScatterTiles<5>(at, tail, off, rows, n, ahead); break;
      case 6: ScatterTiles<6>(at, tail, off, rows, n, ahead); break;
      case 7: ScatterTiles<7>(at, tail, off, rows, n, ahead); break;
      default: ScatterTiles<8>(at, tail, off, rows, n, ahead); break;
    }
  }
}

// The backward of every step over all rows, scattering only the fids `own` owns. Per step, chunk
// by chunk of kRowChunk rows, a FIRSTN feature's slices are scattered row by row, slice by slice,
// fid by fid; a SUM/MEAN feature's rows are summed (SumChunk), then scattered row by row
// (ScatterPooledEntry). An element shared by two slices of a feature (a bias slice inside a
// vector slice) thus sums its terms in another order than upstream's layout-major loop (as
// upstream's parallel and GPU kernels do); the result does not depend on the partition.
// `step_block[j]`: the one block all fids of step j address, if so (-1 otherwise); only its owner
// runs such a step, without per-fid ownership checks. Each chunk's fids are checked against the
// step's widest slice before any of them is scattered. Returns the error of the earliest failing
// step, its index in *error_step.
std::string BackwardRows(const LayoutConfig& config, const std::vector<Step>& steps,
                         const std::vector<int64_t>& step_block, const std::vector<Block>& blocks,
                         const Offsets& o, int64_t batch_size, const std::vector<FloatBuffer>& grads,
                         const std::vector<int64_t>& block_owner, int64_t item, size_t* error_step) {
  std::vector<float> tmp, g_over_n;
  std::vector<V8> sums;  // a SUM/MEAN chunk's summed rows
  ResolvedRows fids;     // E(f) + lo per fid, null where another item owns it
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
    if (fe.shared) {
      // Every row pooled the same entry: sum the rows' gradients, then scatter once.
      if (!fids.Resolve(blocks, o, widest, fe.start, fe.start + 1, 0, owns, &err)) return err;
      for (const SliceInfo* s : step.slices) {
        const float* g = grads[s->output].data + s->offset;
        const int64_t row = config.outputs()[s->output].row_elems;
        tmp.assign(s->region, 0.f);
        for (int64_t r = 0; r < batch_size; ++r) PlaceRegion(*s, g + r * row, tmp.data(), false);
        ScatterEntry(*s, fids.Fids(0), fids.Count(0), tmp.data(), &g_over_n);
      }
      continue;
    }
    const PooledSpan span(config, step, grads);
    // SUM/MEAN: rows resolved to E(f) + span.lo and written over the span; FIRSTN: E(f) and the
    // widest slice.
    const int64_t lo = span.slices.empty() ? 0 : span.lo;
    const int64_t touch_off = span.slices.empty() ? widest.start : 0;
    const int64_t touch_bytes = (span.slices.empty() ? widest.width : span.width) * sizeof(float);
    for (int64_t r0 = 0; r0 < batch_size; r0 += kRowChunk) {
      const int64_t r1 = std::min(r0 + kRowChunk, batch_size);
      if (!fids.Resolve(blocks, o, widest, fe.start + r0, fe.start + r1, lo, owns, &err)) return err;
      fids.Head<true>(touch_off, touch_bytes);
      if (!span.slices.empty()) {
        sums.resize((r1 - r0) * span.tiles);
        SumChunk(span, fids, r0, r1, batch_size, sums.data());
        for (int64_t i = 0; i < r1 - r0; ++i) {
          // The next chunk's fids and upstream-gradient rows, fetched while this chunk scatters.
          fids.PrefetchFollowing(i);
          if (r1 + i < batch_size) {
            for (const SliceGrad& sg : span.slices) PrefetchRegion(sg.Row(r1 + i), sg.region);
          }
          ScatterPooledEntry(span, sums.data() + i * span.tiles, fids.Fids(i), fids.Count(i), touch_bytes);
        }
        continue;
      }
      for (int64_t r = r0; r < r1; ++r) {
        float* const* rows = fids.Fids(r - r0);
        fids.PrefetchAhead<true>(r - r0, touch_off, touch_bytes);
        // FIRSTN: slice by slice, fid by fid.
        if (r + kPrefetchEntries < batch_size) {
          for (const SliceInfo* s : step.slices) {
            PrefetchRegion(grads[s->output].data + s->offset + (r + kPrefetchEntries) * config.outputs()[s->output].row_elems, s->region);
          }
        }
        for (const SliceInfo* s : step.slices) {
          const float* g = grads[s->output].data + s->offset + r * config.outputs()[s->output].row_elems;
          ScatterEntry(*s, rows, fids.Count(r - r0), g, &g_over_n);
        }
      }
    }
  }
  return "";
}

// See BackwardRows: the one block every fid of a step addresses, or -1. Every valid fid of a
// feature usually lies in its table's block (with one parameter server): then one item scatters
// the whole step and the others skip it, instead of every item walking every fid and upstream
// gradient row.
int64_t StepBlock(const Step& step, const std::vector<Block>& blocks, const Offsets& o) {
  FeatureEntries fe;
  if (!DecodeFeature(o, *step.widest, &fe).empty() || fe.count == 0 || fe.start + fe.count > o.num_entries) return -1;
  const int64_t begin = o.feature_offset[fe.start];
  const int64_t end = fe.start + fe.count < o.num_entries ? o.feature_offset[fe.start + fe.count] : o.num_fids;
  if (begin < 0 || end <= begin || end > o.num_fids) return -1;
  const uint64_t first = o.fid_offset[begin];
  // OR of every fid's block bits XOR the first's: branch-free, 3 instructions per fid instead of
  // the early-exit loop's 9 (this scan reads every fid once per backward).
  uint64_t differ = 0;
  for (int64_t k = begin + 1; k < end; ++k) differ |= (o.fid_offset[k] ^ first) >> 32;
  return differ == 0 && (first >> 32) < blocks.size() ? static_cast<int64_t>(first >> 32) : -1;
}

// Runs fn(0) ... fn(n - 1) through the runner, or serially without one.
void RunItems(const ParallelRunner& runner, int64_t n, const std::function<void(int64_t)>& fn) {
  if (runner && n > 1) {
    runner(n, fn);
  } else {
    for (int64_t i = 0; i < n; ++i) fn(i);
  }
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
  RunItems(runner, n, [&](int64_t i) { errors[i] = per_item(batch_size * i / n, batch_size * (i + 1) / n); });
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

void ZeroBuffers(const std::vector<FloatBuffer>& buffers, const ParallelRunner& runner) {
  constexpr int64_t kPiece = 1 << 18;  // floats (1 MiB) zeroed per work item
  std::vector<FloatBuffer> pieces;
  int64_t total = 0;
  for (const FloatBuffer& b : buffers) {
    total += b.size;
    for (int64_t i = 0; i < b.size; i += kPiece) pieces.push_back({b.data + i, std::min(kPiece, b.size - i)});
  }
  // Buffers far larger than the caches: every line is written whole and evicted before it is read
  // again, so plain stores would first read it from memory (2-thread zeroing of 51 MB: 2.7 ms with
  // memset, 1.7 ms streamed).
  const bool stream = total * static_cast<int64_t>(sizeof(float)) >= kStreamOutputBytes;
  RunItems(runner, pieces.size(), [&pieces, stream](int64_t i) {
    float* p = pieces[i].data;
    float* const end = p + pieces[i].size;
    if (!stream) {
      std::fill(p, end, 0.f);
      return;
    }
    for (; p < end && (reinterpret_cast<uintptr_t>(p) & 31) != 0; ++p) *p = 0.f;
    for (; p + 8 <= end; p += 8) __builtin_ia32_movntps256(p, V8{});
    for (; p < end; ++p) *p = 0.f;
    StreamFence();
  });
}

std::string LayoutBackward(const LayoutConfig& config, const std::vector<Block>& grad_blocks,
                           const Offsets& offsets, int64_t batch_size,
                           const std::vector<FloatBuffer>& output_grads,
                           const ParallelRunner& runner, int num_threads) {
  std::string err = CheckOutputs(config, batch_size, output_grads);
  if (!err.empty()) return err;
  const std::vector<Step> steps = PlanSteps(config);
  const int64_t n = runner ? std::max<int64_t>(1, std::min<int64_t>(num_threads, grad_blocks.size())) : 1;
  // The scan reads every fid (a sixteenth of the backward's memory traffic at dim 16): the items
  // split it, before any of them needs its result.
  std::vector<int64_t> step_block(steps.size());
  RunItems(runner, n, [&](int64_t i) {
    for (size_t j = i; j < steps.size(); j += n) step_block[j] = StepBlock(steps[j], grad_blocks, offsets);
  });
  std::vector<int64_t> block_owner(grad_blocks.size());
  for (size_t b = 0; b < block_owner.size(); ++b) block_owner[b] = b % n;
  std::vector<std::string> errors(n);
  std::vector<size_t> error_steps(n);
  RunItems(runner, n, [&](int64_t i) {
    errors[i] = BackwardRows(config, steps, step_block, grad_blocks, offsets, batch_size, output_grads,
                             block_owner, i, &error_steps[i]);
  });
  int64_t first = -1;
  for (int64_t i = 0; i < n; ++i) {
    if (!errors[i].empty() && (first < 0 || error_steps[i] < error_steps[first])) first = i;
  }
  return first < 0 ? "" : errors[first];
}

}  // namespace layout
}  // namespace monolith
