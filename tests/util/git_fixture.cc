#include "tests/util/git_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <system_error>

#include "common/names.h"

namespace gitfleet::testing {

std::string TempDir(const std::string& prefix) {
  const char* base = getenv("TEST_TMPDIR");
  std::string tmpl = std::string(base ? base : "/tmp") + "/" + prefix + "XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  return tmpl;
}

ScopedTempDir::~ScopedTempDir() {
  std::error_code ignored;  // what cannot be removed stays, as without this
  std::filesystem::remove_all(path_, ignored);
}

int Run(const std::string& command, std::string* output) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return -1;
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) out.append(buf, n);
  int rc = pclose(pipe);
  if (output != nullptr) *output = out;
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

GitFixture::GitFixture(std::string dir) : dir_(std::move(dir)) {
  Run("mkdir -p '" + dir_ + "'");
  Git("init -q -b main");
  Git("config user.email test@gitfleet.invalid");
  Git("config user.name gitfleet-test");
  Git("config commit.gpgsign false");
}

void GitFixture::Git(const std::string& args) {
  std::string out;
  if (Run("git -C '" + dir_ + "' " + args, &out) != 0) {
    throw std::runtime_error("git " + args + " failed: " + out);
  }
}

void GitFixture::Write(const std::string& path, const std::string& content) {
  std::string full = dir_ + "/" + path;
  Run("mkdir -p \"$(dirname '" + full + "')\"");
  std::ofstream(full) << content;
}

void GitFixture::Remove(const std::string& path) { Git("rm -q -r '" + path + "'"); }

void GitFixture::Link(const std::string& target, const std::string& path) {
  const std::string full = dir_ + "/" + path;
  if (Run("mkdir -p \"$(dirname '" + full + "')\" && ln -sfn '" + target + "' '" + full + "'") !=
      0) {
    throw std::runtime_error("cannot link " + path + " to " + target);
  }
}

std::string GitFixture::Commit(const std::string& message) {
  Git("add -A");
  Git("commit -q --allow-empty -m " + ShellWord(message));
  std::string out;
  Run("git -C '" + dir_ + "' rev-parse HEAD", &out);
  return out.substr(0, 40);
}

void GitFixture::Gitlink(const std::string& path, const std::string& commit) {
  Git("update-index --add --cacheinfo 160000," + commit + "," + path);
}

std::string GitFixture::CommitStaged(const std::string& message) {
  Git("commit -q --allow-empty -m " + ShellWord(message));
  std::string out;
  Run("git -C '" + dir_ + "' rev-parse HEAD", &out);
  return out.substr(0, 40);
}

void GitFixture::Tag(const std::string& name) { Git("tag " + name); }

}  // namespace gitfleet::testing
