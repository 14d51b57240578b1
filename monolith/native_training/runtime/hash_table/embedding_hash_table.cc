#include "monolith/native_training/runtime/hash_table/embedding_hash_table.h"

#include <chrono>
#include <cstring>
#include <sstream>
#include <stdexcept>

namespace monolith {
namespace hash_table {
namespace {

TableConfig Checked(const TableConfig& config) {
  if (config.skip_zero_embedding && config.entry_config.entry_type != EntryConfig::kServing) {
    throw std::invalid_argument("Only EntryConfig_EntryType_SERVING supports skip_zero_embedding!");
  }
  if (!config.has_cuckoo) {
    throw std::invalid_argument(
        "EmbeddingHashTableConfig must set a table type; only cuckoo is supported. Got entry "
        "config: " +
        ShortDebugString(config.entry_config));
  }
  return config;
}

bool IsZeroEmbedding(const float* v, int dim) {
  double l2 = 0;
  for (int i = 0; i < dim; ++i) l2 += static_cast<double>(v[i]) * v[i];
  return l2 < 1e-12;
}

}  // namespace

int64_t WallClockSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

EmbeddingHashTable::EmbeddingHashTable(const TableConfig& config, Clock clock)
    : config_(Checked(config)),
      clock_(std::move(clock)),
      accessor_(config_.entry_config),
      arena_(accessor_.SizeBytes()),
      map_(config_.initial_capacity),
      prefetch_bytes_(std::min<int64_t>(accessor_.SizeBytes(), 1024)),
      lookup_prefetch_bytes_(accessor_.serving() ? accessor_.SizeBytes() : 4LL * accessor_.dim()) {
  if (config_.enable_feature_eviction) StartEvictionThread();
}

std::unique_ptr<EmbeddingHashTable> EmbeddingHashTable::FromSerializedConfig(
    std::string_view config, Clock clock) {
  return std::make_unique<EmbeddingHashTable>(ParseTableConfig(config), std::move(clock));
}

EmbeddingHashTable::~EmbeddingHashTable() {
  if (eviction_thread_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(eviction_mu_);
      stop_eviction_ = true;
    }
    eviction_cv_.notify_all();
    eviction_thread_.join();
  }
}

void EmbeddingHashTable::PrefetchEntryForWrite(const CuckooMap::Value& v) const {
  PrefetchLines</*kForWrite=*/true>(arena_.Get(v.handle), prefetch_bytes_);
}

uint32_t EmbeddingHashTable::NewEntry() {
  uint32_t handle = arena_.Allocate();
  accessor_.Init(arena_.Get(handle));
  return handle;
}

void EmbeddingHashTable::RaiseMaxUpdateTs(int64_t ts) {
  int64_t cur = max_update_ts_sec_.load(std::memory_order_relaxed);
  while (ts > cur && !max_update_ts_sec_.compare_exchange_weak(cur, ts)) {
  }
}

bool EmbeddingHashTable::Lookup(int64_t id, float* out) const {
  // Lock-free first (no atomic read-modify-writes, so the misses of consecutive ids overlap);
  // under contention fall back to locking the key's buckets.
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto r = map_.TryOptimisticFind(
        id, [&](const CuckooMap::Value& v) { accessor_.Fill(arena_.Get(v.handle), out); });
    if (r == CuckooMap::ReadResult::kFound) return true;
    if (r == CuckooMap::ReadResult::kAbsent) {
      std::fill_n(out, accessor_.dim(), 0.0f);
      return false;
    }
  }
  const bool found = const_cast<CuckooMap&>(map_).Find(
      id, [&](const CuckooMap::Value& v) { accessor_.Fill(arena_.Get(v.handle), out); });
  if (!found) std::fill_n(out, accessor_.dim(), 0.0f);
  return found;
}

int64_t EmbeddingHashTable::BatchLookup(const int64_t* ids, int64_t n, float* out) const {
  const int dim = accessor_.dim();
  // Plain stores, not streaming ones: the rows are read next by the caller (and on a large
  // last-level cache streaming made lookups 15-25 % slower).
  return map_.BatchOptimisticFind(
      ids, n,
      [&](const CuckooMap::Value& v) -> const void* {
        // A stale handle only prefetches a wrong (still mapped) address, which is harmless.
        const char* entry = arena_.Get(v.handle);
        PrefetchRow(entry, lookup_prefetch_bytes_);
        return entry;
      },
      [&](int64_t i, const void* entry) {
        if (entry == nullptr) {
          std::fill_n(out + i * dim, dim, 0.0f);
        } else {
          accessor_.Fill(entry, out + i * dim);
        }
      },
      [&](int64_t i) {
        const bool found = const_cast<CuckooMap&>(map_).Find(ids[i], [&](const CuckooMap::Value& v) {
          accessor_.Fill(arena_.Get(v.handle), out + i * dim);
        });
        if (!found) std::fill_n(out + i * dim, dim, 0.0f);
        return found;
      });
}

bool EmbeddingHashTable::LookupEntry(int64_t id, EntryDump* out) const {
  return const_cast<CuckooMap&>(map_).Find(id, [&](const CuckooMap::Value& v) {
    accessor_.Save(arena_.Get(v.handle), v.timestamp, out);
  });
}

void EmbeddingHashTable::Assign(const int64_t* ids, int64_t n, const float* values,
                                int64_t update_time) {
  const int dim = accessor_.dim();
  map_.PrefetchedForEach(
      ids, n, [this](const CuckooMap::Value& v) { PrefetchEntryForWrite(v); },
      [&](int64_t i) {
        const float* row = values + i * dim;
        if (config_.skip_zero_embedding && IsZeroEmbedding(row, dim)) {
          map_.Erase(ids[i]);
          return;
        }
        map_.Upsert(
            ids[i], [this] { return NewEntry(); },
            [&](CuckooMap::Value& v, bool) {
              v.timestamp = static_cast<uint32_t>(update_time);
              accessor_.Assign(arena_.Get(v.handle), row);
            });
      });
  RaiseMaxUpdateTs(update_time);
}

void EmbeddingHashTable::AssignAdd(int64_t id, const float* value, int64_t update_time) {
  map_.Upsert(
      id, [this] { return NewEntry(); },
      [&](CuckooMap::Value& v, bool) {
        v.timestamp = static_cast<uint32_t>(update_time);
        accessor_.AssignAdd(arena_.Get(v.handle), value);
      });
  RaiseMaxUpdateTs(update_time);
}

bool EmbeddingHashTable::Reinitialize(int64_t id) {
  const int64_t now = clock_();
  return map_.Upsert(
      id, [this] { return NewEntry(); },
      [&](CuckooMap::Value& v, bool existed) {
        v.timestamp = static_cast<uint32_t>(now);
        if (existed) accessor_.Init(arena_.Get(v.handle));
      });
}

void EmbeddingHashTable::Optimize(int64_t id, const float* grad, const float* lrs,
                                  int64_t update_time, int64_t global_step) {
  map_.Upsert(
      id, [this] { return NewEntry(); },
      [&](CuckooMap::Value& v, bool) {
        v.timestamp = static_cast<uint32_t>(update_time);
        accessor_.Optimize(arena_.Get(v.handle), grad, lrs, global_step);
      });
}

void EmbeddingHashTable::BatchOptimize(const int64_t* ids, int64_t n, const float* grads,
                                       const float* lrs, int64_t update_time,
                                       int64_t global_step) {
  const int dim = accessor_.dim();
  map_.PrefetchedUpdate(
      ids, n, [this](const CuckooMap::Value& v) { PrefetchEntryForWrite(v); },
      [&](int64_t i, CuckooMap::Value& v) {
        v.timestamp = static_cast<uint32_t>(update_time);
        accessor_.Optimize(arena_.Get(v.handle), grads + i * dim, lrs, global_step);
      },
      [&](int64_t i) { Optimize(ids[i], grads + i * dim, lrs, update_time, global_step); });
  RaiseMaxUpdateTs(update_time);
}

int64_t EmbeddingHashTable::Evict(int64_t max_update_time) {
  const SlotExpireTimeConfig& expire = config_.slot_expire_time_config;
  return map_.EraseIf([&](int64_t id, const CuckooMap::Value& v) {
    return expire.IsExpired(id, v.timestamp, max_update_time);
  });
}

bool EmbeddingHashTable::Contains(int64_t id) const {
  return const_cast<CuckooMap&>(map_).Find(id, [](const CuckooMap::Value&) {});
}

void EmbeddingHashTable::EvictionTick() {
  std::lock_guard<std::mutex> lock(tick_mu_);
  const int64_t now = clock_();
  if (last_evict_ts_sec_ < 0) {
    last_evict_ts_sec_ = now;
    return;
  }
  if (now - last_evict_ts_sec_ >= int64_t{config_.feature_evict_every_n_hours} * 3600) {
    Evict(max_update_ts_sec());
    last_evict_ts_sec_ = now;
  }
}

void EmbeddingHashTable::StartEvictionThread() {
  eviction_thread_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(eviction_mu_);
    while (!stop_eviction_) {
      lock.unlock();
      EvictionTick();
      lock.lock();
      eviction_cv_.wait_for(lock, std::chrono::seconds(10), [this] { return stop_eviction_; });
    }
  });
}

void EmbeddingHashTable::Save(const DumpShard& shard,
                              const std::function<bool(EntryDump&&)>& write_fn,
                              DumpIterator* iter) const {
  map_.Dump(shard.idx, shard.total, shard.limit, &iter->offset,
            [&](int64_t id, const CuckooMap::Value& v) {
              EntryDump dump;
              dump.has_id = true;
              dump.id = id;
              accessor_.Save(arena_.Get(v.handle), v.timestamp, &dump);
              return write_fn(std::move(dump));
            });
}

std::string EmbeddingHashTable::ValidateDump(const EntryDump& dump) const {
  if (!dump.has_id) return "entry dump has no id";
  return accessor_.Validate(dump);
}

bool EmbeddingHashTable::Restore(const EntryDump& dump) {
  if (config_.skip_zero_embedding && IsZeroEmbedding(dump.num.data(), accessor_.dim())) {
    return false;
  }
  map_.Upsert(
      dump.id, [this] { return NewEntry(); },
      [&](CuckooMap::Value& v, bool) {
        accessor_.Restore(arena_.Get(v.handle), dump);
        v.timestamp = static_cast<uint32_t>(dump.last_update_ts_sec);
      });
  RaiseMaxUpdateTs(dump.last_update_ts_sec);
  return true;
}

void EmbeddingHashTable::Clear() {
  // Entry storage is released while every map lock is still held.
  map_.Clear([this] { arena_.Reset(); });
}

std::string EmbeddingHashTable::DebugString() const {
  const int64_t size = Size();
  std::ostringstream os;
  os << "{\"accessor\": " << accessor_.DebugString() << ", \"size\": " << size
     << ", \"memory\": " << size * (accessor_.SizeBytes() + 8)
     << ", \"memory_if_not_compressed\": " << size * (accessor_.UncompressedSizeBytes() + 8)
     << ", \"load_factor\": " << map_.LoadFactor() << "}";
  return os.str();
}

}  // namespace hash_table
}  // namespace monolith
