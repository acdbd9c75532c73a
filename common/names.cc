#include "common/names.h"

#include <algorithm>
#include <cctype>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
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

absl::Status ValidateCommitDigits(const std::string& what, const std::string& digits) {
  if (digits.size() < 4 || digits.size() > 64 ||
      !std::all_of(digits.begin(), digits.end(),
                   [](char c) { return absl::ascii_isxdigit(static_cast<unsigned char>(c)); })) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " \"", absl::CHexEscape(digits.substr(0, 64)),
                     "\": want a commit id, or its first digits (at least 4)"));
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

namespace {

// Built-in kinds of API groups other than the core one, by kind: a pattern that names one
// without its group would match nothing.
constexpr std::pair<const char*, const char*> kBuiltInKinds[] = {
    {"APIService", "apiregistration.k8s.io"},
    {"CertificateSigningRequest", "certificates.k8s.io"},
    {"ClusterRole", "rbac.authorization.k8s.io"},
    {"ClusterRoleBinding", "rbac.authorization.k8s.io"},
    {"ControllerRevision", "apps"},
    {"CronJob", "batch"},
    {"CSIDriver", "storage.k8s.io"},
    {"CSINode", "storage.k8s.io"},
    {"CustomResourceDefinition", "apiextensions.k8s.io"},
    {"DaemonSet", "apps"},
    {"Deployment", "apps"},
    {"EndpointSlice", "discovery.k8s.io"},
    {"FlowSchema", "flowcontrol.apiserver.k8s.io"},
    {"HorizontalPodAutoscaler", "autoscaling"},
    {"Ingress", "networking.k8s.io"},
    {"IngressClass", "networking.k8s.io"},
    {"Job", "batch"},
    {"Lease", "coordination.k8s.io"},
    {"MutatingWebhookConfiguration", "admissionregistration.k8s.io"},
    {"NetworkPolicy", "networking.k8s.io"},
    {"PodDisruptionBudget", "policy"},
    {"PriorityClass", "scheduling.k8s.io"},
    {"PriorityLevelConfiguration", "flowcontrol.apiserver.k8s.io"},
    {"ReplicaSet", "apps"},
    {"Role", "rbac.authorization.k8s.io"},
    {"RoleBinding", "rbac.authorization.k8s.io"},
    {"RuntimeClass", "node.k8s.io"},
    {"StatefulSet", "apps"},
    {"StorageClass", "storage.k8s.io"},
    {"ValidatingAdmissionPolicy", "admissionregistration.k8s.io"},
    {"ValidatingAdmissionPolicyBinding", "admissionregistration.k8s.io"},
    {"ValidatingWebhookConfiguration", "admissionregistration.k8s.io"},
    {"VolumeAttachment", "storage.k8s.io"},
};

}  // namespace

absl::Status ValidateKindPattern(const std::string& pattern) {
  const size_t slash = pattern.rfind('/');
  const std::string group = slash == std::string::npos ? "" : pattern.substr(0, slash);
  const std::string kind = slash == std::string::npos ? pattern : pattern.substr(slash + 1);
  auto only = [](const std::string& part, const char* allowed) {
    return part.find_first_not_of(allowed) == std::string::npos;
  };
  constexpr char kGlob[] = "*?[]!";
  const bool group_ok =
      group.size() <= 253 &&
      only(group, absl::StrCat("abcdefghijklmnopqrstuvwxyz0123456789-.", kGlob).c_str()) &&
      (slash == std::string::npos || !group.empty());
  const bool kind_ok =
      !kind.empty() && kind.size() <= 63 &&
      only(kind,
           absl::StrCat("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", kGlob)
               .c_str());
  if (!group_ok || !kind_ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"", pattern.substr(0, 64),
        "\" is not [GROUP/]KIND (\"ConfigMap\" of the core group, \"apps/Deployment\", "
        "\"rbac.authorization.k8s.io/*\", \"*/*\"; globs allowed)"));
  }
  if (slash == std::string::npos) {
    for (const auto& [builtin, builtin_group] : kBuiltInKinds) {
      if (kind == builtin) {
        return absl::InvalidArgumentError(
            absl::StrCat("\"", kind, "\" names the core group, which has no kind ", kind,
                         "; did you mean ", builtin_group, "/", kind, "?"));
      }
    }
  }
  return absl::OkStatus();
}

bool MatchesAnyKind(const std::vector<std::string>& patterns, const std::string& group,
                    const std::string& kind) {
  return std::any_of(patterns.begin(), patterns.end(), [&](const std::string& pattern) {
    const size_t slash = pattern.rfind('/');
    if (slash == std::string::npos) {
      return group.empty() && fnmatch(pattern.c_str(), kind.c_str(), 0) == 0;
    }
    return fnmatch(pattern.substr(0, slash).c_str(), group.c_str(), 0) == 0 &&
           fnmatch(pattern.substr(slash + 1).c_str(), kind.c_str(), 0) == 0;
  });
}

std::string ApiGroupOf(absl::string_view api_version) {
  const size_t slash = api_version.rfind('/');
  return slash == absl::string_view::npos ? "" : std::string(api_version.substr(0, slash));
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

absl::Status ValidateGitRepoName(const std::string& what, const std::string& name) {
  bool ok = !name.empty() && name.size() <= 63 &&
            std::isalnum(static_cast<unsigned char>(name.front())) &&
            std::isalnum(static_cast<unsigned char>(name.back()));
  for (char c : name) {
    ok &= (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
  }
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " \"", name.substr(0, 64),
        "\" must be a GitRepo's name: 1-63 lower-case letters, digits, '-' or '.', starting "
        "and ending with a letter or digit"));
  }
  return absl::OkStatus();
}

absl::Status ValidateArgoCdAppName(const std::string& what, const std::string& name) {
  bool ok = !name.empty() && name.size() <= 253 + 1 + 63 &&
            std::isalnum(static_cast<unsigned char>(name.front())) &&
            std::isalnum(static_cast<unsigned char>(name.back())) &&
            std::count(name.begin(), name.end(), '_') <= 1;
  for (char c : name) {
    ok &= (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
  }
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " \"", name.substr(0, 64),
        "\" must be an Argo CD Application's name: lower-case letters, digits, '-' or '.' "
        "(NAMESPACE_NAME for one outside Argo CD's namespace)"));
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
