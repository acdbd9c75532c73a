#include "common/agent_protocol.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_join.h"
#include "common/crypto.h"

namespace gitfleet {

std::string ApiVersionsDigest(const std::vector<std::string>& sorted) {
  return absl::BytesToHexString(crypto::Sha256(absl::StrJoin(sorted, "\n"))).substr(0, 24);
}

void SortApiVersions(std::vector<std::string>* list) {
  if (!std::is_sorted(list->begin(), list->end())) std::sort(list->begin(), list->end());
  list->erase(std::unique(list->begin(), list->end()), list->end());
}

bool IsApiVersionsDigest(const std::string& digest) {
  if (digest.size() != 24) return false;
  for (char c : digest) {
    if (!absl::ascii_isdigit(c) && (c < 'a' || c > 'f')) return false;
  }
  return true;
}

}  // namespace gitfleet
