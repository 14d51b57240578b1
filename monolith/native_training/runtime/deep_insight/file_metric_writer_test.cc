#include "monolith/native_training/runtime/deep_insight/file_metric_writer.h"

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "monolith/native_training/runtime/common/testing.h"

namespace {

using monolith::testing::Expect;
using monolith::deep_insight::FileMetricWriter;

void TestOrderAndDrain() {
  std::vector<std::string> written;
  {
    // The sink is slow and the queue holds 2: Write must block rather than drop.
    FileMetricWriter writer(
        [&written](const std::string& msg) {
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
          written.push_back(msg);
          return true;
        },
        2);
    for (int i = 0; i < 50; ++i) writer.Write(std::to_string(i));
    writer.Write("");
    Expect(writer.produced() == 51, "produced counts writes");
  }  // destruction drains
  Expect(written.size() == 51, "nothing lost");
  bool ordered = true;
  for (int i = 0; i < 50; ++i) ordered &= written[i] == std::to_string(i);
  Expect(ordered, "sink sees write order");
  Expect(written.back().empty(), "empty messages are written too");
}

void TestFailuresCounted() {
  auto writer = std::make_unique<FileMetricWriter>(
      [](const std::string& msg) { return msg != "bad"; });
  writer->Write("good");
  writer->Write("bad");
  writer->Write("good");
  while (writer->consumed() < 3) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  Expect(writer->failed() == 1, "one failure");
  Expect(writer->consumed() == 3, "every message offered");
}

void TestConcurrentProducers() {
  std::mutex mu;
  std::vector<int> seen(8 * 1000, 0);
  {
    FileMetricWriter writer(
        [&](const std::string& msg) {
          std::lock_guard<std::mutex> lock(mu);
          ++seen[std::stoi(msg)];
          return true;
        },
        16);
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&writer, t] {
        for (int i = 0; i < 1000; ++i) writer.Write(std::to_string(t * 1000 + i));
      });
    }
    for (auto& thread : threads) thread.join();
  }
  bool each_once = true;
  for (int count : seen) each_once &= count == 1;
  Expect(each_once, "every message of every producer exactly once");
}

}  // namespace

int main() {
  TestOrderAndDrain();
  TestFailuresCounted();
  TestConcurrentProducers();
  return monolith::testing::Summary();
}
