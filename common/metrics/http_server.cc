#include "common/metrics/http_server.h"

#include <civetweb.h>

#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/civetweb_stop.h"

namespace gitfleet {

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(
    const std::string& listen, const metrics::Registry* registry, Probes probes,
    std::map<std::string, Handler> extra_handlers, std::map<std::string, PostRoute> post_routes) {
  std::pair<std::string, std::string> host_port =
      absl::StrSplit(listen, absl::MaxSplits(absl::ByChar(':'), 1));
  if (listen.empty() || listen.find(':') == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("--http: want host:port, got \"", listen, "\""));
  }
  std::unique_ptr<HttpServer> server(new HttpServer());
  server->handlers_ = std::move(extra_handlers);
  server->post_routes_ = std::move(post_routes);
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
  HttpResponse response;
  if (post != server->post_routes_.end()) {
    if (std::strcmp(info->request_method, "POST") != 0) {
      response = {405, "text/plain", "method not allowed: POST only\n"};
    } else {
      HttpRequest request;
      request.method = info->request_method;
      request.path = path;
      request.remote = info->remote_addr;
      for (int i = 0; i < info->num_headers; ++i) {
        request.headers[absl::AsciiStrToLower(info->http_headers[i].name)] =
            info->http_headers[i].value ? info->http_headers[i].value : "";
      }
      const size_t limit = post->second.max_body_bytes;
      if (info->content_length >= 0 && static_cast<size_t>(info->content_length) > limit) {
        request.body_too_large = true;  // refused unread
      } else {
        char buffer[8192];
        int n;
        // Bounded: stops one chunk past the limit.
        while ((n = mg_read(conn, buffer, sizeof(buffer))) > 0) {
          request.body.append(buffer, n);
          if (request.body.size() > limit) {
            request.body_too_large = true;
            request.body.clear();
            break;
          }
        }
      }
      response = post->second.handler(request);
    }
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
  return response.code;
}

HttpServer::~HttpServer() {
  if (ctx_ != nullptr) StopCivetweb(ctx_, wake_host_, port_);
}

}  // namespace gitfleet
