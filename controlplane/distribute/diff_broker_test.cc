#include "controlplane/distribute/diff_broker.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gitfleet {
namespace {

TEST(DiffBrokerTest, EachRequestIsAnsweredOnceOnlyByTheClusterAsked) {
  DiffBroker broker;
  std::vector<absl::StatusOr<v1::DiffResult>> answers;
  absl::Time t0 = absl::FromUnixSeconds(1000);
  uint64_t id = broker.Add("eu", t0 + absl::Seconds(10),
                           [&](absl::StatusOr<v1::DiffResult> r) { answers.push_back(r); });
  v1::DiffResult result;
  result.set_id(id);
  result.set_cluster("spoofed");
  EXPECT_FALSE(broker.Answer("us", result)) << "another cluster cannot answer";
  EXPECT_TRUE(broker.Answer("eu", result));
  EXPECT_FALSE(broker.Answer("eu", result)) << "answered once";
  ASSERT_EQ(answers.size(), 1u);
  ASSERT_TRUE(answers[0].ok());
  EXPECT_EQ(answers[0]->cluster(), "eu") << "the broker names who answered";
  EXPECT_EQ(broker.pending(), 0u);
}

TEST(DiffBrokerTest, DeadlinesAndShutdownFailWhatWaits) {
  DiffBroker broker;
  std::vector<absl::Status> failures;
  auto record = [&](absl::StatusOr<v1::DiffResult> r) { failures.push_back(r.status()); };
  absl::Time t0 = absl::FromUnixSeconds(1000);
  broker.Add("a", t0 + absl::Seconds(5), record);
  broker.Add("b", t0 + absl::Seconds(50), record);
  broker.Expire(t0 + absl::Seconds(4));
  EXPECT_TRUE(failures.empty());
  broker.Expire(t0 + absl::Seconds(5));
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_EQ(failures[0].code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(std::string(failures[0].message()), ::testing::HasSubstr("cluster a"));
  broker.FailAll(absl::UnavailableError("stopping"));
  ASSERT_EQ(failures.size(), 2u);
  EXPECT_EQ(failures[1].code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(broker.pending(), 0u);
}

}  // namespace
}  // namespace gitfleet
