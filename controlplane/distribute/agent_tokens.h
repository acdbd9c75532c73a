#ifndef GITFLEET_CONTROLPLANE_DISTRIBUTE_AGENT_TOKENS_H_
#define GITFLEET_CONTROLPLANE_DISTRIBUTE_AGENT_TOKENS_H_

// Which token each cluster's agent must present (--agent-tokens=FILE: one
// "cluster token" pair a line; blank lines and # comments are ignored).
//
//   GF_ASSIGN_OR_RETURN(AgentTokens tokens, AgentTokens::Load(path));
//   absl::Status ok = tokens.Check("eu-1", "s3cret");
//
// Thread-safe.

#include <map>
#include <memory>
#include <set>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "common/sync.h"

namespace gitfleet {

class AgentTokens {
 public:
  // Accepts every agent (loopback demos).
  static std::unique_ptr<AgentTokens> AllowAll();
  static absl::StatusOr<std::unique_ptr<AgentTokens>> Parse(const std::string& text,
                                                            const std::string& origin);
  static absl::StatusOr<std::unique_ptr<AgentTokens>> Load(const std::string& path);

  // Unauthenticated, naming the cluster, when the token is not that cluster's. The same
  // answer whether the cluster is unknown or the token missing or wrong.
  absl::Status Check(const std::string& cluster, const std::string& token) const;
  // Which of those it was, for the control plane's own log only.
  std::string Explain(const std::string& cluster, const std::string& token) const;
  // True the first time a given cluster is refused, so callers log each once.
  bool FirstRefusal(const std::string& cluster);

 private:
  bool Matches(const std::string& cluster, const std::string& token) const;

  bool allow_all_ = false;
  std::map<std::string, std::string> tokens_;
  Mutex mu_;
  std::set<std::string> refused_ ABSL_GUARDED_BY(mu_);
};

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_DISTRIBUTE_AGENT_TOKENS_H_
