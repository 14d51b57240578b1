#include "monolith/native_training/runtime/common/entry_dump.h"

#include <string>

#include "monolith/native_training/runtime/common/testing.h"

using monolith::testing::ExpectEq;
using monolith::testing::Hex;

int main() {
  std::string out;
  const float embedding[] = {1.0f, -2.0f};
  monolith::AppendEntryDump(-2, 0.5f, embedding, 2, &out);
  // id: 09 + (-2 as LE sfixed64); num: 15 + 0.5f, 15 + 1.0f, 15 + -2.0f.
  ExpectEq(Hex(out), "09feffffffffffffff" "150000003f" "150000803f" "15000000c0", "entry with dim 2");

  out = "prefix";
  monolith::AppendEntryDump(7, 0.0f, nullptr, 0, &out);
  ExpectEq(Hex(out.substr(6)), "090700000000000000" "1500000000", "entry with dim 0 appends");
  ExpectEq(out.substr(0, 6), "prefix", "existing bytes kept");

  return monolith::testing::Summary();
}
