// CPU forward and backward of the fused embedding-to-layout op (all versions), TF-free.
//
// Every version first turns its embedding inputs into a table of "blocks" (pointer, stride,
// element count); a fid occurrence's embedding then starts at
//   block[index1].data + index2 * block[index1].stride
// with index1 = fid_offset >> 32 and index2 = fid_offset & 0xffffffff. The Build*Blocks functions
// implement the per-version addressing (fused_layout.md §4.3); the walk over layouts, slices and
// rows is shared.
#ifndef MONOLITH_NATIVE_TRAINING_RUNTIME_LAYOUT_LAYOUT_KERNELS_H_
#define MONOLITH_NATIVE_TRAINING_RUNTIME_LAYOUT_LAYOUT_KERNELS_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "monolith/native_training/runtime/layout/layout_config.h"

namespace monolith {
namespace layout {

constexpr uint32_t kSharedBit = 0x80000000u;

struct Block {
  float* data = nullptr;
  int64_t stride = 1;
  int64_t count = 0;
};

// A flat float buffer (an embedding tensor or its gradient).
struct FloatBuffer {
  float* data = nullptr;
  int64_t size = 0;
};

struct Offsets {
  const uint64_t* fid_offset = nullptr;
  int64_t num_fids = 0;
  const int32_t* feature_offset = nullptr;
  int64_t num_entries = 0;  // len(feature_offset), sentinel included if present
  const uint32_t* nfl_offset = nullptr;
  int64_t num_nfl = 0;
};

// Runs fn(0) … fn(n-1), possibly concurrently. An empty runner means serial.
using ParallelRunner = std::function<void(int64_t n, const std::function<void(int64_t)>& fn)>;

// v1: one block per 2-D tensor [rows, cols]; index2 is a row.
std::vector<Block> BuildBlocksV1(const std::vector<FloatBuffer>& tensors,
                                 const std::vector<int64_t>& cols);
// v2: `tensors` and `row_splits` in table-major order (ti·P + ps), exactly P·T of each; one block
// per (table, shard, feature) numbered pre(ti) + ps·F_t + k; index2 is the fid's position in the
// feature's sub-list.
std::string BuildBlocksV2(const LayoutConfig& config, int ps_num,
                          const std::vector<FloatBuffer>& tensors,
                          const std::vector<std::vector<int64_t>>& row_splits,
                          std::vector<Block>* blocks);
// v3/v5: one flat block per tensor; index2 is an element offset.
std::vector<Block> BuildBlocksV3(const std::vector<FloatBuffer>& tensors);
// v4: one buffer holding the (table, shard) pieces shard-major; `piece_lengths[ps·T + ti]` is the
// element length of each; block ti·P + ps points at piece (ti, ps).
std::string BuildBlocksV4(const LayoutConfig& config, int ps_num, const FloatBuffer& buffer,
                          const int32_t* piece_lengths, int64_t num_pieces,
                          std::vector<Block>* blocks);

// Writes every element of every output. `outputs[i]` must hold Rows(batch_size) × row_elems floats
// of config.outputs()[i]. With a runner, the rows are split into `num_threads` ranges run through
// it (results are bit-identical to the serial run). Large exclusive outputs are written with
// non-temporal stores, so they are not left in the caches. Returns "" or an error naming the
// feature.
std::string LayoutForward(const LayoutConfig& config, const std::vector<Block>& blocks,
                          const Offsets& offsets, int64_t batch_size,
                          const std::vector<FloatBuffer>& outputs, const ParallelRunner& runner,
                          int num_threads);

// Accumulates the gradient of every block element into `grad_blocks` (the same table as the
// forward's, pointing into zero-initialised gradient buffers, which the caller zeroes).
// `output_grads` are the upstream gradients in forward output order. With a runner, up to
// `num_threads` items each scatter into their own blocks (results identical to the serial run).
//
// Upstream's v1/v2 CPU kernels "assign on first write per (row, slice_idx)", which drops earlier
// contributions when two slices of one feature overlap (Quirk Q1, lost gradient); every version
// here accumulates, which is identical whenever slices do not overlap (all upstream tests).
std::string LayoutBackward(const LayoutConfig& config, const std::vector<Block>& grad_blocks,
                           const Offsets& offsets, int64_t batch_size,
                           const std::vector<FloatBuffer>& output_grads,
                           const ParallelRunner& runner, int num_threads);

// Zeroes `buffers` (LayoutBackward's gradient buffers), in pieces run through the runner (serially
// without one). Large buffers are written with non-temporal stores.
void ZeroBuffers(const std::vector<FloatBuffer>& buffers, const ParallelRunner& runner);

// Upstream batch/offset sanity checks shared with the GPU path: batch_size > 0, each output can
// hold batch_size rows.
std::string CheckOutputs(const LayoutConfig& config, int64_t batch_size,
                         const std::vector<FloatBuffer>& outputs);

}  // namespace layout
}  // namespace monolith

#endif  // MONOLITH_NATIVE_TRAINING_RUNTIME_LAYOUT_LAYOUT_KERNELS_H_
