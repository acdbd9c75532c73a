#ifndef GITFLEET_CONTROLPLANE_API_STATUS_TOKENS_H_
#define GITFLEET_CONTROLPLANE_API_STATUS_TOKENS_H_

// The tokens commit-status sinks post with. A sink's `token-file=PATH` is read again as it
// changes; its `credential=NAME` is the --credentials-dir credential of that name, as
// sources use them, read at each post (a rotated Secret is followed): a GitHub App's
// installation token (minted at the App's API, or the sink's GitHub Enterprise API when
// the credential names none, and kept until 5 minutes before it expires), its bearerToken,
// or its username and password (the password as the token; Bitbucket's and Azure DevOps'
// sinks send both, USER:PASSWORD).
//
//   GF_ASSIGN_OR_RETURN(std::unique_ptr<StatusTokens> tokens,
//                       StatusTokens::Open(sinks, credentials_dir, absl::Seconds(30)));
//   options.token = [&](const NotifySink& sink) { return tokens->Token(sink); };
//
// Thread-safe.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "controlplane/api/secret_file.h"
#include "controlplane/events/notifier.h"

namespace gitfleet {

class StatusTokens {
 public:
  // Reads every commit-status sink's token file and credential once: one that cannot give
  // a token is an error now, naming the notify file's line, not at the first post (a
  // missing file or credential, no --credentials-dir, a credential holding no token, a
  // GitHub App for another host than GitHub).
  static absl::StatusOr<std::unique_ptr<StatusTokens>> Open(const std::vector<NotifySink>& sinks,
                                                            std::string credentials_dir,
                                                            absl::Duration timeout);

  // `sink`'s token now. Unavailable (or the API's refusal, for a GitHub App) when it
  // cannot be had: the post is tried again later.
  absl::StatusOr<std::string> Token(const NotifySink& sink);

 private:
  StatusTokens(std::string credentials_dir, absl::Duration timeout)
      : credentials_dir_(std::move(credentials_dir)), timeout_(timeout) {}

  const std::string credentials_dir_;
  const absl::Duration timeout_;
  std::map<std::string, std::unique_ptr<SecretFile>> files_;  // by path; set in Open alone
};

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_API_STATUS_TOKENS_H_
