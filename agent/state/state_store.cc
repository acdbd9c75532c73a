#include "agent/state/state_store.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

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

absl::StatusOr<std::map<std::string, v1::AgentBundleRecord>> BundleStateStore::LoadAll() {
  std::string dir = absl::StrCat(dir_, "/bundles");
  absl::StatusOr<std::vector<std::string>> files = fs_->ListFiles(dir);
  if (!files.ok()) return files.status();
  std::map<std::string, v1::AgentBundleRecord> out;
  for (const std::string& file : *files) {
    if (!absl::EndsWith(file, ".pb") || file.find('/') != std::string::npos) continue;
    std::string path = absl::StrCat(dir, "/", file);
    absl::StatusOr<std::string> data = fs_->ReadFile(path);
    if (!data.ok()) return data.status();
    v1::AgentBundleRecord record;
    if (!record.ParseFromString(*data) || record.bundle().empty()) {
      return absl::DataLossError(absl::StrCat(
          "state file ", path, " is corrupt; move it away to resync that bundle in full"));
    }
    out[record.bundle()] = std::move(record);
  }
  return out;
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
