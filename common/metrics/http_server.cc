#include "common/metrics/http_server.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/civetweb_stop.h"
#include "common/logging.h"
#include "common/sync.h"
#include "common/thread_name.h"

namespace gitfleet {
namespace {

// The address (as civetweb writes it: an IPv4-mapped IPv6 address as plain IPv4) and port
// of a socket's end. False for a socket that is not TCP over IP.
bool Endpoint(const sockaddr_storage& address, std::string* host, int* port) {
  char text[INET6_ADDRSTRLEN] = {0};
  if (address.ss_family == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(address);
    if (inet_ntop(AF_INET, &in.sin_addr, text, sizeof(text)) == nullptr) return false;
    *port = ntohs(in.sin_port);
  } else if (address.ss_family == AF_INET6) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(address);
    if (IN6_IS_ADDR_V4MAPPED(&in6.sin6_addr)) {
      if (inet_ntop(AF_INET, &in6.sin6_addr.s6_addr[12], text, sizeof(text)) == nullptr) {
        return false;
      }
    } else if (inet_ntop(AF_INET6, &in6.sin6_addr, text, sizeof(text)) == nullptr) {
      return false;
    }
    *port = ntohs(in6.sin6_port);
  } else {
    return false;
  }
  *host = text;
  return true;
}

std::string PlainHost(absl::string_view host) {
  if (absl::StartsWithIgnoreCase(host, "::ffff:") && absl::StrContains(host, '.')) {
    host.remove_prefix(7);
  }
  return std::string(host);
}

}  // namespace

// Cuts the connection of a request past its deadline: shuts its socket down, so a worker
// blocked reading a trickled body, or writing to a client that reads a byte at a time,
// wakes at once (civetweb bounds each read and write, not a request). civetweb gives a
// handler no socket, so the connection's is found among the process's descriptors by its
// two ends, a scan of every descriptor (some 40 ms with 10,000 agents connected): cuts due
// together share one, and scans are kMinScanGap apart, so a flood of slow clients costs a
// bounded share of a core. The scan runs unlocked; a socket it found is shut down under
// the lock Forget takes, only if its request is still watched: civetweb closes a
// connection only after its handler has forgotten it, so that descriptor is still the
// request's own, never one closed and reused in between.
class HttpServer::Cutter {
 public:
  static constexpr absl::Duration kMinScanGap = absl::Milliseconds(500);

  Cutter() : thread_([this] { Run(); }) {}
  ~Cutter() {
    {
      MutexLock lock(&mu_);
      stopping_ = true;
    }
    thread_.join();
  }

  uint64_t Watch(const mg_request_info& info, absl::Time deadline) {
    MutexLock lock(&mu_);
    const uint64_t id = next_id_++;
    watched_[id] =
        Watched{PlainHost(info.remote_addr), info.remote_port, info.server_port, deadline};
    if (deadline < waiting_until_) ++changes_;  // wakes it to wait less
    return id;
  }
  // Moves `id`'s deadline earlier.
  void Shorten(uint64_t id, absl::Time deadline) {
    MutexLock lock(&mu_);
    ShortenLocked(id, deadline);
  }
  // Cuts `id` now (within kMinScanGap), and returns once it is cut or given up on.
  void CutNow(uint64_t id) {
    MutexLock lock(&mu_);
    ShortenLocked(id, absl::Now());
    mu_.AwaitWithTimeout(
        [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
          auto it = watched_.find(id);
          return stopping_ || it == watched_.end() || it->second.done;
        },
        absl::Seconds(5));
  }
  // Whether `id` was cut.
  bool Cut(uint64_t id) {
    MutexLock lock(&mu_);
    auto it = watched_.find(id);
    return it != watched_.end() && it->second.cut;
  }
  // Stops watching `id`. Before its connection may close.
  void Forget(uint64_t id) {
    MutexLock lock(&mu_);
    watched_.erase(id);
  }

 private:
  struct Watched {
    std::string remote_host;
    int remote_port = 0;
    int local_port = 0;
    absl::Time deadline;
    bool cut = false;
    bool done = false;  // cut, or looked for and not found
  };
  struct Due {
    uint64_t id;
    Watched watched;
    int fd = -1;  // found by the scan
  };

  void ShortenLocked(uint64_t id, absl::Time deadline) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = watched_.find(id);
    if (it == watched_.end() || it->second.done || it->second.deadline <= deadline) return;
    it->second.deadline = deadline;
    if (deadline < waiting_until_) ++changes_;
  }

  void Run() {
    NameThisThread("gf-http-cutter");
    absl::Time last_scan = absl::InfinitePast();
    MutexLock lock(&mu_);
    while (!stopping_) {
      waiting_until_ = absl::InfiniteFuture();
      for (const auto& [id, watched] : watched_) {
        if (!watched.done) waiting_until_ = std::min(waiting_until_, watched.deadline);
      }
      if (waiting_until_ != absl::InfiniteFuture()) {
        waiting_until_ = std::max(waiting_until_, last_scan + kMinScanGap);
      }
      const uint64_t seen = changes_;
      mu_.AwaitWithDeadline(
          [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return stopping_ || changes_ != seen; },
          waiting_until_);
      if (stopping_) break;
      const absl::Time now = absl::Now();
      if (now < last_scan + kMinScanGap) continue;
      std::vector<Due> due;
      for (const auto& [id, watched] : watched_) {
        if (!watched.done && watched.deadline <= now) due.push_back(Due{id, watched});
      }
      if (due.empty()) continue;
      last_scan = now;
      mu_.Unlock();
      Find(due);
      mu_.Lock();
      for (const Due& one : due) {
        auto it = watched_.find(one.id);
        if (it == watched_.end()) continue;  // answered meanwhile; its socket may be closed
        it->second.done = true;
        if (one.fd < 0) continue;  // gone by itself, or not found
        // Reset when closed, not left half-open: a client blocked sending into a window
        // that will not open again learns at once, not at the kernel's orphan timeout
        // (some 2 minutes).
        const linger reset = {1, 0};
        setsockopt(one.fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
        shutdown(one.fd, SHUT_RDWR);
        it->second.cut = true;
        // Once a minute at most: a flood of slow clients does not flood the log.
        ++cuts_;
        if (now - last_logged_ >= absl::Minutes(1)) {
          GF_LOG(WARNING) << "HTTP: cut " << cuts_ << " connection(s) since the last such "
                          << "line, the last from " << one.watched.remote_host << ":"
                          << one.watched.remote_port
                          << ": a body that did not arrive in time, or an answer not read "
                          << "in time (slow or hostile clients)";
          cuts_ = 0;
          last_logged_ = now;
        }
      }
    }
  }

  // Fills in the descriptor of each of `due`'s connections that is open.
  static void Find(std::vector<Due>& due) {
    std::vector<int> fds;
    if (DIR* dir = opendir("/proc/self/fd"); dir != nullptr) {
      while (const dirent* entry = readdir(dir)) {
        int fd;
        if (absl::SimpleAtoi(entry->d_name, &fd)) fds.push_back(fd);
      }
      closedir(dir);
    }
    for (int fd : fds) {
      sockaddr_storage local{};
      socklen_t size = sizeof(local);
      std::string local_host;
      int local_port = 0;
      if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &size) != 0 ||
          !Endpoint(local, &local_host, &local_port)) {
        continue;
      }
      bool fetched = false;
      std::string peer_host;
      int peer_port = 0;
      for (Due& one : due) {
        if (one.fd >= 0 || one.watched.local_port != local_port) continue;
        if (!fetched) {
          fetched = true;
          sockaddr_storage peer{};
          size = sizeof(peer);
          if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &size) != 0 ||
              !Endpoint(peer, &peer_host, &peer_port)) {
            break;
          }
        }
        if (one.watched.remote_port == peer_port && one.watched.remote_host == peer_host) {
          one.fd = fd;
          break;
        }
      }
    }
  }

  Mutex mu_;
  std::map<uint64_t, Watched> watched_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t changes_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time waiting_until_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int64_t cuts_ ABSL_GUARDED_BY(mu_) = 0;  // since last logged
  absl::Time last_logged_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::thread thread_;
};

HttpServer::HttpServer() : cutter_(std::make_unique<Cutter>()) {}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(
    const std::string& listen, const metrics::Registry* registry, Probes probes,
    std::map<std::string, Handler> extra_handlers, std::map<std::string, PostRoute> post_routes) {
  std::unique_ptr<HttpServer> server(new HttpServer());
  server->handlers_ = std::move(extra_handlers);
  server->AddPostRoutes(std::move(post_routes));
  server->handlers_["/metrics"] = [registry] {
    return HttpResponse{200, "text/plain; version=0.0.4; charset=utf-8", registry->Serialize()};
  };
  auto serve = [](const std::function<Probe()>& probe, const char* good) {
    return [probe, good] {
      Probe found = probe ? probe() : Probe{};
      if (found.ok) {
        return HttpResponse{200, "text/plain",
                            found.detail.empty() ? absl::StrCat(good, "\n")
                                                 : absl::StrCat(good, ": ", found.detail, "\n")};
      }
      return HttpResponse{503, "text/plain", absl::StrCat("not ", good, ": ", found.detail, "\n")};
    };
  };
  server->handlers_["/healthz"] = serve(probes.live, "ok");
  server->handlers_["/readyz"] = serve(probes.ready, "ready");
  return Launch(listen, std::move(server));
}

void HttpServer::AddPostRoutes(std::map<std::string, PostRoute> post_routes) {
  for (auto& [path, route] : post_routes) {
    auto& added = post_routes_[path] = std::make_unique<Route>();
    added->route = std::move(route);
  }
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::StartPostOnly(
    const std::string& listen, std::map<std::string, PostRoute> post_routes) {
  std::unique_ptr<HttpServer> server(new HttpServer());
  server->AddPostRoutes(std::move(post_routes));
  return Launch(listen, std::move(server));
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Launch(const std::string& listen,
                                                               std::unique_ptr<HttpServer> server) {
  if (listen.empty() || listen.find(':') == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("want host:port, got \"", listen, "\""));
  }
  std::pair<std::string, std::string> host_port =
      absl::StrSplit(listen, absl::MaxSplits(absl::ByChar(':'), 1));
  mg_init_library(0);
  // Each connection holds a worker until it is answered or a read or write of it waits
  // kRequestTimeoutMs (civetweb's default, 30 s, let four idle connections, a browser's
  // preconnects say, hold /healthz past any liveness probe's patience).
  const std::string threads = absl::StrCat(kWorkerThreads);
  const std::string timeout = absl::StrCat(kRequestTimeoutMs);
  const char* options[] = {"listening_ports",    listen.c_str(),  "num_threads", threads.c_str(),
                           "request_timeout_ms", timeout.c_str(), nullptr};
  mg_callbacks callbacks;
  std::memset(&callbacks, 0, sizeof(callbacks));
  server->ctx_ = mg_start(&callbacks, nullptr, options);
  if (server->ctx_ == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen for HTTP on ", listen, " (address in use or not local?)"));
  }
  mg_server_port ports[4];
  int n = mg_get_server_ports(server->ctx_, 4, ports);
  if (n <= 0) return absl::InternalError("civetweb reported no listening port");
  server->port_ = ports[0].port;
  server->wake_host_ = host_port.first;  // where StopCivetweb reaches it
  mg_set_request_handler(server->ctx_, "/", &HttpServer::Dispatch, server.get());
  return server;
}

int HttpServer::Dispatch(mg_connection* conn, void* self) {
  auto* server = static_cast<HttpServer*>(self);
  const mg_request_info* info = mg_get_request_info(conn);
  const std::string path = info->local_uri ? info->local_uri : "";
  auto it = server->handlers_.find(path);
  auto post = server->post_routes_.find(path);
  if (post == server->post_routes_.end() && it == server->handlers_.end()) {
    const size_t last = path.rfind('/');
    if (last != std::string::npos && last > 0 && path.size() - last - 1 <= 256 &&
        path.size() > last + 1) {
      auto parent = server->post_routes_.find(path.substr(0, last));
      if (parent != server->post_routes_.end() && parent->second->route.one_more_segment) {
        post = parent;
      }
    }
  }
  const bool posting =
      post != server->post_routes_.end() && std::strcmp(info->request_method, "POST") == 0;
  const uint64_t watch = server->cutter_->Watch(
      *info, absl::Now() + (posting ? post->second->route.deadline : kGetDeadline));
  std::atomic<int>* in_flight = nullptr;  // taken by this request
  HttpResponse response;
  if (posting) {
    Route& route = *post->second;
    HttpRequest request;
    request.method = info->request_method;
    request.path = path;
    request.remote = info->remote_addr;
    for (int i = 0; i < info->num_headers; ++i) {
      request.headers[absl::AsciiStrToLower(info->http_headers[i].name)] =
          info->http_headers[i].value ? info->http_headers[i].value : "";
    }
    const size_t limit = route.route.max_body_bytes;
    in_flight = &route.in_flight;
    if (in_flight->fetch_add(1) >= route.route.max_in_flight) {
      request.busy = true;  // refused unread
    } else if (info->content_length >= 0 && static_cast<size_t>(info->content_length) > limit) {
      request.body_too_large = true;  // refused unread
    } else {
      char buffer[8192];
      int n;
      // Bounded: stops one chunk past the limit, or when the cutter cuts it.
      while ((n = mg_read(conn, buffer, sizeof(buffer))) > 0) {
        request.body.append(buffer, n);
        if (request.body.size() > limit) {
          request.body_too_large = true;
          request.body.clear();
          break;
        }
      }
      if (server->cutter_->Cut(watch)) {
        request.too_slow = true;
        request.body.clear();
      }
    }
    response = route.route.handler(request);
  } else if (post != server->post_routes_.end()) {
    response = {405, "text/plain", "method not allowed: POST only\n"};
  } else if (it == server->handlers_.end()) {
    response = {404, "text/plain", "not found\n"};
  } else if (std::strcmp(info->request_method, "GET") != 0 &&
             std::strcmp(info->request_method, "HEAD") != 0) {
    response = {405, "text/plain", "method not allowed\n"};
  } else {
    response = it->second();
  }
  mg_printf(conn,
            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
            "Connection: close\r\n\r\n",
            response.code, mg_get_response_code_text(conn, response.code),
            response.content_type.c_str(), response.body.size());
  if (std::strcmp(info->request_method, "HEAD") != 0) {
    mg_write(conn, response.body.data(), response.body.size());
  }
  // civetweb reads what is left of a body after the handler, with no bound but its
  // per-read timeout: a client that trickles a body no one reads (a busy route's, one
  // over the limit, a GET's) would hold the worker. Left bodies are read for a moment,
  // then cut.
  server->cutter_->Shorten(watch, absl::Now() + kLeftBodyTime);
  char buffer[8192];
  size_t left = 0;
  int n = 0;
  while (left <= kLeftBodyBytes && (n = mg_read(conn, buffer, sizeof(buffer))) > 0) left += n;
  if (n > 0) server->cutter_->CutNow(watch);
  server->cutter_->Forget(watch);
  if (in_flight != nullptr) in_flight->fetch_sub(1);
  return response.code;
}

HttpServer::~HttpServer() {
  if (ctx_ != nullptr) StopCivetweb(ctx_, wake_host_, port_);
}

}  // namespace gitfleet
