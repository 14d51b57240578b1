// Occurrence-threshold admission of new ids (native_ops.md §1.10). The table consults a filter
// only for ids it does not hold yet.
#ifndef MONOLITH_NATIVE_TRAINING_RUNTIME_HASH_TABLE_HASH_FILTER_H_
#define MONOLITH_NATIVE_TRAINING_RUNTIME_HASH_TABLE_HASH_FILTER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
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
//
// Saved as `split_num` files like upstream's sub-filters (native_ops.md §1.10), each a record
// stream: one HashFilterSplitMetaDump, then HashFilterSplitDataDump records of at most
// kMaxWordsPerRecord uint32 words. Upstream's words are probabilistic cells (signatures, not
// ids), which exact counters cannot be rebuilt from; ours are (id low, id high, count) triples,
// marked by total_size == 3 * num_elements, so that a foreign dump is rejected instead of being
// read as garbage counts.
class CountingHashFilter : public HashFilter {
 public:
  static constexpr int kMaxCount = 15;
  static constexpr int kMaxWordsPerRecord = 9999;  // upstream: <= 10000 cells a record
  // Throws std::invalid_argument when split_num < 1.
  CountingHashFilter(SlotOccurrenceThresholdConfig config, int split_num = 7);

  bool ShouldBeFiltered(int64_t id, int64_t count) override;
  int64_t NumElements() const;
  int split_num() const { return split_num_; }

  // Serialized records of save file `split` (in [0, split_num)), passed in order to write(),
  // which returns false to stop. The split's counts are copied under its shards' locks first,
  // so training may go on meanwhile.
  void SaveSplit(int split, const std::function<bool(const std::string&)>& write) const;
  // Removes every count.
  void Clear();
  // Sets the stored count of `id` (1..kMaxCount; a restored dump's values).
  void SetCount(int64_t id, uint8_t count);

 private:
  static constexpr int kShards = 64;
  struct Shard {
    std::mutex mu;
    std::unordered_map<int64_t, uint8_t> counts;
  };
  Shard& ShardOf(int64_t id) const {
    return shards_[static_cast<uint64_t>(id * 0x9E3779B97F4A7C15ULL) >> 58];
  }
  SlotOccurrenceThresholdConfig config_;
  int split_num_;
  mutable Shard shards_[kShards];
};

// Decodes one CountingHashFilter save file, record by record: on_count(id, count) for every
// saved count. Throws std::invalid_argument naming `file` for anything that is not such a file
// (a foreign or truncated dump, bad counts).
class FilterSplitDecoder {
 public:
  FilterSplitDecoder(std::string file, std::function<void(int64_t, uint8_t)> on_count)
      : file_(std::move(file)),
        reader_what_("record of hash filter file " + file_),
        on_count_(std::move(on_count)) {}
  void Add(std::string_view record);
  // Throws when the records ended before the meta's element count was reached.
  void Finish() const;

 private:
  [[noreturn]] void Fail(const std::string& why) const;

  std::string file_;
  std::string reader_what_;  // names the file in wire-format errors
  std::function<void(int64_t, uint8_t)> on_count_;
  bool has_meta_ = false;
  uint64_t num_words_ = 0;  // announced by the meta record
  uint64_t words_seen_ = 0;
  uint32_t pending_[3] = {0, 0, 0};  // a triple may straddle two records
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
