#ifndef GITFLEET_CONTROLPLANE_RENDER_ARCHIVE_H_
#define GITFLEET_CONTROLPLANE_RENDER_ARCHIVE_H_

// Archives fetched from outside the repository: a chart's archive, and the archive a
// `fleet.yaml`'s `helm.chart` URL names (a release's `.tar.gz`, a GitHub archive of a
// repository, a `.zip`), which Fleet unpacks whatever its compression. Every input comes
// from a server gitfleet does not control, so each is bounded: what it unpacks to, the
// number of files, and no path leaves the archive.
//
//   GF_ASSIGN_OR_RETURN(std::vector<RepoFile> files,
//                       UnpackArchive(body, {.max_bytes = 64 << 20, .max_files = 10000}));
//   GF_ASSIGN_OR_RETURN(files, ArchiveFolder(std::move(files), "*/charts/web"));
//   // files: Chart.yaml, templates/..., paths inside charts/web

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "controlplane/source/git_repository.h"

namespace gitfleet {

// Whether `name` (a file's name, or a URL's path) ends as the archives go-getter unpacks do
// for Fleet (.tgz, .tar.gz, .tar.bz2, .tar.xz, .tar.zst, .tar, .zip and their short forms),
// case aside.
bool NamesArchive(absl::string_view name);

struct ArchiveBounds {
  size_t max_bytes = 64 << 20;  // the files' content, unpacked
  size_t max_files = 10000;
};

// The files of `archive`, its format read from its first bytes (not from a name, which a
// download URL may not have): tar, as it is or compressed with gzip, bzip2, xz or zstd,
// or zip (stored or deflated). Paths are relative to the archive's top ("./" taken off);
// only regular files are kept (folders, links and devices are passed over, as helm's
// archive loader passes them over). InvalidArgument for what is no such archive, one that
// is damaged or cut short, an encrypted zip entry, or a path that leaves the archive
// (absolute, or through ".."); ResourceExhausted past a bound.
absl::StatusOr<std::vector<RepoFile>> UnpackArchive(const std::string& archive,
                                                    const ArchiveBounds& bounds);

// The folder of an archive's `files` that go-getter's subdirectory `pattern` names (the
// part of a URL after its "//": "charts/web", or with shell patterns in its parts,
// "*/charts/web", as a GitHub archive's top folder `REPO-REF/` is written): its files,
// their paths relative to it. NotFound naming the pattern when no folder matches it;
// InvalidArgument when it is not a relative path, or several folders match (naming two),
// as go-getter refuses both.
absl::StatusOr<std::vector<RepoFile>> ArchiveFolder(std::vector<RepoFile> files,
                                                    absl::string_view pattern);

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_RENDER_ARCHIVE_H_
