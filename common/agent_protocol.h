#ifndef GITFLEET_COMMON_AGENT_PROTOCOL_H_
#define GITFLEET_COMMON_AGENT_PROTOCOL_H_

// What the agent protocol carries outside its messages (proto/gitfleet/v1/agent.proto).

#include <string>
#include <vector>

namespace gitfleet {

// Trailing metadata of a stream the control plane closes because it is stopping: the
// window, in milliseconds, over which its agents should redial (each once, at a random
// point of it), so a restart is not met by every agent at once.
inline constexpr char kReconnectSpreadHeader[] = "gitfleet-reconnect-spread-ms";

// Unhealthy resources one status names: the agent sends at most this many and the control
// plane stores at most this many of what it receives.
inline constexpr int kMaxUnhealthyResources = 20;

// Objects left unmanaged (prune off) one status names; the agent counts them all, and
// keeps at most kMaxLeftUnmanagedKept of them in its state (the oldest go first).
inline constexpr int kMaxLeftUnmanaged = 20;
inline constexpr int kMaxLeftUnmanagedKept = 1000;

// API versions a hello names (Hello.api_versions), each at most kMaxApiVersionBytes: a
// cluster with every common operator's CRDs serves a few hundred group versions and kinds.
inline constexpr int kMaxClusterApiVersions = 5000;
inline constexpr int kMaxApiVersionBytes = 317;  // a group (253), a version, a kind

// The digest that names a list of API versions (Hello.api_versions_digest), sorted and
// without repeats: 24 hex digits of its SHA-256. Agent and control plane compute it alike.
std::string ApiVersionsDigest(const std::vector<std::string>& sorted);
// Sorts `list` and drops repeats, as ApiVersionsDigest wants it (agents send it sorted:
// checked in one pass, sorted only when not).
void SortApiVersions(std::vector<std::string>* list);
// Whether `digest` has ApiVersionsDigest's form.
bool IsApiVersionsDigest(const std::string& digest);

}  // namespace gitfleet

#endif  // GITFLEET_COMMON_AGENT_PROTOCOL_H_
