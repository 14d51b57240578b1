// Output tensors of the lookup and layout ops are tens of MiB, usually fresh from the allocator,
// and written once: first-touch page faults cost about as much as the kernels themselves.
// Asking for transparent huge pages turns 512 faults per 2 MiB into one (THP "madvise" mode is
// the common default; elsewhere the call is a no-op). Only a hint: contents are unchanged.
#ifndef MONOLITH_NATIVE_TRAINING_RUNTIME_COMMON_HUGE_PAGES_H_
#define MONOLITH_NATIVE_TRAINING_RUNTIME_COMMON_HUGE_PAGES_H_

#include <cstddef>
#include <cstdint>

#ifdef __linux__
#include <sys/mman.h>
#endif

namespace monolith {

// Advises the whole 2 MiB pages inside [data, data + bytes).
inline void AdviseHugePages(void* data, size_t bytes) {
#ifdef __linux__
  constexpr uintptr_t kHuge = uintptr_t{2} << 20;
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(data) + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + bytes) & ~(kHuge - 1);
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#endif
}

}  // namespace monolith

#endif  // MONOLITH_NATIVE_TRAINING_RUNTIME_COMMON_HUGE_PAGES_H_
