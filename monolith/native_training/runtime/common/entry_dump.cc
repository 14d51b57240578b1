#include "monolith/native_training/runtime/common/entry_dump.h"

#include <cstring>
#include <stdexcept>

#include "monolith/native_training/runtime/common/wire.h"

namespace monolith {
namespace {

constexpr char kIdTag = 0x09;   // field 1, wire type 1 (64-bit)
constexpr char kNumTag = 0x15;  // field 2, wire type 5 (32-bit)

template <typename T>
void AppendLittleEndian(T value, std::string* out) {
  static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "protobuf fixed fields are little-endian");
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));
  out->append(bytes, sizeof(T));
}

}  // namespace

void AppendEntryDump(int64_t id, float bias, const float* embedding, size_t dim, std::string* out) {
  out->reserve(out->size() + 9 + 5 * (dim + 1));
  out->push_back(kIdTag);
  AppendLittleEndian(id, out);
  out->push_back(kNumTag);
  AppendLittleEndian(bias, out);
  for (size_t i = 0; i < dim; ++i) {
    out->push_back(kNumTag);
    AppendLittleEndian(embedding[i], out);
  }
}

namespace {

void SerializeItem(const OptimizerDumpItem& item, std::string* out) {
  std::string body;
  wire::Writer w(&body);
  // Emit fields in ascending field-number order like the protobuf encoder.
  size_t fi = 0, ii = 0;
  while (fi < item.floats.size() || ii < item.ints.size()) {
    bool take_float = ii >= item.ints.size() ||
                      (fi < item.floats.size() && item.floats[fi].first < item.ints[ii].first);
    if (take_float) {
      const auto& f = item.floats[fi++];
      w.UnpackedFloats(f.first, f.second.data(), f.second.size());
    } else {
      const auto& i = item.ints[ii++];
      w.VarintField(i.first, static_cast<uint64_t>(i.second));
    }
  }
  std::string single;
  wire::Writer(&single).BytesField(item.type, body);
  wire::Writer(out).BytesField(1, single);
}

OptimizerDumpItem ParseItem(std::string_view bytes) {
  OptimizerDumpItem item;
  wire::Reader r(bytes, "SingleOptimizerDump");
  int field, wt;
  while (r.Next(&field, &wt)) {
    std::string_view body = r.ReadBytesField(wt);
    item = OptimizerDumpItem();
    item.type = field;
    wire::Reader b(body, "SingleOptimizerDump");
    int f2, wt2;
    while (b.Next(&f2, &wt2)) {
      if (wt2 == wire::kVarint) {
        item.SetInt(f2, static_cast<int64_t>(b.ReadVarint()));
      } else if (wt2 == wire::kFixed32 || wt2 == wire::kLengthDelimited) {
        b.AppendFloats(wt2, item.MutableFloats(f2));
      } else {
        b.Skip(wt2);
      }
    }
  }
  return item;
}

}  // namespace

std::vector<float>* OptimizerDumpItem::MutableFloats(int field) {
  for (auto& f : floats) {
    if (f.first == field) return &f.second;
  }
  // Keep ascending order so serialization is canonical.
  auto it = floats.begin();
  while (it != floats.end() && it->first < field) ++it;
  return &floats.insert(it, {field, {}})->second;
}

const std::vector<float>* OptimizerDumpItem::Floats(int field) const {
  for (const auto& f : floats) {
    if (f.first == field) return &f.second;
  }
  return nullptr;
}

void OptimizerDumpItem::SetInt(int field, int64_t v) {
  for (auto& i : ints) {
    if (i.first == field) {
      i.second = v;
      return;
    }
  }
  auto it = ints.begin();
  while (it != ints.end() && it->first < field) ++it;
  ints.insert(it, {field, v});
}

int64_t OptimizerDumpItem::Int(int field) const {
  for (const auto& i : ints) {
    if (i.first == field) return i.second;
  }
  return 0;
}

void EntryDump::SerializeTo(std::string* out) const {
  wire::Writer w(out);
  if (has_id) w.Fixed64Field(1, static_cast<uint64_t>(id));
  w.UnpackedFloats(2, num.data(), num.size());
  if (has_opt) {
    std::string opt_bytes;
    for (const auto& item : opt) SerializeItem(item, &opt_bytes);
    w.BytesField(3, opt_bytes);
  }
  if (has_last_update_ts_sec) w.VarintField(4, static_cast<uint64_t>(last_update_ts_sec));
}

std::string EntryDump::Serialize() const {
  std::string out;
  SerializeTo(&out);
  return out;
}

EntryDump EntryDump::Parse(std::string_view bytes) {
  EntryDump d;
  wire::Reader r(bytes, "EntryDump");
  int field, wt;
  while (r.Next(&field, &wt)) {
    switch (field) {
      case 1:
        if (wt != wire::kFixed64) r.Fail("EntryDump.id must be sfixed64");
        d.has_id = true;
        d.id = static_cast<int64_t>(r.ReadFixed64());
        break;
      case 2:
        r.AppendFloats(wt, &d.num);
        break;
      case 3: {
        d.has_opt = true;
        wire::Reader o(r.ReadBytesField(wt), "OptimizerDump");
        int f2, wt2;
        while (o.Next(&f2, &wt2)) {
          if (f2 == 1) {
            d.opt.push_back(ParseItem(o.ReadBytesField(wt2)));
          } else {
            o.Skip(wt2);
          }
        }
        break;
      }
      case 4:
        d.has_last_update_ts_sec = true;
        d.last_update_ts_sec = static_cast<int64_t>(r.ReadVarintField(wt));
        break;
      default:
        r.Skip(wt);
    }
  }
  return d;
}

int64_t ExtractIdFromEntryDump(std::string_view bytes, bool* ok) {
  int64_t id = 0;
  wire::Reader r(bytes, "EntryDump");
  try {
    int field, wt;
    while (r.Next(&field, &wt)) {
      if (field == 1 && wt == wire::kFixed64) {
        id = static_cast<int64_t>(r.ReadFixed64());
      } else {
        r.Skip(wt);
      }
    }
    *ok = true;
  } catch (const std::invalid_argument&) {
    *ok = false;
  }
  return id;
}

}  // namespace monolith
