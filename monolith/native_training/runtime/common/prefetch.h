// Software prefetch that survives optimisation.
#ifndef MONOLITH_NATIVE_TRAINING_RUNTIME_COMMON_PREFETCH_H_
#define MONOLITH_NATIVE_TRAINING_RUNTIME_COMMON_PREFETCH_H_

namespace monolith {

// GCC counts __builtin_prefetch as free of side effects: a function that only prefetches is
// found pure and every call to it that is not inlined is deleted (the layout kernels' prefetch
// helpers compiled to nothing that way). The empty volatile asm keeps them.
template <bool kForWrite = false>
inline void PrefetchLine(const void* p) {
  __builtin_prefetch(p, kForWrite);
  asm volatile("" : : "r"(p));
}

}  // namespace monolith

#endif  // MONOLITH_NATIVE_TRAINING_RUNTIME_COMMON_PREFETCH_H_
