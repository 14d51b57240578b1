// Thread-safe block arena holding entry bytes (native_ops.md §1.5, PACKED storage). An entry is
// addressed by a 32-bit handle {shard:3, block:17, index:12} + 1 (0 stays free to mark empty map
// slots). Space of erased entries is not reused; Reset releases everything. Blocks are anonymous
// mappings that stay mapped until destruction (see Reset).
#ifndef MONOLITH_NATIVE_TRAINING_RUNTIME_HASH_TABLE_ENTRY_ARENA_H_
#define MONOLITH_NATIVE_TRAINING_RUNTIME_HASH_TABLE_ENTRY_ARENA_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

namespace monolith {
namespace hash_table {

class EntryArena {
 public:
  static constexpr int kShards = 8;
  static constexpr int kBlockEntries = 4096;
  static constexpr int kMaxBlocks = 1 << 17;

  explicit EntryArena(int64_t entry_bytes);
  ~EntryArena();
  EntryArena(const EntryArena&) = delete;
  EntryArena& operator=(const EntryArena&) = delete;

  // Uninitialized storage for one entry; throws std::bad_alloc when the shard is full.
  uint32_t Allocate();
  char* Get(uint32_t handle) const {
    const uint32_t raw = handle - 1;
    return blocks_[raw >> 12].load(std::memory_order_relaxed) +
           static_cast<int64_t>(raw & (kBlockEntries - 1)) * stride_;
  }
  // Releases every entry. The caller guarantees no concurrent writer (all map locks held).
  void Reset();
  int64_t MemoryBytes() const;
  int64_t stride() const { return stride_; }
  int64_t BlockBytes() const { return kBlockEntries * stride_; }

 private:
  struct Shard {
    mutable std::mutex mu;
    int64_t num_blocks = 0;
    int next_index = kBlockEntries;  // next free index in the last block
  };

  static constexpr int kBlocksPerChunk = 16;
  // A fresh block from the shared chunk (shards share chunks so that partly used huge pages are
  // at most one chunk's, not one per shard).
  char* NewBlock();

  const int64_t stride_;
  // Lazily committed (calloc) table of block pointers, kMaxBlocks per shard in shard order, so
  // that a handle's top 20 bits index it (one load per Get); a block's pointer is published before
  // any handle into it.
  std::atomic<char*>* const blocks_;
  std::unique_ptr<Shard[]> shards_;
  std::mutex chunk_mu_;
  std::vector<std::pair<void*, size_t>> chunks_;  // mappings, released at destruction
  char* chunk_next_ = nullptr;
  int chunk_blocks_left_ = 0;
};

}  // namespace hash_table
}  // namespace monolith

#endif  // MONOLITH_NATIVE_TRAINING_RUNTIME_HASH_TABLE_ENTRY_ARENA_H_
