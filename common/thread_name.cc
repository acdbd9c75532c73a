#include "common/thread_name.h"

#include <pthread.h>

namespace gitfleet {

void NameThisThread(const std::string& name) {
  // Fails only for names over 15 bytes (cut here) or a thread that is gone.
  pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
}

}  // namespace gitfleet
