// The variant payload of the fused-layout parse ops (`sparse_features` of ParseExamplesV2 &c.,
// consumed by ShardingSparseFids*): one serialized Example / ExampleBatch / Instance. The bytes are
// kept as they are and decoded by hand where needed, because this library must not link
// generated C++ protobuf code (TF exports its own protobuf runtime).
#ifndef MONOLITH_NATIVE_TRAINING_RUNTIME_OPS_SERIALIZED_PROTO_VARIANT_H_
#define MONOLITH_NATIVE_TRAINING_RUNTIME_OPS_SERIALIZED_PROTO_VARIANT_H_

#include <string>

#include "tensorflow/core/framework/variant_tensor_data.h"

namespace tensorflow {
namespace monolith_tf {

struct SerializedProto {
  std::string bytes;

  std::string TypeName() const { return "MonolithSerializedProto"; }
  void Encode(VariantTensorData* data) const { data->set_metadata(bytes); }
  bool Decode(const VariantTensorData& data) { return data.get_metadata(&bytes); }
};

}  // namespace monolith_tf
}  // namespace tensorflow

#endif  // MONOLITH_NATIVE_TRAINING_RUNTIME_OPS_SERIALIZED_PROTO_VARIANT_H_
