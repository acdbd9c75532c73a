#include "controlplane/distribute/message_cache.h"

#include <utility>

namespace gitfleet {

std::shared_ptr<const EncodedMessage> EncodedMessage::Encode(v1::ControlMessage message) {
  auto encoded = std::make_shared<EncodedMessage>();
  encoded->bytes = message.SerializeAsString();
  encoded->message = std::move(message);
  return encoded;
}

std::shared_ptr<const EncodedMessage> MessageCache::Find(const Key& key) const {
  auto it = messages_.find(key);
  return it == messages_.end() ? nullptr : it->second;
}

std::shared_ptr<const EncodedMessage> MessageCache::Put(
    const Key& key, std::shared_ptr<const EncodedMessage> message) {
  const size_t weight = 2 * message->bytes.size();  // the message and its serialization
  if (messages_.size() >= kMaxMessages || bytes_ + weight > max_bytes_) {
    messages_.clear();
    bytes_ = 0;
  }
  messages_[key] = message;
  bytes_ += weight;
  ++built_;
  return message;
}

}  // namespace gitfleet
