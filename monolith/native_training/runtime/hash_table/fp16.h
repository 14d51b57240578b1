// IEEE 754 half-precision conversions (round to nearest even) for fp16 storage and the
// stochastic-rounding optimizer wrapper.
#ifndef MONOLITH_NATIVE_TRAINING_RUNTIME_HASH_TABLE_FP16_H_
#define MONOLITH_NATIVE_TRAINING_RUNTIME_HASH_TABLE_FP16_H_

#include <cmath>
#include <cstdint>
#include <cstring>

namespace monolith {
namespace hash_table {

inline uint16_t FloatToHalf(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000;
  uint32_t mag = x & 0x7fffffff;
  if (mag >= 0x7f800000) return sign | 0x7c00 | (mag > 0x7f800000 ? 0x200 : 0);
  if (mag >= 0x477ff000) return sign | 0x7c00;  // >= 65520 rounds to infinity
  if (mag < 0x38800000) {                        // below 2^-14: half subnormal or zero
    float af;
    std::memcpy(&af, &mag, 4);
    return sign | static_cast<uint16_t>(std::nearbyint(af * 16777216.0f));  // exact scaling
  }
  uint32_t h = (((mag >> 23) - 112) << 10) | ((mag & 0x7fffff) >> 13);
  uint32_t rem = mag & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) ++h;
  return static_cast<uint16_t>(sign | h);
}

inline float HalfToFloat(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t e = (h >> 10) & 0x1f;
  uint32_t m = h & 0x3ff;
  if (e == 0) {
    float f = static_cast<float>(m) * (1.0f / 16777216.0f);
    return sign ? -f : f;
  }
  uint32_t bits = e == 31 ? (sign | 0x7f800000 | (m << 13)) : (sign | ((e + 112) << 23) | (m << 13));
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// The next representable half toward +infinity (h must be finite).
inline uint16_t HalfNextUp(uint16_t h) {
  if ((h & 0x7fff) == 0) return 0x0001;
  return (h & 0x8000) ? static_cast<uint16_t>(h - 1) : static_cast<uint16_t>(h + 1);
}

inline uint16_t HalfNextDown(uint16_t h) { return HalfNextUp(h ^ 0x8000) ^ 0x8000; }

}  // namespace hash_table
}  // namespace monolith

#endif  // MONOLITH_NATIVE_TRAINING_RUNTIME_HASH_TABLE_FP16_H_
