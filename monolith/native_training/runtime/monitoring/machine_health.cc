#include "monolith/native_training/runtime/monitoring/machine_health.h"

#include <cctype>
#include <fstream>
#include <sstream>

namespace monolith {
namespace monitoring {
namespace {

void AppendVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

}  // namespace

int64_t ParseVmRssBytes(std::string_view proc_status) {
  constexpr std::string_view kKey = "VmRSS:";
  size_t pos = 0;
  while (pos < proc_status.size()) {
    size_t end = proc_status.find('\n', pos);
    if (end == std::string_view::npos) end = proc_status.size();
    std::string_view line = proc_status.substr(pos, end - pos);
    pos = end + 1;
    if (line.substr(0, kKey.size()) != kKey) continue;
    size_t i = kKey.size();
    while (i < line.size() && std::isspace(static_cast<unsigned char>(line[i]))) ++i;
    if (i == line.size() || !std::isdigit(static_cast<unsigned char>(line[i]))) return -1;
    int64_t kb = 0;
    for (; i < line.size() && std::isdigit(static_cast<unsigned char>(line[i])); ++i) {
      kb = kb * 10 + (line[i] - '0');
    }
    return kb * 1024;
  }
  return -1;
}

int64_t CurrentProcessRssBytes() {
  std::ifstream in("/proc/self/status");
  if (!in) return -1;
  std::stringstream content;
  content << in.rdbuf();
  return ParseVmRssBytes(content.str());
}

std::string EncodeMachineHealthResult(MachineHealthStatus status, std::string_view message) {
  std::string out;
  out.push_back(0x08);  // field 1 (status), varint
  AppendVarint(static_cast<uint64_t>(status), &out);
  out.push_back(0x12);  // field 2 (message), length-delimited
  AppendVarint(message.size(), &out);
  out.append(message);
  return out;
}

std::string CheckMemory(int64_t rss_bytes, int64_t mem_limit_bytes) {
  if (rss_bytes < mem_limit_bytes) return "";
  return EncodeMachineHealthResult(
      kOutOfMemory, "Memory limit exceeded. Current: " + std::to_string(rss_bytes) +
                        ", Limit: " + std::to_string(mem_limit_bytes));
}

}  // namespace monitoring
}  // namespace monolith
