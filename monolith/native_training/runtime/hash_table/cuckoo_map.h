// Concurrent bucketized cuckoo map from int64 key to an 8-byte slot value {entry handle, uint32
// timestamp} (native_ops.md §1.4). 2^hashpower buckets of 4 slots (one 64-byte cache line each);
// lock striping with min(buckets, 4096) 8-byte seqlocks; BFS cuckoo displacement (path length
// <= 5); doubling under all locks, after which large tables migrate lazily stripe by stripe, so a
// doubling never makes readers wait for a full rehash.
#ifndef MONOLITH_NATIVE_TRAINING_RUNTIME_HASH_TABLE_CUCKOO_MAP_H_
#define MONOLITH_NATIVE_TRAINING_RUNTIME_HASH_TABLE_CUCKOO_MAP_H_

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <type_traits>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "monolith/native_training/runtime/common/prefetch.h"

namespace monolith {
namespace hash_table {

class CuckooMap {
  struct LockArray;

 public:
  static constexpr int kSlotsPerBucket = 4;
  // Few enough that the stripe array (8 bytes each) stays cached for lock-free readers (upstream
  // has 65536 cache-line spinlocks; the count is not observable, only what a reader pays).
  static constexpr size_t kMaxLocks = 4096;
  // Keys between the stages of the batch pipelines: enough to cover a memory latency. Lookups
  // have fewer lines in flight per key (no optimizer state to prefetch), so they look further
  // ahead.
  static constexpr int64_t kBatchAhead = 8;
  static constexpr int64_t kLookupAhead = 16;

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
    const Snapshot snap = TakeSnapshot();
    Probe p;
    StartProbe(snap, key, &p);
    ReadBucketsVersioned(snap, key, &p);
    if (p.state == Probe::kUnreadable) return ReadResult::kRetry;
    if (p.state == Probe::kFound) read(p.value);
    if (!ValidProbe(snap, p, seq)) return ReadResult::kRetry;
    return p.state == Probe::kFound ? ReadResult::kFound : ReadResult::kAbsent;
  }

  // Lock-free batch read, pipelined so that the cache misses of different keys overlap (see
  // Pipeline): prefetch(value) prefetches key i's entry and returns its address, and read(i, that
  // address, or null when absent) runs once it was prefetched. When a writer or resize interfered
  // with key i, whatever read(i, ...) wrote may be torn and locked_read(i) runs instead (it must
  // overwrite it, and return whether the key exists). Returns the number of keys found.
  template <typename PrefetchFn, typename ReadFn, typename LockedReadFn>
  int64_t BatchOptimisticFind(const int64_t* keys, int64_t n, PrefetchFn&& prefetch, ReadFn&& read,
                              LockedReadFn&& locked_read) const {
    int64_t found = 0;
    int64_t i = 0;
    while (i < n) {
      const uint64_t seq = resize_seq_.load(std::memory_order_acquire);
      if (seq & 1) {  // resize in progress: the locked path waits for it
        found += locked_read(i++);
        continue;
      }
      const Snapshot snap = TakeSnapshot();
      i = Pipeline</*kForLookup=*/true>(keys, i, n, snap, prefetch, [&](int64_t j, const Probe& p) {
        if (p.state != Probe::kUnreadable) {
          read(j, p.state == Probe::kFound ? p.entry : nullptr);
          if (ValidProbe(snap, p, seq)) {
            found += p.state == Probe::kFound;
            return true;
          }
        }
        found += locked_read(j);
        // After a resize the snapshot is stale: restart the pipeline with a fresh one.
        return resize_seq_.load(std::memory_order_relaxed) == seq;
      });
    }
    return found;
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

  // Runs fn(i) for i in [0, n) in order, each after a lock-free, best-effort prefetch (see
  // Pipeline) of what the write to keys[i] will touch: its buckets, lock stripes and entry (via
  // prefetch(value)). Stale reads only prefetch wrong (still mapped) addresses; fn takes the locks.
  template <typename PrefetchFn, typename Fn>
  void PrefetchedForEach(const int64_t* keys, int64_t n, PrefetchFn&& prefetch, Fn&& fn) const {
    int64_t i = 0;
    while (i < n) {
      const uint64_t seq = resize_seq_.load(std::memory_order_acquire);
      const Snapshot snap = TakeSnapshot();
      i = Pipeline</*kForLookup=*/false>(keys, i, n, snap, prefetch, [&](int64_t j, const Probe&) {
        fn(j);
        // fn may have grown the table: prefetch from the new buckets from now on.
        return resize_seq_.load(std::memory_order_relaxed) == seq;
      });
    }
  }

  // Like PrefetchedForEach, except that when the pipelined probe found keys[i], update(i, value)
  // runs with only the stripe of the bucket holding the key locked: every other writer of that
  // slot or its entry locks that stripe too, and lock-free readers check it. One atomic per key
  // instead of two. fn(i) runs for the other keys (absent, or moved or resized meanwhile).
  template <typename PrefetchFn, typename UpdateFn, typename Fn>
  void PrefetchedUpdate(const int64_t* keys, int64_t n, PrefetchFn&& prefetch, UpdateFn&& update,
                        Fn&& fn) {
    int64_t i = 0;
    while (i < n) {
      const uint64_t seq = resize_seq_.load(std::memory_order_acquire);
      const Snapshot snap = TakeSnapshot();
      auto finish = [&](int64_t j, const Probe& p) {
        if (p.state != Probe::kFound ||
            !UpdateInBucket(snap, keys[j], p.bucket, [&](Value& v) { update(j, v); })) {
          fn(j);
        }
        // fn may have grown the table: prefetch from the new buckets from now on.
        return resize_seq_.load(std::memory_order_relaxed) == seq;
      };
      i = Pipeline</*kForLookup=*/false>(keys, i, n, snap, prefetch, finish);
    }
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
  struct Stripe {
    std::atomic<uint64_t> version{0};
    void Lock() {
      uint64_t v = version.load(std::memory_order_relaxed);
      while ((v & 1) ||
             !version.compare_exchange_weak(v, v + 1, std::memory_order_acquire,
                                            std::memory_order_relaxed)) {
        __builtin_ia32_pause();
        v = version.load(std::memory_order_relaxed);
      }
      // Orders the odd version before the writes it guards (the seqlock writer's fence).
      std::atomic_thread_fence(std::memory_order_release);
    }
    // Only the holder changes an odd version: a plain store, no atomic read-modify-write.
    void Unlock() {
      version.store(version.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    }
  };
  static_assert(sizeof(Stripe) == 8, "readers touch two stripes per key: keep them dense");

  // Per-stripe data besides the lock lives in separate arrays so that the stripes stay dense.
  struct LockArray {
    explicit LockArray(size_t n)
        : size(n),
          stripes(new Stripe[n]),
          count(new std::atomic<int64_t>[n]),
          migrated(new std::atomic<bool>[n]) {
      for (size_t s = 0; s < n; ++s) {
        count[s].store(0, std::memory_order_relaxed);
        migrated[s].store(true, std::memory_order_relaxed);
      }
    }
    size_t size;
    std::unique_ptr<Stripe[]> stripes;
    std::unique_ptr<std::atomic<int64_t>[]> count;  // written under the lock, read by Size()
    // Only the holder of stripe s changes count[s]: a plain load and store, no locked instruction
    // (a `lock add` per insert drained the store buffer of the entry writes before it).
    void AddCount(size_t s, int64_t delta) {
      count[s].store(count[s].load(std::memory_order_relaxed) + delta, std::memory_order_relaxed);
    }
    std::unique_ptr<std::atomic<bool>[]> migrated;
  };

  // What a lock-free read uses of the table, loaded once per key or batch.
  struct Snapshot {
    uint64_t mask;
    const Bucket* buckets;
    const LockArray* locks;
    const Stripe* stripes;  // locks->stripes and locks->size - 1, read once per snapshot
    uint64_t lock_mask;
    bool check_migrated;  // some stripe still waits for its lazy migration
  };
  // One key's lock-free read in progress.
  struct Probe {
    enum State : uint8_t { kStarted, kFound, kAbsent, kUnreadable };
    uint64_t b1, b2;  // candidate buckets
    uint64_t v1, v2;  // their stripes' versions before reading
    uint64_t bucket;  // kFound: the bucket holding the key, and its slot
    Value value;
    // kFound in a batched lookup: the entry address its prefetch returned (computed once).
    const void* entry;
    State state;
    uint8_t slot;
  };

  Snapshot TakeSnapshot() const {
    Snapshot snap;
    snap.mask = (uint64_t{1} << hashpower_.load(std::memory_order_acquire)) - 1;
    snap.buckets = buckets_.load(std::memory_order_acquire);
    snap.locks = locks_.load(std::memory_order_acquire);
    snap.stripes = snap.locks->stripes.get();
    snap.lock_mask = snap.locks->size - 1;
    snap.check_migrated = unmigrated_stripes_.load(std::memory_order_acquire) != 0;
    return snap;
  }
  // (The probe steps are forced inline: out of line they are PLT calls from the ops library.)
  __attribute__((always_inline)) static void StartProbe(const Snapshot& snap, int64_t key,
                                                        Probe* p) {
    const uint64_t h = Hash(key);
    p->b1 = h & snap.mask;
    p->b2 = Alt(p->b1, h, snap.mask);
    p->state = Probe::kStarted;
  }
  // Bit k set when slot k of `bucket` holds `key` (live or erased: an erased slot keeps its key).
  // Compared two keys at a time without a branch per slot: which slot holds a key is random, and
  // the mispredicted per-slot branches had cost batched lookups ~20 % (1M keys, dim 16). The
  // vector load may race with a writer; lock-free readers discard such reads (ValidProbe).
  __attribute__((always_inline)) static unsigned KeyMask(const Bucket& bucket, int64_t key) {
#if defined(__SSE2__)
    const __m128i k = _mm_set1_epi64x(key);
    // SSE2 has no 64-bit compare: both 32-bit halves must match.
    auto pair_mask = [&](const int64_t* two_keys) __attribute__((always_inline)) {
      const __m128i keys = _mm_load_si128(reinterpret_cast<const __m128i*>(two_keys));
      const __m128i eq = _mm_cmpeq_epi32(keys, k);
      const __m128i eq64 = _mm_and_si128(eq, _mm_shuffle_epi32(eq, _MM_SHUFFLE(2, 3, 0, 1)));
      return static_cast<unsigned>(_mm_movemask_pd(_mm_castsi128_pd(eq64)));
    };
    static_assert(kSlotsPerBucket == 4, "two pairs of keys");
    return pair_mask(bucket.keys) | pair_mask(bucket.keys + 2) << 2;
#else
    unsigned mask = 0;
    for (int s = 0; s < kSlotsPerBucket; ++s) {
      mask |= static_cast<unsigned>(__atomic_load_n(&bucket.keys[s], __ATOMIC_RELAXED) == key) << s;
    }
    return mask;
#endif
  }
  // Looks for the key's live slot in buckets p->b1 and p->b2 (b1 first): kFound with p->bucket,
  // p->slot and p->value (a copy of the slot's value, read once), else kAbsent. (The state is
  // set inside the loop: returning the slot and testing it afterwards ran lookups ~10 % slower.)
  __attribute__((always_inline)) static void ReadBuckets(const Bucket* buckets, int64_t key,
                                                         Probe* p) {
    p->state = Probe::kAbsent;
    const unsigned mask =
        KeyMask(buckets[p->b1], key) | KeyMask(buckets[p->b2], key) << kSlotsPerBucket;
    for (unsigned m = mask; m != 0; m &= m - 1) {
      const unsigned k = __builtin_ctz(m);
      const uint64_t b = k < kSlotsPerBucket ? p->b1 : p->b2;
      const Value& v = buckets[b].values[k % kSlotsPerBucket];
      p->value.handle = __atomic_load_n(&v.handle, __ATOMIC_RELAXED);
      p->value.timestamp = __atomic_load_n(&v.timestamp, __ATOMIC_RELAXED);
      p->bucket = b;
      p->slot = k % kSlotsPerBucket;
      if (p->value.handle != 0) {
        p->state = Probe::kFound;
        break;
      }
    }
  }
  // Records both stripe versions first (kUnreadable when a stripe is locked or not migrated yet),
  // so that ValidProbe can tell whether ReadBuckets saw a consistent state.
  __attribute__((always_inline)) static void ReadBucketsVersioned(const Snapshot& snap,
                                                                  int64_t key, Probe* p) {
    const size_t s1 = p->b1 & snap.lock_mask, s2 = p->b2 & snap.lock_mask;
    p->v1 = snap.stripes[s1].version.load(std::memory_order_acquire);
    p->v2 = snap.stripes[s2].version.load(std::memory_order_acquire);
    if (((p->v1 | p->v2) & 1) ||
        (snap.check_migrated && !(snap.locks->migrated[s1].load(std::memory_order_acquire) &&
                                  snap.locks->migrated[s2].load(std::memory_order_acquire)))) {
      p->state = Probe::kUnreadable;
      return;
    }
    ReadBuckets(snap.buckets, key, p);
  }
  // True when no writer touched the probe's stripes and no resize or clear ran since `seq` was
  // read, i.e. everything read since ReadBucketsVersioned is consistent.
  bool ValidProbe(const Snapshot& snap, const Probe& p, uint64_t seq) const {
    std::atomic_thread_fence(std::memory_order_acquire);
    return snap.stripes[p.b1 & snap.lock_mask].version.load(std::memory_order_relaxed) == p.v1 &&
           snap.stripes[p.b2 & snap.lock_mask].version.load(std::memory_order_relaxed) == p.v2 &&
           resize_seq_.load(std::memory_order_relaxed) == seq;
  }

  // Runs finish(i, probe of key i) for i in [begin, n) in order until it returns false (stale
  // snapshot); returns the next i. With A = kLookupAhead if kForLookup, else kBatchAhead: both
  // buckets of key i are prefetched at step i - 2A (writers, which lock them, also prefetch its
  // stripes for writing; the stripe array of lock-free readers stays cached); both are read at
  // step i - A (with the stripe versions if kForLookup), which prefetches the entry through
  // prefetch(value). Fetching the second bucket up front costs a line per key found in its first,
  // but a table near its maximum load keeps ~40 % of its keys in their second bucket, and reading
  // that only after the first made a dependent miss (batched lookups ran ~10-15 % faster so).
  template <bool kForLookup, typename PrefetchFn, typename FinishFn>
  int64_t Pipeline(const int64_t* keys, int64_t begin, int64_t n, const Snapshot& snap,
                   PrefetchFn& prefetch, FinishFn&& finish) const {
    constexpr int64_t kAhead = kForLookup ? kLookupAhead : kBatchAhead;
    constexpr int64_t kRing = 64;  // a power of two (the index is masked) > 2 * kAhead
    static_assert(2 * kAhead < kRing, "the ring holds the keys in flight");
    Probe ring[kRing];
    // kChecked: the stages check that their key is in [begin, n) (all but the steady state).
    auto advance = [&](auto checked, int64_t step) __attribute__((always_inline)) {
      constexpr bool kChecked = decltype(checked)::value;
      const int64_t s = step + 2 * kAhead, f = step + kAhead;
      if (!kChecked || (s >= begin && s < n)) {
        Probe& p = ring[s & (kRing - 1)];
        StartProbe(snap, keys[s], &p);
        PrefetchLine(&snap.buckets[p.b1]);
        PrefetchLine(&snap.buckets[p.b2]);
        if (!kForLookup) {
          PrefetchLine</*kForWrite=*/true>(&snap.stripes[p.b1 & snap.lock_mask]);
          PrefetchLine</*kForWrite=*/true>(&snap.stripes[p.b2 & snap.lock_mask]);
        }
      }
      if (!kChecked || (f >= begin && f < n)) {
        Probe& p = ring[f & (kRing - 1)];
        if (kForLookup) {
          ReadBucketsVersioned(snap, keys[f], &p);
        } else {
          ReadBuckets(snap.buckets, keys[f], &p);
        }
        if (p.state == Probe::kFound) {
          if constexpr (kForLookup) {
            p.entry = prefetch(p.value);
          } else {
            prefetch(p.value);
          }
        }
      }
    };
    using Checked = std::true_type;
    using Unchecked = std::false_type;
    for (int64_t step = begin - 2 * kAhead; step < begin; ++step) advance(Checked(), step);
    int64_t i = begin;
    for (; i < n - 2 * kAhead; ++i) {
      advance(Unchecked(), i);
      if (!finish(i, ring[i & (kRing - 1)])) return i + 1;
    }
    for (; i < n; ++i) {
      advance(Checked(), i);
      if (!finish(i, ring[i & (kRing - 1)])) return i + 1;
    }
    return n;
  }

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

  // splitmix64 finalizer: well mixed in every bit, and never persisted.
  static uint64_t Hash(int64_t key) {
    uint64_t x = static_cast<uint64_t>(key);
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
  }
  // The other candidate bucket: `bucket` xor a multiple of an 8-bit tag of the hash, taken from
  // its top bits (the bucket comes from the low ones; splitmix64 mixes every bit).
  static uint64_t Alt(uint64_t bucket, uint64_t hash, uint64_t mask) {
    const uint64_t tag = (hash >> 56) + 1;
    return (bucket ^ (tag * 0xc6a4a7935bd1e995ULL)) & mask;
  }

  // Runs fn(value) when `key` is in bucket `b` of the snapshot's table, locking only b's
  // stripe; false (fn not run) when the key is not there or the table was resized.
  template <typename Fn>
  bool UpdateInBucket(const Snapshot& snap, int64_t key, uint64_t b, Fn&& fn) {
    LockArray* locks = const_cast<LockArray*>(snap.locks);
    const size_t s = b & (locks->size - 1);
    struct Held {
      Stripe* stripe;
      ~Held() { stripe->Unlock(); }
    } held{&locks->stripes[s]};
    held.stripe->Lock();
    // Resizes and clears hold every stripe: none runs while s is held. An unmigrated stripe's
    // keys are still in the old buckets; the caller's locked path migrates it.
    if (locks_.load(std::memory_order_acquire) != locks || BucketCount() - 1 != snap.mask ||
        !locks->migrated[s].load(std::memory_order_acquire)) {
      return false;
    }
    Bucket* buckets = buckets_.load(std::memory_order_relaxed);
    Probe p;
    p.b1 = p.b2 = b;
    ReadBuckets(buckets, key, &p);
    if (p.state != Probe::kFound) return false;
    fn(buckets[b].values[p.slot]);
    return true;
  }
  Locked LockKey(int64_t key);
  void Unlock(const Locked& l);
  // Locks stripes (ascending; one when equal) and finishes their lazy migration; false (nothing
  // locked) when the table was resized since `hashpower` was read.
  bool LockStripes(uint32_t hashpower, uint64_t b1, uint64_t b2, Locked* out);
  // The key's slot in its locked buckets (see ReadBuckets).
  Probe ProbeLocked(const Locked& l, int64_t key) const {
    Probe p;
    p.b1 = l.i1;
    p.b2 = l.i2;
    ReadBuckets(buckets_.load(std::memory_order_relaxed), key, &p);
    return p;
  }
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
        l.locks->AddCount(b & (l.locks->size - 1), 1);
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
    if (!locks->migrated[s]) MigrateStripe(locks, s);
    Bucket* buckets = buckets_.load(std::memory_order_relaxed);
    const uint64_t n = BucketCount();
    for (uint64_t b = s; b < n; b += locks->size) {
      for (int k = 0; k < kSlotsPerBucket; ++k) {
        Value& v = buckets[b].values[k];
        if (v.handle != 0 && pred(buckets[b].keys[k], v)) {
          v.handle = 0;
          locks->AddCount(s, -1);
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
