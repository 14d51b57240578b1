// Minimal assertion helpers for the hash-table cc_tests (the workspace has no gtest).
#ifndef MONOLITH_NATIVE_TRAINING_RUNTIME_HASH_TABLE_TEST_UTIL_H_
#define MONOLITH_NATIVE_TRAINING_RUNTIME_HASH_TABLE_TEST_UTIL_H_

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "monolith/native_training/runtime/hash_table/config.h"

namespace monolith {
namespace hash_table {
namespace testing {

inline int& Failures() {
  static int failures = 0;
  return failures;
}

#define HT_EXPECT(cond)                                                         \
  do {                                                                          \
    if (!(cond)) {                                                              \
      std::fprintf(stderr, "%s:%d: expectation failed: %s\n", __FILE__, __LINE__, #cond); \
      ++::monolith::hash_table::testing::Failures();                           \
    }                                                                           \
  } while (0)

#define HT_EXPECT_NEAR(a, b, tol)                                                      \
  do {                                                                                 \
    double va = (a), vb = (b);                                                         \
    if (!(std::fabs(va - vb) <= (tol))) {                                              \
      std::fprintf(stderr, "%s:%d: %s = %.9g, expected %s = %.9g (tol %g)\n", __FILE__, \
                   __LINE__, #a, va, #b, vb, static_cast<double>(tol));               \
      ++::monolith::hash_table::testing::Failures();                                  \
    }                                                                                  \
  } while (0)

// Expects fn() to throw an exception whose what() contains `needle`.
template <typename Fn>
void ExpectThrows(Fn&& fn, const std::string& needle, const char* where) {
  try {
    fn();
  } catch (const std::exception& e) {
    if (std::string(e.what()).find(needle) == std::string::npos) {
      std::fprintf(stderr, "%s: threw '%s', expected it to mention '%s'\n", where, e.what(),
                   needle.c_str());
      ++Failures();
    }
    return;
  }
  std::fprintf(stderr, "%s: did not throw (expected '%s')\n", where, needle.c_str());
  ++Failures();
}

struct TestCase {
  const char* name;
  std::function<void()> fn;
};

inline int RunTests(const std::vector<TestCase>& tests) {
  for (const auto& t : tests) {
    int before = Failures();
    t.fn();
    std::fprintf(stderr, "[%s] %s\n", Failures() == before ? "PASS" : "FAIL", t.name);
  }
  std::fprintf(stderr, "%zu tests, %d failed expectations\n", tests.size(), Failures());
  return Failures() == 0 ? 0 : 1;
}

// One-segment training config with the given optimizer, zeros initializer, cuckoo table.
inline TableConfig OneSegmentConfig(int dim, OptimizerConfig opt,
                                    InitializerConfig::Type init = InitializerConfig::kZeros) {
  TableConfig c;
  c.has_cuckoo = true;
  SegmentConfig s;
  s.dim_size = dim;
  s.has_init = true;
  s.init.type = init;
  s.has_opt = true;
  s.opt = opt;
  c.entry_config.segments.push_back(s);
  return c;
}

inline OptimizerConfig Opt(OptimizerConfig::Type type) { return OptimizerDefaults(type); }

}  // namespace testing
}  // namespace hash_table
}  // namespace monolith

#endif  // MONOLITH_NATIVE_TRAINING_RUNTIME_HASH_TABLE_TEST_UTIL_H_
