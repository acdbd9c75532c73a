#ifndef GITFLEET_CONTROLPLANE_API_SCOPED_VIEW_H_
#define GITFLEET_CONTROLPLANE_API_SCOPED_VIEW_H_

// What a team (a scoped caller) reads of the texts the control plane writes for the whole
// fleet. A bundle an admin defined for every cluster may be in a team's scope by its name,
// and its rollout's message, its per-cluster statuses' reasons, its history and the
// errors the API answers with name the fleet's other clusters ("partition 2/3: waiting for
// b-prod") and bundles. For a scoped caller each word that is the name of a cluster its
// scope does not cover, or of a bundle it does not cover, is replaced ("a cluster outside
// your scope"); a name the caller sent itself is its own to read back.
//
//   ScopedView view(caller.scope, lookups);
//   view.Asked(request.cluster());
//   view.Hide(&bundle_info);
//
// One view serves one call: what it looked up is kept for the call's other texts (at most
// kMaxKept words). Not thread-safe.

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "absl/strings/string_view.h"
#include "common/model/label_selector.h"
#include "controlplane/api/auth.h"
#include "proto/gitfleet/v1/admin.pb.h"
#include "proto/gitfleet/v1/types.pb.h"

namespace gitfleet {

class ScopedView {
 public:
  struct Lookups {
    // The labels bundles target the cluster by; nullopt when no cluster has that name.
    std::function<std::optional<LabelMap>(const std::string&)> cluster_labels;
    // Whether a bundle of that name is defined.
    std::function<bool(const std::string&)> bundle_defined;
  };
  static constexpr size_t kMaxKept = 4096;
  static constexpr absl::string_view kOtherCluster = "a cluster outside your scope";
  static constexpr absl::string_view kOtherBundle = "a bundle outside your scope";

  // A null scope (an unscoped caller) reads every text as written, and looks nothing up.
  ScopedView(std::shared_ptr<const Scope> scope, Lookups lookups)
      : scope_(std::move(scope)), lookups_(std::move(lookups)) {}

  bool scoped() const { return scope_ != nullptr; }

  // Every word of `text` (a name, or a request's summary) the caller sent: never hidden.
  void Asked(absl::string_view text);

  // Which names a text's words are looked up as. Bundles' names are often words of a
  // repository's own (a folder "web", an object "api"), so only the texts the control plane
  // writes about the fleet's progress (a rollout's, a wait's) are read for them; a render's
  // error, or an agent's, is read for clusters' names alone.
  enum class Names { kClusters, kClustersAndBundles };

  std::string Hide(absl::string_view text, Names names = Names::kClusters);
  void Hide(std::string* text, Names names = Names::kClusters) { *text = Hide(*text, names); }
  void Hide(v1::BundleInfo* info);
  // What the control plane wrote of it (an agent's own message and its objects' are of a
  // cluster the caller sees: as they are).
  void Hide(v1::BundleStatus* status);
  // Its message and each listed cluster's detail (the rows themselves are the caller's to
  // trim: TrimRollout).
  void Hide(v1::RolloutStatus* status);
  void Hide(v1::Event* event);
  // A cluster the caller sees: the bundles it holds that are defined no more (orphans) are
  // named when the scope covers them alone.
  void Hide(v1::ClusterInfo* cluster);

  // Whether the caller may see the cluster of that name (one no cluster has is not hidden).
  bool SeesCluster(const std::string& name);

 private:
  enum class Word { kShown, kCluster, kBundle };
  // What a word was found to be: a cluster outside the scope; a bundle outside it, once
  // asked.
  struct Judged {
    bool cluster = false;
    std::optional<bool> bundle;
  };
  Word Judge(absl::string_view word, Names names);
  Word Finish(absl::string_view word, Names names, Judged* judged);

  const std::shared_ptr<const Scope> scope_;
  const Lookups lookups_;
  std::set<std::string, std::less<>> asked_;
  std::map<std::string, Judged, std::less<>> judged_;
};

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_API_SCOPED_VIEW_H_
