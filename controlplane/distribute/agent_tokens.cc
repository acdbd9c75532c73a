#include "controlplane/distribute/agent_tokens.h"

#include <openssl/crypto.h>

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/file_system.h"

namespace gitfleet {

std::unique_ptr<AgentTokens> AgentTokens::AllowAll() {
  auto tokens = std::make_unique<AgentTokens>();
  tokens->allow_all_ = true;
  return tokens;
}

absl::StatusOr<std::unique_ptr<AgentTokens>> AgentTokens::Parse(const std::string& text,
                                                                const std::string& origin) {
  auto tokens = std::make_unique<AgentTokens>();
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> fields = absl::StrSplit(line, ' ', absl::SkipWhitespace());
    if (fields.size() != 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          origin, ":", line_number, ": want \"cluster token\", got ", fields.size(), " fields"));
    }
    if (!tokens->tokens_.emplace(fields[0], fields[1]).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(origin, ":", line_number, ": cluster ", fields[0], " is listed twice"));
    }
  }
  return tokens;
}

absl::StatusOr<std::unique_ptr<AgentTokens>> AgentTokens::Load(const std::string& path) {
  absl::StatusOr<std::string> text = PosixFileSystem().ReadFile(path);
  if (!text.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--agent-tokens: ", text.status().message()));
  }
  return Parse(*text, path);
}

bool AgentTokens::Matches(const std::string& cluster, const std::string& token) const {
  auto it = tokens_.find(cluster);
  // Compare against something of the token's length even for an unknown cluster, so
  // that timing does not tell which clusters exist.
  const std::string& want = it == tokens_.end() ? token : it->second;
  bool same =
      want.size() == token.size() && CRYPTO_memcmp(want.data(), token.data(), token.size()) == 0;
  return it != tokens_.end() && !token.empty() && same;
}

absl::Status AgentTokens::Check(const std::string& cluster, const std::string& token) const {
  if (allow_all_ || Matches(cluster, token)) return absl::OkStatus();
  // One answer for an unknown cluster, a missing token and a wrong one: a caller without
  // a token learns nothing about which clusters exist.
  return absl::UnauthenticatedError(
      absl::StrCat("cluster \"", cluster, "\": unknown cluster, or missing or wrong token"));
}

std::string AgentTokens::Explain(const std::string& cluster, const std::string& token) const {
  if (allow_all_) return "accepted";
  if (tokens_.find(cluster) == tokens_.end()) return "the cluster has no token here";
  if (token.empty()) return "no token sent";
  if (!Matches(cluster, token)) return "wrong token";
  return "accepted";
}

bool AgentTokens::FirstRefusal(const std::string& cluster) {
  MutexLock lock(&mu_);
  return refused_.insert(cluster).second;
}

}  // namespace gitfleet
