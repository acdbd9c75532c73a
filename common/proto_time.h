#ifndef GITFLEET_COMMON_PROTO_TIME_H_
#define GITFLEET_COMMON_PROTO_TIME_H_

// absl::Time <-> google.protobuf.Timestamp. The zero Timestamp is "never". And the one
// way times are written for people (messages, logs, gitfleetctl's tables).

#include <string>

#include "absl/time/time.h"
#include "google/protobuf/timestamp.pb.h"

namespace gitfleet {

inline google::protobuf::Timestamp ToProtoTime(absl::Time t) {
  google::protobuf::Timestamp ts;
  if (t == absl::InfinitePast() || t == absl::UnixEpoch()) return ts;
  int64_t seconds = absl::ToUnixSeconds(t);
  ts.set_seconds(seconds);
  ts.set_nanos(static_cast<int32_t>((t - absl::FromUnixSeconds(seconds)) / absl::Nanoseconds(1)));
  return ts;
}

inline absl::Time FromProtoTime(const google::protobuf::Timestamp& ts) {
  if (ts.seconds() == 0 && ts.nanos() == 0) return absl::InfinitePast();
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

// "2026-12-03T13:55:31Z": UTC, to the second.
inline std::string FormatUtc(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

}  // namespace gitfleet

#endif  // GITFLEET_COMMON_PROTO_TIME_H_
