#ifndef GITFLEET_AGENT_STATE_STATE_STORE_H_
#define GITFLEET_AGENT_STATE_STATE_STORE_H_

// The agent's durable record of each bundle: the desired set it holds, what it applied
// and every object it may have created. One file per bundle under
// --state-dir/bundles/, replaced atomically.
//
//   BundleStateStore store("/var/lib/gitfleet-agent", &PosixFileSystem());
//   GF_ASSIGN_OR_RETURN(auto records, store.LoadAll());
//   GF_RETURN_IF_ERROR(store.Save(record));
//
// Thread-compatible: the agent uses it from one thread.

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "common/file_system.h"
#include "proto/gitfleet/v1/state.pb.h"

namespace gitfleet {

class BundleStateStore {
 public:
  BundleStateStore(std::string dir, FileSystem* fs) : dir_(std::move(dir)), fs_(fs) {}

  // Every stored record by bundle. A corrupt file is DataLoss naming it.
  absl::StatusOr<std::map<std::string, v1::AgentBundleRecord>> LoadAll();
  absl::Status Save(const v1::AgentBundleRecord& record);
  absl::Status Delete(const std::string& bundle);

 private:
  absl::StatusOr<std::string> PathFor(const std::string& bundle) const;
  const std::string dir_;
  FileSystem* const fs_;
};

}  // namespace gitfleet

#endif  // GITFLEET_AGENT_STATE_STATE_STORE_H_
