#include "monolith/native_training/runtime/hash_table/hash_filter.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>
#include <utility>
#include <vector>

#include "monolith/native_training/runtime/common/wire.h"

namespace monolith {
namespace hash_table {
namespace {

// Field numbers of the dump messages (embedding_hash_table.proto).
constexpr int kMetaTotalSize = 2, kMetaNumElements = 3, kMetaSliding = 5;
constexpr int kSlidingSplitNum = 1;
constexpr int kDataOffset = 1, kDataWords = 2;
constexpr int kWordsPerCount = 3;

}  // namespace

CountingHashFilter::CountingHashFilter(SlotOccurrenceThresholdConfig config, int split_num)
    : config_(std::move(config)), split_num_(split_num) {
  if (split_num < 1) {
    throw std::invalid_argument("hash filter split_num must be >= 1, got " +
                                std::to_string(split_num));
  }
}

bool CountingHashFilter::ShouldBeFiltered(int64_t id, int64_t count) {
  const uint32_t threshold = config_.Threshold(id);
  if (threshold == 0) return false;
  Shard& shard = ShardOf(id);
  std::lock_guard<std::mutex> lock(shard.mu);
  uint8_t& stored = shard.counts[id];
  const uint8_t before = stored;
  stored = static_cast<uint8_t>(std::min<int64_t>(kMaxCount, before + std::max<int64_t>(count, 0)));
  return before < threshold;
}

int64_t CountingHashFilter::NumElements() const {
  int64_t n = 0;
  for (auto& shard : shards_) {
    std::lock_guard<std::mutex> lock(shard.mu);
    n += shard.counts.size();
  }
  return n;
}

void CountingHashFilter::SaveSplit(int split,
                                   const std::function<bool(const std::string&)>& write) const {
  std::vector<std::pair<int64_t, uint8_t>> counts;
  for (int s = split; s < kShards; s += split_num_) {
    std::lock_guard<std::mutex> lock(shards_[s].mu);
    counts.insert(counts.end(), shards_[s].counts.begin(), shards_[s].counts.end());
  }
  std::string record;
  wire::Writer meta(&record);
  meta.VarintField(kMetaTotalSize, kWordsPerCount * counts.size());
  meta.VarintField(kMetaNumElements, counts.size());
  std::string sliding;
  wire::Writer(&sliding).VarintField(kSlidingSplitNum, split_num_);
  meta.BytesField(kMetaSliding, sliding);
  if (!write(record)) return;
  std::vector<uint32_t> words;
  words.reserve(kWordsPerCount * counts.size());
  for (const auto& [id, count] : counts) {
    words.push_back(static_cast<uint32_t>(static_cast<uint64_t>(id)));
    words.push_back(static_cast<uint32_t>(static_cast<uint64_t>(id) >> 32));
    words.push_back(count);
  }
  for (size_t begin = 0; begin < words.size(); begin += kMaxWordsPerRecord) {
    record.clear();
    wire::Writer data(&record);
    data.VarintField(kDataOffset, begin);
    const size_t end = std::min(words.size(), begin + kMaxWordsPerRecord);
    for (size_t w = begin; w < end; ++w) data.VarintField(kDataWords, words[w]);  // unpacked
    if (!write(record)) return;
  }
}

void CountingHashFilter::Clear() {
  for (auto& shard : shards_) {
    std::lock_guard<std::mutex> lock(shard.mu);
    shard.counts.clear();
  }
}

void CountingHashFilter::SetCount(int64_t id, uint8_t count) {
  Shard& shard = ShardOf(id);
  std::lock_guard<std::mutex> lock(shard.mu);
  shard.counts[id] = count;
}

void FilterSplitDecoder::Fail(const std::string& why) const {
  throw std::invalid_argument("Hash filter file " + file_ + " is not a dump of this filter (" +
                              why + ")");
}

void FilterSplitDecoder::Add(std::string_view record) {
  wire::Reader r(record, reader_what_.c_str());
  int field, wire_type;
  if (!has_meta_) {
    uint64_t total_size = 0, num_elements = 0;
    while (r.Next(&field, &wire_type)) {
      if (field == kMetaTotalSize) {
        total_size = r.ReadVarintField(wire_type);
      } else if (field == kMetaNumElements) {
        num_elements = r.ReadVarintField(wire_type);
      } else {
        r.Skip(wire_type);
      }
    }
    // Upstream's probabilistic dumps announce their cell capacity here instead.
    if (total_size != kWordsPerCount * num_elements) {
      Fail("total_size " + std::to_string(total_size) + " is not 3 x num_elements " +
           std::to_string(num_elements) + ": written by another filter implementation?");
    }
    has_meta_ = true;
    num_words_ = total_size;
    return;
  }
  auto take = [&](uint64_t word) {
    if (words_seen_ >= num_words_) Fail("more data than the meta record announced");
    if (word > 0xFFFFFFFFULL) Fail("data word " + std::to_string(word) + " exceeds uint32");
    const int k = static_cast<int>(words_seen_++ % kWordsPerCount);
    pending_[k] = static_cast<uint32_t>(word);
    if (k != kWordsPerCount - 1) return;
    if (pending_[2] < 1 || pending_[2] > CountingHashFilter::kMaxCount) {
      Fail("count " + std::to_string(pending_[2]) + " outside [1, 15]");
    }
    const uint64_t id = pending_[0] | (static_cast<uint64_t>(pending_[1]) << 32);
    on_count_(static_cast<int64_t>(id), static_cast<uint8_t>(pending_[2]));
  };
  while (r.Next(&field, &wire_type)) {
    if (field == kDataOffset) {
      const uint64_t offset = r.ReadVarintField(wire_type);
      if (offset != words_seen_) {
        Fail("data record at offset " + std::to_string(offset) + " where " +
             std::to_string(words_seen_) + " was expected");
      }
    } else if (field == kDataWords && wire_type == wire::kLengthDelimited) {
      wire::Reader packed(r.ReadBytes(), reader_what_.c_str());
      while (!packed.Done()) take(packed.ReadVarint());
    } else if (field == kDataWords) {
      take(r.ReadVarintField(wire_type));
    } else {
      r.Skip(wire_type);
    }
  }
}

void FilterSplitDecoder::Finish() const {
  if (!has_meta_) Fail("no meta record");
  if (words_seen_ != num_words_) {
    Fail("truncated: " + std::to_string(words_seen_) + " of " + std::to_string(num_words_) +
         " data words");
  }
}

double ProbabilisticFilter::AdmitProbability(uint32_t threshold, int64_t count) const {
  if (threshold == 0) return 1.0;
  if (count <= 0) return 0.0;
  if (!equal_probability_) return std::min(1.0, static_cast<double>(count) / threshold);
  const double p = 1.0 - std::pow(0.05, 1.0 / threshold);
  return 1.0 - std::pow(1.0 - p, static_cast<double>(count));
}

bool ProbabilisticFilter::ShouldBeFiltered(int64_t id, int64_t count) {
  thread_local std::mt19937_64 rng(std::random_device{}());
  const double admit = AdmitProbability(config_.Threshold(id), count);
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng) >= admit;
}

}  // namespace hash_table
}  // namespace monolith
