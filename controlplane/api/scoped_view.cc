#include "controlplane/api/scoped_view.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace gitfleet {
namespace {

// What a cluster's or a bundle's name is made of (ValidateClusterName, ValidateName): a
// name in a text ends where one of these does not go on.
bool NameChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_';
}
constexpr size_t kMaxNameBytes = 63;

// Calls `each(word, rest)` for each run of name characters in `text`, and `between(text)`
// for what lies between them.
template <typename Each, typename Between>
void Words(absl::string_view text, Each each, Between between) {
  size_t at = 0;
  while (at < text.size()) {
    size_t end = at;
    while (end < text.size() && !NameChar(text[end])) ++end;
    if (end > at) between(text.substr(at, end - at));
    at = end;
    while (end < text.size() && NameChar(text[end])) ++end;
    if (end > at) each(text.substr(at, end - at));
    at = end;
  }
}

}  // namespace

void ScopedView::Asked(absl::string_view text) {
  if (!scoped()) return;
  Words(
      text,
      [this](absl::string_view word) {
        asked_.emplace(word);
        absl::ConsumeSuffix(&word, ".");
        asked_.emplace(word);
      },
      [](absl::string_view) {});
}

ScopedView::Word ScopedView::Judge(absl::string_view word, Names names) {
  if (word.empty() || word.size() > kMaxNameBytes || asked_.count(word) > 0) return Word::kShown;
  auto it = judged_.find(word);
  if (it == judged_.end()) {
    Judged judged;
    if (lookups_.cluster_labels != nullptr) {
      std::optional<LabelMap> labels = lookups_.cluster_labels(std::string(word));
      judged.cluster = labels.has_value() && !scope_->CoversCluster(*labels);
    }
    if (judged_.size() >= kMaxKept) {
      Judged once = judged;  // not kept: looked up again next time
      return Finish(word, names, &once);
    }
    it = judged_.emplace(std::string(word), judged).first;
  }
  return Finish(word, names, &it->second);
}

ScopedView::Word ScopedView::Finish(absl::string_view word, Names names, Judged* judged) {
  if (judged->cluster) return Word::kCluster;
  if (names == Names::kClusters) return Word::kShown;
  // A bundle's name is looked up only where bundles are hidden (a wait's, a rollout's text).
  if (!judged->bundle.has_value()) {
    const std::string name(word);
    judged->bundle = lookups_.bundle_defined != nullptr && !scope_->CoversBundle(name) &&
                     lookups_.bundle_defined(name);
  }
  return *judged->bundle ? Word::kBundle : Word::kShown;
}

bool ScopedView::SeesCluster(const std::string& name) {
  return !scoped() || Judge(name, Names::kClusters) != Word::kCluster;
}

std::string ScopedView::Hide(absl::string_view text, Names names) {
  if (!scoped() || text.empty()) return std::string(text);
  std::string out;
  out.reserve(text.size());
  Words(
      text,
      [&](absl::string_view word) {
        // A name may end a sentence: "waiting for b-dev." (names end with a letter or digit).
        absl::string_view name = word;
        Word judged = Judge(name, names);
        if (judged == Word::kShown) {
          while (absl::ConsumeSuffix(&name, ".")) {
          }
          if (name.size() < word.size()) judged = Judge(name, names);
        }
        if (judged == Word::kShown) {
          absl::StrAppend(&out, word);
        } else {
          absl::StrAppend(&out, judged == Word::kCluster ? kOtherCluster : kOtherBundle,
                          word.substr(name.size()));
        }
      },
      [&](absl::string_view between) { absl::StrAppend(&out, between); });
  return out;
}

void ScopedView::Hide(v1::BundleInfo* info) {
  if (!scoped()) return;
  Hide(info->mutable_error());
  Hide(info->mutable_rollout(), Names::kClustersAndBundles);
  Hide(info->mutable_waiting(), Names::kClustersAndBundles);
  Hide(info->mutable_source_error());
  Hide(info->mutable_scope_held());
  for (std::string& note : *info->mutable_notes()) Hide(&note);
}

void ScopedView::Hide(v1::BundleStatus* status) {
  if (!scoped()) return;
  Hide(status->mutable_held_back(), Names::kClustersAndBundles);
  Hide(status->mutable_source_error());
}

void ScopedView::Hide(v1::RolloutStatus* status) {
  if (!scoped()) return;
  Hide(status->mutable_message(), Names::kClustersAndBundles);
  for (v1::RolloutPartition& partition : *status->mutable_partitions()) {
    Hide(partition.mutable_state());
    // Its own report's message, or why it waits.
    for (v1::RolloutCluster& cluster : *partition.mutable_clusters()) {
      Hide(cluster.mutable_detail());
    }
  }
  if (status->has_commit_reach()) Hide(status->mutable_commit_reach()->mutable_note());
}

void ScopedView::Hide(v1::ClusterInfo* cluster) {
  if (!scoped()) return;
  auto* orphans = cluster->mutable_orphaned_bundles();
  orphans->erase(
      std::remove_if(orphans->begin(), orphans->end(),
                     [this](const std::string& bundle) { return !scope_->CoversBundle(bundle); }),
      orphans->end());
}

void ScopedView::Hide(v1::Event* event) {
  if (!scoped()) return;
  Hide(event->mutable_message());
}

}  // namespace gitfleet
