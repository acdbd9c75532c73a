#ifndef GITFLEET_CONTROLPLANE_SOURCE_SUBMODULES_H_
#define GITFLEET_CONTROLPLANE_SOURCE_SUBMODULES_H_

// What a commit's .gitmodules says, and where its submodules may be fetched from.
//
//   GF_ASSIGN_OR_RETURN(std::vector<Submodule> subs, ParseGitmodules(text));
//   GF_ASSIGN_OR_RETURN(std::string url, SubmoduleUrl("https://h/org/app.git", subs[0].url));
//   // "../lib.git" -> "https://h/org/lib.git"
//
// Pure functions; no I/O.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace gitfleet {

struct Submodule {
  std::string name;    // the section's: [submodule "NAME"]
  std::string path;    // where its gitlink is in the commit's tree
  std::string url;     // as written: absolute, scp-like (git@host:org/x) or relative (../x)
  std::string update;  // "none": not checked out by `git submodule update --init` either
};

// .gitmodules' sections, in file order, those with a path and a url (Git skips the
// others too). Git's config syntax: [submodule "name"] headers, keys in any case,
// values quoted or not with \" \\ \n \t escapes, # and ; comments, a trailing backslash
// continuing a line. At most 64 KiB and 1,000 sections; past them, or a line Git could
// not read, InvalidArgument naming the line.
absl::StatusOr<std::vector<Submodule>> ParseGitmodules(absl::string_view text);

// A submodule's URL as a fetch takes it: one relative to the superproject ("./x",
// "../x") resolved against `base` (the URL of the repository whose .gitmodules names it)
// as Git resolves it, each "../" taking off one part of `base`'s path; an scp-like one
// ("git@host:org/x.git") written as ssh://git@host/org/x.git. Anything else is returned
// as written, for CheckSourceUrl to judge. InvalidArgument when "../" climbs above the
// host, or the URL is empty or holds a control character.
absl::StatusOr<std::string> SubmoduleUrl(absl::string_view base, absl::string_view url);

// The host a URL names, lower case, without user or port ("" for a local path or
// file://): a credential is sent to submodules on its source's host only.
std::string UrlHost(absl::string_view url);

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_SOURCE_SUBMODULES_H_
