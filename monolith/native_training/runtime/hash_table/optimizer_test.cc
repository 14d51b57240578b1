// Each optimizer against native_ops.md §1.8's worked values (upstream's unit-test numbers) and,
// for the multi-step cases, against the formula re-derived in double precision here.
#include <cmath>
#include <string>
#include <vector>

#include "monolith/native_training/runtime/hash_table/embedding_hash_table.h"
#include "monolith/native_training/runtime/hash_table/test_util.h"

namespace monolith {
namespace hash_table {
namespace {

using testing::OneSegmentConfig;
using testing::Opt;

// Applies `grads` (one row per step) to id 0 with learning rate lr; returns the weights after
// every step. With `restore_between`, the entry is dumped and restored into a fresh table
// between steps (checks that the optimizer state round-trips).
std::vector<std::vector<float>> Run(const OptimizerConfig& opt, int dim, float lr,
                                    const std::vector<std::vector<float>>& grads,
                                    bool restore_between = false, int64_t first_step = 0) {
  auto table = std::make_unique<EmbeddingHashTable>(OneSegmentConfig(dim, opt));
  std::vector<std::vector<float>> out;
  const int64_t id = 0;
  int64_t step = first_step;
  for (const auto& g : grads) {
    table->Optimize(id, g.data(), &lr, 0, step++);
    std::vector<float> w(dim);
    table->Lookup(id, w.data());
    out.push_back(w);
    if (restore_between) {
      EntryDump dump;
      MONOLITH_EXPECT(table->LookupEntry(id, &dump));
      dump.has_id = true;
      dump.id = id;
      auto fresh = std::make_unique<EmbeddingHashTable>(OneSegmentConfig(dim, opt));
      MONOLITH_EXPECT(fresh->ValidateDump(dump).empty());
      fresh->Restore(EntryDump::Parse(dump.Serialize()));
      table = std::move(fresh);
    }
  }
  return out;
}

void ExpectRows(const std::vector<std::vector<float>>& got,
                const std::vector<std::vector<double>>& want, double tol, const char* what) {
  MONOLITH_EXPECT(got.size() == want.size());
  for (size_t s = 0; s < got.size() && s < want.size(); ++s) {
    for (size_t i = 0; i < want[s].size(); ++i) {
      testing::ExpectNear(got[s][i], want[s][i], tol,
                          std::string(what) + " step " + std::to_string(s) + " elt " +
                              std::to_string(i));
    }
  }
}

void TestSgd() {
  ExpectRows(Run(Opt(OptimizerConfig::kSgd), 1, 0.1f, {{1}}), {{-0.1}}, 1e-7, "sgd");
}

void TestAdagrad() {
  auto c = Opt(OptimizerConfig::kAdagrad);
  c.initial_accumulator_value = 1;
  ExpectRows(Run(c, 2, 0.1f, {{1, 2}}), {{-0.07071067, -0.08944272}}, 1e-6, "adagrad");
  c.weight_decay_factor = 0.1f;
  ExpectRows(Run(c, 2, 0.1f, {{1, 2}, {1, 2}}),
             {{-0.07071067, -0.08944272}, {-0.128173, -0.155943}}, 1e-5, "adagrad wd");
  auto d = Opt(OptimizerConfig::kAdagrad);  // acc0 = 0.1 default
  ExpectRows(Run(d, 1, 1.0f, {{1}, {1}}, /*restore_between=*/true), {{-0.95346254}, {-1.643528}},
             1e-5, "adagrad restore");
  // Re-derivation over several steps with a dim that is not a multiple of 8.
  auto e = Opt(OptimizerConfig::kAdagrad);
  std::vector<std::vector<float>> grads;
  std::vector<std::vector<double>> want;
  std::vector<double> w(11, 0), n(11, 0.1);
  for (int s = 0; s < 4; ++s) {
    std::vector<float> g(11);
    for (int i = 0; i < 11; ++i) g[i] = 0.3f * (i - 5) + 0.1f * s;
    for (int i = 0; i < 11; ++i) {
      n[i] += static_cast<double>(g[i]) * g[i];
      w[i] -= 0.05 / std::sqrt(n[i]) * g[i];
    }
    grads.push_back(g);
    want.push_back(w);
  }
  ExpectRows(Run(e, 11, 0.05f, grads), want, 1e-5, "adagrad rederived");
}

void TestFtrl() {
  auto c = Opt(OptimizerConfig::kFtrl);
  ExpectRows(Run(c, 1, 0.01f, {{10}, {10}}), {{-0.009995}, {-0.0170643}}, 1e-6, "ftrl");
  ExpectRows(Run(c, 2, 0.01f, {{10, 1}, {10, 1}}),
             {{-0.009995, -0.00953463}, {-0.0170643, -0.0164353}}, 1e-6, "ftrl d2");
  ExpectRows(Run(c, 1, 0.01f, {{10}, {10}}, true), {{-0.009995}, {-0.0170643}}, 1e-6,
             "ftrl restore");
}

void TestAdamAmsgrad() {
  for (auto type : {OptimizerConfig::kAdam, OptimizerConfig::kAmsgrad}) {
    auto c = Opt(type);
    ExpectRows(Run(c, 1, 0.01f, {{10}, {10}}, true), {{-0.00990099}, {-0.01983060}}, 1e-6,
               "adam/amsgrad restore");
    ExpectRows(Run(c, 2, 0.01f, {{10, 1}, {10, 1}}),
               {{-0.00990099, -0.00909091}, {-0.01983060, -0.01842895}}, 1e-6, "adam/amsgrad d2");
  }
}

void TestMomentum() {
  ExpectRows(Run(Opt(OptimizerConfig::kMomentum), 1, 0.01f, {{10}, {10}}), {{-0.1}, {-0.29}}, 1e-6,
             "momentum");
  auto c = Opt(OptimizerConfig::kMomentum);
  c.use_nesterov = true;
  // n1 = -0.1, w1 = -(1.9)(0.1) = -0.19; n2 = 0.9*-0.1 - 0.1 = -0.19, w2 = w1 + 0.09 - 1.9*0.19.
  ExpectRows(Run(c, 1, 0.01f, {{10}, {10}}), {{-0.19}, {-0.19 + 0.09 - 1.9 * 0.19}}, 1e-6,
             "momentum nesterov");
}

void TestRmsprop() {
  ExpectRows(Run(Opt(OptimizerConfig::kRmsprop), 1, 0.01f, {{10}, {10}}),
             {{-0.024025}, {-0.042686}}, 1e-6, "rmsprop");
  ExpectRows(Run(Opt(OptimizerConfig::kRmspropV2), 2, 0.01f, {{10, 1}, {10, 1}}),
             {{-0.0090909, -0.005}, {-0.0158549, -0.0092045}}, 1e-6, "rmspropv2");
}

void TestAdadelta() {
  ExpectRows(Run(Opt(OptimizerConfig::kAdadelta), 1, 0.01f, {{10}, {10}}),
             {{-0.0031607}, {-0.0064035}}, 1e-6, "adadelta");
}

void TestMovingAverage() {
  ExpectRows(Run(Opt(OptimizerConfig::kMovingAverage), 1, 0.01f, {{10}, {10}}), {{1.0}, {1.9}},
             1e-6, "moving average");
}

void TestGroupAdagrad() {
  auto c = Opt(OptimizerConfig::kGroupAdagrad);
  c.l2_regularization_strength = 1;
  c.beta = 1;
  c.initial_accumulator_value = 0;
  ExpectRows(Run(c, 1, 0.01f, {{10}, {10}}, true), {{-0.008182}, {-0.014125}}, 1e-6,
             "group adagrad");
  c.l2_regularization_strength = 0.5f;
  ExpectRows(Run(c, 2, 0.01f, {{10, 1}, {1, 5}}),
             {{-0.008639, -0.000864}, {-0.009096, -0.004778}}, 1e-6, "group adagrad d2");
  c.l2_regularization_strength = 0;
  ExpectRows(Run(c, 2, 0.01f, {{10, 1}}), {{-0.009091, -0.000909}}, 1e-6, "group adagrad l2=0");
}

void TestBatchSoftmax() {
  ExpectRows(Run(Opt(OptimizerConfig::kBatchSoftmax), 1, 0.1f, {{0}}, false, 1), {{0.1}}, 1e-6,
             "batch softmax");
  EmbeddingHashTable t(OneSegmentConfig(1, Opt(OptimizerConfig::kBatchSoftmax)));
  float g = 0, lr = 0.1f;
  testing::ExpectThrows([&] { t.Optimize(1, &g, &lr, 0, -1); }, "global_step >= 0",
                        "batch softmax negative step");
}

void TestTwoSegmentSgd() {
  TableConfig c = OneSegmentConfig(1, Opt(OptimizerConfig::kSgd));
  SegmentConfig s2 = c.entry_config.segments[0];
  s2.dim_size = 2;
  c.entry_config.segments.push_back(s2);
  EmbeddingHashTable t(c);
  MONOLITH_EXPECT(t.DimSize() == 3 && t.SliceSize() == 2);
  float g[3] = {1, 2, 3}, lrs[2] = {1, 2}, w[3];
  t.Optimize(7, g, lrs, 0, 0);
  t.Lookup(7, w);
  MONOLITH_EXPECT_NEAR(w[0], -1, 1e-7);
  MONOLITH_EXPECT_NEAR(w[1], -4, 1e-7);
  MONOLITH_EXPECT_NEAR(w[2], -6, 1e-7);
}

void TestStochasticRounding() {
  auto c = Opt(OptimizerConfig::kSgd);
  c.stochastic_rounding_float16 = true;
  EmbeddingHashTable t(OneSegmentConfig(1, c));
  float lr = 1, w;
  float g = -1.0001f;  // not representable in fp16: lands on one of its two neighbours
  t.Optimize(1, &g, &lr, 0, 0);
  t.Lookup(1, &w);
  MONOLITH_EXPECT(w == 1.0f || w == 1.0009765625f);
}

void TestUnsupportedOptimizers() {
  for (auto type : {OptimizerConfig::kGroupFtrl, OptimizerConfig::kDynamicWdAdagrad,
                    OptimizerConfig::kDc}) {
    testing::ExpectThrows([&] { EmbeddingHashTable t(OneSegmentConfig(1, Opt(type))); },
                          "optimizer is not implemented yet.", "unsupported optimizer");
  }
  testing::ExpectThrows(
      [] { EmbeddingHashTable t(OneSegmentConfig(1, Opt(OptimizerConfig::kUnset))); },
      "OptimizerConfig must be set type.", "unset optimizer");
}

}  // namespace
}  // namespace hash_table
}  // namespace monolith

int main() {
  using namespace monolith::hash_table;
  return testing::RunTests({
      {"Sgd", TestSgd},
      {"Adagrad", TestAdagrad},
      {"Ftrl", TestFtrl},
      {"AdamAmsgrad", TestAdamAmsgrad},
      {"Momentum", TestMomentum},
      {"Rmsprop", TestRmsprop},
      {"Adadelta", TestAdadelta},
      {"MovingAverage", TestMovingAverage},
      {"GroupAdagrad", TestGroupAdagrad},
      {"BatchSoftmax", TestBatchSoftmax},
      {"TwoSegmentSgd", TestTwoSegmentSgd},
      {"StochasticRounding", TestStochasticRounding},
      {"UnsupportedOptimizers", TestUnsupportedOptimizers},
  });
}
