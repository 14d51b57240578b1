// Occurrence-threshold admission of new ids (native_ops.md §1.10). The table consults a filter
// only for ids it does not hold yet.
#ifndef MONOLITH_NATIVE_TRAINING_RUNTIME_HASH_TABLE_HASH_FILTER_H_
#define MONOLITH_NATIVE_TRAINING_RUNTIME_HASH_TABLE_HASH_FILTER_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "monolith/native_training/runtime/hash_table/config.h"

namespace monolith {
namespace hash_table {

class HashFilter {
 public:
  virtual ~HashFilter() = default;
  // Records `count` occurrences of `id`; true when the id must not be admitted yet.
  virtual bool ShouldBeFiltered(int64_t id, int64_t count) = 0;
  // True when ShouldBeFiltered is always false: callers then skip the membership check.
  virtual bool AdmitsEverything() const { return false; }
};

// Never filters (MonolithDummyHashFilter).
class DummyHashFilter : public HashFilter {
 public:
  bool ShouldBeFiltered(int64_t, int64_t) override { return false; }
  bool AdmitsEverything() const override { return true; }
};

// MonolithHashFilter semantics with exact counters: filtered <=> the count stored *before*
// adding is below the slot's threshold; counts saturate at 15 like upstream's 4-bit cells (so
// thresholds above 15 are never reached). Threshold <= 0 never filters.
class CountingHashFilter : public HashFilter {
 public:
  static constexpr int kMaxCount = 15;
  explicit CountingHashFilter(SlotOccurrenceThresholdConfig config) : config_(std::move(config)) {}

  bool ShouldBeFiltered(int64_t id, int64_t count) override;
  int64_t NumElements() const;

 private:
  static constexpr int kShards = 64;
  struct Shard {
    std::mutex mu;
    std::unordered_map<int64_t, uint8_t> counts;
  };
  SlotOccurrenceThresholdConfig config_;
  mutable Shard shards_[kShards];
};

// MonolithProbabilisticFilter: admits a new id with probability count / threshold, or with
// `equal_probability` 1 - (1 - p)^count where p = 1 - 0.05^(1 / threshold) (so an id seen
// `threshold` times is admitted with probability 95%). Threshold <= 0 never filters.
class ProbabilisticFilter : public HashFilter {
 public:
  ProbabilisticFilter(SlotOccurrenceThresholdConfig config, bool equal_probability)
      : config_(std::move(config)), equal_probability_(equal_probability) {}

  bool ShouldBeFiltered(int64_t id, int64_t count) override;
  // The admission probability for `count` occurrences at `threshold`.
  double AdmitProbability(uint32_t threshold, int64_t count) const;

 private:
  SlotOccurrenceThresholdConfig config_;
  bool equal_probability_;
};

}  // namespace hash_table
}  // namespace monolith

#endif  // MONOLITH_NATIVE_TRAINING_RUNTIME_HASH_TABLE_HASH_FILTER_H_
