#ifndef GITFLEET_TESTS_UTIL_WEBHOOK_SINK_H_
#define GITFLEET_TESTS_UTIL_WEBHOOK_SINK_H_

// An HTTP endpoint that takes POSTs, as a chat room's or a service's webhook does, for
// tests of what the control plane sends out: each request's path, body and headers kept in
// order, the first `failures` refused (500, or `failure_code` with `failure_body` and
// `failure_headers`, "Name: value;Name: value"), and any whose body holds `refuse_containing`
// refused with 400 (a host that does not know a word sent).
//
//   testing::WebhookSink sink;
//   ASSERT_TRUE(sink.Start(TempDir("sink")).ok());
//   ... http://127.0.0.1:PORT/anything ...
//   for (const nlohmann::json& post : sink.Posts()) post["body"] ...

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"
#include "tests/util/process.h"

namespace gitfleet::testing {

class WebhookSink {
 public:
  // Unavailable when python3 is not installed or it does not start.
  absl::Status Start(const std::string& dir, int failures = 0, int failure_code = 500,
                     const std::string& failure_body = "", const std::string& failure_headers = "",
                     const std::string& refuse_containing = "");
  // Each POST taken or refused, in order: {"path", "code", "body", "signature" (its
  // X-Gitfleet-Signature-256), "type" (its Content-Type), "authorization", "private_token"
  // (GitLab's PRIVATE-TOKEN), "accept", "webhook_id", "webhook_timestamp",
  // "webhook_signature" (Standard Webhooks')}.
  std::vector<nlohmann::json> Posts() const;
  int port() const { return port_; }
  std::string Log() const { return server_ == nullptr ? "" : server_->Log(); }

 private:
  std::unique_ptr<Process> server_;
  int port_ = 0;
};

}  // namespace gitfleet::testing

#endif  // GITFLEET_TESTS_UTIL_WEBHOOK_SINK_H_
