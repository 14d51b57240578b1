// CUDA forward and backward of the fused embedding-to-layout op for versions 3, 4 and 5
// (fused_layout.md §4.8, §5.6). TF-free: a caller passes device pointers and a CUDA stream, so
// the kernels can be tested on a GPU machine without TensorFlow (layout_gpu_test). Compiled by
// nvcc only under --config=cuda; without it these functions are not linked.
#ifndef MONOLITH_NATIVE_TRAINING_RUNTIME_LAYOUT_LAYOUT_GPU_H_
#define MONOLITH_NATIVE_TRAINING_RUNTIME_LAYOUT_LAYOUT_GPU_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "monolith/native_training/runtime/layout/layout_config.h"
#include "monolith/native_training/runtime/layout/layout_kernels.h"

namespace monolith {
namespace layout {
namespace gpu {

// Whether a CUDA device is usable (false on machines without a GPU or driver).
bool Available();

// Plain device-memory helpers (synchronous), for callers without TF.
void* Malloc(size_t bytes);
void Free(void* ptr);
void CopyToDevice(void* dst, const void* src, size_t bytes);
void CopyToHost(void* dst, const void* src, size_t bytes);

// One request's segments inside the concatenated offset tensors and embedding blocks (v5 may
// carry several; v3/v4 have one request covering everything). Offsets inside a request are local
// to its segments.
struct Request {
  int64_t batch_size = 0;
  int64_t row_begin = 0;  // first output row of the request
  int64_t nfl_begin = 0, num_nfl = 0;
  int64_t entry_begin = 0, num_entries = 0;
  int64_t fid_begin = 0, num_fids = 0;
  int64_t block_begin = 0, num_blocks = 0;
};

// `blocks`: host table of device pointers (built with Build*Blocks); `offsets`: device pointers to
// the whole offset tensors; `outputs`: device buffers, zeroed here. Runs on `stream`
// (a cudaStream_t) and synchronises it to report "" or an error naming the feature.
std::string LayoutForward(const LayoutConfig& config, const std::vector<Block>& blocks,
                          const Offsets& offsets, const std::vector<Request>& requests,
                          const std::vector<FloatBuffer>& outputs, void* stream);

// Accumulates into `grad_blocks` (pointing into `grad_buffers`, zeroed here) the gradient of a
// single request with upstream gradients `output_grads` (device buffers, forward output order).
std::string LayoutBackward(const LayoutConfig& config, const std::vector<Block>& grad_blocks,
                           const Offsets& offsets, int64_t batch_size,
                           const std::vector<FloatBuffer>& output_grads,
                           const std::vector<FloatBuffer>& grad_buffers, void* stream);

}  // namespace gpu
}  // namespace layout
}  // namespace monolith

#endif  // MONOLITH_NATIVE_TRAINING_RUNTIME_LAYOUT_LAYOUT_GPU_H_
