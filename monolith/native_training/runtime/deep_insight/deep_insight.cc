#include "monolith/native_training/runtime/deep_insight/deep_insight.h"

#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>

namespace monolith {
namespace deep_insight {
namespace {

constexpr uint64_t kSampleBuckets = 10000;

void AppendJsonString(const std::string& s, std::string* out) {
  out->push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\b': out->append("\\b"); break;
      case '\f': out->append("\\f"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out->append(buf);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

// JSON has no NaN/Infinity; they print as null (as nlohmann::json does).
void AppendJsonFloat(float v, std::string* out) {
  if (!std::isfinite(v)) {
    out->append("null");
    return;
  }
  char buf[32];
  auto result = std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, result.ptr);
}

void AppendJsonInt(int64_t v, std::string* out) { out->append(std::to_string(v)); }

void AppendKey(const char* key, bool* first, std::string* out) {
  if (!*first) out->push_back(',');
  *first = false;
  out->push_back('"');
  out->append(key);
  out->append("\":");
}

void AppendFloatArray(const std::vector<float>& values, std::string* out) {
  out->push_back('[');
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out->push_back(',');
    AppendJsonFloat(values[i], out);
  }
  out->push_back(']');
}

template <typename V, typename AppendValue>
void AppendObject(const std::map<std::string, V>& fields, AppendValue append_value,
                  std::string* out) {
  out->push_back('{');
  bool first = true;
  for (const auto& [key, value] : fields) {
    if (!first) out->push_back(',');
    first = false;
    AppendJsonString(key, out);
    out->push_back(':');
    append_value(value, out);
  }
  out->push_back('}');
}

}  // namespace

bool HitSampleRatio(int64_t uid, float sample_ratio) {
  if (sample_ratio >= 1.0f) return true;
  if (!(sample_ratio > 0.0f)) return false;
  const uint64_t bucket = static_cast<uint64_t>(uid) % kSampleBuckets;
  return static_cast<double>(bucket) < static_cast<double>(sample_ratio) * kSampleBuckets;
}

std::string BuildMessage(const Row& row) {
  std::string out;
  out.reserve(256);
  out.push_back('{');
  bool first = true;
  if (!row.extra.floats.empty()) {
    AppendKey("extra_float", &first, &out);
    AppendObject(row.extra.floats, AppendJsonFloat, &out);
  }
  if (!row.extra.ints.empty()) {
    AppendKey("extra_int", &first, &out);
    AppendObject(row.extra.ints, AppendJsonInt, &out);
  }
  if (!row.extra.strs.empty()) {
    AppendKey("extra_str", &first, &out);
    AppendObject(row.extra.strs, AppendJsonString, &out);
  }
  AppendKey("labels", &first, &out);
  AppendFloatArray(row.labels, &out);
  AppendKey("model_name", &first, &out);
  AppendJsonString(row.model_name, &out);
  AppendKey("preds", &first, &out);
  AppendFloatArray(row.preds, &out);
  AppendKey("req_time", &first, &out);
  AppendJsonInt(row.req_time, &out);
  AppendKey("sample_rates", &first, &out);
  AppendFloatArray(row.sample_rates, &out);
  AppendKey("targets", &first, &out);
  out.push_back('[');
  for (size_t i = 0; i < row.targets.size(); ++i) {
    if (i > 0) out.push_back(',');
    AppendJsonString(row.targets[i], &out);
  }
  out.push_back(']');
  AppendKey("train_time", &first, &out);
  AppendJsonInt(row.train_time, &out);
  AppendKey("uid", &first, &out);
  AppendJsonInt(row.uid, &out);
  out.push_back('}');
  return out;
}

std::string DeepInsight::SendV2(const Row& row, float sample_ratio) {
  if (!HitSampleRatio(row.uid, sample_ratio)) return "";
  if (enable_metrics_counter_) total_send_counter_.fetch_add(1);
  return BuildMessage(row);
}

int64_t DeepInsight::GenerateTrainingTime() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace deep_insight
}  // namespace monolith
