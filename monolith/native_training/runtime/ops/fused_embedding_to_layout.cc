// MonolithEmbeddingToLayout{,V2,V3,V4,V5} and their gradient ops (fused_layout.md §4, §5): thin
// TensorFlow wrappers over the TF-free cores in runtime/layout. Inputs are validated and bad
// offsets/sizes come back as InvalidArgument naming the feature (upstream CHECK-crashes, Quirk Q7).
// Under --config=cuda (MONOLITH_USE_CUDA) V3/V4/V5 and their gradients also get GPU kernels, run
// by the TF-free CUDA core runtime/layout/layout_gpu.cu.cc.
//
// feature_cfgs is a serialized FeatureConfigs decoded by hand (runtime/layout/wire.h): this library
// must not link generated C++ protobuf code, since TF exports its own protobuf runtime.
#include <algorithm>
#include <string>
#include <vector>

#include "monolith/native_training/runtime/common/huge_pages.h"
#include "monolith/native_training/runtime/layout/layout_config.h"
#include "monolith/native_training/runtime/layout/layout_kernels.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/framework/tensor.h"

#ifdef MONOLITH_USE_CUDA
#include "monolith/native_training/runtime/layout/layout_gpu.h"
#include "xla/stream_executor/stream.h"
#endif

namespace tensorflow {
namespace monolith_tf {
namespace {

using ::monolith::layout::Block;
using ::monolith::layout::FloatBuffer;
using ::monolith::layout::LayoutConfig;
using ::monolith::layout::Offsets;
using ::monolith::layout::OutputInfo;
using ::monolith::layout::ParallelRunner;

constexpr char kParseError[] = "Failed to parse the feature_cfgs_.";

Status ParseConfig(const std::string& bytes, LayoutConfig* config) {
  const std::string err = LayoutConfig::Parse(bytes, config);
  if (err.empty()) return OkStatus();
  if (err == kParseError) return errors::FailedPrecondition(err);
  return errors::InvalidArgument(err);
}

Status LayoutShapeFn(shape_inference::InferenceContext* c) {
  std::string bytes;
  TF_RETURN_IF_ERROR(c->GetAttr("feature_cfgs", &bytes));
  LayoutConfig config;
  TF_RETURN_IF_ERROR(ParseConfig(bytes, &config));
  if (config.num_out() != c->num_outputs()) {
    return errors::InvalidArgument("num_out is ", c->num_outputs(), " but feature_cfgs has ",
                                   config.num_out(), " layout tensors");
  }
  for (int i = 0; i < config.num_out(); ++i) {
    std::vector<shape_inference::DimensionHandle> dims = {c->UnknownDim()};
    for (size_t d = 1; d < config.outputs()[i].dims.size(); ++d) {
      dims.push_back(c->MakeDim(config.outputs()[i].dims[d]));
    }
    c->set_output(i, c->MakeShape(dims));
  }
  return OkStatus();
}

Status GradShapeFn(shape_inference::InferenceContext* c) {
  for (int i = 0; i < c->num_outputs(); ++i) c->set_output(i, c->input(i));
  return OkStatus();
}

#define LAYOUT_OFFSET_INPUTS                 \
  Input("fid_offset: uint64")                \
      .Input("feature_offset: int32")        \
      .Input("nfl_offset: uint32")           \
      .Input("batch_size: int32")

#define LAYOUT_ATTRS                         \
  Attr("M: int >= 1")                        \
      .Attr("variant_type: string")          \
      .Attr("feature_cfgs: string")

REGISTER_OP("MonolithEmbeddingToLayout")
    .Input("embeddings_list: M * float")
    .LAYOUT_OFFSET_INPUTS
    .Output("tensors: num_out * float")
    .LAYOUT_ATTRS
    .Attr("num_out: int >= 0")
    .SetDoNotOptimize()
    .SetShapeFn(LayoutShapeFn);

REGISTER_OP("MonolithEmbeddingToLayoutV2")
    .Input("embeddings_list: M * float")
    .Input("fid_list_row_split: M * int64")
    .LAYOUT_OFFSET_INPUTS
    .Output("tensors: num_out * float")
    .LAYOUT_ATTRS
    .Attr("num_out: int >= 0")
    .Attr("ps_num: int")
    .Attr("parallel_flag: int = 0")
    .SetDoNotOptimize()
    .SetShapeFn(LayoutShapeFn);

REGISTER_OP("MonolithEmbeddingToLayoutV3")
    .Input("embeddings_list: M * float")
    .LAYOUT_OFFSET_INPUTS
    .Output("tensors: num_out * float")
    .LAYOUT_ATTRS
    .Attr("num_out: int >= 0")
    .Attr("ps_num: int")
    .Attr("parallel_flag: int = 0")
    .SetDoNotOptimize()
    .SetShapeFn(LayoutShapeFn);

REGISTER_OP("MonolithEmbeddingToLayoutV4")
    .Input("embeddings_list: M * float")
    .Input("fid_list_emb_row_lenth: int32")
    .LAYOUT_OFFSET_INPUTS
    .Output("tensors: num_out * float")
    .LAYOUT_ATTRS
    .Attr("num_out: int >= 0")
    .Attr("ps_num: int")
    .Attr("parallel_flag: int = 0")
    .SetDoNotOptimize()
    .SetShapeFn(LayoutShapeFn);

REGISTER_OP("MonolithEmbeddingToLayoutV5")
    .Input("embeddings_list: M * float")
    .LAYOUT_OFFSET_INPUTS
    .Input("nfl_size: int32")
    .Input("feature_size: int32")
    .Input("fid_size: int32")
    .Input("emb_size: int32")
    .Output("tensors: num_out * float")
    .LAYOUT_ATTRS
    .Attr("num_out: int >= 0")
    .Attr("ps_num: int")
    .Attr("parallel_flag: int = 0")
    .SetDoNotOptimize()
    .SetShapeFn(LayoutShapeFn);

REGISTER_OP("MonolithEmbeddingToLayoutGrad")
    .Input("embeddings_list: M * float")
    .LAYOUT_OFFSET_INPUTS
    .Input("tensors_grad: num_input * float")
    .Output("embeddings_grad_list: M * float")
    .LAYOUT_ATTRS
    .Attr("num_input: int >= 0")
    .SetDoNotOptimize()
    .SetShapeFn(GradShapeFn);

REGISTER_OP("MonolithEmbeddingToLayoutGradV2")
    .Input("embeddings_list: M * float")
    .Input("fid_list_row_split: M * int64")
    .LAYOUT_OFFSET_INPUTS
    .Input("tensors_grad: num_input * float")
    .Output("embeddings_grad_list: M * float")
    .LAYOUT_ATTRS
    .Attr("num_input: int >= 0")
    .Attr("ps_num: int")
    .Attr("parallel_flag: int = 0")
    .SetDoNotOptimize()
    .SetShapeFn(GradShapeFn);

REGISTER_OP("MonolithEmbeddingToLayoutGradV3")
    .Input("embeddings_list: M * float")
    .LAYOUT_OFFSET_INPUTS
    .Input("tensors_grad: num_input * float")
    .Output("embeddings_grad_list: M * float")
    .LAYOUT_ATTRS
    .Attr("num_input: int >= 0")
    .Attr("ps_num: int")
    .Attr("parallel_flag: int = 0")
    .SetDoNotOptimize()
    .SetShapeFn(GradShapeFn);

REGISTER_OP("MonolithEmbeddingToLayoutGradV4")
    .Input("embeddings_list: M * float")
    .Input("fid_list_emb_row_lenth: int32")
    .LAYOUT_OFFSET_INPUTS
    .Input("tensors_grad: num_input * float")
    .Output("embeddings_grad_list: M * float")
    .LAYOUT_ATTRS
    .Attr("num_input: int >= 0")
    .Attr("ps_num: int")
    .Attr("parallel_flag: int = 0")
    .SetDoNotOptimize()
    .SetShapeFn(GradShapeFn);

REGISTER_OP("MonolithEmbeddingToLayoutGradV5")
    .Input("embeddings_list: M * float")
    .LAYOUT_OFFSET_INPUTS
    .Input("tensors_grad: num_input * float")
    .Output("embeddings_grad_list: M * float")
    .LAYOUT_ATTRS
    .Attr("num_input: int >= 0")
    .Attr("ps_num: int")
    .Attr("parallel_flag: int = 0")
    .SetDoNotOptimize()
    .SetShapeFn(GradShapeFn);

FloatBuffer BufferOf(const Tensor& t) {
  return {const_cast<float*>(t.flat<float>().data()), t.NumElements()};
}

Status ToStatus(const std::string& err) {
  return err.empty() ? OkStatus() : errors::InvalidArgument(err);
}

// Shared by every forward and gradient kernel: the parsed config, version, attrs and the
// per-version embedding addressing.
class LayoutKernelBase : public OpKernel {
 public:
  LayoutKernelBase(OpKernelConstruction* ctx, int version) : OpKernel(ctx), version_(version) {
    std::string bytes;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("feature_cfgs", &bytes));
    OP_REQUIRES_OK(ctx, ParseConfig(bytes, &config_));
    if (version_ >= 2) OP_REQUIRES_OK(ctx, ctx->GetAttr("ps_num", &ps_num_));
  }

 protected:
  Status ReadOffsets(OpKernelContext* ctx, Offsets* o) const {
    const Tensor *fid, *feature, *nfl;
    TF_RETURN_IF_ERROR(ctx->input("fid_offset", &fid));
    TF_RETURN_IF_ERROR(ctx->input("feature_offset", &feature));
    TF_RETURN_IF_ERROR(ctx->input("nfl_offset", &nfl));
    *o = Offsets{fid->flat<uint64>().data(), fid->NumElements(),
                 feature->flat<int32>().data(), feature->NumElements(),
                 nfl->flat<uint32>().data(), nfl->NumElements()};
    return OkStatus();
  }

  // batch_size must hold exactly one value (v1–v4 and every gradient op).
  Status ReadBatchSize(OpKernelContext* ctx, int64_t* batch) const {
    const Tensor* t;
    TF_RETURN_IF_ERROR(ctx->input("batch_size", &t));
    if (t->NumElements() != 1) {
      return errors::InvalidArgument("batch_size must have exactly one element, got shape ",
                                     t->shape().DebugString());
    }
    *batch = t->flat<int32>()(0);
    if (*batch < 0) return errors::InvalidArgument("batch_size must be >= 0, got ", *batch);
    return OkStatus();
  }

  // Blocks over `tensors` (the embeddings, or their gradients shaped alike) for this version.
  Status BuildBlocks(OpKernelContext* ctx, const std::vector<FloatBuffer>& tensors,
                     const OpInputList& embeddings, std::vector<Block>* blocks) const {
    if (version_ == 1) {
      std::vector<int64_t> cols;
      for (int i = 0; i < embeddings.size(); ++i) {
        if (embeddings[i].dims() != 2) {
          return errors::InvalidArgument("version 1 needs 2-D embeddings, embeddings_list[", i,
                                         "] has shape ", embeddings[i].shape().DebugString());
        }
        cols.push_back(embeddings[i].dim_size(1));
      }
      *blocks = ::monolith::layout::BuildBlocksV1(tensors, cols);
      return OkStatus();
    }
    if (version_ == 2) {
      OpInputList splits;
      TF_RETURN_IF_ERROR(ctx->input_list("fid_list_row_split", &splits));
      std::vector<std::vector<int64_t>> row_splits;
      for (const Tensor& s : splits) {
        row_splits.emplace_back(s.flat<int64_t>().data(), s.flat<int64_t>().data() + s.NumElements());
      }
      return ToStatus(::monolith::layout::BuildBlocksV2(config_, ps_num_, tensors, row_splits, blocks));
    }
    if (version_ == 4) {
      if (tensors.size() != 1) {
        return errors::InvalidArgument("version 4 needs exactly one embedding tensor, got ",
                                       tensors.size());
      }
      const Tensor* lens;
      TF_RETURN_IF_ERROR(ctx->input("fid_list_emb_row_lenth", &lens));
      return ToStatus(::monolith::layout::BuildBlocksV4(config_, ps_num_, tensors[0],
                                                        lens->flat<int32>().data(),
                                                        lens->NumElements(), blocks));
    }
    *blocks = ::monolith::layout::BuildBlocksV3(tensors);
    return OkStatus();
  }

  // Every version and direction runs on TF's CPU worker pool, one row range (forward) or set of
  // gradient blocks (backward) per thread. Results are bit-identical to a serial run, so upstream's
  // parallel_flag (serial loop vs. a parallel-for over layouts, also identical results) and its
  // always-serial v1 and autodiff gradients make no observable difference here; the attr is
  // accepted and ignored.
  static ParallelRunner Runner(OpKernelContext* ctx) {
    auto* pool = ctx->device()->tensorflow_cpu_worker_threads()->workers;
    return [pool](int64_t n, const std::function<void(int64_t)>& fn) {
      pool->ParallelFor(n, [&fn](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) fn(i);
      });
    };
  }
  static int NumThreads(OpKernelContext* ctx) {
    return ctx->device()->tensorflow_cpu_worker_threads()->workers->NumThreads();
  }

  Status AllocateOutputs(OpKernelContext* ctx, int64_t batch, std::vector<FloatBuffer>* outs) const {
    OpOutputList list;
    TF_RETURN_IF_ERROR(ctx->output_list("tensors", &list));
    if (list.size() != config_.num_out()) {
      return errors::InvalidArgument("num_out is ", list.size(), " but feature_cfgs has ",
                                     config_.num_out(), " layout tensors");
    }
    for (int i = 0; i < config_.num_out(); ++i) {
      const OutputInfo& info = config_.outputs()[i];
      TensorShape shape({info.Rows(batch)});
      for (size_t d = 1; d < info.dims.size(); ++d) shape.AddDim(info.dims[d]);
      Tensor* t;
      TF_RETURN_IF_ERROR(list.allocate(i, shape, &t));
      outs->push_back(BufferOf(*t));
      ::monolith::AdviseHugePages(outs->back().data, outs->back().size * sizeof(float));
    }
    return OkStatus();
  }

  Status AllocateGrads(OpKernelContext* ctx, const OpInputList& embeddings,
                       std::vector<FloatBuffer>* grads) const {
    OpOutputList list;
    TF_RETURN_IF_ERROR(ctx->output_list("embeddings_grad_list", &list));
    for (int i = 0; i < embeddings.size(); ++i) {
      Tensor* t;
      TF_RETURN_IF_ERROR(list.allocate(i, embeddings[i].shape(), &t));
      grads->push_back(BufferOf(*t));
      ::monolith::AdviseHugePages(grads->back().data, grads->back().size * sizeof(float));
    }
    return OkStatus();
  }

  Status ReadTensorsGrad(OpKernelContext* ctx, std::vector<FloatBuffer>* grads) const {
    OpInputList list;
    TF_RETURN_IF_ERROR(ctx->input_list("tensors_grad", &list));
    if (list.size() != config_.num_out()) {
      return errors::InvalidArgument("tensors_grad has ", list.size(),
                                     " tensors but feature_cfgs has ", config_.num_out(), " layout tensors");
    }
    for (const Tensor& t : list) grads->push_back(BufferOf(t));
    return OkStatus();
  }

  // Everything a gradient op reads; the CPU and GPU gradient kernels differ only in the core run.
  struct BackwardInputs {
    std::vector<FloatBuffer> grads;  // embeddings_grad_list, allocated, not yet written
    std::vector<Block> blocks;       // over `grads`
    Offsets offsets;
    int64_t batch;
    std::vector<FloatBuffer> tensors_grad;
  };

  Status ReadBackwardInputs(OpKernelContext* ctx, BackwardInputs* in) const {
    OpInputList embeddings;
    TF_RETURN_IF_ERROR(ctx->input_list("embeddings_list", &embeddings));
    TF_RETURN_IF_ERROR(AllocateGrads(ctx, embeddings, &in->grads));
    TF_RETURN_IF_ERROR(BuildBlocks(ctx, in->grads, embeddings, &in->blocks));
    TF_RETURN_IF_ERROR(ReadOffsets(ctx, &in->offsets));
    TF_RETURN_IF_ERROR(ReadBatchSize(ctx, &in->batch));
    return ReadTensorsGrad(ctx, &in->tensors_grad);
  }

  // One v5 request's segments inside the concatenated inputs (fused_layout.md §4.3).
  struct RequestSegment {
    int64_t batch_size, row_begin;
    int64_t nfl_begin, num_nfl, entry_begin, num_entries, fid_begin, num_fids;
    std::vector<int64_t> emb_begin, emb_size;  // per embeddings_list tensor
  };

  // Reads and validates v5's batch_size / nfl_size / feature_size / fid_size / emb_size.
  Status ReadV5Requests(OpKernelContext* ctx, const std::vector<FloatBuffer>& emb, const Offsets& all,
                        std::vector<RequestSegment>* requests, int64_t* total_rows) const {
    const Tensor *batch_t, *nfl_t, *feature_t, *fid_t, *emb_t;
    TF_RETURN_IF_ERROR(ctx->input("batch_size", &batch_t));
    TF_RETURN_IF_ERROR(ctx->input("nfl_size", &nfl_t));
    TF_RETURN_IF_ERROR(ctx->input("feature_size", &feature_t));
    TF_RETURN_IF_ERROR(ctx->input("fid_size", &fid_t));
    TF_RETURN_IF_ERROR(ctx->input("emb_size", &emb_t));
    const int64_t R = batch_t->NumElements();
    const int64_t M = emb.size();
    if (nfl_t->NumElements() != R || feature_t->NumElements() != R || fid_t->NumElements() != R ||
        emb_t->NumElements() != R * M) {
      return errors::InvalidArgument("version 5 needs nfl_size, feature_size, fid_size of length ", R,
                                     " (requests) and emb_size of length ", R * M);
    }
    auto bs = batch_t->flat<int32>(), nfl = nfl_t->flat<int32>(), feat = feature_t->flat<int32>(),
         fid = fid_t->flat<int32>(), es = emb_t->flat<int32>();
    RequestSegment seg{0, 0, 0, 0, 0, 0, 0, 0, std::vector<int64_t>(M, 0), std::vector<int64_t>(M, 0)};
    for (int64_t r = 0; r < R; ++r) {
      if (bs(r) < 0 || nfl(r) < 0 || feat(r) < 0 || fid(r) < 0) {
        return errors::InvalidArgument("version 5 sizes must be >= 0 (request ", r, ")");
      }
      seg.batch_size = bs(r);
      seg.num_nfl = nfl(r);
      seg.num_entries = feat(r);
      seg.num_fids = fid(r);
      for (int64_t i = 0; i < M; ++i) {
        if (es(r * M + i) < 0) return errors::InvalidArgument("version 5 emb_size must be >= 0");
        seg.emb_size[i] = es(r * M + i);
      }
      requests->push_back(seg);
      seg.row_begin += seg.batch_size;
      seg.nfl_begin += seg.num_nfl;
      seg.entry_begin += seg.num_entries;
      seg.fid_begin += seg.num_fids;
      for (int64_t i = 0; i < M; ++i) seg.emb_begin[i] += seg.emb_size[i];
    }
    if (seg.nfl_begin != all.num_nfl || seg.entry_begin != all.num_entries || seg.fid_begin != all.num_fids) {
      return errors::InvalidArgument("version 5: nfl_size/feature_size/fid_size sum to ", seg.nfl_begin, "/",
                                     seg.entry_begin, "/", seg.fid_begin, " but the offsets have ",
                                     all.num_nfl, "/", all.num_entries, "/", all.num_fids);
    }
    for (int64_t i = 0; i < M; ++i) {
      if (seg.emb_begin[i] != emb[i].size) {
        return errors::InvalidArgument("version 5: emb_size for embeddings_list[", i, "] sums to ",
                                       seg.emb_begin[i], " but the tensor has ", emb[i].size, " elements");
      }
    }
    *total_rows = seg.row_begin;
    // A positive dim 0 in the config is used literally; it must hold every request's rows.
    for (int i = 0; i < config_.num_out(); ++i) {
      if (config_.outputs()[i].Rows(*total_rows) < *total_rows) {
        return errors::InvalidArgument("layout tensor ", i, " cannot hold the ", *total_rows,
                                       " rows of all requests");
      }
    }
    return OkStatus();
  }

  const int version_;
  LayoutConfig config_;
  int ps_num_ = 0;
};

// Binds a kernel class to one op version, as REGISTER_KERNEL_BUILDER needs a one-argument constructor.
template <class Kernel, int kVersion>
class Versioned : public Kernel {
 public:
  explicit Versioned(OpKernelConstruction* ctx) : Kernel(ctx, kVersion) {}
};

class LayoutForwardCpu : public LayoutKernelBase {
 public:
  LayoutForwardCpu(OpKernelConstruction* ctx, int version) : LayoutKernelBase(ctx, version) {}

  void Compute(OpKernelContext* ctx) override {
    OpInputList embeddings;
    OP_REQUIRES_OK(ctx, ctx->input_list("embeddings_list", &embeddings));
    std::vector<FloatBuffer> emb;
    for (const Tensor& t : embeddings) emb.push_back(BufferOf(t));
    std::vector<Block> blocks;
    OP_REQUIRES_OK(ctx, BuildBlocks(ctx, emb, embeddings, &blocks));
    Offsets offsets;
    OP_REQUIRES_OK(ctx, ReadOffsets(ctx, &offsets));
    if (version_ == 5) {
      ComputeV5(ctx, emb, offsets);
      return;
    }
    int64_t batch;
    OP_REQUIRES_OK(ctx, ReadBatchSize(ctx, &batch));
    std::vector<FloatBuffer> outs;
    OP_REQUIRES_OK(ctx, AllocateOutputs(ctx, batch, &outs));
    OP_REQUIRES_OK(ctx, ToStatus(::monolith::layout::LayoutForward(config_, blocks, offsets, batch,
                                                                    outs, Runner(ctx), NumThreads(ctx))));
  }

 private:
  // Several requests concatenated (fused_layout.md §4.3 v5): each request is run on its own
  // segments of the offsets and embeddings and writes its own rows. (Upstream's CPU kernel
  // supports one request only; the GPU kernel's multi-request semantics are used here.)
  void ComputeV5(OpKernelContext* ctx, const std::vector<FloatBuffer>& emb, const Offsets& all) {
    std::vector<RequestSegment> requests;
    int64_t total_rows = 0;
    OP_REQUIRES_OK(ctx, ReadV5Requests(ctx, emb, all, &requests, &total_rows));
    std::vector<FloatBuffer> outs;
    OP_REQUIRES_OK(ctx, AllocateOutputs(ctx, total_rows, &outs));
    for (const RequestSegment& r : requests) {
      Offsets o{all.fid_offset + r.fid_begin, r.num_fids, all.feature_offset + r.entry_begin,
                r.num_entries, all.nfl_offset + r.nfl_begin, r.num_nfl};
      std::vector<FloatBuffer> req_emb;
      for (size_t i = 0; i < emb.size(); ++i) req_emb.push_back({emb[i].data + r.emb_begin[i], r.emb_size[i]});
      std::vector<FloatBuffer> req_outs;
      for (int i = 0; i < config_.num_out(); ++i) {
        const int64_t row_elems = config_.outputs()[i].row_elems;
        req_outs.push_back({outs[i].data + r.row_begin * row_elems, r.batch_size * row_elems});
      }
      OP_REQUIRES_OK(ctx, ToStatus(::monolith::layout::LayoutForward(
                              config_, ::monolith::layout::BuildBlocksV3(req_emb), o, r.batch_size,
                              req_outs, Runner(ctx), NumThreads(ctx))));
    }
  }
};

class LayoutBackwardCpu : public LayoutKernelBase {
 public:
  LayoutBackwardCpu(OpKernelConstruction* ctx, int version) : LayoutKernelBase(ctx, version) {}

  void Compute(OpKernelContext* ctx) override {
    BackwardInputs in;
    OP_REQUIRES_OK(ctx, ReadBackwardInputs(ctx, &in));
    // The CPU core accumulates into the gradients, which are as large as the embedding tables.
    ::monolith::layout::ZeroBuffers(in.grads, Runner(ctx));
    OP_REQUIRES_OK(ctx, ToStatus(::monolith::layout::LayoutBackward(config_, in.blocks, in.offsets, in.batch,
                                                                     in.tensors_grad, Runner(ctx),
                                                                     NumThreads(ctx))));
  }
};

REGISTER_KERNEL_BUILDER(Name("MonolithEmbeddingToLayout").Device(DEVICE_CPU), Versioned<LayoutForwardCpu, 1>);
REGISTER_KERNEL_BUILDER(Name("MonolithEmbeddingToLayoutV2").Device(DEVICE_CPU), Versioned<LayoutForwardCpu, 2>);
REGISTER_KERNEL_BUILDER(Name("MonolithEmbeddingToLayoutV3").Device(DEVICE_CPU), Versioned<LayoutForwardCpu, 3>);
REGISTER_KERNEL_BUILDER(Name("MonolithEmbeddingToLayoutV4").Device(DEVICE_CPU), Versioned<LayoutForwardCpu, 4>);
REGISTER_KERNEL_BUILDER(Name("MonolithEmbeddingToLayoutV5").Device(DEVICE_CPU), Versioned<LayoutForwardCpu, 5>);
REGISTER_KERNEL_BUILDER(Name("MonolithEmbeddingToLayoutGrad").Device(DEVICE_CPU), Versioned<LayoutBackwardCpu, 1>);
REGISTER_KERNEL_BUILDER(Name("MonolithEmbeddingToLayoutGradV2").Device(DEVICE_CPU), Versioned<LayoutBackwardCpu, 2>);
REGISTER_KERNEL_BUILDER(Name("MonolithEmbeddingToLayoutGradV3").Device(DEVICE_CPU), Versioned<LayoutBackwardCpu, 3>);
REGISTER_KERNEL_BUILDER(Name("MonolithEmbeddingToLayoutGradV4").Device(DEVICE_CPU), Versioned<LayoutBackwardCpu, 4>);
// GradV5 has GradV3's inputs and semantics (single request).
REGISTER_KERNEL_BUILDER(Name("MonolithEmbeddingToLayoutGradV5").Device(DEVICE_CPU), Versioned<LayoutBackwardCpu, 3>);

#ifdef MONOLITH_USE_CUDA
// GPU kernels (V3/V4/V5 and their gradients): the same block tables over device memory, run by the
// CUDA core in runtime/layout/layout_gpu.cu.cc on the op's stream. parallel_flag is ignored.
void* CudaStream(OpKernelContext* ctx) {
  return ctx->op_device_context()->stream()->platform_specific_handle().stream;
}

::monolith::layout::gpu::Request WholeRequest(const Offsets& o, int64_t batch, int64_t num_blocks) {
  ::monolith::layout::gpu::Request r;
  r.batch_size = batch;
  r.num_nfl = o.num_nfl;
  r.num_entries = o.num_entries;
  r.num_fids = o.num_fids;
  r.num_blocks = num_blocks;
  return r;
}

class LayoutForwardGpu : public LayoutKernelBase {
 public:
  LayoutForwardGpu(OpKernelConstruction* ctx, int version) : LayoutKernelBase(ctx, version) {}

  void Compute(OpKernelContext* ctx) override {
    OpInputList embeddings;
    OP_REQUIRES_OK(ctx, ctx->input_list("embeddings_list", &embeddings));
    std::vector<FloatBuffer> emb;
    for (const Tensor& t : embeddings) emb.push_back(BufferOf(t));
    Offsets offsets;
    OP_REQUIRES_OK(ctx, ReadOffsets(ctx, &offsets));
    std::vector<Block> blocks;
    std::vector<::monolith::layout::gpu::Request> requests;
    int64_t rows;
    if (version_ == 5) {
      std::vector<RequestSegment> segments;
      OP_REQUIRES_OK(ctx, ReadV5Requests(ctx, emb, offsets, &segments, &rows));
      const int64_t M = emb.size();
      for (size_t r = 0; r < segments.size(); ++r) {
        const RequestSegment& seg = segments[r];
        ::monolith::layout::gpu::Request q;
        q.batch_size = seg.batch_size;
        q.row_begin = seg.row_begin;
        q.nfl_begin = seg.nfl_begin;
        q.num_nfl = seg.num_nfl;
        q.entry_begin = seg.entry_begin;
        q.num_entries = seg.num_entries;
        q.fid_begin = seg.fid_begin;
        q.num_fids = seg.num_fids;
        q.block_begin = r * M;
        q.num_blocks = M;
        requests.push_back(q);
        for (int64_t i = 0; i < M; ++i) blocks.push_back({emb[i].data + seg.emb_begin[i], 1, seg.emb_size[i]});
      }
    } else {
      OP_REQUIRES_OK(ctx, BuildBlocks(ctx, emb, embeddings, &blocks));
      OP_REQUIRES_OK(ctx, ReadBatchSize(ctx, &rows));
      requests.push_back(WholeRequest(offsets, rows, blocks.size()));
    }
    std::vector<FloatBuffer> outs;
    OP_REQUIRES_OK(ctx, AllocateOutputs(ctx, rows, &outs));
    OP_REQUIRES_OK(ctx, ToStatus(::monolith::layout::gpu::LayoutForward(config_, blocks, offsets, requests,
                                                                         outs, CudaStream(ctx))));
  }
};

class LayoutBackwardGpu : public LayoutKernelBase {
 public:
  LayoutBackwardGpu(OpKernelConstruction* ctx, int version) : LayoutKernelBase(ctx, version) {}

  void Compute(OpKernelContext* ctx) override {
    BackwardInputs in;
    OP_REQUIRES_OK(ctx, ReadBackwardInputs(ctx, &in));
    OP_REQUIRES_OK(ctx, ToStatus(::monolith::layout::gpu::LayoutBackward(config_, in.blocks, in.offsets,
                                                                          in.batch, in.tensors_grad, in.grads,
                                                                          CudaStream(ctx))));
  }
};

REGISTER_KERNEL_BUILDER(Name("MonolithEmbeddingToLayoutV3").Device(DEVICE_GPU).HostMemory("batch_size"),
                        Versioned<LayoutForwardGpu, 3>);
REGISTER_KERNEL_BUILDER(Name("MonolithEmbeddingToLayoutV4")
                            .Device(DEVICE_GPU)
                            .HostMemory("batch_size")
                            .HostMemory("fid_list_emb_row_lenth"),
                        Versioned<LayoutForwardGpu, 4>);
REGISTER_KERNEL_BUILDER(Name("MonolithEmbeddingToLayoutV5")
                            .Device(DEVICE_GPU)
                            .HostMemory("batch_size")
                            .HostMemory("nfl_size")
                            .HostMemory("feature_size")
                            .HostMemory("fid_size")
                            .HostMemory("emb_size"),
                        Versioned<LayoutForwardGpu, 5>);
REGISTER_KERNEL_BUILDER(Name("MonolithEmbeddingToLayoutGradV3").Device(DEVICE_GPU).HostMemory("batch_size"),
                        Versioned<LayoutBackwardGpu, 3>);
REGISTER_KERNEL_BUILDER(Name("MonolithEmbeddingToLayoutGradV4")
                            .Device(DEVICE_GPU)
                            .HostMemory("batch_size")
                            .HostMemory("fid_list_emb_row_lenth"),
                        Versioned<LayoutBackwardGpu, 4>);
REGISTER_KERNEL_BUILDER(Name("MonolithEmbeddingToLayoutGradV5").Device(DEVICE_GPU).HostMemory("batch_size"),
                        Versioned<LayoutBackwardGpu, 3>);
#endif  // MONOLITH_USE_CUDA

}  // namespace
}  // namespace monolith_tf
}  // namespace tensorflow
