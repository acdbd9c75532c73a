#ifndef GITFLEET_COMMON_METRICS_HTTP_SERVER_H_
#define GITFLEET_COMMON_METRICS_HTTP_SERVER_H_

// The daemons' HTTP endpoint (civetweb): /metrics, /healthz, /readyz, any extra GET
// handlers and POST routes (bounded bodies).
//
//   HttpServer::Probes probes;
//   probes.ready = [&] { return loaded ? Probe{} : Probe{false, "loading the store"}; };
//   auto server = HttpServer::Start("127.0.0.1:0", &registry, probes);
//   int port = (*server)->port();
//
// Thread-safe. Handlers run on civetweb's threads. Stops on destruction.

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
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

struct HttpRequest {
  std::string method;
  std::string path;
  // Header names in lower case.
  std::map<std::string, std::string> headers;
  std::string body;
  // The body was longer than the route allows: `body` is empty and was not read.
  bool body_too_large = false;
  // The route was serving as many requests as it takes at once: `body` was not read.
  bool busy = false;
  // The body did not arrive within the route's deadline: the connection was cut, so the
  // answer reaches no one (it is still counted).
  bool too_slow = false;
  std::string remote;  // the peer's address
};

class HttpServer {
 public:
  using Handler = std::function<HttpResponse()>;
  // A POST route: at most `max_body_bytes` of body are read (one longer reaches the
  // handler with body_too_large set), from at most `max_in_flight` requests at once (one
  // more reaches it with busy set, unread), each within `deadline` (one slower is cut
  // and reaches it with too_slow set). So clients that trickle their bodies hold at most
  // `max_in_flight` of the kWorkerThreads workers, each for at most `deadline`, and the
  // probes and /metrics keep the rest.
  struct PostRoute {
    size_t max_body_bytes = 1 << 20;
    std::function<HttpResponse(const HttpRequest&)> handler;
    int max_in_flight = 4;
    absl::Duration deadline = absl::Seconds(10);
    // Also serves PATH/SEGMENT, one segment more (at most 256 bytes, no '/'): a
    // sender that can only be given a URL puts its token there.
    bool one_more_segment = false;
  };
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
      std::map<std::string, Handler> extra_handlers = {},
      std::map<std::string, PostRoute> post_routes = {});

  // Serves `post_routes` alone: no /metrics and no probes (an endpoint for the outside
  // world, apart from the one the kubelet and Prometheus use).
  static absl::StatusOr<std::unique_ptr<HttpServer>> StartPostOnly(
      const std::string& listen, std::map<std::string, PostRoute> post_routes);

  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const { return port_; }

  // Connections served at once (each on a thread of its own), and how long one read or
  // write of a connection may wait before it is dropped. civetweb bounds a request's
  // head by kRequestTimeoutMs as a whole, but its body and its answer only per read or
  // write: a GET's answer must leave within kGetDeadline, a POST's body arrive within its
  // route's deadline, or the connection is cut.
  static constexpr int kWorkerThreads = 16;
  static constexpr int kRequestTimeoutMs = 5000;
  static constexpr absl::Duration kGetDeadline = absl::Seconds(30);
  // What is left of a body no one reads is read for this long, and this much of it, then
  // the connection is cut.
  static constexpr absl::Duration kLeftBodyTime = absl::Seconds(1);
  static constexpr size_t kLeftBodyBytes = 64 << 10;

 private:
  class Cutter;
  struct Route {
    PostRoute route;
    std::atomic<int> in_flight{0};
  };

  HttpServer();
  void AddPostRoutes(std::map<std::string, PostRoute> post_routes);
  static absl::StatusOr<std::unique_ptr<HttpServer>> Launch(const std::string& listen,
                                                            std::unique_ptr<HttpServer> server);
  static int Dispatch(::mg_connection* conn, void* self);

  mg_context* ctx_ = nullptr;
  int port_ = 0;
  std::string wake_host_;  // the host it listens on
  std::map<std::string, Handler> handlers_;
  std::map<std::string, std::unique_ptr<Route>> post_routes_;
  std::unique_ptr<Cutter> cutter_;
};

}  // namespace gitfleet

#endif  // GITFLEET_COMMON_METRICS_HTTP_SERVER_H_
