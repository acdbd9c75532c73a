#include "agent/apply/impersonating_applier.h"

#include <atomic>

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gitfleet {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

// Records what it was asked, under its name.
class RecordingApplier : public Applier {
 public:
  RecordingApplier(std::string who, std::vector<std::string>* log) : who_(who), log_(log) {}
  const char* name() const override { return "recording"; }
  absl::StatusOr<ApplyResult> Apply(const v1::ManifestObject& object, const ApplyContext& context,
                                    bool) override {
    log_->push_back(who_ + " apply " + object.key().name());
    return ApplyResult{};
  }
  absl::Status Delete(const v1::ObjectKey& key, const ApplyContext&) override {
    log_->push_back(who_ + " delete " + key.name());
    return absl::OkStatus();
  }
  absl::StatusOr<bool> InSync(const v1::ManifestObject& object, const ApplyContext&) override {
    log_->push_back(who_ + " in-sync " + object.key().name());
    return true;
  }
  v1::ResourceHealth Health(const v1::ManifestObject& object, const ApplyContext&) override {
    log_->push_back(who_ + " health " + object.key().name());
    v1::ResourceHealth health;
    health.set_health(v1::HEALTH_STATE_HEALTHY);
    return health;
  }
  absl::StatusOr<v1::ObjectKey> CreateHook(const v1::ManifestObject& hook,
                                           const ApplyContext&) override {
    log_->push_back(who_ + " hook " + hook.key().name());
    return hook.key();
  }
  void EndDriftCheck() override { log_->push_back(who_ + " end-drift-check"); }

 private:
  const std::string who_;
  std::vector<std::string>* const log_;
};

class ImpersonatingApplierTest : public ::testing::Test {
 protected:
  ImpersonatingApplierTest()
      : own_("agent", &log_),
        applier_(&own_, [this](const std::string& user) { return Make(user); }) {
    object_.mutable_key()->set_name("web");
  }
  absl::StatusOr<std::unique_ptr<Applier>> Make(const std::string& user) {
    made_.push_back(user);
    if (fail_) return absl::UnavailableError("no client");
    return std::unique_ptr<Applier>(new RecordingApplier(user, &log_));
  }
  static ApplyContext Context(const std::string& ns, const std::string& account) {
    ApplyContext context{"app", ns, false};
    context.service_account = account;
    return context;
  }

  std::vector<std::string> log_;
  std::vector<std::string> made_;
  bool fail_ = false;
  RecordingApplier own_;
  ImpersonatingApplier applier_;
  v1::ManifestObject object_;
};

TEST_F(ImpersonatingApplierTest, EachBundleIsAppliedAsItsAccountOrAsTheAgent) {
  ASSERT_TRUE(applier_.Apply(object_, Context("team-a", ""), true).ok());
  ASSERT_TRUE(applier_.Apply(object_, Context("team-a", "deployer"), true).ok());
  ASSERT_TRUE(applier_.Delete(object_.key(), Context("team-a", "deployer")).ok());
  ASSERT_TRUE(applier_.InSync(object_, Context("", "ops/deployer")).ok());
  EXPECT_EQ(applier_.Health(object_, Context("team-a", "deployer")).health(),
            v1::HEALTH_STATE_HEALTHY);
  ASSERT_TRUE(applier_.CreateHook(object_, Context("team-a", "deployer")).ok());
  applier_.EndDriftCheck();
  EXPECT_THAT(made_, ElementsAre("system:serviceaccount:team-a:deployer",
                                 "system:serviceaccount:ops:deployer"))
      << "one applier per account, made once";
  EXPECT_THAT(log_,
              ElementsAre("agent apply web", "system:serviceaccount:team-a:deployer apply web",
                          "system:serviceaccount:team-a:deployer delete web",
                          "system:serviceaccount:ops:deployer in-sync web",
                          "system:serviceaccount:team-a:deployer health web",
                          "system:serviceaccount:team-a:deployer hook web", "agent end-drift-check",
                          "system:serviceaccount:ops:deployer end-drift-check",
                          "system:serviceaccount:team-a:deployer end-drift-check"));
  EXPECT_TRUE(applier_.CanApplyAs(Context("team-a", "deployer")).ok());
  EXPECT_TRUE(applier_.CanApplyAs(Context("", "")).ok());
}

// An account that cannot be resolved, or acted as, fails every call: the agent's own
// rights are never used instead.
TEST_F(ImpersonatingApplierTest, AnAccountItCannotActAsFailsClosed) {
  const ApplyContext nowhere = Context("", "deployer");
  EXPECT_THAT(applier_.CanApplyAs(nowhere),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("service account deployer, which names no namespace, and the "
                                 "bundle has no target namespace")));
  EXPECT_FALSE(applier_.Apply(object_, nowhere, true).ok());
  EXPECT_FALSE(applier_.Delete(object_.key(), nowhere).ok());
  EXPECT_FALSE(applier_.InSync(object_, nowhere).ok());
  EXPECT_FALSE(applier_.PlacedKey(object_, nowhere).ok());
  EXPECT_FALSE(applier_.PreviewRemoval(object_.key(), nowhere, true).ok());
  v1::ResourceHealth health = applier_.Health(object_, nowhere);
  EXPECT_EQ(health.health(), v1::HEALTH_STATE_UNKNOWN);
  EXPECT_THAT(health.message(), HasSubstr("names no namespace"));
  EXPECT_THAT(applier_.Apply(object_, Context("team-a", "Deployer"), true).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("service account")));

  fail_ = true;
  EXPECT_THAT(applier_.Apply(object_, Context("team-a", "deployer"), true).status(),
              StatusIs(absl::StatusCode::kUnavailable,
                       HasSubstr("bundle app: cannot act as "
                                 "system:serviceaccount:team-a:deployer: no client")));
  EXPECT_THAT(log_, ::testing::IsEmpty()) << "nothing reached any applier, the agent's least";
  fail_ = false;
  EXPECT_TRUE(applier_.Apply(object_, Context("team-a", "deployer"), true).ok())
      << "made once it can be";
}

// An agent locked down with --default-service-account applies a bundle that names no
// account as the default one, in the bundle's namespace; a bundle's own account still wins;
// nothing is applied as the agent itself.
TEST_F(ImpersonatingApplierTest, ADefaultAccountStandsInForTheAgentsOwnRights) {
  std::vector<std::string> log;
  std::vector<std::string> made;
  RecordingApplier own("agent", &log);
  ImpersonatingApplier applier(
      &own,
      [&](const std::string& user) -> absl::StatusOr<std::unique_ptr<Applier>> {
        made.push_back(user);
        return std::unique_ptr<Applier>(new RecordingApplier(user, &log));
      },
      /*max_accounts=*/8, "gitfleet-default");
  ASSERT_TRUE(applier.Apply(object_, Context("team-a", ""), true).ok());
  ASSERT_TRUE(applier.Apply(object_, Context("team-a", "ops/deployer"), true).ok());
  EXPECT_THAT(made, ElementsAre("system:serviceaccount:team-a:gitfleet-default",
                                "system:serviceaccount:ops:deployer"));
  EXPECT_THAT(log, Not(Contains(HasSubstr("agent apply"))));
  EXPECT_THAT(applier.CanApplyAs(Context("", "")),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("service account gitfleet-default (this agent's "
                                 "--default-service-account), which names no namespace")));
}

TEST_F(ImpersonatingApplierTest, HoldsAtMostItsAccounts) {
  std::vector<std::string> log;
  RecordingApplier own("agent", &log);
  ImpersonatingApplier applier(
      &own,
      [&log](const std::string& user) -> absl::StatusOr<std::unique_ptr<Applier>> {
        return std::unique_ptr<Applier>(new RecordingApplier(user, &log));
      },
      /*max_accounts=*/2);
  EXPECT_TRUE(applier.CanApplyAs(Context("a", "x")).ok());
  EXPECT_TRUE(applier.CanApplyAs(Context("b", "x")).ok());
  EXPECT_TRUE(applier.CanApplyAs(Context("a", "x")).ok()) << "one it holds";
  EXPECT_THAT(applier.CanApplyAs(Context("c", "x")),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("acts as 2 service accounts already")));
  EXPECT_TRUE(applier.CanApplyAs(Context("c", "")).ok()) << "the agent itself is not counted";
}

}  // namespace
}  // namespace gitfleet
