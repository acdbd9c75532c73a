#ifndef GITFLEET_COMMON_MODEL_LABEL_SELECTOR_H_
#define GITFLEET_COMMON_MODEL_LABEL_SELECTOR_H_

// Kubernetes-style label selectors: comma-separated requirements that must all hold.
//
//   env=prod   env==prod   env!=prod   tier in (web,api)   tier notin (db)
//   canary     !canary
//
//   GF_ASSIGN_OR_RETURN(LabelSelector s, LabelSelector::Parse("env=prod,!canary"));
//   bool targeted = s.Matches(cluster_labels);
//
// Immutable and thread-safe once parsed. The empty selector matches everything.

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace gitfleet {

using LabelMap = std::map<std::string, std::string>;

class LabelSelector {
 public:
  static absl::StatusOr<LabelSelector> Parse(absl::string_view text);
  bool Matches(const LabelMap& labels) const;
  // The label keys its requirements look at: labels other than these never change
  // whether it matches.
  std::set<std::string> Keys() const;
  const std::string& text() const { return text_; }

 private:
  enum class Op { kEquals, kNotEquals, kIn, kNotIn, kExists, kNotExists };
  struct Requirement {
    std::string key;
    Op op;
    std::set<std::string> values;
  };
  std::string text_;
  std::vector<Requirement> requirements_;
};

// Parses "k=v,k2=v2" label lists (as on the agent's --labels flag). Keys and values
// follow Kubernetes' rules: at most 63 characters of [A-Za-z0-9_.-], an optional
// DNS prefix on keys.
absl::StatusOr<LabelMap> ParseLabels(absl::string_view text);
// The same rules for labels that came as a map (an API request): at most 64 of them.
absl::Status ValidateLabels(const LabelMap& labels);

}  // namespace gitfleet

#endif  // GITFLEET_COMMON_MODEL_LABEL_SELECTOR_H_
