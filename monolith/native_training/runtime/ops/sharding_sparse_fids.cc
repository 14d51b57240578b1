// ShardingSparseFids{,V2,V3,V4,V5} (fused_layout.md §6): parse the fids of a batch of Example /
// ExampleBatch / Instance protos, shard them over ps_num shards and emit the fid lists and offset
// tensors of the fused layout ops. The algorithm lives in runtime/layout/sharding.h (TF-free);
// protos are decoded by hand from the variant's bytes (see serialized_proto_variant.h).
#include <string>
#include <string_view>
#include <vector>

#include "monolith/native_training/runtime/layout/batch_fids.h"
#include "monolith/native_training/runtime/layout/layout_config.h"
#include "monolith/native_training/runtime/layout/sharding.h"
#include "monolith/native_training/runtime/ops/serialized_proto_variant.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/variant.h"

namespace tensorflow {
namespace monolith_tf {
namespace {

using ::monolith::layout::BatchFids;
using ::monolith::layout::LayoutConfig;
using ::monolith::layout::ShardingResult;

#define SHARDING_ATTRS                                      \
  Attr("ps_num: int")                                       \
      .Attr("feature_cfgs: string")                         \
      .Attr("unique: bool")                                 \
      .Attr("input_type: string")                           \
      .Attr("parallel_flag: int")                           \
      .Attr("single_thread_feature_watermark: int = 320000")

Status VectorOutputs(shape_inference::InferenceContext* c) {
  for (int i = 0; i < c->num_outputs(); ++i) c->set_output(i, c->Vector(c->UnknownDim()));
  return OkStatus();
}

Status ShapeV1ToV3(shape_inference::InferenceContext* c) {
  TF_RETURN_IF_ERROR(VectorOutputs(c));
  c->set_output(c->num_outputs() - 1, c->Scalar());
  return OkStatus();
}

REGISTER_OP("ShardingSparseFids")
    .Input("pb_input: variant")
    .Output("fid_list: N * int64")
    .Output("fid_offset: uint64")
    .Output("feature_offset: int32")
    .Output("nfl_offset: uint32")
    .Output("batch_size: int32")
    .SHARDING_ATTRS
    .Attr("N: int")
    .SetDoNotOptimize()
    .SetShapeFn(ShapeV1ToV3);

// V2 and V3 share a signature and a kernel.
#define SHARDING_ROW_SPLITS_SIGNATURE                 \
  Input("pb_input: variant")                          \
      .Output("fid_list: N * int64")                  \
      .Output("fid_list_row_splits: N * int64")       \
      .Output("fid_offset: uint64")                   \
      .Output("feature_offset: int32")                \
      .Output("nfl_offset: uint32")                   \
      .Output("batch_size: int32")                    \
      .SHARDING_ATTRS                                 \
      .Attr("N: int")                                 \
      .SetDoNotOptimize()                             \
      .SetShapeFn(ShapeV1ToV3)

REGISTER_OP("ShardingSparseFidsV2").SHARDING_ROW_SPLITS_SIGNATURE;
REGISTER_OP("ShardingSparseFidsV3").SHARDING_ROW_SPLITS_SIGNATURE;

REGISTER_OP("ShardingSparseFidsV4")
    .Input("pb_input: variant")
    .Output("fid_list: int64")
    .Output("fid_list_row_splits: int64")
    .Output("fid_list_table_row_length: int32")
    .Output("fid_list_shard_row_lenth: int32")
    .Output("fid_list_emb_row_lenth: int32")
    .Output("fid_offset: uint64")
    .Output("feature_offset: int32")
    .Output("nfl_offset: uint32")
    .Output("batch_size: int32")
    .SHARDING_ATTRS
    .SetDoNotOptimize()
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      TF_RETURN_IF_ERROR(VectorOutputs(c));
      int ps_num;
      std::string bytes;
      TF_RETURN_IF_ERROR(c->GetAttr("ps_num", &ps_num));
      TF_RETURN_IF_ERROR(c->GetAttr("feature_cfgs", &bytes));
      LayoutConfig config;
      if (LayoutConfig::Parse(bytes, &config).empty()) {
        const int64_t tables = config.tables().size();
        c->set_output(2, c->Vector(ps_num * tables));
        c->set_output(3, c->Vector(ps_num));
        c->set_output(4, c->Vector(ps_num * tables));
      }
      c->set_output(8, c->Scalar());
      return OkStatus();
    });

REGISTER_OP("ShardingSparseFidsV5")
    .Input("pb_input: variant")
    .Output("fid_list: N * int64")
    .Output("fid_list_row_splits: N * int64")
    .Output("fid_list_row_splits_size: N * int32")
    .Output("fid_offset: uint64")
    .Output("feature_offset: int32")
    .Output("nfl_offset: uint32")
    .Output("batch_size: int32")
    .Output("nfl_size: int32")
    .Output("feature_size: int32")
    .Output("fid_size: int32")
    .Output("emb_size: int32")
    .SHARDING_ATTRS
    .Attr("N: int")
    .SetDoNotOptimize()
    .SetShapeFn(VectorOutputs);

template <typename T, typename Container>
Status Emit(OpKernelContext* ctx, const char* name, int index, const Container& values) {
  OpOutputList list;
  TF_RETURN_IF_ERROR(ctx->output_list(name, &list));
  Tensor* t;
  TF_RETURN_IF_ERROR(list.allocate(index, TensorShape({static_cast<int64_t>(values.size())}), &t));
  std::copy(values.begin(), values.end(), t->flat<T>().data());
  return OkStatus();
}

template <typename T>
Status EmitScalar(OpKernelContext* ctx, const char* name, T value, bool vector) {
  Tensor* t;
  TF_RETURN_IF_ERROR(ctx->allocate_output(name, vector ? TensorShape({1}) : TensorShape({}), &t));
  t->flat<T>()(0) = value;
  return OkStatus();
}

class ShardingSparseFidsOp : public OpKernel {
 public:
  ShardingSparseFidsOp(OpKernelConstruction* ctx, int version) : OpKernel(ctx), version_(version) {
    std::string bytes;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("feature_cfgs", &bytes));
    const std::string err = LayoutConfig::Parse(bytes, &config_);
    OP_REQUIRES(ctx, err.empty(),
                err == "Failed to parse the feature_cfgs_." ? errors::FailedPrecondition(err)
                                                            : errors::InvalidArgument(err));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("ps_num", &ps_num_));
    OP_REQUIRES(ctx, ps_num_ > 0, errors::InvalidArgument("ps_num must be > 0, got ", ps_num_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("unique", &unique_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("input_type", &input_type_));
    OP_REQUIRES(ctx, input_type_ == "example" || input_type_ == "examplebatch" || input_type_ == "instance",
                errors::FailedPrecondition("input_type only support example/examplebatch."));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("parallel_flag", &parallel_flag_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("single_thread_feature_watermark", &watermark_));
    if (version_ != 4) {
      int n;
      OP_REQUIRES_OK(ctx, ctx->GetAttr("N", &n));
      const int64_t expected = ps_num_ * static_cast<int64_t>(config_.tables().size());
      OP_REQUIRES(ctx, n == expected,
                  errors::InvalidArgument("N must be ps_num * num_tables = ", expected, ", got ", n));
    }
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& input = ctx->input(0);
    std::vector<std::string_view> protos;
    for (int64_t i = 0; i < input.NumElements(); ++i) {
      const SerializedProto* p = input.flat<Variant>()(i).get<SerializedProto>();
      OP_REQUIRES(ctx, p != nullptr,
                  errors::InvalidArgument("pb_input[", i, "] does not hold a parsed proto of a V2 parse op"));
      protos.push_back(p->bytes);
    }
    BatchFids batch;
    std::string err;
    if (input_type_ == "examplebatch") {
      OP_REQUIRES(ctx, protos.size() == 1,
                  errors::InvalidArgument("examplebatch input must hold one ExampleBatch, got ", protos.size()));
      err = ::monolith::layout::ExtractFromExampleBatch(config_, protos[0], &batch);
    } else if (input_type_ == "example") {
      err = ::monolith::layout::ExtractFromExamples(config_, protos, &batch);
    } else {
      err = ::monolith::layout::ExtractFromInstances(config_, protos, &batch);
    }
    OP_REQUIRES(ctx, err.empty(), errors::InvalidArgument(err));

    ::monolith::layout::ParallelRunner runner;
    if (parallel_flag_ > 0) {
      auto* pool = ctx->device()->tensorflow_cpu_worker_threads()->workers;
      runner = [pool](int64_t n, const std::function<void(int64_t)>& fn) {
        pool->ParallelFor(n, [&fn](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) fn(i);
        });
      };
    }
    ShardingResult r;
    err = ::monolith::layout::ShardFids(config_, batch, ps_num_, unique_, version_, watermark_, runner, &r);
    OP_REQUIRES(ctx, err.empty(), errors::InvalidArgument(err));
    OP_REQUIRES_OK(ctx, EmitOutputs(ctx, r));
  }

 private:
  Status EmitOutputs(OpKernelContext* ctx, const ShardingResult& r) {
    const int P = ps_num_, T = config_.tables().size(), N = P * T;
    auto emit_1d = [&](const char* name, auto values, auto tag) -> Status {
      using T_ = decltype(tag);
      Tensor* t;
      TF_RETURN_IF_ERROR(ctx->allocate_output(name, TensorShape({static_cast<int64_t>(values.size())}), &t));
      std::copy(values.begin(), values.end(), t->flat<T_>().data());
      return OkStatus();
    };
    if (version_ == 4) {
      // Shard-major (ps outer, table inner) concatenations.
      std::vector<int64_t> fids, splits;
      std::vector<int32_t> table_rows(N), shard_rows(P, 0), emb_rows(N);
      for (int ps = 0; ps < P; ++ps) {
        for (int ti = 0; ti < T; ++ti) {
          const int i = ti * P + ps;
          fids.insert(fids.end(), r.fids.begin() + r.list_begin[i], r.fids.begin() + r.list_begin[i + 1]);
          splits.insert(splits.end(), r.row_splits[i].begin(), r.row_splits[i].end());
          table_rows[ps * T + ti] = r.list_begin[i + 1] - r.list_begin[i];
          shard_rows[ps] += table_rows[ps * T + ti];
          if (r.emb_elems[i] > INT32_MAX) return errors::InvalidArgument("embedding piece too large");
          emb_rows[ps * T + ti] = r.emb_elems[i];
        }
      }
      TF_RETURN_IF_ERROR(emit_1d("fid_list", fids, int64_t()));
      TF_RETURN_IF_ERROR(emit_1d("fid_list_row_splits", splits, int64_t()));
      TF_RETURN_IF_ERROR(emit_1d("fid_list_table_row_length", table_rows, int32()));
      TF_RETURN_IF_ERROR(emit_1d("fid_list_shard_row_lenth", shard_rows, int32()));
      TF_RETURN_IF_ERROR(emit_1d("fid_list_emb_row_lenth", emb_rows, int32()));
    } else {
      for (int i = 0; i < N; ++i) {
        std::vector<int64_t> list(r.fids.begin() + r.list_begin[i], r.fids.begin() + r.list_begin[i + 1]);
        TF_RETURN_IF_ERROR(Emit<int64_t>(ctx, "fid_list", i, list));
        if (version_ >= 2) TF_RETURN_IF_ERROR(Emit<int64_t>(ctx, "fid_list_row_splits", i, r.row_splits[i]));
        if (version_ == 5) {
          TF_RETURN_IF_ERROR(Emit<int32>(ctx, "fid_list_row_splits_size", i,
                                         std::vector<int32>{static_cast<int32>(r.row_splits[i].size())}));
        }
      }
    }
    TF_RETURN_IF_ERROR(emit_1d("fid_offset", r.fid_offset, uint64()));
    TF_RETURN_IF_ERROR(emit_1d("feature_offset", r.feature_offset, int32()));
    TF_RETURN_IF_ERROR(emit_1d("nfl_offset", r.nfl_offset, uint32()));
    TF_RETURN_IF_ERROR(EmitScalar<int32>(ctx, "batch_size", r.batch_size, version_ == 5));
    if (version_ == 5) {
      TF_RETURN_IF_ERROR(EmitScalar<int32>(ctx, "nfl_size", r.nfl_offset.size(), true));
      TF_RETURN_IF_ERROR(EmitScalar<int32>(ctx, "feature_size", r.feature_offset.size(), true));
      TF_RETURN_IF_ERROR(EmitScalar<int32>(ctx, "fid_size", r.fid_offset.size(), true));
      std::vector<int32> emb_size(r.emb_elems.begin(), r.emb_elems.end());
      TF_RETURN_IF_ERROR(emit_1d("emb_size", emb_size, int32()));
    }
    return OkStatus();
  }

  const int version_;
  LayoutConfig config_;
  int ps_num_ = 1;
  bool unique_ = false;
  std::string input_type_;
  int parallel_flag_ = 0;
  int64_t watermark_ = 320000;
};

template <int kVersion>
class ShardingSparseFidsOpV : public ShardingSparseFidsOp {
 public:
  explicit ShardingSparseFidsOpV(OpKernelConstruction* ctx) : ShardingSparseFidsOp(ctx, kVersion) {}
};

REGISTER_KERNEL_BUILDER(Name("ShardingSparseFids").Device(DEVICE_CPU), ShardingSparseFidsOpV<1>);
REGISTER_KERNEL_BUILDER(Name("ShardingSparseFidsV2").Device(DEVICE_CPU), ShardingSparseFidsOpV<2>);
REGISTER_KERNEL_BUILDER(Name("ShardingSparseFidsV3").Device(DEVICE_CPU), ShardingSparseFidsOpV<3>);
REGISTER_KERNEL_BUILDER(Name("ShardingSparseFidsV4").Device(DEVICE_CPU), ShardingSparseFidsOpV<4>);
REGISTER_KERNEL_BUILDER(Name("ShardingSparseFidsV5").Device(DEVICE_CPU), ShardingSparseFidsOpV<5>);

}  // namespace
}  // namespace monolith_tf
}  // namespace tensorflow
