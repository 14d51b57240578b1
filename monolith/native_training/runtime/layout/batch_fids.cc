#include "monolith/native_training/runtime/layout/batch_fids.h"

#include <utility>

namespace monolith {
namespace layout {
namespace {

// Appends the fid runs of a repeated fixed64 field occurrence (packed or not).
bool AppendFixed64(const WireField& f, bool v1, std::vector<FidSpan>* spans) {
  if (f.type == kFixed64) {
    spans->push_back({f.bytes.data(), 1, v1});
    return true;
  }
  if (f.type != kLengthDelimited || f.bytes.size() % 8 != 0) return false;
  if (!f.bytes.empty()) spans->push_back({f.bytes.data(), static_cast<int64_t>(f.bytes.size() / 8), v1});
  return true;
}

// FidList / Fixed64List: value = 1.
bool ParseFidList(std::string_view bytes, bool v1, std::vector<FidSpan>* spans) {
  WireReader r(bytes);
  WireField f;
  while (r.Next(&f)) {
    if (f.number == 1 && !AppendFixed64(f, v1, spans)) return false;
  }
  return r.ok();
}

int64_t Count(const std::vector<FidSpan>& spans) {
  int64_t n = 0;
  for (const FidSpan& s : spans) n += s.size;
  return n;
}

// monolith.io.proto.Feature: the fid_v2_list fids, or the fid_v1_list ones when there are none.
bool ParseExampleFeature(std::string_view bytes, std::vector<FidSpan>* spans) {
  std::vector<FidSpan> v1, v2;
  WireReader r(bytes);
  WireField f;
  while (r.Next(&f)) {
    if (f.type != kLengthDelimited) continue;
    if (f.number == 1 && !ParseFidList(f.bytes, true, &v1)) return false;
    if (f.number == 2 && !ParseFidList(f.bytes, false, &v2)) return false;
  }
  if (!r.ok()) return false;
  const std::vector<FidSpan>& chosen = Count(v2) > 0 ? v2 : v1;
  spans->insert(spans->end(), chosen.begin(), chosen.end());
  return true;
}

struct KeyedSpan {
  int64_t entry;
  FidSpan span;
};

// Groups spans by entry (stable: the order of items inside an entry is kept). Every feature has
// `batch_size` entries, none shared.
void BuildPerExample(int num_features, int64_t batch_size, std::vector<KeyedSpan>* items,
                     BatchFids* out) {
  out->batch_size = batch_size;
  out->shared.assign(num_features, 0);
  out->feature_entry_begin.resize(num_features + 1);
  for (int fi = 0; fi <= num_features; ++fi) out->feature_entry_begin[fi] = fi * batch_size;
  const int64_t num_entries = num_features * batch_size;
  std::vector<int64_t>& begin = out->entry_span_begin;
  begin.assign(num_entries + 1, 0);
  for (const KeyedSpan& it : *items) ++begin[it.entry + 1];
  for (int64_t e = 0; e < num_entries; ++e) begin[e + 1] += begin[e];
  std::vector<int64_t> cursor(begin.begin(), begin.end() - 1);
  out->spans.resize(items->size());
  for (const KeyedSpan& it : *items) out->spans[cursor[it.entry]++] = it.span;
}

// "<kind> <i>: <what>", naming the bad message of a batch of Examples or Instances.
std::string ItemError(const char* kind, size_t i, const std::string& what) {
  return std::string(kind) + " " + std::to_string(i) + ": " + what;
}

}  // namespace

bool IsWellFormedMessage(std::string_view bytes) {
  WireReader r(bytes);
  WireField f;
  while (r.Next(&f)) {
  }
  return r.ok();
}

std::string ExtractFromExamples(const LayoutConfig& config,
                                const std::vector<std::string_view>& examples, BatchFids* out) {
  const int64_t batch = examples.size();
  std::vector<KeyedSpan> items;
  std::vector<FidSpan> spans;
  std::string name;
  for (int64_t b = 0; b < batch; ++b) {
    WireReader r(examples[b]);
    WireField f;
    while (r.Next(&f)) {
      if (f.number != 1 || f.type != kLengthDelimited) continue;  // named_feature
      WireReader nr(f.bytes);
      WireField nf;
      std::string_view feature;
      name.clear();
      while (nr.Next(&nf)) {
        if (nf.number == 1 && nf.type == kLengthDelimited) name.assign(nf.bytes);
        if (nf.number == 2 && nf.type == kLengthDelimited) feature = nf.bytes;
      }
      if (!nr.ok()) return ItemError("example", b, "malformed named_feature");
      const int fi = config.FeatureIndex(name);
      if (fi < 0) continue;
      spans.clear();
      if (!ParseExampleFeature(feature, &spans)) {
        return ItemError("example", b, "malformed feature " + name);
      }
      // A name repeated inside one Example appends to the same entry.
      for (const FidSpan& s : spans) items.push_back({fi * batch + b, s});
    }
    if (!r.ok()) return ItemError("example", b, "Failed to parse the Example.");
  }
  BuildPerExample(config.features().size(), batch, &items, out);
  return "";
}

std::string ExtractFromExampleBatch(const LayoutConfig& config, std::string_view example_batch,
                                    BatchFids* out) {
  const int num_features = config.features().size();
  std::vector<std::string_view> lists(num_features);
  std::vector<uint8_t> present(num_features, 0);
  int64_t batch = 0;
  WireReader r(example_batch);
  WireField f;
  std::string name;
  while (r.Next(&f)) {
    if (f.number == 3 && f.type == kVarint) batch = static_cast<int32_t>(f.varint);
    if (f.number != 1 || f.type != kLengthDelimited) continue;
    WireReader nr(f.bytes);
    WireField nf;
    name.clear();
    while (nr.Next(&nf)) {
      if (nf.number == 1 && nf.type == kLengthDelimited) name.assign(nf.bytes);
    }
    if (!nr.ok()) return "ExampleBatch: malformed named_feature_list";
    const int fi = config.FeatureIndex(name);
    if (fi < 0) continue;
    lists[fi] = f.bytes;  // a repeated name: the last list wins
    present[fi] = 1;
  }
  if (!r.ok()) return "Failed to parse the ExampleBatch.";
  if (batch < 0) return "ExampleBatch: negative batch_size " + std::to_string(batch);

  out->batch_size = batch;
  out->shared.assign(num_features, 0);
  out->feature_entry_begin.assign(1, 0);
  out->entry_span_begin.assign(1, 0);
  out->spans.clear();
  std::vector<std::string_view> features;
  for (int fi = 0; fi < num_features; ++fi) {
    const std::string& fname = config.features()[fi].name;
    int type = 0;
    features.clear();
    if (present[fi]) {
      WireReader nr(lists[fi]);
      WireField nf;
      while (nr.Next(&nf)) {
        if (nf.number == 2 && nf.type == kLengthDelimited) features.push_back(nf.bytes);
        if (nf.number == 3 && nf.type == kVarint) type = static_cast<int>(nf.varint);
      }
    }
    // Absent features and SHARED lists occupy one entry, flagged shared.
    const bool shared = !present[fi] || type == 1;
    out->shared[fi] = shared;
    if (!shared && static_cast<int64_t>(features.size()) != batch) {
      return "ExampleBatch: INDIVIDUAL feature list " + fname + " has " +
             std::to_string(features.size()) + " features, batch_size is " + std::to_string(batch);
    }
    const size_t num_entries = shared ? 1 : features.size();
    for (size_t i = 0; i < num_entries; ++i) {
      if (i < features.size() && !ParseExampleFeature(features[i], &out->spans)) {
        return "ExampleBatch: malformed feature " + std::to_string(i) + " of " + fname;
      }
      out->entry_span_begin.push_back(out->spans.size());
    }
    out->feature_entry_begin.push_back(out->entry_span_begin.size() - 1);
  }
  return "";
}

std::string ExtractFromInstances(const LayoutConfig& config,
                                 const std::vector<std::string_view>& instances, BatchFids* out) {
  constexpr int kNumSlots = 1024;  // v1 fids carry the slot in their top 10 bits
  std::vector<int> slot_feature(kNumSlots, -1);
  // fc_slot_<n> takes precedence over slot_<n> when both are configured.
  for (const char* prefix : {"slot_", "fc_slot_"}) {
    const std::string p = prefix;
    for (size_t fi = 0; fi < config.features().size(); ++fi) {
      const std::string& n = config.features()[fi].name;
      if (n.size() <= p.size() || n.compare(0, p.size(), p) != 0) continue;
      const std::string digits = n.substr(p.size());
      if (digits.size() > 4 || digits.find_first_not_of("0123456789") != std::string::npos) continue;
      const int slot = std::stoi(digits);
      if (slot < kNumSlots) slot_feature[slot] = fi;
    }
  }
  const int64_t batch = instances.size();
  std::vector<KeyedSpan> items;
  std::vector<FidSpan> spans;
  std::string name;
  for (int64_t b = 0; b < batch; ++b) {
    // Pass 1: flat v1 fids, in runs of one slot. Pass 2: named features (v2 fids).
    WireReader r(instances[b]);
    WireField f;
    while (r.Next(&f)) {
      if (f.number != 1) continue;
      spans.clear();
      if (!AppendFixed64(f, true, &spans)) return ItemError("instance", b, "malformed fid");
      for (const FidSpan& s : spans) {
        int64_t run = 0;
        while (run < s.size) {
          uint64_t raw;
          std::memcpy(&raw, s.data + 8 * run, 8);
          const int slot = raw >> 54;
          int64_t next = run + 1;
          for (; next < s.size; ++next) {
            std::memcpy(&raw, s.data + 8 * next, 8);
            if (static_cast<int>(raw >> 54) != slot) break;
          }
          if (slot_feature[slot] >= 0) {
            items.push_back({slot_feature[slot] * batch + b, FidSpan{s.data + 8 * run, next - run, true}});
          }
          run = next;
        }
      }
    }
    if (!r.ok()) return ItemError("instance", b, "Failed to parse the Instance.");
    WireReader r2(instances[b]);
    while (r2.Next(&f)) {
      if (f.number != 9 || f.type != kLengthDelimited) continue;
      WireReader fr(f.bytes);
      WireField ff;
      name.clear();
      spans.clear();
      std::vector<FidSpan> lists;
      while (fr.Next(&ff)) {
        if (ff.number == 1 && ff.type == kLengthDelimited) name.assign(ff.bytes);
        if (ff.number == 2 && !AppendFixed64(ff, false, &spans)) {
          return ItemError("instance", b, "malformed feature fid");
        }
        if (ff.number == 6 && ff.type == kLengthDelimited && !ParseFidList(ff.bytes, false, &lists)) {
          return ItemError("instance", b, "malformed feature fid_list");
        }
      }
      if (!fr.ok()) return ItemError("instance", b, "malformed feature");
      const int fi = config.FeatureIndex(name);
      if (fi < 0) continue;
      for (const FidSpan& s : spans) items.push_back({fi * batch + b, s});
      for (const FidSpan& s : lists) items.push_back({fi * batch + b, s});
    }
  }
  BuildPerExample(config.features().size(), batch, &items, out);
  return "";
}

}  // namespace layout
}  // namespace monolith
