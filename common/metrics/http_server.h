#ifndef GITFLEET_COMMON_METRICS_HTTP_SERVER_H_
#define GITFLEET_COMMON_METRICS_HTTP_SERVER_H_

// The daemons' HTTP endpoint (civetweb): /metrics, /healthz, /readyz and any extra
// GET handlers.
//
//   HttpServer::Probes probes;
//   probes.ready = [&] { return loaded ? Probe{} : Probe{false, "loading the store"}; };
//   auto server = HttpServer::Start("127.0.0.1:0", &registry, probes);
//   int port = (*server)->port();
//
// Thread-safe. Handlers run on civetweb's threads. Stops on destruction.

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/metrics/heartbeat.h"
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
  // /healthz (is the process alive and making progress) and /readyz (should it get
  // traffic). A missing probe is always ok. 200 with "ok"/"ready[: detail]", else 503 with
  // "not ok: detail" / "not ready: detail".
  struct Probes {
    std::function<Probe()> live;
    std::function<Probe()> ready;
  };

  // Listens on "host:port" (port 0 picks a free one).
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(
      const std::string& listen, const metrics::Registry* registry, Probes probes,
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
