// Plain C++ views of the table config protos (embedding_hash_table.proto and its imports),
// decoded from serialized bytes with the hand-written wire reader (see wire.h for why).
#ifndef MONOLITH_NATIVE_TRAINING_RUNTIME_HASH_TABLE_CONFIG_H_
#define MONOLITH_NATIVE_TRAINING_RUNTIME_HASH_TABLE_CONFIG_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace monolith {
namespace hash_table {

struct InitializerConfig {
  // Values are the InitializerConfig oneof field numbers.
  enum Type { kUnset = 0, kZeros = 1, kRandomUniform = 2, kOnes = 3, kConstants = 15 };
  Type type = kUnset;
  float minval = -0.05f;
  float maxval = 0.05f;
  float constant = 0.0f;
};

struct OptimizerConfig {
  // Values are the OptimizerConfig oneof field numbers.
  enum Type {
    kUnset = 0,
    kAdagrad = 1,
    kSgd = 2,
    kFtrl = 3,
    kDynamicWdAdagrad = 5,
    kAdadelta = 6,
    kAdam = 7,
    kAmsgrad = 8,
    kMomentum = 9,
    kMovingAverage = 10,
    kRmsprop = 11,
    kRmspropV2 = 12,
    kDc = 13,
    kGroupFtrl = 14,
    kBatchSoftmax = 15,
    kGroupAdagrad = 16,
  };
  Type type = kUnset;
  bool stochastic_rounding_float16 = false;
  // Union of the per-optimizer fields; defaults are set per type by the parser.
  float learning_rate = 0;
  float initial_accumulator_value = 0;
  float weight_decay_factor = 0;
  float beta = 0;
  float beta1 = 0;
  float beta2 = 0;
  float epsilon = 0;
  float l1_regularization_strength = 0;
  float l2_regularization_strength = 0;
  float averaging_ratio = 0;
  float momentum = 0;
  bool use_nesterov = false;
};

struct CompressorConfig {
  // Values are the FloatCompressorConfig oneof field numbers.
  enum Type { kUnset = 0, kFp32 = 1, kFp16 = 2, kFixedR8 = 3, kOneBit = 4 };
  Type type = kUnset;
  float r = 1.0f;
  int64_t step_size = 200;
  float init_scale = 1.0f;
  float max_scale = 10000.0f;
  float amplitude = 0.1f;
};

struct SegmentConfig {
  bool has_init = false;
  bool has_opt = false;
  bool has_comp = false;
  InitializerConfig init;
  OptimizerConfig opt;
  CompressorConfig comp;
  int dim_size = 0;
};

struct EntryConfig {
  enum EntryType { kUnknown = 0, kTraining = 1, kServing = 2 };
  std::vector<SegmentConfig> segments;
  EntryType entry_type = kTraining;
};

struct SlotExpireTimeConfig {
  std::unordered_map<uint32_t, uint32_t> slot_expire_days;
  uint32_t default_expire_days = 36500;

  int64_t ExpireSeconds(int64_t id) const;
  // Expired <=> max_update_ts - entry_ts >= expire_days(slot_v2(id)) * 86400.
  bool IsExpired(int64_t id, int64_t entry_ts, int64_t max_update_ts) const {
    return max_update_ts - entry_ts >= ExpireSeconds(id);
  }
};

// Admission thresholds of the hash filters (embedding_hash_table.proto).
struct SlotOccurrenceThresholdConfig {
  std::unordered_map<uint32_t, uint32_t> slot_thresholds;
  uint32_t default_threshold = 0;

  uint32_t Threshold(int64_t id) const;
};

struct TableConfig {
  enum StorageType { kPacked = 1, kRaw = 2 };
  EntryConfig entry_config;
  uint64_t initial_capacity = 1;
  SlotExpireTimeConfig slot_expire_time_config;
  bool has_cuckoo = false;
  StorageType storage_type = kPacked;
  bool enable_feature_eviction = false;
  int32_t feature_evict_every_n_hours = 240;
  bool skip_zero_embedding = false;
};

inline int64_t SlotV1(int64_t id) { return static_cast<int64_t>(static_cast<uint64_t>(id) >> 54); }
inline int64_t SlotV2(int64_t id) {
  return static_cast<int64_t>((static_cast<uint64_t>(id) >> 48) & 0x7FFF);
}

// An OptimizerConfig of `type` with optimizer.proto's defaults.
OptimizerConfig OptimizerDefaults(OptimizerConfig::Type type);

// Decoders; throw std::invalid_argument naming the message on malformed bytes.
TableConfig ParseTableConfig(std::string_view bytes);
EntryConfig ParseEntryConfig(std::string_view bytes);
SlotExpireTimeConfig ParseSlotExpireTimeConfig(std::string_view bytes);
SlotOccurrenceThresholdConfig ParseSlotOccurrenceThresholdConfig(std::string_view bytes);

// Short human-readable description (used in error messages where upstream prints the proto).
std::string ShortDebugString(const OptimizerConfig& c);
std::string ShortDebugString(const InitializerConfig& c);
std::string ShortDebugString(const EntryConfig& c);

}  // namespace hash_table
}  // namespace monolith

#endif  // MONOLITH_NATIVE_TRAINING_RUNTIME_HASH_TABLE_CONFIG_H_
