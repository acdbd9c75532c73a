#ifndef GITFLEET_TESTS_FUZZ_CHUNKS_H_
#define GITFLEET_TESTS_FUZZ_CHUNKS_H_

// Splits a fuzz input into a sequence of messages: each is a 2-byte big-endian length and
// that many bytes (a short tail is the last message). Lets one input drive a whole
// conversation (hello, acks, statuses...).

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace gitfleet::fuzz {

inline std::vector<std::string> Chunks(const uint8_t* data, size_t size, size_t max_chunks = 64) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i + 2 <= size && out.size() < max_chunks) {
    size_t length = (static_cast<size_t>(data[i]) << 8) | data[i + 1];
    i += 2;
    if (length > size - i) length = size - i;
    out.emplace_back(reinterpret_cast<const char*>(data + i), length);
    i += length;
  }
  return out;
}

}  // namespace gitfleet::fuzz

#endif  // GITFLEET_TESTS_FUZZ_CHUNKS_H_
