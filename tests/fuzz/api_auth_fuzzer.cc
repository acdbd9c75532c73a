// The admin API's --api-tokens and --api-client-roles files, scopes included: whatever an
// operator's file (or a mounted Secret gone wrong) holds is refused or read, never a crash.
#include <cstdint>
#include <string>

#include "controlplane/api/auth.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  // A form feed splits the two files; each is read as the other would be too.
  const size_t split = text.find('\f');
  const std::string tokens = text.substr(0, split);
  const std::string roles = split == std::string::npos ? text : text.substr(split + 1);
  for (const auto& [a, b] : {std::pair(tokens, roles), std::pair(roles, tokens)}) {
    absl::StatusOr<std::unique_ptr<gitfleet::ApiAuth>> auth = gitfleet::ApiAuth::Parse(a, b);
    if (!auth.ok()) continue;
    gitfleet::CallerFacts facts;
    facts.peer = "ipv4:10.0.0.1:5";
    facts.certificate = {"ops.example.com", "team-b.example.com"};
    absl::StatusOr<gitfleet::Caller> caller = (*auth)->Identify(facts);
    if (!caller.ok() || !caller->scoped()) continue;
    const gitfleet::Scope& scope = *caller->scope;
    (void)scope.Describe();
    (void)scope.CoversBundle("team-a-web");
    (void)scope.CoversRepo("https://git.example.com/team-a/app.git");
    (void)scope.CoversCluster({{"team", "a"}});
    (void)gitfleet::Authorize(*caller, "AddBundle");
  }
  return 0;
}
