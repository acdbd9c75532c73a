#include "common/model/revision.h"

#include <algorithm>
#include <map>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "common/proto_time.h"

namespace gitfleet {

std::shared_ptr<const Revision> Revision::Build(std::string bundle, std::string commit,
                                                absl::Time committed_time, ObjectSet objects,
                                                v1::SyncOptions sync,
                                                std::string target_namespace) {
  // The bundle's own namespace, else the one its source declares.
  if (target_namespace.empty()) target_namespace = objects.default_namespace();
  // The bundle's own fields left to others, then those its source declares (each once).
  for (const v1::IgnoreDifference& declared : objects.ignore_differences()) {
    const std::string wire = declared.SerializeAsString();
    if (std::none_of(
            sync.ignore_differences().begin(), sync.ignore_differences().end(),
            [&](const v1::IgnoreDifference& rule) { return rule.SerializeAsString() == wire; })) {
      *sync.add_ignore_differences() = declared;
    }
  }
  if (objects.keep_on_removal()) sync.set_keep_on_removal(true);
  // The account the source asks for, when the bundle names none (its own, or its scope's).
  if (sync.service_account().empty()) sync.set_service_account(objects.declared_service_account());
  // The namespace metadata the source declares, under the bundle's own: a key once, sorted.
  auto merge = [](const std::vector<std::string>& declared,
                  google::protobuf::RepeatedPtrField<std::string>* own) {
    if (declared.empty()) return;
    std::map<std::string, std::string> by_key;
    for (const std::string& entry : declared) by_key[entry.substr(0, entry.find('='))] = entry;
    for (const std::string& entry : *own) by_key[entry.substr(0, entry.find('='))] = entry;
    own->Clear();
    for (auto& [key, entry] : by_key) own->Add(std::move(entry));
  };
  merge(objects.namespace_labels(), sync.mutable_namespace_labels());
  merge(objects.namespace_annotations(), sync.mutable_namespace_annotations());
  auto rev = std::make_shared<Revision>();
  rev->id = ComputeRevision(objects, sync, target_namespace);
  rev->bundle = std::move(bundle);
  rev->commit = std::move(commit);
  rev->committed_time = committed_time;
  rev->objects = std::move(objects);
  rev->sync = sync;
  rev->target_namespace = std::move(target_namespace);
  return rev;
}

v1::RevisionRecord Revision::ToRecord() const {
  v1::RevisionRecord record;
  record.set_bundle(bundle);
  record.set_revision(id);
  record.set_commit(commit);
  *record.mutable_committed_time() = ToProtoTime(committed_time);
  for (const auto& [key, object] : objects.objects()) *record.add_objects() = *object;
  *record.mutable_sync() = sync;
  record.set_target_namespace(target_namespace);
  *record.mutable_declared_ignore_differences() = objects.ignore_differences();
  record.set_declared_keep_on_removal(objects.keep_on_removal());
  record.set_declared_service_account(objects.declared_service_account());
  for (const std::string& label : objects.namespace_labels()) {
    record.add_declared_namespace_labels(label);
  }
  for (const std::string& annotation : objects.namespace_annotations()) {
    record.add_declared_namespace_annotations(annotation);
  }
  return record;
}

absl::StatusOr<std::shared_ptr<const Revision>> Revision::FromRecord(
    const v1::RevisionRecord& record) {
  ObjectSet objects;
  for (const v1::ManifestObject& object : record.objects()) objects.Put(object);
  *objects.mutable_ignore_differences() = record.declared_ignore_differences();
  objects.set_keep_on_removal(record.declared_keep_on_removal());
  objects.set_declared_service_account(record.declared_service_account());
  objects.set_namespace_metadata(
      {record.declared_namespace_labels().begin(), record.declared_namespace_labels().end()},
      {record.declared_namespace_annotations().begin(),
       record.declared_namespace_annotations().end()});
  auto rev = Build(record.bundle(), record.commit(), FromProtoTime(record.committed_time()),
                   std::move(objects), record.sync(), record.target_namespace());
  if (rev->id != record.revision()) {
    return absl::DataLossError(absl::StrCat("stored revision ", record.revision(), " of bundle ",
                                            record.bundle(), " does not match its content"));
  }
  return rev;
}

namespace {

class SingleRevisionContent : public BundleContent {
 public:
  explicit SingleRevisionContent(std::shared_ptr<const Revision> revision)
      : revision_(std::move(revision)) {}
  const std::string& commit() const override { return revision_->commit; }
  absl::Time committed_time() const override { return revision_->committed_time; }
  std::shared_ptr<const Revision> Uniform() const override { return revision_; }
  std::optional<absl::StatusOr<std::shared_ptr<const Revision>>> Built(
      const v1::ClusterInfo&) const override {
    return revision_;
  }
  std::shared_ptr<const Revision> Find(const std::string& id) const override {
    return id == revision_->id ? revision_ : nullptr;
  }

 private:
  const std::shared_ptr<const Revision> revision_;
};

}  // namespace

namespace {
// The payload that marks a cluster left out (its value is never read).
constexpr absl::string_view kNotDeployedPayload = "type.gitfleet.dev/not-deployed";
}  // namespace

absl::Status NotDeployedHere(absl::string_view why) {
  absl::Status status = absl::InvalidArgumentError(why);
  status.SetPayload(kNotDeployedPayload, absl::Cord("1"));
  return status;
}

bool IsNotDeployed(const absl::Status& status) {
  return !status.ok() && status.GetPayload(kNotDeployedPayload).has_value();
}

std::shared_ptr<const BundleContent> SingleRevision(std::shared_ptr<const Revision> revision) {
  if (revision == nullptr) return nullptr;
  return std::make_shared<SingleRevisionContent>(std::move(revision));
}

}  // namespace gitfleet
