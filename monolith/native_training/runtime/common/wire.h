// Minimal protobuf wire-format reader/writer.
//
// Why hand-written: the table config and entry dumps cross the TF op boundary as serialized
// protos, but the kernels must not link generated C++ protobuf code (the pip TensorFlow bundles
// and exports protobuf 6.31.1 symbols, which differ from our protoc). The messages involved are
// small proto2 messages, so decoding/encoding the wire format directly is simpler and safer.
#ifndef MONOLITH_NATIVE_TRAINING_RUNTIME_COMMON_WIRE_H_
#define MONOLITH_NATIVE_TRAINING_RUNTIME_COMMON_WIRE_H_

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>

namespace monolith {
namespace wire {

enum WireType : int { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

class Reader {
 public:
  // `what` names the message being decoded in error texts.
  Reader(std::string_view data, const char* what) : data_(data), what_(what) {}

  bool Done() const { return pos_ >= data_.size(); }

  // Reads the next tag; returns false at the end of the buffer.
  bool Next(int* field, int* wire_type) {
    if (Done()) return false;
    uint64_t tag = ReadVarint();
    *field = static_cast<int>(tag >> 3);
    *wire_type = static_cast<int>(tag & 7);
    if (*field == 0) Fail("field number 0");
    return true;
  }

  uint64_t ReadVarint() {
    uint64_t result = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= data_.size()) Fail("truncated varint");
      uint8_t b = static_cast<uint8_t>(data_[pos_++]);
      result |= static_cast<uint64_t>(b & 0x7F) << shift;
      if (!(b & 0x80)) return result;
    }
    Fail("varint longer than 10 bytes");
    return 0;
  }

  uint32_t ReadFixed32() {
    uint32_t v;
    std::memcpy(&v, Take(4).data(), 4);
    return v;
  }

  uint64_t ReadFixed64() {
    uint64_t v;
    std::memcpy(&v, Take(8).data(), 8);
    return v;
  }

  float ReadFloat() {
    uint32_t bits = ReadFixed32();
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  }

  std::string_view ReadBytes() {
    uint64_t len = ReadVarint();
    return Take(len);
  }

  // Scalar readers that tolerate the wire type the field arrived with (as protobuf does for
  // compatible encodings) and reject the rest with a clear message.
  float ReadFloatField(int wire_type) {
    Expect(wire_type, kFixed32);
    return ReadFloat();
  }
  uint64_t ReadVarintField(int wire_type) {
    Expect(wire_type, kVarint);
    return ReadVarint();
  }
  std::string_view ReadBytesField(int wire_type) {
    Expect(wire_type, kLengthDelimited);
    return ReadBytes();
  }

  // Repeated float: accepts both unpacked (one fixed32 per element) and packed encodings.
  template <typename Vec>
  void AppendFloats(int wire_type, Vec* out) {
    if (wire_type == kLengthDelimited) {
      std::string_view packed = ReadBytes();
      if (packed.size() % 4 != 0) Fail("packed float field length not a multiple of 4");
      for (size_t i = 0; i < packed.size(); i += 4) {
        float f;
        std::memcpy(&f, packed.data() + i, 4);
        out->push_back(f);
      }
      return;
    }
    out->push_back(ReadFloatField(wire_type));
  }

  void Skip(int wire_type) {
    switch (wire_type) {
      case kVarint:
        ReadVarint();
        break;
      case kFixed64:
        Take(8);
        break;
      case kLengthDelimited:
        ReadBytes();
        break;
      case kFixed32:
        Take(4);
        break;
      default:
        Fail("unsupported wire type " + std::to_string(wire_type));
    }
  }

  [[noreturn]] void Fail(const std::string& why) const {
    throw std::invalid_argument(std::string("Malformed ") + what_ + ": " + why + " at byte " +
                                std::to_string(pos_));
  }

 private:
  void Expect(int got, int want) const {
    if (got != want) {
      Fail("wire type " + std::to_string(got) + " where " + std::to_string(want) + " expected");
    }
  }

  std::string_view Take(uint64_t n) {
    if (n > data_.size() - pos_) Fail("truncated field");
    std::string_view v = data_.substr(pos_, n);
    pos_ += n;
    return v;
  }

  std::string_view data_;
  const char* what_;
  size_t pos_ = 0;
};

class Writer {
 public:
  explicit Writer(std::string* out) : out_(out) {}

  void Tag(int field, int wire_type) { Varint((static_cast<uint64_t>(field) << 3) | wire_type); }

  void Varint(uint64_t v) {
    while (v >= 0x80) {
      out_->push_back(static_cast<char>(v | 0x80));
      v >>= 7;
    }
    out_->push_back(static_cast<char>(v));
  }

  void VarintField(int field, uint64_t v) {
    Tag(field, kVarint);
    Varint(v);
  }

  void Fixed64Field(int field, uint64_t v) {
    Tag(field, kFixed64);
    out_->append(reinterpret_cast<const char*>(&v), 8);
  }

  void FloatField(int field, float f) {
    Tag(field, kFixed32);
    out_->append(reinterpret_cast<const char*>(&f), 4);
  }

  // proto2 repeated floats are unpacked by default: one tag per element.
  void UnpackedFloats(int field, const float* v, size_t n) {
    for (size_t i = 0; i < n; ++i) FloatField(field, v[i]);
  }

  void BytesField(int field, std::string_view bytes) {
    Tag(field, kLengthDelimited);
    Varint(bytes.size());
    out_->append(bytes.data(), bytes.size());
  }

 private:
  std::string* out_;
};

}  // namespace wire
}  // namespace monolith

#endif  // MONOLITH_NATIVE_TRAINING_RUNTIME_COMMON_WIRE_H_
