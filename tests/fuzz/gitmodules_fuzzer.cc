// A commit's .gitmodules (any repository's content) and the submodule URLs it names,
// resolved against the source's URL, and the --git-credentials prefix each would get; and
// the other repository files the Git layer reads for itself: .lfsconfig (the LFS server it
// names) and Git LFS pointers; and what an SSH Git host answers git-lfs-authenticate.
#include <cstdint>
#include <string>
#include <vector>

#include "controlplane/source/git_credentials.h"
#include "controlplane/source/lfs.h"
#include "controlplane/source/submodules.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<std::vector<gitfleet::Submodule>> parsed = gitfleet::ParseGitmodules(text);
  if (parsed.ok()) {
    for (const gitfleet::Submodule& submodule : *parsed) {
      for (const char* base : {"https://git.example.com/org/app.git", "/srv/git/app"}) {
        absl::StatusOr<std::string> url = gitfleet::SubmoduleUrl(base, submodule.url);
        if (url.ok()) {
          (void)gitfleet::UrlHost(*url);
          (void)gitfleet::CredentialForUrl(
              {{"https://git.example.com/", "a"}, {"ssh://git.example.com/org/", "b"}}, *url);
        }
      }
    }
  }
  // The text as a base URL too: a nested submodule's base is a URL resolved before.
  (void)gitfleet::SubmoduleUrl(text, "../../x.git");
  (void)gitfleet::UrlHost(text);
  absl::StatusOr<gitfleet::CredentialPrefixes> prefixes =
      gitfleet::ParseCredentialPrefixes({text, text + "=x"});
  if (prefixes.ok()) (void)gitfleet::CredentialForUrl(*prefixes, text);
  const std::string lfs_url = gitfleet::LfsConfigUrl(text);
  (void)gitfleet::LfsEndpoint("https://git.example.com/org/app", lfs_url);
  (void)gitfleet::LfsEndpoint(text, "");
  (void)gitfleet::ParseLfsPointer(text);
  (void)gitfleet::ParseLfsAuthenticate(text);
  (void)gitfleet::LfsAuthenticateCommand(text);
  (void)gitfleet::LfsAuthenticateCommand("ssh://git@host/" + text);
  return 0;
}
