// The parse ops of Example / ExampleBatch / Instance batches. Both kinds emit the requested dense
// and LineId ("extra") features as [batch, size] tensors; then
// - ParseExamplesV2 / ParseExampleBatchV2 / ParseInstancesV2 (fused-layout mode, fused_layout.md
//   §7.3): `sparse_features`, a variant tensor of the protos themselves for ShardingSparseFids*;
// - ParseExamples / ParseExampleBatch / ParseInstances (the default, non-fused mode): the fids of
//   each feature of `sparse_names` as a ragged [batch, None] int64 tensor (`ragged_values` and
//   `ragged_splits`), extracted like ShardingSparseFids does (runtime/layout/batch_fids.h:
//   fid_v1 values converted to v2, Instance v1 fids routed by slot to slot_<n> / fc_slot_<n>,
//   a SHARED ExampleBatch list repeated on every row).
// Protos are decoded by hand (runtime/layout/wire.h) and kept serialized in the variant: this
// library must not link generated C++ protobuf code, since TF exports its own protobuf runtime.
#include <cstring>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "monolith/native_training/runtime/layout/batch_fids.h"
#include "monolith/native_training/runtime/layout/layout_config.h"
#include "monolith/native_training/runtime/layout/wire.h"
#include "monolith/native_training/runtime/ops/serialized_proto_variant.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/variant.h"
#include "tensorflow/core/framework/variant_encode_decode.h"
#include "tensorflow/core/framework/variant_op_registry.h"

namespace tensorflow {
namespace monolith_tf {

REGISTER_UNARY_VARIANT_DECODE_FUNCTION(SerializedProto, "MonolithSerializedProto");

namespace {

using ::monolith::layout::WireField;
using ::monolith::layout::WireReader;

// Values of one feature of one row, in the order they appear.
struct Values {
  std::vector<double> numbers;
  std::vector<std::string_view> strings;
  void Clear() {
    numbers.clear();
    strings.clear();
  }
};

void AppendScalar(const WireField& f, bool is_float, bool is_double, bool is_signed, Values* v) {
  if (is_float) {
    float x;
    uint32_t bits = static_cast<uint32_t>(f.varint);
    std::memcpy(&x, &bits, 4);
    v->numbers.push_back(x);
  } else if (is_double) {
    double x;
    std::memcpy(&x, &f.varint, 8);
    v->numbers.push_back(x);
  } else if (is_signed) {
    v->numbers.push_back(static_cast<double>(static_cast<int64_t>(f.varint)));
  } else {
    v->numbers.push_back(static_cast<double>(f.varint));
  }
}

// Repeated numeric field, packed or not: kind 'f' float, 'd' double, 'i' varint, 'x' fixed64.
bool AppendRepeated(const WireField& f, char kind, Values* v) {
  if (f.type != ::monolith::layout::kLengthDelimited) {
    AppendScalar(f, kind == 'f', kind == 'd', kind == 'i', v);
    return true;
  }
  const char* p = f.bytes.data();
  const size_t n = f.bytes.size();
  if (kind == 'f' || kind == 'd' || kind == 'x') {
    const size_t w = kind == 'f' ? 4 : 8;
    if (n % w) return false;
    for (size_t i = 0; i < n; i += w) {
      if (kind == 'f') {
        float x;
        std::memcpy(&x, p + i, 4);
        v->numbers.push_back(x);
      } else if (kind == 'd') {
        double x;
        std::memcpy(&x, p + i, 8);
        v->numbers.push_back(x);
      } else {
        uint64_t x;
        std::memcpy(&x, p + i, 8);
        v->numbers.push_back(static_cast<double>(static_cast<int64_t>(x)));
      }
    }
    return true;
  }
  return WireReader::ForEachPackedVarint(f.bytes, [v](uint64_t x) {
    v->numbers.push_back(static_cast<double>(static_cast<int64_t>(x)));
  });
}

// Values of a list message (field 1 repeated of `kind`, or bytes when kind == 's').
bool ListValues(std::string_view bytes, char kind, Values* v) {
  WireReader r(bytes);
  WireField f;
  while (r.Next(&f)) {
    if (f.number != 1) continue;
    if (kind == 's') {
      v->strings.push_back(f.bytes);
    } else if (!AppendRepeated(f, kind, v)) {
      return false;
    }
  }
  return r.ok();
}

// monolith.io.proto.Feature (the oneof `type`).
bool ExampleFeatureValues(std::string_view bytes, Values* v) {
  WireReader r(bytes);
  WireField f;
  while (r.Next(&f)) {
    bool ok = true;
    switch (f.number) {
      case 1: case 2: ok = ListValues(f.bytes, 'x', v); break;
      case 3: ok = ListValues(f.bytes, 'f', v); break;
      case 4: ok = ListValues(f.bytes, 'd', v); break;
      case 5: ok = ListValues(f.bytes, 'i', v); break;
      case 6: ok = ListValues(f.bytes, 's', v); break;
      case 12: AppendScalar(f, false, false, true, v); break;
      case 13: AppendScalar(f, true, false, false, v); break;
      case 14: AppendScalar(f, false, true, false, v); break;
      case 15: v->strings.push_back(f.bytes); break;
      default: break;  // sequence lists are not dense features
    }
    if (!ok) return false;
  }
  return r.ok();
}

// idl.matrix.proto.Feature (Instance.feature).
bool InstanceFeatureValues(std::string_view bytes, Values* v) {
  WireReader r(bytes);
  WireField f;
  while (r.Next(&f)) {
    bool ok = true;
    if (f.number == 2) ok = AppendRepeated(f, 'x', v);
    if (f.number == 3) ok = AppendRepeated(f, 'f', v);
    if (f.number == 4) ok = AppendRepeated(f, 'i', v);
    if (f.number == 5) v->strings.push_back(f.bytes);
    if (!ok) return false;
  }
  return r.ok();
}

// LineId fields usable as extra features: number and kind ('x' fixed64, 'i' varint, 'f' float,
// 's' string, 'b' bool).
const std::unordered_map<std::string, std::pair<int, char>>& LineIdFields() {
  static const auto* fields = new std::unordered_map<std::string, std::pair<int, char>>{
      {"uid", {2, 'x'}},         {"req_time", {3, 'i'}},     {"item_id", {4, 'x'}},
      {"actions", {6, 'i'}},     {"chnid", {19, 'i'}},       {"pre_actions", {23, 'i'}},
      {"sample_rate", {27, 'f'}}, {"special_strategies", {39, 'i'}}, {"device_type", {41, 's'}},
      {"cid", {48, 's'}},        {"user_id", {49, 's'}},     {"is_draw", {87, 'i'}},
      {"rank", {145, 'i'}},      {"data_source_name", {235, 's'}}};
  return *fields;
}

bool LineIdValues(std::string_view line_id, const std::string& name, Values* v) {
  const auto& fields = LineIdFields();
  auto it = fields.find(name);
  if (it == fields.end()) return true;
  WireReader r(line_id);
  WireField f;
  bool seen = false;
  while (r.Next(&f)) {
    if (static_cast<int>(f.number) != it->second.first) continue;
    seen = true;
    const char kind = it->second.second;
    if (kind == 's') {
      v->strings.push_back(f.bytes);
    } else if (!AppendRepeated(f, kind == 'x' ? 'x' : kind, v)) {
      return false;
    }
  }
  if (!seen && name == "sample_rate") v->numbers.push_back(1.0);  // proto2 default
  return r.ok();
}

// One requested output: name, values per row, dtype.
struct OutputSpec {
  std::string name;
  int64_t size;
  DataType dtype;
  bool extra;
};

Status WriteRow(const Values& v, const OutputSpec& spec, Tensor* out, int64_t row) {
  const int64_t s = spec.size;
  switch (spec.dtype) {
    case DT_FLOAT: {
      auto m = out->matrix<float>();
      for (int64_t i = 0; i < s && i < (int64_t)v.numbers.size(); ++i) m(row, i) = v.numbers[i];
      break;
    }
    case DT_DOUBLE: {
      auto m = out->matrix<double>();
      for (int64_t i = 0; i < s && i < (int64_t)v.numbers.size(); ++i) m(row, i) = v.numbers[i];
      break;
    }
    case DT_INT64: {
      auto m = out->matrix<int64_t>();
      for (int64_t i = 0; i < s && i < (int64_t)v.numbers.size(); ++i) m(row, i) = static_cast<int64_t>(v.numbers[i]);
      break;
    }
    case DT_STRING: {
      auto m = out->matrix<tstring>();
      for (int64_t i = 0; i < s && i < (int64_t)v.strings.size(); ++i) m(row, i) = std::string(v.strings[i]);
      break;
    }
    default:
      return errors::InvalidArgument("feature ", spec.name, ": unsupported dtype ", DataTypeString(spec.dtype));
  }
  return OkStatus();
}

Status ParseShape(shape_inference::InferenceContext* c) {
  std::vector<int> shapes;
  TF_RETURN_IF_ERROR(c->GetAttr("shapes", &shapes));
  for (size_t i = 0; i < shapes.size(); ++i) {
    c->set_output(i, c->Matrix(c->UnknownDim(), shapes[i]));
  }
  c->set_output(shapes.size(), c->Vector(c->UnknownDim()));
  return OkStatus();
}

#define PARSE_V2_OP(name)                               \
  REGISTER_OP(name)                                     \
      .Input("pb_input: T")                             \
      .Output("tensors: dtypes")                        \
      .Output("sparse_features: variant")               \
      .Attr("T: {variant, string}")                     \
      .Attr("names: list(string) >= 0")                 \
      .Attr("shapes: list(int) >= 0")                   \
      .Attr("dtypes: list(type) >= 0")                  \
      .Attr("extra_names: list(string) >= 0")

PARSE_V2_OP("ParseExamplesV2").SetShapeFn(ParseShape);
PARSE_V2_OP("ParseExampleBatchV2").SetShapeFn(ParseShape);
PARSE_V2_OP("ParseInstancesV2")
    .Attr("fidv1_features: list(int) >= 0")
    .Attr("fidv2_features: list(string) >= 0")
    .SetShapeFn(ParseShape);

Status ParseRaggedShape(shape_inference::InferenceContext* c) {
  std::vector<int> shapes;
  TF_RETURN_IF_ERROR(c->GetAttr("shapes", &shapes));
  int num_sparse;
  TF_RETURN_IF_ERROR(c->GetAttr("num_sparse", &num_sparse));
  for (size_t i = 0; i < shapes.size(); ++i) {
    c->set_output(i, c->Matrix(c->UnknownDim(), shapes[i]));
  }
  for (int k = 0; k < 2 * num_sparse; ++k) c->set_output(shapes.size() + k, c->Vector(c->UnknownDim()));
  return OkStatus();
}

#define PARSE_RAGGED_OP(name)                            \
  REGISTER_OP(name)                                      \
      .Input("pb_input: T")                              \
      .Output("tensors: dtypes")                         \
      .Output("ragged_values: num_sparse * int64")       \
      .Output("ragged_splits: num_sparse * int64")       \
      .Attr("T: {variant, string}")                      \
      .Attr("names: list(string) >= 0")                  \
      .Attr("shapes: list(int) >= 0")                    \
      .Attr("dtypes: list(type) >= 0")                   \
      .Attr("extra_names: list(string) >= 0")            \
      .Attr("sparse_names: list(string) >= 0")           \
      .Attr("num_sparse: int >= 0")                      \
      .SetShapeFn(ParseRaggedShape)

PARSE_RAGGED_OP("ParseExamples");
PARSE_RAGGED_OP("ParseExampleBatch");
PARSE_RAGGED_OP("ParseInstances");

enum class Kind { kExample, kExampleBatch, kInstance };

// `ragged`: the ParseExamples/ParseExampleBatch/ParseInstances ops, else the V2 ones.
class ParseOp : public OpKernel {
 public:
  ParseOp(OpKernelConstruction* ctx, Kind kind, bool ragged) : OpKernel(ctx), kind_(kind), ragged_(ragged) {
    std::vector<std::string> names, extra;
    std::vector<int> shapes;
    DataTypeVector dtypes;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("names", &names));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("shapes", &shapes));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("dtypes", &dtypes));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("extra_names", &extra));
    OP_REQUIRES(ctx, names.size() == shapes.size() && names.size() == dtypes.size(),
                errors::InvalidArgument("names, shapes and dtypes must have the same length"));
    std::set<std::string> extra_set(extra.begin(), extra.end());
    for (size_t i = 0; i < names.size(); ++i) {
      OP_REQUIRES(ctx, shapes[i] > 0,
                  errors::InvalidArgument("feature ", names[i], ": shape ", shapes[i],
                                          " not supported (dense features need a positive size)"));
      specs_.push_back({names[i], shapes[i], dtypes[i], extra_set.count(names[i]) > 0});
    }
    if (!ragged_) return;
    int num_sparse;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("sparse_names", &sparse_names_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("num_sparse", &num_sparse));
    OP_REQUIRES(ctx, num_sparse == static_cast<int>(sparse_names_.size()),
                errors::InvalidArgument("num_sparse is ", num_sparse, " but sparse_names has ",
                                        sparse_names_.size(), " names"));
    sparse_config_ = ::monolith::layout::LayoutConfig::ForFeatureNames(sparse_names_);
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& input = ctx->input(0);
    std::vector<std::string> owned;
    std::vector<std::string_view> protos;
    const char* what = kind_ == Kind::kExample ? "Example" : kind_ == Kind::kInstance ? "Instance" : "ExampleBatch";
    const int64_t n = kind_ == Kind::kExampleBatch ? std::min<int64_t>(input.NumElements(), 1) : input.NumElements();
    OP_REQUIRES(ctx, kind_ != Kind::kExampleBatch || n == 1,
                errors::InvalidArgument("pb_input must hold one ExampleBatch"));
    owned.reserve(n);
    for (int64_t i = 0; i < n; ++i) {
      if (input.dtype() == DT_STRING) {
        owned.emplace_back(input.flat<tstring>()(i));
      } else {
        const SerializedProto* p = input.flat<Variant>()(i).get<SerializedProto>();
        OP_REQUIRES(ctx, p != nullptr, errors::InvalidArgument("pb_input[", i, "] is not a parsed proto"));
        owned.push_back(p->bytes);
      }
      OP_REQUIRES(ctx, ::monolith::layout::IsWellFormedMessage(owned.back()),
                  errors::FailedPrecondition("Failed to parse the ", what, "."));
    }
    for (const std::string& s : owned) protos.push_back(s);

    int64_t batch = n;
    if (kind_ == Kind::kExampleBatch) OP_REQUIRES_OK(ctx, ReadExampleBatchSize(protos[0], &batch));

    OpOutputList outputs;
    OP_REQUIRES_OK(ctx, ctx->output_list("tensors", &outputs));
    Values v;
    for (size_t k = 0; k < specs_.size(); ++k) {
      const OutputSpec& spec = specs_[k];
      Tensor* out;
      OP_REQUIRES_OK(ctx, outputs.allocate(k, TensorShape({batch, spec.size}), &out));
      if (spec.dtype == DT_STRING) {
        out->flat<tstring>().setConstant(tstring());
      } else {
        OP_REQUIRES(ctx, spec.dtype == DT_FLOAT || spec.dtype == DT_DOUBLE || spec.dtype == DT_INT64,
                    errors::InvalidArgument("feature ", spec.name, ": unsupported dtype ",
                                            DataTypeString(spec.dtype)));
        memset(out->data(), 0, out->TotalBytes());
      }
      for (int64_t row = 0; row < batch; ++row) {
        v.Clear();
        OP_REQUIRES_OK(ctx, RowValues(protos, row, spec, &v));
        OP_REQUIRES_OK(ctx, WriteRow(v, spec, out, row));
      }
    }

    if (ragged_) {
      OP_REQUIRES_OK(ctx, WriteRagged(ctx, protos, batch));
      return;
    }
    Tensor* sparse;
    OP_REQUIRES_OK(ctx, ctx->allocate_output("sparse_features", TensorShape({n}), &sparse));
    for (int64_t i = 0; i < n; ++i) sparse->flat<Variant>()(i) = SerializedProto{std::move(owned[i])};
  }

 private:
  // ragged_values[k] / ragged_splits[k]: the fids of sparse_names_[k], row by row.
  Status WriteRagged(OpKernelContext* ctx, const std::vector<std::string_view>& protos, int64_t batch) const {
    namespace ml = ::monolith::layout;
    ml::BatchFids fids;
    const std::string err =
        kind_ == Kind::kExample ? ml::ExtractFromExamples(sparse_config_, protos, &fids)
        : kind_ == Kind::kInstance ? ml::ExtractFromInstances(sparse_config_, protos, &fids)
                                   : ml::ExtractFromExampleBatch(sparse_config_, protos[0], &fids);
    if (!err.empty()) return errors::InvalidArgument(err);
    OpOutputList values, splits;
    TF_RETURN_IF_ERROR(ctx->output_list("ragged_values", &values));
    TF_RETURN_IF_ERROR(ctx->output_list("ragged_splits", &splits));
    for (size_t k = 0; k < sparse_names_.size(); ++k) {
      const int fi = sparse_config_.FeatureIndex(sparse_names_[k]);
      const int64_t first = fids.feature_entry_begin[fi];
      // A SHARED (or absent) ExampleBatch list has one entry, repeated on every row.
      auto entry = [&](int64_t row) { return fids.shared[fi] ? first : first + row; };
      Tensor* split;
      TF_RETURN_IF_ERROR(splits.allocate(k, TensorShape({batch + 1}), &split));
      auto sp = split->vec<int64_t>();
      sp(0) = 0;
      for (int64_t row = 0; row < batch; ++row) sp(row + 1) = sp(row) + fids.EntryFidCount(entry(row));
      Tensor* value;
      TF_RETURN_IF_ERROR(values.allocate(k, TensorShape({sp(batch)}), &value));
      int64_t* out = value->vec<int64_t>().data();
      for (int64_t row = 0; row < batch; ++row) {
        const int64_t e = entry(row);
        for (int64_t s = fids.entry_span_begin[e]; s < fids.entry_span_begin[e + 1]; ++s) {
          const ml::FidSpan& span = fids.spans[s];
          for (int64_t i = 0; i < span.size; ++i) *out++ = static_cast<int64_t>(span[i]);
        }
      }
    }
    return OkStatus();
  }

  static Status ReadExampleBatchSize(std::string_view bytes, int64_t* batch) {
    WireReader r(bytes);
    WireField f;
    *batch = 0;
    while (r.Next(&f)) {
      if (f.number == 3 && f.type == ::monolith::layout::kVarint) *batch = static_cast<int32_t>(f.varint);
    }
    if (!r.ok() || *batch < 0) return errors::FailedPrecondition("Failed to parse the ExampleBatch.");
    return OkStatus();
  }

  // The named feature `name` of a row-major proto, or of row `row` of an ExampleBatch.
  Status FindFeature(const std::vector<std::string_view>& protos, int64_t row, const std::string& name,
                     std::string_view* feature, bool* found) const {
    *found = false;
    if (kind_ == Kind::kExampleBatch) {
      WireReader r(protos[0]);
      WireField f;
      while (r.Next(&f)) {
        if (f.number != 1 || f.type != ::monolith::layout::kLengthDelimited) continue;
        WireReader lr(f.bytes);
        WireField lf;
        std::string_view list_name;
        std::vector<std::string_view> feats;
        int type = 0;
        while (lr.Next(&lf)) {
          if (lf.number == 1) list_name = lf.bytes;
          if (lf.number == 2) feats.push_back(lf.bytes);
          if (lf.number == 3) type = static_cast<int>(lf.varint);
        }
        if (list_name != name) continue;
        const size_t idx = type == 1 ? 0 : row;
        if (idx < feats.size()) {
          *feature = feats[idx];
          *found = true;
        }
      }
      return OkStatus();
    }
    const int field = kind_ == Kind::kExample ? 1 : 9;
    WireReader r(protos[row]);
    WireField f;
    while (r.Next(&f)) {
      if (static_cast<int>(f.number) != field || f.type != ::monolith::layout::kLengthDelimited) continue;
      WireReader nr(f.bytes);
      WireField nf;
      std::string_view fname, payload;
      while (nr.Next(&nf)) {
        if (nf.number == 1) fname = nf.bytes;
        if (nf.number == 2 && kind_ == Kind::kExample) payload = nf.bytes;
      }
      if (fname != name) continue;
      *feature = kind_ == Kind::kExample ? payload : f.bytes;
      *found = true;
    }
    return OkStatus();
  }

  Status RowValues(const std::vector<std::string_view>& protos, int64_t row, const OutputSpec& spec,
                   Values* v) const {
    if (spec.extra) return ExtraValues(protos, row, spec.name, v);
    std::string_view feature;
    bool found;
    TF_RETURN_IF_ERROR(FindFeature(protos, row, spec.name, &feature, &found));
    if (!found) return OkStatus();  // missing dense values stay zero
    const bool ok = kind_ == Kind::kInstance ? InstanceFeatureValues(feature, v) : ExampleFeatureValues(feature, v);
    if (!ok) return errors::InvalidArgument("row ", row, ": malformed feature ", spec.name);
    return OkStatus();
  }

  // LineId-derived values: label, instance_weight and LineId fields by name.
  Status ExtraValues(const std::vector<std::string_view>& protos, int64_t row, const std::string& name,
                     Values* v) const {
    std::string_view line_id;
    Values reserved;
    if (kind_ == Kind::kExampleBatch) {
      std::string_view feature;
      bool found;
      if (name == "label" || name == "instance_weight") {
        TF_RETURN_IF_ERROR(FindFeature(protos, row, name == "label" ? "__LABEL__" : "instance_weight", &feature, &found));
        if (found && !ExampleFeatureValues(feature, v)) return errors::InvalidArgument("malformed ", name);
        if (name == "instance_weight" && v->numbers.empty()) v->numbers.push_back(1.0);
        return OkStatus();
      }
      TF_RETURN_IF_ERROR(FindFeature(protos, row, "__LINE_ID__", &feature, &found));
      if (found && ExampleFeatureValues(feature, &reserved) && !reserved.strings.empty()) line_id = reserved.strings[0];
    } else {
      // Example: line_id 100, label 101, instance_weight 102; Instance: 5, 3, 4.
      const bool ex = kind_ == Kind::kExample;
      const int line_field = ex ? 100 : 5, label_field = ex ? 101 : 3, weight_field = ex ? 102 : 4;
      WireReader r(protos[row]);
      WireField f;
      bool weight_seen = false;
      while (r.Next(&f)) {
        const int num = f.number;
        if (num == line_field) line_id = f.bytes;
        if (name == "label" && num == label_field && !AppendRepeated(f, 'f', v)) {
          return errors::InvalidArgument("row ", row, ": malformed label");
        }
        if (name == "instance_weight" && num == weight_field) {
          AppendScalar(f, true, false, false, v);
          weight_seen = true;
        }
      }
      if (name == "label") return OkStatus();
      if (name == "instance_weight") {
        if (!weight_seen && !ex) v->numbers.push_back(1.0);
        return OkStatus();
      }
    }
    if (!LineIdValues(line_id, name, v)) return errors::InvalidArgument("row ", row, ": malformed LineId");
    return OkStatus();
  }

  const Kind kind_;
  const bool ragged_;
  std::vector<OutputSpec> specs_;
  std::vector<std::string> sparse_names_;
  ::monolith::layout::LayoutConfig sparse_config_;
};

template <Kind kKind, bool kRagged>
class ParseKernel : public ParseOp {
 public:
  explicit ParseKernel(OpKernelConstruction* ctx) : ParseOp(ctx, kKind, kRagged) {}
};

using ParseExamplesV2Op = ParseKernel<Kind::kExample, false>;
using ParseExampleBatchV2Op = ParseKernel<Kind::kExampleBatch, false>;
using ParseInstancesV2Op = ParseKernel<Kind::kInstance, false>;
using ParseExamplesOp = ParseKernel<Kind::kExample, true>;
using ParseExampleBatchOp = ParseKernel<Kind::kExampleBatch, true>;
using ParseInstancesOp = ParseKernel<Kind::kInstance, true>;

REGISTER_KERNEL_BUILDER(Name("ParseExamplesV2").Device(DEVICE_CPU), ParseExamplesV2Op);
REGISTER_KERNEL_BUILDER(Name("ParseExampleBatchV2").Device(DEVICE_CPU), ParseExampleBatchV2Op);
REGISTER_KERNEL_BUILDER(Name("ParseInstancesV2").Device(DEVICE_CPU), ParseInstancesV2Op);
REGISTER_KERNEL_BUILDER(Name("ParseExamples").Device(DEVICE_CPU), ParseExamplesOp);
REGISTER_KERNEL_BUILDER(Name("ParseExampleBatch").Device(DEVICE_CPU), ParseExampleBatchOp);
REGISTER_KERNEL_BUILDER(Name("ParseInstances").Device(DEVICE_CPU), ParseInstancesOp);

}  // namespace
}  // namespace monolith_tf
}  // namespace tensorflow
