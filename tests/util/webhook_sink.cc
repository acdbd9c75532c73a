#include "tests/util/webhook_sink.h"

#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tests/util/git_servers.h"  // FreePort, StartPythonServer

namespace gitfleet::testing {
namespace {

// argv: port, how many POSTs to refuse first, with what code and body. Each POST is a
// line of its log.
constexpr char kSinkScript[] = R"py(
import http.server, json, sys
port, failures = int(sys.argv[1]), [int(sys.argv[2])]
failure_code, failure_body = int(sys.argv[3]), sys.argv[4].encode()
failure_headers = [h.split(": ", 1) for h in sys.argv[5].split(";") if h] if len(sys.argv) > 5 else []
refuse_containing = sys.argv[6] if len(sys.argv) > 6 else ""
class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
        code = failure_code if failures[0] > 0 else 200
        answer = failure_body if failures[0] > 0 else b""
        failures[0] -= 1
        if refuse_containing and refuse_containing in body:
            code, answer = 400, b'{"errors":[{"message":"not a state this version knows"}]}'
        print("POST " + json.dumps({"path": self.path, "code": code, "body": body,
              "signature": self.headers.get("X-Gitfleet-Signature-256", ""),
              "type": self.headers.get("Content-Type", ""),
              "authorization": self.headers.get("Authorization", ""),
              "private_token": self.headers.get("PRIVATE-TOKEN", ""),
              "accept": self.headers.get("Accept", ""),
              "webhook_id": self.headers.get("webhook-id", ""),
              "webhook_timestamp": self.headers.get("webhook-timestamp", ""),
              "webhook_signature": self.headers.get("webhook-signature", "")}), flush=True)
        self.send_response(code)
        if code != 200:
            for name, value in failure_headers:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)
    def log_message(self, format, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", port), Sink)
print("ready", flush=True)
server.serve_forever()
)py";

}  // namespace

absl::Status WebhookSink::Start(const std::string& dir, int failures, int failure_code,
                                const std::string& failure_body, const std::string& failure_headers,
                                const std::string& refuse_containing) {
  port_ = FreePort();
  return StartPythonServer(
      "the webhook sink", kSinkScript, dir + "/sink.py",
      {std::to_string(port_), std::to_string(failures), std::to_string(failure_code), failure_body,
       failure_headers, refuse_containing},
      dir + "/sink.log", "ready", &server_);
}

std::vector<nlohmann::json> WebhookSink::Posts() const {
  std::vector<nlohmann::json> posts;
  for (absl::string_view line : absl::StrSplit(Log(), '\n')) {
    if (!absl::ConsumePrefix(&line, "POST ")) continue;
    nlohmann::json post = nlohmann::json::parse(line, nullptr, false);
    if (!post.is_discarded()) posts.push_back(std::move(post));
  }
  return posts;
}

}  // namespace gitfleet::testing
