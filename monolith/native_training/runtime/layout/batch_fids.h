// Extracts, per configured feature and per (feature, example) entry, the fids of a batch of
// serialized Example / ExampleBatch / Instance protos (fused_layout.md §6.4), decoding the wire
// format by hand (see wire.h for why). The result points into the serialized bytes, which must
// outlive it.
#ifndef MONOLITH_NATIVE_TRAINING_RUNTIME_LAYOUT_BATCH_FIDS_H_
#define MONOLITH_NATIVE_TRAINING_RUNTIME_LAYOUT_BATCH_FIDS_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "monolith/native_training/runtime/layout/layout_config.h"
#include "monolith/native_training/runtime/layout/wire.h"

namespace monolith {
namespace layout {

// Entries are ordered feature-major (sorted feature index), then example order.
struct BatchFids {
  int64_t batch_size = 0;
  std::vector<uint8_t> shared;               // per feature
  std::vector<int64_t> feature_entry_begin;  // per feature + sentinel: first entry index
  std::vector<int64_t> entry_span_begin;     // per entry + sentinel: first span index
  std::vector<FidSpan> spans;

  int64_t num_entries() const { return feature_entry_begin.back(); }
  int64_t EntryFidCount(int64_t e) const {
    int64_t n = 0;
    for (int64_t s = entry_span_begin[e]; s < entry_span_begin[e + 1]; ++s) n += spans[s].size;
    return n;
  }
};

// Each function returns "" or an error naming the example and, where known, the feature.
// `examples`: one serialized monolith.io.proto.Example per example. A NamedFeature is matched by
// name (its sorted_id, set only by readers with a feature-name mapper, is not used here); the
// fids are fid_v2_list, or fid_v1_list (converted to v2) when fid_v2_list is empty.
std::string ExtractFromExamples(const LayoutConfig& config,
                                const std::vector<std::string_view>& examples, BatchFids* out);
// `example_batch`: one serialized monolith.io.proto.ExampleBatch.
std::string ExtractFromExampleBatch(const LayoutConfig& config, std::string_view example_batch,
                                    BatchFids* out);
// `instances`: one serialized parser.proto.Instance per example. Flat v1 fids are routed by slot
// (fid >> 54) to the feature named fc_slot_<slot> or slot_<slot>; named features contribute their
// fid values, then every fid_list.
std::string ExtractFromInstances(const LayoutConfig& config,
                                 const std::vector<std::string_view>& instances, BatchFids* out);

// Checks that a serialized message is well-formed at its top level (cheap parse validation for
// the parse ops).
bool IsWellFormedMessage(std::string_view bytes);

}  // namespace layout
}  // namespace monolith

#endif  // MONOLITH_NATIVE_TRAINING_RUNTIME_LAYOUT_BATCH_FIDS_H_
