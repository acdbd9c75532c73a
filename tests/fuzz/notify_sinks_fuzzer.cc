// A --notify-file (`ParseNotifySinks`): an operator's file, but read again as it changes
// and parsed into the URLs tokens are sent to. Each sink it reads: the request a status
// makes (`CommitStatusRequest`, every state), and the input as a source's URL the sink may
// name (`NotifySink::Names`). A sink read twice reads the same (a kept worker's identity).
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "controlplane/events/notifier.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<std::vector<gitfleet::NotifySink>> sinks = gitfleet::ParseNotifySinks(text);
  if (!sinks.ok()) return 0;
  absl::StatusOr<std::vector<gitfleet::NotifySink>> again = gitfleet::ParseNotifySinks(text);
  if (!again.ok() || *again != *sinks) abort();
  for (const gitfleet::NotifySink& sink : *sinks) {
    (void)sink.Names(text);
    if (!sink.commit_statuses()) continue;
    if (sink.status_url.find("{commit}") == std::string::npos) abort();
    gitfleet::CommitStatus status;
    status.commit = std::string(40, 'a');
    status.description = text.substr(0, 300);
    for (auto state :
         {gitfleet::CommitStatus::State::kPending, gitfleet::CommitStatus::State::kSuccess,
          gitfleet::CommitStatus::State::kFailure, gitfleet::CommitStatus::State::kSuperseded}) {
      status.state = state;
      gitfleet::StatusRequest request =
          gitfleet::CommitStatusRequest(sink, text.substr(0, 80), status, text.substr(0, 64));
      if (request.url.find(status.commit) == std::string::npos) abort();
    }
  }
  return 0;
}
