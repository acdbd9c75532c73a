#include "controlplane/render/fleet_names.h"

#include <openssl/evp.h>

#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace gitfleet {
namespace {

// The longest Helm release name, which Fleet cuts bundle names to.
constexpr size_t kMaxName = 53;

// The first `length` hex digits of the MD5 of `s` (Fleet's checksums; no security rests
// on them).
std::string Md5Hex(absl::string_view s, size_t length) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(s.data(), s.size(), digest, &size, EVP_md5(), nullptr);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(digest), size))
      .substr(0, length);
}

bool Allowed(char c) { return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-'; }

// Go's filepath.Join(gitrepo, path): the parts cleaned of empty and "." elements, ".."
// taking the one before it back.
std::string JoinClean(absl::string_view gitrepo, absl::string_view path) {
  std::vector<absl::string_view> parts;
  for (absl::string_view whole : {gitrepo, path}) {
    for (absl::string_view part : absl::StrSplit(whole, '/')) {
      if (part.empty() || part == ".") continue;
      if (part == ".." && !parts.empty() && parts.back() != "..") {
        parts.pop_back();
        continue;
      }
      parts.push_back(part);
    }
  }
  return absl::StrJoin(parts, "/");
}

// Fleet's cut of a name to `count` characters: the first count-6, a dash (left out when
// the cut already ends in one) and 5 hex digits of the whole's checksum.
std::string Limit(const std::string& s, size_t count) {
  if (s.size() <= count) return s;
  const size_t keep = count - 6;
  return s.substr(0, keep) + (s[keep - 1] == '-' ? "" : "-") + Md5Hex(s, 5);
}

}  // namespace

std::string FleetBundleName(absl::string_view gitrepo, absl::string_view path) {
  const std::string joined = JoinClean(gitrepo, path);
  std::string name = joined;
  for (char& c : name) {
    if (c == '/') c = '-';
  }
  // Characters the cleaning below changes would let two names collide: a checksum of the
  // name before it tells them apart.
  bool changes = false;
  for (char c : name) {
    if (!Allowed(c) || absl::ascii_isupper(static_cast<unsigned char>(c))) changes = true;
  }
  if (changes) name = name + "-" + Md5Hex(name, 8);
  absl::AsciiStrToLower(&name);
  // Each run of other characters is one dash, runs of dashes one, none at either end.
  std::string clean;
  for (char c : name) {
    const char out = Allowed(c) ? c : '-';
    if (out == '-' && (clean.empty() || clean.back() == '-')) continue;
    clean.push_back(out);
  }
  while (!clean.empty() && clean.back() == '-') clean.pop_back();
  if (clean.empty()) return Md5Hex(joined, 24);  // Fleet's fallback: a checksum alone
  return Limit(clean, kMaxName);
}

bool IsFleetNameOfFolder(absl::string_view declared, absl::string_view path) {
  if (JoinClean("", path).empty() || declared.empty() || declared.size() > kMaxName) {
    return false;
  }
  // The GitRepo's name is what comes before one of the declared name's dashes.
  for (size_t dash = declared.find('-', 1); dash != absl::string_view::npos;
       dash = declared.find('-', dash + 1)) {
    const absl::string_view gitrepo = declared.substr(0, dash);
    if (gitrepo.back() == '-') continue;
    if (FleetBundleName(gitrepo, path) == declared) return true;
  }
  return false;
}

}  // namespace gitfleet
