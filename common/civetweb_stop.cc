#include "common/civetweb_stop.h"

#include <civetweb.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace gitfleet {

void StopCivetweb(mg_context* ctx, const std::string& host, int port) {
  std::string wake = host;
  if (wake.empty() || wake == "0.0.0.0") wake = "127.0.0.1";
  if (wake == "[::]" || wake == "::") wake = "::1";
  if (wake.size() > 2 && wake.front() == '[' && wake.back() == ']') {
    wake = wake.substr(1, wake.size() - 2);
  }
  // The first connection may come before mg_stop sets the flag: tried until it returns.
  std::atomic<bool> stopped{false};
  std::thread waker([&wake, port, &stopped] {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (getaddrinfo(wake.c_str(), std::to_string(port).c_str(), &hints, &found) != 0) return;
    for (int i = 0; i < 250 && !stopped.load(); ++i) {
      int fd = socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd >= 0) {
        (void)connect(fd, found->ai_addr, found->ai_addrlen);
        close(fd);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    freeaddrinfo(found);
  });
  mg_stop(ctx);
  stopped.store(true);
  waker.join();
}

}  // namespace gitfleet
