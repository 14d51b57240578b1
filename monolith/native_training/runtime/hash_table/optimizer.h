// Per-entry optimizers: each owns `StateBytes()` bytes of optimizer state inside an entry and
// updates one segment's embedding slice in place. Formulas: native_ops.md §1.8.
#ifndef MONOLITH_NATIVE_TRAINING_RUNTIME_HASH_TABLE_OPTIMIZER_H_
#define MONOLITH_NATIVE_TRAINING_RUNTIME_HASH_TABLE_OPTIMIZER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "monolith/native_training/runtime/hash_table/config.h"
#include "monolith/native_training/runtime/common/entry_dump.h"

namespace monolith {
namespace hash_table {

class Optimizer {
 public:
  explicit Optimizer(int dim) : dim_(dim) {}
  virtual ~Optimizer() = default;

  int dim() const { return dim_; }
  virtual int64_t StateBytes() const = 0;
  virtual void Init(void* state) const = 0;
  // `w` and `g` hold dim() floats; `lr` is this segment's learning rate from the op input.
  virtual void Optimize(void* state, float* w, const float* g, float lr,
                        int64_t global_step) const = 0;
  // Appends NumDumps() (0 or 1) items describing `state`.
  virtual void Save(const void* state, std::vector<OptimizerDumpItem>* out) const = 0;
  virtual int NumDumps() const { return 1; }
  // Empty when `item` can be restored by this optimizer, else what does not match.
  virtual std::string Validate(const OptimizerDumpItem& item) const = 0;
  // Requires Validate(item) to be empty.
  virtual void Restore(void* state, const OptimizerDumpItem& item) const = 0;

 private:
  int dim_;
};

// Throws std::invalid_argument for unsupported configs ("optimizer is not implemented yet. ...").
std::unique_ptr<Optimizer> NewOptimizer(const OptimizerConfig& config, int dim);

}  // namespace hash_table
}  // namespace monolith

#endif  // MONOLITH_NATIVE_TRAINING_RUNTIME_HASH_TABLE_OPTIMIZER_H_
