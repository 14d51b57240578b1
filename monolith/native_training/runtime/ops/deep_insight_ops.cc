// Deep insight ops: a client resource (optionally dumping every message to a TFRecord file) and
// the v1 (single target) and v2 (several targets, extra fields) write ops. The message content
// and sampling live in runtime/deep_insight (TF-free); this file validates tensors and wires them.
#include <memory>
#include <string>
#include <vector>

#include "monolith/native_training/runtime/deep_insight/deep_insight.h"
#include "monolith/native_training/runtime/deep_insight/file_metric_writer.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/resource_mgr.h"
#include "tensorflow/core/framework/resource_op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/lib/io/path.h"
#include "tensorflow/core/lib/io/record_writer.h"
#include "tensorflow/core/platform/env.h"
#include "tensorflow/core/util/work_sharder.h"

namespace tensorflow {
namespace monolith_tf {
namespace {

using ::monolith::deep_insight::DeepInsight;
using ::monolith::deep_insight::FileMetricWriter;
using ::monolith::deep_insight::Row;

// The dump file: one uncompressed TFRecord per row of every write op run (empty messages
// included). Records go through a background thread; they are all on disk once the resource
// is destroyed (the session closed).
class DumpFile {
 public:
  static Status Open(const std::string& filename, std::unique_ptr<DumpFile>* out) {
    Env* env = Env::Default();
    const std::string dir(io::Dirname(filename));
    if (!dir.empty()) {
      Status s = env->RecursivelyCreateDir(dir);
      if (!s.ok() && !errors::IsAlreadyExists(s)) {
        return errors::CreateWithUpdatedMessage(
            s, absl::StrCat("Unable to create the directory of deep insight dump file ", filename,
                            ": ", s.message()));
      }
    }
    std::unique_ptr<WritableFile> file;
    Status s = env->NewWritableFile(filename, &file);
    if (!s.ok()) {
      // Upstream aborts the process here; a bad path must only fail the op.
      return errors::CreateWithUpdatedMessage(
          s, absl::StrCat("Unable to open deep insight dump file ", filename, ": ", s.message()));
    }
    out->reset(new DumpFile(filename, std::move(file)));
    return OkStatus();
  }

  ~DumpFile() {
    writer_.reset();  // drains the queue into the file
    Status s = record_writer_->Close();
    s.Update(file_->Close());
    if (!s.ok()) LOG(ERROR) << "Unable to close deep insight dump file " << filename_ << ": " << s;
  }

  void Write(std::string msg) { writer_->Write(std::move(msg)); }

 private:
  DumpFile(std::string filename, std::unique_ptr<WritableFile> file)
      : filename_(std::move(filename)),
        file_(std::move(file)),
        record_writer_(new io::RecordWriter(file_.get(), io::RecordWriterOptions())) {
    writer_ = std::make_unique<FileMetricWriter>([this](const std::string& msg) {
      Status s = record_writer_->WriteRecord(msg);
      if (!s.ok()) {
        LOG_EVERY_N_SEC(ERROR, 60) << "Unable to write to deep insight dump file " << filename_
                                   << ": " << s;
      }
      return s.ok();
    });
  }

  const std::string filename_;
  std::unique_ptr<WritableFile> file_;
  std::unique_ptr<io::RecordWriter> record_writer_;  // used by writer_'s thread only
  std::unique_ptr<FileMetricWriter> writer_;
};

class DeepInsightClientTfBridge : public ResourceBase {
 public:
  DeepInsightClientTfBridge(bool enable_metrics_counter, bool is_fake,
                            std::unique_ptr<DumpFile> dump_file)
      : client_(enable_metrics_counter, is_fake), dump_file_(std::move(dump_file)) {}

  // The row's message ("" when unsampled). Thread-safe.
  std::string Send(const Row& row, float sample_ratio) { return client_.SendV2(row, sample_ratio); }

  // Queues one batch's messages for the dump file, in row order.
  void Dump(const std::vector<std::string>& msgs) {
    if (dump_file_ == nullptr) return;
    for (const std::string& msg : msgs) dump_file_->Write(msg);
  }

  int64_t TrainTime(bool use_zero_train_time) const {
    return use_zero_train_time ? 0 : DeepInsight::GenerateTrainingTime();
  }

  std::string DebugString() const override {
    return absl::StrCat("Total send counter: ", client_.GetTotalSendCounter());
  }

 private:
  DeepInsight client_;
  std::unique_ptr<DumpFile> dump_file_;
};

class CreateDeepInsightClientOp : public ResourceOpKernel<DeepInsightClientTfBridge> {
 public:
  explicit CreateDeepInsightClientOp(OpKernelConstruction* ctx) : ResourceOpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("enable_metrics_counter", &enable_metrics_counter_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("is_fake", &is_fake_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("filename", &filename_));
  }

 private:
  Status CreateResource(DeepInsightClientTfBridge** resource)
      TF_EXCLUSIVE_LOCKS_REQUIRED(mu_) override {
    std::unique_ptr<DumpFile> dump_file;
    if (!filename_.empty()) TF_RETURN_IF_ERROR(DumpFile::Open(filename_, &dump_file));
    *resource = new DeepInsightClientTfBridge(enable_metrics_counter_, is_fake_,
                                              std::move(dump_file));
    return OkStatus();
  }

  bool enable_metrics_counter_ = false;
  bool is_fake_ = false;
  std::string filename_;
};

// Upstream indexes every input up to the batch size of `labels` without checking; a short
// input must be an op error, not a read past the end of a buffer.
Status CheckBatch(const Tensor& t, const char* name, int64_t batch, const char* batch_source) {
  if (t.dims() != 1 || t.dim_size(0) != batch) {
    return errors::InvalidArgument(name, " must be a vector of ", batch_source, "'s batch size ",
                                   batch, ", got shape ", t.shape().DebugString());
  }
  return OkStatus();
}

// The client lookup, attrs and send path the two write ops share; each op reads its own row
// inputs.
class WriteDeepInsightOpBase : public OpKernel {
 public:
  explicit WriteDeepInsightOpBase(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("model_name", &model_name_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("sample_ratio", &sample_ratio_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("return_msgs", &return_msgs_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("use_zero_train_time", &use_zero_train_time_));
  }

  void Compute(OpKernelContext* ctx) final {
    core::RefCountPtr<DeepInsightClientTfBridge> client;
    OP_REQUIRES_OK(ctx, LookupResource(ctx, HandleFromInput(ctx, 0), &client));
    ComputeWithClient(ctx, client.get());
  }

 protected:
  virtual void ComputeWithClient(OpKernelContext* ctx, DeepInsightClientTfBridge* client) = 0;

  // Sends rows [0, batch), each a copy of `base` (given this op's model name and train time)
  // completed by `fill_row(i, &row)`. Messages are built on the CPU worker threads and dumped in
  // row order; output 0 gets them with return_msgs, else empty strings.
  template <typename FillRow>
  void SendRows(OpKernelContext* ctx, DeepInsightClientTfBridge* client, Row base, int64_t batch,
                FillRow fill_row) {
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({batch}), &out));
    base.model_name = model_name_;
    base.train_time = client->TrainTime(use_zero_train_time_);
    std::vector<std::string> msgs(batch);
    auto work = [&](int64_t begin, int64_t end) {
      Row row = base;
      for (int64_t i = begin; i < end; ++i) {
        fill_row(i, &row);
        msgs[i] = client->Send(row, sample_ratio_);
      }
    };
    const auto& workers = *ctx->device()->tensorflow_cpu_worker_threads();
    // About a microsecond per row: JSON formatting of a dozen numbers.
    Shard(workers.num_threads, workers.workers, batch, /*cost_per_unit=*/5000, work);
    client->Dump(msgs);
    if (return_msgs_) {
      auto out_v = out->vec<tstring>();
      for (int64_t i = 0; i < batch; ++i) out_v(i) = std::move(msgs[i]);
    }
  }

 private:
  std::string model_name_;
  float sample_ratio_ = 0.01f;
  bool return_msgs_ = false;
  bool use_zero_train_time_ = false;
};

class WriteDeepInsightOp : public WriteDeepInsightOpBase {
 public:
  explicit WriteDeepInsightOp(OpKernelConstruction* ctx) : WriteDeepInsightOpBase(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("target", &target_));
  }

  void ComputeWithClient(OpKernelContext* ctx, DeepInsightClientTfBridge* client) override {
    const Tensor& uids = ctx->input(1);
    const Tensor& req_times = ctx->input(2);
    const Tensor& labels = ctx->input(3);
    const Tensor& preds = ctx->input(4);
    const Tensor& sample_rates = ctx->input(5);
    OP_REQUIRES(ctx, labels.dims() == 1,
                errors::InvalidArgument("labels must be a vector, got shape ",
                                        labels.shape().DebugString()));
    const int64_t batch = labels.dim_size(0);
    OP_REQUIRES_OK(ctx, CheckBatch(uids, "uids", batch, "labels"));
    OP_REQUIRES_OK(ctx, CheckBatch(req_times, "req_times", batch, "labels"));
    OP_REQUIRES_OK(ctx, CheckBatch(preds, "preds", batch, "labels"));
    OP_REQUIRES_OK(ctx, CheckBatch(sample_rates, "sample_rates", batch, "labels"));

    const auto uid_v = uids.vec<int64_t>();
    const auto req_time_v = req_times.vec<int64_t>();
    const auto label_v = labels.vec<float>();
    const auto pred_v = preds.vec<float>();
    const auto rate_v = sample_rates.vec<float>();
    Row base;
    base.targets = {target_};
    SendRows(ctx, client, std::move(base), batch, [&](int64_t i, Row* row) {
      row->uid = uid_v(i);
      row->req_time = req_time_v(i);
      row->labels = {label_v(i)};
      row->preds = {pred_v(i)};
      row->sample_rates = {rate_v(i)};
    });
  }

 private:
  std::string target_;
};

class WriteDeepInsightV2Op : public WriteDeepInsightOpBase {
 public:
  explicit WriteDeepInsightV2Op(OpKernelConstruction* ctx) : WriteDeepInsightOpBase(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("extra_fields_keys", &extra_fields_keys_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("targets", &targets_));
    DataTypeVector field_types;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("Tfields", &field_types));
    OP_REQUIRES(ctx, field_types.size() == extra_fields_keys_.size(),
                errors::InvalidArgument("extra_fields_keys has ", extra_fields_keys_.size(),
                                        " keys but extra_fields_values has ", field_types.size(),
                                        " tensors"));
  }

  void ComputeWithClient(OpKernelContext* ctx, DeepInsightClientTfBridge* client) override {
    const Tensor& req_times = ctx->input(1);
    const Tensor& labels = ctx->input(2);
    const Tensor& preds = ctx->input(3);
    const Tensor& sample_rates = ctx->input(4);
    OpInputList extra_values;
    OP_REQUIRES_OK(ctx, ctx->input_list("extra_fields_values", &extra_values));

    const int64_t num_targets = static_cast<int64_t>(targets_.size());
    OP_REQUIRES(ctx, labels.dims() == 2 && labels.dim_size(0) == num_targets,
                errors::InvalidArgument("labels must have shape [len(targets)=", num_targets,
                                        ", batch_size], got ", labels.shape().DebugString()));
    const int64_t batch = labels.dim_size(1);
    OP_REQUIRES(ctx, preds.shape() == labels.shape(),
                errors::InvalidArgument("preds shape ", preds.shape().DebugString(),
                                        " differs from labels shape ",
                                        labels.shape().DebugString()));
    OP_REQUIRES(ctx, sample_rates.shape() == labels.shape(),
                errors::InvalidArgument("sample_rates shape ", sample_rates.shape().DebugString(),
                                        " differs from labels shape ",
                                        labels.shape().DebugString()));
    OP_REQUIRES_OK(ctx, CheckBatch(req_times, "req_times", batch, "labels"));
    int uid_index = -1;
    for (int f = 0; f < extra_values.size(); ++f) {
      const std::string name = absl::StrCat("extra_fields_values[", f, "] (",
                                            extra_fields_keys_[f], ")");
      OP_REQUIRES_OK(ctx, CheckBatch(extra_values[f], name.c_str(), batch, "labels"));
      if (extra_values[f].dtype() == DT_INT64 && extra_fields_keys_[f] == "uid") uid_index = f;
    }
    // Upstream aborts the process without a uid; make it an op error instead.
    OP_REQUIRES(ctx, uid_index >= 0,
                errors::InvalidArgument(
                    "MonolithWriteDeepInsightV2 requires an int64 extra field named uid"));

    const auto req_time_v = req_times.vec<int64_t>();
    const auto label_m = labels.matrix<float>();
    const auto pred_m = preds.matrix<float>();
    const auto rate_m = sample_rates.matrix<float>();
    Row base;
    base.targets = targets_;
    base.labels.resize(num_targets);
    base.preds.resize(num_targets);
    base.sample_rates.resize(num_targets);
    auto fill_row = [&](int64_t b, Row* row_ptr) {
      Row& row = *row_ptr;
      row.req_time = req_time_v(b);
      for (int64_t j = 0; j < num_targets; ++j) {
        row.labels[j] = label_m(j, b);
        row.preds[j] = pred_m(j, b);
        row.sample_rates[j] = rate_m(j, b);
      }
      row.extra = {};
      for (int f = 0; f < extra_values.size(); ++f) {
        const Tensor& value = extra_values[f];
        const std::string& key = extra_fields_keys_[f];
        switch (value.dtype()) {
          case DT_FLOAT:
            row.extra.floats[key] = value.vec<float>()(b);
            break;
          case DT_INT64:
            if (f == uid_index) {
              row.uid = value.vec<int64_t>()(b);
            } else {
              row.extra.ints[key] = value.vec<int64_t>()(b);
            }
            break;
          case DT_STRING:
            row.extra.strs[key] = std::string(value.vec<tstring>()(b));
            break;
          default:  // other dtypes are ignored, as upstream does
            break;
        }
      }
    };
    SendRows(ctx, client, std::move(base), batch, fill_row);
  }

 private:
  std::vector<std::string> extra_fields_keys_;
  std::vector<std::string> targets_;
};

REGISTER_OP("MonolithCreateDeepInsightClient")
    .Output("handle: resource")
    .Attr("enable_metrics_counter: bool = false")
    .Attr("is_fake: bool = false")
    .Attr("filename: string = ''")
    .Attr("container: string = ''")
    .Attr("shared_name: string = ''")
    .SetIsStateful()
    .SetShapeFn(shape_inference::ScalarShape);

// The write ops' msgs: one string per row of input 1.
Status MsgsShape(shape_inference::InferenceContext* c) {
  c->set_output(0, c->input(1));
  return OkStatus();
}

REGISTER_OP("MonolithWriteDeepInsight")
    .Input("deep_insight_client_handle: resource")
    .Input("uids: int64")
    .Input("req_times: int64")
    .Input("labels: float")
    .Input("preds: float")
    .Input("sample_rates: float")
    .Output("msgs: string")
    .Attr("model_name: string")
    .Attr("target: string = 'ctr_head'")
    .Attr("sample_ratio: float = 0.01")
    .Attr("return_msgs: bool = false")
    .Attr("use_zero_train_time: bool = false")
    .SetIsStateful()
    .SetShapeFn(MsgsShape);

REGISTER_OP("MonolithWriteDeepInsightV2")
    .Input("deep_insight_client_handle: resource")
    .Input("req_times: int64")
    .Input("labels: float")
    .Input("preds: float")
    .Input("sample_rates: float")
    .Input("extra_fields_values: Tfields")
    .Output("msgs: string")
    .Attr("model_name: string")
    .Attr("extra_fields_keys: list(string)")
    .Attr("Tfields: list(type) >= 0")
    .Attr("targets: list(string)")
    .Attr("sample_ratio: float = 0.01")
    .Attr("return_msgs: bool = false")
    .Attr("use_zero_train_time: bool = false")
    .SetIsStateful()
    .SetShapeFn(MsgsShape);

REGISTER_KERNEL_BUILDER(Name("MonolithCreateDeepInsightClient").Device(DEVICE_CPU),
                        CreateDeepInsightClientOp);
REGISTER_KERNEL_BUILDER(Name("MonolithWriteDeepInsight").Device(DEVICE_CPU), WriteDeepInsightOp);
REGISTER_KERNEL_BUILDER(Name("MonolithWriteDeepInsightV2").Device(DEVICE_CPU),
                        WriteDeepInsightV2Op);

}  // namespace
}  // namespace monolith_tf
}  // namespace tensorflow
