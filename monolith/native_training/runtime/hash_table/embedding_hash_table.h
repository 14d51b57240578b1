// The collisionless embedding hash table (native_ops.md §1.3): a thread-safe map from int64 id
// to an entry (embedding + optimizer state + uint32 timestamp) built from an
// EmbeddingHashTableConfig. No TensorFlow dependency; the TF ops wrap it.
#ifndef MONOLITH_NATIVE_TRAINING_RUNTIME_HASH_TABLE_EMBEDDING_HASH_TABLE_H_
#define MONOLITH_NATIVE_TRAINING_RUNTIME_HASH_TABLE_EMBEDDING_HASH_TABLE_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "monolith/native_training/runtime/common/entry_dump.h"
#include "monolith/native_training/runtime/hash_table/config.h"
#include "monolith/native_training/runtime/hash_table/cuckoo_map.h"
#include "monolith/native_training/runtime/hash_table/entry_accessor.h"
#include "monolith/native_training/runtime/hash_table/entry_arena.h"

namespace monolith {
namespace hash_table {

struct DumpShard {
  int idx = 0;
  int total = 1;
  int64_t limit = int64_t{1} << 61;
};

struct DumpIterator {
  int64_t offset = 0;
};

// Seconds since the epoch; injectable so expiry and eviction can be tested.
using Clock = std::function<int64_t()>;
int64_t WallClockSeconds();

class EmbeddingHashTable {
 public:
  // Throws std::invalid_argument with upstream's messages for unsupported configs.
  explicit EmbeddingHashTable(const TableConfig& config, Clock clock = WallClockSeconds);
  // Parses a serialized EmbeddingHashTableConfig first.
  static std::unique_ptr<EmbeddingHashTable> FromSerializedConfig(std::string_view config,
                                                                  Clock clock = WallClockSeconds);
  ~EmbeddingHashTable();

  const TableConfig& config() const { return config_; }
  const EntryAccessor& accessor() const { return accessor_; }
  int DimSize() const { return accessor_.dim(); }
  int SliceSize() const { return accessor_.SliceSize(); }

  // Fills out[n * dim]; absent ids give zero rows. Returns the number of ids found.
  int64_t BatchLookup(const int64_t* ids, int64_t n, float* out) const;
  bool Lookup(int64_t id, float* out) const;
  // Accessor dump (num, opt, last_update_ts_sec; no id); false and `out` untouched when absent.
  bool LookupEntry(int64_t id, EntryDump* out) const;

  // values[n * dim]. With skip_zero_embedding (serving), an all-zero row erases the id.
  void Assign(const int64_t* ids, int64_t n, const float* values, int64_t update_time);
  void AssignAdd(int64_t id, const float* value, int64_t update_time);
  // Re-runs the initializer (timestamp := now); returns whether the id existed.
  bool Reinitialize(int64_t id);
  // grads[n * dim]; lrs[SliceSize()]. Duplicate ids are applied in order.
  void BatchOptimize(const int64_t* ids, int64_t n, const float* grads, const float* lrs,
                     int64_t update_time, int64_t global_step);
  void Optimize(int64_t id, const float* grad, const float* lrs, int64_t update_time,
                int64_t global_step);

  // Erases entries with max_update_time - timestamp >= expire_days(slot) * 86400.
  int64_t Evict(int64_t max_update_time);
  bool Contains(int64_t id) const;
  // One pass of the background eviction thread (runs every 10 s when enable_feature_eviction):
  // the first pass records the time; later passes evict once feature_evict_every_n_hours passed.
  void EvictionTick();

  // Stop-the-world guard for Save.
  std::unique_ptr<CuckooMap::AllLocked> LockAll() { return map_.LockAll(); }
  // Dumps partition shard.idx of shard.total (with id set) from iter->offset; write_fn returning
  // false stops the dump. Takes no locks: hold LockAll.
  void Save(const DumpShard& shard, const std::function<bool(EntryDump&&)>& write_fn,
            DumpIterator* iter) const;
  // Empty when `dump` can be restored into this table, else what does not match.
  std::string ValidateDump(const EntryDump& dump) const;
  // Inserts one validated dump (timestamp := dump.last_update_ts_sec), raising the max update
  // time. Serving tables with skip_zero_embedding skip all-zero rows; returns whether inserted.
  bool Restore(const EntryDump& dump);
  void Clear();

  int64_t Size() const { return map_.Size(); }
  // Max update_time passed to assign/assign_add/optimize/restore (0 at start).
  int64_t max_update_ts_sec() const { return max_update_ts_sec_.load(std::memory_order_relaxed); }
  void RaiseMaxUpdateTs(int64_t ts);
  // Bytes held by buckets, locks and entry blocks.
  int64_t MemoryBytes() const { return map_.MemoryBytes() + arena_.MemoryBytes(); }
  std::string DebugString() const;

 private:
  uint32_t NewEntry();
  // Batch writes prefetch the entry they will update (the optimizer state too).
  void PrefetchEntryForWrite(const CuckooMap::Value& v) const;
  void StartEvictionThread();

  TableConfig config_;
  Clock clock_;
  EntryAccessor accessor_;
  EntryArena arena_;
  CuckooMap map_;
  const int64_t prefetch_bytes_;
  // Lookups read only the embedding: the first 4 * dim bytes of a training entry.
  const int64_t lookup_prefetch_bytes_;
  std::atomic<int64_t> max_update_ts_sec_{0};

  std::thread eviction_thread_;
  std::mutex eviction_mu_;
  std::condition_variable eviction_cv_;
  bool stop_eviction_ = false;
  std::mutex tick_mu_;  // guards last_evict_ts_sec_ (thread vs. direct EvictionTick calls)
  int64_t last_evict_ts_sec_ = -1;
};

}  // namespace hash_table
}  // namespace monolith

#endif  // MONOLITH_NATIVE_TRAINING_RUNTIME_HASH_TABLE_EMBEDDING_HASH_TABLE_H_
