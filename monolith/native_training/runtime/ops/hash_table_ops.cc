// TF ops over the collisionless embedding hash table (native_ops.md §1.10-§1.13). The kernels
// are thin: the table itself is the TF-free core in runtime/hash_table/. Configs arrive as
// serialized protos in attrs and are decoded by hand there (no generated C++ protobuf code).
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "monolith/native_training/runtime/common/entry_dump.h"
#include "monolith/native_training/runtime/common/huge_pages.h"
#include "monolith/native_training/runtime/hash_table/config.h"
#include "monolith/native_training/runtime/hash_table/embedding_hash_table.h"
#include "monolith/native_training/runtime/hash_table/hash_filter.h"
#include "monolith/native_training/runtime/ops/hash_table_resources.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/resource_mgr.h"
#include "tensorflow/core/framework/resource_op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/lib/io/path.h"
#include "tensorflow/core/lib/io/record_writer.h"
#include "tensorflow/core/platform/blocking_counter.h"
#include "tensorflow/core/platform/env.h"
#include "tensorflow/core/platform/mutex.h"
#include "tensorflow/core/platform/random.h"
#include "tensorflow/core/util/work_sharder.h"

namespace tensorflow {
namespace monolith_tf {
namespace {

namespace ht = ::monolith::hash_table;
using ::monolith::EntryDump;
using shape_inference::InferenceContext;

// ---------------------------------------------------------------------------------------------
// Resources

// Parameter-sync client placeholder: tables attached to it sync nothing.
class DummySyncClientResource : public ResourceBase {
 public:
  std::string DebugString() const override { return "DummySyncClient"; }
};

// Base of the kernels whose input 0 is one table's handle: Compute resolves it, and holds a
// reference for the kernel's run.
class TableOpKernel : public OpKernel {
 public:
  using OpKernel::OpKernel;

  void Compute(OpKernelContext* ctx) final {
    core::RefCountPtr<HashTableResource> table;
    OP_REQUIRES_OK(ctx, LookupResource(ctx, HandleFromInput(ctx, 0), &table));
    ComputeWithTable(ctx, table.get());
  }

 protected:
  virtual void ComputeWithTable(OpKernelContext* ctx, HashTableResource* table) = 0;
};

void ForwardHandle(OpKernelContext* ctx, int input = 0) { ctx->set_output(0, ctx->input(input)); }

// ---------------------------------------------------------------------------------------------
// Filters and sync client

class DummyHashFilterOp : public ResourceOpKernel<HashFilterResource> {
 public:
  using ResourceOpKernel::ResourceOpKernel;

 private:
  Status CreateResource(HashFilterResource** r) TF_EXCLUSIVE_LOCKS_REQUIRED(mu_) override {
    *r = new HashFilterResource(std::make_unique<ht::DummyHashFilter>(), "DummyHashFilter");
    return OkStatus();
  }
};

// The filter ops' `config` attr: a serialized SlotOccurrenceThresholdConfig.
Status GetThresholdConfig(OpKernelConstruction* ctx, ht::SlotOccurrenceThresholdConfig* config) {
  std::string bytes;
  TF_RETURN_IF_ERROR(ctx->GetAttr("config", &bytes));
  return Guard([&] { *config = ht::ParseSlotOccurrenceThresholdConfig(bytes); });
}

class HashFilterOp : public ResourceOpKernel<HashFilterResource> {
 public:
  explicit HashFilterOp(OpKernelConstruction* ctx) : ResourceOpKernel(ctx) {
    OP_REQUIRES_OK(ctx, GetThresholdConfig(ctx, &config_));
    // `capacity` sized upstream's probabilistic cells; exact counters grow as needed.
    OP_REQUIRES_OK(ctx, ctx->GetAttr("split_num", &split_num_));
    OP_REQUIRES(ctx, split_num_ >= 1,
                errors::InvalidArgument("split_num must be >= 1, got ", split_num_));
  }

 private:
  Status CreateResource(HashFilterResource** r) TF_EXCLUSIVE_LOCKS_REQUIRED(mu_) override {
    *r = new HashFilterResource(std::make_unique<ht::CountingHashFilter>(config_, split_num_),
                                "MonolithHashFilter");
    return OkStatus();
  }
  ht::SlotOccurrenceThresholdConfig config_;
  int split_num_;
};

class ProbabilisticFilterOp : public ResourceOpKernel<HashFilterResource> {
 public:
  explicit ProbabilisticFilterOp(OpKernelConstruction* ctx) : ResourceOpKernel(ctx) {
    OP_REQUIRES_OK(ctx, GetThresholdConfig(ctx, &config_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("equal_probability", &equal_probability_));
  }

 private:
  Status CreateResource(HashFilterResource** r) TF_EXCLUSIVE_LOCKS_REQUIRED(mu_) override {
    *r = new HashFilterResource(
        std::make_unique<ht::ProbabilisticFilter>(config_, equal_probability_),
        "MonolithProbabilisticFilter");
    return OkStatus();
  }
  ht::SlotOccurrenceThresholdConfig config_;
  bool equal_probability_;
};

class DummySyncClientOp : public ResourceOpKernel<DummySyncClientResource> {
 public:
  using ResourceOpKernel::ResourceOpKernel;

 private:
  Status CreateResource(DummySyncClientResource** r) TF_EXCLUSIVE_LOCKS_REQUIRED(mu_) override {
    *r = new DummySyncClientResource();
    return OkStatus();
  }
};

// ---------------------------------------------------------------------------------------------
// Table creation

class HashTableOp : public OpKernel {
 public:
  explicit HashTableOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    std::string config;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("config", &config));
    Status s = Guard([&] { config_ = ht::ParseTableConfig(config); });
    OP_REQUIRES(ctx, s.ok(),
                errors::InvalidArgument("Unable to parse config. Make sure it is serialized "
                                        "version of EmbeddingHashTableConfig. (",
                                        s.message(), ")"));
  }

  ~HashTableOp() override {
    if (created_ && cinfo_.resource_is_private_to_kernel()) {
      cinfo_.resource_manager()->Delete<HashTableResource>(cinfo_.container(), cinfo_.name())
          .IgnoreError();
    }
  }

  void Compute(OpKernelContext* ctx) override {
    {
      mutex_lock l(mu_);
      if (!created_) {
        OP_REQUIRES_OK(ctx, cinfo_.Init(ctx->resource_manager(), def()));
        core::RefCountPtr<HashFilterResource> filter;
        OP_REQUIRES_OK(ctx, LookupResource(ctx, HandleFromInput(ctx, 0), &filter));
        HashTableResource* table = nullptr;
        OP_REQUIRES_OK(ctx, cinfo_.resource_manager()->LookupOrCreate<HashTableResource>(
                                cinfo_.container(), cinfo_.name(), &table,
                                [&](HashTableResource** out) {
                                  std::unique_ptr<ht::EmbeddingHashTable> t;
                                  TF_RETURN_IF_ERROR(Guard([&] {
                                    t = std::make_unique<ht::EmbeddingHashTable>(config_);
                                  }));
                                  *out = new HashTableResource(cinfo_.name(), std::move(t),
                                                               std::move(filter));
                                  return OkStatus();
                                }));
        table->Unref();
        created_ = true;
      }
    }
    Tensor* handle;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({}), &handle));
    handle->scalar<ResourceHandle>()() =
        MakeResourceHandle<HashTableResource>(ctx, cinfo_.container(), cinfo_.name());
  }

 private:
  ht::TableConfig config_;
  mutex mu_;
  ContainerInfo cinfo_ TF_GUARDED_BY(mu_);
  bool created_ TF_GUARDED_BY(mu_) = false;
};

// ---------------------------------------------------------------------------------------------
// Lookups

class HashTableLookupOp : public TableOpKernel {
 public:
  explicit HashTableLookupOp(OpKernelConstruction* ctx) : TableOpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("dim_size", &dim_size_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("use_multi_threads", &use_multi_threads_));
  }

  void ComputeWithTable(OpKernelContext* ctx, HashTableResource* table) override {
    ht::EmbeddingHashTable* t = table->table();
    OP_REQUIRES(ctx, dim_size_ == t->DimSize(),
                errors::InvalidArgument("dim_size should match hash table size. ", dim_size_,
                                        " vs ", t->DimSize(), ". Node name: ", name()));
    const Tensor& ids = ctx->input(1);
    const int64_t n = ids.NumElements();
    Tensor* out;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({n, dim_size_}), &out));
    ::monolith::AdviseHugePages(out->data(), out->TotalBytes());
    const int64_t* id = ids.flat<int64_t>().data();
    float* emb = out->flat<float>().data();
    auto work = [&](int64_t begin, int64_t end) {
      t->BatchLookup(id + begin, end - begin, emb + begin * dim_size_);
    };
    if (use_multi_threads_) {
      auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
      Shard(workers->num_threads, workers->workers, n, 8 * dim_size_, work);
    } else {
      work(0, n);
    }
  }

 private:
  int dim_size_;
  bool use_multi_threads_;
};

class HashTableLookupEntryOp : public TableOpKernel {
 public:
  using TableOpKernel::TableOpKernel;

  void ComputeWithTable(OpKernelContext* ctx, HashTableResource* table) override {
    const auto ids = ctx->input(1).flat<int64_t>();
    Tensor* out;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({ids.size()}), &out));
    auto entries = out->flat<tstring>();
    OP_REQUIRES_OK(ctx, Guard([&] {
                     for (int64_t i = 0; i < ids.size(); ++i) {
                       EntryDump dump;
                       if (table->table()->LookupEntry(ids(i), &dump)) {
                         entries(i) = dump.Serialize();
                       }
                     }
                   }));
  }
};

// ---------------------------------------------------------------------------------------------
// Updates

// Base of the assign ops: inputs (handle, ids, values, req_time), output the handle. Each op
// checks the values' size with its upstream message, then writes the rows.
class TableAssignOpKernel : public TableOpKernel {
 public:
  using TableOpKernel::TableOpKernel;

 protected:
  struct Update {
    const int64_t* id;
    int64_t n;
    const Tensor* values;
    int64_t dim;
    int64_t req_time;
  };

  virtual Status CheckValues(const Update& u) const = 0;
  // Runs under Guard: the table's exceptions become op errors.
  virtual void Write(HashTableResource* table, const Update& u) const = 0;

 private:
  void ComputeWithTable(OpKernelContext* ctx, HashTableResource* table) final {
    OP_REQUIRES_OK(ctx, CheckScalar(ctx->input(3), "req_time"));
    const Tensor& ids = ctx->input(1);
    const Update u{ids.flat<int64_t>().data(), ids.NumElements(), &ctx->input(2),
                   table->table()->DimSize(), ctx->input(3).flat<int64_t>()(0)};
    OP_REQUIRES_OK(ctx, CheckValues(u));
    OP_REQUIRES_OK(ctx, Guard([&] { Write(table, u); }));
    ForwardHandle(ctx);
  }
};

class HashTableAssignOp : public TableAssignOpKernel {
 public:
  using TableAssignOpKernel::TableAssignOpKernel;

 private:
  // Upstream reads n*dim floats unchecked (Quirk Q10); a short tensor would read past its end.
  Status CheckValues(const Update& u) const override {
    if (u.values->NumElements() == u.n * u.dim) return OkStatus();
    return errors::InvalidArgument("id_updates must hold len(id_values) * dim = ", u.n, " * ",
                                   u.dim, " floats, got shape ", u.values->shape().DebugString());
  }

  void Write(HashTableResource* table, const Update& u) const override {
    AssignRows(table, u.id, u.n, u.values->flat<float>().data(), u.req_time);
  }
};

class HashTableAssignAddOp : public TableAssignOpKernel {
 public:
  using TableAssignOpKernel::TableAssignOpKernel;

 private:
  Status CheckValues(const Update& u) const override {
    if (u.values->NumElements() == u.n * u.dim) return OkStatus();
    const int64_t row = u.n == 0 ? 0 : u.values->NumElements() / u.n;
    return errors::InvalidArgument("The dim doesn't match expectation. ", row, " vs ", u.dim);
  }

  void Write(HashTableResource* table, const Update& u) const override {
    AssignAddRows(table, u.id, u.n, u.values->flat<float>().data(), u.req_time);
  }
};

class HashTableOptimizeOp : public TableOpKernel {
 public:
  explicit HashTableOptimizeOp(OpKernelConstruction* ctx) : TableOpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("use_multi_threads", &use_multi_threads_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("enable_dedup", &enable_dedup_));
    int queue_size;
    // queue_size > 0 made upstream run the update after the op returned, on freed buffers
    // (Quirk Q11): the attr is accepted and the update is always synchronous.
    OP_REQUIRES_OK(ctx, ctx->GetAttr("queue_size", &queue_size));
    OP_REQUIRES(ctx, queue_size >= 0,
                errors::InvalidArgument("queue_size must be >= 0, got ", queue_size));
  }

  void ComputeWithTable(OpKernelContext* ctx, HashTableResource* table) override {
    ht::EmbeddingHashTable* t = table->table();
    const Tensor& ids = ctx->input(1);
    const Tensor& grads = ctx->input(2);
    const Tensor& lrs = ctx->input(3);
    OP_REQUIRES_OK(ctx, CheckScalar(ctx->input(4), "req_time"));
    OP_REQUIRES_OK(ctx, CheckScalar(ctx->input(5), "global_step"));
    const int64_t req_time = ctx->input(4).flat<int64_t>()(0);
    const int64_t global_step = ctx->input(5).flat<int64_t>()(0);
    const int64_t n = ids.NumElements();
    const int64_t dim = t->DimSize();
    int slices = 0;
    OP_REQUIRES_OK(ctx, Guard([&] { slices = t->SliceSize(); }));
    OP_REQUIRES(ctx, grads.NumElements() == n * dim,
                errors::InvalidArgument("id_updates must hold len(id_values) * dim = ", n, " * ",
                                        dim, " floats, got shape ", grads.shape().DebugString()));
    OP_REQUIRES(ctx, lrs.NumElements() == slices,
                errors::InvalidArgument("learning_rate_tensor must hold one learning rate per "
                                        "segment (",
                                        slices, "), got shape ", lrs.shape().DebugString()));
    const int64_t* id = ids.flat<int64_t>().data();
    const float* g = grads.flat<float>().data();
    const float* lr = lrs.flat<float>().data();
    mutex status_mu;
    Status status;
    auto work = [&](int64_t begin, int64_t end) {
      Status s = Guard([&] {
        ApplyGradients(table, id + begin, g + begin * dim, end - begin, lr, req_time,
                       global_step, enable_dedup_);
      });
      if (!s.ok()) {
        mutex_lock l(status_mu);
        status.Update(s);
      }
    };
    if (use_multi_threads_) {
      auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
      Shard(workers->num_threads, workers->workers, n, 20 * dim, work);
    } else {
      work(0, n);
    }
    OP_REQUIRES_OK(ctx, status);
    ForwardHandle(ctx);
  }

 private:
  bool use_multi_threads_;
  bool enable_dedup_;
};

// ---------------------------------------------------------------------------------------------
// Save / restore

// Runs fn(i) for i in [0, n) on the CPU worker pool and waits; returns the first error.
Status ParallelFor(OpKernelContext* ctx, int n, const std::function<Status(int)>& fn) {
  std::vector<Status> statuses(n);
  BlockingCounter counter(n);
  auto* workers = ctx->device()->tensorflow_cpu_worker_threads()->workers;
  for (int i = 0; i < n; ++i) {
    workers->Schedule([&, i] {
      statuses[i] = fn(i);
      counter.DecrementCount();
    });
  }
  counter.Wait();
  for (const Status& s : statuses) TF_RETURN_IF_ERROR(s);
  return OkStatus();
}

// Same on dedicated threads. Save holds every table lock while its shards run; pool threads
// could all be busy spinning on those locks (multi-threaded lookups), so it must not need them.
Status ParallelForOnOwnThreads(int n, const std::function<Status(int)>& fn) {
  std::vector<Status> statuses(n);
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) threads.emplace_back([&, i] { statuses[i] = fn(i); });
  for (auto& t : threads) t.join();
  for (const Status& s : statuses) TF_RETURN_IF_ERROR(s);
  return OkStatus();
}

class HashTableSaveOp : public TableOpKernel {
 public:
  explicit HashTableSaveOp(OpKernelConstruction* ctx) : TableOpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("nshards", &nshards_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("random_sleep_ms", &random_sleep_ms_));
    std::string expire;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("slot_expire_time_config", &expire));
    OP_REQUIRES_OK(ctx, ParseExpireConfig(expire, &expire_));
  }

  void ComputeWithTable(OpKernelContext* ctx, HashTableResource* table) override {
    OP_REQUIRES_OK(ctx, CheckScalar(ctx->input(1), "basename"));
    const std::string basename(ctx->input(1).flat<tstring>()(0));
    ht::EmbeddingHashTable* t = table->table();
    OP_REQUIRES_OK(ctx, CreateParentDir(basename));
    const int nshards = AutoShards(nshards_, t->Size());
    auto all_locked = t->LockAll();
    Status status = ParallelForOnOwnThreads(nshards, [&](int i) -> Status {
      if (random_sleep_ms_ > 0) {
        thread_local std::mt19937 rng(std::random_device{}());
        Env::Default()->SleepForMicroseconds(1000LL * (rng() % random_sleep_ms_));
      }
      return WriteRecordFileAtomically(
          ShardFileName(basename, i, nshards), "", [&](io::RecordWriter* writer) {
            return WriteTableShard(t, expire_, i, nshards, writer, /*written=*/nullptr);
          });
    });
    all_locked.reset();
    OP_REQUIRES_OK(ctx, status);
    ForwardHandle(ctx);
  }

 private:
  int nshards_;
  int random_sleep_ms_;
  ht::SlotExpireTimeConfig expire_;
};

// Reads every EntryDump record of `path`, calling fn(dump) -> Status.
Status ForEachRecord(const std::string& path, const std::function<Status(EntryDump&&)>& fn) {
  return ReadRecordFile(path, "", [&](const tstring& record) {
    EntryDump dump;
    TF_RETURN_IF_ERROR(ParseEntryDump(record, path, &dump));
    return fn(std::move(dump));
  });
}

class HashTableRestoreOp : public TableOpKernel {
 public:
  using TableOpKernel::TableOpKernel;

  void ComputeWithTable(OpKernelContext* ctx, HashTableResource* table) override {
    OP_REQUIRES_OK(ctx, CheckScalar(ctx->input(1), "basename"));
    const std::string basename(ctx->input(1).flat<tstring>()(0));
    ht::EmbeddingHashTable* t = table->table();
    std::vector<std::string> files;
    OP_REQUIRES_OK(ctx, Env::Default()->GetMatchingPaths(basename + "-*", &files));
    int nshards = 0;
    OP_REQUIRES_OK(ctx, ValidateShardedFiles(basename, files, &nshards));
    // Upstream restored records without checking them against the table (Quirk Q4: a wider
    // dump overran entries). Validate everything first so a mismatch leaves the table intact.
    OP_REQUIRES_OK(ctx, ParallelForOnOwnThreads(nshards, [&](int i) {
                     const std::string path = ShardFileName(basename, i, nshards);
                     return ForEachRecord(path, [&](EntryDump&& dump) -> Status {
                       std::string why = t->ValidateDump(dump);
                       if (why.empty()) return OkStatus();
                       return errors::InvalidArgument("Unable to restore hash table ",
                                                      table->name(), " from ", path, ": ", why);
                     });
                   }));
    std::atomic<int64_t> records{0};
    t->Clear();
    // Restore uses the validated shard count, not every "<basename>-*" match (Quirk Q13).
    OP_REQUIRES_OK(ctx, ParallelForOnOwnThreads(nshards, [&](int i) {
                     return ForEachRecord(ShardFileName(basename, i, nshards),
                                          [&](EntryDump&& dump) {
                                            records.fetch_add(1, std::memory_order_relaxed);
                                            return Guard([&] { t->Restore(dump); },
                                                         absl::StatusCode::kResourceExhausted);
                                          });
                   }));
    LOG(INFO) << "Hash table: " << io::Basename(basename) << ", summary: " << t->DebugString()
              << ", restore read " << records.load() << " records, skip "
              << records.load() - t->Size() << " zero embeddings";
    ForwardHandle(ctx);
  }
};

class HashTableSizeOp : public TableOpKernel {
 public:
  using TableOpKernel::TableOpKernel;
  void ComputeWithTable(OpKernelContext* ctx, HashTableResource* table) override {
    Tensor* out;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({}), &out));
    out->scalar<int64_t>()() = table->table()->Size();
  }
};

class HashTableSaveAsTensorOp : public TableOpKernel {
 public:
  using TableOpKernel::TableOpKernel;
  void ComputeWithTable(OpKernelContext* ctx, HashTableResource* table) override {
    for (int i = 1; i <= 4; ++i) {
      OP_REQUIRES_OK(ctx, CheckScalar(ctx->input(i), "shard_idx/num_shards/limit/offset"));
    }
    const int shard_idx = ctx->input(1).flat<int32_t>()(0);
    const int num_shards = ctx->input(2).flat<int32_t>()(0);
    const int64_t limit = ctx->input(3).flat<int64_t>()(0);
    ht::DumpIterator it{ctx->input(4).flat<int64_t>()(0)};
    OP_REQUIRES(ctx, num_shards > 0 && shard_idx >= 0 && shard_idx < num_shards,
                errors::InvalidArgument("shard_idx must be in [0, num_shards), got ", shard_idx,
                                        " of ", num_shards));
    OP_REQUIRES(ctx, limit > 0, errors::InvalidArgument("limit must be > 0, got ", limit));
    std::vector<std::string> entries;
    {
      // Upstream dumps without locks (Quirk Q3); locking also finishes lazy migrations, which
      // an unlocked scan would miss.
      auto all_locked = table->table()->LockAll();
      table->table()->Save({shard_idx, num_shards, limit}, [&](EntryDump&& d) {
        entries.push_back(d.Serialize());
        return true;
      }, &it);
    }
    Tensor* offset;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({}), &offset));
    offset->scalar<int64_t>()() = it.offset;
    Tensor* out;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({static_cast<int64_t>(entries.size())}),
                                             &out));
    auto flat = out->flat<tstring>();
    for (size_t i = 0; i < entries.size(); ++i) flat(i) = entries[i];
  }
};

class ExtractSlotFromEntryOp : public OpKernel {
 public:
  explicit ExtractSlotFromEntryOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("fid_v2", &fid_v2_));
  }
  void Compute(OpKernelContext* ctx) override {
    const Tensor& entry = ctx->input(0);
    Tensor* out;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, entry.shape(), &out));
    auto in = entry.flat<tstring>();
    auto slots = out->flat<int32_t>();
    for (int64_t i = 0; i < in.size(); ++i) {
      bool ok = true;
      const int64_t id =
          ::monolith::ExtractIdFromEntryDump(std::string_view(in(i).data(), in(i).size()), &ok);
      if (!ok) LOG_EVERY_N_SEC(WARNING, 10) << "Fail to parse entry dump.";
      slots(i) = static_cast<int32_t>(fid_v2_ ? ht::SlotV2(id) : ht::SlotV1(id));
    }
  }

 private:
  bool fid_v2_;
};

class HashTableLookupGradientOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  // Row i of output_grads = input_grads[id_indices[i, 0]].
  void Compute(OpKernelContext* ctx) override {
    const Tensor& id_indices = ctx->input(0);
    const Tensor& id_values = ctx->input(1);
    const Tensor& input_grads = ctx->input(2);
    OP_REQUIRES(ctx, id_indices.dims() == 2 && id_indices.dim_size(1) >= 1,
                errors::InvalidArgument("id_indices must be [B, >=1], got ",
                                        id_indices.shape().DebugString()));
    OP_REQUIRES(ctx, input_grads.dims() == 2,
                errors::InvalidArgument("input_grads must be a matrix, got ",
                                        input_grads.shape().DebugString()));
    const int64_t b = id_indices.dim_size(0);
    OP_REQUIRES(ctx, b == id_values.NumElements(),
                errors::InvalidArgument("id_indices's first dim and id_values dim should be same. "
                                        "Got ",
                                        b, "v.s. ", id_values.NumElements()));
    const int64_t rows = input_grads.dim_size(0), d = input_grads.dim_size(1);
    ctx->set_output(0, id_values);
    Tensor* out;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({b, d}), &out));
    auto idx = id_indices.matrix<int64_t>();
    auto in = input_grads.matrix<float>();
    auto o = out->matrix<float>();
    for (int64_t i = 0; i < b; ++i) {
      const int64_t r = idx(i, 0);
      OP_REQUIRES(ctx, r >= 0 && r < rows,
                  errors::InvalidArgument("id_indices[", i, ", 0] = ", r,
                                          " is out of range for input_grads with ", rows,
                                          " rows"));
      for (int64_t k = 0; k < d; ++k) o(i, k) = in(r, k);
    }
  }
};

// ---------------------------------------------------------------------------------------------
// Fused multi-table lookup / optimize. K = N tables, S = num_of_shards; `ids` holds blocks in
// shard-major order, block b = s * K + t with fused_slot_size[b] ids for table t.

Status GetTables(OpKernelContext* ctx, int n, std::vector<core::RefCountPtr<HashTableResource>>* out) {
  OpInputList handles;
  TF_RETURN_IF_ERROR(ctx->input_list("table_handles", &handles));
  out->resize(n);
  for (int t = 0; t < n; ++t) {
    TF_RETURN_IF_ERROR(LookupResource(ctx, handles[t].scalar<ResourceHandle>()(), &(*out)[t]));
  }
  return OkStatus();
}

// Prefix sums of block sizes (ids) and of block float counts; checks they cover `ids`.
Status BlockOffsets(const Tensor& sizes, int k, int shards, int64_t num_ids,
                    const std::vector<core::RefCountPtr<HashTableResource>>& tables,
                    std::vector<int32_t>* id_offsets, std::vector<int32_t>* emb_offsets) {
  if (sizes.NumElements() != static_cast<int64_t>(k) * shards) {
    return errors::InvalidArgument("fused_slot_size must hold N * num_of_shards = ", k, " * ",
                                   shards, " values, got ", sizes.NumElements());
  }
  auto size = sizes.flat<int32_t>();
  id_offsets->assign(1, 0);
  emb_offsets->assign(1, 0);
  for (int b = 0; b < k * shards; ++b) {
    if (size(b) < 0) return errors::InvalidArgument("fused_slot_size must be >= 0");
    id_offsets->push_back(id_offsets->back() + size(b));
    emb_offsets->push_back(emb_offsets->back() + size(b) * tables[b % k]->table()->DimSize());
  }
  if (id_offsets->back() != num_ids) {
    return errors::InvalidArgument("fused_slot_size sums to ", id_offsets->back(), " but ids has ",
                                   num_ids, " values");
  }
  return OkStatus();
}

class HashTableFusedLookupOp : public OpKernel {
 public:
  explicit HashTableFusedLookupOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("N", &n_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("num_of_shards", &shards_));
  }

  void Compute(OpKernelContext* ctx) override {
    std::vector<core::RefCountPtr<HashTableResource>> tables;
    OP_REQUIRES_OK(ctx, GetTables(ctx, n_, &tables));
    const Tensor& ids = ctx->input(n_);
    std::vector<int32_t> id_off, emb_off;
    OP_REQUIRES_OK(ctx, BlockOffsets(ctx->input(n_ + 1), n_, shards_, ids.NumElements(), tables,
                                     &id_off, &emb_off));
    Tensor *emb, *splits, *id_offsets, *emb_offsets;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({emb_off.back()}), &emb));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({shards_}), &splits));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(
                            2, TensorShape({static_cast<int64_t>(id_off.size())}), &id_offsets));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(
                            3, TensorShape({static_cast<int64_t>(emb_off.size())}), &emb_offsets));
    ctx->set_output(4, ids);
    std::copy(id_off.begin(), id_off.end(), id_offsets->flat<int32_t>().data());
    std::copy(emb_off.begin(), emb_off.end(), emb_offsets->flat<int32_t>().data());
    const int64_t* id = ids.flat<int64_t>().data();
    float* out = emb->flat<float>().data();
    for (int s = 0; s < shards_; ++s) {
      splits->flat<int32_t>()(s) = emb_off[(s + 1) * n_] - emb_off[s * n_];
    }
    OP_REQUIRES_OK(ctx, ParallelFor(ctx, shards_, [&](int s) {
                     return Guard([&] {
                       for (int t = 0; t < n_; ++t) {
                         const int b = s * n_ + t;
                         tables[t]->table()->BatchLookup(id + id_off[b], id_off[b + 1] - id_off[b],
                                                         out + emb_off[b]);
                       }
                     });
                   }));
  }

 private:
  int n_;
  int shards_;
};

class HashTableFusedOptimizeOp : public OpKernel {
 public:
  explicit HashTableFusedOptimizeOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("N", &n_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("num_of_shards", &shards_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("enable_grad_accumulation", &dedup_));
  }

  void Compute(OpKernelContext* ctx) override {
    std::vector<core::RefCountPtr<HashTableResource>> tables;
    OP_REQUIRES_OK(ctx, GetTables(ctx, n_, &tables));
    const Tensor& ids = ctx->input(n_);
    const Tensor& grads = ctx->input(n_ + 3);
    const Tensor& lrs = ctx->input(n_ + 6);
    OP_REQUIRES_OK(ctx, CheckScalar(ctx->input(n_ + 7), "req_time"));
    OP_REQUIRES_OK(ctx, CheckScalar(ctx->input(n_ + 8), "global_step"));
    const int64_t req_time = ctx->input(n_ + 7).flat<int64_t>()(0);
    const int64_t global_step = ctx->input(n_ + 8).flat<int64_t>()(0);
    std::vector<int32_t> id_off, grad_off;
    OP_REQUIRES_OK(ctx, BlockOffsets(ctx->input(n_ + 2), n_, shards_, ids.NumElements(), tables,
                                     &id_off, &grad_off));
    OP_REQUIRES(ctx, grads.NumElements() == grad_off.back(),
                errors::InvalidArgument("id_grads must hold ", grad_off.back(), " floats, got ",
                                        grads.NumElements()));
    std::vector<int> lr_offsets(1, 0);
    for (int t = 0; t < n_; ++t) {
      int slices = 0;
      OP_REQUIRES_OK(ctx, Guard([&] { slices = tables[t]->table()->SliceSize(); }));
      lr_offsets.push_back(lr_offsets.back() + slices);
    }
    OP_REQUIRES(ctx, lrs.NumElements() == lr_offsets.back(),
                errors::InvalidArgument("learning_rate_tensors must hold ", lr_offsets.back(),
                                        " learning rates (one per segment of every table), got ",
                                        lrs.NumElements()));
    const int64_t* id = ids.flat<int64_t>().data();
    const float* g = grads.flat<float>().data();
    const float* lr = lrs.flat<float>().data();
    OP_REQUIRES_OK(ctx, ParallelFor(ctx, shards_, [&](int s) {
                     return Guard([&] {
                       for (int t = 0; t < n_; ++t) {
                         const int b = s * n_ + t;
                         ApplyGradients(tables[t].get(), id + id_off[b], g + grad_off[b],
                                        id_off[b + 1] - id_off[b], lr + lr_offsets[t], req_time,
                                        global_step, dedup_);
                       }
                     });
                   }));
    for (int t = 0; t < n_; ++t) ctx->set_output(t, ctx->input(t));
  }

 private:
  int n_;
  int shards_;
  bool dedup_;
};

// ---------------------------------------------------------------------------------------------
// Registrations

REGISTER_OP("MonolithDummyHashFilter")
    .Output("handle: resource")
    .Attr("container: string = ''")
    .Attr("shared_name: string = ''")
    .SetIsStateful()
    .SetShapeFn(shape_inference::ScalarShape);

REGISTER_OP("MonolithHashFilter")
    .Output("handle: resource")
    .Attr("capacity: int = 300000000")
    .Attr("split_num: int = 7")
    .Attr("config: string = ''")
    .Attr("container: string = ''")
    .Attr("shared_name: string = ''")
    .SetIsStateful()
    .SetShapeFn(shape_inference::ScalarShape);

REGISTER_OP("MonolithProbabilisticFilter")
    .Output("handle: resource")
    .Attr("equal_probability: bool = false")
    .Attr("config: string = ''")
    .Attr("container: string = ''")
    .Attr("shared_name: string = ''")
    .SetIsStateful()
    .SetShapeFn(shape_inference::ScalarShape);

REGISTER_OP("MonolithDummySyncClient")
    .Output("handle: resource")
    .Attr("config: string = ''")
    .Attr("container: string = ''")
    .Attr("shared_name: string = ''")
    .SetIsStateful()
    .SetShapeFn(shape_inference::ScalarShape);

REGISTER_OP("MonolithHashTable")
    .Input("filter_handle: resource")
    .Input("sync_client_handle: resource")
    .Output("handle: resource")
    .Attr("config: string")
    .Attr("container: string = ''")
    .Attr("shared_name: string = ''")
    .SetIsStateful()
    .SetShapeFn(shape_inference::ScalarShape);

REGISTER_OP("MonolithHashTableLookup")
    .Input("table_handle: resource")
    .Input("ids: int64")
    .Output("embeddings: float32")
    .Attr("dim_size: int")
    .Attr("use_multi_threads: bool = false")
    .SetIsStateful()
    .SetShapeFn([](InferenceContext* c) {
      int dim_size;
      TF_RETURN_IF_ERROR(c->GetAttr("dim_size", &dim_size));
      c->set_output(0, c->Matrix(c->NumElements(c->input(1)), dim_size));
      return OkStatus();
    });

REGISTER_OP("MonolithHashTableLookupEntry")
    .Input("table_handle: resource")
    .Input("ids: int64")
    .Output("entry_str: string")
    .SetIsStateful()
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->Vector(c->NumElements(c->input(1))));
      return OkStatus();
    });

REGISTER_OP("MonolithHashTableAssign")
    .Input("table_handle: resource")
    .Input("id_values: int64")
    .Input("id_updates: float")
    .Input("req_time: int64")
    .Output("table_handle_output: resource")
    .SetIsStateful()
    .SetShapeFn(shape_inference::ScalarShape);

REGISTER_OP("MonolithHashTableAssignAdd")
    .Input("table_handle: resource")
    .Input("id_values: int64")
    .Input("id_updates: float")
    .Input("req_time: int64")
    .Output("table_handle_output: resource")
    .SetIsStateful()
    .SetShapeFn(shape_inference::ScalarShape);

REGISTER_OP("MonolithHashTableOptimize")
    .Input("table_handle: resource")
    .Input("id_values: int64")
    .Input("id_updates: float")
    .Input("learning_rate_tensor: float")
    .Input("req_time: int64")
    .Input("global_step: int64")
    .Output("table_handle_output: resource")
    .Attr("use_multi_threads: bool = false")
    .Attr("queue_size: int = 0")
    .Attr("enable_dedup: bool = false")
    .SetIsStateful()
    .SetShapeFn(shape_inference::ScalarShape);

REGISTER_OP("MonolithHashTableSave")
    .Input("handle: resource")
    .Input("basename: string")
    .Output("output_handle: resource")
    .Attr("nshards: int = -1")
    .Attr("random_sleep_ms: int = 0")
    .Attr("slot_expire_time_config: string = ''")
    .SetIsStateful()
    .SetShapeFn(shape_inference::ScalarShape);

REGISTER_OP("MonolithHashTableRestore")
    .Input("handle: resource")
    .Input("basename: string")
    .Output("output_handle: resource")
    .SetIsStateful()
    .SetShapeFn(shape_inference::ScalarShape);

REGISTER_OP("MonolithHashTableSize")
    .Input("table_handle: resource")
    .Output("size: int64")
    .SetIsStateful()
    .SetShapeFn(shape_inference::ScalarShape);

REGISTER_OP("MonolithHashTableSaveAsTensor")
    .Input("table_handle: resource")
    .Input("shard_idx: int32")
    .Input("num_shards: int32")
    .Input("limit: int64")
    .Input("offset: int64")
    .Output("new_offset: int64")
    .Output("entry: string")
    .SetIsStateful()
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->Scalar());
      c->set_output(1, c->Vector(InferenceContext::kUnknownDim));
      return OkStatus();
    });

REGISTER_OP("MonolithExtractSlotFromEntry")
    .Input("entry: string")
    .Output("slot: int32")
    .Attr("fid_v2: bool")
    .SetShapeFn(shape_inference::UnchangedShape);

REGISTER_KERNEL_BUILDER(Name("MonolithDummyHashFilter").Device(DEVICE_CPU), DummyHashFilterOp);
REGISTER_KERNEL_BUILDER(Name("MonolithHashFilter").Device(DEVICE_CPU), HashFilterOp);
REGISTER_KERNEL_BUILDER(Name("MonolithProbabilisticFilter").Device(DEVICE_CPU),
                        ProbabilisticFilterOp);
REGISTER_KERNEL_BUILDER(Name("MonolithDummySyncClient").Device(DEVICE_CPU), DummySyncClientOp);
REGISTER_KERNEL_BUILDER(Name("MonolithHashTable").Device(DEVICE_CPU), HashTableOp);
REGISTER_KERNEL_BUILDER(Name("MonolithHashTableLookup").Device(DEVICE_CPU), HashTableLookupOp);
REGISTER_KERNEL_BUILDER(Name("MonolithHashTableLookupEntry").Device(DEVICE_CPU),
                        HashTableLookupEntryOp);
REGISTER_KERNEL_BUILDER(Name("MonolithHashTableAssign").Device(DEVICE_CPU), HashTableAssignOp);
REGISTER_KERNEL_BUILDER(Name("MonolithHashTableAssignAdd").Device(DEVICE_CPU),
                        HashTableAssignAddOp);
REGISTER_KERNEL_BUILDER(Name("MonolithHashTableOptimize").Device(DEVICE_CPU),
                        HashTableOptimizeOp);
REGISTER_KERNEL_BUILDER(Name("MonolithHashTableSave").Device(DEVICE_CPU), HashTableSaveOp);
REGISTER_KERNEL_BUILDER(Name("MonolithHashTableRestore").Device(DEVICE_CPU), HashTableRestoreOp);
REGISTER_KERNEL_BUILDER(Name("MonolithHashTableSize").Device(DEVICE_CPU), HashTableSizeOp);
REGISTER_KERNEL_BUILDER(Name("MonolithHashTableSaveAsTensor").Device(DEVICE_CPU),
                        HashTableSaveAsTensorOp);
REGISTER_KERNEL_BUILDER(Name("MonolithExtractSlotFromEntry").Device(DEVICE_CPU),
                        ExtractSlotFromEntryOp);

REGISTER_OP("MonolithHashTableLookupGradient")
    .Input("id_indices: int64")
    .Input("id_values: int64")
    .Input("input_grads: float")
    .Output("ids: int64")
    .Output("output_grads: float")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(1));
      c->set_output(1, c->Matrix(c->Dim(c->input(0), 0), c->Dim(c->input(2), 1)));
      return OkStatus();
    });
REGISTER_KERNEL_BUILDER(Name("MonolithHashTableLookupGradient").Device(DEVICE_CPU),
                        HashTableLookupGradientOp);

REGISTER_OP("MonolithHashTableFusedLookup")
    .Input("table_handles: N * resource")
    .Input("ids: int64")
    .Input("fused_slot_size: int32")
    .Input("req_time: int64")
    .Output("embeddings: float32")
    .Output("embedding_splits: int32")
    .Output("id_offsets: int32")
    .Output("embedding_offsets: int32")
    .Output("indices: int64")
    .Attr("N: int")
    .Attr("num_of_shards: int")
    .SetIsStateful()
    .SetShapeFn([](InferenceContext* c) {
      int n, shards;
      TF_RETURN_IF_ERROR(c->GetAttr("N", &n));
      TF_RETURN_IF_ERROR(c->GetAttr("num_of_shards", &shards));
      shape_inference::ShapeHandle sizes;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(n + 1), 1, &sizes));
      shape_inference::DimensionHandle unused;
      TF_RETURN_IF_ERROR(c->WithValue(c->Dim(sizes, 0), n * shards, &unused));
      c->set_output(0, c->Vector(InferenceContext::kUnknownDim));
      c->set_output(1, c->Vector(shards));
      c->set_output(2, c->Vector(n * shards + 1));
      c->set_output(3, c->Vector(n * shards + 1));
      c->set_output(4, c->input(n));
      return OkStatus();
    });

REGISTER_OP("MonolithHashTableFusedOptimize")
    .Input("table_handles: N * resource")
    .Input("ids: int64")
    .Input("indices: int64")
    .Input("fused_slot_size: int32")
    .Input("id_grads: float")
    .Input("id_offsets: int32")
    .Input("grad_offsets: int32")
    .Input("learning_rate_tensors: float")
    .Input("req_time: int64")
    .Input("global_step: int64")
    .Output("table_handles_output: N * resource")
    .Attr("N: int")
    .Attr("num_of_shards: int")
    .Attr("enable_grad_accumulation: bool = false")
    .SetIsStateful()
    .SetShapeFn([](InferenceContext* c) {
      int n;
      TF_RETURN_IF_ERROR(c->GetAttr("N", &n));
      for (int i = 0; i < n; ++i) c->set_output(i, c->Scalar());
      return OkStatus();
    });

REGISTER_KERNEL_BUILDER(Name("MonolithHashTableFusedLookup").Device(DEVICE_CPU),
                        HashTableFusedLookupOp);
REGISTER_KERNEL_BUILDER(Name("MonolithHashTableFusedOptimize").Device(DEVICE_CPU),
                        HashTableFusedOptimizeOp);

}  // namespace
}  // namespace monolith_tf
}  // namespace tensorflow
