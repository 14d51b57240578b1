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

// Every cache line of [p, p + bytes), and at least the one holding p: a row wider than a line
// spans several, and fetching only the first left the rest to be missed one after another. The
// walk starts at p's line, so an unaligned row's last line is fetched too. (A do-while: most rows
// are one line, and the hot loops call this once per id.)
template <bool kForWrite = false>
inline void PrefetchLines(const void* p, int64_t bytes) {
  const uintptr_t end = reinterpret_cast<uintptr_t>(p) + bytes;
  uintptr_t at = reinterpret_cast<uintptr_t>(p) & ~uintptr_t{63};
  do {
    PrefetchLine<kForWrite>(reinterpret_cast<const char*>(at));
    at += 64;
  } while (at < end);
}

// Prefetches the cache line holding p into L2 only (for reading).
inline void PrefetchLineToL2(const void* p) {
#if defined(__x86_64__)
  asm volatile("prefetcht1 %0" : : "m"(*static_cast<const char*>(p)));
#else
  __builtin_prefetch(p, 0, 2);
  asm volatile("" : : "r"(p));
#endif
}

// A row read from its start soon after: the line holding p into L1, the rest of [p, p + bytes)
// into L2. Batched lookups prefetch rows 16 keys ahead; asking for every line of 256-byte rows
// in L1 ran them ~15 % slower (1M keys, dim 64), presumably because an L1 prefetch holds one of
// the core's few L1 miss buffers until its line arrives.
inline void PrefetchRow(const void* p, int64_t bytes) {
  PrefetchLine(p);
  const uintptr_t end = reinterpret_cast<uintptr_t>(p) + bytes;
  for (uintptr_t at = (reinterpret_cast<uintptr_t>(p) & ~uintptr_t{63}) + 64; at < end; at += 64) {
    PrefetchLineToL2(reinterpret_cast<const char*>(at));
  }
}

}  // namespace monolith

#endif  // MONOLITH_NATIVE_TRAINING_RUNTIME_COMMON_PREFETCH_H_
