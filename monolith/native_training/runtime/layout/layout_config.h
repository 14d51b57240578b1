// The FeatureConfigs model shared by the sharding and layout kernels: features, tables and
// layouts in their canonical (byte-wise sorted) orders, and where each slice of each layout is
// placed inside the output tensors. Plain C++ (no TensorFlow), so it can be unit tested and used
// by the CUDA kernels on machines without TF.
#ifndef MONOLITH_NATIVE_TRAINING_RUNTIME_LAYOUT_LAYOUT_CONFIG_H_
#define MONOLITH_NATIVE_TRAINING_RUNTIME_LAYOUT_LAYOUT_CONFIG_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace monolith {
namespace layout {

enum PoolingType : int { kSum = 0, kMean = 1, kFirstN = 3 };
enum OutType : int { kConcat = 0, kStack = 1, kAddN = 2, kNone = 3 };

struct FeatureInfo {
  std::string name;
  std::string table;
  int pooling = kSum;
  std::vector<int32_t> slice_dims;
  int64_t dims_sum = 0;
  int max_sequence_length = 0;
  int table_idx = 0;     // position of `table` among the sorted distinct tables
  int in_table_idx = 0;  // position among the table's features, in sorted-name order
};

struct TableInfo {
  std::string name;
  std::vector<int> features;  // feature indices, sorted by name
};

// One slice of a layout with its placement resolved.
struct SliceInfo {
  std::string feature_name;
  int feature_idx = 0;
  int start = 0;
  int width = 0;  // end - start
  int pooling = kSum;
  int max_sequence_length = 0;  // L (FIRSTN only)
  int slice_idx = 0;
  int output = 0;          // index of the output tensor it is written to
  int64_t offset = 0;      // element offset of the slice inside one row of that output
  int64_t seq_stride = 0;  // FIRSTN: element distance between occurrence k and k+1
  int64_t region = 0;      // span of elements one row of the slice covers
};

struct LayoutInfo {
  std::string name;
  int out_type = kConcat;
  std::vector<SliceInfo> slices;
};

// One output tensor: its configured dims (dims[0] <= 0 means "batch size") and the number of
// elements of one row (product of dims[1:]).
struct OutputInfo {
  std::vector<int64_t> dims;
  int64_t row_elems = 1;
  // A non-ADDN output each of whose row elements is written by exactly one slice: the forward
  // stores every element instead of zeroing the tensor and adding into it.
  bool exclusive = false;

  int64_t Rows(int64_t batch_size) const { return dims[0] > 0 ? dims[0] : batch_size; }
};

class LayoutConfig {
 public:
  // Decodes a serialized monolith.io.proto.FeatureConfigs and validates every layout. Returns an
  // empty string on success, else an error message naming the offending feature or layout.
  static std::string Parse(std::string_view serialized, LayoutConfig* out);
  // Features only (no tables or layouts), for extracting the fids of named features: the ragged
  // parse ops. Duplicate names collapse to one feature.
  static LayoutConfig ForFeatureNames(const std::vector<std::string>& names);

  const std::vector<FeatureInfo>& features() const { return features_; }
  const std::vector<TableInfo>& tables() const { return tables_; }
  const std::vector<LayoutInfo>& layouts() const { return layouts_; }
  const std::vector<OutputInfo>& outputs() const { return outputs_; }
  int num_out() const { return static_cast<int>(outputs_.size()); }
  int max_slice_num() const { return max_slice_num_; }
  // -1 if `name` is not a configured feature.
  int FeatureIndex(const std::string& name) const;

 private:
  std::string ResolveLayout(const std::string& name, std::string_view out_config);

  std::vector<FeatureInfo> features_;
  std::map<std::string, int> feature_index_;
  std::vector<TableInfo> tables_;
  std::vector<LayoutInfo> layouts_;
  std::vector<OutputInfo> outputs_;
  int max_slice_num_ = 0;
};

}  // namespace layout
}  // namespace monolith

#endif  // MONOLITH_NATIVE_TRAINING_RUNTIME_LAYOUT_LAYOUT_CONFIG_H_
