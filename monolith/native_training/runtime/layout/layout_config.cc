#include "monolith/native_training/runtime/layout/layout_config.h"

#include <algorithm>
#include <set>
#include <utility>

#include "monolith/native_training/runtime/layout/wire.h"

namespace monolith {
namespace layout {
namespace {

// Reads a repeated int32 field that may arrive packed or unpacked.
bool AppendInt32s(const WireField& f, std::vector<int32_t>* out) {
  if (f.type == kVarint) {
    out->push_back(static_cast<int32_t>(f.varint));
    return true;
  }
  if (f.type != kLengthDelimited) return false;
  return WireReader::ForEachPackedVarint(
      f.bytes, [out](uint64_t v) { out->push_back(static_cast<int32_t>(v)); });
}

// A map<string, Message> entry: key = field 1, value = field 2.
bool ParseMapEntry(std::string_view entry, std::string* key, std::string_view* value) {
  WireReader r(entry);
  WireField f;
  key->clear();
  *value = std::string_view();
  while (r.Next(&f)) {
    if (f.number == 1 && f.type == kLengthDelimited) key->assign(f.bytes);
    if (f.number == 2 && f.type == kLengthDelimited) *value = f.bytes;
  }
  return r.ok();
}

bool ParseFeatureConfig(std::string_view bytes, FeatureInfo* info) {
  WireReader r(bytes);
  WireField f;
  while (r.Next(&f)) {
    switch (f.number) {
      case 1:
        if (f.type == kLengthDelimited) info->table.assign(f.bytes);
        break;
      case 2:
        info->pooling = static_cast<int>(f.varint);
        break;
      case 3:
        if (!AppendInt32s(f, &info->slice_dims)) return false;
        break;
      case 4:
        info->max_sequence_length = static_cast<int32_t>(f.varint);
        break;
      default:
        break;
    }
  }
  return r.ok();
}

struct RawSlice {
  std::string feature_name;
  int start = 0;
  int end = 0;
};

bool ParseSliceConfig(std::string_view bytes, RawSlice* s) {
  WireReader r(bytes);
  WireField f;
  // feature_idx, slice_idx, pooling_type and max_sequence_length are recomputed from the
  // FeatureConfig, as upstream does; values set by callers are ignored.
  while (r.Next(&f)) {
    if (f.number == 1 && f.type == kLengthDelimited) s->feature_name.assign(f.bytes);
    if (f.number == 2 && f.type == kVarint) s->start = static_cast<int32_t>(f.varint);
    if (f.number == 3 && f.type == kVarint) s->end = static_cast<int32_t>(f.varint);
  }
  return r.ok();
}

std::string ShapeString(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? "," : "") + std::to_string(dims[i]);
  return s + "]";
}

}  // namespace

LayoutConfig LayoutConfig::ForFeatureNames(const std::vector<std::string>& names) {
  LayoutConfig config;
  for (const std::string& name : std::set<std::string>(names.begin(), names.end())) {
    config.feature_index_[name] = config.features_.size();
    config.features_.push_back(FeatureInfo{name});
  }
  return config;
}

int LayoutConfig::FeatureIndex(const std::string& name) const {
  auto it = feature_index_.find(name);
  return it == feature_index_.end() ? -1 : it->second;
}

std::string LayoutConfig::Parse(std::string_view serialized, LayoutConfig* out) {
  *out = LayoutConfig();
  std::map<std::string, std::string_view> feature_bytes, layout_bytes;  // later keys win
  WireReader r(serialized);
  WireField f;
  std::string key;
  std::string_view value;
  while (r.Next(&f)) {
    if ((f.number != 1 && f.number != 2) || f.type != kLengthDelimited) continue;
    if (!ParseMapEntry(f.bytes, &key, &value)) return "Failed to parse the feature_cfgs_.";
    (f.number == 1 ? feature_bytes : layout_bytes)[key] = value;
  }
  if (!r.ok()) return "Failed to parse the feature_cfgs_.";

  std::set<std::string> table_names;
  for (const auto& [name, bytes] : feature_bytes) {
    FeatureInfo info;
    info.name = name;
    if (!ParseFeatureConfig(bytes, &info)) return "Failed to parse the feature_cfgs_.";
    if (info.pooling != kSum && info.pooling != kMean && info.pooling != kFirstN) {
      return "feature " + name + ": unknown pooling_type " + std::to_string(info.pooling);
    }
    for (int32_t d : info.slice_dims) {
      if (d < 0) return "feature " + name + ": negative slice_dims entry " + std::to_string(d);
      info.dims_sum += d;
    }
    out->max_slice_num_ = std::max<int>(out->max_slice_num_, info.slice_dims.size());
    out->feature_index_[name] = out->features_.size();
    table_names.insert(info.table);
    out->features_.push_back(std::move(info));
  }
  for (const std::string& t : table_names) out->tables_.push_back(TableInfo{t, {}});
  for (size_t fi = 0; fi < out->features_.size(); ++fi) {
    FeatureInfo& info = out->features_[fi];
    info.table_idx = std::distance(table_names.begin(), table_names.find(info.table));
    TableInfo& table = out->tables_[info.table_idx];
    info.in_table_idx = table.features.size();
    table.features.push_back(fi);  // features_ is sorted, so each table's list is too
  }
  for (const auto& [name, bytes] : layout_bytes) {
    std::string err = out->ResolveLayout(name, bytes);
    if (!err.empty()) return err;
  }
  return "";
}

std::string LayoutConfig::ResolveLayout(const std::string& name, std::string_view bytes) {
  LayoutInfo layout;
  layout.name = name;
  std::vector<RawSlice> raw;
  std::vector<std::vector<int64_t>> shapes;
  WireReader r(bytes);
  WireField f;
  while (r.Next(&f)) {
    if (f.number == 1 && f.type == kLengthDelimited) {
      raw.emplace_back();
      if (!ParseSliceConfig(f.bytes, &raw.back())) return "Failed to parse the feature_cfgs_.";
    } else if (f.number == 2 && f.type == kVarint) {
      layout.out_type = static_cast<int>(f.varint);
    } else if (f.number == 3 && f.type == kLengthDelimited) {
      WireReader sr(f.bytes);
      WireField sf;
      std::vector<int32_t> dims;
      while (sr.Next(&sf)) {
        if (sf.number == 1 && !AppendInt32s(sf, &dims)) return "Failed to parse the feature_cfgs_.";
      }
      if (!sr.ok()) return "Failed to parse the feature_cfgs_.";
      shapes.emplace_back(dims.begin(), dims.end());
    }
  }
  if (!r.ok()) return "Failed to parse the feature_cfgs_.";
  const std::string where = "layout " + name + ": ";
  if (layout.out_type < kConcat || layout.out_type > kNone) {
    return where + "unknown out_type " + std::to_string(layout.out_type);
  }
  if (layout.out_type == kNone ? shapes.size() != raw.size() : shapes.size() != 1) {
    return where + std::to_string(shapes.size()) + " shapes for " + std::to_string(raw.size()) +
           " slices of out_type " + std::to_string(layout.out_type);
  }
  const int first_output = outputs_.size();
  for (const auto& dims : shapes) {
    OutputInfo o;
    o.dims = dims;
    if (dims.size() < 2) return where + "shape " + ShapeString(dims) + " needs rank >= 2";
    for (size_t i = 1; i < dims.size(); ++i) {
      if (dims[i] <= 0) return where + "shape " + ShapeString(dims) + " has a non-positive dim";
      o.row_elems *= dims[i];
    }
    outputs_.push_back(std::move(o));
  }

  int64_t column = 0;  // c_j: Σ widths of the preceding slices
  for (size_t j = 0; j < raw.size(); ++j) {
    const RawSlice& rs = raw[j];
    SliceInfo s;
    s.feature_name = rs.feature_name;
    s.feature_idx = FeatureIndex(rs.feature_name);
    if (s.feature_idx < 0) return where + "slice names unknown feature " + rs.feature_name;
    const FeatureInfo& feat = features_[s.feature_idx];
    const std::string fwhere = where + "feature " + feat.name + ": ";
    if (rs.start < 0 || rs.end < rs.start) {
      return fwhere + "bad slice [" + std::to_string(rs.start) + ", " + std::to_string(rs.end) + ")";
    }
    s.start = rs.start;
    s.width = rs.end - rs.start;
    s.pooling = feat.pooling;
    s.max_sequence_length = feat.max_sequence_length;
    int64_t prefix = 0;
    for (size_t k = 0; k < feat.slice_dims.size(); ++k) {
      if (prefix == s.start) {
        s.slice_idx = k;
        break;
      }
      prefix += feat.slice_dims[k];
    }
    const bool firstn = s.pooling == kFirstN;
    if (firstn && layout.out_type == kAddN) return fwhere + "ADDN does not support FIRSTN pooling";
    if (firstn && s.max_sequence_length <= 0) return fwhere + "FIRSTN needs max_sequence_length > 0";
    s.output = first_output + (layout.out_type == kNone ? j : 0);
    const std::vector<int64_t>& dims = outputs_[s.output].dims;
    const size_t rank = dims.size();
    // Placement by shape rank. For FIRSTN outside NONE layouts upstream writes the L occurrences
    // contiguously from the slice's column (correct only for a single slice, Quirk Q3); here each
    // occurrence goes to its intended position [r, k, c_j + t] / [r, j, k, t].
    if (layout.out_type == kNone) {
      if (rank != (firstn ? 3u : 2u)) return fwhere + "NONE shape " + ShapeString(dims) + " has the wrong rank";
      s.offset = 0;
      s.seq_stride = firstn ? dims[2] : 0;
    } else if (!firstn) {
      if (rank == 2) {
        s.offset = layout.out_type == kAddN ? 0 : column;
      } else if (rank == 3) {
        s.offset = static_cast<int64_t>(j) * dims[2];
      } else {
        return fwhere + "shape " + ShapeString(dims) + " must have rank 2 or 3";
      }
    } else {
      if (rank == 3) {
        s.offset = column;
        s.seq_stride = dims[2];
      } else if (rank == 4) {
        s.offset = static_cast<int64_t>(j) * dims[2] * dims[3];
        s.seq_stride = dims[3];
      } else {
        return fwhere + "FIRSTN shape " + ShapeString(dims) + " must have rank 3 or 4";
      }
    }
    s.region = firstn ? (s.max_sequence_length - 1) * s.seq_stride + s.width : s.width;
    if (s.offset + s.region > outputs_[s.output].row_elems) {
      return fwhere + "slice [" + std::to_string(rs.start) + ", " + std::to_string(rs.end) +
             ") does not fit into shape " + ShapeString(dims);
    }
    column += s.width;
    layout.slices.push_back(std::move(s));
  }
  if (layout.out_type != kAddN) {
    // Element ranges [begin, end) each slice writes in a row, per output: exclusive when, sorted,
    // they tile the row without gaps or overlaps.
    std::vector<std::vector<std::pair<int64_t, int64_t>>> ranges(shapes.size());
    for (const SliceInfo& s : layout.slices) {
      const int copies = s.pooling == kFirstN ? s.max_sequence_length : 1;
      for (int k = 0; k < copies; ++k) {
        const int64_t begin = s.offset + k * s.seq_stride;
        if (s.width > 0) ranges[s.output - first_output].emplace_back(begin, begin + s.width);
      }
    }
    for (size_t i = 0; i < shapes.size(); ++i) {
      std::sort(ranges[i].begin(), ranges[i].end());
      int64_t covered = 0;
      bool tiled = true;
      for (const auto& r : ranges[i]) {
        tiled = tiled && r.first == covered;
        covered = r.second;
      }
      outputs_[first_output + i].exclusive = tiled && covered == outputs_[first_output + i].row_elems;
    }
  }
  layouts_.push_back(std::move(layout));
  return "";
}

}  // namespace layout
}  // namespace monolith
