#ifndef GITFLEET_AGENT_STATE_STATE_STORE_H_
#define GITFLEET_AGENT_STATE_STATE_STORE_H_

// The agent's durable record of each bundle: the desired set it holds, what it applied
// and every object it may have created. One file per bundle under
// --state-dir/bundles/, replaced atomically, readable by the owner only; and the fleet
// the agent trusts, in --state-dir/fleet.pb.
//
//   BundleStateStore store("/var/lib/gitfleet-agent", &PosixFileSystem());
//   GF_ASSIGN_OR_RETURN(BundleStateStore::Loaded loaded, store.LoadAll());
//   GF_RETURN_IF_ERROR(store.Save(record));
//
// Thread-compatible: the agent uses it from one thread.

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/file_system.h"
#include "proto/gitfleet/v1/state.pb.h"

namespace gitfleet {

class BundleStateStore {
 public:
  BundleStateStore(std::string dir, FileSystem* fs) : dir_(std::move(dir)), fs_(fs) {}

  struct Loaded {
    std::map<std::string, v1::AgentBundleRecord> records;  // by bundle
    // Corrupt files, moved aside to `<file>.corrupt` so the rest loads: their bundles are
    // asked for again in full (and nothing of theirs is pruned on a guess).
    std::vector<std::string> moved_aside;
  };
  // Every stored record. Temp files a crash left behind are deleted. Fails only when the
  // directory cannot be read.
  absl::StatusOr<Loaded> LoadAll();
  absl::Status Save(const v1::AgentBundleRecord& record);
  absl::Status Delete(const std::string& bundle);

  // The fleet id of the control plane the agent trusts; "" before the first.
  absl::StatusOr<std::string> LoadFleetId();
  absl::Status SaveFleetId(const std::string& fleet_id);

 private:
  absl::StatusOr<std::string> PathFor(const std::string& bundle) const;
  const std::string dir_;
  FileSystem* const fs_;
};

}  // namespace gitfleet

#endif  // GITFLEET_AGENT_STATE_STATE_STORE_H_
