// Wire encoding of monolith.hash_table.EntryDump records written by entry-dump files.
//
// Kernels do not link generated C++ protobuf code (TF's bundled protobuf runtime and our protoc
// differ), so this tiny message is encoded by hand; tests pin the bytes.
#ifndef MONOLITH_NATIVE_TRAINING_RUNTIME_COMMON_ENTRY_DUMP_H_
#define MONOLITH_NATIVE_TRAINING_RUNTIME_COMMON_ENTRY_DUMP_H_

#include <cstddef>
#include <cstdint>
#include <string>

namespace monolith {

// Appends EntryDump{id = id, num = [bias, embedding[0..dim)]} to `out`: field 1 as sfixed64,
// field 2 as proto2's default unpacked repeated float (tag 0x15 before every value).
void AppendEntryDump(int64_t id, float bias, const float* embedding, size_t dim, std::string* out);

}  // namespace monolith

#endif  // MONOLITH_NATIVE_TRAINING_RUNTIME_COMMON_ENTRY_DUMP_H_
