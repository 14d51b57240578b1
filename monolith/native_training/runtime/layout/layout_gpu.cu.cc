#include "monolith/native_training/runtime/layout/layout_gpu.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>

namespace monolith {
namespace layout {
namespace gpu {
namespace {

// One (request, layout, slice) of the forward, or one (layout, slice) of the backward.
struct Task {
  float* out;          // output (or upstream gradient) tensor, row 0, slice offset applied
  int64_t row_stride;  // elements per output row
  int64_t seq_stride;  // FIRSTN: elements between occurrences k and k+1
  int32_t feature_idx;
  int32_t start;
  int32_t width;
  int32_t pooling;
  int32_t max_len;
  int32_t addn;
  int32_t request;
};

// First error seen by any thread: code != 0, the task it happened in, and two values.
struct DeviceError {
  int code;
  int task;
  long long a, b;
};

enum ErrorCode : int {
  kOk = 0,
  kNflRange = 1,
  kEntryRange = 2,
  kFeatureOffsetRange = 3,
  kBlockRange = 4,
  kElementRange = 5,
};

__device__ void Report(DeviceError* err, int code, int task, long long a, long long b) {
  if (atomicCAS(&err->code, 0, code) == 0) {
    err->task = task;
    err->a = a;
    err->b = b;
  }
}

// Finds the fid range [*begin, *end) of (task's feature, row) in the request's segments;
// false when there is nothing to do (no entries, or an error was reported). Upstream returns
// from the whole kernel here, skipping the thread's later grid-stride tasks (Quirk Q5); only this
// (task, row) is skipped.
__device__ bool EntryRange(const Task& t, int task_idx, int64_t row, const Request& req,
                           const uint32_t* nfl, const int32_t* feature_offset,
                           DeviceError* err, int64_t* begin, int64_t* end) {
  if (t.feature_idx >= req.num_nfl) {
    Report(err, kNflRange, task_idx, t.feature_idx, req.num_nfl);
    return false;
  }
  const uint32_t* nf = nfl + req.nfl_begin;
  const bool shared = nf[t.feature_idx] & 0x80000000u;
  const int64_t first = nf[t.feature_idx] & 0x7fffffffu;
  const int64_t next =
      t.feature_idx + 1 < req.num_nfl ? (nf[t.feature_idx + 1] & 0x7fffffffu) : req.num_entries;
  if (next - first == 0) return false;
  const int64_t e = first + (shared ? 0 : row);
  if (next < first || e >= req.num_entries) {
    Report(err, kEntryRange, task_idx, e, req.num_entries);
    return false;
  }
  const int32_t* fo = feature_offset + req.entry_begin;
  *begin = fo[e];
  *end = e + 1 < req.num_entries ? fo[e + 1] : req.num_fids;
  if (*begin < 0 || *end < *begin || *end > req.num_fids) {
    Report(err, kFeatureOffsetRange, task_idx, *begin, *end);
    return false;
  }
  return true;
}

// Address of E(f)[start] for fid_offset value v, or nullptr after reporting.
__device__ float* Resolve(const Block* blocks, const Request& req, uint64_t v, const Task& t,
                          int task_idx, DeviceError* err) {
  const int32_t i1 = static_cast<int32_t>(v >> 32);
  const int32_t i2 = static_cast<int32_t>(v & 0xffffffffu);
  if (i1 < 0 || i1 >= req.num_blocks || i2 < 0) {
    Report(err, kBlockRange, task_idx, i1, i2);
    return nullptr;
  }
  const Block& b = blocks[req.block_begin + i1];
  const int64_t off = static_cast<int64_t>(i2) * b.stride + t.start;
  if (off + t.width > b.count) {
    Report(err, kElementRange, task_idx, off + t.width, b.count);
    return nullptr;
  }
  return b.data + off;
}

constexpr int kWarp = 32;
constexpr int kWarpsPerBlock = 8;

// One warp per (task, row); its lanes stride over the slice's elements.
__global__ void ForwardKernel(const Task* tasks, int num_tasks, const Request* requests,
                              int64_t max_rows, const Block* blocks, const uint64_t* fid_offset,
                              const int32_t* feature_offset, const uint32_t* nfl,
                              DeviceError* err) {
  const int lane = threadIdx.x;
  for (int ti = blockIdx.y; ti < num_tasks; ti += gridDim.y) {
    const Task t = tasks[ti];
    const Request req = requests[t.request];
    for (int64_t row = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.y;
         row < max_rows; row += static_cast<int64_t>(gridDim.x) * kWarpsPerBlock) {
      if (row >= req.batch_size) break;
      int64_t begin, end;
      if (!EntryRange(t, ti, row, req, nfl, feature_offset, err, &begin, &end)) continue;
      float* dst = t.out + (req.row_begin + row) * t.row_stride;
      const int64_t n = end - begin;
      const int64_t kept = t.pooling == kFirstN ? min(n, static_cast<int64_t>(t.max_len)) : n;
      const float nf = static_cast<float>(n);
      const uint64_t* fo = fid_offset + req.fid_begin;
      for (int64_t k = 0; k < kept; ++k) {
        const float* src = Resolve(blocks, req, fo[begin + k], t, ti, err);
        if (!src) break;
        float* d = t.pooling == kFirstN ? dst + k * t.seq_stride : dst;
        for (int e = lane; e < t.width; e += kWarp) {
          const float v = t.pooling == kMean ? src[e] / nf : src[e];
          if (t.addn) {
            atomicAdd(d + e, v);
          } else {
            d[e] += v;  // (task, row) regions are exclusive outside ADDN
          }
        }
      }
    }
  }
}

__global__ void BackwardKernel(const Task* tasks, int num_tasks, const Request* requests,
                               const Block* blocks, const uint64_t* fid_offset,
                               const int32_t* feature_offset, const uint32_t* nfl,
                               DeviceError* err) {
  const int lane = threadIdx.x;
  const Request req = requests[0];
  for (int ti = blockIdx.y; ti < num_tasks; ti += gridDim.y) {
    const Task t = tasks[ti];
    for (int64_t row = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.y;
         row < req.batch_size; row += static_cast<int64_t>(gridDim.x) * kWarpsPerBlock) {
      int64_t begin, end;
      if (!EntryRange(t, ti, row, req, nfl, feature_offset, err, &begin, &end)) continue;
      const float* g = t.out + row * t.row_stride;
      const int64_t n = end - begin;
      const int64_t kept = t.pooling == kFirstN ? min(n, static_cast<int64_t>(t.max_len)) : n;
      const float nf = static_cast<float>(n);
      for (int64_t k = 0; k < kept; ++k) {
        float* dst = Resolve(blocks, req, fid_offset[begin + k], t, ti, err);
        if (!dst) break;
        const float* gk = t.pooling == kFirstN ? g + k * t.seq_stride : g;
        for (int e = lane; e < t.width; e += kWarp) {
          atomicAdd(dst + e, t.pooling == kMean ? gk[e] / nf : gk[e]);
        }
      }
    }
  }
}

std::string CudaError(cudaError_t e, const char* what) {
  return std::string(what) + ": " + cudaGetErrorString(e);
}

// Device copies of the task, block and request tables plus the error slot, in one allocation.
class DeviceTables {
 public:
  DeviceTables(const std::vector<Task>& tasks, const std::vector<Block>& blocks,
               const std::vector<Request>& requests, cudaStream_t stream)
      : stream_(stream) {
    tasks_off_ = 0;
    blocks_off_ = Align(tasks_off_ + tasks.size() * sizeof(Task));
    requests_off_ = Align(blocks_off_ + blocks.size() * sizeof(Block));
    err_off_ = Align(requests_off_ + requests.size() * sizeof(Request));
    const size_t bytes = err_off_ + sizeof(DeviceError);
    host_.assign(bytes, 0);
    std::memcpy(host_.data() + tasks_off_, tasks.data(), tasks.size() * sizeof(Task));
    std::memcpy(host_.data() + blocks_off_, blocks.data(), blocks.size() * sizeof(Block));
    std::memcpy(host_.data() + requests_off_, requests.data(), requests.size() * sizeof(Request));
    status_ = cudaMallocAsync(&dev_, bytes, stream_);
    if (status_ == cudaSuccess) {
      status_ = cudaMemcpyAsync(dev_, host_.data(), bytes, cudaMemcpyHostToDevice, stream_);
    }
  }
  ~DeviceTables() {
    if (dev_) cudaFreeAsync(dev_, stream_);
  }
  cudaError_t status() const { return status_; }
  const Task* tasks() const { return reinterpret_cast<const Task*>(dev_ + tasks_off_); }
  const Block* blocks() const { return reinterpret_cast<const Block*>(dev_ + blocks_off_); }
  const Request* requests() const { return reinterpret_cast<const Request*>(dev_ + requests_off_); }
  DeviceError* error() const { return reinterpret_cast<DeviceError*>(dev_ + err_off_); }

 private:
  static size_t Align(size_t n) { return (n + 15) / 16 * 16; }
  cudaStream_t stream_;
  std::vector<char> host_;
  char* dev_ = nullptr;
  size_t tasks_off_, blocks_off_, requests_off_, err_off_;
  cudaError_t status_ = cudaSuccess;
};

Task MakeTask(const LayoutConfig& config, const LayoutInfo& layout, const SliceInfo& s,
              const std::vector<FloatBuffer>& outputs, int request) {
  Task t;
  t.out = outputs[s.output].data + s.offset;
  t.row_stride = config.outputs()[s.output].row_elems;
  t.seq_stride = s.seq_stride;
  t.feature_idx = s.feature_idx;
  t.start = s.start;
  t.width = s.width;
  t.pooling = s.pooling;
  t.max_len = s.max_sequence_length;
  t.addn = layout.out_type == kAddN;
  t.request = request;
  return t;
}

// Launches `launch` over the tasks and turns a device-side error into a message naming the
// feature of the failing task.
template <typename Launch>
std::string Run(const LayoutConfig& config, const std::vector<Task>& tasks,
                const std::vector<Block>& blocks, const std::vector<Request>& requests,
                cudaStream_t stream, Launch launch) {
  DeviceTables tables(tasks, blocks, requests, stream);
  if (tables.status() != cudaSuccess) return CudaError(tables.status(), "uploading layout tables");
  launch(tables);
  DeviceError err;
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return CudaError(e, "launching layout kernel");
  e = cudaMemcpyAsync(&err, tables.error(), sizeof(err), cudaMemcpyDeviceToHost, stream);
  if (e == cudaSuccess) e = cudaStreamSynchronize(stream);
  if (e != cudaSuccess) return CudaError(e, "running layout kernel");
  if (err.code == kOk) return "";
  const std::string& name = config.features()[tasks[err.task].feature_idx].name;
  const std::string a = std::to_string(err.a), b = std::to_string(err.b);
  switch (err.code) {
    case kNflRange:
      return "feature " + name + ": feature index " + a + " out of range of nfl_offset (size " + b + ")";
    case kEntryRange:
      return "feature " + name + ": entry " + a + " out of range of feature_offset (size " + b + ")";
    case kFeatureOffsetRange:
      return "feature " + name + ": feature_offset gives fids [" + a + ", " + b + ") outside fid_offset";
    case kBlockRange:
      return "feature " + name + ": fid_offset (" + a + ", " + b + ") out of range of the embedding blocks";
    default:
      return "feature " + name + ": embedding elements up to " + a + " out of range of a block of size " + b +
             "; wrong embedding dim?";
  }
}

dim3 Grid(int64_t rows, size_t tasks) {
  const int64_t x = std::max<int64_t>(1, std::min<int64_t>((rows + kWarpsPerBlock - 1) / kWarpsPerBlock, 1024));
  const int64_t y = std::max<int64_t>(1, std::min<int64_t>(tasks, 65535));
  return dim3(static_cast<unsigned>(x), static_cast<unsigned>(y));
}

}  // namespace

bool Available() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

void* Malloc(size_t bytes) {
  void* p = nullptr;
  return cudaMalloc(&p, std::max<size_t>(bytes, 1)) == cudaSuccess ? p : nullptr;
}
void Free(void* ptr) { cudaFree(ptr); }
void CopyToDevice(void* dst, const void* src, size_t bytes) {
  cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice);
}
void CopyToHost(void* dst, const void* src, size_t bytes) {
  cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost);
}

std::string LayoutForward(const LayoutConfig& config, const std::vector<Block>& blocks,
                          const Offsets& offsets, const std::vector<Request>& requests,
                          const std::vector<FloatBuffer>& outputs, void* stream_ptr) {
  cudaStream_t stream = static_cast<cudaStream_t>(stream_ptr);
  int64_t total_rows = 0, max_rows = 0;
  for (const Request& r : requests) {
    total_rows += r.batch_size;
    max_rows = std::max(max_rows, r.batch_size);
  }
  std::string err = CheckOutputs(config, total_rows, outputs);
  if (!err.empty()) return err;
  for (const FloatBuffer& o : outputs) {
    if (o.size == 0) continue;
    cudaError_t e = cudaMemsetAsync(o.data, 0, o.size * sizeof(float), stream);
    if (e != cudaSuccess) return CudaError(e, "zeroing layout outputs");
  }
  std::vector<Task> tasks;
  for (size_t r = 0; r < requests.size(); ++r) {
    for (const LayoutInfo& layout : config.layouts()) {
      for (const SliceInfo& s : layout.slices) tasks.push_back(MakeTask(config, layout, s, outputs, r));
    }
  }
  if (tasks.empty() || max_rows == 0) {
    cudaError_t e = cudaStreamSynchronize(stream);
    return e == cudaSuccess ? "" : CudaError(e, "zeroing layout outputs");
  }
  return Run(config, tasks, blocks, requests, stream, [&](const DeviceTables& t) {
    ForwardKernel<<<Grid(max_rows, tasks.size()), dim3(kWarp, kWarpsPerBlock), 0, stream>>>(
        t.tasks(), tasks.size(), t.requests(), max_rows, t.blocks(), offsets.fid_offset,
        offsets.feature_offset, offsets.nfl_offset, t.error());
  });
}

std::string LayoutBackward(const LayoutConfig& config, const std::vector<Block>& grad_blocks,
                           const Offsets& offsets, int64_t batch_size,
                           const std::vector<FloatBuffer>& output_grads,
                           const std::vector<FloatBuffer>& grad_buffers, void* stream_ptr) {
  cudaStream_t stream = static_cast<cudaStream_t>(stream_ptr);
  std::string err = CheckOutputs(config, batch_size, output_grads);
  if (!err.empty()) return err;
  for (const FloatBuffer& g : grad_buffers) {
    if (g.size == 0) continue;
    cudaError_t e = cudaMemsetAsync(g.data, 0, g.size * sizeof(float), stream);
    if (e != cudaSuccess) return CudaError(e, "zeroing embedding gradients");
  }
  std::vector<Task> tasks;
  for (const LayoutInfo& layout : config.layouts()) {
    for (const SliceInfo& s : layout.slices) tasks.push_back(MakeTask(config, layout, s, output_grads, 0));
  }
  Request req;
  req.batch_size = batch_size;
  req.num_nfl = offsets.num_nfl;
  req.num_entries = offsets.num_entries;
  req.num_fids = offsets.num_fids;
  req.num_blocks = grad_blocks.size();
  if (tasks.empty() || batch_size == 0) {
    cudaError_t e = cudaStreamSynchronize(stream);
    return e == cudaSuccess ? "" : CudaError(e, "zeroing embedding gradients");
  }
  return Run(config, tasks, grad_blocks, {req}, stream, [&](const DeviceTables& t) {
    BackwardKernel<<<Grid(batch_size, tasks.size()), dim3(kWarp, kWarpsPerBlock), 0, stream>>>(
        t.tasks(), tasks.size(), t.requests(), t.blocks(), offsets.fid_offset,
        offsets.feature_offset, offsets.nfl_offset, t.error());
  });
}

}  // namespace gpu
}  // namespace layout
}  // namespace monolith
