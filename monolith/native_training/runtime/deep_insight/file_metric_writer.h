// Hands metric messages from training threads to one background thread that writes them to a
// sink (the deep-insight dump file), so that op kernels never wait on file I/O unless the queue
// is full. Nothing is dropped: Write blocks while the queue is full, and destruction drains it.
#ifndef MONOLITH_NATIVE_TRAINING_RUNTIME_DEEP_INSIGHT_FILE_METRIC_WRITER_H_
#define MONOLITH_NATIVE_TRAINING_RUNTIME_DEEP_INSIGHT_FILE_METRIC_WRITER_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace monolith {
namespace deep_insight {

class FileMetricWriter {
 public:
  // `sink` is called on the background thread, in Write order; it returns false on a write
  // failure (the message is counted as failed, later messages are still offered).
  using Sink = std::function<bool(const std::string&)>;

  static constexpr size_t kDefaultCapacity = 8192;

  explicit FileMetricWriter(Sink sink, size_t capacity = kDefaultCapacity);
  // Drains every queued message into the sink, then stops the thread.
  ~FileMetricWriter();

  FileMetricWriter(const FileMetricWriter&) = delete;
  FileMetricWriter& operator=(const FileMetricWriter&) = delete;

  void Write(std::string msg);

  int64_t produced() const;
  int64_t consumed() const;
  int64_t failed() const;

 private:
  void Run();

  const Sink sink_;
  const size_t capacity_;
  mutable std::mutex mu_;
  std::condition_variable not_empty_;
  std::condition_variable not_full_;
  std::deque<std::string> queue_;
  bool stopping_ = false;
  int64_t produced_ = 0;
  int64_t consumed_ = 0;
  int64_t failed_ = 0;
  std::thread thread_;
};

}  // namespace deep_insight
}  // namespace monolith

#endif  // MONOLITH_NATIVE_TRAINING_RUNTIME_DEEP_INSIGHT_FILE_METRIC_WRITER_H_
