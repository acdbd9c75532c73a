#include "common/shutdown.h"

#include <pthread.h>
#include <signal.h>

namespace gitfleet {
namespace {

sigset_t ShutdownSet() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  return set;
}

}  // namespace

ShutdownSignals::ShutdownSignals() {
  sigset_t set = ShutdownSet();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int ShutdownSignals::Poll() {
  sigset_t set = ShutdownSet();
  struct timespec now = {0, 0};
  const int sig = sigtimedwait(&set, nullptr, &now);
  return sig > 0 ? sig : 0;
}

int ShutdownSignals::Wait() {
  sigset_t set = ShutdownSet();
  int sig = 0;
  while (sigwait(&set, &sig) != 0) {
  }
  return sig;
}

}  // namespace gitfleet
