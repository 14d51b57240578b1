#include "monolith/native_training/runtime/hash_table/embedding_hash_table.h"

#include <array>
#include <atomic>
#include <cmath>
#include <map>
#include <set>
#include <thread>
#include <vector>

#include "monolith/native_training/runtime/hash_table/test_util.h"

namespace monolith {
namespace hash_table {
namespace {

using testing::OneSegmentConfig;
using testing::Opt;

TableConfig SgdDim1() { return OneSegmentConfig(1, Opt(OptimizerConfig::kSgd)); }

float Get(const EmbeddingHashTable& t, int64_t id) {
  float w = -999;
  t.Lookup(id, &w);
  return w;
}

void TestSingleThread() {
  for (auto storage : {TableConfig::kPacked, TableConfig::kRaw}) {
    TableConfig c = SgdDim1();
    c.storage_type = storage;
    EmbeddingHashTable t(c);
    float w = 5;
    MONOLITH_EXPECT(!t.Lookup(1, &w) && w == 0);
    float v = 2.5f;
    t.AssignAdd(-10, &v, 0);
    MONOLITH_EXPECT(Get(t, -10) == 2.5f);
    float g = 1, lr = 0.01f;
    t.Optimize(13, &g, &lr, 0, 0);
    MONOLITH_EXPECT_NEAR(Get(t, 13), -0.01, 1e-7);
    int64_t ids[3] = {-10, 13, 100};
    float vals[3] = {1, 2, 3};
    t.Assign(ids, 3, vals, 0);
    int64_t look[4] = {5, -10, 13, 100};
    float out[4];
    MONOLITH_EXPECT(t.BatchLookup(look, 4, out) == 3);
    MONOLITH_EXPECT(out[0] == 0 && out[1] == 1 && out[2] == 2 && out[3] == 3);
    EntryDump missing;
    MONOLITH_EXPECT(!t.LookupEntry(5, &missing) && missing.Serialize().empty());
    EntryDump d;
    MONOLITH_EXPECT(t.LookupEntry(-10, &d));
    MONOLITH_EXPECT(!d.has_id && d.num == std::vector<float>{1} && d.opt.size() == 1 &&
              d.opt[0].type == 2 && d.has_last_update_ts_sec && d.last_update_ts_sec == 0);
    MONOLITH_EXPECT(t.Size() == 3 && t.Contains(100) && !t.Contains(5));
  }
}

// 100 threads AssignAdd i and 100 threads Optimize -200*i (lr 0.01) on id i → 3*i.
void TestMultiThread() {
  EmbeddingHashTable t(SgdDim1());
  std::vector<std::thread> threads;
  for (int i = 0; i < 100; ++i) {
    threads.emplace_back([&t, i] {
      float v = static_cast<float>(i);
      t.AssignAdd(i, &v, 0);
    });
    threads.emplace_back([&t, i] {
      float g = -200.0f * i, lr = 0.01f;
      t.Optimize(i, &g, &lr, 0, 0);
    });
  }
  for (auto& th : threads) th.join();
  int wrong = 0;
  for (int i = 0; i < 100; ++i) wrong += Get(t, i) != 3.0f * i;
  MONOLITH_EXPECT(wrong == 0);
}

// Several threads hammer overlapping ids with assign_add and optimize; sums are order
// independent for SGD, so the final values must equal a sequential replay.
void TestConcurrentUpdatesMatchSequentialModel() {
  EmbeddingHashTable t(OneSegmentConfig(4, Opt(OptimizerConfig::kSgd)));
  const int kThreads = 4, kOps = 200000, kIds = 50000;
  std::vector<std::thread> threads;
  for (int th = 0; th < kThreads; ++th) {
    threads.emplace_back([&, th] {
      uint64_t x = 88172645463325252ULL + th;
      for (int i = 0; i < kOps; ++i) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        const int64_t id = static_cast<int64_t>(x % kIds);
        float v[4] = {1, 2, 3, 4}, lr = 1;
        if (i & 1) {
          t.AssignAdd(id, v, 0);
        } else {
          float g[4] = {-1, -1, -1, -1};
          t.Optimize(id, g, &lr, 0, 0);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  std::map<int64_t, std::array<double, 4>> model;
  for (int th = 0; th < kThreads; ++th) {
    uint64_t x = 88172645463325252ULL + th;
    for (int i = 0; i < kOps; ++i) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      auto& m = model[static_cast<int64_t>(x % kIds)];
      for (int k = 0; k < 4; ++k) m[k] += (i & 1) ? k + 1 : 1;
    }
  }
  MONOLITH_EXPECT(t.Size() == static_cast<int64_t>(model.size()));
  int wrong = 0;
  for (const auto& kv : model) {
    float w[4];
    t.Lookup(kv.first, w);
    for (int k = 0; k < 4; ++k) wrong += std::fabs(w[k] - kv.second[k]) > 1e-3;
  }
  MONOLITH_EXPECT(wrong == 0);
}

// BatchOptimize (in-place updates of found ids, Upsert for the rest, growth mid-batch) equals
// per-id Optimize calls bit for bit, duplicates included: Adagrad depends on their order.
void TestBatchOptimizeMatchesPerIdOptimize() {
  const int dim = 8;
  EmbeddingHashTable batched(OneSegmentConfig(dim, Opt(OptimizerConfig::kAdagrad)));
  EmbeddingHashTable single(OneSegmentConfig(dim, Opt(OptimizerConfig::kAdagrad)));
  uint64_t x = 88172645463325252ULL;
  const float lr = 0.05f;
  for (int b = 0; b < 40; ++b) {
    const int64_t n = 2000;
    std::vector<int64_t> ids(n);
    std::vector<float> grads(n * dim);
    for (int64_t i = 0; i < n; ++i) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      ids[i] = static_cast<int64_t>(x % 30000);
      for (int k = 0; k < dim; ++k) {
        grads[i * dim + k] = static_cast<float>((x >> (8 * k)) % 97) - 48;
      }
    }
    batched.BatchOptimize(ids.data(), n, grads.data(), &lr, b, b);
    for (int64_t i = 0; i < n; ++i) single.Optimize(ids[i], grads.data() + i * dim, &lr, b, b);
  }
  MONOLITH_EXPECT(batched.Size() == single.Size());
  int wrong = 0;
  for (int64_t id = 0; id < 30000; ++id) {
    EntryDump a, e;
    const bool found = batched.LookupEntry(id, &a);
    MONOLITH_EXPECT(found == single.LookupEntry(id, &e));
    wrong += found && a.Serialize() != e.Serialize();
  }
  MONOLITH_EXPECT(wrong == 0);
}

// Threads run BatchOptimize over overlapping ids (duplicates, inserts, doublings) while others
// AssignAdd and look up; SGD sums are order independent, so the result must equal a replay.
void TestConcurrentBatchOptimizeMatchesSequentialModel() {
  const int dim = 4, kThreads = 3, kBatches = 60, kBatch = 1500, kIds = 40000;
  EmbeddingHashTable t(OneSegmentConfig(dim, Opt(OptimizerConfig::kSgd)));
  auto batch_ids = [&](int th, int b) {
    std::vector<int64_t> ids(kBatch);
    uint64_t x = 0x9e3779b97f4a7c15ULL * (th * kBatches + b + 1);
    for (auto& id : ids) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      id = static_cast<int64_t>(x % kIds);
    }
    return ids;
  };
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int th = 0; th < kThreads; ++th) {
    threads.emplace_back([&, th] {
      const float lr = 1;
      for (int b = 0; b < kBatches; ++b) {
        const std::vector<int64_t> ids = batch_ids(th, b);
        std::vector<float> grads(kBatch * dim);
        for (int i = 0; i < kBatch; ++i) {
          for (int k = 0; k < dim; ++k) grads[i * dim + k] = -static_cast<float>(ids[i] % 5 + k);
        }
        t.BatchOptimize(ids.data(), kBatch, grads.data(), &lr, 0, 0);
      }
    });
  }
  threads.emplace_back([&] {  // AssignAdd 1 to every id once
    const float ones[dim] = {1, 1, 1, 1};
    for (int64_t id = 0; id < kIds; ++id) t.AssignAdd(id, ones, 0);
  });
  std::thread reader([&] {
    std::vector<int64_t> ids(kBatch);
    std::vector<float> out(kBatch * dim);
    for (int64_t i = 0; i < kBatch; ++i) ids[i] = i * 7 % kIds;
    while (!stop.load()) t.BatchLookup(ids.data(), kBatch, out.data());
  });
  for (auto& th : threads) th.join();
  stop.store(true);
  reader.join();
  std::vector<std::array<double, dim>> model(kIds);
  for (auto& m : model) m.fill(1);
  for (int th = 0; th < kThreads; ++th) {
    for (int b = 0; b < kBatches; ++b) {
      for (int64_t id : batch_ids(th, b)) {
        for (int k = 0; k < dim; ++k) model[id][k] += id % 5 + k;
      }
    }
  }
  MONOLITH_EXPECT(t.Size() == kIds);
  int wrong = 0;
  for (int64_t id = 0; id < kIds; ++id) {
    float w[dim];
    t.Lookup(id, w);
    for (int k = 0; k < dim; ++k) wrong += w[k] != model[id][k];
  }
  MONOLITH_EXPECT(wrong == 0);
}

// Lock-free lookups racing with growth, updates and clears never return a torn row: every
// write keeps all elements of a row equal, so any mixed row would be a torn read.
void TestOptimisticLookupsNeverTorn() {
  const int dim = 16;
  EmbeddingHashTable t(OneSegmentConfig(dim, Opt(OptimizerConfig::kSgd)));
  std::atomic<bool> stop{false};
  std::atomic<int64_t> torn{0}, lookups{0};
  std::vector<std::thread> writers, readers;
  for (int w = 0; w < 2; ++w) {
    writers.emplace_back([&, w] {
      std::vector<float> row(dim);
      for (int64_t i = 0; i < 300000; ++i) {
        const int64_t id = (i * 7919 + w) % 200000;
        std::fill(row.begin(), row.end(), static_cast<float>(i % 97));
        t.Assign(&id, 1, row.data(), 0);
        if (w == 0 && i == 150000) t.Clear();
      }
    });
  }
  for (int r = 0; r < 2; ++r) {
    readers.emplace_back([&] {
      std::vector<int64_t> ids(1024);
      std::vector<float> out(1024 * dim);
      int64_t base = 0;
      while (!stop.load()) {
        for (auto& id : ids) id = (base++ * 104729) % 200000;
        t.BatchLookup(ids.data(), ids.size(), out.data());
        for (size_t k = 0; k < ids.size(); ++k) {
          for (int e = 1; e < dim; ++e) torn += out[k * dim + e] != out[k * dim];
        }
        lookups += ids.size();
      }
    });
  }
  for (auto& th : writers) th.join();
  stop.store(true);
  for (auto& th : readers) th.join();
  MONOLITH_EXPECT(lookups.load() > 0);
  MONOLITH_EXPECT(torn.load() == 0);
}

// Batch lookups of ids that stay in the table find every one of them with its row (and count
// them) while a writer updates those ids and inserts others, growing the table through lazy
// migration: validation failures and resizes mid-batch must fall back, never report absent.
void TestBatchLookupFindsStableIdsDuringGrowth() {
  const int dim = 4;
  EmbeddingHashTable t(OneSegmentConfig(dim, Opt(OptimizerConfig::kSgd)));
  const int64_t kStable = 5000;
  std::vector<int64_t> stable(kStable);
  std::vector<float> rows(kStable * dim);
  for (int64_t i = 0; i < kStable; ++i) {
    stable[i] = i * 1000003;
    std::fill_n(rows.begin() + i * dim, dim, static_cast<float>(i + 1));
  }
  t.Assign(stable.data(), kStable, rows.data(), 0);
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    std::vector<float> row(dim, -1.0f);
    for (int64_t i = 0; i < 400000; ++i) {
      const int64_t fresh = -1 - i;  // never one of the stable ids
      t.Assign(&fresh, 1, row.data(), 0);
      const int64_t k = i % kStable;
      t.Assign(&stable[k], 1, rows.data() + k * dim, 0);  // same row: readers see it unchanged
    }
    stop.store(true);
  });
  std::vector<float> out(kStable * dim);
  int64_t batches = 0, missed = 0, wrong = 0;
  while (!stop.load()) {
    missed += kStable - t.BatchLookup(stable.data(), kStable, out.data());
    for (int64_t i = 0; i < kStable * dim; ++i) wrong += out[i] != rows[i];
    ++batches;
  }
  writer.join();
  MONOLITH_EXPECT(batches > 0);
  MONOLITH_EXPECT(t.Size() == kStable + 400000);
  MONOLITH_EXPECT(missed == 0);
  MONOLITH_EXPECT(wrong == 0);
}

// Outputs of 8 MiB and more take the streaming-store copy: rows and zero rows must still be
// exact, also for a retriever that transforms the stored floats (which must not stream).
void TestBatchLookupLargeOutput() {
  const int dim = 64;
  const int64_t n = 40000;  // n * dim floats: ~10 MiB
  for (bool fake_quant : {false, true}) {
    TableConfig config = OneSegmentConfig(dim, Opt(OptimizerConfig::kSgd));
    if (fake_quant) {
      config.entry_config.segments[0].has_comp = true;
      config.entry_config.segments[0].comp.type = CompressorConfig::kFixedR8;
      config.entry_config.segments[0].comp.r = 1.0f;
    }
    EmbeddingHashTable t(config);
    std::vector<int64_t> ids(n);
    std::vector<float> rows(n * dim);
    for (int64_t i = 0; i < n; ++i) {
      ids[i] = i * 31 + 7;
      // Off the 1/128 quantization grid, so that fake quantization changes every value.
      for (int e = 0; e < dim; ++e) rows[i * dim + e] = ((i + e) % 64) / 128.0f + 0.001f;
    }
    t.Assign(ids.data(), n / 2, rows.data(), 0);  // the second half stays absent
    std::vector<float> expected(n * dim, 0.0f), out(n * dim, -1.0f);
    for (int64_t i = 0; i < n / 2; ++i) t.Lookup(ids[i], expected.data() + i * dim);
    MONOLITH_EXPECT(t.BatchLookup(ids.data(), n, out.data()) == n / 2);
    MONOLITH_EXPECT(out == expected);
    MONOLITH_EXPECT(std::equal(rows.begin(), rows.begin() + n / 2 * dim, out.begin()) ==
                    !fake_quant);
  }
}

std::vector<EntryDump> SaveAll(EmbeddingHashTable& t, int total) {
  std::vector<EntryDump> out;
  auto lock = t.LockAll();
  for (int i = 0; i < total; ++i) {
    DumpIterator it;
    t.Save({i, total}, [&](EntryDump&& d) {
      out.push_back(std::move(d));
      return true;
    }, &it);
    MONOLITH_EXPECT(it.offset != 0);
  }
  return out;
}

void TestSaveRestore() {
  auto c = Opt(OptimizerConfig::kAdagrad);
  EmbeddingHashTable t(OneSegmentConfig(2, c));
  float g[2] = {1, 2}, lr = 0.1f;
  t.Optimize(1, g, &lr, 100, 0);
  t.Optimize(2, g, &lr, 200, 0);
  auto dumps = SaveAll(t, 3);
  MONOLITH_EXPECT(dumps.size() == 2);
  EmbeddingHashTable r(OneSegmentConfig(2, c));
  for (const auto& d : dumps) {
    EntryDump parsed = EntryDump::Parse(d.Serialize());
    MONOLITH_EXPECT(parsed.has_id);
    MONOLITH_EXPECT(r.ValidateDump(parsed).empty());
    r.Restore(parsed);
  }
  MONOLITH_EXPECT(r.max_update_ts_sec() == 200);
  for (int64_t id : {1, 2}) {
    EntryDump a, b;
    t.LookupEntry(id, &a);
    r.LookupEntry(id, &b);
    MONOLITH_EXPECT(a.Serialize() == b.Serialize());
  }
  // A dump of another dim or optimizer is rejected before anything is written.
  EmbeddingHashTable other(OneSegmentConfig(3, c));
  MONOLITH_EXPECT(other.ValidateDump(dumps[0]).find("expected dim 3") != std::string::npos);
  EmbeddingHashTable sgd(OneSegmentConfig(2, Opt(OptimizerConfig::kSgd)));
  MONOLITH_EXPECT(!sgd.ValidateDump(dumps[0]).empty());
}

void TestSaveWithOffsetAndStopEarly() {
  EmbeddingHashTable t(SgdDim1());
  int64_t ids[2] = {1, 2};
  float v[2] = {1, 2};
  t.Assign(ids, 2, v, 0);
  auto lock = t.LockAll();
  DumpIterator it;
  std::set<int64_t> seen;
  auto write = [&](EntryDump&& d) {
    seen.insert(d.id);
    return true;
  };
  t.Save({0, 1, 1}, write, &it);
  MONOLITH_EXPECT(seen.size() == 1);
  t.Save({0, 1, 1}, write, &it);
  MONOLITH_EXPECT(seen.size() == 2);
  // write_fn returning false stops after one entry.
  DumpIterator it2;
  int calls = 0;
  t.Save({0, 1}, [&](EntryDump&&) { return ++calls > 5; }, &it2);
  MONOLITH_EXPECT(calls == 1);
}

void TestSaveRestoreMultithreaded() {
  EmbeddingHashTable t(SgdDim1());
  const int n = 26000;
  for (int64_t i = 0; i < n; ++i) {
    float v = static_cast<float>(i);
    t.AssignAdd(i, &v, 0);
  }
  const int shards = 10;
  std::vector<std::vector<std::string>> files(shards);
  {
    auto lock = t.LockAll();
    std::vector<std::thread> threads;
    for (int s = 0; s < shards; ++s) {
      threads.emplace_back([&, s] {
        DumpIterator it;
        t.Save({s, shards}, [&](EntryDump&& d) {
          files[s].push_back(d.Serialize());
          return true;
        }, &it);
      });
    }
    for (auto& th : threads) th.join();
  }
  EmbeddingHashTable r(SgdDim1());
  std::vector<std::thread> threads;
  for (int s = 0; s < shards; ++s) {
    threads.emplace_back([&, s] {
      for (const auto& rec : files[s]) r.Restore(EntryDump::Parse(rec));
    });
  }
  for (auto& th : threads) th.join();
  MONOLITH_EXPECT(r.Size() == n);
  int wrong = 0;
  for (int64_t i = 0; i < n; ++i) wrong += Get(r, i) != static_cast<float>(i);
  MONOLITH_EXPECT(wrong == 0);
}

void TestClear() {
  EmbeddingHashTable t(SgdDim1());
  float v = 1;
  for (int64_t i = 0; i < 1000; ++i) t.AssignAdd(i, &v, 0);
  t.Clear();
  MONOLITH_EXPECT(t.Size() == 0 && Get(t, 5) == 0);
  t.AssignAdd(5, &v, 0);
  MONOLITH_EXPECT(Get(t, 5) == 1);
}

int64_t Fid(int64_t slot, int64_t low) { return (slot << 48) | low; }

void TestOneTimeEvict() {
  TableConfig c = SgdDim1();
  c.slot_expire_time_config.default_expire_days = 14;
  c.slot_expire_time_config.slot_expire_days = {{0, 0}, {1, 5}, {2, 6}};
  EmbeddingHashTable t(c);
  const int64_t now = 100 * 86400;
  const int64_t then = now - 5 * 86400 - 60;
  float v = 1;
  for (int64_t slot : {1, 2, 3}) t.AssignAdd(Fid(slot, 7), &v, then);
  t.AssignAdd(Fid(0, 1), &v, now);
  MONOLITH_EXPECT(t.max_update_ts_sec() == now);
  MONOLITH_EXPECT(t.Evict(now) == 2);  // slot 0 (0 days) and slot 1 (5 days)
  MONOLITH_EXPECT(!t.Contains(Fid(0, 1)) && !t.Contains(Fid(1, 7)));
  MONOLITH_EXPECT(t.Contains(Fid(2, 7)) && t.Contains(Fid(3, 7)));
}

// Inserting threads force doublings (and lazy migration) while another thread evicts.
void TestEvictWhileRehash() {
  TableConfig c = SgdDim1();
  c.slot_expire_time_config.default_expire_days = 1000;
  for (uint32_t s = 0; s <= 5; ++s) c.slot_expire_time_config.slot_expire_days[s] = 0;
  EmbeddingHashTable t(c);
  std::atomic<bool> stop{false};
  std::thread evictor([&] {
    while (!stop.load()) t.Evict(10);
  });
  std::vector<std::thread> threads;
  for (int th = 0; th < 4; ++th) {
    threads.emplace_back([&, th] {
      float v = 123;
      for (int64_t i = 0; i < 100000; ++i) {
        const int64_t slot = (i + th) % 10;
        t.Assign(std::vector<int64_t>{Fid(slot, i * 4 + th)}.data(), 1, &v, 10);
      }
    });
  }
  for (auto& th : threads) th.join();
  stop.store(true);
  evictor.join();
  t.Evict(10);
  int wrong = 0;
  for (int th = 0; th < 4; ++th) {
    for (int64_t i = 0; i < 100000; ++i) {
      const int64_t slot = (i + th) % 10;
      const int64_t id = Fid(slot, i * 4 + th);
      if (slot <= 5) {
        wrong += t.Contains(id);
      } else {
        wrong += Get(t, id) != 123.0f;
      }
    }
  }
  MONOLITH_EXPECT(wrong == 0);
}

void TestEvictionTickWithInjectedClock() {
  std::atomic<int64_t> now{1000};
  TableConfig c = SgdDim1();
  c.enable_feature_eviction = true;
  c.feature_evict_every_n_hours = 1;
  c.slot_expire_time_config.default_expire_days = 1;
  EmbeddingHashTable t(c, [&now] { return now.load(); });
  float v = 1;
  t.AssignAdd(1, &v, 0);
  t.AssignAdd(2, &v, 86400);
  t.EvictionTick();  // the background thread may also have run its first pass: both record
  now += 3599;
  t.EvictionTick();
  MONOLITH_EXPECT(t.Contains(1));  // less than an hour since the first pass
  now += 1;
  t.EvictionTick();
  MONOLITH_EXPECT(!t.Contains(1) && t.Contains(2));
}

void TestReinitialize() {
  int64_t now = 4242;
  TableConfig c = OneSegmentConfig(1, Opt(OptimizerConfig::kSgd), InitializerConfig::kOnes);
  EmbeddingHashTable t(c, [&now] { return now; });
  float v = 5;
  t.Assign(std::vector<int64_t>{1}.data(), 1, &v, 0);
  MONOLITH_EXPECT(t.Reinitialize(1));
  MONOLITH_EXPECT(!t.Reinitialize(2));
  MONOLITH_EXPECT(Get(t, 1) == 1 && Get(t, 2) == 1);
  EntryDump d;
  t.LookupEntry(1, &d);
  MONOLITH_EXPECT(d.last_update_ts_sec == 4242);
}

TableConfig ServingFp32(bool skip_zero) {
  TableConfig c;
  c.has_cuckoo = true;
  c.skip_zero_embedding = skip_zero;
  c.entry_config.entry_type = EntryConfig::kServing;
  SegmentConfig s;
  s.dim_size = 2;
  s.has_comp = true;
  s.comp.type = CompressorConfig::kFp32;
  c.entry_config.segments.push_back(s);
  return c;
}

void TestSkipZeroEmbedding() {
  EmbeddingHashTable t(ServingFp32(true));
  std::vector<int64_t> ids = {1, 2, 3, 4};
  std::vector<float> vals = {1, 1, 0, 0, 3, 3, 0, 0};
  t.Assign(ids.data(), 4, vals.data(), 0);
  MONOLITH_EXPECT(t.Contains(1) && !t.Contains(2) && t.Contains(3) && !t.Contains(4));
  // Assigning zeros erases an existing id.
  std::vector<float> zeros = {0, 0};
  t.Assign(ids.data(), 1, zeros.data(), 0);
  MONOLITH_EXPECT(!t.Contains(1));
  // Restore skips zero rows.
  EmbeddingHashTable r(ServingFp32(true));
  for (int64_t id = 0; id < 6; ++id) {
    EntryDump d;
    d.has_id = true;
    d.id = id;
    d.num = {static_cast<float>(id % 2), 0.0f};
    MONOLITH_EXPECT(r.Restore(d) == (id % 2 == 1));
  }
  MONOLITH_EXPECT(r.Size() == 3);
  testing::ExpectThrows([] { EmbeddingHashTable t(([] {
                          TableConfig c = SgdDim1();
                          c.skip_zero_embedding = true;
                          return c;
                        })()); },
                        "Only EntryConfig_EntryType_SERVING supports skip_zero_embedding!",
                        "skip zero on training");
}

void TestServingFp16() {
  TableConfig c = ServingFp32(false);
  c.entry_config.segments[0].comp.type = CompressorConfig::kFp16;
  EmbeddingHashTable t(c);
  std::vector<float> v = {0.333333f, -2.5f};
  t.Assign(std::vector<int64_t>{9}.data(), 1, v.data(), 0);
  float out[2];
  t.Lookup(9, out);
  MONOLITH_EXPECT_NEAR(out[0], 0.333333, 1e-3);
  MONOLITH_EXPECT(out[1] == -2.5f);
  float g = 1, lr = 1;
  testing::ExpectThrows([&] { t.Optimize(9, &g, &lr, 0, 0); },
                        "ServingEntryAccessor doesn't support Optimize", "serving optimize");
}

void TestConfigErrors() {
  TableConfig c = SgdDim1();
  c.entry_config.segments[0].has_init = false;
  testing::ExpectThrows([&] { EmbeddingHashTable t(c); },
                        "init or opt config is missing from entry config", "missing init");
  TableConfig d = SgdDim1();
  d.has_cuckoo = false;
  testing::ExpectThrows([&] { EmbeddingHashTable t(d); }, "only cuckoo is supported",
                        "no table type");
}

}  // namespace
}  // namespace hash_table
}  // namespace monolith

int main() {
  using namespace monolith::hash_table;
  return testing::RunTests({
      {"SingleThread", TestSingleThread},
      {"MultiThread", TestMultiThread},
      {"ConcurrentUpdatesMatchSequentialModel", TestConcurrentUpdatesMatchSequentialModel},
      {"BatchOptimizeMatchesPerIdOptimize", TestBatchOptimizeMatchesPerIdOptimize},
      {"ConcurrentBatchOptimizeMatchesSequentialModel",
       TestConcurrentBatchOptimizeMatchesSequentialModel},
      {"OptimisticLookupsNeverTorn", TestOptimisticLookupsNeverTorn},
      {"BatchLookupFindsStableIdsDuringGrowth", TestBatchLookupFindsStableIdsDuringGrowth},
      {"BatchLookupLargeOutput", TestBatchLookupLargeOutput},
      {"SaveRestore", TestSaveRestore},
      {"SaveWithOffsetAndStopEarly", TestSaveWithOffsetAndStopEarly},
      {"SaveRestoreMultithreaded", TestSaveRestoreMultithreaded},
      {"Clear", TestClear},
      {"OneTimeEvict", TestOneTimeEvict},
      {"EvictWhileRehash", TestEvictWhileRehash},
      {"EvictionTickWithInjectedClock", TestEvictionTickWithInjectedClock},
      {"Reinitialize", TestReinitialize},
      {"SkipZeroEmbedding", TestSkipZeroEmbedding},
      {"ServingFp16", TestServingFp16},
      {"ConfigErrors", TestConfigErrors},
  });
}
