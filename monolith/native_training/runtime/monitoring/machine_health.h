// Process memory health check behind the MonolithCheckMachineHealth op.
//
// The result is a tensorflow.monolith_tf.MachineHealthResult (runtime/ops/logging_ops.proto)
// encoded by hand: kernels must not link generated C++ protobuf code (TF bundles its own
// protobuf runtime, 6.31.1, and our protoc differs), and the message has just two fields.
#ifndef MONOLITH_NATIVE_TRAINING_RUNTIME_MONITORING_MACHINE_HEALTH_H_
#define MONOLITH_NATIVE_TRAINING_RUNTIME_MONITORING_MACHINE_HEALTH_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace monolith {
namespace monitoring {

// MachineHealthResult.MachineHealthStatus values.
enum MachineHealthStatus : int { kOk = 0, kOutOfMemory = 1 };

// Resident set size in bytes from the text of a procfs status file (its `VmRSS: <n> kB` line),
// or -1 when the line is missing or malformed.
int64_t ParseVmRssBytes(std::string_view proc_status);

// ParseVmRssBytes of /proc/self/status (-1 when unreadable).
int64_t CurrentProcessRssBytes();

// Serialized MachineHealthResult{status, message}.
std::string EncodeMachineHealthResult(MachineHealthStatus status, std::string_view message);

// "" (the serialization of an empty result) when rss < mem_limit, else an OUT_OF_MEMORY result
// with message "Memory limit exceeded. Current: <rss>, Limit: <limit>".
std::string CheckMemory(int64_t rss_bytes, int64_t mem_limit_bytes);

}  // namespace monitoring
}  // namespace monolith

#endif  // MONOLITH_NATIVE_TRAINING_RUNTIME_MONITORING_MACHINE_HEALTH_H_
