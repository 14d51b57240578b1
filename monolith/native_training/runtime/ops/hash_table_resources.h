// What the hash-table and hash-filter kernels share: the filter resource (a named-namespace type,
// so that both kernel files resolve the same resource type) and the sharded file naming of
// table and filter dumps (native_ops.md §1.10, §1.13).
#ifndef MONOLITH_NATIVE_TRAINING_RUNTIME_OPS_HASH_TABLE_RESOURCES_H_
#define MONOLITH_NATIVE_TRAINING_RUNTIME_OPS_HASH_TABLE_RESOURCES_H_

#include <memory>
#include <string>
#include <vector>

#include "monolith/native_training/runtime/hash_table/hash_filter.h"
#include "tensorflow/core/framework/resource_mgr.h"
#include "tensorflow/core/framework/tensor.h"
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
