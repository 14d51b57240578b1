#include "monolith/native_training/runtime/ops/hash_table_resources.h"

#include <algorithm>
#include <cctype>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/platform/errors.h"

namespace tensorflow {
namespace monolith_tf {

Status CheckScalar(const Tensor& t, const char* name) {
  if (t.NumElements() != 1) {
    return errors::InvalidArgument(name, " must be a scalar, got shape ", t.shape().DebugString());
  }
  return OkStatus();
}

std::string ShardFileName(const std::string& basename, int shard, int nshards) {
  return absl::StrFormat("%s-%05d-of-%05d", basename, shard, nshards);
}

Status ValidateShardedFiles(const std::string& basename, const std::vector<std::string>& files,
                            int* nshards) {
  std::vector<bool> seen;
  int n = -1;
  for (const std::string& f : files) {
    if (!absl::StartsWith(f, basename)) {
      return errors::InvalidArgument("Filename ", f, " doesn't belong to ", basename);
    }
    const std::string suffix = f.substr(basename.size());
    // Exactly "-DDDDD-of-DDDDD".
    if (suffix.size() != 15 || suffix[0] != '-' || suffix.substr(6, 4) != "-of-") continue;
    int shard, total;
    if (!absl::SimpleAtoi(suffix.substr(1, 5), &shard) ||
        !absl::SimpleAtoi(suffix.substr(10, 5), &total) ||
        !std::all_of(suffix.begin() + 1, suffix.begin() + 6, ::isdigit) ||
        !std::all_of(suffix.begin() + 10, suffix.end(), ::isdigit)) {
      continue;
    }
    if (n < 0) {
      n = total;
      seen.assign(n, false);
    } else if (total != n) {
      return errors::InvalidArgument("Filename ", f, " doesn't match nshards. ", n);
    }
    if (shard >= n) return errors::InvalidArgument("Shard ", shard, "exceeds ", n, " for ", f);
    seen[shard] = true;
  }
  if (n <= 0) return errors::InvalidArgument("There is no valid sharded files for ", basename);
  for (int i = 0; i < n; ++i) {
    if (!seen[i]) return errors::InvalidArgument("Shard ", i, " doesn't show up for ", basename);
  }
  *nshards = n;
  return OkStatus();
}

}  // namespace monolith_tf
}  // namespace tensorflow
