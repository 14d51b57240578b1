#include "monolith/native_training/runtime/deep_insight/file_metric_writer.h"

namespace monolith {
namespace deep_insight {

FileMetricWriter::FileMetricWriter(Sink sink, size_t capacity)
    : sink_(std::move(sink)), capacity_(capacity == 0 ? 1 : capacity) {
  thread_ = std::thread([this] { Run(); });
}

FileMetricWriter::~FileMetricWriter() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  not_empty_.notify_all();
  thread_.join();
}

void FileMetricWriter::Write(std::string msg) {
  std::unique_lock<std::mutex> lock(mu_);
  not_full_.wait(lock, [this] { return queue_.size() < capacity_; });
  queue_.push_back(std::move(msg));
  ++produced_;
  lock.unlock();
  not_empty_.notify_one();
}

void FileMetricWriter::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    not_empty_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping and drained
    std::string msg = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    not_full_.notify_one();
    const bool ok = sink_(msg);
    lock.lock();
    ++consumed_;
    if (!ok) ++failed_;
  }
}

int64_t FileMetricWriter::produced() const {
  std::lock_guard<std::mutex> lock(mu_);
  return produced_;
}

int64_t FileMetricWriter::consumed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return consumed_;
}

int64_t FileMetricWriter::failed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return failed_;
}

}  // namespace deep_insight
}  // namespace monolith
