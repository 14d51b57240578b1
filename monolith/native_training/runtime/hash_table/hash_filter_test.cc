#include "monolith/native_training/runtime/hash_table/hash_filter.h"

#include <cmath>

#include "monolith/native_training/runtime/hash_table/test_util.h"

namespace monolith {
namespace hash_table {
namespace {

SlotOccurrenceThresholdConfig Thresholds(uint32_t default_threshold) {
  SlotOccurrenceThresholdConfig c;
  c.default_threshold = default_threshold;
  c.slot_thresholds[1] = 0;  // slot 1 is never filtered
  return c;
}

// Filtered while the count stored before adding is below the threshold (3): occurrences 1-3
// are filtered, the 4th is admitted; counts saturate at 15.
void TestCountingFilter() {
  CountingHashFilter f(Thresholds(3));
  MONOLITH_EXPECT(f.ShouldBeFiltered(7, 1));
  MONOLITH_EXPECT(f.ShouldBeFiltered(7, 1));
  MONOLITH_EXPECT(f.ShouldBeFiltered(7, 1));
  MONOLITH_EXPECT(!f.ShouldBeFiltered(7, 1));
  MONOLITH_EXPECT(f.ShouldBeFiltered(8, 2));   // before: 0
  MONOLITH_EXPECT(f.ShouldBeFiltered(8, 1));   // before: 2
  MONOLITH_EXPECT(!f.ShouldBeFiltered(8, 1));  // before: 3
  MONOLITH_EXPECT(!f.ShouldBeFiltered(int64_t{1} << 48, 1));
  CountingHashFilter high(Thresholds(16));
  for (int i = 0; i < 100; ++i) MONOLITH_EXPECT(high.ShouldBeFiltered(9, 1));
  MONOLITH_EXPECT(f.NumElements() == 2);  // ids 7 and 8; threshold-0 ids are not counted
}

void TestProbabilisticFilter() {
  ProbabilisticFilter unequal(Thresholds(4), false);
  MONOLITH_EXPECT_NEAR(unequal.AdmitProbability(4, 1), 0.25, 1e-12);
  MONOLITH_EXPECT_NEAR(unequal.AdmitProbability(4, 9), 1.0, 1e-12);
  ProbabilisticFilter equal(Thresholds(4), true);
  MONOLITH_EXPECT_NEAR(equal.AdmitProbability(4, 4), 0.95, 1e-9);
  MONOLITH_EXPECT_NEAR(equal.AdmitProbability(4, 1), 1 - std::pow(0.05, 0.25), 1e-9);
  // Empirical admission rate of single occurrences at threshold 4 (unequal): ~25%.
  int admitted = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) admitted += !unequal.ShouldBeFiltered(i, 1);
  MONOLITH_EXPECT(std::abs(admitted / static_cast<double>(n) - 0.25) < 0.02);
  MONOLITH_EXPECT(!unequal.ShouldBeFiltered(int64_t{1} << 48, 1));  // threshold 0
}

}  // namespace
}  // namespace hash_table
}  // namespace monolith

int main() {
  using namespace monolith::hash_table;
  return testing::RunTests({
      {"CountingFilter", TestCountingFilter},
      {"ProbabilisticFilter", TestProbabilisticFilter},
  });
}
