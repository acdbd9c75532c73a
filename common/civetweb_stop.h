#ifndef GITFLEET_COMMON_CIVETWEB_STOP_H_
#define GITFLEET_COMMON_CIVETWEB_STOP_H_

// Stops a civetweb server at once. civetweb's listening thread looks at its stop flag
// only between polls of up to 2 s, so mg_stop alone takes up to that long; a connection
// to the listening socket wakes it.
//
//   StopCivetweb(ctx, "127.0.0.1", port);  // instead of mg_stop(ctx)

#include <string>

struct mg_context;

namespace gitfleet {

// mg_stop(ctx), with connections to `host`:`port` (where it listens; a wildcard host is
// reached on loopback) every 20 ms while it waits, for at most 5 s.
void StopCivetweb(mg_context* ctx, const std::string& host, int port);

}  // namespace gitfleet

#endif  // GITFLEET_COMMON_CIVETWEB_STOP_H_
