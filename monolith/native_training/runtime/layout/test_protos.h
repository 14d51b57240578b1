// Test-only builders of serialized FeatureConfigs / Example / ExampleBatch / Instance bytes (the
// protobuf wire format, written by hand like the readers), plus a minimal check macro.
#ifndef MONOLITH_NATIVE_TRAINING_RUNTIME_LAYOUT_TEST_PROTOS_H_
#define MONOLITH_NATIVE_TRAINING_RUNTIME_LAYOUT_TEST_PROTOS_H_

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#define EXPECT_TRUE(cond)                                                        \
  do {                                                                           \
    if (!(cond)) {                                                               \
      std::fprintf(stderr, "%s:%d: expectation failed: %s\n", __FILE__, __LINE__, #cond); \
      std::exit(1);                                                              \
    }                                                                            \
  } while (0)

namespace monolith {
namespace layout {
namespace testing {

class Msg {
 public:
  Msg& Varint(int field, uint64_t v) {
    Key(field, 0);
    Raw(v);
    return *this;
  }
  Msg& Bytes(int field, const std::string& s) {
    Key(field, 2);
    Raw(s.size());
    out_ += s;
    return *this;
  }
  Msg& Sub(int field, const Msg& m) { return Bytes(field, m.str()); }
  Msg& PackedVarints(int field, const std::vector<int64_t>& vs) {
    Msg packed;
    for (int64_t v : vs) packed.Raw(static_cast<uint64_t>(v));
    return Bytes(field, packed.str());
  }
  Msg& PackedFixed64(int field, const std::vector<uint64_t>& vs) {
    std::string b(vs.size() * 8, '\0');
    if (!vs.empty()) std::memcpy(&b[0], vs.data(), b.size());
    return Bytes(field, b);
  }
  const std::string& str() const { return out_; }

 private:
  void Key(int field, int type) { Raw(static_cast<uint64_t>(field) << 3 | type); }
  void Raw(uint64_t v) {
    while (v >= 0x80) {
      out_.push_back(static_cast<char>(v | 0x80));
      v >>= 7;
    }
    out_.push_back(static_cast<char>(v));
  }
  std::string out_;
};

struct Slice {
  std::string feature;
  int start, end;
};

inline Msg FeatureConfigMsg(const std::string& table, int pooling, const std::vector<int64_t>& dims,
                            int max_len = 0) {
  Msg m;
  m.Bytes(1, table).Varint(2, pooling).PackedVarints(3, dims);
  if (max_len) m.Varint(4, max_len);
  return m;
}

inline Msg OutConfigMsg(int out_type, const std::vector<Slice>& slices,
                        const std::vector<std::vector<int64_t>>& shapes) {
  Msg m;
  for (const Slice& s : slices) m.Sub(1, Msg().Bytes(1, s.feature).Varint(2, s.start).Varint(3, s.end));
  m.Varint(2, out_type);
  for (const auto& sh : shapes) m.Sub(3, Msg().PackedVarints(1, sh));
  return m;
}

// Map entries (key = 1, value = 2) of FeatureConfigs.feature_configs (1) / out_configs (2).
inline void AddFeature(Msg* cfgs, const std::string& name, const Msg& cfg) {
  cfgs->Sub(1, Msg().Bytes(1, name).Sub(2, cfg));
}
inline void AddLayout(Msg* cfgs, const std::string& name, const Msg& cfg) {
  cfgs->Sub(2, Msg().Bytes(1, name).Sub(2, cfg));
}

// monolith.io.proto.Feature with fid_v2_list (or fid_v1_list).
inline Msg FidFeature(const std::vector<uint64_t>& fids, bool v1 = false) {
  return Msg().Sub(v1 ? 1 : 2, Msg().PackedFixed64(1, fids));
}

}  // namespace testing
}  // namespace layout
}  // namespace monolith

#endif  // MONOLITH_NATIVE_TRAINING_RUNTIME_LAYOUT_TEST_PROTOS_H_
