#include "monolith/native_training/runtime/deep_insight/deep_insight.h"

#include <string>

#include "monolith/native_training/runtime/common/testing.h"

namespace {

using monolith::testing::Expect;
using monolith::testing::ExpectEq;
using monolith::deep_insight::BuildMessage;
using monolith::deep_insight::DeepInsight;
using monolith::deep_insight::HitSampleRatio;
using monolith::deep_insight::Row;

void TestSampling() {
  Expect(HitSampleRatio(123456789, 1.0f), "ratio 1 samples everything");
  Expect(HitSampleRatio(-1, 2.0f), "ratio above 1 samples everything");
  Expect(!HitSampleRatio(0, 0.0f), "ratio 0 samples nothing");
  Expect(!HitSampleRatio(0, -0.5f), "negative ratio samples nothing");
  // 0.01 -> buckets 0..99 of uid mod 10000.
  Expect(HitSampleRatio(99, 0.01f), "bucket 99 in 1%");
  Expect(!HitSampleRatio(100, 0.01f), "bucket 100 not in 1%");
  Expect(HitSampleRatio(10000 + 42, 0.01f), "mod 10000");
  // uid is taken as unsigned: -1 = 2^64-1, and 2^64-1 mod 10000 = 1615.
  Expect(HitSampleRatio(-1, 0.1616f), "-1 is bucket 1615 (in)");
  Expect(!HitSampleRatio(-1, 0.1614f), "-1 is bucket 1615 (out)");
  int sampled = 0;
  for (int64_t uid = 0; uid < 100000; ++uid) sampled += HitSampleRatio(uid, 0.25f);
  Expect(sampled == 25000, "25% of consecutive uids");
}

void TestMessage() {
  Row row;
  row.model_name = "model";
  row.targets = {"ctr_head"};
  row.uid = 7;
  row.req_time = 1600000000;
  row.train_time = 0;
  row.labels = {1.0f};
  row.preds = {0.7f};
  row.sample_rates = {0.5f};
  ExpectEq(BuildMessage(row),
           "{\"labels\":[1],\"model_name\":\"model\",\"preds\":[0.7],\"req_time\":1600000000,"
           "\"sample_rates\":[0.5],\"targets\":[\"ctr_head\"],\"train_time\":0,\"uid\":7}",
           "v1 message");

  row.targets = {"a", "b"};
  row.labels = {0.0f, 1.0f};
  row.preds = {0.25f, -3.5f};
  row.sample_rates = {1.0f, 1.0f};
  row.uid = -5;
  row.extra.floats["zf"] = 1.5f;
  row.extra.floats["af"] = 2.0f;
  row.extra.ints["n"] = -9;
  row.extra.strs["s"] = "q\"uo\\te\n\x01";
  ExpectEq(BuildMessage(row),
           "{\"extra_float\":{\"af\":2,\"zf\":1.5},\"extra_int\":{\"n\":-9},"
           "\"extra_str\":{\"s\":\"q\\\"uo\\\\te\\n\\u0001\"},\"labels\":[0,1],"
           "\"model_name\":\"model\",\"preds\":[0.25,-3.5],\"req_time\":1600000000,"
           "\"sample_rates\":[1,1],\"targets\":[\"a\",\"b\"],\"train_time\":0,\"uid\":-5}",
           "v2 message with extras and escaping");

  row.extra = {};
  row.targets = {"t"};
  row.labels = {__builtin_nanf("")};
  row.preds = {__builtin_inff()};
  row.sample_rates = {1e-8f};
  ExpectEq(BuildMessage(row),
           "{\"labels\":[null],\"model_name\":\"model\",\"preds\":[null],\"req_time\":1600000000,"
           "\"sample_rates\":[1e-08],\"targets\":[\"t\"],\"train_time\":0,\"uid\":-5}",
           "non-finite floats are null");
}

void TestClient() {
  Row row;
  row.model_name = "m";
  row.targets = {"t"};
  row.labels = row.preds = row.sample_rates = {1.0f};
  DeepInsight counting(/*enable_metrics_counter=*/true, /*is_fake=*/true);
  DeepInsight silent(/*enable_metrics_counter=*/false, /*is_fake=*/false);
  for (int64_t uid = 0; uid < 200; ++uid) {
    row.uid = uid;
    const std::string msg = counting.SendV2(row, 0.01f);
    Expect(msg.empty() == (uid >= 100), "unsampled rows give an empty message");
    silent.SendV2(row, 1.0f);
  }
  Expect(counting.GetTotalSendCounter() == 100, "counter counts sampled rows");
  Expect(silent.GetTotalSendCounter() == 0, "counter off");
  Expect(counting.is_fake() && !silent.is_fake(), "is_fake kept");
  const int64_t now = DeepInsight::GenerateTrainingTime();
  Expect(now > 1600000000 && now < 4102444800, "training time is Unix seconds");
}

}  // namespace

int main() {
  TestSampling();
  TestMessage();
  TestClient();
  return monolith::testing::Summary();
}
