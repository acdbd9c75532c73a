#include "controlplane/source/openssh_transport.h"

#include <git2/sys/transport.h>

#include <algorithm>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "controlplane/source/timed_stream.h"

namespace gitfleet {
namespace {

int Fail(const absl::Status& status) {
  git_error_set_str(GIT_ERROR_SSH, std::string(status.message()).c_str());
  return -1;
}

// Why a wait must end now (cancelled, or past the fetch's deadline); OK otherwise.
absl::Status Stopped(const std::string& host) {
  if (FetchesCancelled()) {
    return absl::CancelledError("the fetch was cancelled: the control plane is stopping");
  }
  if (RealClock().Now() >= CurrentFetchDeadline()) {
    return absl::DeadlineExceededError(
        absl::StrCat("timed out reading from ", host,
                     " (--fetch-timeout-seconds): the server stopped answering"));
  }
  return absl::OkStatus();
}

// The next slice of a wait: 100 ms at most, so that a cancel is seen soon.
absl::Time Slice() {
  return std::min(CurrentFetchDeadline(), RealClock().Now() + absl::Milliseconds(100));
}

struct Subtransport;

struct Stream {
  git_smart_subtransport_stream parent;  // first: libgit2 hands this pointer back
  Subtransport* owner = nullptr;
  std::unique_ptr<OpenSshConnection> connection;
  std::string host;
};

struct Subtransport {
  git_smart_subtransport parent;  // first
  const OpenSshFetch* fetch = nullptr;
  Stream* current = nullptr;
};

int StreamRead(git_smart_subtransport_stream* base, char* buffer, size_t size, size_t* read) {
  auto* stream = reinterpret_cast<Stream*>(base);
  *read = 0;
  while (true) {
    if (absl::Status stop = Stopped(stream->host); !stop.ok()) return Fail(stop);
    absl::StatusOr<size_t> n = stream->connection->Read(buffer, size, Slice());
    if (!n.ok() && absl::IsDeadlineExceeded(n.status())) continue;
    if (!n.ok()) return Fail(n.status());
    if (*n == 0) {
      // Its end: an error when ssh or git-upload-pack failed (libgit2 would say only
      // "early EOF").
      absl::Status finished = stream->connection->Finish(RealClock().Now() + absl::Seconds(5));
      if (!finished.ok()) return Fail(finished);
    }
    *read = *n;
    return 0;
  }
}

int StreamWrite(git_smart_subtransport_stream* base, const char* buffer, size_t length) {
  auto* stream = reinterpret_cast<Stream*>(base);
  if (absl::Status stop = Stopped(stream->host); !stop.ok()) return Fail(stop);
  absl::Status written =
      stream->connection->Write(absl::string_view(buffer, length), CurrentFetchDeadline());
  return written.ok() ? 0 : Fail(written);
}

void StreamFree(git_smart_subtransport_stream* base) {
  auto* stream = reinterpret_cast<Stream*>(base);
  if (stream->owner != nullptr && stream->owner->current == stream) {
    stream->owner->current = nullptr;
  }
  delete stream;
}

int Action(git_smart_subtransport_stream** out, git_smart_subtransport* base, const char* url,
           git_smart_service_t action) {
  auto* transport = reinterpret_cast<Subtransport*>(base);
  if (action == GIT_SERVICE_UPLOADPACK && transport->current != nullptr) {
    *out = &transport->current->parent;  // the same connection, after its ref listing
    return 0;
  }
  if (action != GIT_SERVICE_UPLOADPACK_LS && action != GIT_SERVICE_UPLOADPACK) {
    return Fail(absl::UnimplementedError("gitfleet only fetches over SSH"));
  }
  absl::StatusOr<SshUrl> parsed = ParseSshUrl(url);
  if (!parsed.ok()) return Fail(parsed.status());
  const GitCredential& credential = *transport->fetch->credential;
  SshCommandTarget target;
  target.host = parsed->host;
  target.port = parsed->port;
  target.user = !parsed->user.empty()          ? parsed->user
                : !credential.username.empty() ? credential.username
                                               : "git";
  target.key_path = credential.ssh_key_path;
  target.certificate_path = credential.ssh_certificate_path;
  target.passphrase = credential.password;
  target.known_hosts = credential.known_hosts;
  target.credential = credential.name;
  const absl::Duration left = CurrentFetchDeadline() - RealClock().Now();
  absl::StatusOr<std::unique_ptr<OpenSshConnection>> connection =
      OpenSshConnection::Start(transport->fetch->settings, target,
                               absl::StrCat("git-upload-pack ", QuoteForShell(parsed->path)),
                               std::min(left, absl::Seconds(60)));
  if (!connection.ok()) return Fail(connection.status());
  auto* stream = new Stream();
  stream->parent.subtransport = base;
  stream->parent.read = StreamRead;
  stream->parent.write = StreamWrite;
  stream->parent.free = StreamFree;
  stream->owner = transport;
  stream->connection = *std::move(connection);
  stream->host = target.port == 22 ? target.host : absl::StrCat(target.host, ":", target.port);
  transport->current = stream;
  *out = &stream->parent;
  return 0;
}

int Close(git_smart_subtransport* /*base*/) { return 0; }

void Free(git_smart_subtransport* base) {
  auto* transport = reinterpret_cast<Subtransport*>(base);
  if (transport->current != nullptr) transport->current->owner = nullptr;
  delete transport;
}

int NewSubtransport(git_smart_subtransport** out, git_transport* /*owner*/, void* param) {
  auto* transport = new Subtransport();
  transport->parent.action = Action;
  transport->parent.close = Close;
  transport->parent.free = Free;
  transport->fetch = static_cast<const OpenSshFetch*>(param);
  *out = &transport->parent;
  return 0;
}

}  // namespace

int OpenSshGitTransport(git_transport** out, git_remote* owner, void* payload) {
  auto* fetch = static_cast<OpenSshFetch*>(payload);
  if (fetch == nullptr || fetch->credential == nullptr || !fetch->credential->has_ssh_key()) {
    return Fail(absl::FailedPreconditionError("an OpenSSH fetch needs a credential's SSH key"));
  }
  git_smart_subtransport_definition definition = {NewSubtransport, /*rpc=*/0, fetch};
  return git_transport_smart(out, owner, &definition);
}

}  // namespace gitfleet
