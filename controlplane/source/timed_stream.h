#ifndef GITFLEET_CONTROLPLANE_SOURCE_TIMED_STREAM_H_
#define GITFLEET_CONTROLPLANE_SOURCE_TIMED_STREAM_H_

// Deadlines for libgit2's network I/O. Debian 12's libgit2 (1.5) has no server timeout
// option, so a Git server that accepts a connection and never answers would hold a fetch
// thread forever. This registers libgit2's standard socket stream (which its git://,
// http(s):// and ssh:// transports all open) with one whose connect, reads and writes
// wait at most until the calling thread's fetch deadline, and end at once when fetches
// are cancelled (shutdown).
//
//   RegisterTimedSocketStream();  // once, after git_libgit2_init
//   {
//     FetchDeadline deadline(RealClock().Now() + absl::Seconds(60));
//     git_remote_fetch(...);  // fails with "timed out" past the deadline
//   }
//
// Thread-safe.

#include <git2.h>
#include <git2/sys/stream.h>

#include "absl/time/time.h"

namespace gitfleet {

// Registers the stream with libgit2; returns false (and changes nothing) when libgit2
// refuses the registration.
bool RegisterTimedSocketStream();

// Sets the calling thread's network deadline while it lives (InfiniteFuture outside one).
class FetchDeadline {
 public:
  explicit FetchDeadline(absl::Time deadline);
  ~FetchDeadline();
  FetchDeadline(const FetchDeadline&) = delete;
  FetchDeadline& operator=(const FetchDeadline&) = delete;

 private:
  absl::Time previous_;
};

// A new, unconnected timed socket stream to host:port (libgit2's git_stream), for streams
// that wrap one (tls_stream.h). 0, or -1 with libgit2's error set.
int NewTimedSocketStream(git_stream** out, const char* host, const char* port);

// The calling thread's deadline (InfiniteFuture outside a FetchDeadline), and whether
// fetches are cancelled: for transports that do their own waiting (openssh_transport.h).
absl::Time CurrentFetchDeadline();
bool FetchesCancelled();

// Ends every fetch in progress, and every later one, with an error: for shutdown.
void CancelAllFetches();

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_SOURCE_TIMED_STREAM_H_
