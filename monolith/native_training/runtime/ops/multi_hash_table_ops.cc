// The multi hash table (native_ops.md §1.15): several named collisionless tables behind one
// resource, so that a model with many tables on a PS runs one op per step instead of one per
// table. Ids and values of all tables travel concatenated in the resource's table order with row
// splits. The config (MultiEmbeddingHashTableConfig) is decoded by hand like every other config
// here (common/wire.h): no generated C++ protobuf code is linked.
#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "monolith/native_training/runtime/common/entry_dump.h"
#include "monolith/native_training/runtime/common/wire.h"
#include "monolith/native_training/runtime/hash_table/config.h"
#include "monolith/native_training/runtime/hash_table/embedding_hash_table.h"
#include "monolith/native_training/runtime/ops/hash_table_resources.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/resource_mgr.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/lib/io/record_writer.h"
#include "tensorflow/core/platform/env.h"
#include "tensorflow/core/util/work_sharder.h"

namespace tensorflow {
namespace monolith_tf {
namespace {

namespace ht = ::monolith::hash_table;
using ::monolith::EntryDump;
using shape_inference::InferenceContext;

class MultiHashTableResource : public ResourceBase {
 public:
  // One sub-table per name, in the given order (the order of every concatenated input).
  MultiHashTableResource(std::vector<std::string> names,
                         std::vector<core::RefCountPtr<HashTableResource>> tables)
      : names_(std::move(names)), tables_(std::move(tables)) {
    for (size_t i = 0; i < names_.size(); ++i) index_[names_[i]] = static_cast<int>(i);
  }

  int size() const { return static_cast<int>(tables_.size()); }
  const std::string& name(int i) const { return names_[i]; }
  HashTableResource* table(int i) { return tables_[i].get(); }
  // -1 when absent.
  int IndexOf(const std::string& name) const {
    auto it = index_.find(name);
    return it == index_.end() ? -1 : it->second;
  }

  std::string DebugString() const override {
    return absl::StrCat("MultiHashTable of ", tables_.size(), " tables");
  }
  int64_t MemoryUsed() const override {
    int64_t bytes = 0;
    for (const auto& t : tables_) bytes += t->MemoryUsed();
    return bytes;
  }

 private:
  std::vector<std::string> names_;
  std::vector<core::RefCountPtr<HashTableResource>> tables_;
  std::unordered_map<std::string, int> index_;
};

struct MultiTableConfig {
  std::vector<std::string> names;
  std::vector<ht::TableConfig> configs;
};

MultiTableConfig ParseMultiTableConfig(std::string_view bytes) {
  MultiTableConfig out;
  ::monolith::wire::Reader r(bytes, "MultiEmbeddingHashTableConfig");
  int field, wire_type;
  while (r.Next(&field, &wire_type)) {
    if (field == 1) {
      out.names.emplace_back(r.ReadBytesField(wire_type));
    } else if (field == 2) {
      out.configs.push_back(ht::ParseTableConfig(r.ReadBytesField(wire_type)));
    } else {
      r.Skip(wire_type);
    }
  }
  return out;
}

class CreateMultiHashTableOp : public OpKernel {
 public:
  explicit CreateMultiHashTableOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    std::string config;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("config", &config));
    Status s = Guard([&] { config_ = ParseMultiTableConfig(config); });
    OP_REQUIRES(ctx, s.ok(),
                errors::InvalidArgument("Unable to parse config. (", s.message(), ")"));
    OP_REQUIRES(ctx, config_.names.size() == config_.configs.size(),
                errors::InvalidArgument("MultiEmbeddingHashTableConfig has ",
                                        config_.names.size(), " names but ",
                                        config_.configs.size(), " configs"));
    std::vector<std::string> sorted = config_.names;
    std::sort(sorted.begin(), sorted.end());
    OP_REQUIRES(ctx, std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end(),
                errors::InvalidArgument("MultiEmbeddingHashTableConfig names a table twice"));
  }

  void Compute(OpKernelContext* ctx) override {
    {
      mutex_lock l(mu_);
      if (!created_) {
        OP_REQUIRES_OK(ctx, cinfo_.Init(ctx->resource_manager(), def()));
        core::RefCountPtr<HashFilterResource> filter;
        OP_REQUIRES_OK(ctx, LookupResource(ctx, HandleFromInput(ctx, 0), &filter));
        MultiHashTableResource* mtable = nullptr;
        OP_REQUIRES_OK(ctx, cinfo_.resource_manager()->LookupOrCreate<MultiHashTableResource>(
                                cinfo_.container(), cinfo_.name(), &mtable,
                                [&](MultiHashTableResource** out) {
                                  return Create(filter.get(), out);
                                }));
        mtable->Unref();
        created_ = true;
      }
    }
    Tensor* handle;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({}), &handle));
    handle->scalar<ResourceHandle>()() =
        MakeResourceHandle<MultiHashTableResource>(ctx, cinfo_.container(), cinfo_.name());
  }

 private:
  Status Create(HashFilterResource* filter, MultiHashTableResource** out) {
    std::vector<core::RefCountPtr<HashTableResource>> tables;
    for (size_t i = 0; i < config_.names.size(); ++i) {
      std::unique_ptr<ht::EmbeddingHashTable> t;
      TF_RETURN_IF_ERROR(Guard([&] {
        t = std::make_unique<ht::EmbeddingHashTable>(config_.configs[i]);
      }));
      filter->Ref();  // each sub-table holds its own reference to the shared filter
      tables.emplace_back(new HashTableResource(config_.names[i], std::move(t),
                                                core::RefCountPtr<HashFilterResource>(filter)));
    }
    *out = new MultiHashTableResource(config_.names, std::move(tables));
    return OkStatus();
  }

  MultiTableConfig config_;
  mutex mu_;
  ContainerInfo cinfo_ TF_GUARDED_BY(mu_);
  bool created_ TF_GUARDED_BY(mu_) = false;
};

// A handle by shared name, without creating the resource (native_ops.md §1.15).
class ReadMultiHashTableOp : public OpKernel {
 public:
  explicit ReadMultiHashTableOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("container", &container_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("shared_name", &shared_name_));
  }

  void Compute(OpKernelContext* ctx) override {
    Tensor* handle;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({}), &handle));
    const std::string container =
        container_.empty() ? ctx->resource_manager()->default_container() : container_;
    handle->scalar<ResourceHandle>()() =
        MakeResourceHandle<MultiHashTableResource>(ctx, container, shared_name_);
  }

 private:
  std::string container_;
  std::string shared_name_;
};

class IsHashTableInitializedOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  void Compute(OpKernelContext* ctx) override {
    core::RefCountPtr<MultiHashTableResource> mtable;
    const bool exists = LookupResource(ctx, HandleFromInput(ctx, 0), &mtable).ok();
    Tensor* out;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({}), &out));
    out->scalar<bool>()() = exists;
  }
};

// Base of the kernels whose inputs start (mtable, id, id_split): resolves the resource and
// checks the row splits, which must cut `id` into one run per table.
class MultiTableOpKernel : public OpKernel {
 public:
  using OpKernel::OpKernel;

  void Compute(OpKernelContext* ctx) final {
    core::RefCountPtr<MultiHashTableResource> mtable;
    OP_REQUIRES_OK(ctx, LookupResource(ctx, HandleFromInput(ctx, 0), &mtable));
    const Tensor& ids = ctx->input(1);
    const Tensor& split = ctx->input(2);
    const int64_t n = ids.NumElements();
    OP_REQUIRES(ctx, split.NumElements() == mtable->size() + 1,
                errors::InvalidArgument("id_split must hold num_tables + 1 = ",
                                        mtable->size() + 1, " row splits, got shape ",
                                        split.shape().DebugString()));
    const auto s = split.flat<int64_t>();
    OP_REQUIRES(ctx, s(0) == 0 && s(mtable->size()) == n,
                errors::InvalidArgument("id_split must start at 0 and end at the id count ", n,
                                        ", got ", s(0), " .. ", s(mtable->size())));
    for (int t = 0; t < mtable->size(); ++t) {
      OP_REQUIRES(ctx, s(t) <= s(t + 1),
                  errors::InvalidArgument("id_split must be non-decreasing, got ", s(t),
                                          " then ", s(t + 1), " at table ", mtable->name(t)));
    }
    Rows rows{ids.flat<int64_t>().data(), s.data()};
    ComputeWithTables(ctx, mtable.get(), rows);
  }

 protected:
  struct Rows {
    const int64_t* id;
    const int64_t* split;
    int64_t begin(int t) const { return split[t]; }
    int64_t count(int t) const { return split[t + 1] - split[t]; }
  };

  // Offsets of each table's rows in a concatenated float tensor (row t holds count(t) * dim(t)
  // floats); the last entry is the total.
  static std::vector<int64_t> ValueOffsets(MultiHashTableResource* m, const Rows& rows) {
    std::vector<int64_t> off(m->size() + 1, 0);
    for (int t = 0; t < m->size(); ++t) {
      off[t + 1] = off[t] + rows.count(t) * m->table(t)->table()->DimSize();
    }
    return off;
  }

  // Runs fn(t) for every table on the CPU worker pool (tables are independent); first error wins.
  static Status ForEachTable(OpKernelContext* ctx, MultiHashTableResource* m, const Rows& rows,
                             const std::function<void(int)>& fn) {
    mutex mu;
    Status status;
    auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
    const int64_t avg_rows = m->size() == 0 ? 0 : rows.split[m->size()] / m->size();
    Shard(workers->num_threads, workers->workers, m->size(), 1000 + 100 * avg_rows,
          [&](int64_t begin, int64_t end) {
            for (int64_t t = begin; t < end; ++t) {
              Status s = Guard([&] { fn(static_cast<int>(t)); });
              if (!s.ok()) {
                mutex_lock l(mu);
                status.Update(s);
              }
            }
          });
    return status;
  }

  virtual void ComputeWithTables(OpKernelContext* ctx, MultiHashTableResource* m,
                                 const Rows& rows) = 0;
};

class MultiHashTableLookupOp : public MultiTableOpKernel {
 public:
  using MultiTableOpKernel::MultiTableOpKernel;

  void ComputeWithTables(OpKernelContext* ctx, MultiHashTableResource* m,
                         const Rows& rows) override {
    const std::vector<int64_t> off = ValueOffsets(m, rows);
    Tensor* out;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({off.back()}), &out));
    float* emb = out->flat<float>().data();
    OP_REQUIRES_OK(ctx, ForEachTable(ctx, m, rows, [&](int t) {
                     m->table(t)->table()->BatchLookup(rows.id + rows.begin(t), rows.count(t),
                                                       emb + off[t]);
                   }));
  }
};

class MultiHashTableLookupEntryOp : public MultiTableOpKernel {
 public:
  using MultiTableOpKernel::MultiTableOpKernel;

  void ComputeWithTables(OpKernelContext* ctx, MultiHashTableResource* m,
                         const Rows& rows) override {
    Tensor* out;
    OP_REQUIRES_OK(ctx,
                   ctx->allocate_output(0, TensorShape({rows.split[m->size()]}), &out));
    auto entries = out->flat<tstring>();
    OP_REQUIRES_OK(ctx, ForEachTable(ctx, m, rows, [&](int t) {
                     for (int64_t i = rows.begin(t); i < rows.begin(t) + rows.count(t); ++i) {
                       EntryDump dump;
                       if (m->table(t)->table()->LookupEntry(rows.id[i], &dump)) {
                         entries(i) = dump.Serialize();
                       }
                     }
                   }));
  }
};

// (mtable, id, id_split, value, update_time) -> mtable, for assign and assign_add.
template <bool kAdd>
class MultiHashTableAssignOp : public MultiTableOpKernel {
 public:
  using MultiTableOpKernel::MultiTableOpKernel;

  void ComputeWithTables(OpKernelContext* ctx, MultiHashTableResource* m,
                         const Rows& rows) override {
    const Tensor& values = ctx->input(3);
    OP_REQUIRES_OK(ctx, CheckScalar(ctx->input(4), "update_time"));
    const int64_t update_time = ctx->input(4).flat<int64_t>()(0);
    const std::vector<int64_t> off = ValueOffsets(m, rows);
    OP_REQUIRES(ctx, values.NumElements() == off.back(),
                errors::InvalidArgument("value must hold sum(ids of table t * dim of table t) = ",
                                        off.back(), " floats, got shape ",
                                        values.shape().DebugString()));
    const float* v = values.flat<float>().data();
    OP_REQUIRES_OK(ctx, ForEachTable(ctx, m, rows, [&](int t) {
                     const int64_t* id = rows.id + rows.begin(t);
                     if (kAdd) {
                       AssignAddRows(m->table(t), id, rows.count(t), v + off[t], update_time);
                     } else {
                       AssignRows(m->table(t), id, rows.count(t), v + off[t], update_time);
                     }
                   }));
    ctx->set_output(0, ctx->input(0));
  }
};

// (mtable, id, id_split, value, learning_rate, update_time, global_step) -> mtable; learning_rate
// holds every table's per-slice rates, concatenated in table order.
class MultiHashTableOptimizeOp : public MultiTableOpKernel {
 public:
  using MultiTableOpKernel::MultiTableOpKernel;

  void ComputeWithTables(OpKernelContext* ctx, MultiHashTableResource* m,
                         const Rows& rows) override {
    const Tensor& grads = ctx->input(3);
    const Tensor& lrs = ctx->input(4);
    OP_REQUIRES_OK(ctx, CheckScalar(ctx->input(5), "update_time"));
    OP_REQUIRES_OK(ctx, CheckScalar(ctx->input(6), "global_step"));
    const int64_t update_time = ctx->input(5).flat<int64_t>()(0);
    const int64_t global_step = ctx->input(6).flat<int64_t>()(0);
    const std::vector<int64_t> off = ValueOffsets(m, rows);
    OP_REQUIRES(ctx, grads.NumElements() == off.back(),
                errors::InvalidArgument("value must hold sum(ids of table t * dim of table t) = ",
                                        off.back(), " floats, got shape ",
                                        grads.shape().DebugString()));
    std::vector<int64_t> lr_off(m->size() + 1, 0);
    for (int t = 0; t < m->size(); ++t) {
      lr_off[t + 1] = lr_off[t] + m->table(t)->table()->SliceSize();
    }
    OP_REQUIRES(ctx, lrs.NumElements() == lr_off.back(),
                errors::InvalidArgument("learning_rate must hold one rate per slice of every "
                                        "table (",
                                        lr_off.back(), "), got shape ",
                                        lrs.shape().DebugString()));
    const float* g = grads.flat<float>().data();
    const float* lr = lrs.flat<float>().data();
    OP_REQUIRES_OK(ctx, ForEachTable(ctx, m, rows, [&](int t) {
                     ApplyGradients(m->table(t), rows.id + rows.begin(t), g + off[t],
                                    rows.count(t), lr + lr_off[t], update_time, global_step,
                                    /*dedup=*/false);
                   }));
    ctx->set_output(0, ctx->input(0));
  }
};

// (mtable, table_name, id) -> (mtable, status): status per id is 1 when it existed (and was
// re-initialized), 0 when inserted, -1 for every id when the table is unknown.
class MultiHashTableReinitializeOp : public OpKernel {
 public:
  using OpKernel::OpKernel;

  void Compute(OpKernelContext* ctx) override {
    core::RefCountPtr<MultiHashTableResource> m;
    OP_REQUIRES_OK(ctx, LookupResource(ctx, HandleFromInput(ctx, 0), &m));
    OP_REQUIRES_OK(ctx, CheckScalar(ctx->input(1), "table_name"));
    const int t = m->IndexOf(std::string(ctx->input(1).flat<tstring>()(0)));
    const auto ids = ctx->input(2).flat<int64_t>();
    Tensor* status;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({ids.size()}), &status));
    auto st = status->flat<int32_t>();
    for (int64_t i = 0; i < ids.size(); ++i) {
      st(i) = t < 0 ? -1 : (m->table(t)->table()->Reinitialize(ids(i)) ? 1 : 0);
    }
    ctx->set_output(0, ctx->input(0));
  }
};

// ---------------------------------------------------------------------------------------------
// Save / restore: per shard, "<basename>-i-of-n" (Snappy TFRecords of EntryDumps, tables one
// after another) and "<basename>.meta-i-of-n" (plain TFRecords of MultiHashTableMetadata
// {table_name = 1, num_entries = 2}, one per table in the same order).

std::string MetaBasename(const std::string& basename) { return basename + ".meta"; }

// The shard count of a save, from its complete set of meta files.
Status CountMetaShards(const std::string& basename, int* nshards) {
  std::vector<std::string> files;
  TF_RETURN_IF_ERROR(Env::Default()->GetMatchingPaths(MetaBasename(basename) + "-*", &files));
  return ValidateShardedFiles(MetaBasename(basename), files, nshards);
}

std::string EncodeMetadata(const std::string& table_name, uint64_t num_entries) {
  std::string out;
  ::monolith::wire::Writer w(&out);
  w.BytesField(1, table_name);
  w.VarintField(2, num_entries);
  return out;
}

std::pair<std::string, uint64_t> DecodeMetadata(std::string_view bytes) {
  std::pair<std::string, uint64_t> out{"", 0};
  ::monolith::wire::Reader r(bytes, "MultiHashTableMetadata");
  int field, wire_type;
  while (r.Next(&field, &wire_type)) {
    if (field == 1) {
      out.first = std::string(r.ReadBytesField(wire_type));
    } else if (field == 2) {
      out.second = r.ReadVarintField(wire_type);
    } else {
      r.Skip(wire_type);
    }
  }
  return out;
}

Status ReadMetadata(const std::string& path,
                    std::vector<std::pair<std::string, uint64_t>>* out) {
  return ReadRecordFile(path, "", [&](const tstring& record) {
    return Guard([&] { out->push_back(DecodeMetadata(std::string_view(record))); },
                 absl::StatusCode::kFailedPrecondition);
  });
}

class MultiHashTableSaveOp : public OpKernel {
 public:
  explicit MultiHashTableSaveOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("nshards", &nshards_));
    std::string expire;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("slot_expire_time_config", &expire));
    if (expire.empty()) return;  // each table expires entries by its own config
    expire_override_.emplace();
    OP_REQUIRES_OK(ctx, ParseExpireConfig(expire, &*expire_override_));
  }

  void Compute(OpKernelContext* ctx) override {
    core::RefCountPtr<MultiHashTableResource> m;
    OP_REQUIRES_OK(ctx, LookupResource(ctx, HandleFromInput(ctx, 0), &m));
    OP_REQUIRES_OK(ctx, CheckScalar(ctx->input(1), "basename"));
    const std::string basename(ctx->input(1).flat<tstring>()(0));
    OP_REQUIRES_OK(ctx, CreateParentDir(basename));
    int64_t total = 0;
    for (int t = 0; t < m->size(); ++t) total += m->table(t)->table()->Size();
    const int nshards = AutoShards(nshards_, total);
    std::vector<std::unique_ptr<ht::CuckooMap::AllLocked>> locks;
    for (int t = 0; t < m->size(); ++t) locks.push_back(m->table(t)->table()->LockAll());
    for (int i = 0; i < nshards; ++i) {
      std::vector<uint64_t> written(m->size(), 0);
      OP_REQUIRES_OK(ctx, WriteRecordFileAtomically(ShardFileName(basename, i, nshards), "SNAPPY",
                                       [&](io::RecordWriter* writer) {
                                         return WriteShard(m.get(), i, nshards, writer, &written);
                                       }));
      OP_REQUIRES_OK(ctx, WriteRecordFileAtomically(ShardFileName(MetaBasename(basename), i, nshards),
                                       "", [&](io::RecordWriter* writer) {
                                         for (int t = 0; t < m->size(); ++t) {
                                           TF_RETURN_IF_ERROR(writer->WriteRecord(
                                               EncodeMetadata(m->name(t), written[t])));
                                         }
                                         return OkStatus();
                                       }));
    }
    ctx->set_output(0, ctx->input(0));
  }

 private:
  Status WriteShard(MultiHashTableResource* m, int shard, int nshards, io::RecordWriter* writer,
                    std::vector<uint64_t>* written) const {
    for (int t = 0; t < m->size(); ++t) {
      ht::EmbeddingHashTable* table = m->table(t)->table();
      TF_RETURN_IF_ERROR(WriteTableShard(
          table, expire_override_ ? *expire_override_ : table->config().slot_expire_time_config,
          shard, nshards, writer, &(*written)[t]));
    }
    return OkStatus();
  }

  int nshards_;
  std::optional<ht::SlotExpireTimeConfig> expire_override_;
};

// Restores what a save wrote into the tables of the same names; tables absent from the
// checkpoint keep their rows (with a warning), checkpoint tables absent here are skipped, and
// nothing is cleared first (native_ops.md §1.15). Every record is checked against its table
// before any is written, so a mismatched checkpoint leaves every table unchanged.
class MultiHashTableRestoreOp : public OpKernel {
 public:
  using OpKernel::OpKernel;

  void Compute(OpKernelContext* ctx) override {
    core::RefCountPtr<MultiHashTableResource> m;
    OP_REQUIRES_OK(ctx, LookupResource(ctx, HandleFromInput(ctx, 0), &m));
    OP_REQUIRES_OK(ctx, CheckScalar(ctx->input(1), "basename"));
    const std::string basename(ctx->input(1).flat<tstring>()(0));
    int nshards = 0;
    OP_REQUIRES_OK(ctx, CountMetaShards(basename, &nshards));
    std::vector<std::vector<std::pair<std::string, uint64_t>>> metas(nshards);
    std::vector<bool> in_checkpoint(m->size(), false);
    for (int i = 0; i < nshards; ++i) {
      OP_REQUIRES_OK(ctx, ReadMetadata(ShardFileName(MetaBasename(basename), i, nshards),
                                       &metas[i]));
      for (const auto& [name, count] : metas[i]) {
        const int t = m->IndexOf(name);
        if (t >= 0) in_checkpoint[t] = true;
      }
    }
    for (int t = 0; t < m->size(); ++t) {
      if (!in_checkpoint[t]) {
        LOG(WARNING) << "Table " << m->name(t) << " is not in the checkpoint " << basename
                     << "; it keeps its rows.";
      }
    }
    for (bool write : {false, true}) {
      for (int i = 0; i < nshards; ++i) {
        OP_REQUIRES_OK(ctx, ForEachDump(m.get(), ShardFileName(basename, i, nshards), metas[i],
                                        write));
      }
    }
    ctx->set_output(0, ctx->input(0));
  }

 private:
  // Routes the records of one data file to their tables by its metadata: validates them
  // (write = false) or restores them (write = true).
  static Status ForEachDump(MultiHashTableResource* m, const std::string& path,
                            const std::vector<std::pair<std::string, uint64_t>>& meta,
                            bool write) {
    size_t segment = 0;
    uint64_t seen_in_segment = 0;
    TF_RETURN_IF_ERROR(ReadRecordFile(path, "SNAPPY", [&](const tstring& record) {
      while (segment < meta.size() && seen_in_segment == meta[segment].second) {
        ++segment;
        seen_in_segment = 0;
      }
      if (segment == meta.size()) {
        return errors::FailedPrecondition(path, " holds more records than its metadata lists");
      }
      ++seen_in_segment;
      const int t = m->IndexOf(meta[segment].first);
      if (t < 0) return OkStatus();  // a table this graph no longer has
      EntryDump dump;
      TF_RETURN_IF_ERROR(ParseEntryDump(record, path, &dump));
      ht::EmbeddingHashTable* table = m->table(t)->table();
      if (write) {
        return Guard([&] { table->Restore(dump); }, absl::StatusCode::kResourceExhausted);
      }
      const std::string why = table->ValidateDump(dump);
      if (why.empty()) return OkStatus();
      return errors::InvalidArgument("Unable to restore table ", m->name(t), " from ", path, ": ",
                                     why);
    }));
    uint64_t listed = 0, read = seen_in_segment;
    for (size_t s = 0; s < meta.size(); ++s) {
      listed += meta[s].second;
      if (s < segment) read += meta[s].second;
    }
    if (read != listed) {
      return errors::FailedPrecondition(path, " holds ", read, " records but its metadata lists ",
                                        listed, ": the file is truncated");
    }
    return OkStatus();
  }
};

// (basename) -> (features, counts): entries per table name summed over the meta files.
class MultiHashTableFeatureStatOp : public OpKernel {
 public:
  using OpKernel::OpKernel;

  void Compute(OpKernelContext* ctx) override {
    OP_REQUIRES_OK(ctx, CheckScalar(ctx->input(0), "basename"));
    const std::string basename(ctx->input(0).flat<tstring>()(0));
    int nshards = 0;
    OP_REQUIRES_OK(ctx, CountMetaShards(basename, &nshards));
    std::vector<std::string> names;
    std::unordered_map<std::string, uint64_t> counts;
    for (int i = 0; i < nshards; ++i) {
      std::vector<std::pair<std::string, uint64_t>> meta;
      OP_REQUIRES_OK(ctx, ReadMetadata(ShardFileName(MetaBasename(basename), i, nshards), &meta));
      for (const auto& [name, count] : meta) {
        if (counts.emplace(name, 0).second) names.push_back(name);
        counts[name] += count;
      }
    }
    Tensor* features;
    Tensor* out_counts;
    const int64_t k = static_cast<int64_t>(names.size());
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({k}), &features));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({k}), &out_counts));
    for (int64_t i = 0; i < k; ++i) {
      features->flat<tstring>()(i) = names[i];
      out_counts->flat<uint64_t>()(i) = counts[names[i]];
    }
  }
};

REGISTER_OP("CreateMonolithMultiHashTable")
    .Input("filter_handle: resource")
    .Input("sync_client_handle: resource")
    .Output("handle: resource")
    .Attr("config: string")
    .Attr("container: string = ''")
    .Attr("shared_name: string = ''")
    .SetIsStateful()
    .SetShapeFn(shape_inference::ScalarShape);

REGISTER_OP("ReadMonolithMultiHashTable")
    .Output("handle: resource")
    .Attr("container: string = ''")
    .Attr("shared_name: string = ''")
    .SetIsStateful()
    .SetShapeFn(shape_inference::ScalarShape);

REGISTER_OP("IsHashTableInitialized")
    .Input("handle: resource")
    .Output("initialized: bool")
    .SetIsStateful()
    .SetShapeFn(shape_inference::ScalarShape);

REGISTER_OP("MonolithMultiHashTableLookup")
    .Input("mtable: resource")
    .Input("id: int64")
    .Input("id_split: int64")
    .Output("embeddings: float")
    .SetIsStateful()
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->Vector(c->UnknownDim()));
      return OkStatus();
    });

REGISTER_OP("MonolithMultiHashTableLookupEntry")
    .Input("mtable: resource")
    .Input("id: int64")
    .Input("id_split: int64")
    .Output("entries: string")
    .SetIsStateful()
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->Vector(c->NumElements(c->input(1))));
      return OkStatus();
    });

REGISTER_OP("MonolithMultiHashTableAssign")
    .Input("mtable: resource")
    .Input("id: int64")
    .Input("id_split: int64")
    .Input("value: float")
    .Input("update_time: int64")
    .Output("output_mtable: resource")
    .SetIsStateful()
    .SetShapeFn(shape_inference::ScalarShape);

REGISTER_OP("MonolithMultiHashTableAssignAdd")
    .Input("mtable: resource")
    .Input("id: int64")
    .Input("id_split: int64")
    .Input("value: float")
    .Input("update_time: int64")
    .Output("output_mtable: resource")
    .SetIsStateful()
    .SetShapeFn(shape_inference::ScalarShape);

REGISTER_OP("MonolithMultiHashTableOptimize")
    .Input("mtable: resource")
    .Input("id: int64")
    .Input("id_split: int64")
    .Input("value: float")
    .Input("learning_rate: float")
    .Input("update_time: int64")
    .Input("global_step: int64")
    .Output("output_mtable: resource")
    .SetIsStateful()
    .SetShapeFn(shape_inference::ScalarShape);

REGISTER_OP("MonolithMultiHashTableReinitialize")
    .Input("mtable: resource")
    .Input("table_name: string")
    .Input("id: int64")
    .Output("output_mtable: resource")
    .Output("status: int32")
    .SetIsStateful()
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->Scalar());
      c->set_output(1, c->Vector(c->NumElements(c->input(2))));
      return OkStatus();
    });

REGISTER_OP("MonolithMultiHashTableSave")
    .Input("mtable: resource")
    .Input("basename: string")
    .Output("output_mtable: resource")
    .Attr("nshards: int = -1")
    .Attr("slot_expire_time_config: string = ''")
    .SetIsStateful()
    .SetShapeFn(shape_inference::ScalarShape);

REGISTER_OP("MonolithMultiHashTableRestore")
    .Input("mtable: resource")
    .Input("basename: string")
    .Output("output_mtable: resource")
    .SetIsStateful()
    .SetShapeFn(shape_inference::ScalarShape);

REGISTER_OP("MonolithMultiHashTableFeatureStat")
    .Input("basename: string")
    .Output("features: string")
    .Output("counts: uint64")
    .SetIsStateful()
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->Vector(c->UnknownDim()));
      c->set_output(1, c->Vector(c->UnknownDim()));
      return OkStatus();
    });

REGISTER_KERNEL_BUILDER(Name("CreateMonolithMultiHashTable").Device(DEVICE_CPU),
                        CreateMultiHashTableOp);
REGISTER_KERNEL_BUILDER(Name("ReadMonolithMultiHashTable").Device(DEVICE_CPU),
                        ReadMultiHashTableOp);
REGISTER_KERNEL_BUILDER(Name("IsHashTableInitialized").Device(DEVICE_CPU),
                        IsHashTableInitializedOp);
REGISTER_KERNEL_BUILDER(Name("MonolithMultiHashTableLookup").Device(DEVICE_CPU),
                        MultiHashTableLookupOp);
REGISTER_KERNEL_BUILDER(Name("MonolithMultiHashTableLookupEntry").Device(DEVICE_CPU),
                        MultiHashTableLookupEntryOp);
REGISTER_KERNEL_BUILDER(Name("MonolithMultiHashTableAssign").Device(DEVICE_CPU),
                        MultiHashTableAssignOp<false>);
REGISTER_KERNEL_BUILDER(Name("MonolithMultiHashTableAssignAdd").Device(DEVICE_CPU),
                        MultiHashTableAssignOp<true>);
REGISTER_KERNEL_BUILDER(Name("MonolithMultiHashTableOptimize").Device(DEVICE_CPU),
                        MultiHashTableOptimizeOp);
REGISTER_KERNEL_BUILDER(Name("MonolithMultiHashTableReinitialize").Device(DEVICE_CPU),
                        MultiHashTableReinitializeOp);
REGISTER_KERNEL_BUILDER(Name("MonolithMultiHashTableSave").Device(DEVICE_CPU),
                        MultiHashTableSaveOp);
REGISTER_KERNEL_BUILDER(Name("MonolithMultiHashTableRestore").Device(DEVICE_CPU),
                        MultiHashTableRestoreOp);
REGISTER_KERNEL_BUILDER(Name("MonolithMultiHashTableFeatureStat").Device(DEVICE_CPU),
                        MultiHashTableFeatureStatOp);

}  // namespace
}  // namespace monolith_tf
}  // namespace tensorflow
