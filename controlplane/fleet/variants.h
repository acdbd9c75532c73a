#ifndef GITFLEET_CONTROLPLANE_FLEET_VARIANTS_H_
#define GITFLEET_CONTROLPLANE_FLEET_VARIANTS_H_

// Per-cluster values and the revisions they lead to.
//
// A cluster's values are its labels (by key) and "cluster.name", overridden by the
// bundle's default values, overridden by the values of the first cluster_values rule
// whose selector matches. A render records which values it looked up; clusters that
// agree on those share the render and its revision, however much else differs.
//
//   absl::StatusOr<ValuesSpec> spec = ValuesSpec::Parse(bundle);
//   auto content = BundleVariants::FromTemplate(params, std::move(objects));
//   absl::StatusOr<std::shared_ptr<const Revision>> rev = (*content)->For(cluster_info);

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "common/model/label_selector.h"
#include "common/model/revision.h"
#include "common/sync.h"
#include "controlplane/render/values.h"
#include "proto/gitfleet/v1/admin.pb.h"

namespace gitfleet {

class ValuesSpec {
 public:
  // Validates names and selectors; errors name the offending rule or value.
  static absl::StatusOr<ValuesSpec> Parse(const v1::Bundle& bundle);

  // Labels and cluster.name, then defaults, then the first matching rule.
  Values ForCluster(const v1::ClusterInfo& cluster) const;
  // Only the bundle's own values: defaults, then the first matching rule.
  Values ExplicitFor(const v1::ClusterInfo& cluster) const;
  // What helm gets: those, and the cluster's name and labels under ClusterNameKey() and
  // ClusterLabelKey() (values.h), for fleet.yaml's templates only.
  Values ExplicitAndClusterFor(const v1::ClusterInfo& cluster) const;
  // ForCluster's, and the cluster's name and labels under the reserved keys too: for a
  // plain or kustomize render that chooses fleet.yaml's target for the cluster.
  Values AllAndClusterFor(const v1::ClusterInfo& cluster) const;

 private:
  const Values* RuleFor(const v1::ClusterInfo& cluster) const;

  Values defaults_;
  std::vector<std::pair<LabelSelector, Values>> rules_;
};

// Whether `bundle`'s plain or kustomize output is substituted: when it has values, cluster
// values or values files, or asks with `substitute`.
bool WantsSubstitution(const v1::Bundle& bundle);

class BundleVariants : public BundleContent {
 public:
  struct Params {
    std::string bundle;
    std::string commit;
    absl::Time committed_time;
    v1::SyncOptions sync;
    std::string target_namespace;
    absl::Time seen_time = absl::InfinitePast();
    ValuesSpec values;
    // Called (without locks held) for each revision built for some cluster, so it can
    // be stored for deltas after a restart.
    std::function<void(const std::shared_ptr<const Revision>&)> on_new_revision;
    // Unless set, a render of no objects is an error naming `path` and `engine`.
    bool allow_empty = false;
    // A team's bundle (Bundle.scope): a render holding an object whose kind `kinds` (when
    // set) does not match, or `deny_kinds` matches, is an error naming it and `caller`.
    std::vector<std::string> kinds;
    std::vector<std::string> deny_kinds;
    std::string caller;
    // FromTemplate substitutes ${var} references only when set (WantsSubstitution).
    bool substitute = true;
    std::string path;
    std::string engine;
    // Renderer mode, not explicit_only: the render is also given the cluster's name and
    // labels under the reserved keys (AllAndClusterFor), to choose fleet.yaml's target.
    bool cluster_context = false;
  };
  using RenderFn = std::function<absl::StatusOr<ObjectSet>(const Values& values, ReadValues* read)>;

  // Engine output that may hold ${name} references, substituted per cluster. Without
  // references every cluster shares one revision. InvalidArgument for a malformed one.
  static absl::StatusOr<std::shared_ptr<BundleVariants>> FromTemplate(Params params,
                                                                      ObjectSet objects);
  // Objects that every cluster gets as they are (a stored render that read no value).
  static std::shared_ptr<BundleVariants> Fixed(Params params, ObjectSet objects);
  // An engine that takes values itself (jsonnet, helm): rendered once per distinct set of
  // looked-up values. `explicit_only` hands it only the bundle's own values.
  static std::shared_ptr<BundleVariants> FromRenderer(Params params, RenderFn render,
                                                      bool explicit_only);

  const std::string& commit() const override { return params_.commit; }
  const v1::SyncOptions& sync() const { return params_.sync; }
  absl::Time committed_time() const override { return params_.committed_time; }
  absl::Time seen_time() const override { return params_.seen_time; }
  std::shared_ptr<const Revision> Uniform() const override;
  std::optional<absl::StatusOr<std::shared_ptr<const Revision>>> Built(
      const v1::ClusterInfo& cluster) const override;
  // The revision for `cluster`, built (substituted or rendered) now if it is not yet: the
  // controller's reconcile calls this, never a gRPC thread. Also tells whether the outcome
  // depended on any value: a failure that did not fails for every cluster alike.
  absl::StatusOr<std::shared_ptr<const Revision>> For(const v1::ClusterInfo& cluster,
                                                      bool* depends_on_values = nullptr) const;
  // How many variants were built so far (a reconcile that built none changes nothing).
  uint64_t builds() const override;
  // The YAML bytes of the objects variants hold alone, as bounded by kMaxVariantBytes.
  size_t variant_bytes() const;
  std::shared_ptr<const Revision> Find(const std::string& id) const override;
  bool LeavesSomeOut() const override;

  // The engine output before substitution (template mode only), kept in the store so a
  // restarted control plane can substitute again without rendering.
  const std::shared_ptr<const Revision>& template_revision() const { return template_; }
  // Distinct revisions built so far.
  std::vector<std::string> RevisionIds() const;
  // What substitution says without failing: ${...} forms it left as written (template
  // mode; at most 20).
  const std::vector<std::string>& notes() const { return notes_; }

 private:
  struct Variant {
    ReadValues read;
    absl::StatusOr<std::shared_ptr<const Revision>> result;
  };
  explicit BundleVariants(Params params) : params_(std::move(params)) {}
  // What a render or a substitution for `cluster` is given.
  Values ValuesFor(const v1::ClusterInfo& cluster) const;
  absl::StatusOr<std::shared_ptr<const Revision>> Build(const Values& values,
                                                        bool* depends_on_values) const;
  // The variant built for values that agree with `values`, or null. Costs one hash
  // lookup per distinct set of names variants read, not a walk of every variant.
  const Variant* FindLocked(const Values& values) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `bytes`: what the variant's objects hold alone (see variant_bytes_).
  void AddLocked(Variant variant, size_t bytes) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Params params_;
  std::shared_ptr<const Revision> template_;  // template mode
  std::shared_ptr<const Revision> uniform_;   // template mode without references
  std::vector<std::string> notes_;
  RenderFn render_;  // renderer mode
  bool explicit_only_ = false;

  mutable Mutex mu_;
  // Bounded: cleared, with its indexes, when it passes kMaxVariants or kMaxVariantBytes
  // (the next lookups render again).
  mutable std::vector<Variant> variants_ ABSL_GUARDED_BY(mu_);
  // For each set of value names some variant read (in order): the values it read
  // (ReadKey) -> its index in variants_.
  mutable std::map<std::vector<std::string>, absl::flat_hash_map<std::string, size_t>> by_read_
      ABSL_GUARDED_BY(mu_);
  mutable absl::flat_hash_map<std::string, size_t> by_id_ ABSL_GUARDED_BY(mu_);
  // The first variant that read no value and built (a renderer's revision for everyone).
  mutable std::shared_ptr<const Revision> read_nothing_ ABSL_GUARDED_BY(mu_);
  // Renderer mode: the first variant built. Later ones share its objects where they render
  // the same (a template's variants share the template's).
  mutable std::shared_ptr<const Revision> reference_ ABSL_GUARDED_BY(mu_);
  // The bytes of objects variants hold alone (shared ones count once, in the template or
  // the reference).
  mutable size_t variant_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  mutable uint64_t builds_ ABSL_GUARDED_BY(mu_) = 0;
  // Some variant built so far is NotDeployedHere (kept when variants are cleared: a
  // count that looks for nothing costs only a look at each cluster).
  mutable bool leaves_some_out_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_FLEET_VARIANTS_H_
