#include "agent/state/state_store.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace gitfleet {

absl::StatusOr<std::string> BundleStateStore::PathFor(const std::string& bundle) const {
  bool ok = !bundle.empty() && bundle.size() <= 63;
  for (char c : bundle) ok &= absl::ascii_isalnum(c) || c == '-';
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("bundle name \"", bundle, "\" is not a DNS label"));
  }
  return absl::StrCat(dir_, "/bundles/", bundle, ".pb");
}

absl::StatusOr<BundleStateStore::Loaded> BundleStateStore::LoadAll() {
  std::string dir = absl::StrCat(dir_, "/bundles");
  absl::StatusOr<std::vector<std::string>> files = fs_->ListFiles(dir);
  if (!files.ok()) return files.status();
  Loaded loaded;
  for (const std::string& file : *files) {
    if (file.find('/') != std::string::npos) continue;
    std::string path = absl::StrCat(dir, "/", file);
    if (absl::StrContains(file, ".pb.tmp-")) {
      // A write a crash interrupted: the file it was to replace is still whole.
      if (absl::Status deleted = fs_->DeleteFile(path, ""); !deleted.ok()) {
        GF_LOG(WARNING) << "cannot delete stale temp file: " << deleted;
      }
      continue;
    }
    if (!absl::EndsWith(file, ".pb")) continue;
    absl::StatusOr<std::string> data = fs_->ReadFile(path);
    v1::AgentBundleRecord record;
    if (data.ok() && record.ParseFromString(*data) && !record.bundle().empty() &&
        absl::StrCat(record.bundle(), ".pb") == file) {
      loaded.records[record.bundle()] = std::move(record);
      continue;
    }
    // One bad file costs its bundle's record, not the agent: keep it for a post-mortem.
    std::string aside = absl::StrCat(path, ".corrupt");
    absl::Status moved = data.ok() ? fs_->WriteFileAtomically(aside, *data) : data.status();
    if (moved.ok()) moved = fs_->DeleteFile(path, "");
    GF_LOG(ERROR) << "state file " << path << " is corrupt"
                  << (moved.ok() ? absl::StrCat("; moved to ", aside)
                                 : absl::StrCat(" and cannot be moved aside: ", moved.message()))
                  << "; its bundle will be asked for again in full";
    loaded.moved_aside.push_back(path);
  }
  return loaded;
}

absl::StatusOr<std::string> BundleStateStore::LoadFleetId() {
  absl::StatusOr<std::string> data = fs_->ReadFile(absl::StrCat(dir_, "/fleet.pb"));
  if (absl::IsNotFound(data.status())) return std::string();
  if (!data.ok()) return data.status();
  v1::AgentFleetRecord record;
  if (!record.ParseFromString(*data)) {
    return absl::DataLossError(absl::StrCat(dir_,
                                            "/fleet.pb is corrupt; remove it to trust the "
                                            "next control plane the agent meets"));
  }
  return record.fleet_id();
}

absl::Status BundleStateStore::SaveFleetId(const std::string& fleet_id) {
  v1::AgentFleetRecord record;
  record.set_fleet_id(fleet_id);
  return fs_->WriteFileAtomically(absl::StrCat(dir_, "/fleet.pb"), record.SerializeAsString());
}

absl::Status BundleStateStore::Save(const v1::AgentBundleRecord& record) {
  absl::StatusOr<std::string> path = PathFor(record.bundle());
  if (!path.ok()) return path.status();
  return fs_->WriteFileAtomically(*path, record.SerializeAsString());
}

absl::Status BundleStateStore::Delete(const std::string& bundle) {
  absl::StatusOr<std::string> path = PathFor(bundle);
  if (!path.ok()) return path.status();
  return fs_->DeleteFile(*path, "");
}

}  // namespace gitfleet
