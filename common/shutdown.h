#ifndef GITFLEET_COMMON_SHUTDOWN_H_
#define GITFLEET_COMMON_SHUTDOWN_H_

// Waits for SIGTERM or SIGINT without a signal handler: the signals are blocked in every
// thread and taken with sigwait, so shutdown code runs on an ordinary thread and may
// lock, log and call anything.
//
//   int main() {
//     ShutdownSignals signals;  // first, before any thread starts
//     ... start servers ...
//     int sig = signals.Wait();
//
// Construct once, at the top of main, before any other thread exists: threads inherit the
// blocked mask only if they are created afterwards.

namespace gitfleet {

class ShutdownSignals {
 public:
  ShutdownSignals();
  ShutdownSignals(const ShutdownSignals&) = delete;
  ShutdownSignals& operator=(const ShutdownSignals&) = delete;

  // Blocks until SIGTERM or SIGINT arrives; returns which.
  int Wait();
  // Takes SIGTERM or SIGINT if one has arrived, without waiting: which, or 0. For a wait
  // of its own that must end on shutdown (a standby waiting for its store).
  int Poll();
};

}  // namespace gitfleet

#endif  // GITFLEET_COMMON_SHUTDOWN_H_
