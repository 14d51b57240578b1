// Interprets an entry's bytes (native_ops.md §1.6). TRAINING entries:
// [dim float32 embedding, segments in order][optimizer state of segment 1]...[segment k];
// SERVING entries: the compressed embedding only.
#ifndef MONOLITH_NATIVE_TRAINING_RUNTIME_HASH_TABLE_ENTRY_ACCESSOR_H_
#define MONOLITH_NATIVE_TRAINING_RUNTIME_HASH_TABLE_ENTRY_ACCESSOR_H_

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "monolith/native_training/runtime/hash_table/config.h"
#include "monolith/native_training/runtime/common/entry_dump.h"
#include "monolith/native_training/runtime/hash_table/optimizer.h"

namespace monolith {
namespace hash_table {

class EntryAccessor {
 public:
  // Throws std::invalid_argument with upstream's messages for inconsistent configs.
  explicit EntryAccessor(const EntryConfig& config);
  ~EntryAccessor();

  bool serving() const { return serving_; }
  int dim() const { return dim_; }
  int64_t SizeBytes() const { return size_bytes_; }
  // Bytes an entry would need stored as plain float32 (for DebugString's uncompressed memory).
  int64_t UncompressedSizeBytes() const { return uncompressed_size_bytes_; }
  // Number of learning rates Optimize consumes (one per segment). Throws for serving entries.
  int SliceSize() const;

  void Init(void* entry) const;
  // Inline for the common plain embedding (training, no retriever that transforms it): one
  // memcpy per looked-up row instead of a call and per-segment virtual calls.
  void Fill(const void* entry, float* out) const {
    if (plain_embedding_) {
      std::memcpy(out, entry, sizeof(float) * dim_);
    } else {
      FillSegments(entry, out);
    }
  }
  void Assign(void* entry, const float* values) const;
  void AssignAdd(void* entry, const float* values) const;
  // `lrs` holds SliceSize() floats. Throws for serving entries.
  void Optimize(void* entry, const float* grad, const float* lrs, int64_t global_step) const;
  // Fills num, opt and last_update_ts_sec (not id). Throws for serving entries.
  void Save(const void* entry, int64_t timestamp, EntryDump* dump) const;
  // Empty when `dump` fits this accessor's dim and optimizers, else what does not match.
  std::string Validate(const EntryDump& dump) const;
  // Requires Validate(dump) to be empty.
  void Restore(void* entry, const EntryDump& dump) const;
  std::string DebugString() const;

 private:
  struct Segment;

  void FillSegments(const void* entry, float* out) const;

  bool serving_ = false;
  int dim_ = 0;
  int64_t size_bytes_ = 0;
  int64_t uncompressed_size_bytes_ = 0;
  int num_opt_dumps_ = 0;
  bool needs_grad_copy_ = false;
  bool plain_embedding_ = false;
  std::vector<std::unique_ptr<Segment>> segments_;
  std::string debug_;
};

}  // namespace hash_table
}  // namespace monolith

#endif  // MONOLITH_NATIVE_TRAINING_RUNTIME_HASH_TABLE_ENTRY_ACCESSOR_H_
