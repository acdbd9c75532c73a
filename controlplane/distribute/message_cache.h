#ifndef GITFLEET_CONTROLPLANE_DISTRIBUTE_MESSAGE_CACHE_H_
#define GITFLEET_CONTROLPLANE_DISTRIBUTE_MESSAGE_CACHE_H_

// Update messages built for agents, kept for reuse by (bundle@generation, base revision,
// target revision): every agent that moves between the same two revisions gets the same
// message and the same bytes, serialized once. Bounded by count and by bytes (a message
// weighs its proto and its serialization); when full it is cleared, and the next lookups
// build again.
//
//   MessageCache cache(128 << 20);
//   std::shared_ptr<const EncodedMessage> m = cache.Find(key);
//   if (m == nullptr) m = cache.Put(key, EncodedMessage::Encode(std::move(message)));
//
// Thread-compatible: the hub calls it under its own lock.

#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <tuple>

#include "proto/gitfleet/v1/agent.pb.h"

namespace gitfleet {

// A message for agents, serialized once and shared by every stream that sends it.
struct EncodedMessage {
  v1::ControlMessage message;
  std::string bytes;  // message.SerializeAsString()

  static std::shared_ptr<const EncodedMessage> Encode(v1::ControlMessage message);
};

class MessageCache {
 public:
  using Key = std::tuple<std::string, std::string, std::string>;
  static constexpr size_t kMaxMessages = 1024;

  explicit MessageCache(size_t max_bytes) : max_bytes_(max_bytes) {}

  std::shared_ptr<const EncodedMessage> Find(const Key& key) const;
  // Keeps `message` under `key` (clearing the cache first when it would pass a bound) and
  // returns it.
  std::shared_ptr<const EncodedMessage> Put(const Key& key,
                                            std::shared_ptr<const EncodedMessage> message);
  // Messages built (Put) since construction.
  size_t built() const { return built_; }

 private:
  const size_t max_bytes_;
  std::map<Key, std::shared_ptr<const EncodedMessage>> messages_;
  size_t bytes_ = 0;
  size_t built_ = 0;
};

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_DISTRIBUTE_MESSAGE_CACHE_H_
