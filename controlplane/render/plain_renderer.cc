#include "controlplane/render/plain_renderer.h"

#include <algorithm>
#include <map>
#include <tuple>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/manifest/hash.h"
#include "common/names.h"
#include "controlplane/render/file_patterns.h"
#include "controlplane/render/fleet_overlays.h"

namespace gitfleet {

absl::StatusOr<ObjectSet> PlainRenderer::Render(const RenderInput& input) {
  if (input.read_paths != nullptr) {
    // The .sourceignore files above the folder too: one added, changed or removed there
    // changes what is read.
    *input.read_paths = {input.path};
    for (std::string& above : IgnoreFiles::SourceIgnoresAbove(input.path)) {
      input.read_paths->push_back(std::move(above));
    }
  }
  ObjectSet set;
  size_t bytes = 0;
  const absl::Time deadline = RealClock().Now() + timeout_;
  int files_read = 0;
  const std::string prefix = input.path.empty() ? "" : input.path + "/";
  // A Fleet folder's overlays/ is Fleet's yaml overlays: applied, or left out.
  const std::vector<RepoFile>* files = &input.files;
  std::vector<RepoFile> overlaid;
  if (input.fleet_overlays_folder &&
      (!input.fleet_overlays.empty() ||
       std::any_of(input.files.begin(), input.files.end(), [&](const RepoFile& file) {
         return absl::StartsWith(file.path, prefix + "overlays/");
       }))) {
    absl::StatusOr<std::vector<RepoFile>> applied =
        ApplyFleetOverlays(input.path, input.files, input.fleet_overlays, input.notes);
    if (!applied.ok()) return applied.status();
    overlaid = *std::move(applied);
    files = &overlaid;
  }
  const NonManifests non_manifests(input.path, *files);
  absl::StatusOr<PathPatterns> include = PathPatterns::Parse(input.include, "--include");
  if (!include.ok()) return include.status();
  absl::StatusOr<PathPatterns> exclude = PathPatterns::Parse(input.exclude, "--exclude");
  if (!exclude.ok()) return exclude.status();
  absl::StatusOr<IgnoreFiles> fleet_ignore =
      IgnoreFiles::Read(input.path, *files, IgnoreFiles::Kind::kFleet);
  if (!fleet_ignore.ok()) return fleet_ignore.status();
  absl::StatusOr<IgnoreFiles> source_ignore =
      IgnoreFiles::Read(input.path, *files, IgnoreFiles::Kind::kFlux);
  if (!source_ignore.ok()) return source_ignore.status();
  // What the bundle's patterns left out, told in one note each (a folder of many files).
  std::vector<std::string> excluded, not_included;
  // The files of each subfolder that is a bundle of its own in Fleet, by folder.
  std::map<std::string, std::vector<std::string>> fleet_bundles;
  for (const RepoFile& file : *files) {
    // (The .sourceignore files above the folder are among the files too, and skipped here.)
    if (!absl::StartsWith(file.path, prefix) ||
        (!absl::EndsWith(file.path, ".yaml") && !absl::EndsWith(file.path, ".yml") &&
         !absl::EndsWith(file.path, ".json"))) {
      continue;
    }
    const absl::string_view relative = absl::string_view(file.path).substr(prefix.size());
    // The operator's own choice: no file of it is read, manifests or not.
    if (exclude->Match(relative) != nullptr) {
      excluded.push_back(file.path);
      continue;
    }
    if (!include->empty() && include->Match(relative) == nullptr) {
      not_included.push_back(file.path);
      continue;
    }
    // Fleet makes a subfolder with its own fleet.yaml a bundle of its own, and leaves it out
    // of this one. A bundle rendered before gitfleet did so keeps its manifests.
    if (std::string folder = non_manifests.FleetBundleOf(file.path); !folder.empty()) {
      std::vector<std::string>& of_folder = fleet_bundles[folder];
      if (input.reads_fleet_bundle_layout) {
        of_folder.push_back(file.path);
        continue;
      }
      if (Parse(file).ok()) of_folder.push_back(file.path);
    }
    std::string why = non_manifests.Why(file.path);
    // What the repository's authors leave out for Fleet or for Flux. A bundle rendered
    // before gitfleet read such files keeps a manifest they name (an upgrade never prunes).
    bool skipped = false;
    for (const auto& [ignore, reads, kind] :
         {std::tuple{&*fleet_ignore, input.reads_fleetignore, IgnoreFiles::Kind::kFleet},
          std::tuple{&*source_ignore, input.reads_sourceignore, IgnoreFiles::Kind::kFlux}}) {
      std::string by = ignore->Ignored(file.path);
      if (by.empty()) continue;
      if (reads) {
        if (input.notes != nullptr) {
          input.notes->push_back(absl::StrCat("skipped ", file.path, ": ignored by ", by));
        }
        skipped = true;
        break;
      }
      if (why.empty()) {
        why = absl::StrCat("ignored by ", by, " (this bundle was rendered before gitfleet read ",
                           IgnoreFiles::FileName(kind), "; --exclude leaves it out)");
      }
    }
    if (skipped) continue;
    if (!why.empty()) {
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
    if (RealClock().Now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "bundle ", input.bundle, ": the plain render took longer than ",
          absl::FormatDuration(timeout_), " (", files_read, " files read, stopped before ",
          file.path, "); raise --render-timeout-seconds or split the bundle"));
    }
    ++files_read;
    absl::StatusOr<Parsed> objects = Parse(file);
    if (!objects.ok()) {
      // A repository that keeps other YAML or JSON beside its manifests.
      return absl::Status(objects.status().code(),
                          absl::StrCat(objects.status().message(),
                                       " (if it is not a manifest, leave it out with the "
                                       "bundle's --exclude=",
                                       relative, ", or a .fleetignore or .sourceignore line)"));
    }
    absl::Status added = AddObjects(input.bundle, file.path, **objects, limits_, &set, &bytes);
    if (!added.ok()) return added;
  }
  if (input.notes != nullptr) {
    for (const auto& [folder, in_folder] : fleet_bundles) {
      if (in_folder.empty()) continue;
      const std::string count =
          absl::StrCat(in_folder.size(), in_folder.size() == 1 ? " file (" : " files (",
                       ListNames(in_folder, 3), ")");
      const absl::string_view relative = absl::string_view(folder).substr(prefix.size());
      input.notes->push_back(
          input.reads_fleet_bundle_layout
              ? absl::StrCat("left out ", folder, "/, ", count,
                             ": it holds its own Fleet bundle options, which make it a bundle of "
                             "its own, as Fleet makes it; add it as one (--path=",
                             folder, ")")
              : absl::StrCat("kept the manifests of ", folder, "/, ", count,
                             ", although it holds its own Fleet bundle options (a bundle of its "
                             "own in Fleet): this bundle was rendered before gitfleet left such "
                             "folders out, and keeps them (an upgrade never prunes); "
                             "--exclude=",
                             relative, "/** leaves them out"));
    }
    for (const auto& [files, how] :
         {std::pair{&excluded, "left out by --exclude"},
          std::pair{&not_included, "left out: no --include pattern matches them"}}) {
      if (files->empty()) continue;
      input.notes->push_back(absl::StrCat(how, ": ", files->size(),
                                          files->size() == 1 ? " file (" : " files (",
                                          ListNames(*files, 3), ")"));
    }
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
                     " is a Git LFS pointer, not the file: give the source --lfs to read files "
                     "kept in Git LFS (one past the read limits stays a pointer)"));
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
  std::vector<std::string> FilesAbove(const std::string& path) const override {
    return IgnoreFiles::SourceIgnoresAbove(path);
  }
  std::unique_ptr<Renderer> Create(const EngineOptions& options) const override {
    return std::make_unique<PlainRenderer>(options.limits, options.plain_cache_bytes,
                                           options.timeout);
  }
};

const bool kRegistered = RegisterRendererFactory(std::make_unique<PlainFactory>());

}  // namespace
}  // namespace gitfleet
