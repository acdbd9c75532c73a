#include "controlplane/render/checkout.h"

#include <stdlib.h>
#include <sys/stat.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/file_system.h"

namespace gitfleet {
namespace {

bool SafeRelativePath(const std::string& path) {
  if (path.empty() || path[0] == '/') return false;
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part.empty() || part == "." || part == "..") return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Checkout>> Checkout::Write(const std::string& parent,
                                                          const std::vector<RepoFile>& files) {
  for (const RepoFile& file : files) {
    if (!SafeRelativePath(file.path)) {
      return absl::InvalidArgumentError(
          absl::StrCat("refusing repository path \"", file.path, "\""));
    }
  }
  for (size_t i = 1; i <= parent.size(); ++i) {
    if (i == parent.size() || parent[i] == '/') mkdir(parent.substr(0, i).c_str(), 0700);
  }
  std::string tmpl = parent + "/render-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) {
    return absl::InternalError(absl::StrCat("cannot create a scratch directory under ", parent));
  }
  std::unique_ptr<Checkout> checkout(new Checkout(tmpl));
  for (const RepoFile& file : files) {
    absl::Status written =
        PosixFileSystem().WriteFileAtomically(checkout->root() + "/" + file.path, file.content);
    if (!written.ok()) return written;
  }
  return checkout;
}

Checkout::~Checkout() { RemoveRecursively(path_).IgnoreError(); }

}  // namespace gitfleet
