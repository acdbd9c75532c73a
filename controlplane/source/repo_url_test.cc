#include "controlplane/source/repo_url.h"

#include "gtest/gtest.h"

namespace gitfleet {
namespace {

TEST(NormalizeRepoUrlTest, EveryFormOfOneRepositoryIsTheSame) {
  for (const char* url : {"https://github.com/org/app", "https://github.com/org/app.git",
                          "git@github.com:org/app.git", "ssh://git@github.com:22/org/app.git",
                          "ssh://git@GitHub.com/Org/App", "git://github.com/org/app/",
                          "https://token@github.com/org/app.git"}) {
    EXPECT_EQ(NormalizeRepoUrl(url), "github.com/org/app") << url;
  }
  EXPECT_EQ(NormalizeRepoUrl("https://gitlab.example.com:8443/group/sub/app.git"),
            "gitlab.example.com/group/sub/app");
  EXPECT_EQ(NormalizeRepoUrl("file:///srv/git/app.git"), "/srv/git/app");
  for (const char* url : {"https://[2001:db8::1]:8443/org/app.git",
                          "ssh://git@[2001:db8::1]/org/app", "git@[2001:db8::1]:org/app.git"}) {
    EXPECT_EQ(NormalizeRepoUrl(url), "[2001:db8::1]/org/app") << url;
  }
  EXPECT_NE(NormalizeRepoUrl("https://github.com/org/app2"), "github.com/org/app");
}

// Azure DevOps serves one repository from three hosts; a push names only the HTTPS form.
TEST(NormalizeRepoUrlTest, EveryAzureDevOpsFormOfOneRepositoryIsTheSame) {
  for (const char* url :
       {"https://dev.azure.com/Org/Proj/_git/app", "https://org@dev.azure.com/org/proj/_git/app",
        "git@ssh.dev.azure.com:v3/org/proj/app", "ssh://git@ssh.dev.azure.com/v3/org/proj/app",
        "https://org.visualstudio.com/proj/_git/app",
        "https://org.visualstudio.com/DefaultCollection/proj/_git/app.git",
        "org@vs-ssh.visualstudio.com:v3/org/proj/app"}) {
    EXPECT_EQ(NormalizeRepoUrl(url), "dev.azure.com/org/proj/_git/app") << url;
  }
  // A project name with a space is escaped alike in every form.
  EXPECT_EQ(NormalizeRepoUrl("git@ssh.dev.azure.com:v3/org/My%20Proj/app"),
            NormalizeRepoUrl("https://dev.azure.com/org/My%20Proj/_git/app"));
  // Azure DevOps Server keeps one path for HTTPS and SSH (which has a port).
  EXPECT_EQ(NormalizeRepoUrl("ssh://tfs.example.com:22/tfs/Coll/Proj/_git/app"),
            NormalizeRepoUrl("https://tfs.example.com/tfs/Coll/Proj/_git/app"));
  // Nothing else is taken for Azure's: other repositories, other paths, other hosts.
  EXPECT_NE(NormalizeRepoUrl("git@ssh.dev.azure.com:v3/org/proj/app2"),
            "dev.azure.com/org/proj/_git/app");
  EXPECT_EQ(NormalizeRepoUrl("git@ssh.dev.azure.com:v3/org/app"), "ssh.dev.azure.com/v3/org/app");
  EXPECT_EQ(NormalizeRepoUrl("https://org.visualstudio.com/proj/app"),
            "org.visualstudio.com/proj/app");
  EXPECT_EQ(NormalizeRepoUrl("https://a.b.visualstudio.com/proj/_git/app"),
            "a.b.visualstudio.com/proj/_git/app");
  EXPECT_EQ(NormalizeRepoUrl("git@ssh.example.com:v3/org/proj/app"),
            "ssh.example.com/v3/org/proj/app");
  EXPECT_EQ(NormalizeRepoUrl(""), "");
}

TEST(OciRepositoryKeyTest, TheHostInLowerCaseAndThePathAsItIs) {
  EXPECT_EQ(OciRepositoryKey("Registry.Example.com:5000", "/charts/web/"),
            "oci://registry.example.com:5000/charts/web");
  EXPECT_EQ(OciRepositoryKey("[::1]:80", "a/b/c"), "oci://[::1]:80/a/b/c");
}

TEST(UrlPrefixTest, AHostAloneIsThatWholeHostAndLoopbackIsThisMachine) {
  EXPECT_EQ(WholeHostPrefix("https://charts.example.com"), "https://charts.example.com/");
  EXPECT_EQ(WholeHostPrefix("https://charts.example.com/team"), "https://charts.example.com/team");
  EXPECT_EQ(WholeHostPrefix("*"), "*");
  EXPECT_EQ(UrlAuthority("https://user@h.example:8443/a?b"), "user@h.example:8443");
  EXPECT_EQ(UrlAuthority("no-scheme/x"), "");
  for (const char* loopback : {"127.0.0.1:5000", "localhost", "[::1]:80", "git@127.0.0.1"}) {
    EXPECT_TRUE(IsLoopbackHost(loopback)) << loopback;
  }
  for (const char* remote : {"charts.example.com", "localhost.example.com", "10.0.0.1", "[::2]"}) {
    EXPECT_FALSE(IsLoopbackHost(remote)) << remote;
  }
}

}  // namespace
}  // namespace gitfleet
