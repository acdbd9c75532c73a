#include "controlplane/fleet/variants.h"

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/logging.h"
#include "common/model/cluster_group.h"
#include "common/names.h"

namespace gitfleet {
namespace {

// Revisions built per content: about one per cluster for a bundle that names each
// cluster, so the bound is of fleet size, with a bound on their bytes beside it. Past
// either, every variant is dropped and built again when next looked up.
constexpr size_t kMaxVariants = 65536;
constexpr size_t kMaxVariantBytes = size_t{2} << 30;
// Notes about ${...} forms left as written, per content.
constexpr size_t kMaxNotes = 20;

absl::Status CheckValueNames(const Values& values, const std::string& where) {
  for (const auto& [name, value] : values) {
    bool ok = !name.empty();
    for (char c : name) {
      ok &= (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '_' || c == '.' || c == '-' || c == '/';
    }
    if (!ok) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": value name \"", name,
                       "\" must be letters, digits, '_', '.', '-' or '/' (as ${name} needs)"));
    }
  }
  return absl::OkStatus();
}

// The YAML bytes of the objects `set` holds alone: not those it shares with `shared`.
size_t OwnBytes(const ObjectSet& set, const ObjectSet* shared) {
  size_t total = 0;
  for (const auto& [key, object] : set.objects()) {
    if (shared != nullptr) {
      auto it = shared->objects().find(key);
      if (it != shared->objects().end() && it->second == object) continue;
    }
    total += object->yaml().size();
  }
  return total;
}

// `rendered`, holding `reference`'s object wherever it rendered the same one (same key,
// same content): the variants of a renderer mostly agree.
ObjectSet ShareWith(const ObjectSet& rendered, const ObjectSet& reference) {
  ObjectSet out;
  out.CopyDeclarationsFrom(rendered);
  for (const auto& [key, object] : rendered.objects()) {
    auto it = reference.objects().find(key);
    const bool same =
        it != reference.objects().end() && it->second->content_hash() == object->content_hash();
    // The keys are rendered's own, so none is taken twice.
    (void)out.Add(same ? it->second : object);
  }
  return out;
}

// The names a variant read, in order.
std::vector<std::string> ReadNames(const ReadValues& read) {
  std::vector<std::string> names;
  names.reserve(read.size());
  for (const auto& [name, value] : read) names.push_back(name);
  return names;
}

// One string for the values of `names`, each present ("+" and its length-prefixed value)
// or absent ("-"): equal for two lookups exactly when they agree on every name.
template <typename Lookup>
std::string ReadKey(const std::vector<std::string>& names, Lookup lookup) {
  std::string key;
  for (const std::string& name : names) {
    const std::string* value = lookup(name);
    if (value == nullptr) {
      key += '-';
    } else {
      absl::StrAppend(&key, "+", value->size(), ":", *value);
    }
  }
  return key;
}

// ReadKey of what a variant read.
std::string ReadKeyOf(const std::vector<std::string>& names, const ReadValues& read) {
  return ReadKey(names, [&](const std::string& name) -> const std::string* {
    const std::optional<std::string>& value = read.at(name);
    return value.has_value() ? &*value : nullptr;
  });
}

}  // namespace

absl::StatusOr<ValuesSpec> ValuesSpec::Parse(const v1::Bundle& bundle) {
  ValuesSpec spec;
  spec.defaults_ = Values(bundle.values().begin(), bundle.values().end());
  if (absl::Status s = CheckValueNames(spec.defaults_, "values"); !s.ok()) return s;
  for (int i = 0; i < bundle.cluster_values_size(); ++i) {
    const v1::ClusterValues& rule = bundle.cluster_values(i);
    std::string where = absl::StrCat("cluster_values[", i, "] (", rule.selector(), ")");
    if (rule.selector().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": the selector is empty; put values for every cluster in the defaults"));
    }
    absl::StatusOr<LabelSelector> selector = LabelSelector::Parse(rule.selector());
    if (!selector.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": ", selector.status().message()));
    }
    Values values(rule.values().begin(), rule.values().end());
    if (absl::Status s = CheckValueNames(values, where); !s.ok()) return s;
    spec.rules_.emplace_back(*std::move(selector), std::move(values));
  }
  return spec;
}

const Values* ValuesSpec::RuleFor(const v1::ClusterInfo& cluster) const {
  if (rules_.empty()) return nullptr;
  LabelMap labels(cluster.labels().begin(), cluster.labels().end());
  for (const auto& [selector, values] : rules_) {
    if (selector.Matches(labels)) return &values;
  }
  return nullptr;
}

Values ValuesSpec::ExplicitFor(const v1::ClusterInfo& cluster) const {
  Values out;
  if (const Values* rule = RuleFor(cluster)) out = *rule;
  out.insert(defaults_.begin(), defaults_.end());  // keeps the rule's entries
  return out;
}

namespace {

void AddClusterContext(const v1::ClusterInfo& cluster, Values* out) {
  out->emplace(ClusterNameKey(), cluster.name());
  for (const auto& [key, value] : cluster.labels()) out->emplace(ClusterLabelKey(key), value);
  if (!cluster.kubernetes_version().empty()) {
    out->emplace(ClusterKubernetesVersionKey(), cluster.kubernetes_version());
  }
  if (!cluster.api_versions_digest().empty()) {
    out->emplace(ClusterApiVersionsKey(), cluster.api_versions_digest());
  }
  if (cluster.groups_defined()) {  // "" when it is in none
    out->emplace(ClusterGroupsKey(), EncodeGroupMemberships(GroupsOf(cluster)));
  }
}

}  // namespace

Values ValuesSpec::ExplicitAndClusterFor(const v1::ClusterInfo& cluster) const {
  Values out = ExplicitFor(cluster);
  AddClusterContext(cluster, &out);
  return out;
}

Values ValuesSpec::AllAndClusterFor(const v1::ClusterInfo& cluster) const {
  Values out = ForCluster(cluster);
  AddClusterContext(cluster, &out);
  return out;
}

Values ValuesSpec::ForCluster(const v1::ClusterInfo& cluster) const {
  Values out = ExplicitFor(cluster);
  out.insert({"cluster.name", cluster.name()});
  out.insert(cluster.labels().begin(), cluster.labels().end());
  return out;
}

bool WantsSubstitution(const v1::Bundle& bundle) {
  return bundle.substitute() || !bundle.values().empty() || bundle.cluster_values_size() > 0 ||
         bundle.helm_values_files_size() > 0;
}

// What a render must hold: some object (unless it may be empty), and, for a team's bundle,
// objects of the kinds its scope allows alone.
static absl::Status CheckObjects(const BundleVariants::Params& params, const ObjectSet& objects) {
  if (!params.kinds.empty() || !params.deny_kinds.empty()) {
    std::vector<std::string> refused;
    size_t count = 0;
    for (const auto& [key, object] : objects.objects()) {
      const v1::ObjectKey& k = object->key();
      const bool denied = MatchesAnyKind(params.deny_kinds, k.group(), k.kind());
      if (!denied && (params.kinds.empty() || MatchesAnyKind(params.kinds, k.group(), k.kind()))) {
        continue;
      }
      if (++count > 3) continue;
      refused.push_back(absl::StrCat(KeyDisplay(k), " (", k.group().empty() ? "" : k.group() + "/",
                                     k.kind(), denied ? ": deny-kinds=" : ": not in kinds=",
                                     absl::StrJoin(denied ? params.deny_kinds : params.kinds, ","),
                                     ")"));
    }
    if (count > 0) {
      return absl::PermissionDeniedError(absl::StrCat(
          "bundle ", params.bundle, ": ", count, count == 1 ? " object is" : " objects are",
          " of a kind the scope of caller ", params.caller,
          " does not allow, so nothing of this render is applied: ", absl::StrJoin(refused, "; "),
          count > 3 ? "; ..." : ""));
    }
  }
  // A team's bundle is applied as an account in its own namespaces (or its scope's): the
  // one its repository's fleet.yaml names, in the agents' namespace as Fleet looks it up,
  // must be one of them, or the team would act with whatever rights that account has.
  const std::string& declared = objects.declared_service_account();
  if (params.sync.service_account().empty() && !declared.empty() &&
      !params.sync.allowed_namespaces().empty() &&
      !MatchesAnyGlob(params.sync.allowed_namespaces(), declared.substr(0, declared.find('/')))) {
    return absl::PermissionDeniedError(absl::StrCat(
        "bundle ", params.bundle, ": fleet.yaml's serviceAccount is ", declared,
        ", outside the namespaces of the scope of caller ", params.caller, " (",
        absl::StrJoin(params.sync.allowed_namespaces(), ","),
        "), so nothing of this render is applied; give the bundle --service-account in one of "
        "them, or ask a fleet admin for the scope's service-account="));
  }
  if (params.allow_empty || objects.size() > 0) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "bundle ", params.bundle, " renders no objects from ",
      params.path.empty() ? std::string("the repository root") : absl::StrCat("path ", params.path),
      params.engine.empty() ? "" : absl::StrCat(" (engine ", params.engine, ")"),
      "; a wrong --path, an empty directory or an entry file that was not detected are the "
      "usual causes. Nothing is applied or pruned; if empty is meant, add the bundle with "
      "--allow-empty"));
}

namespace {

// Objects that deploy nothing by themselves: another GitOps tool in the cluster acts on
// them (a Flux repository's HelmReleases, an Argo CD app of apps). Said once per kind, so
// a render that deploys a HelmRelease to clusters without Flux says why nothing runs.
struct OtherToolsKind {
  const char* group;
  const char* kind;
  const char* acts;
};
constexpr OtherToolsKind kOtherToolsKinds[] = {
    {"helm.toolkit.fluxcd.io", "HelmRelease",
     "Flux's helm-controller in the cluster installs its chart, not gitfleet (render the chart "
     "through gitfleet with a fleet.yaml's helm.repo and helm.chart, or a kustomization's "
     "helmCharts)"},
    {"kustomize.toolkit.fluxcd.io", "Kustomization",
     "Flux's kustomize-controller in the cluster applies what it names, not gitfleet (add "
     "its path as a bundle of its own)"},
    {"argoproj.io", "Application",
     "Argo CD in the cluster deploys what it names, not gitfleet (add its path as a bundle of "
     "its own)"},
    {"argoproj.io", "ApplicationSet",
     "Argo CD in the cluster makes and deploys its Applications, not gitfleet"},
    {"fleet.cattle.io", "GitRepo",
     "Rancher Fleet in the cluster deploys what it names, not gitfleet (add the repository "
     "as a source and its folders as bundles)"},
};

void NoteOtherToolsKinds(const ObjectSet& objects, std::vector<std::string>* notes) {
  for (const OtherToolsKind& tool : kOtherToolsKinds) {
    std::vector<std::string> named;
    size_t count = 0;
    for (const auto& [key, object] : objects.objects()) {
      const v1::ObjectKey& k = object->key();
      if (k.kind() != tool.kind || k.group() != tool.group) continue;
      if (++count <= 3) {
        named.push_back(k.namespace_().empty() ? k.name() : k.namespace_() + "/" + k.name());
      }
    }
    if (count == 0) continue;
    notes->push_back(absl::StrCat(
        "holds ", count, " ", tool.kind, " (", tool.group, count == 1 ? ") object " : ") objects ",
        absl::StrJoin(named, ", "), count > 3 ? ", ..." : "", ": ", tool.acts));
  }
}

}  // namespace

absl::StatusOr<std::shared_ptr<BundleVariants>> BundleVariants::FromTemplate(Params params,
                                                                             ObjectSet objects) {
  if (absl::Status s = CheckObjects(params, objects); !s.ok()) return s;
  bool references = false;
  std::vector<std::string> notes;
  NoteOtherToolsKinds(objects, &notes);
  for (const auto& [key, object] : objects.objects()) {
    if (!HasVariables(object->yaml()) || SubstitutionDisabled(*object)) continue;
    absl::StatusOr<std::set<std::string>> names = VariableNames(object->yaml());
    if (!params.substitute) {
      // Applied as written: say so once, as a definition replaced without its --values
      // turns substitution off, and `replicas: ${replicas:=1}` would reach the clusters.
      if (names.ok() && !names->empty()) {
        std::vector<std::string> shown;
        for (const std::string& name : *names) {
          if (shown.size() == 3) break;
          shown.push_back(absl::StrCat("${", name, "}"));
        }
        notes.push_back(absl::StrCat(
            KeyDisplay(object->key()), " holds ", absl::StrJoin(shown, ", "),
            names->size() > 3 ? ", ..." : "",
            ", applied as written: this bundle substitutes nothing (it has no --values, "
            "--cluster-values or --values-file, nor --substitute)"));
        break;
      }
      continue;
    }
    if (!names.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(KeyDisplay(object->key()), ": ", names.status().message()));
    }
    // Only forms left as written change nothing: every cluster still shares one revision.
    references |= !names->empty() || object->yaml().find("$${") != std::string::npos;
    for (const std::string& form : UnsubstitutedForms(object->yaml())) {
      if (notes.size() >= kMaxNotes) break;
      notes.push_back(absl::StrCat(KeyDisplay(object->key()), ": left ", form,
                                   " as written (gitfleet substitutes ${var}, ${var:=default} "
                                   "and ${var:-default}; $${ writes a literal ${)"));
    }
  }
  std::shared_ptr<BundleVariants> content(new BundleVariants(std::move(params)));
  const Params& p = content->params_;
  content->template_ = Revision::Build(p.bundle, p.commit, p.committed_time, std::move(objects),
                                       p.sync, p.target_namespace);
  if (!references) content->uniform_ = content->template_;
  content->notes_ = std::move(notes);
  return content;
}

std::shared_ptr<BundleVariants> BundleVariants::Fixed(Params params, ObjectSet objects) {
  std::shared_ptr<BundleVariants> content(new BundleVariants(std::move(params)));
  const Params& p = content->params_;
  content->uniform_ = Revision::Build(p.bundle, p.commit, p.committed_time, std::move(objects),
                                      p.sync, p.target_namespace);
  return content;
}

std::shared_ptr<BundleVariants> BundleVariants::FromRenderer(Params params, RenderFn render,
                                                             bool explicit_only) {
  std::shared_ptr<BundleVariants> content(new BundleVariants(std::move(params)));
  content->render_ = std::move(render);
  content->explicit_only_ = explicit_only;
  return content;
}

std::shared_ptr<const Revision> BundleVariants::Uniform() const {
  if (uniform_ != nullptr) return uniform_;
  if (template_ != nullptr) return nullptr;
  // A renderer that looked up no value renders the same for everyone.
  MutexLock lock(&mu_);
  return read_nothing_;
}

const BundleVariants::Variant* BundleVariants::FindLocked(const Values& values) const {
  for (const auto& [names, variants] : by_read_) {
    auto it = variants.find(ReadKey(names, [&](const std::string& name) -> const std::string* {
      auto value = values.find(name);
      return value == values.end() ? nullptr : &value->second;
    }));
    if (it != variants.end()) return &variants_[it->second];
  }
  return nullptr;
}

void BundleVariants::AddLocked(Variant variant, size_t bytes) const {
  if (variants_.size() >= kMaxVariants || variant_bytes_ + bytes > kMaxVariantBytes) {
    GF_LOG(WARNING) << "bundle " << params_.bundle << " at " << params_.commit.substr(0, 12) << ": "
                    << variants_.size() << " revisions built for cluster values (" << variant_bytes_
                    << " bytes) reach the bound of " << kMaxVariants << " revisions or "
                    << kMaxVariantBytes
                    << " bytes; all are dropped and built again as clusters ask";
    variants_.clear();
    by_read_.clear();
    by_id_.clear();
    read_nothing_ = nullptr;
    reference_ = nullptr;
    variant_bytes_ = 0;
  }
  const size_t index = variants_.size();
  std::vector<std::string> names = ReadNames(variant.read);
  by_read_[names].emplace(ReadKeyOf(names, variant.read), index);
  if (IsNotDeployed(variant.result.status())) leaves_some_out_ = true;
  if (variant.result.ok()) {
    by_id_.emplace((*variant.result)->id, index);
    if (variant.read.empty() && read_nothing_ == nullptr) read_nothing_ = *variant.result;
    if (template_ == nullptr && reference_ == nullptr) reference_ = *variant.result;
  }
  variant_bytes_ += bytes;
  variants_.push_back(std::move(variant));
}

absl::StatusOr<std::shared_ptr<const Revision>> BundleVariants::Build(
    const Values& values, bool* depends_on_values) const {
  ReadValues read;
  absl::StatusOr<ObjectSet> objects = template_ != nullptr
                                          ? SubstituteObjects(template_->objects, values, &read)
                                          : render_(values, &read);
  absl::StatusOr<std::shared_ptr<const Revision>> result = absl::UnknownError("not built");
  if (objects.ok()) {
    if (absl::Status s = CheckObjects(params_, *objects); !s.ok()) objects = s;
  }
  std::shared_ptr<const Revision> reference;  // renderer mode: the first variant, if any
  if (objects.ok() && template_ == nullptr) {
    {
      MutexLock lock(&mu_);
      reference = reference_;
    }
    if (reference != nullptr) objects = ShareWith(*objects, reference->objects);
  }
  // What it holds alone (outside the lock): the objects substitution changed, or that it
  // rendered unlike the reference variant.
  size_t bytes = 0;
  if (!objects.ok()) {
    result = objects.status();
  } else {
    const ObjectSet* shared = template_ != nullptr   ? &template_->objects
                              : reference != nullptr ? &reference->objects
                                                     : nullptr;
    bytes = OwnBytes(*objects, shared);
    result = Revision::Build(params_.bundle, params_.commit, params_.committed_time,
                             *std::move(objects), params_.sync, params_.target_namespace);
  }
  bool fresh = true;
  {
    MutexLock lock(&mu_);
    // Two callers may have built the same thing at once: keep the first.
    const std::vector<std::string> names = ReadNames(read);
    if (auto group = by_read_.find(names); group != by_read_.end()) {
      if (auto built = group->second.find(ReadKeyOf(names, read)); built != group->second.end()) {
        fresh = false;
        result = variants_[built->second].result;
      }
    }
    if (depends_on_values != nullptr) *depends_on_values = !read.empty();
    if (fresh) {
      AddLocked({read, result}, bytes);
      ++builds_;
    }
  }
  if (fresh && result.ok() && params_.on_new_revision) params_.on_new_revision(*result);
  return result;
}

absl::StatusOr<std::shared_ptr<const Revision>> BundleVariants::For(const v1::ClusterInfo& cluster,
                                                                    bool* depends_on_values) const {
  if (depends_on_values != nullptr) *depends_on_values = false;
  if (uniform_ != nullptr) return uniform_;
  Values values = ValuesFor(cluster);
  {
    MutexLock lock(&mu_);
    if (const Variant* variant = FindLocked(values)) {
      if (depends_on_values != nullptr) *depends_on_values = !variant->read.empty();
      return variant->result;
    }
  }
  return Build(values, depends_on_values);
}

std::optional<absl::StatusOr<std::shared_ptr<const Revision>>> BundleVariants::Built(
    const v1::ClusterInfo& cluster) const {
  if (uniform_ != nullptr) return uniform_;
  Values values = ValuesFor(cluster);
  MutexLock lock(&mu_);
  if (const Variant* variant = FindLocked(values)) return variant->result;
  return std::nullopt;
}

Values BundleVariants::ValuesFor(const v1::ClusterInfo& cluster) const {
  if (explicit_only_) return params_.values.ExplicitAndClusterFor(cluster);
  if (params_.cluster_context && render_) return params_.values.AllAndClusterFor(cluster);
  return params_.values.ForCluster(cluster);
}

uint64_t BundleVariants::builds() const {
  MutexLock lock(&mu_);
  return builds_;
}

bool BundleVariants::LeavesSomeOut() const {
  MutexLock lock(&mu_);
  return leaves_some_out_;
}

size_t BundleVariants::variant_bytes() const {
  MutexLock lock(&mu_);
  return variant_bytes_;
}

std::shared_ptr<const Revision> BundleVariants::Find(const std::string& id) const {
  if (uniform_ != nullptr) return uniform_->id == id ? uniform_ : nullptr;
  MutexLock lock(&mu_);
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : *variants_[it->second].result;
}

std::vector<std::string> BundleVariants::RevisionIds() const {
  if (uniform_ != nullptr) return {uniform_->id};
  std::vector<std::string> ids;
  absl::flat_hash_set<std::string> seen;  // a walk over ids is quadratic at fleet size
  MutexLock lock(&mu_);
  for (const Variant& variant : variants_) {
    if (!variant.result.ok()) continue;
    const std::string& id = (*variant.result)->id;
    if (seen.insert(id).second) ids.push_back(id);
  }
  return ids;
}

}  // namespace gitfleet
