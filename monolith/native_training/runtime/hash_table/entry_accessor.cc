#include "monolith/native_training/runtime/hash_table/entry_accessor.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <sstream>
#include <stdexcept>

#include "monolith/native_training/runtime/hash_table/fp16.h"

namespace monolith {
namespace hash_table {
namespace {

// fixed_r8: step = r/128, q = trunc((x +- step/2)/step) clamped to int8; NaN -> 0.
int8_t QuantizeR8(float x, float step) {
  if (std::isnan(x)) return 0;
  float q = std::trunc((x + (x >= 0 ? step / 2 : -step / 2)) / step);
  return static_cast<int8_t>(std::min(127.0f, std::max(-128.0f, q)));
}

std::mt19937& InitializerRng() {
  thread_local std::mt19937 rng;  // default seed: deterministic per thread, as upstream
  return rng;
}

}  // namespace

struct EntryAccessor::Segment {
  int dim = 0;
  int float_offset = 0;  // training: first embedding float of this segment
  InitializerConfig init;
  CompressorConfig comp;  // training: selects the retriever; serving: the storage codec
  bool has_comp = false;
  std::unique_ptr<Optimizer> opt;
  int64_t opt_offset = 0;   // training: byte offset of this segment's optimizer state
  int64_t comp_offset = 0;  // serving: byte offset of this segment's encoded values
  std::atomic<float> hashnet_scale{1.0f};

  bool FakeQuant() const { return has_comp && comp.type == CompressorConfig::kFixedR8; }
  bool HashNet() const { return has_comp && comp.type == CompressorConfig::kOneBit; }

  void Initialize(float* w) const {
    switch (init.type) {
      case InitializerConfig::kZeros:
        std::fill_n(w, dim, 0.0f);
        break;
      case InitializerConfig::kOnes:
        std::fill_n(w, dim, 1.0f);
        break;
      case InitializerConfig::kConstants:
        std::fill_n(w, dim, init.constant);
        break;
      case InitializerConfig::kRandomUniform: {
        std::uniform_real_distribution<float> dist(init.minval, init.maxval);
        for (int i = 0; i < dim; ++i) w[i] = dist(InitializerRng());
        break;
      }
      default:
        throw std::invalid_argument("Unsupported initializer: " + ShortDebugString(init));
    }
  }

  // Training lookup: the retriever's view of the stored floats.
  void Retrieve(const float* w, float* out) const {
    if (FakeQuant()) {
      float step = comp.r / 128;
      for (int i = 0; i < dim; ++i) out[i] = QuantizeR8(w[i], step) * step;
    } else if (HashNet()) {
      float scale = hashnet_scale.load(std::memory_order_relaxed);
      for (int i = 0; i < dim; ++i) out[i] = comp.amplitude * std::tanh(scale * w[i]);
    } else {
      std::memcpy(out, w, dim * 4);
    }
  }

  // HashNet backward pass; other retrievers pass the gradient through.
  void Backward(const float* w, float* grad, int64_t global_step) {
    if (!HashNet()) return;
    if (comp.step_size > 0 && global_step % comp.step_size == 0) {
      float s = comp.init_scale * std::pow(1.0f + 0.005f * global_step, 0.5f);
      hashnet_scale.store(std::min(s, comp.max_scale), std::memory_order_relaxed);
    }
    float scale = hashnet_scale.load(std::memory_order_relaxed);
    for (int i = 0; i < dim; ++i) {
      float t = std::tanh(scale * w[i]);
      grad[i] *= comp.amplitude * scale * (1 - t * t);
    }
  }

  int64_t CompressedBytes() const {
    switch (comp.type) {
      case CompressorConfig::kFp32:
        return 4 * dim;
      case CompressorConfig::kFp16:
        return 2 * dim;
      default:  // fixed_r8, one_bit
        return dim;
    }
  }

  void Encode(const float* v, char* out) const {
    switch (comp.type) {
      case CompressorConfig::kFp32:
        std::memcpy(out, v, 4 * dim);
        break;
      case CompressorConfig::kFp16:
        for (int i = 0; i < dim; ++i) {
          uint16_t h = FloatToHalf(v[i]);
          std::memcpy(out + 2 * i, &h, 2);
        }
        break;
      case CompressorConfig::kFixedR8:
        for (int i = 0; i < dim; ++i) out[i] = QuantizeR8(v[i], comp.r / 128);
        break;
      default:  // one_bit
        for (int i = 0; i < dim; ++i) {
          out[i] = comp.amplitude * std::tanh(comp.init_scale * v[i]) > 0 ? 1 : -1;
        }
    }
  }

  void Decode(const char* in, float* v) const {
    switch (comp.type) {
      case CompressorConfig::kFp32:
        std::memcpy(v, in, 4 * dim);
        break;
      case CompressorConfig::kFp16:
        for (int i = 0; i < dim; ++i) {
          uint16_t h;
          std::memcpy(&h, in + 2 * i, 2);
          v[i] = HalfToFloat(h);
        }
        break;
      case CompressorConfig::kFixedR8:
        for (int i = 0; i < dim; ++i) v[i] = static_cast<int8_t>(in[i]) * (comp.r / 128);
        break;
      default:  // one_bit
        for (int i = 0; i < dim; ++i) v[i] = static_cast<int8_t>(in[i]) * comp.amplitude;
    }
  }
};

EntryAccessor::EntryAccessor(const EntryConfig& config) {
  debug_ = ShortDebugString(config);
  if (config.entry_type != EntryConfig::kTraining && config.entry_type != EntryConfig::kServing) {
    throw std::invalid_argument("Unknown entry type in entry config: " + debug_);
  }
  serving_ = config.entry_type == EntryConfig::kServing;
  int init_dim = 0, opt_dim = 0, comp_dim = 0;
  int64_t opt_bytes = 0, comp_bytes = 0;
  for (const SegmentConfig& sc : config.segments) {
    if (sc.dim_size < 0) {
      throw std::invalid_argument("Segment dim_size must be >= 0. Got " + std::to_string(sc.dim_size));
    }
    auto seg = std::make_unique<Segment>();
    seg->dim = sc.dim_size;
    seg->float_offset = dim_;
    if (sc.has_init) {
      if (sc.init.type == InitializerConfig::kUnset) {
        throw std::invalid_argument("InitializerConfig must be set type. Got " +
                                    ShortDebugString(sc.init));
      }
      seg->init = sc.init;
      init_dim += sc.dim_size;
    }
    if (sc.has_opt) {
      if (sc.opt.type == OptimizerConfig::kUnset) {
        throw std::invalid_argument("OptimizerConfig must be set type. Got " +
                                    ShortDebugString(sc.opt));
      }
      if (!serving_) {
        seg->opt = NewOptimizer(sc.opt, sc.dim_size);
        seg->opt_offset = opt_bytes;
        opt_bytes += seg->opt->StateBytes();
        num_opt_dumps_ += seg->opt->NumDumps();
      }
      opt_dim += sc.dim_size;
    }
    if (sc.has_comp) {
      if (sc.comp.type == CompressorConfig::kUnset) {
        throw std::invalid_argument("FloatCompressorConfig must be set type. Got ");
      }
      seg->has_comp = true;
      seg->comp = sc.comp;
      seg->hashnet_scale.store(sc.comp.init_scale);
      seg->comp_offset = comp_bytes;
      comp_bytes += seg->CompressedBytes();
      comp_dim += sc.dim_size;
      needs_grad_copy_ |= seg->HashNet();
    }
    dim_ += sc.dim_size;
    segments_.push_back(std::move(seg));
  }
  uncompressed_size_bytes_ = 4LL * dim_;
  if (serving_) {
    if (comp_dim == 0 || comp_dim != dim_) {
      throw std::invalid_argument("comp config is missing form entry config: " + debug_);
    }
    size_bytes_ = comp_bytes;
    return;
  }
  if (init_dim == 0 || opt_dim == 0) {
    throw std::invalid_argument("init or opt config is missing from entry config : " + debug_);
  }
  if (init_dim != dim_ || opt_dim != dim_) {
    throw std::invalid_argument("Initializer/Optimizer/Retriever dim size should match. But got " +
                                std::to_string(init_dim) + " vs " + std::to_string(opt_dim) +
                                " vs " + std::to_string(dim_));
  }
  size_bytes_ = 4LL * dim_ + opt_bytes;
  uncompressed_size_bytes_ = size_bytes_;
  for (auto& s : segments_) s->opt_offset += 4LL * dim_;
  plain_embedding_ = std::none_of(segments_.begin(), segments_.end(), [](const auto& s) {
    return s->FakeQuant() || s->HashNet();
  });
}

EntryAccessor::~EntryAccessor() = default;

int EntryAccessor::SliceSize() const {
  if (serving_) throw std::invalid_argument("ServingEntryAccessor doesn't support SliceSize");
  return static_cast<int>(segments_.size());
}

void EntryAccessor::Init(void* entry) const {
  if (serving_) return;  // serving entries are only created by assign/restore
  char* base = static_cast<char*>(entry);
  float* w = static_cast<float*>(entry);
  for (const auto& s : segments_) {
    s->Initialize(w + s->float_offset);
    s->opt->Init(base + s->opt_offset);
  }
}

void EntryAccessor::FillSegments(const void* entry, float* out) const {
  const char* base = static_cast<const char*>(entry);
  for (const auto& s : segments_) {
    if (serving_) {
      s->Decode(base + s->comp_offset, out + s->float_offset);
    } else {
      s->Retrieve(static_cast<const float*>(entry) + s->float_offset, out + s->float_offset);
    }
  }
}

void EntryAccessor::Assign(void* entry, const float* values) const {
  if (!serving_) {
    std::memcpy(entry, values, 4LL * dim_);
    return;
  }
  char* base = static_cast<char*>(entry);
  for (const auto& s : segments_) s->Encode(values + s->float_offset, base + s->comp_offset);
}

void EntryAccessor::AssignAdd(void* entry, const float* values) const {
  if (!serving_) {
    float* w = static_cast<float*>(entry);
    for (int i = 0; i < dim_; ++i) w[i] += values[i];
    return;
  }
  std::vector<float> tmp(dim_);
  Fill(entry, tmp.data());
  for (int i = 0; i < dim_; ++i) tmp[i] += values[i];
  Assign(entry, tmp.data());
}

void EntryAccessor::Optimize(void* entry, const float* grad, const float* lrs,
                             int64_t global_step) const {
  if (serving_) throw std::invalid_argument("ServingEntryAccessor doesn't support Optimize");
  char* base = static_cast<char*>(entry);
  float* w = static_cast<float*>(entry);
  thread_local std::vector<float> scratch;
  if (needs_grad_copy_) {
    scratch.assign(grad, grad + dim_);
    for (const auto& s : segments_) {
      s->Backward(w + s->float_offset, scratch.data() + s->float_offset, global_step);
    }
    grad = scratch.data();
  }
  for (size_t k = 0; k < segments_.size(); ++k) {
    const Segment& s = *segments_[k];
    s.opt->Optimize(base + s.opt_offset, w + s.float_offset, grad + s.float_offset, lrs[k],
                    global_step);
  }
}

void EntryAccessor::Save(const void* entry, int64_t timestamp, EntryDump* dump) const {
  if (serving_) throw std::invalid_argument("ServingEntryAccessor doesn't support Save");
  const float* w = static_cast<const float*>(entry);
  const char* base = static_cast<const char*>(entry);
  dump->num.assign(w, w + dim_);
  dump->has_opt = true;
  dump->opt.clear();
  for (const auto& s : segments_) s->opt->Save(base + s->opt_offset, &dump->opt);
  dump->has_last_update_ts_sec = true;
  dump->last_update_ts_sec = timestamp;
}

std::string EntryAccessor::Validate(const EntryDump& dump) const {
  if (static_cast<int>(dump.num.size()) != dim_) {
    return "embedding has " + std::to_string(dump.num.size()) + " values, expected dim " +
           std::to_string(dim_);
  }
  if (serving_) return "";
  if (static_cast<int>(dump.opt.size()) != num_opt_dumps_) {
    return "optimizer dump has " + std::to_string(dump.opt.size()) + " items, expected " +
           std::to_string(num_opt_dumps_);
  }
  size_t item = 0;
  for (const auto& s : segments_) {
    if (s->opt->NumDumps() == 0) continue;
    std::string err = s->opt->Validate(dump.opt[item++]);
    if (!err.empty()) return err;
  }
  return "";
}

void EntryAccessor::Restore(void* entry, const EntryDump& dump) const {
  if (serving_) {
    Assign(entry, dump.num.data());
    return;
  }
  std::memcpy(entry, dump.num.data(), 4LL * dim_);
  char* base = static_cast<char*>(entry);
  size_t item = 0;
  for (const auto& s : segments_) {
    if (s->opt->NumDumps() == 0) continue;
    s->opt->Restore(base + s->opt_offset, dump.opt[item++]);
  }
}

std::string EntryAccessor::DebugString() const {
  std::ostringstream os;
  os << "{\"type\": \"" << (serving_ ? "serving" : "training") << "\", \"dim\": " << dim_
     << ", \"entry_bytes\": " << size_bytes_ << ", \"config\": \"" << debug_ << "\"}";
  return os.str();
}

}  // namespace hash_table
}  // namespace monolith
