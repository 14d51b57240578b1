// Deep insight client: turns one training example's labels and predictions into a JSON metric
// message, subject to a deterministic per-uid sampling.
//
// The public upstream client is a stub that returns "" for every row; the message schema and the
// sampling rule here are this project's documented convention (reference native_ops.md §4.4), so
// that fake-mode callers and tests get concrete content. There is no network sender: `is_fake`
// only records that the caller asked for one not to be used.
#ifndef MONOLITH_NATIVE_TRAINING_RUNTIME_DEEP_INSIGHT_DEEP_INSIGHT_H_
#define MONOLITH_NATIVE_TRAINING_RUNTIME_DEEP_INSIGHT_DEEP_INSIGHT_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace monolith {
namespace deep_insight {

// Extra per-row fields; maps keep the keys sorted (as in the JSON output) and a repeated key
// keeps its last value.
struct ExtraFields {
  std::map<std::string, float> floats;
  std::map<std::string, int64_t> ints;
  std::map<std::string, std::string> strs;
};

// One row: targets[j] owns labels[j], preds[j] and sample_rates[j].
struct Row {
  std::string model_name;
  std::vector<std::string> targets;
  int64_t uid = 0;
  int64_t req_time = 0;
  int64_t train_time = 0;
  std::vector<float> labels;
  std::vector<float> preds;
  std::vector<float> sample_rates;
  ExtraFields extra;
};

// True iff the row with `uid` is sampled: sample_ratio >= 1, or sample_ratio > 0 and
// (uid as uint64 mod 10000) < sample_ratio * 10000.
bool HitSampleRatio(int64_t uid, float sample_ratio);

// Compact JSON with keys in lexicographic order: extra_float / extra_int / extra_str (only when
// non-empty), labels, model_name, preds, req_time, sample_rates, targets, train_time, uid.
// Floats print as the shortest text that reads back to the same float32.
std::string BuildMessage(const Row& row);

class DeepInsight {
 public:
  DeepInsight(bool enable_metrics_counter, bool is_fake)
      : enable_metrics_counter_(enable_metrics_counter), is_fake_(is_fake) {}

  // The message of `row` if it is sampled, else "". Counts sampled rows when the counter is on.
  std::string SendV2(const Row& row, float sample_ratio);

  // Current Unix time in seconds.
  static int64_t GenerateTrainingTime();

  int64_t GetTotalSendCounter() const { return total_send_counter_.load(); }
  bool is_fake() const { return is_fake_; }

 private:
  const bool enable_metrics_counter_;
  const bool is_fake_;
  std::atomic<int64_t> total_send_counter_{0};
};

}  // namespace deep_insight
}  // namespace monolith

#endif  // MONOLITH_NATIVE_TRAINING_RUNTIME_DEEP_INSIGHT_DEEP_INSIGHT_H_
