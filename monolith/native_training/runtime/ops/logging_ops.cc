// Logging ops: tensor timestamps, timer metrics, and the machine-info resource with its memory
// health check (the result encoding and RSS reading are in runtime/monitoring, TF-free).
#include <chrono>
#include <string>

#include "monolith/native_training/runtime/monitoring/machine_health.h"
#include "monolith/native_training/runtime/monitoring/timer_stats.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/resource_mgr.h"
#include "tensorflow/core/framework/resource_op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace tensorflow {
namespace monolith_tf {
namespace {

using ::monolith::monitoring::TimerStats;

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

TimerStats& ProcessTimerStats() {
  static TimerStats* stats = new TimerStats(/*report_interval_sec=*/600);
  return *stats;
}

void EmitTimer(const std::string& key, const std::string& tags, float value) {
  const std::string report = ProcessTimerStats().Record(key, tags, value, NowMicros() / 1000000);
  if (!report.empty()) LOG(INFO) << "Timer metrics:\n" << report;
}

Status ReadScalarValue(OpKernelContext* ctx, int index, float* value) {
  const Tensor& t = ctx->input(index);
  if (!TensorShapeUtils::IsScalar(t.shape())) {
    return errors::InvalidArgument("value must be a scalar, got shape ", t.shape().DebugString());
  }
  *value = t.scalar<float>()();
  return OkStatus();
}

class TensorsTimestampOp : public OpKernel {
 public:
  using OpKernel::OpKernel;

  void Compute(OpKernelContext* ctx) override {
    for (int i = 0; i < ctx->num_inputs(); ++i) ctx->set_output(i, ctx->input(i));
    Tensor* timestamp = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(ctx->num_inputs(), TensorShape({}), &timestamp));
    timestamp->scalar<int64_t>()() = NowMicros();
  }
};

class MetricV2Op : public OpKernel {
 public:
  explicit MetricV2Op(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("key", &key_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("tags", &tags_));
  }

  void Compute(OpKernelContext* ctx) override {
    float value = 0;
    OP_REQUIRES_OK(ctx, ReadScalarValue(ctx, 0, &value));
    EmitTimer(key_, tags_, value);
  }

 private:
  std::string key_;
  std::string tags_;
};

// Deprecated form: passes `tensors_in` through and emits `value`.
class MetricOp : public OpKernel {
 public:
  explicit MetricOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("key", &key_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("tags", &tags_));
  }

  void Compute(OpKernelContext* ctx) override {
    const int num_tensors = ctx->num_inputs() - 1;
    float value = 0;
    OP_REQUIRES_OK(ctx, ReadScalarValue(ctx, num_tensors, &value));
    for (int i = 0; i < num_tensors; ++i) ctx->set_output(i, ctx->input(i));
    EmitTimer(key_, tags_, value);
  }

 private:
  std::string key_;
  std::string tags_;
};

class MachineInfo : public ResourceBase {
 public:
  explicit MachineInfo(int64_t mem_limit) : mem_limit_(mem_limit) {}

  int64_t mem_limit() const { return mem_limit_; }

  std::string DebugString() const override { return absl::StrCat("mem_limit: ", mem_limit_); }

 private:
  const int64_t mem_limit_;
};

class MachineInfoOp : public ResourceOpKernel<MachineInfo> {
 public:
  explicit MachineInfoOp(OpKernelConstruction* ctx) : ResourceOpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("mem_limit", &mem_limit_));
  }

 private:
  Status CreateResource(MachineInfo** resource) TF_EXCLUSIVE_LOCKS_REQUIRED(mu_) override {
    *resource = new MachineInfo(mem_limit_);
    return OkStatus();
  }

  int64_t mem_limit_ = 0;
};

class CheckMachineHealthOp : public OpKernel {
 public:
  using OpKernel::OpKernel;

  void Compute(OpKernelContext* ctx) override {
    const int64_t rss = ::monolith::monitoring::CurrentProcessRssBytes();
    OP_REQUIRES(ctx, rss > 0, errors::Internal("Unable to get the current process usage."));
    core::RefCountPtr<MachineInfo> info;
    OP_REQUIRES_OK(ctx, LookupResource(ctx, HandleFromInput(ctx, 0), &info));
    Tensor* result = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({}), &result));
    result->scalar<tstring>()() = ::monolith::monitoring::CheckMemory(rss, info->mem_limit());
  }
};

REGISTER_OP("MonolithTensorsTimestamp")
    .Input("tensors_in: T")
    .Output("tensors_out: T")
    .Output("timestamp: int64")
    .Attr("T: list(type)")
    // Stateful so that it is never constant-folded: the timestamp must be taken at run time.
    .SetIsStateful()
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      for (int i = 0; i < c->num_inputs(); ++i) c->set_output(i, c->input(i));
      c->set_output(c->num_inputs(), c->Scalar());
      return OkStatus();
    });

REGISTER_OP("MonolithMetricV2")
    .Input("value: float")
    .Attr("key: string")
    .Attr("tags: string = ''")
    .SetIsStateful()
    .SetShapeFn(shape_inference::NoOutputs);

REGISTER_OP("MonolithMetric")
    .Input("tensors_in: T")
    .Input("value: float")
    .Output("tensors_out: T")
    .Attr("T: list(type)")
    .Attr("key: string")
    .Attr("tags: string = ''")
    .SetIsStateful()
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      for (int i = 0; i < c->num_outputs(); ++i) c->set_output(i, c->input(i));
      return OkStatus();
    });

REGISTER_OP("MonolithMachineInfo")
    .Output("handle: resource")
    .Attr("mem_limit: int")
    .Attr("container: string = ''")
    .Attr("shared_name: string = ''")
    .SetIsStateful()
    .SetShapeFn(shape_inference::ScalarShape);

REGISTER_OP("MonolithCheckMachineHealth")
    .Input("machine_info_handle: resource")
    .Output("serialized_result: string")
    // Stateful: each run must measure memory anew, never reuse a folded or deduplicated result.
    .SetIsStateful()
    .SetShapeFn(shape_inference::ScalarShape);

REGISTER_KERNEL_BUILDER(Name("MonolithTensorsTimestamp").Device(DEVICE_CPU), TensorsTimestampOp);
REGISTER_KERNEL_BUILDER(Name("MonolithMetricV2").Device(DEVICE_CPU), MetricV2Op);
REGISTER_KERNEL_BUILDER(Name("MonolithMetric").Device(DEVICE_CPU), MetricOp);
REGISTER_KERNEL_BUILDER(Name("MonolithMachineInfo").Device(DEVICE_CPU), MachineInfoOp);
REGISTER_KERNEL_BUILDER(Name("MonolithCheckMachineHealth").Device(DEVICE_CPU),
                        CheckMachineHealthOp);

}  // namespace
}  // namespace monolith_tf
}  // namespace tensorflow
