#include "monolith/native_training/runtime/hash_table/cuckoo_map.h"

#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>

#include <sys/mman.h>

namespace monolith {
namespace hash_table {
namespace {

constexpr int kMaxCuckooPathLength = 5;
// Breadth-first search capacity: 2 roots, each with a 4-ary tree of depth < 5.
constexpr int kMaxBfsNodes = 2 * ((1 << (2 * kMaxCuckooPathLength)) - 1) / 3;
constexpr double kMinLoadFactorToGrow = 0.05;

}  // namespace

CuckooMap::Bucket* CuckooMap::MapBuckets(uint64_t count) {
  void* p = mmap(nullptr, count * sizeof(Bucket), PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  // Fewer TLB misses on random bucket accesses (the kernel uses huge pages where it can).
  if (count * sizeof(Bucket) >= (2 << 20)) madvise(p, count * sizeof(Bucket), MADV_HUGEPAGE);
  return static_cast<Bucket*>(p);
}

void CuckooMap::Retire(Bucket* buckets, uint64_t count) {
  madvise(buckets, count * sizeof(Bucket), MADV_DONTNEED);
  retired_.emplace_back(buckets, count);
}

CuckooMap::CuckooMap(uint64_t initial_capacity) {
  const uint64_t want_buckets = (std::max<uint64_t>(initial_capacity, 1) + kSlotsPerBucket - 1) /
                                kSlotsPerBucket;
  uint32_t hp = 0;
  while ((uint64_t{1} << hp) < want_buckets) ++hp;
  hashpower_.store(hp);
  buckets_.store(MapBuckets(uint64_t{1} << hp));
  all_locks_.push_back(
      std::make_unique<LockArray>(std::min<uint64_t>(uint64_t{1} << hp, kMaxLocks)));
  locks_.store(all_locks_.back().get());
}

CuckooMap::~CuckooMap() {
  munmap(buckets_.load(), BucketCount() * sizeof(Bucket));
  if (old_buckets_ != nullptr) retired_.emplace_back(old_buckets_, BucketCount() / 2);
  for (const auto& r : retired_) munmap(r.first, r.second * sizeof(Bucket));
}

bool CuckooMap::LockStripes(uint32_t hashpower, uint64_t b1, uint64_t b2, Locked* out) {
  LockArray* locks = locks_.load(std::memory_order_acquire);
  size_t s1 = b1 & (locks->size - 1), s2 = b2 & (locks->size - 1);
  if (s1 > s2) std::swap(s1, s2);
  locks->stripes[s1].Lock();
  if (s2 != s1) locks->stripes[s2].Lock();
  if (hashpower_.load(std::memory_order_acquire) != hashpower ||
      locks_.load(std::memory_order_acquire) != locks) {
    if (s2 != s1) locks->stripes[s2].Unlock();
    locks->stripes[s1].Unlock();
    return false;
  }
  if (!locks->migrated[s1]) MigrateStripe(locks, s1);
  if (!locks->migrated[s2]) MigrateStripe(locks, s2);
  *out = Locked{locks, s1, s2, b1, b2, hashpower};
  return true;
}

CuckooMap::Locked CuckooMap::LockKey(int64_t key) {
  const uint64_t h = Hash(key);
  Locked l;
  for (;;) {
    const uint32_t hp = hashpower_.load(std::memory_order_acquire);
    const uint64_t mask = (uint64_t{1} << hp) - 1;
    const uint64_t i1 = h & mask;
    if (LockStripes(hp, i1, Alt(i1, h, mask), &l)) return l;
  }
}

void CuckooMap::Unlock(const Locked& l) {
  if (l.s2 != l.s1) l.locks->stripes[l.s2].Unlock();
  l.locks->stripes[l.s1].Unlock();
}

CuckooMap::Value* CuckooMap::FindIn(const Locked& l, int64_t key) {
  Bucket* buckets = buckets_.load(std::memory_order_relaxed);
  const Probe p = ProbeLocked(l, key);
  return p.state == Probe::kFound ? &buckets[p.bucket].values[p.slot] : nullptr;
}

uint32_t CuckooMap::Erase(int64_t key) {
  Locked l = LockKey(key);
  Bucket* buckets = buckets_.load(std::memory_order_relaxed);
  const Probe p = ProbeLocked(l, key);
  if (p.state == Probe::kFound) {
    buckets[p.bucket].values[p.slot].handle = 0;
    l.locks->AddCount(p.bucket & (l.locks->size - 1), -1);
  }
  Unlock(l);
  return p.state == Probe::kFound ? p.value.handle : 0;
}

// Called with `stripe` locked after a doubling from >= kMaxLocks buckets: old bucket b moves to
// b or b + old_count (its candidates gained one top bit), both guarded by the same stripe, and
// keeps its slot index (each new bucket receives from exactly one old bucket).
void CuckooMap::MigrateStripe(LockArray* locks, size_t stripe) {
  Bucket* nb = buckets_.load(std::memory_order_relaxed);
  const uint64_t old_count = BucketCount() / 2;
  const uint64_t new_mask = 2 * old_count - 1;
  for (uint64_t b = stripe; b < old_count; b += locks->size) {
    const Bucket& ob = old_buckets_[b];
    for (int k = 0; k < kSlotsPerBucket; ++k) {
      if (ob.values[k].handle == 0) continue;
      const uint64_t h = Hash(ob.keys[k]);
      const uint64_t i1 = h & new_mask;
      const uint64_t target = (i1 & (old_count - 1)) == b ? i1 : Alt(i1, h, new_mask);
      nb[target].keys[k] = ob.keys[k];
      nb[target].values[k] = ob.values[k];
    }
  }
  locks->migrated[stripe].store(true, std::memory_order_release);
  if (unmigrated_stripes_.fetch_sub(1) == 1) {
    Retire(old_buckets_, old_count);  // every stripe is done with the old array
    old_buckets_ = nullptr;
  }
}

void CuckooMap::FinishMigration(LockArray* locks) {
  for (size_t s = 0; s < locks->size && unmigrated_stripes_.load() > 0; ++s) {
    if (!locks->migrated[s]) MigrateStripe(locks, s);
  }
}

CuckooMap::AllLocked::AllLocked(CuckooMap* m) : m_(m) {
  for (;;) {
    locks_ = m->locks_.load(std::memory_order_acquire);
    for (size_t s = 0; s < locks_->size; ++s) locks_->stripes[s].Lock();
    if (m->locks_.load(std::memory_order_acquire) == locks_) break;
    for (size_t s = 0; s < locks_->size; ++s) locks_->stripes[s].Unlock();
  }
  m->FinishMigration(locks_);
}

CuckooMap::AllLocked::~AllLocked() {
  for (size_t s = 0; s < locks_->size; ++s) locks_->stripes[s].Unlock();
}

CuckooMap::CuckooResult CuckooMap::Cuckoo(uint32_t hashpower, uint64_t i1, uint64_t i2) {
  struct Node {
    uint64_t bucket;
    int parent;  // index into nodes, -1 for the two roots
    int slot;    // slot of the parent bucket whose key would move into `bucket`
    int depth;
  };
  Node nodes[kMaxBfsNodes];
  const uint64_t mask = (uint64_t{1} << hashpower) - 1;
  int head = 0, tail = 0, found = -1;
  Locked l;
  // First pass: buckets are read without locks, like the lock-free readers, and each node's bucket
  // is prefetched as it is queued, so the misses of a BFS level overlap instead of costing one
  // memory latency and one lock per node. A stale read only yields a wrong path, which the
  // execution below checks under the locks (kRetry). A stripe not yet migrated after a doubling
  // is migrated first, under its lock, since its keys are still in the old array. Only when that
  // search finds no free slot does a second pass read each bucket under its lock: a table grows
  // only on what the locks showed, never on a stale read.
  for (const bool locked : {false, true}) {
    LockArray* const locks = locks_.load(std::memory_order_acquire);
    const Bucket* const buckets = buckets_.load(std::memory_order_acquire);
    head = tail = 0;
    auto enqueue = [&](const Node& n) {
      if (!locked) PrefetchLine(&buckets[n.bucket]);
      nodes[tail++] = n;
    };
    enqueue(Node{i1, -1, -1, 0});
    enqueue(Node{i2, -1, -1, 0});
    while (head < tail && found < 0) {
      const Node n = nodes[head];
      const bool lock = locked || !locks->migrated[n.bucket & (locks->size - 1)].load(std::memory_order_acquire);
      if (lock && !LockStripes(hashpower, n.bucket, n.bucket, &l)) return CuckooResult::kRetry;
      const Bucket& bucket = lock ? buckets_.load(std::memory_order_relaxed)[n.bucket] : buckets[n.bucket];
      for (int k = 0; k < kSlotsPerBucket; ++k) {
        if (__atomic_load_n(&bucket.values[k].handle, __ATOMIC_RELAXED) == 0) {
          found = head;
          break;
        }
      }
      if (found < 0 && n.depth < kMaxCuckooPathLength) {
        for (int k = 0; k < kSlotsPerBucket && tail < kMaxBfsNodes; ++k) {
          const uint64_t h = Hash(__atomic_load_n(&bucket.keys[k], __ATOMIC_RELAXED));
          const uint64_t k1 = h & mask;
          const uint64_t alt = n.bucket == k1 ? Alt(k1, h, mask) : k1;
          enqueue(Node{alt, head, k, n.depth + 1});
        }
      }
      if (lock) Unlock(l);
      ++head;
    }
    if (found >= 0) break;
  }
  if (found < 0) return CuckooResult::kFull;
  // Execute the path back to front: each step moves one key into the slot freed by the next.
  for (int c = found; nodes[c].parent >= 0; c = nodes[c].parent) {
    const Node& child = nodes[c];
    const Node& parent = nodes[child.parent];
    if (!LockStripes(hashpower, parent.bucket, child.bucket, &l)) return CuckooResult::kRetry;
    Bucket* buckets = buckets_.load(std::memory_order_relaxed);
    Bucket& from = buckets[parent.bucket];
    Bucket& to = buckets[child.bucket];
    bool moved = false;
    if (from.values[child.slot].handle != 0) {
      const int64_t key = from.keys[child.slot];
      const uint64_t h = Hash(key);
      const uint64_t k1 = h & mask;
      const uint64_t alt = parent.bucket == k1 ? Alt(k1, h, mask) : k1;
      for (int k = 0; k < kSlotsPerBucket && alt == child.bucket; ++k) {
        if (to.values[k].handle != 0) continue;
        to.keys[k] = key;
        to.values[k] = from.values[child.slot];
        from.values[child.slot].handle = 0;
        const size_t sf = parent.bucket & (l.locks->size - 1);
        const size_t st = child.bucket & (l.locks->size - 1);
        if (sf != st) {
          l.locks->AddCount(sf, -1);
          l.locks->AddCount(st, 1);
        }
        moved = true;
        break;
      }
    }
    Unlock(l);
    // A concurrent writer changed the path; search again.
    if (!moved) return CuckooResult::kRetry;
  }
  return CuckooResult::kMoved;
}

void CuckooMap::Grow(uint32_t hashpower) {
  std::lock_guard<std::mutex> grow_lock(grow_mu_);
  if (hashpower_.load() != hashpower) return;  // another thread already grew the table
  AllLocked all(this);
  LockArray* locks = all_locks_.back().get();
  int64_t size = 0;
  for (size_t s = 0; s < locks->size; ++s) size += locks->count[s].load();
  const uint64_t old_count = uint64_t{1} << hashpower;
  if (size < kMinLoadFactorToGrow * kSlotsPerBucket * old_count) {
    throw std::runtime_error("Automatic expansion triggered when load factor is too low: " +
                             std::to_string(static_cast<double>(size) /
                                            (kSlotsPerBucket * old_count)) +
                             " (size " + std::to_string(size) + ", buckets " +
                             std::to_string(old_count) + ")");
  }
  Bucket* old_buckets = buckets_.load();
  Bucket* nb = MapBuckets(2 * old_count);
  resize_seq_.fetch_add(1);
  if (old_count >= kMaxLocks) {
    // Same kMaxLocks stripes; each migrates lazily when first locked.
    old_buckets_ = old_buckets;
    for (size_t s = 0; s < locks->size; ++s) locks->migrated[s].store(false);
    unmigrated_stripes_.store(locks->size);
    buckets_.store(nb, std::memory_order_release);
    hashpower_.store(hashpower + 1, std::memory_order_release);
    resize_seq_.fetch_add(1);
    return;
  }
  // Small table: migrate everything now and switch to a larger lock array.
  const uint64_t new_mask = 2 * old_count - 1;
  for (uint64_t b = 0; b < old_count; ++b) {
    for (int k = 0; k < kSlotsPerBucket; ++k) {
      if (old_buckets[b].values[k].handle == 0) continue;
      const uint64_t h = Hash(old_buckets[b].keys[k]);
      const uint64_t i1 = h & new_mask;
      const uint64_t target = (i1 & (old_count - 1)) == b ? i1 : Alt(i1, h, new_mask);
      nb[target].keys[k] = old_buckets[b].keys[k];
      nb[target].values[k] = old_buckets[b].values[k];
    }
  }
  auto new_locks = std::make_unique<LockArray>(std::min<uint64_t>(2 * old_count, kMaxLocks));
  for (uint64_t b = 0; b < 2 * old_count; ++b) {
    for (int k = 0; k < kSlotsPerBucket; ++k) {
      if (nb[b].values[k].handle != 0) {
        new_locks->AddCount(b & (new_locks->size - 1), 1);
      }
    }
  }
  buckets_.store(nb, std::memory_order_release);
  hashpower_.store(hashpower + 1, std::memory_order_release);
  all_locks_.push_back(std::move(new_locks));
  locks_.store(all_locks_.back().get(), std::memory_order_release);
  Retire(old_buckets, old_count);
  resize_seq_.fetch_add(1);
  // `all` unlocks the old stripes; threads spinning there see the new lock array and retry.
}

void CuckooMap::ClearLocked() {
  LockArray* locks = locks_.load();
  // Zero-fill by the kernel on next touch; releases the memory meanwhile.
  madvise(buckets_.load(), BucketCount() * sizeof(Bucket), MADV_DONTNEED);
  for (size_t s = 0; s < locks->size; ++s) locks->count[s].store(0);
}

int64_t CuckooMap::Size() const {
  LockArray* locks = locks_.load(std::memory_order_acquire);
  int64_t size = 0;
  for (size_t s = 0; s < locks->size; ++s) {
    size += locks->count[s].load(std::memory_order_relaxed);
  }
  return size;
}

int64_t CuckooMap::MemoryBytes() const {
  return static_cast<int64_t>(BucketCount() * sizeof(Bucket) +
                              locks_.load()->size *
                                  (sizeof(Stripe) + sizeof(std::atomic<int64_t>) +
                                   sizeof(std::atomic<bool>)));
}

}  // namespace hash_table
}  // namespace monolith
