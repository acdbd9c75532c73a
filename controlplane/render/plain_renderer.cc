#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/manifest/hash.h"
#include "controlplane/render/renderer.h"

namespace gitfleet {

absl::Status AddObjects(const std::string& bundle, const std::string& origin,
                        std::vector<v1::ManifestObject> objects, const RenderLimits& limits,
                        ObjectSet* set, size_t* bytes) {
  for (v1::ManifestObject& object : objects) {
    *bytes += object.yaml().size();
    absl::Status added = set->Add(std::move(object), origin);
    if (!added.ok()) return absl::InvalidArgumentError(added.message());
    if (set->size() > limits.max_objects) {
      return absl::ResourceExhaustedError(absl::StrCat("bundle ", bundle, " renders more than ",
                                                       limits.max_objects, " objects (at ", origin,
                                                       ")"));
    }
    if (*bytes > limits.max_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "bundle ", bundle, " renders more than ", limits.max_bytes, " bytes (at ", origin, ")"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<ObjectSet> ObjectsFromToolOutput(const std::string& bundle,
                                                const std::string& origin, const std::string& text,
                                                const RenderLimits& limits) {
  absl::StatusOr<std::vector<v1::ManifestObject>> objects = ParseManifests(text, origin);
  if (!objects.ok()) return objects.status();
  ObjectSet set;
  size_t bytes = 0;
  absl::Status added = AddObjects(bundle, origin, *std::move(objects), limits, &set, &bytes);
  if (!added.ok()) return added;
  return set;
}

std::string DetectEngine(const std::string& path, const std::vector<RepoFile>& files) {
  std::string prefix = path.empty() ? "" : path + "/";
  auto has = [&](const char* name) {
    for (const RepoFile& file : files) {
      if (file.path == prefix + name) return true;
    }
    return false;
  };
  if (has("kustomization.yaml") || has("kustomization.yml") || has("Kustomization")) {
    return "kustomize";
  }
  if (has("Chart.yaml")) return "helm";
  if (!JsonnetEntryFiles(path, files).empty()) return "jsonnet";
  return "plain";
}

absl::StatusOr<ObjectSet> PlainRenderer::Render(const RenderInput& input) {
  if (input.read_paths != nullptr) *input.read_paths = {input.path};
  ObjectSet set;
  size_t bytes = 0;
  const absl::Time deadline = absl::Now() + timeout_;
  int files_read = 0;
  for (const RepoFile& file : input.files) {
    if (!absl::EndsWith(file.path, ".yaml") && !absl::EndsWith(file.path, ".yml") &&
        !absl::EndsWith(file.path, ".json")) {
      continue;
    }
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "bundle ", input.bundle, ": the plain render took longer than ",
          absl::FormatDuration(timeout_), " (", files_read, " files read, stopped before ",
          file.path, "); raise --render-timeout-seconds or split the bundle"));
    }
    ++files_read;
    absl::StatusOr<Parsed> objects = Parse(file);
    if (!objects.ok()) return objects.status();
    absl::Status added = AddObjects(input.bundle, file.path, **objects, limits_, &set, &bytes);
    if (!added.ok()) return added;
  }
  return set;
}

absl::StatusOr<PlainRenderer::Parsed> PlainRenderer::Parse(const RepoFile& file) {
  Sha256 digest;
  digest.UpdateField(file.path);  // errors and origins name the path
  digest.UpdateField(file.content);
  std::string key = digest.FinishHex();
  {
    MutexLock lock(&mu_);
    auto it = current_.find(key);
    if (it != current_.end()) {
      ++hits_;
      return it->second;
    }
    it = previous_.find(key);
    if (it != previous_.end()) {
      ++hits_;
      Parsed parsed = it->second;
      current_bytes_ += file.content.size();
      current_.emplace(std::move(key), parsed);
      return parsed;
    }
  }
  // Parsed outside the lock; errors are not kept (a bad file fails its render anyway).
  absl::StatusOr<std::vector<v1::ManifestObject>> objects = ParseManifests(file.content, file.path);
  if (!objects.ok()) return objects.status();
  auto parsed = std::make_shared<const std::vector<v1::ManifestObject>>(*std::move(objects));
  MutexLock lock(&mu_);
  ++parsed_;
  if (file.content.size() > cache_bytes_ / 2) return parsed;
  if (current_bytes_ + file.content.size() > cache_bytes_ / 2) {
    previous_ = std::move(current_);
    current_.clear();
    current_bytes_ = 0;
  }
  current_bytes_ += file.content.size();
  current_.emplace(std::move(key), parsed);
  return parsed;
}

int64_t PlainRenderer::parsed_files() const {
  MutexLock lock(&mu_);
  return parsed_;
}

int64_t PlainRenderer::cached_files() const {
  MutexLock lock(&mu_);
  return hits_;
}

}  // namespace gitfleet
