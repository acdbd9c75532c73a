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

// The namespace metadata a source declares goes under the bundle's own: a key once, sorted,
// the bundle's value winning; stored and read back the same.
TEST(RevisionTest, NamespaceMetadataMergesUnderTheBundlesOwn) {
  v1::SyncOptions sync;
  sync.add_namespace_labels("team=ops");
  ObjectSet declared = Objects();
  declared.set_namespace_metadata({"istio-injection=enabled", "team=web"}, {"a=b"});
  auto rev = Revision::Build("web", "c1", absl::UnixEpoch(), declared, sync, "");
  EXPECT_THAT(rev->sync.namespace_labels(),
              ::testing::ElementsAre("istio-injection=enabled", "team=ops"));
  EXPECT_THAT(rev->sync.namespace_annotations(), ::testing::ElementsAre("a=b"));
  EXPECT_TRUE(CheckNamespaceMetadata(rev->sync).ok());
  absl::StatusOr<std::shared_ptr<const Revision>> back = Revision::FromRecord(rev->ToRecord());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ((*back)->id, rev->id);
  EXPECT_EQ(Revision::Build("web", "c1", absl::UnixEpoch(), (*back)->objects, sync, "")->id,
            rev->id);
  EXPECT_NE(Revision::Build("web", "c1", absl::UnixEpoch(), Objects(), sync, "")->id, rev->id);
}

TEST(RevisionTest, NamespaceMetadataIsChecked) {
  struct Case {
    std::vector<std::string> labels, annotations;
    const char* error;
  };
  const std::vector<Case> cases = {
      {{"novalue"}, {}, "is not KEY=VALUE"},
      {{"-bad=x"}, {}, "the key is not a name Kubernetes takes"},
      {{"Example.COM/x=y"}, {}, "the key is not a name"},
      {{"a=has space"}, {}, "the value is not a label value"},
      {{"b=1", "a=2"}, {}, "keys must be sorted, each once"},
      {{"a=1", "a=2"}, {}, "keys must be sorted, each once"},
      {{}, {"x/=y"}, "the key is not a name"},
  };
  for (const Case& c : cases) {
    v1::SyncOptions sync;
    for (const std::string& l : c.labels) sync.add_namespace_labels(l);
    for (const std::string& a : c.annotations) sync.add_namespace_annotations(a);
    absl::Status status = CheckNamespaceMetadata(sync);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.error;
    EXPECT_THAT(std::string(status.message()), ::testing::HasSubstr(c.error));
  }
  v1::SyncOptions fine;
  fine.add_namespace_labels("a=");
  fine.add_namespace_labels("example.com/team=web-1");
  fine.add_namespace_annotations("note=any text, even: this");
  EXPECT_TRUE(CheckNamespaceMetadata(fine).ok());
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
