#include "common/model/revision.h"

#include "common/manifest/object.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gitfleet {
namespace {

ObjectSet Objects() {
  ObjectSet set;
  absl::StatusOr<v1::ManifestObject> object = MakeObject(
      "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 1}\n", "t");
  EXPECT_TRUE(object.ok()) << object.status();
  set.Put(*object);
  return set;
}

v1::IgnoreDifference Rule(const std::string& text) {
  absl::StatusOr<v1::IgnoreDifference> rule = ParseIgnoreDifference(text);
  EXPECT_TRUE(rule.ok()) << rule.status();
  return *rule;
}

std::vector<std::string> Rules(const v1::SyncOptions& sync) {
  std::vector<std::string> out;
  for (const v1::IgnoreDifference& rule : sync.ignore_differences()) {
    out.push_back(DescribeIgnoreDifference(rule));
  }
  return out;
}

// What the source leaves to others goes after the bundle's own, once, and counts in the id.
TEST(RevisionTest, DeclaredIgnoredDifferencesFollowTheBundlesOwn) {
  v1::SyncOptions sync;
  sync.set_prune(true);
  *sync.add_ignore_differences() = Rule("apps/Deployment=/spec/replicas");
  auto plain = Revision::Build("web", "c1", absl::UnixEpoch(), Objects(), sync, "shop");

  ObjectSet declared = Objects();
  *declared.mutable_ignore_differences()->Add() = Rule("apps/Deployment=/spec/replicas");
  *declared.mutable_ignore_differences()->Add() = Rule("Service=/spec/clusterIP");
  auto rev = Revision::Build("web", "c1", absl::UnixEpoch(), declared, sync, "shop");
  EXPECT_THAT(Rules(rev->sync),
              ::testing::ElementsAre("apps/Deployment=/spec/replicas", "Service=/spec/clusterIP"));
  EXPECT_NE(rev->id, plain->id);
  EXPECT_EQ(Rules(plain->sync), std::vector<std::string>{"apps/Deployment=/spec/replicas"});

  // Stored and read back: the same revision.
  absl::StatusOr<std::shared_ptr<const Revision>> back = Revision::FromRecord(rev->ToRecord());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ((*back)->id, rev->id);
  EXPECT_EQ((*back)->sync.SerializeAsString(), rev->sync.SerializeAsString());
  // And built again from what was read with the bundle's own options, as the control plane
  // does at start: the same revision, so no agent is sent it again.
  auto again = Revision::Build("web", "c1", absl::UnixEpoch(), (*back)->objects, sync, "shop");
  EXPECT_EQ(again->id, rev->id);
}

// A source that asks its objects to stay when the bundle leaves (Fleet's keepResources):
// in the sync options and the id, and read back the same.
TEST(RevisionTest, KeepOnRemovalIsDeclaredByTheSource) {
  v1::SyncOptions sync;
  sync.set_prune(true);
  auto plain = Revision::Build("web", "c1", absl::UnixEpoch(), Objects(), sync, "");
  ObjectSet keeping = Objects();
  keeping.set_keep_on_removal(true);
  auto rev = Revision::Build("web", "c1", absl::UnixEpoch(), keeping, sync, "");
  EXPECT_TRUE(rev->sync.keep_on_removal());
  EXPECT_FALSE(plain->sync.keep_on_removal());
  EXPECT_NE(rev->id, plain->id);
  absl::StatusOr<std::shared_ptr<const Revision>> back = Revision::FromRecord(rev->ToRecord());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ((*back)->id, rev->id);
  EXPECT_EQ(Revision::Build("web", "c1", absl::UnixEpoch(), (*back)->objects, sync, "")->id,
            rev->id);
}

// A revision stored before sources declared anything reads back as it was.
TEST(RevisionTest, ARecordWithoutDeclaredRulesReadsBackUnchanged) {
  v1::SyncOptions sync;
  *sync.add_ignore_differences() = Rule("apps/Deployment=/spec/replicas");
  auto rev = Revision::Build("web", "c1", absl::UnixEpoch(), Objects(), sync, "");
  v1::RevisionRecord record = rev->ToRecord();
  EXPECT_EQ(record.declared_ignore_differences_size(), 0);
  absl::StatusOr<std::shared_ptr<const Revision>> back = Revision::FromRecord(record);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ((*back)->id, rev->id);
}

}  // namespace
}  // namespace gitfleet
