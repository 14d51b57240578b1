// monolith.hash_table.EntryDump (embedding_hash_table.proto): the record of entry-dump files,
// hash-table checkpoints and the lookup_entry / save_as_tensor outputs.
//
// Kernels do not link generated C++ protobuf code (TF's bundled protobuf runtime and our protoc
// differ), so the message is encoded by hand (common/wire.h); tests pin the bytes.
#ifndef MONOLITH_NATIVE_TRAINING_RUNTIME_COMMON_ENTRY_DUMP_H_
#define MONOLITH_NATIVE_TRAINING_RUNTIME_COMMON_ENTRY_DUMP_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace monolith {

// Appends EntryDump{id = id, num = [bias, embedding[0..dim)]} to `out`: field 1 as sfixed64,
// field 2 as proto2's default unpacked repeated float (tag 0x15 before every value).
void AppendEntryDump(int64_t id, float bias, const float* embedding, size_t dim, std::string* out);

// One SingleOptimizerDump. `type` is its oneof field number (adagrad = 1, sgd = 2, ...). All
// dump messages consist of float fields (repeated or scalar: identical unpacked wire encoding)
// and int64 fields, so a field-number keyed representation covers every optimizer.
struct OptimizerDumpItem {
  int type = 0;
  std::vector<std::pair<int, std::vector<float>>> floats;
  std::vector<std::pair<int, int64_t>> ints;

  std::vector<float>* MutableFloats(int field);
  const std::vector<float>* Floats(int field) const;  // nullptr when absent
  void SetInt(int field, int64_t v);
  int64_t Int(int field) const;  // 0 when absent
};

struct EntryDump {
  bool has_id = false;
  int64_t id = 0;
  std::vector<float> num;
  bool has_opt = false;
  std::vector<OptimizerDumpItem> opt;
  bool has_last_update_ts_sec = false;
  int64_t last_update_ts_sec = 0;

  // Serializes in field-number order, byte-identical to the python protobuf encoder.
  std::string Serialize() const;
  void SerializeTo(std::string* out) const;
  // Throws std::invalid_argument on malformed bytes.
  static EntryDump Parse(std::string_view bytes);
};

// The `id` of a serialized EntryDump: decodes leniently, returning the id parsed before any
// malformed byte (0 if none) and setting *ok to whether the whole record decoded.
int64_t ExtractIdFromEntryDump(std::string_view bytes, bool* ok);

}  // namespace monolith

#endif  // MONOLITH_NATIVE_TRAINING_RUNTIME_COMMON_ENTRY_DUMP_H_
