// Software prefetch that survives optimisation.
#ifndef MONOLITH_NATIVE_TRAINING_RUNTIME_COMMON_PREFETCH_H_
#define MONOLITH_NATIVE_TRAINING_RUNTIME_COMMON_PREFETCH_H_

#include <cstdint>

namespace monolith {

// Prefetches the cache line holding p; kForWrite asks for it in exclusive state, so that a store
// to a line another core shares (a lock stripe, an entry) does not stall on an ownership request.
//
// On x86-64 the instruction is written out: GCC turns __builtin_prefetch(p, 1) into prefetchw
// only under -mprfchw and otherwise emits a plain prefetcht0 (all write prefetches had been
// read prefetches). CPUs without PRFCHW execute prefetchw as a NOP. Volatile asm also keeps the
// prefetch: GCC counts __builtin_prefetch as free of side effects, finds a function that only
// prefetches pure and deletes every call to it that is not inlined.
template <bool kForWrite = false>
inline void PrefetchLine(const void* p) {
#if defined(__x86_64__)
  if (kForWrite) {
    asm volatile("prefetchw %0" : : "m"(*static_cast<const char*>(p)));
  } else {
    asm volatile("prefetcht0 %0" : : "m"(*static_cast<const char*>(p)));
  }
#else
  __builtin_prefetch(p, kForWrite);
  asm volatile("" : : "r"(p));
#endif
}

// Every cache line of [p, p + bytes): a row wider than a line spans several, and fetching only
// the first left the rest to be missed one after another.
template <bool kForWrite = false>
inline void PrefetchLines(const void* p, int64_t bytes) {
  for (int64_t off = 0; off < bytes; off += 64) {
    PrefetchLine<kForWrite>(static_cast<const char*>(p) + off);
  }
}

}  // namespace monolith

#endif  // MONOLITH_NATIVE_TRAINING_RUNTIME_COMMON_PREFETCH_H_
