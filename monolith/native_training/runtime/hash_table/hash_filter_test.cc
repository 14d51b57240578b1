#include "monolith/native_training/runtime/hash_table/hash_filter.h"

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "monolith/native_training/runtime/common/wire.h"
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

// The save files of `f`, one record list per split.
std::vector<std::vector<std::string>> SaveAll(const CountingHashFilter& f) {
  std::vector<std::vector<std::string>> files(f.split_num());
  for (int i = 0; i < f.split_num(); ++i) {
    f.SaveSplit(i, [&](const std::string& r) {
      files[i].push_back(r);
      return true;
    });
  }
  return files;
}

std::map<int64_t, int> Decode(const std::vector<std::vector<std::string>>& files) {
  std::map<int64_t, int> counts;
  for (size_t i = 0; i < files.size(); ++i) {
    FilterSplitDecoder d("split" + std::to_string(i),
                         [&](int64_t id, uint8_t c) { MONOLITH_EXPECT(counts.emplace(id, c).second); });
    for (const auto& r : files[i]) d.Add(r);
    d.Finish();
  }
  return counts;
}

// Save -> decode -> restore keeps every count (negative and 64-bit ids included), whatever the
// split count, across records of at most kMaxWordsPerRecord words; a restored filter behaves
// like the saved one.
void TestSaveRestoreRoundTrip() {
  for (int split_num : {1, 3, 7, 100}) {
    CountingHashFilter f(Thresholds(5), split_num);
    std::map<int64_t, int> want;
    for (int64_t i = 0; i < 20000; ++i) {
      const int64_t id = (i % 2 ? -1 : 1) * (i * 7919 + (int64_t{3} << 40));
      const int n = 1 + i % 20;
      f.ShouldBeFiltered(id, n);
      want[id] = std::min(n, CountingHashFilter::kMaxCount);
    }
    const auto files = SaveAll(f);
    MONOLITH_EXPECT(static_cast<int>(files.size()) == split_num);
    size_t records = 0;
    for (const auto& file : files) records += file.size();
    MONOLITH_EXPECT(records >= static_cast<size_t>(split_num) + 20000 * 3 / 9999);
    const auto got = Decode(files);
    MONOLITH_EXPECT(got == want);
    CountingHashFilter restored(Thresholds(5), 7);
    restored.ShouldBeFiltered(42, 3);  // replaced by the restore below
    restored.Clear();
    for (const auto& [id, c] : got) restored.SetCount(id, static_cast<uint8_t>(c));
    MONOLITH_EXPECT(restored.NumElements() == 20000);
    const int64_t id4 = 3 * 7919 + (int64_t{3} << 40);  // i = 3: saved count 4, threshold 5
    MONOLITH_EXPECT(restored.ShouldBeFiltered(-id4, 1));   // before: 4
    MONOLITH_EXPECT(!restored.ShouldBeFiltered(-id4, 1));  // before: 5
  }
}

// An empty filter still writes one meta record per split, which decodes to nothing.
void TestSaveEmpty() {
  CountingHashFilter f(Thresholds(2), 3);
  const auto files = SaveAll(f);
  for (const auto& file : files) MONOLITH_EXPECT(file.size() == 1);
  MONOLITH_EXPECT(Decode(files).empty());
}

std::string Meta(uint64_t total_size, uint64_t num_elements) {
  std::string r;
  wire::Writer w(&r);
  w.VarintField(2, total_size);
  w.VarintField(3, num_elements);
  return r;
}

std::string Data(uint32_t offset, const std::vector<uint64_t>& words, bool packed = false) {
  std::string r;
  wire::Writer w(&r);
  w.VarintField(1, offset);
  if (packed) {
    std::string p;
    wire::Writer pw(&p);
    for (uint64_t x : words) pw.Varint(x);
    w.BytesField(2, p);
  } else {
    for (uint64_t x : words) w.VarintField(2, x);
  }
  return r;
}

void ExpectRejected(const std::vector<std::string>& records, const std::string& needle) {
  testing::ExpectThrows(
      [&] {
        FilterSplitDecoder d("bad-00000-of-00001", [](int64_t, uint8_t) {});
        for (const auto& r : records) d.Add(r);
        d.Finish();
      },
      needle, "decoding " + needle);
}

// Foreign, truncated or corrupt dumps are rejected with the file's name; packed data words
// (another encoder's choice) are accepted.
void TestDecoderRejectsBadDumps() {
  ExpectRejected({Meta(65536, 1200)}, "bad-00000-of-00001 is not a dump of this filter");
  ExpectRejected({}, "no meta record");
  ExpectRejected({Meta(6, 2), Data(0, {7, 0, 3})}, "truncated: 3 of 6");
  ExpectRejected({Meta(3, 1), Data(0, {7, 0, 0})}, "count 0 outside [1, 15]");
  ExpectRejected({Meta(3, 1), Data(0, {7, 0, 16})}, "count 16 outside");
  ExpectRejected({Meta(3, 1), Data(0, {7, 0, 1, 8, 0, 1})}, "more data than the meta");
  ExpectRejected({Meta(6, 2), Data(0, {7, 0, 1}), Data(4, {8, 0, 1})}, "at offset 4 where 3");
  ExpectRejected({Meta(3, 1), Data(0, {uint64_t{1} << 33, 0, 1})}, "exceeds uint32");
  ExpectRejected({Meta(3, 1), std::string("\x0a\xff", 2)}, "record of hash filter file bad-");
  std::map<int64_t, int> got;
  FilterSplitDecoder d("packed", [&](int64_t id, uint8_t c) { got[id] = c; });
  d.Add(Meta(6, 2));
  d.Add(Data(0, {7, 0}, /*packed=*/true));  // a triple may straddle records
  d.Add(Data(2, {2, 0xFFFFFFFF, 0xFFFFFFFF, 15}, /*packed=*/true));
  d.Finish();
  MONOLITH_EXPECT((got == std::map<int64_t, int>{{7, 2}, {-1, 15}}));
}

void TestSplitNumMustBePositive() {
  testing::ExpectThrows([] { CountingHashFilter f(Thresholds(1), 0); }, "split_num must be >= 1",
               "split_num 0");
}

}  // namespace
}  // namespace hash_table
}  // namespace monolith

int main() {
  using namespace monolith::hash_table;
  return testing::RunTests({
      {"CountingFilter", TestCountingFilter},
      {"ProbabilisticFilter", TestProbabilisticFilter},
      {"SaveRestoreRoundTrip", TestSaveRestoreRoundTrip},
      {"SaveEmpty", TestSaveEmpty},
      {"DecoderRejectsBadDumps", TestDecoderRejectsBadDumps},
      {"SplitNumMustBePositive", TestSplitNumMustBePositive},
  });
}
