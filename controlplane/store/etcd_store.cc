#include "controlplane/store/etcd_store.h"

#include <stdio.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/file_system.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "grpcpp/grpcpp.h"

namespace gitfleet {
namespace {

constexpr size_t kMaxChunkBytes = 512 << 10;
constexpr size_t kMaxResponseBytes = 128 << 20;  // what one range may answer
constexpr int64_t kEntriesPerRange = 64;         // values are at most a chunk each
constexpr size_t kMaxPemBytes = 1 << 20;

// The first key after every key that starts with `prefix` (etcd's range_end for a prefix).
std::string RangeEnd(std::string prefix) {
  while (!prefix.empty()) {
    unsigned char last = static_cast<unsigned char>(prefix.back());
    if (last < 0xff) {
      prefix.back() = static_cast<char>(last + 1);
      return prefix;
    }
    prefix.pop_back();
  }
  return std::string(1, '\0');  // every key
}

std::string RandomNonce() {
  static thread_local std::mt19937_64 bits(std::random_device{}());
  return absl::StrCat(absl::Hex(bits(), absl::kZeroPad16), absl::Hex(bits(), absl::kZeroPad16));
}

std::string ChunkKey(const std::string& prefix, const std::string& nonce, size_t index) {
  return absl::StrCat(prefix, "c/", nonce, "/", absl::Dec(index, absl::kZeroPad8));
}

// A chunked value's manifest: "c" NONCE ":" SIZE ":" CHUNKS.
struct Manifest {
  std::string nonce;
  size_t size = 0;
  size_t chunks = 0;
};
std::optional<Manifest> ParseManifest(absl::string_view stored) {
  if (!absl::ConsumePrefix(&stored, "c")) return std::nullopt;
  std::vector<absl::string_view> parts = absl::StrSplit(stored, ':');
  Manifest m;
  if (parts.size() != 3 || parts[0].size() != 32 || !absl::SimpleAtoi(parts[1], &m.size) ||
      !absl::SimpleAtoi(parts[2], &m.chunks)) {
    return std::nullopt;
  }
  m.nonce = std::string(parts[0]);
  return m;
}

etcdserverpb::RequestOp PutOp(std::string key, std::string value) {
  etcdserverpb::RequestOp op;
  etcdserverpb::PutRequest* put = op.mutable_request_put();
  put->set_key(std::move(key));
  put->set_value(std::move(value));
  return op;
}

etcdserverpb::RequestOp DeleteOp(std::string key, std::string range_end = "") {
  etcdserverpb::RequestOp op;
  etcdserverpb::DeleteRangeRequest* del = op.mutable_request_delete_range();
  del->set_key(std::move(key));
  del->set_range_end(std::move(range_end));
  return op;
}

bool Compacted(const absl::Status& status) {
  return status.code() == absl::StatusCode::kOutOfRange ||
         absl::StrContains(status.message(), "compacted");
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ParseEtcdEndpoints(const std::string& text) {
  std::vector<std::string> out;
  std::string scheme;
  for (absl::string_view entry : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    entry = absl::StripAsciiWhitespace(entry);
    absl::string_view rest = entry;
    std::string this_scheme = absl::ConsumePrefix(&rest, "http://")    ? "http"
                              : absl::ConsumePrefix(&rest, "https://") ? "https"
                                                                       : "";
    absl::ConsumeSuffix(&rest, "/");
    const size_t colon = rest.rfind(':');
    int port = 0;
    if (this_scheme.empty() || colon == absl::string_view::npos || colon == 0 ||
        !absl::SimpleAtoi(rest.substr(colon + 1), &port) || port <= 0 || port > 65535 ||
        absl::StrContains(rest, "/") || absl::StrContains(rest, "@")) {
      return absl::InvalidArgumentError(
          absl::StrCat("--etcd-endpoints: \"", entry.substr(0, 256),
                       "\" is not an etcd client URL (http://HOST:PORT or https://HOST:PORT)"));
    }
    if (!scheme.empty() && scheme != this_scheme) {
      return absl::InvalidArgumentError(
          "--etcd-endpoints: give every member with one scheme (http:// or https://)");
    }
    scheme = this_scheme;
    out.push_back(absl::StrCat(this_scheme, "://", rest));
    if (out.size() > 16) {
      return absl::InvalidArgumentError("--etcd-endpoints: at most 16 members are named");
    }
  }
  if (out.empty()) return absl::InvalidArgumentError("--etcd-endpoints names no member");
  return out;
}

EtcdStore::EtcdStore(EtcdOptions options)
    : options_(std::move(options)),
      chunk_bytes_(std::min(kMaxChunkBytes, options_.max_request_bytes / 4)) {}

absl::StatusOr<std::unique_ptr<EtcdStore>> EtcdStore::Open(EtcdOptions options) {
  if (options.prefix.empty() || options.prefix.front() != '/' || options.prefix.back() != '/') {
    return absl::InvalidArgumentError(absl::StrCat("--etcd-prefix \"", options.prefix,
                                                   "\" must start and end with '/' (/gitfleet/)"));
  }
  if (options.max_txn_ops < 8 || options.max_request_bytes < (64 << 10)) {
    return absl::InvalidArgumentError(
        "etcd's limits must allow at least 8 operations and 64 KiB a request");
  }
  if (options.lock_ttl < absl::Seconds(2)) {
    return absl::InvalidArgumentError("the etcd lock's lease must last at least 2 s");
  }
  std::unique_ptr<EtcdStore> store(new EtcdStore(std::move(options)));
  GF_RETURN_IF_ERROR(store->Connect());
  GF_RETURN_IF_ERROR(store->TakeLock());
  store->keepalive_ = std::thread([raw = store.get()] { raw->KeepLockAlive(); });
  if (absl::Status swept = store->SweepChunks(); !swept.ok()) {
    GF_LOG(WARNING) << "etcd store: chunks a crash left were not deleted (tried again at the "
                       "next start): "
                    << swept;
  }
  return store;
}

EtcdStore::~EtcdStore() {
  stop_.Notify();
  if (keepalive_.joinable()) keepalive_.join();
  int64_t lease = 0;
  {
    MutexLock lock(&mu_);
    lease = lock_lost_ ? 0 : lease_;
  }
  if (lease == 0) return;
  etcdserverpb::LeaseRevokeRequest request;
  request.set_id(lease);
  absl::Status revoked =
      Call("revoke the lock's lease", [&](Member& m, grpc::ClientContext* context) {
        etcdserverpb::LeaseRevokeResponse response;
        return m.lease->LeaseRevoke(context, request, &response);
      });
  if (!revoked.ok()) {
    GF_LOG(WARNING) << "etcd store: the lock stays held until its lease lapses: " << revoked;
  }
}

absl::Status EtcdStore::Connect() {
  if (options_.endpoints.empty()) return absl::InvalidArgumentError("no etcd endpoint is given");
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  const bool tls = absl::StartsWith(options_.endpoints.front(), "https://");
  if (tls) {
    grpc::SslCredentialsOptions ssl;
    auto read = [](const std::string& path, const char* flag) -> absl::StatusOr<std::string> {
      absl::StatusOr<std::string> pem = ReadFileAtMost(path, kMaxPemBytes);
      if (!pem.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat(flag, " ", path, " cannot be read: ", pem.status().message()));
      }
      return pem;
    };
    if (!options_.ca_file.empty()) {
      GF_ASSIGN_OR_RETURN(ssl.pem_root_certs, read(options_.ca_file, "--etcd-ca"));
    }
    if (options_.cert_file.empty() != options_.key_file.empty()) {
      return absl::InvalidArgumentError("give --etcd-cert and --etcd-key together");
    }
    if (!options_.cert_file.empty()) {
      GF_ASSIGN_OR_RETURN(ssl.pem_cert_chain, read(options_.cert_file, "--etcd-cert"));
      GF_ASSIGN_OR_RETURN(ssl.pem_private_key, read(options_.key_file, "--etcd-key"));
    }
    credentials = grpc::SslCredentials(ssl);
  } else {
    if (!options_.ca_file.empty() || !options_.cert_file.empty()) {
      return absl::InvalidArgumentError(
          "--etcd-ca, --etcd-cert and --etcd-key are for https:// endpoints; these are http://");
    }
    credentials = grpc::InsecureChannelCredentials();
  }
  for (const std::string& endpoint : options_.endpoints) {
    absl::string_view target = endpoint;
    if (!absl::ConsumePrefix(&target, "https://")) absl::ConsumePrefix(&target, "http://");
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(static_cast<int>(kMaxResponseBytes));
    args.SetMaxSendMessageSize(static_cast<int>(options_.max_request_bytes + (64 << 10)));
    std::shared_ptr<grpc::Channel> channel =
        grpc::CreateCustomChannel(std::string(target), credentials, args);
    members_.push_back(
        {endpoint, etcdserverpb::KV::NewStub(channel), etcdserverpb::Lease::NewStub(channel)});
  }
  return absl::OkStatus();
}

absl::Status EtcdStore::Call(
    const char* what, const std::function<grpc::Status(Member&, grpc::ClientContext*)>& call) {
  absl::Status last;
  const size_t count = members_.size();
  for (size_t tried = 0; tried < count; ++tried) {
    size_t at = current_.load() % count;
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + options_.timeout));
    grpc::Status status = call(members_[at], &context);
    if (status.ok()) return absl::OkStatus();
    last = absl::Status(FromGrpcStatus(status).code(),
                        absl::StrCat("etcd ", members_[at].endpoint, ": cannot ", what, ": ",
                                     status.error_message()));
    // A member that does not answer gives way to the next; an answer is the store's word.
    if (status.error_code() != grpc::StatusCode::UNAVAILABLE &&
        status.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
      return last;
    }
    current_.compare_exchange_strong(at, (at + 1) % count);
  }
  return last;
}

absl::StatusOr<etcdserverpb::RangeResponse> EtcdStore::Range(etcdserverpb::RangeRequest request) {
  etcdserverpb::RangeResponse response;
  GF_RETURN_IF_ERROR(Call("read", [&](Member& m, grpc::ClientContext* context) {
    response.Clear();
    return m.kv->Range(context, request, &response);
  }));
  return response;
}

absl::Status EtcdStore::TakeLock() {
  const std::string key = options_.prefix + "lock";
  auto revoke = [&](int64_t id) {
    etcdserverpb::LeaseRevokeRequest request;
    request.set_id(id);
    (void)Call("revoke a lease", [&](Member& m, grpc::ClientContext* context) {
      etcdserverpb::LeaseRevokeResponse response;
      return m.lease->LeaseRevoke(context, request, &response);
    });
  };
  // Another holder's lease lapses within its TTL when it is gone (a crash): wait that long.
  const absl::Time give_up = options_.standby ? absl::InfiniteFuture()
                                              : absl::Now() + options_.lock_ttl + absl::Seconds(2);
  std::string holder;
  bool told = false;
  std::optional<std::string> holder_told;  // to on_standing_by
  while (true) {
    // A lease of its own for each try: one granted before a wait would lapse in it.
    etcdserverpb::LeaseGrantRequest grant;
    grant.set_ttl(static_cast<int64_t>(std::ceil(absl::ToDoubleSeconds(options_.lock_ttl))));
    etcdserverpb::LeaseGrantResponse granted;
    GF_RETURN_IF_ERROR(Call("grant the lock's lease", [&](Member& m, grpc::ClientContext* context) {
      granted.Clear();
      return m.lease->LeaseGrant(context, grant, &granted);
    }));
    if (!granted.error().empty() || granted.id() == 0) {
      return absl::UnavailableError(
          absl::StrCat("etcd did not grant the store's lock a lease: ", granted.error()));
    }
    etcdserverpb::TxnRequest txn;
    etcdserverpb::Compare* absent = txn.add_compare();
    absent->set_key(key);
    absent->set_target(etcdserverpb::Compare::CREATE);
    absent->set_result(etcdserverpb::Compare::EQUAL);
    absent->set_create_revision(0);
    etcdserverpb::RequestOp take = PutOp(key, options_.holder);
    take.mutable_request_put()->set_lease(granted.id());
    *txn.add_success() = std::move(take);
    txn.add_failure()->mutable_request_range()->set_key(key);
    etcdserverpb::TxnResponse response;
    absl::Status taken =
        Call("take the store's lock", [&](Member& m, grpc::ClientContext* context) {
          response.Clear();
          return m.kv->Txn(context, txn, &response);
        });
    if (taken.ok() && response.succeeded()) {
      MutexLock lock(&mu_);
      lease_ = granted.id();
      lock_revision_ = response.header().revision();
      return absl::OkStatus();
    }
    revoke(granted.id());
    if (!taken.ok()) return taken;
    if (response.responses_size() > 0 && response.responses(0).response_range().kvs_size() > 0) {
      holder = response.responses(0).response_range().kvs(0).value();
    }
    if (options_.standby && options_.on_standing_by && holder_told != holder) {
      options_.on_standing_by(holder.substr(0, 256));
      holder_told = holder;
    }
    if (options_.standby && !told) {
      GF_LOG(INFO) << "standing by: the store at " << options_.prefix
                   << " in etcd is held by another control plane ("
                   << (holder.empty() ? "unnamed" : holder.substr(0, 256))
                   << "); this one takes it over when that one stops";
      told = true;
    }
    if (absl::Now() >= give_up) break;
    if (stop_.WaitForNotificationWithTimeout(absl::Seconds(1))) break;
    if (options_.stop_waiting && options_.stop_waiting()) {
      return absl::CancelledError("stopped while standing by for the store's lock");
    }
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "the store at ", options_.prefix, " in etcd is held by another control plane (",
      holder.empty() ? "unnamed" : holder.substr(0, 256), "), and its lease did not lapse within ",
      absl::FormatDuration(options_.lock_ttl),
      ": several control planes on one store are not supported yet; stop the other, or give "
      "this one another --etcd-prefix"));
}

void EtcdStore::KeepLockAlive() {
  absl::Time renewed = absl::Now();
  const absl::Duration every = options_.lock_ttl / 3;
  while (!stop_.WaitForNotificationWithTimeout(every)) {
    int64_t lease = 0;
    {
      MutexLock lock(&mu_);
      if (lock_lost_) return;
      lease = lease_;
    }
    int64_t ttl = -1;
    bool answered = false;
    absl::Status renewal =
        Call("renew the lock's lease", [&](Member& m, grpc::ClientContext* context) {
          std::unique_ptr<grpc::ClientReaderWriter<etcdserverpb::LeaseKeepAliveRequest,
                                                   etcdserverpb::LeaseKeepAliveResponse>>
              stream = m.lease->LeaseKeepAlive(context);
          etcdserverpb::LeaseKeepAliveRequest request;
          request.set_id(lease);
          etcdserverpb::LeaseKeepAliveResponse response;
          answered = stream->Write(request) && stream->Read(&response);
          if (answered) ttl = response.ttl();
          stream->WritesDone();
          return stream->Finish();
        });
    // A stream closed without an answer is a renewal that did not happen, not a lapse.
    if (renewal.ok() && !answered) renewal = absl::UnavailableError("no answer to the renewal");
    if (renewal.ok() && ttl > 0) {
      renewed = absl::Now();
      continue;
    }
    if (renewal.ok() && ttl <= 0) {
      LockLost(absl::AbortedError("the lock's lease lapsed (etcd says it is gone)"));
      return;
    }
    GF_LOG(WARNING) << "etcd store: " << renewal;
    if (absl::Now() - renewed >= options_.lock_ttl) {
      LockLost(absl::UnavailableError(absl::StrCat("the lock's lease could not be renewed for ",
                                                   absl::FormatDuration(options_.lock_ttl), ": ",
                                                   renewal.message())));
      return;
    }
  }
}

void EtcdStore::LockLost(const absl::Status& why) {
  {
    MutexLock lock(&mu_);
    if (lock_lost_) return;
    lock_lost_ = true;
  }
  GF_LOG(ERROR) << "etcd store: this control plane no longer holds the store at " << options_.prefix
                << ": " << why;
  if (options_.on_lock_lost) options_.on_lock_lost(why);
}

absl::StatusOr<etcdserverpb::TxnResponse> EtcdStore::LockedTxn(
    std::vector<etcdserverpb::RequestOp> ops) {
  etcdserverpb::TxnRequest txn;
  {
    MutexLock lock(&mu_);
    if (lock_lost_) {
      return absl::AbortedError(absl::StrCat("this control plane no longer holds the store at ",
                                             options_.prefix, " in etcd: nothing is written"));
    }
    etcdserverpb::Compare* ours = txn.add_compare();
    ours->set_key(options_.prefix + "lock");
    ours->set_target(etcdserverpb::Compare::CREATE);
    ours->set_result(etcdserverpb::Compare::EQUAL);
    ours->set_create_revision(lock_revision_);
    // And still on this store's lease: a key written over by another is not ours either.
    etcdserverpb::Compare* leased = txn.add_compare();
    leased->set_key(options_.prefix + "lock");
    leased->set_target(etcdserverpb::Compare::LEASE);
    leased->set_result(etcdserverpb::Compare::EQUAL);
    leased->set_lease(lease_);
  }
  for (etcdserverpb::RequestOp& op : ops) *txn.add_success() = std::move(op);
  etcdserverpb::TxnResponse response;
  GF_RETURN_IF_ERROR(Call("write", [&](Member& m, grpc::ClientContext* context) {
    response.Clear();
    return m.kv->Txn(context, txn, &response);
  }));
  if (!response.succeeded()) {
    absl::Status lost = absl::AbortedError(
        absl::StrCat("this control plane no longer holds the store at ", options_.prefix,
                     " in etcd (another took its lock): nothing is written"));
    LockLost(lost);
    return lost;
  }
  return response;
}

absl::StatusOr<std::vector<etcdserverpb::ResponseOp>> EtcdStore::RunOps(
    std::vector<etcdserverpb::RequestOp> ops) {
  std::vector<etcdserverpb::ResponseOp> out;
  const size_t budget = options_.max_request_bytes - (16 << 10);  // the compare, framing
  const size_t per_txn = static_cast<size_t>(options_.max_txn_ops);
  size_t i = 0;
  while (i < ops.size()) {
    std::vector<etcdserverpb::RequestOp> group;
    size_t bytes = 0;
    while (i < ops.size() && group.size() < per_txn) {
      const size_t size = ops[i].ByteSizeLong() + 8;
      if (!group.empty() && bytes + size > budget) break;
      bytes += size;
      group.push_back(std::move(ops[i++]));
    }
    GF_ASSIGN_OR_RETURN(etcdserverpb::TxnResponse response, LockedTxn(std::move(group)));
    for (etcdserverpb::ResponseOp& r : *response.mutable_responses()) out.push_back(std::move(r));
  }
  return out;
}

absl::StatusOr<std::string> EtcdStore::Encode(const std::string& data_key,
                                              const std::string& value) {
  if (value.size() <= chunk_bytes_) return absl::StrCat("v", value);
  const std::string nonce = RandomNonce();
  std::vector<etcdserverpb::RequestOp> ops;
  ops.push_back(PutOp(options_.prefix + "o/" + nonce, data_key));
  size_t count = 0;
  for (size_t at = 0; at < value.size(); at += chunk_bytes_) {
    ops.push_back(PutOp(ChunkKey(options_.prefix, nonce, count++), value.substr(at, chunk_bytes_)));
  }
  GF_RETURN_IF_ERROR(RunOps(std::move(ops)).status());
  return absl::StrCat("c", nonce, ":", value.size(), ":", count);
}

absl::StatusOr<std::string> EtcdStore::Decode(const std::string& data_key,
                                              const std::string& stored, int64_t revision) {
  if (absl::StartsWith(stored, "v")) return stored.substr(1);
  std::optional<Manifest> manifest = ParseManifest(stored);
  if (!manifest.has_value()) {
    return absl::DataLossError(
        absl::StrCat("etcd key ", data_key.substr(0, 256), " does not hold a gitfleet value"));
  }
  std::string value;
  value.reserve(manifest->size);
  size_t found = 0;
  const std::string first = options_.prefix + "c/" + manifest->nonce + "/";
  std::string from = first;
  const int64_t per_range =
      std::max<int64_t>(1, static_cast<int64_t>((kMaxResponseBytes / 2) / chunk_bytes_));
  while (true) {
    etcdserverpb::RangeRequest request;
    request.set_key(from);
    request.set_range_end(RangeEnd(first));
    request.set_limit(per_range);
    request.set_revision(revision);  // the chunks the manifest named, whatever came since
    GF_ASSIGN_OR_RETURN(etcdserverpb::RangeResponse response, Range(std::move(request)));
    for (const mvccpb::KeyValue& kv : response.kvs()) {
      if (kv.key() != ChunkKey(options_.prefix, manifest->nonce, found)) break;
      value += kv.value();
      ++found;
    }
    if (!response.more() || response.kvs().empty()) break;
    from = response.kvs().rbegin()->key() + std::string(1, '\0');
  }
  if (found != manifest->chunks || value.size() != manifest->size) {
    return absl::DataLossError(absl::StrCat(
        "etcd key ", data_key.substr(0, 256), " names ", manifest->chunks, " chunks of ",
        manifest->size, " bytes; ", found, " chunks of ", value.size(), " bytes are there"));
  }
  return value;
}

absl::Status EtcdStore::Apply(const std::vector<Write>& writes) {
  // etcd refuses a transaction that names a key twice: a key's last write is the one.
  std::map<std::string, size_t> last;
  std::vector<std::string> keys;
  keys.reserve(writes.size());
  for (size_t i = 0; i < writes.size(); ++i) {
    const Write& w = writes[i];
    if (w.bucket.empty() || absl::StrContains(w.bucket, "/")) {
      return absl::InvalidArgumentError(
          absl::StrCat("store bucket \"", w.bucket, "\" is empty or holds a '/'"));
    }
    keys.push_back(absl::StrCat(options_.prefix, "d/", w.bucket, "/", w.key));
    last[keys.back()] = i;
  }
  // One batch at a time: which entries name chunks (chunked_) follows the store's order.
  MutexLock apply(&apply_mu_);
  std::vector<etcdserverpb::RequestOp> ops;
  std::vector<std::pair<std::string, std::string>> now_chunked;  // key, nonce
  std::vector<std::string> written;
  for (size_t i = 0; i < writes.size(); ++i) {
    if (last[keys[i]] != i) continue;
    written.push_back(keys[i]);
    if (!writes[i].value.has_value()) {
      ops.push_back(DeleteOp(keys[i]));
      continue;
    }
    // A big value's chunks land first, unnamed until its entry does (a crash leaves them
    // for the next Open's sweep).
    GF_ASSIGN_OR_RETURN(std::string stored, Encode(keys[i], *writes[i].value));
    if (std::optional<Manifest> m = ParseManifest(stored)) {
      now_chunked.emplace_back(keys[i], m->nonce);
    }
    ops.push_back(PutOp(keys[i], std::move(stored)));
  }
  absl::Status landed = RunOps(std::move(ops)).status();
  // The chunks of what was replaced or deleted are no longer named. After a failure some
  // of the batch may have landed: its entries are forgotten here (their chunks, if any, are
  // left to the next start's sweep rather than deleted while something may name them).
  std::vector<std::string> replaced;
  for (const std::string& key : written) {
    auto it = chunked_.find(key);
    if (it == chunked_.end()) continue;
    if (landed.ok()) replaced.push_back(it->second);
    chunked_.erase(it);
  }
  if (!landed.ok()) return landed;
  for (auto& [key, nonce] : now_chunked) chunked_[key] = std::move(nonce);
  if (absl::Status deleted = DeleteChunks(replaced); !deleted.ok()) {
    GF_LOG(WARNING) << "etcd store: chunks of replaced values stay until the next start: "
                    << deleted;
  }
  return absl::OkStatus();
}

absl::Status EtcdStore::DeleteChunks(const std::vector<std::string>& nonces) {
  if (nonces.empty()) return absl::OkStatus();
  std::vector<etcdserverpb::RequestOp> ops;
  for (const std::string& nonce : nonces) {
    const std::string chunks = options_.prefix + "c/" + nonce + "/";
    ops.push_back(DeleteOp(chunks, RangeEnd(chunks)));
    ops.push_back(DeleteOp(options_.prefix + "o/" + nonce));
  }
  return RunOps(std::move(ops)).status();
}

absl::Status EtcdStore::SweepChunks() {
  // Each owner names the entry its chunks were written for: chunks that entry does not
  // name (a crash between the chunks and the entry, or before their deletion) go.
  const std::string owners = options_.prefix + "o/";
  std::vector<std::string> orphans;
  std::string from = owners;
  while (true) {
    etcdserverpb::RangeRequest request;
    request.set_key(from);
    request.set_range_end(RangeEnd(owners));
    request.set_limit(256);
    GF_ASSIGN_OR_RETURN(etcdserverpb::RangeResponse response, Range(std::move(request)));
    for (const mvccpb::KeyValue& owner : response.kvs()) {
      const std::string nonce = owner.key().substr(owners.size());
      etcdserverpb::RangeRequest entry;
      entry.set_key(owner.value());
      GF_ASSIGN_OR_RETURN(etcdserverpb::RangeResponse named, Range(std::move(entry)));
      std::optional<Manifest> m;
      if (named.kvs_size() > 0) m = ParseManifest(named.kvs(0).value());
      if (!m.has_value() || m->nonce != nonce) {
        orphans.push_back(nonce);
      } else {
        MutexLock apply(&apply_mu_);
        chunked_[owner.value()] = nonce;
      }
    }
    if (!response.more() || response.kvs().empty()) break;
    from = response.kvs().rbegin()->key() + std::string(1, '\0');
  }
  if (!orphans.empty()) {
    GF_LOG(INFO) << "etcd store: deleting the chunks of " << orphans.size()
                 << " values no entry names (left by a crash)";
  }
  return DeleteChunks(orphans);
}

absl::StatusOr<std::string> EtcdStore::Get(const std::string& bucket, const std::string& key) {
  const std::string data_key = absl::StrCat(options_.prefix, "d/", bucket, "/", key);
  for (int attempt = 0;; ++attempt) {
    etcdserverpb::RangeRequest request;
    request.set_key(data_key);
    GF_ASSIGN_OR_RETURN(etcdserverpb::RangeResponse response, Range(std::move(request)));
    if (response.kvs_size() == 0) {
      return absl::NotFoundError(absl::StrCat(bucket, "/", key, " is not in the store"));
    }
    absl::StatusOr<std::string> value =
        Decode(data_key, response.kvs(0).value(), response.header().revision());
    // Compacted between the entry and its chunks: read both again.
    if (!value.ok() && Compacted(value.status()) && attempt < 3) continue;
    return value;
  }
}

absl::StatusOr<std::vector<Store::Entry>> EtcdStore::ReadAll(const std::string& from_prefix) {
  for (int attempt = 0;; ++attempt) {
    std::vector<Entry> out;
    int64_t revision = 0;  // every page at the first one's revision: one consistent view
    std::string from = from_prefix;
    absl::Status failed;
    while (true) {
      etcdserverpb::RangeRequest request;
      request.set_key(from);
      request.set_range_end(RangeEnd(from_prefix));
      request.set_limit(kEntriesPerRange);
      request.set_revision(revision);
      absl::StatusOr<etcdserverpb::RangeResponse> response = Range(std::move(request));
      if (!response.ok()) {
        failed = response.status();
        break;
      }
      if (revision == 0) revision = response->header().revision();
      for (const mvccpb::KeyValue& kv : response->kvs()) {
        absl::StatusOr<std::string> value = Decode(kv.key(), kv.value(), revision);
        if (!value.ok()) {
          failed = value.status();
          break;
        }
        out.push_back({kv.key(), *std::move(value)});
      }
      if (!failed.ok() || !response->more() || response->kvs().empty()) break;
      from = response->kvs().rbegin()->key() + std::string(1, '\0');
    }
    if (failed.ok()) return out;
    if (!Compacted(failed) || attempt >= 3) return failed;
  }
}

absl::StatusOr<std::vector<Store::Entry>> EtcdStore::List(const std::string& bucket) {
  const std::string prefix = absl::StrCat(options_.prefix, "d/", bucket, "/");
  GF_ASSIGN_OR_RETURN(std::vector<Entry> all, ReadAll(prefix));
  std::vector<Entry> out;
  out.reserve(all.size());
  for (Entry& read : all) out.push_back({read.key.substr(prefix.size()), std::move(read.value)});
  return out;
}

absl::Status EtcdStore::Backup(const std::string& path) {
  const std::string data = options_.prefix + "d/";
  GF_ASSIGN_OR_RETURN(std::vector<Entry> all, ReadAll(data));
  // Written to a SQLite store of its own, whose backup is then the file a SQLite store's
  // backup is (one file, no write-ahead log beside it).
  const std::string partial = path + ".partial";
  auto remove_partial = [&] {
    for (const char* suffix : {"", "-wal", "-shm"}) unlink((partial + suffix).c_str());
  };
  remove_partial();
  absl::Status made = [&]() -> absl::Status {
    GF_ASSIGN_OR_RETURN(std::unique_ptr<SqliteStore> copy, SqliteStore::Open(partial));
    std::vector<Write> batch;
    for (Entry& read : all) {
      absl::string_view rest = absl::string_view(read.key).substr(data.size());
      const size_t slash = rest.find('/');
      if (slash == absl::string_view::npos) continue;
      batch.push_back(Put(std::string(rest.substr(0, slash)), std::string(rest.substr(slash + 1)),
                          std::move(read.value)));
      if (batch.size() >= 1000) {
        GF_RETURN_IF_ERROR(copy->Apply(batch));
        batch.clear();
      }
    }
    GF_RETURN_IF_ERROR(copy->Apply(batch));
    return copy->Backup(path);
  }();
  remove_partial();
  return made;
}

}  // namespace gitfleet
