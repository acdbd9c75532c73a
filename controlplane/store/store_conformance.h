#ifndef GITFLEET_CONTROLPLANE_STORE_STORE_CONFORMANCE_H_
#define GITFLEET_CONTROLPLANE_STORE_STORE_CONFORMANCE_H_

// What every Store does, for each implementation's tests: batches land whole, lists are
// ordered by key within their bucket, deletes delete, values are bytes.

#include <string>

#include "controlplane/store/store.h"
#include "gtest/gtest.h"

namespace gitfleet {

inline void ExerciseStore(Store& store) {
  ASSERT_TRUE(store
                  .Apply({Store::Put("sources", "b", "2"), Store::Put("sources", "a", "1"),
                          Store::Put("bundles", "a", "x")})
                  .ok());
  auto sources = store.List("sources");
  ASSERT_TRUE(sources.ok());
  ASSERT_EQ(sources->size(), 2u);
  EXPECT_EQ((*sources)[0].key, "a");
  EXPECT_EQ((*sources)[1].value, "2");
  ASSERT_TRUE(store.Apply({Store::Delete("sources", "a")}).ok());
  EXPECT_EQ(store.Get("sources", "a").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(*store.Get("bundles", "a"), "x");
  std::string binary("\0\1\2", 3);
  ASSERT_TRUE(store.Apply({Store::Put("bin", "k", binary)}).ok());
  EXPECT_EQ(*store.Get("bin", "k"), binary);
  // A key written twice in one batch keeps the last; a bucket's list is its own, keys with
  // '/' included, and an empty value is a value.
  ASSERT_TRUE(store
                  .Apply({Store::Put("twice", "k", "first"), Store::Put("twice", "k", "last"),
                          Store::Put("twice", "a/b", ""), Store::Put("twicex", "k", "other")})
                  .ok());
  auto twice = store.List("twice");
  ASSERT_TRUE(twice.ok());
  ASSERT_EQ(twice->size(), 2u);
  EXPECT_EQ((*twice)[0].key, "a/b");
  EXPECT_EQ((*twice)[0].value, "");
  EXPECT_EQ((*twice)[1].value, "last");
  EXPECT_TRUE(store.List("nothing-here")->empty());
}

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_STORE_STORE_CONFORMANCE_H_
