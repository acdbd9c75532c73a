#include "controlplane/render/fleet_names.h"

#include <string>

#include "gtest/gtest.h"

namespace gitfleet {
namespace {

const std::string k50 = "12345678901234567890123456789012345678901234567890";
const std::string k53 = k50 + "123";

TEST(FleetBundleNameTest, NamesAsFleetNamesAGitReposFolder) {
  EXPECT_EQ(FleetBundleName("fleet-examples", "multi-cluster/helm"),
            "fleet-examples-multi-cluster-helm");
  EXPECT_EQ(FleetBundleName("repo", "./apps//web/"), "repo-apps-web");
  EXPECT_EQ(FleetBundleName("repo", ""), "repo");
  EXPECT_EQ(FleetBundleName("repo", "."), "repo");
  EXPECT_EQ(FleetBundleName("repo", "apps/old/../web"), "repo-apps-web");
}

// The names Fleet's own tests give for these (internal/names/name_test.go).
TEST(FleetBundleNameTest, ChangedCharactersAndLongNamesGetFleetsChecksums) {
  EXPECT_EQ(FleetBundleName(k53, ""), k53);
  EXPECT_EQ(FleetBundleName(k53 + "a", ""),
            "12345678901234567890123456789012345678901234567-fdba4");
  EXPECT_EQ(FleetBundleName(k50 + "1234567890123a", ""),
            "12345678901234567890123456789012345678901234567-eb12d");
  EXPECT_EQ(FleetBundleName("long-name-test-shortpath-with@char", ""),
            "long-name-test-shortpath-with-char-031bab5e");
  EXPECT_EQ(FleetBundleName("long-name-test-0.App_ ", ""), "long-name-test-0-app-5bf6b3fb");
  EXPECT_EQ(FleetBundleName("bundle.name.example.com", ""), "bundle-name-example-com-645ef821");
  // No two dashes where the cut ends in one.
  EXPECT_EQ(FleetBundleName(k53.substr(0, 46) + "-1234567", ""),
            "1234567890123456789012345678901234567890123456-d0bce");
  // And from folders.
  EXPECT_EQ(FleetBundleName("repo", "apps/web_ui"), "repo-apps-web-ui-8339a51b");
  EXPECT_EQ(FleetBundleName("platform", "Apps/My_App"), "platform-apps-my-app-de164900");
  EXPECT_EQ(FleetBundleName("platform-infrastructure",
                            "clusters/production/monitoring/prometheus-operator"),
            "platform-infrastructure-clusters-production-mon-3063b");
}

TEST(FleetBundleNameTest, NothingLeftIsAChecksumAlone) {
  EXPECT_EQ(FleetBundleName("__", ""), "18f05aed");  // the checksum of what it changed
  EXPECT_EQ(FleetBundleName("---", ""), "9efc314b65237d5d646e1b81");
}

TEST(IsFleetNameOfFolderTest, FindsTheGitReposNameWhateverItIs) {
  EXPECT_TRUE(IsFleetNameOfFolder("fleet-examples-multi-cluster-helm", "multi-cluster/helm"));
  EXPECT_TRUE(IsFleetNameOfFolder("repo-multi-cluster-helm", "multi-cluster/helm"));
  EXPECT_TRUE(IsFleetNameOfFolder("repo-apps-web-ui-8339a51b", "apps/web_ui"));
  EXPECT_TRUE(IsFleetNameOfFolder("platform-infrastructure-clusters-production-mon-3063b",
                                  "clusters/production/monitoring/prometheus-operator"));
  // Another folder, a wrong checksum, a name without the GitRepo's.
  EXPECT_FALSE(IsFleetNameOfFolder("repo-multi-cluster-helm", "multi-cluster/kustomize"));
  EXPECT_FALSE(IsFleetNameOfFolder("repo-apps-web-ui-00000000", "apps/web_ui"));
  EXPECT_FALSE(IsFleetNameOfFolder("repo-apps-web-ui", "apps/web_ui"));
  EXPECT_FALSE(IsFleetNameOfFolder("multi-cluster-helm", "multi-cluster/helm"));
  EXPECT_FALSE(IsFleetNameOfFolder("platform-infrastructure-clusters-production-mon-00000",
                                   "clusters/production/monitoring/prometheus-operator"));
  // The root folder's bundle is the GitRepo's name alone, which gitfleet cannot know.
  EXPECT_FALSE(IsFleetNameOfFolder("repo", ""));
  EXPECT_FALSE(IsFleetNameOfFolder("", "apps"));
}

}  // namespace
}  // namespace gitfleet
