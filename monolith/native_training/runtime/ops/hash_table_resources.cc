#include "monolith/native_training/runtime/ops/hash_table_resources.h"

#include <algorithm>
#include <cctype>
#include <unordered_map>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "tensorflow/core/lib/io/path.h"
#include "tensorflow/core/lib/io/record_reader.h"
#include "tensorflow/core/platform/env.h"
#include "tensorflow/core/platform/random.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/platform/errors.h"

namespace tensorflow {
namespace monolith_tf {

namespace ht = ::monolith::hash_table;

void AssignRows(HashTableResource* table, const int64_t* id, int64_t n, const float* values,
                int64_t req_time) {
  ht::EmbeddingHashTable* t = table->table();
  const int64_t dim = t->DimSize();
  if (!table->MayFilter()) {
    t->Assign(id, n, values, req_time);
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
    if (table->Filtered(id[i], 1)) continue;
    t->Assign(id + i, 1, values + i * dim, req_time);
  }
}

void AssignAddRows(HashTableResource* table, const int64_t* id, int64_t n, const float* values,
                   int64_t req_time) {
  const int64_t dim = table->table()->DimSize();
  for (int64_t i = 0; i < n; ++i) {
    if (table->Filtered(id[i], 1)) continue;
    table->table()->AssignAdd(id[i], values + i * dim, req_time);
  }
}

void ApplyGradients(HashTableResource* table, const int64_t* id, const float* g, int64_t n,
                    const float* lr, int64_t req_time, int64_t global_step, bool dedup) {
  ht::EmbeddingHashTable* t = table->table();
  const int64_t dim = t->DimSize();
  if (!dedup) {
    if (!table->MayFilter()) {
      t->BatchOptimize(id, n, g, lr, req_time, global_step);
      return;
    }
    for (int64_t i = 0; i < n; ++i) {
      if (table->Filtered(id[i], 1)) continue;
      t->Optimize(id[i], g + i * dim, lr, req_time, global_step);
    }
    t->RaiseMaxUpdateTs(req_time);
    return;
  }
  // Sum duplicates (first-occurrence order) and apply each id once.
  std::unordered_map<int64_t, int64_t> slot;
  std::vector<int64_t> uniq, counts;
  std::vector<float> sums;
  for (int64_t i = 0; i < n; ++i) {
    auto it = slot.emplace(id[i], static_cast<int64_t>(uniq.size()));
    if (it.second) {
      uniq.push_back(id[i]);
      counts.push_back(0);
      sums.insert(sums.end(), g + i * dim, g + (i + 1) * dim);
    } else {
      float* s = sums.data() + it.first->second * dim;
      for (int64_t k = 0; k < dim; ++k) s[k] += g[i * dim + k];
    }
    ++counts[it.first->second];
  }
  for (size_t u = 0; u < uniq.size(); ++u) {
    if (table->Filtered(uniq[u], counts[u])) continue;
    t->Optimize(uniq[u], sums.data() + u * dim, lr, req_time, global_step);
  }
  t->RaiseMaxUpdateTs(req_time);
}

int AutoShards(int requested, int64_t entries) {
  if (requested > 0) return requested;
  return static_cast<int>(std::min<int64_t>(4, std::max<int64_t>(1, entries / 1000000)));
}

Status ParseExpireConfig(const std::string& bytes, ht::SlotExpireTimeConfig* out) {
  Status s = Guard([&] { *out = ht::ParseSlotExpireTimeConfig(bytes); });
  if (s.ok()) return s;
  return errors::InvalidArgument(
      "Unable to parse config. Make sure it is serialized version of SlotExpireTimeConfig. (",
      s.message(), ")");
}

Status CreateParentDir(const std::string& path) {
  const std::string dir(io::Dirname(path));
  if (dir.empty()) return OkStatus();
  Status s = Env::Default()->RecursivelyCreateDir(dir);
  return errors::IsAlreadyExists(s) ? OkStatus() : s;
}

Status WriteRecordFileAtomically(const std::string& path, const std::string& compression,
                                 const std::function<Status(io::RecordWriter*)>& write) {
  Env* env = Env::Default();
  const std::string tmp_name = absl::StrCat(path, "-tmp-", random::New64());
  std::unique_ptr<WritableFile> file;
  TF_RETURN_IF_ERROR(env->NewWritableFile(tmp_name, &file));
  {
    io::RecordWriter writer(file.get(),
                            io::RecordWriterOptions::CreateRecordWriterOptions(compression));
    TF_RETURN_IF_ERROR(write(&writer));
    TF_RETURN_IF_ERROR(writer.Close());
  }
  TF_RETURN_IF_ERROR(file->Close());
  return env->RenameFile(tmp_name, path);
}

Status ReadRecordFile(const std::string& path, const std::string& compression,
                      const std::function<Status(const tstring&)>& fn) {
  std::unique_ptr<RandomAccessFile> file;
  TF_RETURN_IF_ERROR(Env::Default()->NewRandomAccessFile(path, &file));
  io::RecordReaderOptions options = io::RecordReaderOptions::CreateRecordReaderOptions(compression);
  options.buffer_size = 10 << 20;  // dumps are read start to end: large sequential reads
  io::RecordReader reader(file.get(), options);
  uint64_t offset = 0;
  tstring record;
  for (;;) {
    Status s = reader.ReadRecord(&offset, &record);
    if (errors::IsOutOfRange(s)) return OkStatus();
    TF_RETURN_IF_ERROR(s);
    TF_RETURN_IF_ERROR(fn(record));
  }
}

Status ParseEntryDump(const tstring& record, const std::string& path, ::monolith::EntryDump* out) {
  try {
    *out = ::monolith::EntryDump::Parse(std::string_view(record.data(), record.size()));
  } catch (const std::exception& e) {
    return errors::FailedPrecondition("Unable to parse data. Data might be corrupted (", path,
                                      ": ", e.what(), ")");
  }
  return OkStatus();
}

Status WriteTableShard(ht::EmbeddingHashTable* table, const ht::SlotExpireTimeConfig& expire,
                       int shard, int nshards, io::RecordWriter* writer, uint64_t* written) {
  const int64_t max_ts = table->max_update_ts_sec();
  Status status;
  std::string record;
  ht::DumpIterator it;
  TF_RETURN_IF_ERROR(Guard(
      [&] {
        table->Save({shard, nshards}, [&](::monolith::EntryDump&& dump) {
          if (expire.IsExpired(dump.id, dump.last_update_ts_sec, max_ts)) return true;
          record.clear();
          dump.SerializeTo(&record);
          status = writer->WriteRecord(record);
          if (written != nullptr) ++*written;
          return status.ok();
        }, &it);
      },
      absl::StatusCode::kResourceExhausted));
  return status;
}

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
