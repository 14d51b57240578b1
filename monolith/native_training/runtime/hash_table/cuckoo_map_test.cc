#include "monolith/native_training/runtime/hash_table/cuckoo_map.h"

#include <atomic>
#include <cstdint>
#include <map>
#include <random>
#include <thread>
#include <unordered_map>
#include <vector>

#include "monolith/native_training/runtime/hash_table/test_util.h"

namespace monolith {
namespace hash_table {
namespace {

using testing::TestCase;

// Handles are the key's low bits + 1 so contents can be checked against the key.
uint32_t HandleFor(int64_t key) { return static_cast<uint32_t>(key & 0x7fffffff) + 1; }

void TestBasic() {
  CuckooMap m(1);
  MONOLITH_EXPECT(m.BucketCount() == 1);
  MONOLITH_EXPECT(!m.Find(5, [](CuckooMap::Value&) {}));
  bool existed = m.Upsert(5, [] { return 7u; }, [](CuckooMap::Value& v, bool e) {
    MONOLITH_EXPECT(!e);
    v.timestamp = 11;
  });
  MONOLITH_EXPECT(!existed);
  existed = m.Upsert(5, [] { return 8u; }, [](CuckooMap::Value& v, bool e) { MONOLITH_EXPECT(e); });
  MONOLITH_EXPECT(existed);
  uint32_t handle = 0, ts = 0;
  MONOLITH_EXPECT(m.Find(5, [&](CuckooMap::Value& v) {
    handle = v.handle;
    ts = v.timestamp;
  }));
  MONOLITH_EXPECT(handle == 7 && ts == 11);
  MONOLITH_EXPECT(m.Size() == 1);
  MONOLITH_EXPECT(m.Erase(5) == 7);
  MONOLITH_EXPECT(m.Erase(5) == 0);
  MONOLITH_EXPECT(m.Size() == 0);
  MONOLITH_EXPECT(CuckooMap(1000).BucketCount() == 256);
}

// Keys are compared 32 bits at a time (KeyMask): keys that share one half with others in the
// same bucket, or whose halves each appear in a different key, must still match exactly.
void TestKeysSharingHalves() {
  CuckooMap m(1);  // one bucket: every key lands in it
  const int64_t stored[] = {0x0000000100000005, 0x0000000200000005, 0x0000000500000000, -5};
  for (int64_t k : stored) {
    m.Upsert(k, [k] { return HandleFor(k); }, [](CuckooMap::Value&, bool) {});
  }
  MONOLITH_EXPECT(m.BucketCount() == 1 && m.Size() == 4);
  for (int64_t k : stored) {
    uint32_t h = 0;
    MONOLITH_EXPECT(m.Find(k, [&](CuckooMap::Value& v) { h = v.handle; }) && h == HandleFor(k));
  }
  const int64_t absent[] = {5, 0x0000000300000005, 0x0000000500000005, 0x00000005fffffffb,
                            static_cast<int64_t>(0xfffffffb00000005)};
  for (int64_t k : absent) MONOLITH_EXPECT(!m.Find(k, [](CuckooMap::Value&) {}));
  MONOLITH_EXPECT(m.Erase(0x0000000200000005) == HandleFor(0x0000000200000005));
  MONOLITH_EXPECT(!m.Find(0x0000000200000005, [](CuckooMap::Value&) {}));
  MONOLITH_EXPECT(m.Find(0x0000000100000005, [](CuckooMap::Value&) {}));
}

// Growth from one bucket past the kMaxLocks-bucket boundary, where doubling switches to lazy
// per-stripe migration; every key must stay findable with its value.
void TestGrowthSingleThread() {
  CuckooMap m(1);
  const int64_t n = 600000;
  std::mt19937_64 rng(42);
  std::vector<int64_t> keys(n);
  for (auto& k : keys) k = static_cast<int64_t>(rng());
  for (int64_t k : keys) m.Upsert(k, [k] { return HandleFor(k); }, [](CuckooMap::Value&, bool) {});
  MONOLITH_EXPECT(m.Size() == n);
  MONOLITH_EXPECT(m.BucketCount() > CuckooMap::kMaxLocks);
  int64_t wrong = 0;
  for (int64_t k : keys) {
    uint32_t h = 0;
    if (!m.Find(k, [&](CuckooMap::Value& v) { h = v.handle; }) || h != HandleFor(k)) ++wrong;
  }
  MONOLITH_EXPECT(wrong == 0);
  MONOLITH_EXPECT(m.LoadFactor() > 0.3);
}

// N writer threads each own a key range and apply a deterministic mix of inserts, updates and
// erases while reader threads look keys up; the final contents must equal a sequential model.
void TestConcurrentReadersWriters() {
  CuckooMap m(1);
  const int kWriters = 4, kReaders = 2;
  const int64_t kOpsPerWriter = 500000, kKeysPerWriter = 100000;
  std::vector<std::unordered_map<int64_t, uint32_t>> models(kWriters);
  std::atomic<bool> done{false};
  std::atomic<int64_t> bad_reads{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      std::mt19937_64 rng(w);
      auto& model = models[w];
      for (int64_t i = 0; i < kOpsPerWriter; ++i) {
        const int64_t key = w * kKeysPerWriter + static_cast<int64_t>(rng() % kKeysPerWriter);
        const int op = static_cast<int>(rng() % 10);
        if (op < 8) {
          const uint32_t ts = static_cast<uint32_t>(i);
          m.Upsert(key, [key] { return HandleFor(key); },
                   [ts](CuckooMap::Value& v, bool) { v.timestamp = ts; });
          model[key] = ts;
        } else {
          m.Erase(key);
          model.erase(key);
        }
      }
    });
  }
  for (int r = 0; r < kReaders; ++r) {
    threads.emplace_back([&, r] {
      std::mt19937_64 rng(100 + r);
      while (!done.load()) {
        const int64_t key = static_cast<int64_t>(rng() % (kWriters * kKeysPerWriter));
        m.Find(key, [&](CuckooMap::Value& v) {
          if (v.handle != HandleFor(key)) bad_reads.fetch_add(1);
        });
      }
    });
  }
  for (int w = 0; w < kWriters; ++w) threads[w].join();
  done.store(true);
  for (int r = 0; r < kReaders; ++r) threads[kWriters + r].join();
  MONOLITH_EXPECT(bad_reads.load() == 0);
  int64_t expected_size = 0, mismatches = 0;
  for (const auto& model : models) {
    expected_size += model.size();
    for (const auto& kv : model) {
      uint32_t ts = 0;
      if (!m.Find(kv.first, [&](CuckooMap::Value& v) { ts = v.timestamp; }) || ts != kv.second) {
        ++mismatches;
      }
    }
  }
  MONOLITH_EXPECT(mismatches == 0);
  MONOLITH_EXPECT(m.Size() == expected_size);
  // Nothing outside the models is present.
  int64_t dumped = 0;
  int64_t offset = 0;
  auto lock = m.LockAll();
  m.Dump(0, 1, int64_t{1} << 61, &offset, [&](int64_t, const CuckooMap::Value&) {
    ++dumped;
    return true;
  });
  MONOLITH_EXPECT(dumped == expected_size);
}

// Concurrent inserters of disjoint keys drive many doublings (incl. lazy migration).
void TestConcurrentGrowth() {
  CuckooMap m(1);
  const int kThreads = 4;
  const int64_t kPerThread = 150000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int64_t i = 0; i < kPerThread; ++i) {
        const int64_t key = (i << 3) | t;
        m.Upsert(key, [key] { return HandleFor(key); }, [](CuckooMap::Value&, bool) {});
      }
    });
  }
  for (auto& th : threads) th.join();
  MONOLITH_EXPECT(m.Size() == kThreads * kPerThread);
  int64_t missing = 0;
  for (int t = 0; t < kThreads; ++t) {
    for (int64_t i = 0; i < kPerThread; ++i) {
      const int64_t key = (i << 3) | t;
      uint32_t h = 0;
      if (!m.Find(key, [&](CuckooMap::Value& v) { h = v.handle; }) || h != HandleFor(key)) {
        ++missing;
      }
    }
  }
  MONOLITH_EXPECT(missing == 0);
}

void TestPartitionedDump() {
  CuckooMap m(1);
  for (int64_t k = 0; k < 1000; ++k) {
    m.Upsert(k, [k] { return HandleFor(k); }, [](CuckooMap::Value&, bool) {});
  }
  auto lock = m.LockAll();
  std::map<int64_t, int> seen;
  const int total = 7;
  for (int idx = 0; idx < total; ++idx) {
    int64_t offset = 0;
    // Resume in chunks of 3 entries until the range is exhausted.
    for (int calls = 0;; ++calls) {
      int64_t got = 0;
      m.Dump(idx, total, 3, &offset, [&](int64_t k, const CuckooMap::Value&) {
        ++seen[k];
        ++got;
        return true;
      });
      MONOLITH_EXPECT(offset != 0);
      if (got < 3) break;
    }
  }
  MONOLITH_EXPECT(seen.size() == 1000);
  bool once = true;
  for (const auto& kv : seen) once &= kv.second == 1;
  MONOLITH_EXPECT(once);
  // Exhausted ranges report (range buckets + 1) * 4, never 0, even when empty: one bucket split
  // 3 ways gives shard 0 the bucket and shards 1, 2 nothing.
  CuckooMap empty(1);
  for (int idx = 0; idx < 3; ++idx) {
    int64_t offset = 0;
    empty.Dump(idx, 3, 10, &offset, [](int64_t, const CuckooMap::Value&) { return true; });
    MONOLITH_EXPECT(offset == (idx == 0 ? 8 : 4));
  }
}

void TestEraseIfAndClear() {
  CuckooMap m(1);
  for (int64_t k = 0; k < 300000; ++k) {
    m.Upsert(k, [k] { return HandleFor(k); },
             [k](CuckooMap::Value& v, bool) { v.timestamp = static_cast<uint32_t>(k % 3); });
  }
  int64_t erased = m.EraseIf([](int64_t, const CuckooMap::Value& v) { return v.timestamp == 0; });
  MONOLITH_EXPECT(erased == 100000);
  MONOLITH_EXPECT(m.Size() == 200000);
  MONOLITH_EXPECT(!m.Find(3, [](CuckooMap::Value&) {}));
  MONOLITH_EXPECT(m.Find(4, [](CuckooMap::Value&) {}));
  const uint64_t buckets = m.BucketCount();
  bool cleared = false;
  m.Clear([&] { cleared = true; });
  MONOLITH_EXPECT(cleared && m.Size() == 0 && m.BucketCount() == buckets);
  MONOLITH_EXPECT(!m.Find(4, [](CuckooMap::Value&) {}));
}

// The fifth key of a one-bucket table forces a doubling.
void TestFullBucketGrows() {
  CuckooMap m(1);
  for (int64_t k = 0; k < 5; ++k) {
    m.Upsert(k, [k] { return HandleFor(k); }, [](CuckooMap::Value&, bool) {});
  }
  MONOLITH_EXPECT(m.Size() == 5 && m.BucketCount() >= 2);
}

}  // namespace
}  // namespace hash_table
}  // namespace monolith

int main() {
  using namespace monolith::hash_table;
  return testing::RunTests({
      {"Basic", TestBasic},
      {"KeysSharingHalves", TestKeysSharingHalves},
      {"GrowthSingleThread", TestGrowthSingleThread},
      {"ConcurrentReadersWriters", TestConcurrentReadersWriters},
      {"ConcurrentGrowth", TestConcurrentGrowth},
      {"PartitionedDump", TestPartitionedDump},
      {"EraseIfAndClear", TestEraseIfAndClear},
      {"FullBucketGrows", TestFullBucketGrows},
  });
}
