#include "monolith/native_training/runtime/monitoring/machine_health.h"

#include <string>
#include <vector>

#include "monolith/native_training/runtime/common/testing.h"

namespace {

using monolith::testing::Expect;
using monolith::testing::Hex;
using namespace monolith::monitoring;

}  // namespace

int main() {
  Expect(ParseVmRssBytes("Name:\tpython\nVmPeak:\t  900 kB\nVmRSS:\t  1234 kB\nThreads: 3\n") ==
             1234 * 1024,
         "VmRSS line parsed, in bytes");
  Expect(ParseVmRssBytes("VmRSS: 7 kB") == 7 * 1024, "last line without newline");
  Expect(ParseVmRssBytes("Name: x\nVmHWM: 5 kB\n") == -1, "missing line");
  Expect(ParseVmRssBytes("VmRSS:\t  kB\n") == -1, "malformed line");
  Expect(ParseVmRssBytes("") == -1, "empty");

  const int64_t rss = CurrentProcessRssBytes();
  Expect(rss > 0 && rss % 1024 == 0, "own RSS is positive, a multiple of 1 kB");

  Expect(CheckMemory(100, 101).empty(), "below limit: empty result");
  const std::string oom = CheckMemory(100, 100);
  const std::string message = "Memory limit exceeded. Current: 100, Limit: 100";
  // 08 01 (status OUT_OF_MEMORY) 12 <len> message
  char header[5] = {0x08, 0x01, 0x12, static_cast<char>(message.size()), 0};
  Expect(oom == std::string(header, 4) + message, "OOM result bytes: " + Hex(oom));
  Expect(CheckMemory(5, 0).substr(0, 2) == std::string("\x08\x01", 2), "limit 0 is always OOM");

  // A 200-byte message needs a two-byte length varint (c8 01).
  const std::string long_result = EncodeMachineHealthResult(kOutOfMemory, std::string(200, 'x'));
  Expect(Hex(long_result.substr(0, 5)) == "080112c801", "two-byte length varint");
  Expect(Hex(EncodeMachineHealthResult(kOk, "")) == "08001200", "explicit OK result");

  return monolith::testing::Summary();
}
