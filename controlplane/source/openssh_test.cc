#include "controlplane/source/openssh.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/util/git_fixture.h"

namespace gitfleet {
namespace {

using ::gitfleet::testing::TempDir;
using ::testing::HasSubstr;
using ::testing::Not;

std::string Read(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// A stand-in for ssh that writes down how it was run and answers by the remote command
// (its last argument), as the real one would have relayed the host's answers.
class FakeSsh {
 public:
  FakeSsh() : dir_(TempDir("fake-ssh")) {
    program_ = dir_ + "/ssh";
    std::ofstream(program_) << "#!/bin/sh\n"
                            << "log=" << dir_ << "\n"
                            << R"(printf '%s\n' "$@" > "$log/args"
env > "$log/env"
ls -A "$HOME" > "$log/scratch"
stat -c %a "$HOME/key" > "$log/key-mode"
cat "$HOME/known_hosts" > "$log/known_hosts"
if [ -n "$SSH_ASKPASS" ]; then "$SSH_ASKPASS" > "$log/askpass"; fi
for last; do :; done
case "$last" in
  hello) echo "hello from the host" ;;
  hostkey) echo "@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@" >&2
           echo "The fingerprint for the ED25519 key sent by the remote host is" >&2
           echo "SHA256:abcDEF+/123." >&2
           echo "Host key verification failed." >&2; exit 255 ;;
  denied) echo "git@127.0.0.1: Permission denied (publickey)." >&2; exit 255 ;;
  unreachable) echo "ssh: connect to host 127.0.0.1 port 1: Connection refused" >&2; exit 255 ;;
  fail) echo "fatal: no such repository" >&2; exit 3 ;;
  big) head -c 100000 /dev/zero ;;
  slow) sleep 30 ;;
  config) exec /usr/bin/ssh -G "$@" ;;
esac
)";
    chmod(program_.c_str(), 0755);
    scratch_ = TempDir("scratch") + "/with space and 100%";  // as ssh must be given it
    mkdir(scratch_.c_str(), 0700);
    key_ = dir_ + "/id";
    std::ofstream(key_) << "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n"
                           "-----END OPENSSH PRIVATE KEY-----";  // no last newline
    chmod(key_.c_str(), 0644);
  }
  OpenSshSettings settings() const { return {SshClient::kOpenSsh, program_, scratch_}; }
  SshCommandTarget target() const {
    return {"127.0.0.1", 2222, "git", key_, "", "[127.0.0.1]:2222 ssh-ed25519 AAAA\n", "deploy"};
  }
  std::string Log(const std::string& name) const { return Read(dir_ + "/" + name); }
  const std::string& scratch() const { return scratch_; }

 private:
  std::string dir_, program_, scratch_, key_;
};

TEST(OpenSshTest, RunsSshWithNothingButTheCredentialAndCleansUp) {
  FakeSsh ssh;
  absl::StatusOr<std::string> out = RunOpenSshCommand(ssh.settings(), ssh.target(), "hello");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, "hello from the host\n");
  const std::string args = ssh.Log("args");
  for (const char* wanted :
       {"-F\n/dev/null\n", "StrictHostKeyChecking=yes\n", "GlobalKnownHostsFile=/dev/null\n",
        "IdentitiesOnly=yes\n", "IdentityAgent=none\n", "BatchMode=yes\n",
        "PasswordAuthentication=no\n", "ProxyCommand=none\n", "ControlMaster=no\n", "-p\n2222\n",
        "-l\ngit\n", "--\n127.0.0.1\nhello\n"}) {
    EXPECT_THAT(args, HasSubstr(wanted));
  }
  // The key as a private copy with its last newline; the credential's known_hosts alone.
  EXPECT_EQ(ssh.Log("key-mode"), "600\n");
  EXPECT_EQ(ssh.Log("known_hosts"), "[127.0.0.1]:2222 ssh-ed25519 AAAA\n");
  EXPECT_EQ(ssh.Log("scratch"), "key\nknown_hosts\n");
  EXPECT_THAT(ssh.Log("env"), Not(HasSubstr("SSH_AUTH_SOCK")));
  // Nothing is left in the scratch folder.
  std::string left;
  EXPECT_EQ(::gitfleet::testing::Run(absl::StrCat("ls -A '", ssh.scratch(), "'"), &left), 0);
  EXPECT_EQ(left, "");
}

// OpenSSH itself reads the options as meant, in a folder whose path has a space and a "%".
TEST(OpenSshTest, OpenSshReadsTheOptionsAsMeant) {
  if (access("/usr/bin/ssh", X_OK) != 0) GTEST_SKIP() << "no /usr/bin/ssh (openssh-client)";
  FakeSsh ssh;
  absl::StatusOr<std::string> config = RunOpenSshCommand(ssh.settings(), ssh.target(), "config");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_THAT(*config, HasSubstr(absl::StrCat("userknownhostsfile ", ssh.scratch(), "/ssh-")));
  EXPECT_THAT(*config, HasSubstr("stricthostkeychecking true"));
  EXPECT_THAT(*config, HasSubstr("identitiesonly yes"));
  EXPECT_THAT(*config, HasSubstr("port 2222"));
  EXPECT_THAT(*config, HasSubstr("user git"));
  EXPECT_THAT(*config, HasSubstr("globalknownhostsfile /dev/null"));
  EXPECT_THAT(*config, HasSubstr("identityagent none"));
  EXPECT_THAT(*config, HasSubstr("batchmode yes"));
}

TEST(OpenSshTest, APassphraseGoesThroughAskpassNeverTheCommandLine) {
  FakeSsh ssh;
  SshCommandTarget target = ssh.target();
  target.passphrase = "pass phrase";
  ASSERT_TRUE(RunOpenSshCommand(ssh.settings(), target, "hello").ok());
  EXPECT_EQ(ssh.Log("askpass"), "pass phrase\n");
  EXPECT_THAT(ssh.Log("args"), Not(HasSubstr("pass phrase")));
  EXPECT_THAT(ssh.Log("args"), HasSubstr("BatchMode=no\n"));
  EXPECT_THAT(ssh.Log("env"), HasSubstr("SSH_ASKPASS_REQUIRE=force"));
}

TEST(OpenSshTest, SaysWhatWentWrongInGitfleetsWords) {
  FakeSsh ssh;
  auto run = [&](const std::string& command) {
    return RunOpenSshCommand(ssh.settings(), ssh.target(), command).status();
  };
  absl::Status hostkey = run("hostkey");
  EXPECT_EQ(hostkey.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(hostkey.message(),
              HasSubstr("the SSH host key of 127.0.0.1:2222 is not one credential deploy's "
                        "known_hosts lists for it: the server offers SHA256:abcDEF+/123"));
  absl::Status denied = run("denied");
  EXPECT_EQ(denied.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(denied.message(), HasSubstr("refused credential deploy's SSH key for user git"));
  EXPECT_EQ(run("unreachable").code(), absl::StatusCode::kUnavailable);
  absl::Status failed = run("fail");
  EXPECT_EQ(failed.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(failed.message(), HasSubstr("exited with status 3: fatal: no such repository"));

  SshCommandOptions small;
  small.max_output_bytes = 1000;
  EXPECT_EQ(RunOpenSshCommand(ssh.settings(), ssh.target(), "big", small).status().code(),
            absl::StatusCode::kResourceExhausted);
  SshCommandOptions quick;
  quick.timeout = absl::Milliseconds(300);
  const absl::Time start = absl::Now();
  EXPECT_EQ(RunOpenSshCommand(ssh.settings(), ssh.target(), "slow", quick).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));

  // What OpenSSH would read as an option is refused before it runs.
  SshCommandTarget dashed = ssh.target();
  dashed.host = "-oProxyCommand=touch /tmp/owned";
  EXPECT_EQ(RunOpenSshCommand(ssh.settings(), dashed, "hello").status().code(),
            absl::StatusCode::kInvalidArgument);
  OpenSshSettings missing = ssh.settings();
  missing.program = "/nonexistent/ssh";
  EXPECT_EQ(RunOpenSshCommand(missing, ssh.target(), "hello").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(OpenSshTest, ChoosesTheClientByTheFlagAndTheKey) {
  EXPECT_EQ(*ParseSshClient("auto"), SshClient::kAuto);
  EXPECT_EQ(*ParseSshClient("openssh"), SshClient::kOpenSsh);
  EXPECT_EQ(*ParseSshClient("libssh2"), SshClient::kLibssh2);
  EXPECT_THAT(ParseSshClient("putty").status().message(), HasSubstr("--ssh-client=putty"));
  const std::string dir = TempDir("keys");
  std::string out;
  ASSERT_EQ(
      ::gitfleet::testing::Run(absl::StrCat("cd '", dir,
                                            "' && ssh-keygen -q -t rsa -b 2048 -N '' -f rsa && "
                                            "ssh-keygen -q -t ed25519 -N '' -f ed25519"),
                               &out),
      0)
      << out;
  OpenSshSettings settings;
  EXPECT_TRUE(UsesOpenSsh(settings, dir + "/rsa", ""));
  EXPECT_FALSE(UsesOpenSsh(settings, dir + "/ed25519", ""));
  EXPECT_TRUE(UsesOpenSsh(settings, dir + "/ed25519",
                          "git.example.com ssh-ed25519 AAAA\n@cert-authority *.example.com "
                          "ssh-ed25519 AAAA\n"));
  settings.client = SshClient::kOpenSsh;
  EXPECT_TRUE(UsesOpenSsh(settings, dir + "/ed25519", ""));
  settings.client = SshClient::kLibssh2;
  EXPECT_FALSE(UsesOpenSsh(settings, dir + "/rsa", ""));
}

TEST(OpenSshTest, QuotesAndUrlsAsGitWritesThem) {
  EXPECT_EQ(QuoteForShell("/org/app.git"), "'/org/app.git'");
  EXPECT_EQ(QuoteForShell("it's; rm -rf /"), "'it'\\''s; rm -rf /'");
  absl::StatusOr<SshUrl> url = ParseSshUrl("ssh://deploy@git.example.com:2222/org/app.git");
  ASSERT_TRUE(url.ok());
  EXPECT_EQ(url->user, "deploy");
  EXPECT_EQ(url->host, "git.example.com");
  EXPECT_EQ(url->port, 2222);
  EXPECT_EQ(url->path, "/org/app.git");
  url = ParseSshUrl("ssh://[::1]/~alice/app.git");
  ASSERT_TRUE(url.ok());
  EXPECT_EQ(url->host, "[::1]");
  EXPECT_EQ(url->port, 22);
  EXPECT_EQ(url->path, "~alice/app.git");
  url = ParseSshUrl("git@github.com:org/app.git");
  ASSERT_TRUE(url.ok());
  EXPECT_EQ(url->user, "git");
  EXPECT_EQ(url->host, "github.com");
  EXPECT_EQ(url->path, "org/app.git");
  EXPECT_FALSE(ParseSshUrl("ssh://host:99999/app.git").ok());
  EXPECT_FALSE(ParseSshUrl("ssh://host").ok());
  EXPECT_FALSE(ParseSshUrl("https://host/app.git").ok());
}

}  // namespace
}  // namespace gitfleet
