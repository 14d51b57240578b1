#include "monolith/native_training/runtime/hash_table/config.h"

#include <sstream>

#include "monolith/native_training/runtime/common/wire.h"

namespace monolith {
namespace hash_table {
namespace {

using wire::Reader;

// Per-type proto defaults (optimizer.proto), applied when the oneof member is seen so that the
// sub-message's explicit fields override them.
void SetOptimizerDefaults(OptimizerConfig::Type type, OptimizerConfig* c) {
  bool keep_sr = c->stochastic_rounding_float16;
  *c = OptimizerConfig();
  c->stochastic_rounding_float16 = keep_sr;
  c->type = type;
  switch (type) {
    case OptimizerConfig::kAdagrad:
    case OptimizerConfig::kDynamicWdAdagrad:
      c->learning_rate = 0.001f;
      c->initial_accumulator_value = 0.1f;
      break;
    case OptimizerConfig::kSgd:
      c->learning_rate = 0.01f;
      break;
    case OptimizerConfig::kFtrl:
      c->learning_rate = 0.01f;
      c->initial_accumulator_value = 0.1f;
      break;
    case OptimizerConfig::kGroupFtrl:
      c->learning_rate = 0.01f;
      c->beta = 1.0f;
      break;
    case OptimizerConfig::kGroupAdagrad:
      c->learning_rate = 0.01f;
      c->initial_accumulator_value = 0.1f;
      break;
    case OptimizerConfig::kAdadelta:
      c->learning_rate = 0.01f;
      c->averaging_ratio = 0.9f;
      c->epsilon = 0.01f;
      break;
    case OptimizerConfig::kAdam:
    case OptimizerConfig::kAmsgrad:
      c->learning_rate = 0.01f;
      c->beta1 = 0.9f;
      c->beta2 = 0.99f;
      c->epsilon = 0.01f;
      break;
    case OptimizerConfig::kMomentum:
      c->learning_rate = 0.01f;
      c->momentum = 0.9f;
      break;
    case OptimizerConfig::kMovingAverage:
      c->momentum = 0.9f;
      break;
    case OptimizerConfig::kRmsprop:
    case OptimizerConfig::kRmspropV2:
      c->learning_rate = 0.01f;
      c->momentum = 0.9f;
      break;
    case OptimizerConfig::kBatchSoftmax:
      c->learning_rate = 0.1f;
      break;
    default:
      break;
  }
}

// Maps (optimizer type, field number) of the per-optimizer config message to a member.
void ParseOptimizerFields(std::string_view bytes, OptimizerConfig* c) {
  using T = OptimizerConfig;
  Reader r(bytes, "OptimizerConfig");
  int field, wt;
  while (r.Next(&field, &wt)) {
    if (field == 1) {  // dim_size: always taken from the segment.
      r.Skip(wt);
      continue;
    }
    float* f = nullptr;
    bool* b = nullptr;
    switch (c->type) {
      case T::kAdagrad:
      case T::kDynamicWdAdagrad:
        if (field == 2) f = &c->learning_rate;
        if (field == 3) f = &c->initial_accumulator_value;
        if (field == 5) f = &c->weight_decay_factor;
        break;
      case T::kSgd:
        if (field == 2) f = &c->learning_rate;
        break;
      case T::kFtrl:
      case T::kGroupFtrl:
        if (field == 2) f = &c->learning_rate;
        if (field == 3) f = &c->beta;
        if (field == 4) f = &c->initial_accumulator_value;
        if (field == 5) f = &c->l1_regularization_strength;
        if (field == 6) f = &c->l2_regularization_strength;
        break;
      case T::kGroupAdagrad:
        if (field == 2) f = &c->learning_rate;
        if (field == 3) f = &c->beta;
        if (field == 4) f = &c->initial_accumulator_value;
        if (field == 5) f = &c->l2_regularization_strength;
        if (field == 6) f = &c->weight_decay_factor;
        break;
      case T::kAdadelta:
        if (field == 2) f = &c->learning_rate;
        if (field == 3) f = &c->weight_decay_factor;
        if (field == 4) f = &c->averaging_ratio;
        if (field == 5) f = &c->epsilon;
        break;
      case T::kAdam:
      case T::kAmsgrad:
        if (field == 2) f = &c->learning_rate;
        if (field == 3) f = &c->beta1;
        if (field == 4) f = &c->beta2;
        if (field == 6) f = &c->weight_decay_factor;
        if (field == 7) b = &c->use_nesterov;
        if (field == 8) f = &c->epsilon;
        break;
      case T::kMomentum:
        if (field == 2) f = &c->learning_rate;
        if (field == 3) f = &c->weight_decay_factor;
        if (field == 4) b = &c->use_nesterov;
        if (field == 5) f = &c->momentum;
        break;
      case T::kMovingAverage:
        if (field == 2) f = &c->momentum;
        break;
      case T::kRmsprop:
      case T::kRmspropV2:
        if (field == 2) f = &c->learning_rate;
        if (field == 3) f = &c->weight_decay_factor;
        if (field == 4) f = &c->momentum;
        break;
      case T::kBatchSoftmax:
        if (field == 2) f = &c->learning_rate;
        break;
      default:
        break;
    }
    if (f != nullptr && wt == wire::kFixed32) {
      *f = r.ReadFloat();
    } else if (b != nullptr && wt == wire::kVarint) {
      *b = r.ReadVarint() != 0;
    } else {
      r.Skip(wt);  // warmup_steps, hessian_compression_times, ...: accepted and ignored.
    }
  }
}

OptimizerConfig ParseOptimizer(std::string_view bytes) {
  OptimizerConfig c;
  Reader r(bytes, "OptimizerConfig");
  int field, wt;
  while (r.Next(&field, &wt)) {
    if (field == 4) {
      c.stochastic_rounding_float16 = r.ReadVarintField(wt) != 0;
    } else if ((field >= 1 && field <= 3) || (field >= 5 && field <= 16)) {
      std::string_view sub = r.ReadBytesField(wt);
      SetOptimizerDefaults(static_cast<OptimizerConfig::Type>(field), &c);
      ParseOptimizerFields(sub, &c);
    } else {
      r.Skip(wt);
    }
  }
  return c;
}

InitializerConfig ParseInitializer(std::string_view bytes) {
  InitializerConfig c;
  Reader r(bytes, "InitializerConfig");
  int field, wt;
  while (r.Next(&field, &wt)) {
    if (field == 1 || field == 2 || field == 3 || field == 15) {
      std::string_view sub = r.ReadBytesField(wt);
      c = InitializerConfig();
      c.type = static_cast<InitializerConfig::Type>(field);
      Reader s(sub, "InitializerConfig");
      int f2, wt2;
      while (s.Next(&f2, &wt2)) {
        if (c.type == InitializerConfig::kRandomUniform && f2 == 2) {
          c.minval = s.ReadFloatField(wt2);
        } else if (c.type == InitializerConfig::kRandomUniform && f2 == 3) {
          c.maxval = s.ReadFloatField(wt2);
        } else if (c.type == InitializerConfig::kConstants && f2 == 2) {
          c.constant = s.ReadFloatField(wt2);
        } else {
          s.Skip(wt2);
        }
      }
    } else {
      r.Skip(wt);
    }
  }
  return c;
}

CompressorConfig ParseCompressor(std::string_view bytes) {
  CompressorConfig c;
  Reader r(bytes, "FloatCompressorConfig");
  int field, wt;
  while (r.Next(&field, &wt)) {
    if (field >= 1 && field <= 4) {
      std::string_view sub = r.ReadBytesField(wt);
      c = CompressorConfig();
      c.type = static_cast<CompressorConfig::Type>(field);
      Reader s(sub, "FloatCompressorConfig");
      int f2, wt2;
      while (s.Next(&f2, &wt2)) {
        if (c.type == CompressorConfig::kFixedR8 && f2 == 2) {
          c.r = s.ReadFloatField(wt2);
        } else if (c.type == CompressorConfig::kOneBit && f2 == 2) {
          c.step_size = static_cast<int64_t>(s.ReadVarintField(wt2));
        } else if (c.type == CompressorConfig::kOneBit && f2 == 3) {
          c.init_scale = s.ReadFloatField(wt2);
        } else if (c.type == CompressorConfig::kOneBit && f2 == 4) {
          c.max_scale = s.ReadFloatField(wt2);
        } else if (c.type == CompressorConfig::kOneBit && f2 == 5) {
          c.amplitude = s.ReadFloatField(wt2);
        } else {
          s.Skip(wt2);
        }
      }
    } else {
      r.Skip(wt);
    }
  }
  return c;
}

SegmentConfig ParseSegment(std::string_view bytes) {
  SegmentConfig seg;
  Reader r(bytes, "EntryConfig.Segment");
  int field, wt;
  while (r.Next(&field, &wt)) {
    switch (field) {
      case 1:
        seg.has_init = true;
        seg.init = ParseInitializer(r.ReadBytesField(wt));
        break;
      case 2:
        seg.has_opt = true;
        seg.opt = ParseOptimizer(r.ReadBytesField(wt));
        break;
      case 3:
        seg.has_comp = true;
        seg.comp = ParseCompressor(r.ReadBytesField(wt));
        break;
      case 7:
        seg.dim_size = static_cast<int32_t>(r.ReadVarintField(wt));
        break;
      default:
        r.Skip(wt);
    }
  }
  return seg;
}

}  // namespace

OptimizerConfig OptimizerDefaults(OptimizerConfig::Type type) {
  OptimizerConfig c;
  SetOptimizerDefaults(type, &c);
  return c;
}

EntryConfig ParseEntryConfig(std::string_view bytes) {
  EntryConfig c;
  Reader r(bytes, "EntryConfig");
  int field, wt;
  while (r.Next(&field, &wt)) {
    if (field == 1) {
      c.segments.push_back(ParseSegment(r.ReadBytesField(wt)));
    } else if (field == 2) {
      c.entry_type = static_cast<EntryConfig::EntryType>(r.ReadVarintField(wt));
    } else {
      r.Skip(wt);
    }
  }
  return c;
}

SlotExpireTimeConfig ParseSlotExpireTimeConfig(std::string_view bytes) {
  SlotExpireTimeConfig c;
  Reader r(bytes, "SlotExpireTimeConfig");
  int field, wt;
  while (r.Next(&field, &wt)) {
    if (field == 1) {
      Reader s(r.ReadBytesField(wt), "SlotExpireTimeConfig.SlotExpireTime");
      uint32_t slot = 0, days = 0;
      int f2, wt2;
      while (s.Next(&f2, &wt2)) {
        if (f2 == 1) {
          slot = static_cast<uint32_t>(s.ReadVarintField(wt2));
        } else if (f2 == 2) {
          days = static_cast<uint32_t>(s.ReadVarintField(wt2));
        } else {
          s.Skip(wt2);
        }
      }
      c.slot_expire_days[slot] = days;
    } else if (field == 2) {
      c.default_expire_days = static_cast<uint32_t>(r.ReadVarintField(wt));
    } else {
      r.Skip(wt);
    }
  }
  return c;
}

SlotOccurrenceThresholdConfig ParseSlotOccurrenceThresholdConfig(std::string_view bytes) {
  SlotOccurrenceThresholdConfig c;
  Reader r(bytes, "SlotOccurrenceThresholdConfig");
  int field, wt;
  while (r.Next(&field, &wt)) {
    if (field == 1) {
      Reader s(r.ReadBytesField(wt), "SlotOccurrenceThresholdConfig.SlotOccurrenceThreshold");
      uint32_t slot = 0, threshold = 0;
      int f2, wt2;
      while (s.Next(&f2, &wt2)) {
        if (f2 == 1) {
          slot = static_cast<uint32_t>(s.ReadVarintField(wt2));
        } else if (f2 == 2) {
          threshold = static_cast<uint32_t>(s.ReadVarintField(wt2));
        } else {
          s.Skip(wt2);
        }
      }
      c.slot_thresholds[slot] = threshold;
    } else if (field == 2) {
      c.default_threshold = static_cast<uint32_t>(r.ReadVarintField(wt));
    } else {
      r.Skip(wt);
    }
  }
  return c;
}

uint32_t SlotOccurrenceThresholdConfig::Threshold(int64_t id) const {
  auto it = slot_thresholds.find(static_cast<uint32_t>(SlotV2(id)));
  return it == slot_thresholds.end() ? default_threshold : it->second;
}

TableConfig ParseTableConfig(std::string_view bytes) {
  TableConfig c;
  Reader r(bytes, "EmbeddingHashTableConfig");
  int field, wt;
  while (r.Next(&field, &wt)) {
    switch (field) {
      case 1:
        c.entry_config = ParseEntryConfig(r.ReadBytesField(wt));
        break;
      case 2:
        c.initial_capacity = r.ReadVarintField(wt);
        break;
      case 3:
        c.slot_expire_time_config = ParseSlotExpireTimeConfig(r.ReadBytesField(wt));
        break;
      case 5:
        r.ReadBytesField(wt);
        c.has_cuckoo = true;
        break;
      case 6:
        c.storage_type = static_cast<TableConfig::StorageType>(r.ReadVarintField(wt));
        break;
      case 7:
        c.enable_feature_eviction = r.ReadVarintField(wt) != 0;
        break;
      case 8:
        c.feature_evict_every_n_hours = static_cast<int32_t>(r.ReadVarintField(wt));
        break;
      case 10:
        c.skip_zero_embedding = r.ReadVarintField(wt) != 0;
        break;
      default:
        r.Skip(wt);
    }
  }
  return c;
}

int64_t SlotExpireTimeConfig::ExpireSeconds(int64_t id) const {
  uint32_t days = default_expire_days;
  if (!slot_expire_days.empty()) {
    auto it = slot_expire_days.find(static_cast<uint32_t>(SlotV2(id)));
    if (it != slot_expire_days.end()) days = it->second;
  }
  return static_cast<int64_t>(days) * 86400;
}

std::string ShortDebugString(const OptimizerConfig& c) {
  static const char* kNames[] = {"",         "adagrad",        "sgd",      "ftrl",
                                 "",         "dynamic_wd_adagrad", "adadelta", "adam",
                                 "amsgrad",  "momentum",       "moving_average", "rmsprop",
                                 "rmspropv2", "dc",            "group_ftrl", "batch_softmax",
                                 "group_adagrad"};
  std::ostringstream os;
  if (c.type != OptimizerConfig::kUnset) os << kNames[c.type] << " { }";
  if (c.stochastic_rounding_float16) os << (c.type ? " " : "") << "stochastic_rounding_float16: true";
  return os.str();
}

std::string ShortDebugString(const InitializerConfig& c) {
  switch (c.type) {
    case InitializerConfig::kZeros:
      return "zeros { }";
    case InitializerConfig::kOnes:
      return "ones { }";
    case InitializerConfig::kConstants:
      return "constants { constant: " + std::to_string(c.constant) + " }";
    case InitializerConfig::kRandomUniform:
      return "random_uniform { minval: " + std::to_string(c.minval) +
             " maxval: " + std::to_string(c.maxval) + " }";
    default:
      return "";
  }
}

std::string ShortDebugString(const EntryConfig& c) {
  std::ostringstream os;
  for (const auto& s : c.segments) {
    os << "segments { ";
    if (s.has_init) os << "init_config { " << ShortDebugString(s.init) << " } ";
    if (s.has_opt) os << "opt_config { " << ShortDebugString(s.opt) << " } ";
    if (s.has_comp) os << "comp_config { type: " << s.comp.type << " } ";
    os << "dim_size: " << s.dim_size << " } ";
  }
  os << "entry_type: " << (c.entry_type == EntryConfig::kServing ? "SERVING" : "TRAINING");
  return os.str();
}

}  // namespace hash_table
}  // namespace monolith
