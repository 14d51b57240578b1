#include "monolith/native_training/runtime/hash_table/entry_arena.h"

#include <algorithm>
#include <cstdlib>
#include <new>

#include <sys/mman.h>

namespace monolith {
namespace hash_table {
namespace {

// Spreads concurrent allocations over the shards (thread-local xorshift: no shared state).
int PickShard() {
  thread_local uint32_t state =
      static_cast<uint32_t>(reinterpret_cast<uintptr_t>(&state) >> 4) | 1;
  state ^= state << 13;
  state ^= state >> 17;
  state ^= state << 5;
  return static_cast<int>(state % EntryArena::kShards);
}

}  // namespace

EntryArena::EntryArena(int64_t entry_bytes)
    : stride_(std::max<int64_t>(8, (entry_bytes + 7) / 8 * 8)),
      blocks_(static_cast<std::atomic<char*>*>(
          std::calloc(kShards * kMaxBlocks, sizeof(std::atomic<char*>)))),
      shards_(new Shard[kShards]) {
  if (blocks_ == nullptr) throw std::bad_alloc();
}

EntryArena::~EntryArena() {
  std::free(blocks_);
  for (const auto& chunk : chunks_) munmap(chunk.first, chunk.second);
}

// Blocks come from chunks of kBlocksPerChunk blocks, 2 MiB aligned and marked for transparent
// huge pages: random entry accesses then miss the TLB far less often.
char* EntryArena::NewBlock() {
  std::lock_guard<std::mutex> lock(chunk_mu_);
  if (chunk_blocks_left_ == 0) {
    constexpr size_t kHugePage = 2 << 20;
    const size_t bytes = kBlocksPerChunk * BlockBytes() + kHugePage;
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    chunks_.emplace_back(p, bytes);
    char* aligned = reinterpret_cast<char*>(
        (reinterpret_cast<uintptr_t>(p) + kHugePage - 1) & ~(uintptr_t{kHugePage} - 1));
    madvise(aligned, kBlocksPerChunk * BlockBytes(), MADV_HUGEPAGE);
    chunk_next_ = aligned;
    chunk_blocks_left_ = kBlocksPerChunk;
  }
  char* block = chunk_next_;
  chunk_next_ += BlockBytes();
  --chunk_blocks_left_;
  return block;
}

uint32_t EntryArena::Allocate() {
  const int s = PickShard();
  Shard& shard = shards_[s];
  std::lock_guard<std::mutex> lock(shard.mu);
  if (shard.next_index == kBlockEntries) {
    // The last handle of the last shard would be 2^32 - 1 + 1: keep one block short there.
    const int64_t max_blocks = s == kShards - 1 ? kMaxBlocks - 1 : kMaxBlocks;
    if (shard.num_blocks >= max_blocks) throw std::bad_alloc();
    // Blocks released by Reset stay mapped and are reused.
    std::atomic<char*>& block = blocks_[s * kMaxBlocks + shard.num_blocks];
    if (block.load(std::memory_order_relaxed) == nullptr) {
      block.store(NewBlock(), std::memory_order_release);
    }
    ++shard.num_blocks;
    shard.next_index = 0;
  }
  const uint32_t raw = (static_cast<uint32_t>(s) << 29) |
                       (static_cast<uint32_t>(shard.num_blocks - 1) << 12) |
                       static_cast<uint32_t>(shard.next_index++);
  return raw + 1;
}

void EntryArena::Reset() {
  for (int s = 0; s < kShards; ++s) {
    Shard& shard = shards_[s];
    std::lock_guard<std::mutex> lock(shard.mu);
    // Physical memory goes back to the kernel; the mappings stay valid so that a lock-free
    // reader holding a stale handle reads zeros (and then fails its version check).
    for (int64_t b = 0; b < shard.num_blocks; ++b) {
      madvise(blocks_[s * kMaxBlocks + b].load(), BlockBytes(), MADV_DONTNEED);
    }
    shard.num_blocks = 0;
    shard.next_index = kBlockEntries;
  }
}

int64_t EntryArena::MemoryBytes() const {
  int64_t blocks = 0;
  for (int s = 0; s < kShards; ++s) {
    std::lock_guard<std::mutex> lock(shards_[s].mu);
    blocks += shards_[s].num_blocks;
  }
  return blocks * kBlockEntries * stride_;
}

}  // namespace hash_table
}  // namespace monolith
