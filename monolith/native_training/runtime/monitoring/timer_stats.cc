#include "monolith/native_training/runtime/monitoring/timer_stats.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <vector>

namespace monolith {
namespace monitoring {

constexpr int64_t TimerStats::kWindowsSec[3];

std::string TimerStats::Record(const std::string& key, const std::string& tags, float value,
                               int64_t now_sec) {
  std::lock_guard<std::mutex> lock(mu_);
  Series& series = series_[{key, tags}];
  series.emplace_back(now_sec, value);
  const int64_t oldest = now_sec - kWindowsSec[2];
  while (!series.empty() &&
         (series.front().first <= oldest || series.size() > kMaxSamplesPerSeries)) {
    series.pop_front();
  }
  if (last_report_sec_ < 0) {
    last_report_sec_ = now_sec;
    return "";
  }
  if (now_sec - last_report_sec_ < report_interval_sec_) return "";
  last_report_sec_ = now_sec;
  return ReportLocked(now_sec);
}

WindowSummary TimerStats::Summarize(const std::string& key, const std::string& tags,
                                    int64_t window_sec, int64_t now_sec) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = series_.find({key, tags});
  if (it == series_.end()) return {};
  return SummarizeLocked(it->second, window_sec, now_sec);
}

WindowSummary TimerStats::SummarizeLocked(const Series& series, int64_t window_sec,
                                          int64_t now_sec) {
  std::vector<float> values;
  double sum = 0;
  for (auto it = series.rbegin(); it != series.rend() && it->first > now_sec - window_sec; ++it) {
    values.push_back(it->second);
    sum += it->second;
  }
  WindowSummary summary;
  if (values.empty()) return summary;
  summary.count = static_cast<int64_t>(values.size());
  summary.min = *std::min_element(values.begin(), values.end());
  summary.max = *std::max_element(values.begin(), values.end());
  summary.avg = static_cast<float>(sum / values.size());
  // Nearest-rank p99: the ceil(0.99 n)-th smallest value.
  const size_t rank = static_cast<size_t>(std::ceil(0.99 * values.size())) - 1;
  std::nth_element(values.begin(), values.begin() + rank, values.end());
  summary.p99 = values[rank];
  return summary;
}

std::string TimerStats::ReportLocked(int64_t now_sec) const {
  std::ostringstream out;
  for (const auto& [name, series] : series_) {
    out << name.first;
    if (!name.second.empty()) out << "{" << name.second << "}";
    for (int64_t window : kWindowsSec) {
      const WindowSummary s = SummarizeLocked(series, window, now_sec);
      out << " [" << window / 60 << "min count=" << s.count << " min=" << s.min
          << " max=" << s.max << " avg=" << s.avg << " p99=" << s.p99 << "]";
    }
    out << "\n";
  }
  return out.str();
}

}  // namespace monitoring
}  // namespace monolith
