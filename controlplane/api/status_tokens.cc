#include "controlplane/api/status_tokens.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "controlplane/source/git_credentials.h"
#include "controlplane/source/github_app.h"

namespace gitfleet {
namespace {

constexpr char kGitHubApi[] = "https://api.github.com";

std::string Where(const NotifySink& sink) {
  return absl::StrCat("--notify-file line ", sink.line, "'s ");
}

// The token `credential` gives `sink` (minting a GitHub App's), or why it gives none.
absl::StatusOr<std::string> FromCredential(const NotifySink& sink, GitCredential credential,
                                           absl::Duration timeout) {
  using Format = NotifySink::Format;
  if (credential.github_app.has_value()) {
    if (sink.format != Format::kGitHub) {
      return absl::InvalidArgumentError(absl::StrCat(
          "credential ", credential.name, " is a GitHub App's, and this sink is not GitHub's"));
    }
    GitHubApp app = *credential.github_app;
    // A credential naming no API mints where the sink posts (GitHub Enterprise Server's).
    if (app.base_url == kGitHubApi) app.base_url = sink.api_url;
    absl::StatusOr<GitHubAppToken> token = FetchGitHubAppToken(app, timeout);
    if (!token.ok()) return token.status();
    return token->token;
  }
  if (credential.has_bearer_token()) return credential.bearer_token;
  if (credential.has_password()) {
    const bool both =
        (sink.format == Format::kBitbucket || sink.format == Format::kBitbucketServer ||
         sink.format == Format::kAzureDevOps) &&
        !credential.username.empty();
    return both ? absl::StrCat(credential.username, ":", credential.password) : credential.password;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("credential ", credential.name,
                   " holds no token: give it a password, a bearerToken or a GitHub App"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<StatusTokens>> StatusTokens::Open(
    const std::vector<NotifySink>& sinks, std::string credentials_dir, absl::Duration timeout) {
  std::unique_ptr<StatusTokens> tokens(new StatusTokens(std::move(credentials_dir), timeout));
  for (const NotifySink& sink : sinks) {
    if (!sink.commit_statuses()) continue;
    if (!sink.token_file.empty()) {
      SecretFile::Options options;
      options.what = absl::StrCat(Where(sink), "token-file");
      options.min_length = 8;
      options.max_secrets = 1;
      if (tokens->files_.count(sink.token_file) > 0) continue;
      absl::StatusOr<std::unique_ptr<SecretFile>> file = SecretFile::Open(sink.token_file, options);
      if (!file.ok()) return file.status();
      tokens->files_[sink.token_file] = *std::move(file);
      continue;
    }
    if (tokens->credentials_dir_.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(Where(sink), "credential=", sink.credential,
                       ": the control plane has no --credentials-dir to find it in"));
    }
    absl::StatusOr<GitCredential> credential =
        LoadGitCredential(tokens->credentials_dir_, sink.credential);
    if (!credential.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(Where(sink), credential.status().message()));
    }
    // What needs no network is judged now; a GitHub App's token is minted at the first post.
    if (credential->github_app.has_value() && sink.format != NotifySink::Format::kGitHub) {
      return absl::InvalidArgumentError(
          absl::StrCat(Where(sink), "credential ", sink.credential,
                       " is a GitHub App's, and this sink is not GitHub's"));
    }
    if (!credential->github_app.has_value()) {
      absl::StatusOr<std::string> token = FromCredential(sink, *std::move(credential), timeout);
      if (!token.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(Where(sink), token.status().message()));
      }
    }
  }
  return tokens;
}

absl::StatusOr<std::string> StatusTokens::Token(const NotifySink& sink) {
  if (!sink.token_file.empty()) {
    // By its path, not its line: a sink of a file read before (its worker stopping) is not
    // sent another line's token.
    auto file = files_.find(sink.token_file);
    if (file == files_.end()) {
      return absl::UnavailableError(
          absl::StrCat(Where(sink), "token-file is not one this --notify-file names now"));
    }
    return file->second->Current()->front();
  }
  absl::StatusOr<GitCredential> credential = LoadGitCredential(credentials_dir_, sink.credential);
  if (!credential.ok()) {
    // Being replaced, say (a Secret's mount): asked again at the next post.
    return absl::UnavailableError(credential.status().message());
  }
  absl::StatusOr<std::string> token = FromCredential(sink, *std::move(credential), timeout_);
  if (!token.ok() && absl::IsInvalidArgument(token.status())) {
    return absl::UnavailableError(token.status().message());
  }
  return token;
}

}  // namespace gitfleet
