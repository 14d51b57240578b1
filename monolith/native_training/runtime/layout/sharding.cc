#include "monolith/native_training/runtime/layout/sharding.h"

#include <algorithm>

namespace monolith {
namespace layout {
namespace {

// fid → position, open addressing; one per feature (dedup is per feature, Quirk Q8).
class FidPositions {
 public:
  explicit FidPositions(int64_t expected) {
    size_t cap = 16;
    while (cap < 2 * static_cast<size_t>(expected)) cap <<= 1;
    keys_.resize(cap);
    values_.assign(cap, -1);
  }
  // Returns the stored position of `fid`, or stores and returns `fresh`.
  int64_t FindOrInsert(uint64_t fid, int64_t fresh) {
    const size_t mask = keys_.size() - 1;
    size_t i = (fid * 0x9E3779B97F4A7C15ull) >> 20 & mask;
    while (values_[i] >= 0) {
      if (keys_[i] == fid) return values_[i];
      i = (i + 1) & mask;
    }
    keys_[i] = fid;
    values_[i] = fresh;
    return fresh;
  }

 private:
  std::vector<uint64_t> keys_;
  std::vector<int64_t> values_;
};

// Groups features into chunks of at most `watermark` fids (features over it get their own chunk,
// after the others; features without fids are left out).
std::vector<std::vector<int>> Chunk(const std::vector<int64_t>& feature_fids, int64_t watermark) {
  std::vector<std::vector<int>> chunks, big;
  std::vector<int> current;
  int64_t current_fids = 0;
  for (size_t fi = 0; fi < feature_fids.size(); ++fi) {
    const int64_t n = feature_fids[fi];
    if (n == 0) continue;
    if (n >= watermark) {
      big.push_back({static_cast<int>(fi)});
      continue;
    }
    if (!current.empty() && current_fids + n > watermark) {
      chunks.push_back(std::move(current));
      current.clear();
      current_fids = 0;
    }
    current.push_back(fi);
    current_fids += n;
  }
  if (!current.empty()) chunks.push_back(std::move(current));
  chunks.insert(chunks.end(), big.begin(), big.end());
  return chunks;
}

void RunChunks(const std::vector<std::vector<int>>& chunks, const ParallelRunner& runner,
               const std::function<void(int)>& per_feature) {
  auto fn = [&](int64_t c) {
    for (int fi : chunks[c]) per_feature(fi);
  };
  if (runner && chunks.size() > 1) {
    runner(chunks.size(), fn);
  } else {
    for (size_t c = 0; c < chunks.size(); ++c) fn(c);
  }
}

}  // namespace

std::string ShardFids(const LayoutConfig& config, const BatchFids& batch, int ps_num, bool unique,
                      int version, int64_t watermark, const ParallelRunner& runner,
                      ShardingResult* out) {
  if (ps_num <= 0) return "ps_num must be > 0, got " + std::to_string(ps_num);
  const int P = ps_num;
  const int F = config.features().size();
  const int T = config.tables().size();
  const int64_t E = batch.num_entries();
  *out = ShardingResult();
  out->ps_num = P;
  out->batch_size = batch.batch_size;

  // Offsets of entries and features.
  out->feature_offset.resize(E + 1);
  int64_t total = 0;
  for (int64_t e = 0; e < E; ++e) {
    out->feature_offset[e] = total;
    total += batch.EntryFidCount(e);
    if (total > INT32_MAX) return "too many fids in one batch: " + std::to_string(total);
  }
  out->feature_offset[E] = total;
  if (E + 1 > INT32_MAX) return "too many feature entries in one batch";
  out->nfl_offset.resize(F + 1);
  std::vector<int64_t> feature_fids(F);
  for (int fi = 0; fi < F; ++fi) {
    out->nfl_offset[fi] = batch.feature_entry_begin[fi] | (batch.shared[fi] ? kSharedBit : 0u);
    feature_fids[fi] = out->feature_offset[batch.feature_entry_begin[fi + 1]] -
                       out->feature_offset[batch.feature_entry_begin[fi]];
  }
  out->nfl_offset[F] = E + 1;
  out->fid_offset.resize(total);

  // Phase 1, per feature: shard, dedup, record (ps, position inside the feature's shard list).
  std::vector<std::vector<std::vector<int64_t>>> lists(F, std::vector<std::vector<int64_t>>(P));
  RunChunks(Chunk(feature_fids, watermark), runner, [&](int fi) {
    std::vector<std::vector<int64_t>>& shard_lists = lists[fi];
    FidPositions positions(unique ? feature_fids[fi] : 0);
    for (int64_t e = batch.feature_entry_begin[fi]; e < batch.feature_entry_begin[fi + 1]; ++e) {
      uint64_t* dst = out->fid_offset.data() + out->feature_offset[e];
      for (int64_t s = batch.entry_span_begin[e]; s < batch.entry_span_begin[e + 1]; ++s) {
        const FidSpan& span = batch.spans[s];
        for (int64_t i = 0; i < span.size; ++i) {
          const uint64_t fid = span[i];
          const uint64_t ps = fid % P;
          std::vector<int64_t>& list = shard_lists[ps];
          int64_t pos = list.size();
          if (unique) pos = positions.FindOrInsert(fid, pos);
          if (pos == static_cast<int64_t>(list.size())) list.push_back(static_cast<int64_t>(fid));
          *dst++ = ps << 32 | static_cast<uint64_t>(pos);
        }
      }
    }
  });

  // Per (table, shard): row splits, and each feature's row / element prefix inside the list.
  const int N = T * P;
  std::vector<int64_t> row_prefix(static_cast<size_t>(F) * P), elem_prefix(static_cast<size_t>(F) * P);
  out->row_splits.resize(N);
  out->emb_elems.resize(N);
  out->list_begin.assign(N + 1, 0);
  for (int ti = 0; ti < T; ++ti) {
    const TableInfo& table = config.tables()[ti];
    for (int ps = 0; ps < P; ++ps) {
      const int i = ti * P + ps;
      std::vector<int64_t>& split = out->row_splits[i];
      split.assign(1, 0);
      int64_t elems = 0;
      for (int fi : table.features) {
        row_prefix[fi * P + ps] = split.back();
        elem_prefix[fi * P + ps] = elems;
        const int64_t c = lists[fi][ps].size();
        split.push_back(split.back() + c);
        elems += c * config.features()[fi].dims_sum;
      }
      out->emb_elems[i] = elems;
      out->list_begin[i + 1] = out->list_begin[i] + split.back();
    }
  }
  out->fids.resize(out->list_begin[N]);

  // Phase 2, per feature: copy the lists and encode fid_offset for `version` (§6.6).
  std::vector<int64_t> table_pre(T + 1, 0);  // v2: Σ_{t<ti} max(F_t, 1)·P
  for (int ti = 0; ti < T; ++ti) {
    table_pre[ti + 1] = table_pre[ti] + std::max<int64_t>(config.tables()[ti].features.size(), 1) * P;
  }
  std::vector<std::string> errors(F);
  RunChunks(Chunk(feature_fids, 400000), runner, [&](int fi) {
    const FeatureInfo& f = config.features()[fi];
    const int64_t Ft = config.tables()[f.table_idx].features.size();
    for (int ps = 0; ps < P; ++ps) {
      const std::vector<int64_t>& list = lists[fi][ps];
      std::copy(list.begin(), list.end(),
                out->fids.begin() + out->list_begin[f.table_idx * P + ps] + row_prefix[fi * P + ps]);
    }
    const int64_t first = out->feature_offset[batch.feature_entry_begin[fi]];
    const int64_t last = out->feature_offset[batch.feature_entry_begin[fi + 1]];
    for (int64_t k = first; k < last; ++k) {
      const uint64_t ps = out->fid_offset[k] >> 32;
      const int64_t pos = out->fid_offset[k] & 0xffffffffu;
      int64_t index1 = f.table_idx * P + ps, index2;
      if (version == 1) {
        index2 = pos + row_prefix[fi * P + ps];
      } else if (version == 2) {
        index1 = table_pre[f.table_idx] + ps * Ft + f.in_table_idx;
        index2 = pos;
      } else {
        index2 = pos * f.dims_sum + elem_prefix[fi * P + ps];
      }
      if (index2 > INT32_MAX || index1 > INT32_MAX) {
        errors[fi] = "feature " + f.name + ": embedding offset " + std::to_string(index2) +
                     " does not fit the 32-bit fid_offset encoding";
        return;
      }
      out->fid_offset[k] = static_cast<uint64_t>(index1) << 32 | static_cast<uint64_t>(index2);
    }
  });
  for (const std::string& e : errors) {
    if (!e.empty()) return e;
  }
  return "";
}

}  // namespace layout
}  // namespace monolith
