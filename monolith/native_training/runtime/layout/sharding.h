// sharding_sparse_fids core (fused_layout.md §6): shards every fid occurrence of a batch across
// ps_num parameter servers (fid mod ps_num), optionally deduplicates per feature and shard, and
// produces the per-(table, shard) fid lists plus the three offset tensors of the layout op.
#ifndef MONOLITH_NATIVE_TRAINING_RUNTIME_LAYOUT_SHARDING_H_
#define MONOLITH_NATIVE_TRAINING_RUNTIME_LAYOUT_SHARDING_H_

#include <cstdint>
#include <string>
#include <vector>

#include "monolith/native_training/runtime/layout/batch_fids.h"
#include "monolith/native_training/runtime/layout/layout_config.h"
#include "monolith/native_training/runtime/layout/layout_kernels.h"

namespace monolith {
namespace layout {

struct ShardingResult {
  int ps_num = 1;
  // Per (table, shard) in table-major order (ti·P + ps): its fid list is
  // fids[list_begin[i] : list_begin[i+1]] (the table's features' lists, features in sorted order),
  // its row splits [0, c_0, c_0+c_1, …] are row_splits[i], its embedding element count emb_elems[i].
  std::vector<int64_t> fids;
  std::vector<int64_t> list_begin;
  std::vector<std::vector<int64_t>> row_splits;
  std::vector<int64_t> emb_elems;
  std::vector<uint64_t> fid_offset;
  std::vector<int32_t> feature_offset;  // entries + 1
  std::vector<uint32_t> nfl_offset;     // features + 1
  int64_t batch_size = 0;
};

// `version` selects the fid_offset encoding (§6.6): 1 rows, 2 per-feature blocks, 3/4/5 element
// offsets. Results do not depend on `runner` (used when given and there is more than one chunk of
// features; `watermark` is the fid count per chunk). Returns "" or an error.
std::string ShardFids(const LayoutConfig& config, const BatchFids& batch, int ps_num, bool unique,
                      int version, int64_t watermark, const ParallelRunner& runner,
                      ShardingResult* out);

}  // namespace layout
}  // namespace monolith

#endif  // MONOLITH_NATIVE_TRAINING_RUNTIME_LAYOUT_SHARDING_H_
