// Moving-window statistics of the timer values emitted by MonolithMetricV2: per (key, tags)
// series, count/min/max/avg/p99 over the last 1, 5 and 15 minutes, reported at most once per
// report interval. (Upstream also forwards each value to a metrics agent, which the public build
// stubs out; these windows are what remains observable, through the log.)
#ifndef MONOLITH_NATIVE_TRAINING_RUNTIME_MONITORING_TIMER_STATS_H_
#define MONOLITH_NATIVE_TRAINING_RUNTIME_MONITORING_TIMER_STATS_H_

#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <utility>

namespace monolith {
namespace monitoring {

struct WindowSummary {
  int64_t count = 0;
  float min = 0, max = 0, avg = 0, p99 = 0;
};

class TimerStats {
 public:
  static constexpr int64_t kWindowsSec[3] = {60, 300, 900};
  // Older samples of a busy series are dropped beyond this many (memory bound).
  static constexpr size_t kMaxSamplesPerSeries = 1 << 16;

  explicit TimerStats(int64_t report_interval_sec = 600)
      : report_interval_sec_(report_interval_sec) {}

  // Records `value`; returns the report of every series when one is due (the first record
  // starts the interval), else "". Thread-safe.
  std::string Record(const std::string& key, const std::string& tags, float value,
                     int64_t now_sec);

  // Summary of one series over the last `window_sec` seconds before `now_sec`.
  WindowSummary Summarize(const std::string& key, const std::string& tags, int64_t window_sec,
                          int64_t now_sec) const;

 private:
  using Series = std::deque<std::pair<int64_t, float>>;  // (time, value), oldest first

  static WindowSummary SummarizeLocked(const Series& series, int64_t window_sec, int64_t now_sec);
  std::string ReportLocked(int64_t now_sec) const;

  const int64_t report_interval_sec_;
  mutable std::mutex mu_;
  std::map<std::pair<std::string, std::string>, Series> series_;
  int64_t last_report_sec_ = -1;
};

}  // namespace monitoring
}  // namespace monolith

#endif  // MONOLITH_NATIVE_TRAINING_RUNTIME_MONITORING_TIMER_STATS_H_
