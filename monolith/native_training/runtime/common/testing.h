// Expectation helpers shared by the TF-free runtime cc_tests (the workspace has no gtest): every
// failed check is printed, and Summary() / RunTests() turn the tally into main's exit status.
#ifndef MONOLITH_NATIVE_TRAINING_RUNTIME_COMMON_TESTING_H_
#define MONOLITH_NATIVE_TRAINING_RUNTIME_COMMON_TESTING_H_

#include <atomic>
#include <cstdio>
#include <cmath>
#include <cstdlib>
#include <exception>
#include <functional>
#include <string>
#include <vector>

namespace monolith {
namespace testing {

// Atomic: some tests check from several threads.
inline std::atomic<int>& Checks() {
  static std::atomic<int> checks{0};
  return checks;
}

inline std::atomic<int>& Failures() {
  static std::atomic<int> failures{0};
  return failures;
}

inline void Fail(const std::string& what) {
  std::fprintf(stderr, "FAIL %s\n", what.c_str());
  ++Failures();
}

inline void Expect(bool ok, const std::string& what) {
  ++Checks();
  if (!ok) Fail(what);
}

inline std::string Where(const char* file, int line) {
  return std::string(file) + ":" + std::to_string(line) + ": ";
}

// For checks that the expression's own text describes well enough.
#define MONOLITH_EXPECT(cond)                                                         \
  do {                                                                                \
    ++::monolith::testing::Checks();                                                  \
    if (!(cond)) {                                                                    \
      ::monolith::testing::Fail(::monolith::testing::Where(__FILE__, __LINE__) + #cond); \
    }                                                                                 \
  } while (0)

inline void ExpectNear(double a, double b, double tol, const std::string& what) {
  ++Checks();
  if (!(std::fabs(a - b) <= tol)) {
    char values[96];
    std::snprintf(values, sizeof(values), ": %.9g vs %.9g (tol %g)", a, b, tol);
    Fail(what + values);
  }
}

#define MONOLITH_EXPECT_NEAR(a, b, tol)                 \
  ::monolith::testing::ExpectNear((a), (b), (tol),       \
                                  ::monolith::testing::Where(__FILE__, __LINE__) + #a " ~ " #b)

inline void ExpectEq(const std::string& actual, const std::string& expected,
                     const std::string& what) {
  ++Checks();
  if (actual != expected) Fail(what + ":\n  actual   " + actual + "\n  expected " + expected);
}

// Expects fn() to throw an exception whose what() contains `needle`.
template <typename Fn>
void ExpectThrows(Fn&& fn, const std::string& needle, const std::string& where) {
  ++Checks();
  try {
    fn();
  } catch (const std::exception& e) {
    if (std::string(e.what()).find(needle) == std::string::npos) {
      Fail(where + ": threw '" + e.what() + "', expected it to mention '" + needle + "'");
    }
    return;
  }
  Fail(where + ": did not throw (expected '" + needle + "')");
}

// Lower-case hex of `bytes`, to compare wire encodings against literals.
inline std::string Hex(const std::string& bytes) {
  std::string hex;
  char buf[3];
  for (unsigned char c : bytes) {
    std::snprintf(buf, sizeof(buf), "%02x", c);
    hex += buf;
  }
  return hex;
}

// Prints the tally; returns main's exit status.
inline int Summary() {
  std::printf("%d checks, %d failed\n", Checks().load(), Failures().load());
  return Failures() == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

struct TestCase {
  const char* name;
  std::function<void()> fn;
};

// Runs every test, printing whether each had a failed check; returns main's exit status.
inline int RunTests(const std::vector<TestCase>& tests) {
  for (const TestCase& t : tests) {
    const int before = Failures();
    t.fn();
    std::printf("[%s] %s\n", Failures() == before ? "PASS" : "FAIL", t.name);
  }
  return Summary();
}

}  // namespace testing
}  // namespace monolith

#endif  // MONOLITH_NATIVE_TRAINING_RUNTIME_COMMON_TESTING_H_
