#include "monolith/native_training/runtime/hash_table/hash_filter.h"

#include <algorithm>
#include <cmath>
#include <random>

namespace monolith {
namespace hash_table {

bool CountingHashFilter::ShouldBeFiltered(int64_t id, int64_t count) {
  const uint32_t threshold = config_.Threshold(id);
  if (threshold == 0) return false;
  Shard& shard = shards_[static_cast<uint64_t>(id * 0x9E3779B97F4A7C15ULL) >> 58];
  std::lock_guard<std::mutex> lock(shard.mu);
  uint8_t& stored = shard.counts[id];
  const uint8_t before = stored;
  stored = static_cast<uint8_t>(std::min<int64_t>(kMaxCount, before + std::max<int64_t>(count, 0)));
  return before < threshold;
}

int64_t CountingHashFilter::NumElements() const {
  int64_t n = 0;
  for (auto& shard : shards_) {
    std::lock_guard<std::mutex> lock(shard.mu);
    n += shard.counts.size();
  }
  return n;
}

double ProbabilisticFilter::AdmitProbability(uint32_t threshold, int64_t count) const {
  if (threshold == 0) return 1.0;
  if (count <= 0) return 0.0;
  if (!equal_probability_) return std::min(1.0, static_cast<double>(count) / threshold);
  const double p = 1.0 - std::pow(0.05, 1.0 / threshold);
  return 1.0 - std::pow(1.0 - p, static_cast<double>(count));
}

bool ProbabilisticFilter::ShouldBeFiltered(int64_t id, int64_t count) {
  thread_local std::mt19937_64 rng(std::random_device{}());
  const double admit = AdmitProbability(config_.Threshold(id), count);
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng) >= admit;
}

}  // namespace hash_table
}  // namespace monolith
