#include "monolith/native_training/runtime/common/entry_dump.h"

#include <cstring>

namespace monolith {
namespace {

constexpr char kIdTag = 0x09;   // field 1, wire type 1 (64-bit)
constexpr char kNumTag = 0x15;  // field 2, wire type 5 (32-bit)

template <typename T>
void AppendLittleEndian(T value, std::string* out) {
  static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "protobuf fixed fields are little-endian");
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));
  out->append(bytes, sizeof(T));
}

}  // namespace

void AppendEntryDump(int64_t id, float bias, const float* embedding, size_t dim, std::string* out) {
  out->reserve(out->size() + 9 + 5 * (dim + 1));
  out->push_back(kIdTag);
  AppendLittleEndian(id, out);
  out->push_back(kNumTag);
  AppendLittleEndian(bias, out);
  for (size_t i = 0; i < dim; ++i) {
    out->push_back(kNumTag);
    AppendLittleEndian(embedding[i], out);
  }
}

}  // namespace monolith
