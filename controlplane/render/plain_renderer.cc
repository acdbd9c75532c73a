#include "controlplane/render/plain_renderer.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/manifest/hash.h"

namespace gitfleet {

absl::StatusOr<ObjectSet> PlainRenderer::Render(const RenderInput& input) {
  if (input.read_paths != nullptr) *input.read_paths = {input.path};
  ObjectSet set;
  size_t bytes = 0;
  const absl::Time deadline = absl::Now() + timeout_;
  int files_read = 0;
  const NonManifests non_manifests(input.path, input.files);
  for (const RepoFile& file : input.files) {
    if (!absl::EndsWith(file.path, ".yaml") && !absl::EndsWith(file.path, ".yml") &&
        !absl::EndsWith(file.path, ".json")) {
      continue;
    }
    if (std::string why = non_manifests.Why(file.path); !why.empty()) {
      // Removal is an explicit act: a file this walk read as manifests before it skipped
      // such files (a manifest kept in a dot-directory) stays in, or upgrading would prune
      // its objects. Only files that are not manifests at all are left out.
      if (!Parse(file).ok()) {
        if (input.notes != nullptr) {
          input.notes->push_back(absl::StrCat("skipped ", file.path, ": ", why));
        }
        continue;
      }
      if (input.notes != nullptr) {
        input.notes->push_back(
            absl::StrCat("kept ", file.path, " although it is ", why, ": it holds manifests"));
      }
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
  if (IsLfsPointer(file.content)) {
    return absl::InvalidArgumentError(
        absl::StrCat(file.path,
                     " is a Git LFS pointer, not the file: gitfleet does not fetch LFS content; "
                     "keep manifests in Git itself"));
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

namespace {

class PlainFactory : public RendererFactory {
 public:
  std::string name() const override { return "plain"; }
  bool takes_values() const override { return false; }
  bool reads_outside_path() const override { return false; }
  std::unique_ptr<Renderer> Create(const EngineOptions& options) const override {
    return std::make_unique<PlainRenderer>(options.limits, options.plain_cache_bytes,
                                           options.timeout);
  }
};

const bool kRegistered = RegisterRendererFactory(std::make_unique<PlainFactory>());

}  // namespace
}  // namespace gitfleet
