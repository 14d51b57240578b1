// Test helpers for the hash-table cc_tests: the shared harness plus table configs.
#ifndef MONOLITH_NATIVE_TRAINING_RUNTIME_HASH_TABLE_TEST_UTIL_H_
#define MONOLITH_NATIVE_TRAINING_RUNTIME_HASH_TABLE_TEST_UTIL_H_

#include "monolith/native_training/runtime/common/testing.h"
#include "monolith/native_training/runtime/hash_table/config.h"

namespace monolith {
namespace hash_table {
namespace testing {

// The shared harness, under the names these tests use.
using ::monolith::testing::ExpectThrows;
using ::monolith::testing::ExpectNear;
using ::monolith::testing::RunTests;
using ::monolith::testing::TestCase;

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
