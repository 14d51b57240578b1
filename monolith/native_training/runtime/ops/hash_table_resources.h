// What the hash-table, multi-hash-table and hash-filter kernels share: the table and filter
// resources (named-namespace types, so that every kernel file resolves the same resource type),
// the filter-aware row updates, and the sharded file naming of dumps (native_ops.md §1.10-§1.15).
#ifndef MONOLITH_NATIVE_TRAINING_RUNTIME_OPS_HASH_TABLE_RESOURCES_H_
#define MONOLITH_NATIVE_TRAINING_RUNTIME_OPS_HASH_TABLE_RESOURCES_H_

#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "monolith/native_training/runtime/hash_table/embedding_hash_table.h"
#include "monolith/native_training/runtime/hash_table/hash_filter.h"
#include "tensorflow/core/framework/resource_mgr.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/lib/io/record_writer.h"
#include "tensorflow/core/platform/status.h"

namespace tensorflow {
namespace monolith_tf {

class HashFilterResource : public ResourceBase {
 public:
  explicit HashFilterResource(std::unique_ptr<::monolith::hash_table::HashFilter> filter,
                              std::string kind)
      : filter_(std::move(filter)), kind_(std::move(kind)) {}
  ::monolith::hash_table::HashFilter* filter() { return filter_.get(); }
  std::string DebugString() const override { return kind_; }

 private:
  std::unique_ptr<::monolith::hash_table::HashFilter> filter_;
  std::string kind_;
};

class HashTableResource : public ResourceBase {
 public:
  HashTableResource(std::string name, std::unique_ptr<::monolith::hash_table::EmbeddingHashTable> table,
                    core::RefCountPtr<HashFilterResource> filter)
      : name_(std::move(name)),
        table_(std::move(table)),
        filter_(std::move(filter)),
        admits_everything_(filter_->filter()->AdmitsEverything()) {}

  const std::string& name() const { return name_; }
  ::monolith::hash_table::EmbeddingHashTable* table() { return table_.get(); }
  // True when `id` is new to the table and the filter rejects `count` more occurrences of it.
  bool Filtered(int64_t id, int64_t count) {
    return !admits_everything_ && !table_->Contains(id) &&
           filter_->filter()->ShouldBeFiltered(id, count);
  }
  bool MayFilter() const { return !admits_everything_; }
  std::string DebugString() const override { return table_->DebugString(); }
  int64_t MemoryUsed() const override { return table_->MemoryBytes(); }

 private:
  std::string name_;
  std::unique_ptr<::monolith::hash_table::EmbeddingHashTable> table_;
  core::RefCountPtr<HashFilterResource> filter_;
  const bool admits_everything_;
};

// Runs `fn` converting core exceptions to op errors (native_ops.md §0.5).
template <typename Fn>
Status Guard(Fn&& fn, absl::StatusCode code = absl::StatusCode::kInvalidArgument) {
  try {
    fn();
  } catch (const std::exception& e) {
    return Status(code, e.what());
  }
  return OkStatus();
}

// Filter-aware writes shared by the single- and multi-table ops; rows are `dim` floats each.
// Ids new to the table are admitted only once the filter passes them (native_ops.md §1.10).
void AssignRows(HashTableResource* table, const int64_t* id, int64_t n, const float* values,
                int64_t req_time);
void AssignAddRows(HashTableResource* table, const int64_t* id, int64_t n, const float* values,
                   int64_t req_time);
// With `dedup`, duplicate ids' gradients are summed and applied once (the filter then counts
// every occurrence); lr holds one learning rate per slice.
void ApplyGradients(HashTableResource* table, const int64_t* id, const float* g, int64_t n,
                    const float* lr, int64_t req_time, int64_t global_step, bool dedup);

// Shard count of a save: `requested` when > 0, else from the entry count (upstream's auto mode;
// 0 hung upstream, Quirk Q12, and means auto here).
int AutoShards(int requested, int64_t entries);

// Parses a serialized SlotExpireTimeConfig attr with upstream's error text.
Status ParseExpireConfig(const std::string& bytes,
                         ::monolith::hash_table::SlotExpireTimeConfig* out);

// Creates the directory `path` will live in (fine when it exists).
Status CreateParentDir(const std::string& path);

// Writes `path` as a TFRecord stream (compression "" or "SNAPPY") under a temporary name and
// renames it once complete, so a failed save never leaves a partial file behind.
Status WriteRecordFileAtomically(const std::string& path, const std::string& compression,
                                 const std::function<Status(io::RecordWriter*)>& write);

// Calls fn(record) for every record of the TFRecord file `path` (compression "" or "SNAPPY").
Status ReadRecordFile(const std::string& path, const std::string& compression,
                      const std::function<Status(const tstring&)>& fn);

// Parses one EntryDump record of `path`; FailedPrecondition naming the file when corrupt.
Status ParseEntryDump(const tstring& record, const std::string& path, ::monolith::EntryDump* out);

// Writes shard `shard` of `nshards` of a table's entries (EntryDump records, expired ones
// skipped) to `writer`, adding the count to *written when given. Hold the table's LockAll.
Status WriteTableShard(::monolith::hash_table::EmbeddingHashTable* table,
                       const ::monolith::hash_table::SlotExpireTimeConfig& expire, int shard,
                       int nshards, io::RecordWriter* writer, uint64_t* written);

// An InvalidArgument naming `name` unless `t` holds exactly one element.
Status CheckScalar(const Tensor& t, const char* name);

// "<basename>-<shard, 5 digits>-of-<nshards, 5 digits>".
std::string ShardFileName(const std::string& basename, int shard, int nshards);

// Checks that `files` are exactly the shards basename-00000-of-N ... basename-(N-1)-of-N;
// names with another suffix (e.g. -tmp- leftovers) are ignored. Returns N in *nshards.
Status ValidateShardedFiles(const std::string& basename, const std::vector<std::string>& files,
                            int* nshards);

}  // namespace monolith_tf
}  // namespace tensorflow

#endif  // MONOLITH_NATIVE_TRAINING_RUNTIME_OPS_HASH_TABLE_RESOURCES_H_
