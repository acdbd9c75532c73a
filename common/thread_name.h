#ifndef GITFLEET_COMMON_THREAD_NAME_H_
#define GITFLEET_COMMON_THREAD_NAME_H_

// Names the calling thread, as `top -H`, `ps -L`, perf and /proc/PID/task/*/comm show it,
// so an operator (or a benchmark) can tell where a process's CPU goes. Linux keeps at most
// 15 bytes; a longer name is cut.
//
//   std::thread([] { NameThisThread("gf-hub-flush"); ... });

#include <string>

namespace gitfleet {

void NameThisThread(const std::string& name);

}  // namespace gitfleet

#endif  // GITFLEET_COMMON_THREAD_NAME_H_
