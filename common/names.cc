#include "common/names.h"

#include <algorithm>
#include <cctype>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"

namespace gitfleet {

absl::Status ValidateName(const std::string& what, const std::string& name) {
  bool ok = !name.empty() && name.size() <= 63;
  for (char c : name) {
    ok &= (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  }
  ok &= !name.empty() && name.front() != '-' && name.back() != '-';
  if (!ok) {
    // At most 64 characters of the name: it may come from a peer.
    return absl::InvalidArgumentError(absl::StrCat(
        what, " name \"", name.substr(0, 64),
        "\" must be 1-63 lower-case letters, digits or '-', starting and ending with a "
        "letter or digit"));
  }
  return absl::OkStatus();
}

absl::Status ValidateServiceAccount(const std::string& account) {
  const size_t slash = account.find('/');
  const std::string name = slash == std::string::npos ? account : account.substr(slash + 1);
  if (slash != std::string::npos) {
    if (absl::Status s = ValidateName("service account's namespace", account.substr(0, slash));
        !s.ok()) {
      return s;
    }
  }
  bool ok = !name.empty() && name.size() <= 253;
  for (char c : name) {
    ok &= (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
  }
  ok &= !name.empty() && std::isalnum(static_cast<unsigned char>(name.front())) &&
        std::isalnum(static_cast<unsigned char>(name.back()));
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        "service account \"", account.substr(0, 64),
        "\" must be NAME or NAMESPACE/NAME, NAME 1-253 lower-case letters, digits, '-' or '.', "
        "starting and ending with a letter or digit"));
  }
  return absl::OkStatus();
}

std::string ServiceAccountUser(const std::string& account, const std::string& default_namespace) {
  const size_t slash = account.find('/');
  const std::string ns = slash == std::string::npos ? default_namespace : account.substr(0, slash);
  if (ns.empty() || account.empty()) return "";
  return absl::StrCat("system:serviceaccount:", ns, ":",
                      slash == std::string::npos ? account : account.substr(slash + 1));
}

absl::Status ValidateClusterName(const std::string& name) {
  if (name.empty() || name.size() > 63) {
    return absl::InvalidArgumentError("cluster name must be 1 to 63 characters");
  }
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_')) {
      return absl::InvalidArgumentError(
          absl::StrCat("cluster name \"", name, "\" may only hold [A-Za-z0-9._-]"));
    }
  }
  return absl::OkStatus();
}

std::string ListNames(const std::vector<std::string>& names, size_t most) {
  if (names.empty()) return "none";
  if (names.size() <= most) return absl::StrJoin(names, ", ");
  return absl::StrCat(absl::StrJoin(names.begin(), names.begin() + most, ", "), " and ",
                      names.size() - most, " more");
}

std::string ShellWord(absl::string_view text) {
  const bool plain = !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
           absl::string_view("_@%+=:,./-").find(c) != absl::string_view::npos;
  });
  if (plain) return std::string(text);
  return absl::StrCat("'", absl::StrReplaceAll(text, {{"'", R"('\'')"}}), "'");
}

}  // namespace gitfleet
