// Hash filter save / restore and the gradient intercept (native_ops.md §1.10). The filters
// themselves are created in hash_table_ops.cc; their dump format is the TF-free core's
// (runtime/hash_table/hash_filter.h), written as TFRecords here.
#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "monolith/native_training/runtime/hash_table/hash_filter.h"
#include "monolith/native_training/runtime/ops/hash_table_resources.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/platform/env.h"

namespace tensorflow {
namespace monolith_tf {
namespace {

namespace ht = ::monolith::hash_table;

// The sliding filter, or null for the stateless dummy and probabilistic filters.
ht::CountingHashFilter* CountingFilterOrNull(HashFilterResource* filter) {
  return dynamic_cast<ht::CountingHashFilter*>(filter->filter());
}

Status WriteSplit(const ht::CountingHashFilter& filter, int split, const std::string& basename) {
  return WriteRecordFileAtomically(
      ShardFileName(basename, split, filter.split_num()), "", [&](io::RecordWriter* writer) {
        Status status;
        filter.SaveSplit(split, [&](const std::string& record) {
          status = writer->WriteRecord(record);
          return status.ok();
        });
        return status;
      });
}

// Appends every (id, count) of one split file to *out.
Status ReadSplit(const std::string& path, std::vector<std::pair<int64_t, uint8_t>>* out) {
  ht::FilterSplitDecoder decoder(path, [out](int64_t id, uint8_t count) {
    out->emplace_back(id, count);
  });
  TF_RETURN_IF_ERROR(ReadRecordFile(path, "", [&](const tstring& record) {
    return Guard([&] { decoder.Add(std::string_view(record.data(), record.size())); });
  }));
  return Guard([&] { decoder.Finish(); });
}

class FilterOpKernel : public OpKernel {
 public:
  using OpKernel::OpKernel;

  void Compute(OpKernelContext* ctx) final {
    core::RefCountPtr<HashFilterResource> filter;
    OP_REQUIRES_OK(ctx, LookupResource(ctx, HandleFromInput(ctx, 0), &filter));
    ComputeWithFilter(ctx, filter.get());
  }

 protected:
  virtual void ComputeWithFilter(OpKernelContext* ctx, HashFilterResource* filter) = 0;
};

// Base of save and restore: inputs (handle, basename), output the handle. Only the sliding
// (counting) filter has state; for the others both are no-ops.
class FilterFileOpKernel : public FilterOpKernel {
 public:
  using FilterOpKernel::FilterOpKernel;

  void ComputeWithFilter(OpKernelContext* ctx, HashFilterResource* filter) final {
    OP_REQUIRES_OK(ctx, CheckScalar(ctx->input(1), "basename"));
    if (ht::CountingHashFilter* counting = CountingFilterOrNull(filter)) {
      OP_REQUIRES_OK(ctx, Run(counting, std::string(ctx->input(1).flat<tstring>()(0))));
    }
    ctx->set_output(0, ctx->input(0));
  }

 protected:
  virtual Status Run(ht::CountingHashFilter* filter, const std::string& basename) = 0;
};

class HashFilterSaveOp : public FilterFileOpKernel {
 public:
  using FilterFileOpKernel::FilterFileOpKernel;

 private:
  Status Run(ht::CountingHashFilter* filter, const std::string& basename) override {
    TF_RETURN_IF_ERROR(CreateParentDir(basename));
    for (int split = 0; split < filter->split_num(); ++split) {
      TF_RETURN_IF_ERROR(WriteSplit(*filter, split, basename));
    }
    return OkStatus();
  }
};

class HashFilterRestoreOp : public FilterFileOpKernel {
 public:
  using FilterFileOpKernel::FilterFileOpKernel;

 private:
  Status Run(ht::CountingHashFilter* filter, const std::string& basename) override {
    std::vector<std::string> files;
    TF_RETURN_IF_ERROR(Env::Default()->GetMatchingPaths(basename + "-*", &files));
    int nshards = 0;
    TF_RETURN_IF_ERROR(ValidateShardedFiles(basename, files, &nshards));
    // Everything is read and checked before the filter changes: a bad file leaves it intact.
    std::vector<std::pair<int64_t, uint8_t>> counts;
    for (int i = 0; i < nshards; ++i) {
      TF_RETURN_IF_ERROR(ReadSplit(ShardFileName(basename, i, nshards), &counts));
    }
    filter->Clear();
    for (const auto& [id, count] : counts) filter->SetCount(id, count);
    LOG(INFO) << "Hash filter restored " << counts.size() << " counts from " << nshards
              << " files of " << basename;
    return OkStatus();
  }
};

class HashFilterInterceptGradientGradientOp : public FilterOpKernel {
 public:
  using FilterOpKernel::FilterOpKernel;

  void ComputeWithFilter(OpKernelContext* ctx, HashFilterResource* filter) override {
    const Tensor& ids = ctx->input(1);
    const Tensor& grad = ctx->input(2);
    const int64_t n = ids.NumElements();
    OP_REQUIRES(ctx, grad.dims() >= 1 && grad.dim_size(0) == n,
                errors::InvalidArgument("grad must have one row per id (", n,
                                        " ids), got shape ", grad.shape().DebugString()));
    Tensor* out;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, grad.shape(), &out));
    const int64_t row = n == 0 ? 0 : grad.NumElements() / n;
    const int64_t* id = ids.flat<int64_t>().data();
    const float* in = grad.flat<float>().data();
    float* o = out->flat<float>().data();
    ht::HashFilter* f = filter->filter();
    for (int64_t i = 0; i < n; ++i) {
      // Each query counts one more occurrence of the id, as the table's own admission does.
      const bool filtered = !f->AdmitsEverything() && f->ShouldBeFiltered(id[i], 1);
      if (filtered) {
        std::fill_n(o + i * row, row, 0.0f);
      } else {
        std::copy_n(in + i * row, row, o + i * row);
      }
    }
  }
};

// Identity forward; its registered Python gradient calls the gradient op above.
class HashFilterInterceptGradientOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  void Compute(OpKernelContext* ctx) override { ctx->set_output(0, ctx->input(2)); }
};

REGISTER_OP("MonolithHashFilterSave")
    .Input("handle: resource")
    .Input("basename: string")
    .Output("output_handle: resource")
    .SetIsStateful()
    .SetShapeFn(shape_inference::ScalarShape);

REGISTER_OP("MonolithHashFilterRestore")
    .Input("handle: resource")
    .Input("basename: string")
    .Output("output_handle: resource")
    .SetIsStateful()
    .SetShapeFn(shape_inference::ScalarShape);

REGISTER_OP("MonolithHashFilterInterceptGradient")
    .Input("filter_handle: resource")
    .Input("ids: int64")
    .Input("embeddings: float")
    .Output("output: float")
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      c->set_output(0, c->input(2));
      return OkStatus();
    });

REGISTER_OP("MonolithHashFilterInterceptGradientGradient")
    .Input("filter_handle: resource")
    .Input("ids: int64")
    .Input("grad: float")
    .Output("output: float")
    .SetIsStateful()
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      c->set_output(0, c->input(2));
      return OkStatus();
    });

REGISTER_KERNEL_BUILDER(Name("MonolithHashFilterSave").Device(DEVICE_CPU), HashFilterSaveOp);
REGISTER_KERNEL_BUILDER(Name("MonolithHashFilterRestore").Device(DEVICE_CPU), HashFilterRestoreOp);
REGISTER_KERNEL_BUILDER(Name("MonolithHashFilterInterceptGradient").Device(DEVICE_CPU),
                        HashFilterInterceptGradientOp);
REGISTER_KERNEL_BUILDER(Name("MonolithHashFilterInterceptGradientGradient").Device(DEVICE_CPU),
                        HashFilterInterceptGradientGradientOp);

}  // namespace
}  // namespace monolith_tf
}  // namespace tensorflow
