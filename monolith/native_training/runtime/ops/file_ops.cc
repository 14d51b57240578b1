// Writable-file ops: a file resource that several session threads append to (raw bytes or
// TFRecord-framed EntryDump records) and close once. Files go through TF's Env, so every
// registered filesystem scheme works.
#include <memory>
#include <string>

#include "monolith/native_training/runtime/common/entry_dump.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/resource_mgr.h"
#include "tensorflow/core/framework/resource_op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/lib/io/path.h"
#include "tensorflow/core/lib/io/record_writer.h"
#include "tensorflow/core/platform/env.h"
#include "tensorflow/core/platform/mutex.h"

namespace tensorflow {
namespace monolith_tf {
namespace {

class FileResource : public ResourceBase {
 public:
  FileResource(std::string filename, std::unique_ptr<WritableFile> file)
      : filename_(std::move(filename)), file_(std::move(file)) {}

  ~FileResource() override {
    mutex_lock l(mu_);
    if (file_ == nullptr) return;
    Status s = CloseLocked();
    if (!s.ok()) LOG(ERROR) << "Unable to close file " << filename_ << " :" << s;
  }

  Status Append(absl::string_view content) {
    mutex_lock l(mu_);
    TF_RETURN_IF_ERROR(CheckOpenLocked());
    return file_->Append(content);
  }

  Status AppendRecord(absl::string_view record) {
    mutex_lock l(mu_);
    TF_RETURN_IF_ERROR(CheckOpenLocked());
    if (record_writer_ == nullptr) {
      record_writer_ = std::make_unique<io::RecordWriter>(file_.get(), io::RecordWriterOptions());
    }
    return record_writer_->WriteRecord(record);
  }

  Status Close() {
    mutex_lock l(mu_);
    TF_RETURN_IF_ERROR(CheckOpenLocked());
    return CloseLocked();
  }

  std::string DebugString() const override { return "FileResource(" + filename_ + ")"; }

 private:
  Status CheckOpenLocked() const TF_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (file_ == nullptr) {
      return errors::FailedPrecondition("File ", filename_, " is already closed");
    }
    return OkStatus();
  }

  Status CloseLocked() TF_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Status status;
    if (record_writer_ != nullptr) status.Update(record_writer_->Close());
    record_writer_.reset();
    status.Update(file_->Close());
    file_.reset();
    return status;
  }

  const std::string filename_;
  mutex mu_;
  std::unique_ptr<WritableFile> file_ TF_GUARDED_BY(mu_);
  // Created on the first record; writes straight through to file_ (no compression), so raw
  // appends and records land in call order.
  std::unique_ptr<io::RecordWriter> record_writer_ TF_GUARDED_BY(mu_);
};

class WritableFileOp : public ResourceOpKernel<FileResource> {
 public:
  explicit WritableFileOp(OpKernelConstruction* ctx) : ResourceOpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("filename", &filename_));
  }

 private:
  Status CreateResource(FileResource** resource) TF_EXCLUSIVE_LOCKS_REQUIRED(mu_) override {
    Env* env = Env::Default();
    const std::string dir(io::Dirname(filename_));
    if (!dir.empty()) {
      Status s = env->RecursivelyCreateDir(dir);
      if (!s.ok() && !errors::IsAlreadyExists(s)) {
        return errors::CreateWithUpdatedMessage(
            s, absl::StrCat("Unable to create directory of file ", filename_, ": ", s.message()));
      }
    }
    std::unique_ptr<WritableFile> file;
    Status s = env->NewWritableFile(filename_, &file);
    if (!s.ok()) {
      return errors::CreateWithUpdatedMessage(
          s, absl::StrCat("Unable to open file ", filename_, " for writing: ", s.message()));
    }
    *resource = new FileResource(filename_, std::move(file));
    return OkStatus();
  }

  std::string filename_;
};

class WritableFileAppendOp : public OpKernel {
 public:
  using OpKernel::OpKernel;

  void Compute(OpKernelContext* ctx) override {
    core::RefCountPtr<FileResource> file;
    OP_REQUIRES_OK(ctx, LookupResource(ctx, HandleFromInput(ctx, 0), &file));
    const Tensor& content = ctx->input(1);
    OP_REQUIRES(ctx, TensorShapeUtils::IsScalar(content.shape()),
                errors::InvalidArgument("content must be a scalar, got shape ",
                                        content.shape().DebugString()));
    OP_REQUIRES_OK(ctx, file->Append(content.scalar<tstring>()()));
  }
};

class EntryDumpFileAppendOp : public OpKernel {
 public:
  using OpKernel::OpKernel;

  void Compute(OpKernelContext* ctx) override {
    core::RefCountPtr<FileResource> file;
    OP_REQUIRES_OK(ctx, LookupResource(ctx, HandleFromInput(ctx, 0), &file));
    const Tensor& item_id = ctx->input(1);
    const Tensor& bias = ctx->input(2);
    const Tensor& embedding = ctx->input(3);
    const int64_t batch = item_id.NumElements();
    // Upstream aborts the process on these; a bad batch must not take the trainer down.
    OP_REQUIRES(ctx, batch > 0, errors::InvalidArgument("item_id must not be empty"));
    OP_REQUIRES(ctx, embedding.NumElements() % batch == 0,
                errors::InvalidArgument("embedding size ", embedding.NumElements(),
                                        " is not a multiple of the item_id size ", batch));
    OP_REQUIRES(ctx, bias.NumElements() >= batch,
                errors::InvalidArgument("bias has ", bias.NumElements(), " values for ", batch,
                                        " item ids"));
    const int64_t dim = embedding.NumElements() / batch;
    const auto ids = item_id.flat<int64_t>();
    const auto biases = bias.flat<float>();
    const float* emb = embedding.flat<float>().data();
    std::string record;
    for (int64_t b = 0; b < batch; ++b) {
      record.clear();
      ::monolith::AppendEntryDump(ids(b), biases(b), emb + b * dim, dim, &record);
      OP_REQUIRES_OK(ctx, file->AppendRecord(record));
    }
  }
};

class WritableFileCloseOp : public OpKernel {
 public:
  using OpKernel::OpKernel;

  void Compute(OpKernelContext* ctx) override {
    core::RefCountPtr<FileResource> file;
    OP_REQUIRES_OK(ctx, LookupResource(ctx, HandleFromInput(ctx, 0), &file));
    OP_REQUIRES_OK(ctx, file->Close());
  }
};

REGISTER_OP("MonolithWritableFile")
    .Output("handle: resource")
    .Attr("filename: string")
    .Attr("container: string = ''")
    .Attr("shared_name: string = ''")
    .SetIsStateful()
    .SetShapeFn(shape_inference::ScalarShape);

REGISTER_OP("MonolithWritableFileAppend")
    .Input("handle: resource")
    .Input("content: string")
    .SetIsStateful()
    .SetShapeFn(shape_inference::NoOutputs);

REGISTER_OP("MonolithEntryDumpFileAppend")
    .Input("handle: resource")
    .Input("item_id: int64")
    .Input("bias: float")
    .Input("embedding: float")
    .SetIsStateful()
    .SetShapeFn(shape_inference::NoOutputs);

REGISTER_OP("MonolithWritableFileClose")
    .Input("handle: resource")
    .SetIsStateful()
    .SetShapeFn(shape_inference::NoOutputs);

REGISTER_KERNEL_BUILDER(Name("MonolithWritableFile").Device(DEVICE_CPU), WritableFileOp);
REGISTER_KERNEL_BUILDER(Name("MonolithWritableFileAppend").Device(DEVICE_CPU),
                        WritableFileAppendOp);
REGISTER_KERNEL_BUILDER(Name("MonolithEntryDumpFileAppend").Device(DEVICE_CPU),
                        EntryDumpFileAppendOp);
REGISTER_KERNEL_BUILDER(Name("MonolithWritableFileClose").Device(DEVICE_CPU),
                        WritableFileCloseOp);

}  // namespace
}  // namespace monolith_tf
}  // namespace tensorflow
