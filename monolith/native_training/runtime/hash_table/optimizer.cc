#include "monolith/native_training/runtime/hash_table/optimizer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "monolith/native_training/runtime/hash_table/fp16.h"

namespace monolith {
namespace hash_table {
namespace {

// SingleOptimizerDump oneof field numbers.
enum DumpType {
  kDumpAdagrad = 1,
  kDumpSgd = 2,
  kDumpFtrl = 3,
  kDumpAdadelta = 6,
  kDumpAdam = 7,
  kDumpAmsgrad = 8,
  kDumpMomentum = 9,
  kDumpRmsprop = 11,
  kDumpRmspropV2 = 12,
  kDumpBatchSoftmax = 14,
  kDumpGroupAdagrad = 15,
};

// An optimizer whose state is a sequence of float arrays, each saved as one float field of its
// dump message. `fields_` lists them in state order; `count` is dim (repeated) or 1 (scalar).
class FloatStateOptimizer : public Optimizer {
 public:
  struct Field {
    int number;
    bool repeated;
  };

  FloatStateOptimizer(int dim, int dump_type, std::vector<Field> fields)
      : Optimizer(dim), dump_type_(dump_type), fields_(std::move(fields)) {}

  int64_t StateBytes() const override { return NumStateFloats() * 4; }

  void Save(const void* state, std::vector<OptimizerDumpItem>* out) const override {
    OptimizerDumpItem item;
    item.type = dump_type_;
    const float* s = static_cast<const float*>(state);
    for (const Field& f : fields_) {
      int n = f.repeated ? dim() : 1;
      item.MutableFloats(f.number)->assign(s, s + n);
      s += n;
    }
    out->push_back(std::move(item));
  }

  std::string Validate(const OptimizerDumpItem& item) const override {
    if (item.type != dump_type_) {
      return "optimizer dump type " + std::to_string(item.type) + " where " +
             std::to_string(dump_type_) + " expected";
    }
    for (const Field& f : fields_) {
      const std::vector<float>* v = item.Floats(f.number);
      size_t want = f.repeated ? dim() : 1;
      size_t got = v ? v->size() : 0;
      // proto2 scalars may be absent (then 0); repeated state must match the dim exactly.
      if (got != want && !(got == 0 && !f.repeated)) {
        return "optimizer dump field " + std::to_string(f.number) + " has " +
               std::to_string(got) + " values, expected " + std::to_string(want);
      }
    }
    return "";
  }

  void Restore(void* state, const OptimizerDumpItem& item) const override {
    float* s = static_cast<float*>(state);
    for (const Field& f : fields_) {
      const std::vector<float>* v = item.Floats(f.number);
      int n = f.repeated ? dim() : 1;
      if (v && !v->empty()) {
        std::memcpy(s, v->data(), n * 4);
      } else {
        std::fill(s, s + n, 0.0f);
      }
      s += n;
    }
  }

 private:
  int64_t NumStateFloats() const {
    int64_t n = 0;
    for (const Field& f : fields_) n += f.repeated ? dim() : 1;
    return n;
  }

  int dump_type_;
  std::vector<Field> fields_;
};

class Sgd : public Optimizer {
 public:
  using Optimizer::Optimizer;
  int64_t StateBytes() const override { return 0; }
  void Init(void*) const override {}
  void Optimize(void*, float* w, const float* g, float lr, int64_t) const override {
    for (int i = 0; i < dim(); ++i) w[i] -= lr * g[i];
  }
  void Save(const void*, std::vector<OptimizerDumpItem>* out) const override {
    OptimizerDumpItem item;
    item.type = kDumpSgd;
    out->push_back(std::move(item));
  }
  std::string Validate(const OptimizerDumpItem& item) const override {
    return item.type == kDumpSgd ? "" : "optimizer dump is not sgd";
  }
  void Restore(void*, const OptimizerDumpItem&) const override {}
};

class Adagrad : public FloatStateOptimizer {
 public:
  Adagrad(int dim, const OptimizerConfig& c)
      : FloatStateOptimizer(dim, kDumpAdagrad, {{1, true}}), c_(c) {}
  void Init(void* state) const override {
    std::fill_n(static_cast<float*>(state), dim(), c_.initial_accumulator_value);
  }
  // The scalar formula for every element (upstream's AVX chunks use the raw gradient in the
  // weight update when weight_decay_factor != 0, Quirk Q8; identical at the default of 0).
  void Optimize(void* state, float* w, const float* g, float lr, int64_t) const override {
    float* n = static_cast<float*>(state);
    const float wd = c_.weight_decay_factor;
    for (int i = 0; i < dim(); ++i) {
      float gd = g[i] + wd * w[i];
      n[i] += gd * gd;
      w[i] -= lr / std::sqrt(n[i]) * gd;
    }
  }

 private:
  OptimizerConfig c_;
};

class Ftrl : public FloatStateOptimizer {
 public:
  // State: n[d] then z[d]; dump: zero = 1 (z), norm = 2 (n).
  Ftrl(int dim, const OptimizerConfig& c)
      : FloatStateOptimizer(dim, kDumpFtrl, {{2, true}, {1, true}}), c_(c) {}
  void Init(void* state) const override {
    float* s = static_cast<float*>(state);
    std::fill_n(s, dim(), c_.initial_accumulator_value);
    std::fill_n(s + dim(), dim(), 0.0f);
  }
  void Optimize(void* state, float* w, const float* g, float lr, int64_t) const override {
    float* n = static_cast<float*>(state);
    float* z = n + dim();
    const float l1 = c_.l1_regularization_strength, l2 = c_.l2_regularization_strength;
    for (int i = 0; i < dim(); ++i) {
      float n_new = n[i] + g[i] * g[i];
      float sigma = (std::sqrt(n_new) - std::sqrt(n[i])) / lr;
      z[i] += g[i] - sigma * w[i];
      n[i] = n_new;
      // Upstream uses (s*l1 - z) with s = 1 for negative z, else 0 (Quirk Q6, kept).
      float s = z[i] < 0 ? 1.0f : 0.0f;
      w[i] = std::abs(z[i]) > l1 ? lr * (s * l1 - z[i]) / (std::sqrt(n[i]) + c_.beta + l2 * lr)
                                 : 0.0f;
    }
  }

 private:
  OptimizerConfig c_;
};

class Adadelta : public FloatStateOptimizer {
 public:
  Adadelta(int dim, const OptimizerConfig& c)
      : FloatStateOptimizer(dim, kDumpAdadelta, {{1, true}, {2, true}}), c_(c) {}
  void Init(void* state) const override { std::fill_n(static_cast<float*>(state), 2 * dim(), 0.0f); }
  void Optimize(void* state, float* w, const float* g, float lr, int64_t) const override {
    float* acc = static_cast<float*>(state);
    float* acc_u = acc + dim();
    const float rho = c_.averaging_ratio, eps = c_.epsilon, wd = c_.weight_decay_factor;
    for (int i = 0; i < dim(); ++i) {
      float gd = g[i] + wd * w[i];
      float acc_new = rho * acc[i] + (1 - rho) * gd * gd;
      float delta = std::sqrt(acc_u[i] + eps) / std::sqrt(acc_new + eps) * gd;
      w[i] -= lr * delta;
      acc_u[i] = rho * acc_u[i] + (1 - rho) * delta * delta;
      acc[i] = acc_new;
    }
  }

 private:
  OptimizerConfig c_;
};

// Adam and Amsgrad. State: m[d], v[d], (vhat[d]), beta1_power, beta2_power.
//
// Upstream's Adam restore writes the saved beta2_power into the beta1_power slot (Quirk Q7).
// That corrupts the restored bias correction, i.e. a checkpoint does not restore the state it
// saved (and contradicts upstream's own post-restore worked value -0.01983060), so both powers
// are restored into their own slots here.
class AdamFamily : public FloatStateOptimizer {
 public:
  AdamFamily(int dim, const OptimizerConfig& c, bool amsgrad)
      : FloatStateOptimizer(dim, amsgrad ? kDumpAmsgrad : kDumpAdam,
                            amsgrad ? std::vector<Field>{{1, true}, {2, true}, {3, true}, {4, false}, {5, false}}
                                    : std::vector<Field>{{1, true}, {2, true}, {3, false}, {4, false}}),
        c_(c),
        amsgrad_(amsgrad) {}
  void Init(void* state) const override {
    float* s = static_cast<float*>(state);
    int arrays = amsgrad_ ? 3 : 2;
    std::fill_n(s, arrays * dim(), 0.0f);
    s[arrays * dim()] = c_.beta1;
    s[arrays * dim() + 1] = c_.beta2;
  }
  void Optimize(void* state, float* w, const float* g, float lr, int64_t) const override {
    float* m = static_cast<float*>(state);
    float* v = m + dim();
    float* vhat = amsgrad_ ? v + dim() : nullptr;
    float* powers = m + (amsgrad_ ? 3 : 2) * dim();
    const float b1 = c_.beta1, b2 = c_.beta2, eps = c_.epsilon, wd = c_.weight_decay_factor;
    const float lr_t = lr * std::sqrt(1 - powers[1]) / (1 - powers[0]);
    for (int i = 0; i < dim(); ++i) {
      float gd = g[i] + wd * w[i];
      m[i] += (gd - m[i]) * (1 - b1);
      v[i] += (gd * gd - v[i]) * (1 - b2);
      float denom_v = v[i];
      if (amsgrad_) {
        vhat[i] = std::max(vhat[i], v[i]);
        denom_v = vhat[i];
      }
      float numerator = c_.use_nesterov ? gd * (1 - b1) + b1 * m[i] : m[i];
      w[i] -= lr_t * numerator / (std::sqrt(denom_v) + eps);
    }
    powers[0] *= b1;
    powers[1] *= b2;
  }

 private:
  OptimizerConfig c_;
  bool amsgrad_;
};

class Momentum : public FloatStateOptimizer {
 public:
  Momentum(int dim, const OptimizerConfig& c)
      : FloatStateOptimizer(dim, kDumpMomentum, {{1, true}}), c_(c) {}
  void Init(void* state) const override { std::fill_n(static_cast<float*>(state), dim(), 0.0f); }
  void Optimize(void* state, float* w, const float* g, float lr, int64_t) const override {
    float* n = static_cast<float*>(state);
    const float mu = c_.momentum, wd = c_.weight_decay_factor;
    for (int i = 0; i < dim(); ++i) {
      float dx = lr * (g[i] + wd * w[i]);
      if (c_.use_nesterov) {
        float n_old = n[i];
        n[i] = mu * n[i] - dx;
        w[i] += -mu * n_old + (1 + mu) * n[i];
      } else {
        n[i] = mu * n[i] - dx;
        w[i] += n[i];
      }
    }
  }

 private:
  OptimizerConfig c_;
};

// The "gradient" is a new observation: w <- mu*w + (1-mu)*g. Has no state and no dump.
class MovingAverage : public Optimizer {
 public:
  MovingAverage(int dim, const OptimizerConfig& c) : Optimizer(dim), c_(c) {}
  int64_t StateBytes() const override { return 0; }
  void Init(void*) const override {}
  void Optimize(void*, float* w, const float* g, float, int64_t) const override {
    const float mu = c_.momentum;
    for (int i = 0; i < dim(); ++i) w[i] = mu * w[i] + (1 - mu) * g[i];
  }
  void Save(const void*, std::vector<OptimizerDumpItem>*) const override {}
  int NumDumps() const override { return 0; }
  std::string Validate(const OptimizerDumpItem&) const override { return ""; }
  void Restore(void*, const OptimizerDumpItem&) const override {}

 private:
  OptimizerConfig c_;
};

// rmsprop: n <- mu*n + (1-mu)*dx^2 with the *config* learning rate; rmspropv2: n <- mu*n + dx^2
// with the op's learning rate. Both computed in double.
class Rmsprop : public FloatStateOptimizer {
 public:
  Rmsprop(int dim, const OptimizerConfig& c, bool v2)
      : FloatStateOptimizer(dim, v2 ? kDumpRmspropV2 : kDumpRmsprop, {{1, true}}), c_(c), v2_(v2) {}
  void Init(void* state) const override { std::fill_n(static_cast<float*>(state), dim(), 0.0f); }
  void Optimize(void* state, float* w, const float* g, float lr, int64_t) const override {
    float* n = static_cast<float*>(state);
    const double mu = c_.momentum, wd = c_.weight_decay_factor;
    const double alpha = v2_ ? lr : c_.learning_rate;
    for (int i = 0; i < dim(); ++i) {
      double dx = g[i] + wd * w[i];
      double n_new = v2_ ? mu * n[i] + dx * dx : mu * n[i] + (1 - mu) * dx * dx;
      n[i] = static_cast<float>(n_new);
      w[i] = static_cast<float>(w[i] - alpha / (std::sqrt(n_new) + 1) * dx);
    }
  }

 private:
  OptimizerConfig c_;
  bool v2_;
};

class GroupAdagrad : public FloatStateOptimizer {
 public:
  GroupAdagrad(int dim, const OptimizerConfig& c)
      : FloatStateOptimizer(dim, kDumpGroupAdagrad, {{1, false}}), c_(c) {}
  void Init(void* state) const override { *static_cast<float*>(state) = c_.initial_accumulator_value; }
  void Optimize(void* state, float* w, const float* g, float lr, int64_t) const override {
    float* big_g = static_cast<float*>(state);
    const float wd = c_.weight_decay_factor, l2 = c_.l2_regularization_strength;
    std::vector<float> gd(dim());
    float max_sq = 0;
    for (int i = 0; i < dim(); ++i) {
      gd[i] = g[i] + wd * w[i];
      max_sq = std::max(max_sq, gd[i] * gd[i]);
    }
    *big_g += max_sq;
    const float eta = lr / (c_.beta + std::sqrt(*big_g));
    float norm_sq = 0;
    for (int i = 0; i < dim(); ++i) {
      gd[i] = gd[i] - w[i] / eta;  // z_i
      norm_sq += gd[i] * gd[i];
    }
    const float norm = std::sqrt(norm_sq);
    for (int i = 0; i < dim(); ++i) {
      w[i] = norm < l2 ? 0.0f : -eta * (norm - l2) / norm * gd[i];
    }
  }

 private:
  OptimizerConfig c_;
};

// Estimates an item's sampling interval: w <- (1-a)*w + a*(step - last_step). State: int64.
class BatchSoftmax : public Optimizer {
 public:
  using Optimizer::Optimizer;
  int64_t StateBytes() const override { return 8; }
  void Init(void* state) const override { std::memset(state, 0, 8); }
  // Upstream aborts the process (fatal log) on a negative global_step; a long-running trainer
  // must not die on a bad input, so this is an op error raised before touching the entry.
  void Optimize(void* state, float* w, const float*, float lr, int64_t global_step) const override {
    if (global_step < 0) {
      throw std::invalid_argument("batch_softmax optimizer requires global_step >= 0, got " +
                                  std::to_string(global_step));
    }
    int64_t last;
    std::memcpy(&last, state, 8);
    w[0] = (1 - lr) * w[0] + lr * static_cast<float>(global_step - last);
    std::memcpy(state, &global_step, 8);
  }
  void Save(const void* state, std::vector<OptimizerDumpItem>* out) const override {
    OptimizerDumpItem item;
    item.type = kDumpBatchSoftmax;
    int64_t last;
    std::memcpy(&last, state, 8);
    item.SetInt(1, last);
    out->push_back(std::move(item));
  }
  std::string Validate(const OptimizerDumpItem& item) const override {
    return item.type == kDumpBatchSoftmax ? "" : "optimizer dump is not batch_softmax";
  }
  void Restore(void* state, const OptimizerDumpItem& item) const override {
    int64_t last = item.Int(1);
    std::memcpy(state, &last, 8);
  }
};

// After every update, replaces each weight by one of its two neighbouring fp16 values, picking
// the upper one with probability (v - down) / (up - down). Storage stays float32. Like upstream,
// the per-thread generator is a multiply-with-carry seeded {0, 1}.
class StochasticRoundingFp16 : public Optimizer {
 public:
  explicit StochasticRoundingFp16(std::unique_ptr<Optimizer> inner)
      : Optimizer(inner->dim()), inner_(std::move(inner)) {}
  int64_t StateBytes() const override { return inner_->StateBytes(); }
  void Init(void* state) const override { inner_->Init(state); }
  void Optimize(void* state, float* w, const float* g, float lr, int64_t step) const override {
    inner_->Optimize(state, w, g, lr, step);
    for (int i = 0; i < dim(); ++i) w[i] = Round(w[i]);
  }
  void Save(const void* state, std::vector<OptimizerDumpItem>* out) const override {
    inner_->Save(state, out);
  }
  int NumDumps() const override { return inner_->NumDumps(); }
  std::string Validate(const OptimizerDumpItem& item) const override {
    return inner_->Validate(item);
  }
  void Restore(void* state, const OptimizerDumpItem& item) const override {
    inner_->Restore(state, item);
  }

 private:
  static float Uniform() {
    thread_local uint32_t z = 0, w = 1;
    z = 36969 * (z & 65535) + (z >> 16);
    w = 18000 * (w & 65535) + (w >> 16);
    return static_cast<float>(((z << 16) + w) * (1.0 / 4294967296.0));
  }

  static float Round(float v) {
    if (!std::isfinite(v) || std::abs(v) > 65504.0f) return v;
    uint16_t h = FloatToHalf(v);
    float nearest = HalfToFloat(h);
    if (nearest == v) return v;
    float up, down;
    if (nearest > v) {
      up = nearest;
      down = HalfToFloat(HalfNextDown(h));
    } else {
      down = nearest;
      up = HalfToFloat(HalfNextUp(h));
    }
    return Uniform() <= (v - down) / (up - down) ? up : down;
  }

  std::unique_ptr<Optimizer> inner_;
};

}  // namespace

std::unique_ptr<Optimizer> NewOptimizer(const OptimizerConfig& c, int dim) {
  std::unique_ptr<Optimizer> opt;
  switch (c.type) {
    case OptimizerConfig::kSgd:
      opt = std::make_unique<Sgd>(dim);
      break;
    case OptimizerConfig::kAdagrad:
      opt = std::make_unique<Adagrad>(dim, c);
      break;
    case OptimizerConfig::kFtrl:
      opt = std::make_unique<Ftrl>(dim, c);
      break;
    case OptimizerConfig::kAdadelta:
      opt = std::make_unique<Adadelta>(dim, c);
      break;
    case OptimizerConfig::kAdam:
      opt = std::make_unique<AdamFamily>(dim, c, /*amsgrad=*/false);
      break;
    case OptimizerConfig::kAmsgrad:
      opt = std::make_unique<AdamFamily>(dim, c, /*amsgrad=*/true);
      break;
    case OptimizerConfig::kMomentum:
      opt = std::make_unique<Momentum>(dim, c);
      break;
    case OptimizerConfig::kMovingAverage:
      opt = std::make_unique<MovingAverage>(dim, c);
      break;
    case OptimizerConfig::kRmsprop:
      opt = std::make_unique<Rmsprop>(dim, c, /*v2=*/false);
      break;
    case OptimizerConfig::kRmspropV2:
      opt = std::make_unique<Rmsprop>(dim, c, /*v2=*/true);
      break;
    case OptimizerConfig::kGroupAdagrad:
      opt = std::make_unique<GroupAdagrad>(dim, c);
      break;
    case OptimizerConfig::kBatchSoftmax:
      if (dim != 1) {
        throw std::invalid_argument("batch_softmax optimizer requires dim_size 1, got " +
                                    std::to_string(dim));
      }
      opt = std::make_unique<BatchSoftmax>(dim);
      break;
    default:  // group_ftrl, dynamic_wd_adagrad, dc, unset
      throw std::invalid_argument("optimizer is not implemented yet. " + ShortDebugString(c));
  }
  if (c.stochastic_rounding_float16) {
    opt = std::make_unique<StochasticRoundingFp16>(std::move(opt));
  }
  return opt;
}

}  // namespace hash_table
}  // namespace monolith
