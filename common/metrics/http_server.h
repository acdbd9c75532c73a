#ifndef GITFLEET_COMMON_METRICS_HTTP_SERVER_H_
#define GITFLEET_COMMON_METRICS_HTTP_SERVER_H_

// The daemons' HTTP endpoint (civetweb): /metrics, /healthz, /readyz and any extra
// GET handlers.
//
//   auto server = HttpServer::Start("127.0.0.1:0", &registry, [&] { return ready; });
//   int port = (*server)->port();
//
// Thread-safe. Handlers run on civetweb's threads. Stops on destruction.

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/metrics/metrics.h"

struct mg_context;
struct mg_connection;

namespace gitfleet {

struct HttpResponse {
  int code = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

class HttpServer {
 public:
  using Handler = std::function<HttpResponse()>;
  // Returns an empty string when ready, else the reason it is not.
  using ReadyCheck = std::function<std::string()>;

  // Listens on "host:port" (port 0 picks a free one).
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(
      const std::string& listen, const metrics::Registry* registry, ReadyCheck ready,
      std::map<std::string, Handler> extra_handlers = {});

  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const { return port_; }

 private:
  HttpServer() = default;
  static int Dispatch(::mg_connection* conn, void* self);

  mg_context* ctx_ = nullptr;
  int port_ = 0;
  std::map<std::string, Handler> handlers_;
};

}  // namespace gitfleet

#endif  // GITFLEET_COMMON_METRICS_HTTP_SERVER_H_
