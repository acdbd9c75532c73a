#ifndef GITFLEET_AGENT_APPLY_IMPERSONATING_APPLIER_H_
#define GITFLEET_AGENT_APPLY_IMPERSONATING_APPLIER_H_

// Applies each bundle as the service account it names (ApplyContext.service_account), as
// Flux's serviceAccountName and Fleet's serviceAccount do: every call about a bundle that
// names one goes to an applier made for that account's user (whose requests impersonate
// it, so the cluster's RBAC for the account bounds the bundle), the others to the agent's
// own applier.
//
//   ImpersonatingApplier applier(&own, [&](const std::string& user) {
//     return MakeApplierActingAs(user);  // a KubernetesApplier on an impersonating client
//   });
//
// With a `default_account` (the agent's --default-service-account, as Flux's
// --default-service-account locks a cluster down), a bundle that names none is applied as
// it, and nothing as the agent itself.
//
// Fails closed: a bundle whose account cannot be resolved (a NAME without a target
// namespace), or for which no applier can be made, gets an error from every call (and
// Unknown health), never the agent's own rights. At most `max_accounts` accounts are held
// at once; past that, a new account's calls fail until the agent restarts.
//
// Thread-safe when the appliers it forwards to are.

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "agent/apply/applier.h"
#include "common/sync.h"

namespace gitfleet {

class ImpersonatingApplier : public Applier {
 public:
  using Factory = std::function<absl::StatusOr<std::unique_ptr<Applier>>(const std::string& user)>;

  ImpersonatingApplier(Applier* own, Factory factory, size_t max_accounts = 256,
                       std::string default_account = "")
      : own_(own),
        factory_(std::move(factory)),
        max_accounts_(max_accounts),
        default_account_(std::move(default_account)) {}

  // The user the account `context` is applied as is known as to the API server
  // ("system:serviceaccount:NAMESPACE:NAME": its own, else the default); "" for the agent
  // itself. FailedPrecondition when the account names no namespace and the bundle has no
  // target namespace.
  absl::StatusOr<std::string> UserOf(const ApplyContext& context) const override;

  const char* name() const override { return own_->name(); }
  absl::StatusOr<ApplyResult> Apply(const v1::ManifestObject& object, const ApplyContext& context,
                                    bool first) override;
  absl::Status Delete(const v1::ObjectKey& key, const ApplyContext& context) override;
  absl::Status Release(const v1::ObjectKey& key, const ApplyContext& context) override;
  absl::StatusOr<RemovalPreview> PreviewRemoval(const v1::ObjectKey& key,
                                                const ApplyContext& context, bool created) override;
  absl::StatusOr<bool> LeftBehind(const v1::ObjectKey& key, const ApplyContext& context) override;
  absl::StatusOr<bool> Terminating(const v1::ObjectKey& key, const ApplyContext& context) override;
  absl::StatusOr<bool> InSync(const v1::ManifestObject& object,
                              const ApplyContext& context) override;
  v1::ResourceHealth Health(const v1::ManifestObject& object, const ApplyContext& context) override;
  void BeginDriftCheck(const std::vector<const v1::ManifestObject*>& objects,
                       const ApplyContext& context) override;
  // Told to every applier held: drift checks are one at a time.
  void EndDriftCheck() override;
  void BeginApply(const std::vector<const v1::ManifestObject*>& objects,
                  const ApplyContext& context) override;
  void Refresh(const v1::ManifestObject& object, const ApplyContext& context) override;
  absl::StatusOr<std::string> Preview(const v1::ManifestObject& object,
                                      const ApplyContext& context) override;
  absl::StatusOr<v1::ObjectKey> PlacedKey(const v1::ManifestObject& object,
                                          const ApplyContext& context) override;
  absl::StatusOr<v1::ObjectKey> ResolveKey(const v1::ObjectKey& key,
                                           const ApplyContext& context) override;
  absl::StatusOr<v1::ObjectKey> CreateHook(const v1::ManifestObject& hook,
                                           const ApplyContext& context) override;
  absl::StatusOr<HookStatus> CheckHook(const v1::ObjectKey& live,
                                       const ApplyContext& context) override;
  absl::Status DeleteHook(const v1::ObjectKey& live, const ApplyContext& context) override;
  // What the cluster serves is the same for every user: the agent's own applier answers.
  bool Namespaced(const v1::ManifestObject& object) override { return own_->Namespaced(object); }
  absl::StatusOr<bool> ServedNamespaced(const v1::ManifestObject& object) override {
    return own_->ServedNamespaced(object);
  }
  // OK when the account resolves and an applier acting as it is held or can be made.
  absl::Status CanApplyAs(const ApplyContext& context) override;

 private:
  // The applier for `context`: the agent's own when it names no account.
  absl::StatusOr<Applier*> For(const ApplyContext& context);
  // `call` on the applier for `context`, or why there is none.
  template <typename Call>
  auto Forward(const ApplyContext& context, Call call) -> decltype(call(std::declval<Applier&>()));

  Applier* const own_;
  const Factory factory_;
  const size_t max_accounts_;
  const std::string default_account_;
  Mutex mu_;
  std::map<std::string, std::unique_ptr<Applier>> by_user_ ABSL_GUARDED_BY(mu_);
};

}  // namespace gitfleet

#endif  // GITFLEET_AGENT_APPLY_IMPERSONATING_APPLIER_H_
