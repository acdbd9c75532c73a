#include "agent/apply/impersonating_applier.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/names.h"

namespace gitfleet {

absl::StatusOr<std::string> ImpersonatingApplier::UserOf(const ApplyContext& context) const {
  const bool own = !context.service_account.empty();
  const std::string& account = own ? context.service_account : default_account_;
  if (account.empty()) return std::string();
  if (absl::Status s = ValidateServiceAccount(account); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("bundle ", context.bundle, ": ", s.message()));
  }
  std::string user = ServiceAccountUser(account, context.target_namespace);
  if (user.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "bundle ", context.bundle, " is to be applied as service account ", account,
        own ? "" : " (this agent's --default-service-account)",
        ", which names no namespace, and the bundle has no target namespace to find it in "
        "(give NAMESPACE/NAME, or the bundle a --namespace)"));
  }
  return user;
}

absl::StatusOr<Applier*> ImpersonatingApplier::For(const ApplyContext& context) {
  absl::StatusOr<std::string> user = UserOf(context);
  if (!user.ok()) return user.status();
  if (user->empty()) return own_;
  MutexLock lock(&mu_);
  auto it = by_user_.find(*user);
  if (it != by_user_.end()) return it->second.get();
  if (by_user_.size() >= max_accounts_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("bundle ", context.bundle, ": this agent acts as ", max_accounts_,
                     " service accounts already, its most; ", context.service_account,
                     " is not one of them (restart the agent once bundles stop using some)"));
  }
  absl::StatusOr<std::unique_ptr<Applier>> made = factory_(*user);
  if (!made.ok()) {
    return absl::Status(made.status().code(),
                        absl::StrCat("bundle ", context.bundle, ": cannot act as ", *user, ": ",
                                     made.status().message()));
  }
  Applier* applier = made->get();
  by_user_.emplace(*user, *std::move(made));
  return applier;
}

template <typename Call>
auto ImpersonatingApplier::Forward(const ApplyContext& context, Call call)
    -> decltype(call(std::declval<Applier&>())) {
  absl::StatusOr<Applier*> applier = For(context);
  if (!applier.ok()) return applier.status();
  return call(**applier);
}

absl::Status ImpersonatingApplier::CanApplyAs(const ApplyContext& context) {
  return For(context).status();
}

absl::StatusOr<ApplyResult> ImpersonatingApplier::Apply(const v1::ManifestObject& object,
                                                        const ApplyContext& context, bool first) {
  return Forward(context, [&](Applier& applier) { return applier.Apply(object, context, first); });
}

absl::Status ImpersonatingApplier::Delete(const v1::ObjectKey& key, const ApplyContext& context) {
  return Forward(context, [&](Applier& applier) { return applier.Delete(key, context); });
}

absl::Status ImpersonatingApplier::Release(const v1::ObjectKey& key, const ApplyContext& context) {
  return Forward(context, [&](Applier& applier) { return applier.Release(key, context); });
}

absl::StatusOr<RemovalPreview> ImpersonatingApplier::PreviewRemoval(const v1::ObjectKey& key,
                                                                    const ApplyContext& context,
                                                                    bool created) {
  return Forward(context,
                 [&](Applier& applier) { return applier.PreviewRemoval(key, context, created); });
}

absl::StatusOr<bool> ImpersonatingApplier::LeftBehind(const v1::ObjectKey& key,
                                                      const ApplyContext& context) {
  return Forward(context, [&](Applier& applier) { return applier.LeftBehind(key, context); });
}

absl::StatusOr<bool> ImpersonatingApplier::Terminating(const v1::ObjectKey& key,
                                                       const ApplyContext& context) {
  return Forward(context, [&](Applier& applier) { return applier.Terminating(key, context); });
}

absl::StatusOr<bool> ImpersonatingApplier::InSync(const v1::ManifestObject& object,
                                                  const ApplyContext& context) {
  return Forward(context, [&](Applier& applier) { return applier.InSync(object, context); });
}

v1::ResourceHealth ImpersonatingApplier::Health(const v1::ManifestObject& object,
                                                const ApplyContext& context) {
  absl::StatusOr<Applier*> applier = For(context);
  if (applier.ok()) return (*applier)->Health(object, context);
  v1::ResourceHealth health;
  *health.mutable_key() = object.key();
  health.set_health(v1::HEALTH_STATE_UNKNOWN);
  health.set_message(std::string(applier.status().message()));
  return health;
}

void ImpersonatingApplier::BeginDriftCheck(const std::vector<const v1::ManifestObject*>& objects,
                                           const ApplyContext& context) {
  absl::StatusOr<Applier*> applier = For(context);
  if (applier.ok()) (*applier)->BeginDriftCheck(objects, context);
}

void ImpersonatingApplier::EndDriftCheck() {
  own_->EndDriftCheck();
  MutexLock lock(&mu_);
  for (auto& [user, applier] : by_user_) applier->EndDriftCheck();
}

void ImpersonatingApplier::BeginApply(const std::vector<const v1::ManifestObject*>& objects,
                                      const ApplyContext& context) {
  absl::StatusOr<Applier*> applier = For(context);
  if (applier.ok()) (*applier)->BeginApply(objects, context);
}

void ImpersonatingApplier::Refresh(const v1::ManifestObject& object, const ApplyContext& context) {
  absl::StatusOr<Applier*> applier = For(context);
  if (applier.ok()) (*applier)->Refresh(object, context);
}

absl::StatusOr<std::string> ImpersonatingApplier::Preview(const v1::ManifestObject& object,
                                                          const ApplyContext& context) {
  return Forward(context, [&](Applier& applier) { return applier.Preview(object, context); });
}

absl::StatusOr<v1::ObjectKey> ImpersonatingApplier::PlacedKey(const v1::ManifestObject& object,
                                                              const ApplyContext& context) {
  return Forward(context, [&](Applier& applier) { return applier.PlacedKey(object, context); });
}

absl::StatusOr<v1::ObjectKey> ImpersonatingApplier::ResolveKey(const v1::ObjectKey& key,
                                                               const ApplyContext& context) {
  return Forward(context, [&](Applier& applier) { return applier.ResolveKey(key, context); });
}

absl::StatusOr<v1::ObjectKey> ImpersonatingApplier::CreateHook(const v1::ManifestObject& hook,
                                                               const ApplyContext& context) {
  return Forward(context, [&](Applier& applier) { return applier.CreateHook(hook, context); });
}

absl::StatusOr<HookStatus> ImpersonatingApplier::CheckHook(const v1::ObjectKey& live,
                                                           const ApplyContext& context) {
  return Forward(context, [&](Applier& applier) { return applier.CheckHook(live, context); });
}

absl::Status ImpersonatingApplier::DeleteHook(const v1::ObjectKey& live,
                                              const ApplyContext& context) {
  return Forward(context, [&](Applier& applier) { return applier.DeleteHook(live, context); });
}

}  // namespace gitfleet
