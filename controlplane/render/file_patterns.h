#ifndef GITFLEET_CONTROLPLANE_RENDER_FILE_PATTERNS_H_
#define GITFLEET_CONTROLPLANE_RENDER_FILE_PATTERNS_H_

// Which files of a bundle's folder a plain render reads: the bundle's --include and
// --exclude patterns (as Argo CD's directory include and exclude), and the .fleetignore
// and .sourceignore files Rancher Fleet and Flux repositories keep beside their manifests.
//
// A pattern is matched against a path relative to a folder (the bundle's, or the one an
// ignore file is in), as .gitignore matches:
//   - `*` and `?` stay within one name, `[a-z]` is a class, `**` spans folders;
//   - a pattern without a `/` matches a file or folder name at any depth
//     (`settings.yaml`, `*.json`, `test`);
//   - one with a `/` is anchored to the folder (`ci/*.yaml`, `/values.yaml`);
//   - a pattern that matches a folder matches everything in it; one ending in `/` matches
//     folders only (`test/`).
//
//   GF_ASSIGN_OR_RETURN(PathPatterns exclude, PathPatterns::Parse({"*.json", "test/"},
//   "--exclude")); if (exclude.Matches("ci/package.json")) ...

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "controlplane/source/git_repository.h"

namespace gitfleet {

class PathPattern {
 public:
  // InvalidArgument naming `what` and saying why: empty, over 256 bytes, a control
  // character, a `..` or `.` name, or a class left open.
  static absl::StatusOr<PathPattern> Parse(absl::string_view text, absl::string_view what);
  // Whether `relative` (a file's path relative to the pattern's folder) or a folder on
  // its way matches.
  bool Matches(absl::string_view relative) const;
  const std::string& text() const { return text_; }

 private:
  std::string text_;
  std::vector<std::string> parts_;  // split at '/'; "**" spans folders
  bool anchored_ = false;
  bool folders_only_ = false;
};

class PathPatterns {
 public:
  static constexpr size_t kMaxPatterns = 100;
  // Errors name `what` ("--exclude") and the pattern.
  static absl::StatusOr<PathPatterns> Parse(const std::vector<std::string>& texts,
                                            absl::string_view what);
  bool empty() const { return patterns_.empty(); }
  // The first pattern that matches `relative`, or null.
  const PathPattern* Match(absl::string_view relative) const;

 private:
  std::vector<PathPattern> patterns_;
};

// The ignore files a repository keeps for the tool that reads it, each applying to its own
// folder and those below it, as .gitignore does: `#` starts a comment, `!` un-ignores what
// an earlier line (or a file above) ignored, and the last line that matches decides.
//   - Rancher Fleet's .fleetignore, in a bundle's folder and below;
//   - Flux's .sourceignore, anywhere from the repository root down: source-controller
//     leaves what they name out of the whole repository, so one in a folder above the
//     bundle's counts too.
class IgnoreFiles {
 public:
  enum class Kind { kFleet, kFlux };
  static const char* FileName(Kind kind);
  // From the files of `kind` among `files` that apply to `path` (the bundle's folder):
  // InvalidArgument naming the file and line when one is over 64 KiB, they hold over
  // 1,000 patterns, or one is bad.
  static absl::StatusOr<IgnoreFiles> Read(const std::string& path,
                                          const std::vector<RepoFile>& files, Kind kind);
  // The repository paths of the .sourceignore files in the folders above `path` (the root
  // first): not among a bundle's own files, read for it (GitRepository::ReadFiles).
  static std::vector<std::string> SourceIgnoresAbove(const std::string& path);
  bool empty() const { return rules_.empty(); }
  // "" when `repo_path` is not ignored, else the file and line that ignore it
  // ("apps/web/.fleetignore: *.json").
  std::string Ignored(const std::string& repo_path) const;

 private:
  struct Rule {
    std::string folder;  // repository path of the ignore file's folder, "" for the root
    std::string file;
    PathPattern pattern;
    bool negated = false;
  };
  std::vector<Rule> rules_;  // from the shallowest file to the deepest, in line order
};

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_RENDER_FILE_PATTERNS_H_
