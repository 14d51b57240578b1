#include "monolith/native_training/runtime/monitoring/timer_stats.h"

#include <cmath>
#include <string>

#include "monolith/native_training/runtime/common/testing.h"

namespace {

using monolith::testing::Expect;
using monolith::monitoring::TimerStats;
using monolith::monitoring::WindowSummary;

}  // namespace

int main() {
  TimerStats stats(600);
  const int64_t t0 = 1000000;
  // 1..100 at one value per second, ending at t0 + 99.
  std::string report;
  for (int i = 1; i <= 100; ++i) report += stats.Record("latency", "a=b", i, t0 + i - 1);
  Expect(report.empty(), "no report before the interval");

  const int64_t now = t0 + 99;
  WindowSummary all = stats.Summarize("latency", "a=b", 900, now);
  Expect(all.count == 100, "15 min window holds all");
  Expect(all.min == 1 && all.max == 100, "min/max");
  Expect(std::fabs(all.avg - 50.5f) < 1e-4, "avg");
  Expect(all.p99 == 99, "nearest-rank p99 of 1..100");

  WindowSummary last_minute = stats.Summarize("latency", "a=b", 60, now);
  Expect(last_minute.count == 60 && last_minute.min == 41 && last_minute.max == 100,
         "1 min window holds the last 60 samples");

  Expect(stats.Summarize("latency", "other", 60, now).count == 0, "tags separate series");
  Expect(stats.Summarize("missing", "", 60, now).count == 0, "unknown series");

  Expect(stats.Record("qps", "", 3, now + 500).empty(), "still inside the first interval");
  // 16 minutes later the old samples fall out of every window, and the interval that started
  // at the first record (t0) is over, so this record returns the report.
  report = stats.Record("latency", "a=b", 7, now + 960);
  WindowSummary later = stats.Summarize("latency", "a=b", 900, now + 960);
  Expect(later.count == 1 && later.min == 7 && later.p99 == 7, "old samples expire");
  Expect(report.find("latency{a=b} [1min count=1 min=7 max=7 avg=7 p99=7]") != std::string::npos,
         "report has the latency series: " + report);
  Expect(report.find("qps [1min count=0 min=0 max=0 avg=0 p99=0] [5min count=0") !=
                 std::string::npos &&
             report.find("[15min count=1 min=3 max=3") != std::string::npos,
         "qps sample is 460 s old: only in the 15 min window");
  Expect(stats.Record("qps", "", 3, now + 961).empty(), "next report waits an interval");

  return monolith::testing::Summary();
}
