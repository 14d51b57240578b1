// Concurrent bucketized cuckoo map from int64 key to an 8-byte slot value {entry handle, uint32
// timestamp} (native_ops.md §1.4). 2^hashpower buckets of 4 slots (one 64-byte cache line each);
// lock striping with min(buckets, 65536) spinlocks; BFS cuckoo displacement (path length <= 5);
// doubling under all locks, after which large tables migrate lazily stripe by stripe, so a
// doubling never makes readers wait for a full rehash.
#ifndef MONOLITH_NATIVE_TRAINING_RUNTIME_HASH_TABLE_CUCKOO_MAP_H_
#define MONOLITH_NATIVE_TRAINING_RUNTIME_HASH_TABLE_CUCKOO_MAP_H_

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace monolith {
namespace hash_table {

class CuckooMap {
  struct LockArray;

 public:
  static constexpr int kSlotsPerBucket = 4;
  static constexpr size_t kMaxLocks = 65536;

  // A slot's value. `handle` 0 marks an empty slot, so live handles are never 0.
  struct Value {
    uint32_t handle;
    uint32_t timestamp;
  };

  explicit CuckooMap(uint64_t initial_capacity);
  ~CuckooMap();
  CuckooMap(const CuckooMap&) = delete;
  CuckooMap& operator=(const CuckooMap&) = delete;

  enum class ReadResult { kFound, kAbsent, kRetry };
  // Lock-free read: runs read(value) on the key's slot without locking. kRetry when a writer
  // touched the key's stripes (or the table was resized or cleared) meanwhile; then whatever
  // `read` copied may be torn and must be discarded. Safe against concurrent resizes because
  // retired bucket arrays stay mapped (see Retire).
  template <typename Fn>
  ReadResult TryOptimisticFind(int64_t key, Fn&& read) const {
    const uint64_t seq = resize_seq_.load(std::memory_order_acquire);
    if (seq & 1) return ReadResult::kRetry;
    const uint64_t h = Hash(key);
    const uint64_t mask = (uint64_t{1} << hashpower_.load(std::memory_order_acquire)) - 1;
    const Bucket* buckets = buckets_.load(std::memory_order_acquire);
    const LockArray* locks = locks_.load(std::memory_order_acquire);
    const uint64_t i1 = h & mask, i2 = Alt(i1, h, mask);
    const Stripe& s1 = locks->stripes[i1 & (locks->size - 1)];
    const Stripe& s2 = locks->stripes[i2 & (locks->size - 1)];
    const uint64_t v1 = s1.version.load(std::memory_order_acquire);
    const uint64_t v2 = s2.version.load(std::memory_order_acquire);
    if (((v1 | v2) & 1) || !s1.migrated.load(std::memory_order_acquire) ||
        !s2.migrated.load(std::memory_order_acquire)) {
      return ReadResult::kRetry;
    }
    ReadResult result = ReadResult::kAbsent;
    for (uint64_t b : {i1, i2}) {
      for (int k = 0; k < kSlotsPerBucket && result == ReadResult::kAbsent; ++k) {
        if (__atomic_load_n(&buckets[b].keys[k], __ATOMIC_RELAXED) != key) continue;
        Value v;
        v.handle = __atomic_load_n(&buckets[b].values[k].handle, __ATOMIC_RELAXED);
        v.timestamp = __atomic_load_n(&buckets[b].values[k].timestamp, __ATOMIC_RELAXED);
        if (v.handle == 0) continue;
        read(v);
        result = ReadResult::kFound;
      }
    }
    std::atomic_thread_fence(std::memory_order_acquire);
    if (s1.version.load(std::memory_order_relaxed) != v1 ||
        s2.version.load(std::memory_order_relaxed) != v2 ||
        resize_seq_.load(std::memory_order_relaxed) != seq) {
      return ReadResult::kRetry;
    }
    return result;
  }

  // Runs fn(value) with the key's buckets locked; false when absent.
  template <typename Fn>
  bool Find(int64_t key, Fn&& fn) {
    Locked l = LockKey(key);
    Value* v = FindIn(l, key);
    bool found = v != nullptr;
    if (found) fn(*v);
    Unlock(l);
    return found;
  }

  // If absent, inserts {new_handle(), 0}; then runs fn(value, existed) atomically with the insert
  // (the key's buckets stay locked). Returns whether the key existed. Exceptions from new_handle
  // or fn propagate with the locks released (a slot is only claimed once new_handle returned).
  template <typename NewHandle, typename Fn>
  bool Upsert(int64_t key, NewHandle&& new_handle, Fn&& fn) {
    for (;;) {
      Locked l = LockKey(key);
      UnlockOnExit unlock{this, &l};
      if (Value* v = FindIn(l, key)) {
        fn(*v, true);
        return true;
      }
      if (Value* v = ClaimFreeSlot(l, key, new_handle)) {
        fn(*v, false);
        return false;
      }
      unlock.Release();
      if (Cuckoo(l.hashpower, l.i1, l.i2) == CuckooResult::kFull) Grow(l.hashpower);
    }
  }

  // Prefetches the key's candidate buckets and lock stripes (takes no lock; harmless if the table
  // is resized meanwhile). Batch callers issue it a few keys ahead to overlap cache misses.
  void Prefetch(int64_t key) const {
    const uint64_t h = Hash(key);
    const uint64_t mask = (uint64_t{1} << hashpower_.load(std::memory_order_relaxed)) - 1;
    const uint64_t i1 = h & mask, i2 = Alt(i1, h, mask);
    const Bucket* buckets = buckets_.load(std::memory_order_relaxed);
    const LockArray* locks = locks_.load(std::memory_order_relaxed);
    __builtin_prefetch(&buckets[i1]);
    __builtin_prefetch(&buckets[i2]);
    __builtin_prefetch(&locks->stripes[i1 & (locks->size - 1)], 1);
    __builtin_prefetch(&locks->stripes[i2 & (locks->size - 1)], 1);
  }

  // Removes the key; returns its handle or 0 when absent.
  uint32_t Erase(int64_t key);

  // Visits every entry stripe by stripe (each stripe locked while visited); entries for which
  // pred(key, value) is true are erased. Returns the number erased.
  template <typename Pred>
  int64_t EraseIf(Pred&& pred);

  // Holds every lock (stop-the-world) until destroyed; pending lazy migrations are finished so
  // that Dump sees every entry.
  class AllLocked {
   public:
    explicit AllLocked(CuckooMap* m);
    ~AllLocked();

   private:
    CuckooMap* m_;
    LockArray* locks_;
  };
  std::unique_ptr<AllLocked> LockAll() { return std::make_unique<AllLocked>(this); }

  // Partitioned dump of shard `idx` of `total` (bucket ranges), resuming at *offset (slot units
  // relative to the range start). Calls fn(key, value) for each occupied slot; stops after
  // `limit` entries or when fn returns false, leaving *offset just past the last visited slot;
  // an exhausted range leaves *offset = (range buckets + 1) * 4, never 0. Takes no locks: hold
  // LockAll (or keep the map quiescent).
  template <typename Fn>
  void Dump(int idx, int total, int64_t limit, int64_t* offset, Fn&& fn) const;

  // Removes every entry (keeps the bucket count), then runs on_cleared() before unlocking.
  template <typename Fn>
  void Clear(Fn&& on_cleared) {
    AllLocked all(this);
    resize_seq_.fetch_add(1);
    ClearLocked();
    on_cleared();
    resize_seq_.fetch_add(1);
  }

  int64_t Size() const;
  uint64_t BucketCount() const { return uint64_t{1} << hashpower_.load(std::memory_order_acquire); }
  // Bytes held by the bucket arrays and locks.
  int64_t MemoryBytes() const;
  double LoadFactor() const {
    return static_cast<double>(Size()) / (kSlotsPerBucket * BucketCount());
  }

 private:
  struct alignas(64) Bucket {
    int64_t keys[kSlotsPerBucket];
    Value values[kSlotsPerBucket];
  };
  static_assert(sizeof(Bucket) == 64, "one bucket per cache line");

  // A spinlock that is also a seqlock: `version` is odd while the stripe is locked, so lock-free
  // readers detect any concurrent writer of the stripe's buckets or entries.
  struct alignas(64) Stripe {
    std::atomic<bool> locked{false};
    std::atomic<uint64_t> version{0};
    std::atomic<int64_t> count{0};  // written under the lock, read lock-free by Size()
    std::atomic<bool> migrated{true};
    void Lock() {
      while (locked.exchange(true, std::memory_order_acquire)) {
        while (locked.load(std::memory_order_relaxed)) __builtin_ia32_pause();
      }
      version.store(version.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_release);
    }
    void Unlock() {
      version.store(version.load(std::memory_order_relaxed) + 1, std::memory_order_release);
      locked.store(false, std::memory_order_release);
    }
  };

  struct LockArray {
    explicit LockArray(size_t n) : size(n), stripes(new Stripe[n]) {}
    size_t size;
    std::unique_ptr<Stripe[]> stripes;
  };

  // The two candidate buckets of a key with their stripes locked.
  struct Locked {
    LockArray* locks;
    size_t s1, s2;
    uint64_t i1, i2;
    uint32_t hashpower;
  };

  struct UnlockOnExit {
    CuckooMap* m;
    const Locked* l;
    void Release() {
      m->Unlock(*l);
      m = nullptr;
    }
    ~UnlockOnExit() {
      if (m) m->Unlock(*l);
    }
  };

  static uint64_t Hash(int64_t key);
  static uint64_t Alt(uint64_t bucket, uint64_t hash, uint64_t mask);

  Locked LockKey(int64_t key);
  void Unlock(const Locked& l);
  // Locks stripes (ascending; one when equal) and finishes their lazy migration; false (nothing
  // locked) when the table was resized since `hashpower` was read.
  bool LockStripes(uint32_t hashpower, uint64_t b1, uint64_t b2, Locked* out);
  Value* FindIn(const Locked& l, int64_t key);
  // A free slot of bucket i1, else i2, filled with {key, new_handle()}; null when both are full.
  template <typename NewHandle>
  Value* ClaimFreeSlot(const Locked& l, int64_t key, NewHandle& new_handle) {
    Bucket* buckets = buckets_.load(std::memory_order_relaxed);
    for (uint64_t b : {l.i1, l.i2}) {
      Bucket& bucket = buckets[b];
      for (int s = 0; s < kSlotsPerBucket; ++s) {
        if (bucket.values[s].handle != 0) continue;
        uint32_t handle = new_handle();
        bucket.keys[s] = key;
        bucket.values[s] = Value{handle, 0};
        l.locks->stripes[b % l.locks->size].count.fetch_add(1, std::memory_order_relaxed);
        return &bucket.values[s];
      }
    }
    return nullptr;
  }
  void MigrateStripe(LockArray* locks, size_t stripe);
  void FinishMigration(LockArray* locks);
  void ClearLocked();

  enum class CuckooResult { kMoved, kRetry, kFull };
  // Frees a slot in bucket i1 or i2 by moving a chain of keys along their alternate buckets.
  CuckooResult Cuckoo(uint32_t hashpower, uint64_t i1, uint64_t i2);
  void Grow(uint32_t hashpower);

  // Bucket arrays are anonymous mappings: zeroed lazily by the kernel, and retired ones are
  // released with madvise but stay mapped until destruction, so a lock-free reader holding a
  // stale pointer reads zeros (and then fails its version check) instead of faulting.
  static Bucket* MapBuckets(uint64_t count);
  void Retire(Bucket* buckets, uint64_t count);

  // Odd while a resize or clear is in progress (lock-free readers retry).
  std::atomic<uint64_t> resize_seq_{0};
  std::vector<std::pair<Bucket*, uint64_t>> retired_;  // guarded by grow_mu_ / all locks
  std::atomic<uint32_t> hashpower_;
  std::atomic<Bucket*> buckets_;
  // Buckets of the previous size not yet migrated (lazy migration), or null.
  Bucket* old_buckets_ = nullptr;
  std::atomic<size_t> unmigrated_stripes_{0};
  std::atomic<LockArray*> locks_;
  // Every lock array ever used: a thread may still be spinning on an old one after a resize.
  std::vector<std::unique_ptr<LockArray>> all_locks_;
  std::mutex grow_mu_;
};

template <typename Pred>
int64_t CuckooMap::EraseIf(Pred&& pred) {
  int64_t erased = 0;
  LockArray* locks = locks_.load(std::memory_order_acquire);
  for (size_t s = 0; s < locks->size; ++s) {
    Stripe& stripe = locks->stripes[s];
    stripe.Lock();
    if (locks_.load(std::memory_order_acquire) != locks) {
      // Resized to a different lock count meanwhile: rescan from the start (idempotent).
      stripe.Unlock();
      locks = locks_.load(std::memory_order_acquire);
      s = static_cast<size_t>(-1);
      continue;
    }
    if (!stripe.migrated) MigrateStripe(locks, s);
    Bucket* buckets = buckets_.load(std::memory_order_relaxed);
    const uint64_t n = BucketCount();
    for (uint64_t b = s; b < n; b += locks->size) {
      for (int k = 0; k < kSlotsPerBucket; ++k) {
        Value& v = buckets[b].values[k];
        if (v.handle != 0 && pred(buckets[b].keys[k], v)) {
          v.handle = 0;
          stripe.count.fetch_sub(1, std::memory_order_relaxed);
          ++erased;
        }
      }
    }
    stripe.Unlock();
  }
  return erased;
}

template <typename Fn>
void CuckooMap::Dump(int idx, int total, int64_t limit, int64_t* offset, Fn&& fn) const {
  const uint64_t n = BucketCount();
  const uint64_t q = n / total, r = n % total;
  const uint64_t begin = idx * q + std::min<uint64_t>(idx, r);
  const uint64_t end = begin + q + (static_cast<uint64_t>(idx) < r ? 1 : 0);
  const Bucket* buckets = buckets_.load(std::memory_order_acquire);
  int64_t visited = 0;
  int slot = static_cast<int>(*offset % kSlotsPerBucket);
  for (uint64_t b = begin + *offset / kSlotsPerBucket; b < end; ++b, slot = 0) {
    for (; slot < kSlotsPerBucket; ++slot) {
      const Value& v = buckets[b].values[slot];
      if (v.handle == 0) continue;
      ++visited;
      if (!fn(buckets[b].keys[slot], v) || visited >= limit) {
        *offset = static_cast<int64_t>((b - begin) * kSlotsPerBucket + slot + 1);
        return;
      }
    }
  }
  *offset = static_cast<int64_t>((end - begin + 1) * kSlotsPerBucket);
}

}  // namespace hash_table
}  // namespace monolith

#endif  // MONOLITH_NATIVE_TRAINING_RUNTIME_HASH_TABLE_CUCKOO_MAP_H_
