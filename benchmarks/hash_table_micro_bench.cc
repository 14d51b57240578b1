// Micro-benchmark of the hash-table core (no TensorFlow): lookup, assign and Adagrad optimize
// throughput in rows/s for 1M/10M keys, dim 16/64, batches of 65,536 ids, 1 and 2 threads, plus
// bytes per entry. Peers in the same run, each ratio printed:
// - std::unordered_map<int64, row> guarded by a mutex (the structure TF's MutableHashTable uses);
// - the gather floor: the same rows (entry-sized, embedding first) in one flat array, copied out
//   in the queries' random order with our lookups' prefetch scheme, as if finding a row were free.
//   lookup / floor says what the index costs on this machine: large tables are bound by memory.
//
//   bazel run //benchmarks:hash_table_micro_bench -- [keys...]   (default: 1000000 10000000)
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <random>
#include <thread>
#include <unordered_map>
#include <vector>

#include "monolith/native_training/runtime/common/huge_pages.h"
#include "monolith/native_training/runtime/common/prefetch.h"
#include "monolith/native_training/runtime/hash_table/cuckoo_map.h"
#include "monolith/native_training/runtime/hash_table/embedding_hash_table.h"

namespace {

using monolith::hash_table::CuckooMap;
using monolith::hash_table::EmbeddingHashTable;
using monolith::hash_table::InitializerConfig;
using monolith::hash_table::OptimizerConfig;
using monolith::hash_table::OptimizerDefaults;
using monolith::hash_table::SegmentConfig;
using monolith::hash_table::TableConfig;

constexpr int64_t kBatch = 65536;
constexpr int kLookupRounds = 3;

TableConfig Config(int dim, OptimizerConfig::Type opt, int64_t capacity) {
  TableConfig c;
  c.has_cuckoo = true;
  c.initial_capacity = capacity;
  SegmentConfig s;
  s.dim_size = dim;
  s.has_init = true;
  s.init.type = InitializerConfig::kZeros;
  s.has_opt = true;
  s.opt = OptimizerDefaults(opt);
  c.entry_config.segments.push_back(s);
  return c;
}

// Runs fn(batch_ids, out_rows) over `total` ids in batches, split across `threads` threads;
// returns rows per second.
template <typename Fn>
double Throughput(const std::vector<int64_t>& ids, int threads, int dim, Fn fn) {
  const int64_t total = static_cast<int64_t>(ids.size());
  auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      std::vector<float> rows(kBatch * dim, 0.5f);
      for (int64_t b = t * kBatch; b < total; b += threads * kBatch) {
        const int64_t n = std::min(kBatch, total - b);
        fn(ids.data() + b, n, rows.data());
      }
    });
  }
  for (auto& th : pool) th.join();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return total / secs;
}

struct Peer {
  std::mutex mu;
  std::unordered_map<int64_t, std::vector<float>> map;
};

// `rows` rows of `row_floats` floats on transparent huge pages (as the table's entry arena), each
// row read as its first `dim` floats in a random order.
class GatherFloor {
 public:
  GatherFloor(int64_t rows, int row_floats, int dim, std::mt19937_64* rng)
      : row_floats_(row_floats), dim_(dim), order_(rows) {
    const size_t bytes = (rows * row_floats * sizeof(float) + kHugePage - 1) / kHugePage *
                         kHugePage;
    data_.reset(static_cast<float*>(std::aligned_alloc(kHugePage, bytes)));
    if (data_ == nullptr) throw std::bad_alloc();
    monolith::AdviseHugePages(data_.get(), bytes);
    std::fill_n(data_.get(), rows * row_floats, 0.5f);
    for (int64_t i = 0; i < rows; ++i) order_[i] = i;
    std::shuffle(order_.begin(), order_.end(), *rng);
  }

  // Copies rows order_[first, first + n) to out, prefetching as EmbeddingHashTable::BatchLookup
  // does (PrefetchRow, CuckooMap::kLookupAhead rows ahead).
  void Gather(int64_t first, int64_t n, float* out) const {
    const int64_t* order = order_.data() + first;
    for (int64_t i = 0; i < n; ++i) {
      if (i + CuckooMap::kLookupAhead < n) {
        monolith::PrefetchRow(Row(order[i + CuckooMap::kLookupAhead]), sizeof(float) * dim_);
      }
      std::memcpy(out + i * dim_, Row(order[i]), sizeof(float) * dim_);
    }
  }

 private:
  static constexpr size_t kHugePage = size_t{2} << 20;
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  const float* Row(int64_t r) const { return data_.get() + r * row_floats_; }

  const int row_floats_;
  const int dim_;
  std::unique_ptr<float, Free> data_;
  std::vector<int64_t> order_;
};

void Run(int64_t keys, int dim) {
  std::mt19937_64 rng(keys + dim);
  std::vector<int64_t> ids(keys);
  for (auto& id : ids) id = static_cast<int64_t>(rng());
  std::vector<int64_t> queries(ids);
  std::shuffle(queries.begin(), queries.end(), rng);

  for (int threads : {1, 2}) {
    auto table = std::make_unique<EmbeddingHashTable>(Config(dim, OptimizerConfig::kAdagrad, 1));
    const double insert = Throughput(ids, threads, dim, [&](const int64_t* id, int64_t n, float* r) {
      table->Assign(id, n, r, 0);
    });
    // Lookups: best of kLookupRounds passes (single passes of these memory-bound loops moved by
    // up to 2x with other load on the machine), alternating with the gather floor.
    double lookup = 0, floor_lookup = 0;
    {
      const GatherFloor gather_floor(keys, /*row_floats=*/2 * dim, dim, &rng);  // entry-sized rows
      auto table_lookup = [&](const int64_t* id, int64_t n, float* r) {
        table->BatchLookup(id, n, r);
      };
      auto floor_gather = [&](const int64_t* id, int64_t n, float* r) {
        gather_floor.Gather(/*first=*/id - queries.data(), n, r);
      };
      for (int round = 0; round < kLookupRounds; ++round) {
        lookup = std::max(lookup, Throughput(queries, threads, dim, table_lookup));
        floor_lookup = std::max(floor_lookup, Throughput(queries, threads, dim, floor_gather));
      }
    }
    const float lr = 0.01f;
    const double adagrad = Throughput(queries, threads, dim, [&](const int64_t* id, int64_t n,
                                                                  float* r) {
      table->BatchOptimize(id, n, r, &lr, 0, 1);
    });
    const double bytes_per_entry = static_cast<double>(table->MemoryBytes()) / table->Size();
    const double payload = 8 + 4.0 * dim + 4.0 * dim;  // key + embedding + adagrad accumulator
    table.reset();

    Peer peer;
    const double peer_insert = Throughput(ids, threads, dim, [&](const int64_t* id, int64_t n,
                                                                  float* r) {
      std::lock_guard<std::mutex> l(peer.mu);
      for (int64_t i = 0; i < n; ++i) peer.map[id[i]].assign(r + i * dim, r + (i + 1) * dim);
    });
    auto peer_find = [&](const int64_t* id, int64_t n, float* r) {
      std::lock_guard<std::mutex> l(peer.mu);
      for (int64_t i = 0; i < n; ++i) {
        auto it = peer.map.find(id[i]);
        std::copy(it->second.begin(), it->second.end(), r + i * dim);
      }
    };
    double peer_lookup = 0;
    for (int round = 0; round < kLookupRounds; ++round) {
      peer_lookup = std::max(peer_lookup, Throughput(queries, threads, dim, peer_find));
    }
    // Frees the peer's millions of small rows and consolidates them now: glibc merges freed
    // small chunks at the next large allocation, inside whatever is timed next (a pass that
    // followed ran ~20x slower so).
    peer.map = {};
    malloc_trim(0);
    std::printf(
        "keys=%lld dim=%d threads=%d | insert %.2fM rows/s (unordered_map %.2fM, x%.2f) | "
        "lookup %.2fM rows/s (unordered_map %.2fM, x%.2f; gather floor %.2fM, x%.2f) | "
        "adagrad %.2fM rows/s | %.1f bytes/entry vs payload %.0f (x%.2f)\n",
        static_cast<long long>(keys), dim, threads, insert / 1e6, peer_insert / 1e6,
        insert / peer_insert, lookup / 1e6, peer_lookup / 1e6, lookup / peer_lookup,
        floor_lookup / 1e6, lookup / floor_lookup, adagrad / 1e6, bytes_per_entry, payload,
        bytes_per_entry / payload);
    std::fflush(stdout);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int64_t> sizes;
  for (int i = 1; i < argc; ++i) sizes.push_back(std::atoll(argv[i]));
  if (sizes.empty()) sizes = {1000000, 10000000};
  for (int64_t keys : sizes) {
    for (int dim : {16, 64}) Run(keys, dim);
  }
  return 0;
}
