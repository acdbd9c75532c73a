#ifndef GITFLEET_CONTROLPLANE_STORE_ETCD_STORE_H_
#define GITFLEET_CONTROLPLANE_STORE_ETCD_STORE_H_

// The control plane's store in etcd (its v3 gRPC API), for a control plane whose state
// must outlive its machine: etcd replicates every write to a quorum of its members.
//
//   EtcdOptions options;
//   options.endpoints = {"http://10.0.0.5:2379", "http://10.0.0.6:2379"};
//   GF_ASSIGN_OR_RETURN(std::unique_ptr<EtcdStore> store, EtcdStore::Open(options));
//
// Layout, under `prefix`: "d/BUCKET/KEY" holds each entry, tagged: "v" and the value, or,
// for a value over chunk_bytes, "c" and a manifest naming chunks kept at "c/NONCE/INDEX"
// (etcd takes requests of 1.5 MiB by default; a bundle's revision may be far larger). The
// chunks are written first, in transactions of their own, then the entries that name
// them, so a reader never sees a manifest before its chunks; the chunks a value replaced
// are deleted after. "o/NONCE" names the entry a value's chunks belong to, so chunks a
// crash left unnamed are found and deleted at the next Open.
//
// One control plane writes: Open takes "lock" (a key held by a lease it keeps alive) and
// every write is a transaction that holds only while this store still holds it (its
// creation revision is compared), so a control plane that lost it (a partition, a pause
// longer than the lease) cannot overwrite what another wrote since; `on_lock_lost` is
// called once then. A batch is one transaction up to max_txn_ops writes and
// max_request_bytes (etcd's own limits, which the operator may raise); a larger one lands
// as several, in order.
//
// Thread-safe.

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/sync.h"
#include "controlplane/store/store.h"
#include "proto/etcd/rpc.grpc.pb.h"

namespace gitfleet {

struct EtcdOptions {
  // Client URLs of etcd's members: http://HOST:PORT, or https://HOST:PORT with `ca_file`
  // (and a client certificate when etcd asks for one). Tried in order: a member that does
  // not answer gives way to the next.
  std::vector<std::string> endpoints;
  // Where this fleet's keys live: several fleets may share one etcd under prefixes of
  // their own. Ends with '/'.
  std::string prefix = "/gitfleet/";
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  absl::Duration timeout = absl::Seconds(10);  // one request
  // etcd's --max-txn-ops and --max-request-bytes (its defaults).
  int max_txn_ops = 128;
  size_t max_request_bytes = 1536 * 1024;
  // The lock's lease: a control plane that stops renewing it (a crash) gives the store up
  // after this long; Open waits that long for another's to lapse.
  absl::Duration lock_ttl = absl::Seconds(15);
  // Who takes the lock ("HOST pid PID"), what another that tries is told.
  std::string holder;
  // Called once, from the lease's thread, when the lock is lost: writes fail from then on.
  std::function<void(const absl::Status&)> on_lock_lost;
  // A standby: Open waits for the lock as long as another holds it (and takes over when
  // that one stops or its lease lapses), until `stop_waiting` (asked each second) says to
  // stop, which it answers with Cancelled.
  bool standby = false;
  std::function<bool()> stop_waiting;
  // A standby: called (from Open) when it starts waiting, and whenever the holder it waits
  // for changes, with that holder ("HOST pid PID", or "" when it is unnamed).
  std::function<void(const std::string& holder)> on_standing_by;
};

// The `--etcd-endpoints` list (comma-separated) as EtcdOptions::endpoints: each an http:// or
// https:// URL of a host and port, all of one scheme. InvalidArgument naming the first that
// is not.
absl::StatusOr<std::vector<std::string>> ParseEtcdEndpoints(const std::string& text);

class EtcdStore : public Store {
 public:
  // Connects, takes the lock (waiting up to lock_ttl for another holder's lease to lapse,
  // or, a standby, as long as another holds it) and deletes chunks a crash left unnamed.
  // FailedPrecondition naming the holder when another control plane keeps the lock; Unavailable
  // when no member answers.
  static absl::StatusOr<std::unique_ptr<EtcdStore>> Open(EtcdOptions options);
  // Gives the lock up (revokes its lease), so that a restart need not wait for it.
  ~EtcdStore() override;

  absl::Status Apply(const std::vector<Write>& writes) override;
  absl::StatusOr<std::string> Get(const std::string& bucket, const std::string& key) override;
  absl::StatusOr<std::vector<Entry>> List(const std::string& bucket) override;
  // A SQLite copy of every entry at one revision of the store: the same file a SQLite
  // store is, so `gitfleetctl backup` gives one format whatever the store.
  absl::Status Backup(const std::string& path) override;

  // Values over this many bytes are chunked.
  size_t chunk_bytes() const { return chunk_bytes_; }

 private:
  struct Member {
    std::string endpoint;
    std::unique_ptr<etcdserverpb::KV::Stub> kv;
    std::unique_ptr<etcdserverpb::Lease::Stub> lease;
  };
  explicit EtcdStore(EtcdOptions options);
  absl::Status Connect();
  absl::Status TakeLock();
  void KeepLockAlive();
  void LockLost(const absl::Status& why);
  // Calls `call` on the current member, the next ones when it does not answer.
  absl::Status Call(const char* what,
                    const std::function<grpc::Status(Member&, grpc::ClientContext*)>& call);
  absl::StatusOr<etcdserverpb::RangeResponse> Range(etcdserverpb::RangeRequest request);
  // A transaction of `ops` that holds only while the lock is this store's.
  absl::StatusOr<etcdserverpb::TxnResponse> LockedTxn(std::vector<etcdserverpb::RequestOp> ops);
  // Runs `ops` as transactions within etcd's limits, in order.
  absl::StatusOr<std::vector<etcdserverpb::ResponseOp>> RunOps(
      std::vector<etcdserverpb::RequestOp> ops);
  // The stored form of `value`: inline, or a manifest of chunks it writes first.
  absl::StatusOr<std::string> Encode(const std::string& data_key, const std::string& value);
  absl::StatusOr<std::string> Decode(const std::string& data_key, const std::string& stored,
                                     int64_t revision);
  // Deletes the chunks (and owner) of each nonce.
  absl::Status DeleteChunks(const std::vector<std::string>& nonces);
  absl::Status SweepChunks();
  // Every entry under `from` (a data key prefix), read at one revision, chunks and all; each
  // Entry's key is the whole etcd key.
  absl::StatusOr<std::vector<Entry>> ReadAll(const std::string& from);

  const EtcdOptions options_;
  const size_t chunk_bytes_;
  std::vector<Member> members_;
  std::atomic<size_t> current_{0};
  Mutex mu_;
  int64_t lease_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t lock_revision_ ABSL_GUARDED_BY(mu_) = 0;  // the lock key's create revision
  bool lock_lost_ ABSL_GUARDED_BY(mu_) = false;
  // Which entries name chunks now (data key -> nonce), known since Open's sweep: this
  // store is the one writer, so a write that replaces one knows what to delete.
  Mutex apply_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  std::map<std::string, std::string> chunked_ ABSL_GUARDED_BY(apply_mu_);
  absl::Notification stop_;
  std::thread keepalive_;
};

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_STORE_ETCD_STORE_H_
