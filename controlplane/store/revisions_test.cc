#include "controlplane/store/revisions.h"

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gitfleet {
namespace {

using ::testing::HasSubstr;

std::shared_ptr<const Revision> WebRevision(const std::string& value) {
  ObjectSet objects;
  objects.Put(*MakeObject(
      "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\ndata: {v: \"" + value + "\"}\n",
      "cm.yaml"));
  return Revision::Build("web", "c0ffee", absl::UnixEpoch(), std::move(objects), {}, "");
}

TEST(StoredRevisionsTest, ReadsWhatWasStoredAndNamesWhatIsNot) {
  MemoryStore store;
  std::shared_ptr<const Revision> one = WebRevision("1");
  ASSERT_TRUE(
      store.Apply({Store::Put(kRevisionsTable, one->key(), one->ToRecord().SerializeAsString())})
          .ok());
  absl::StatusOr<std::shared_ptr<const Revision>> read = ReadStoredRevision(&store, one->key());
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ((*read)->id, one->id);
  EXPECT_EQ((*read)->objects.size(), 1u);

  EXPECT_THAT(ReadStoredRevision(&store, "web/nope").status(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("web/nope")));
  // Another revision under this key, or bytes that are no record: not this revision.
  std::shared_ptr<const Revision> two = WebRevision("2");
  ASSERT_TRUE(
      store
          .Apply({Store::Put(kRevisionsTable, two->key(), one->ToRecord().SerializeAsString()),
                  Store::Put(kRevisionsTable, "web/junk", "\xff\xff not a record")})
          .ok());
  EXPECT_THAT(ReadStoredRevision(&store, two->key()).status(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(one->key())));
  EXPECT_THAT(ReadStoredRevision(&store, "web/junk").status(),
              StatusIs(absl::StatusCode::kNotFound));
}

}  // namespace
}  // namespace gitfleet
