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

absl::Status AgentTokens::Check(const std::string& cluster, const std::string& token) const {
  if (allow_all_) return absl::OkStatus();
  auto it = tokens_.find(cluster);
  if (it == tokens_.end()) {
    return absl::UnauthenticatedError(
        absl::StrCat("cluster \"", cluster, "\" has no token on this control plane"));
  }
  if (token.empty()) {
    return absl::UnauthenticatedError(
        absl::StrCat("agent for cluster \"", cluster, "\" sent no token"));
  }
  if (it->second.size() != token.size() ||
      CRYPTO_memcmp(it->second.data(), token.data(), token.size()) != 0) {
    return absl::UnauthenticatedError(absl::StrCat("wrong token for cluster \"", cluster, "\""));
  }
  return absl::OkStatus();
}

bool AgentTokens::FirstRefusal(const std::string& cluster) {
  MutexLock lock(&mu_);
  return refused_.insert(cluster).second;
}

}  // namespace gitfleet
