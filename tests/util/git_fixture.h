#ifndef GITFLEET_TESTS_UTIL_GIT_FIXTURE_H_
#define GITFLEET_TESTS_UTIL_GIT_FIXTURE_H_

// A real Git repository made with the git CLI, for tests.
//
//   GitFixture git(TempDir("repo"));
//   git.Write("apps/web/cm.yaml", "...");
//   std::string commit = git.Commit("add web");

#include <string>

namespace gitfleet::testing {

// A fresh directory under TEST_TMPDIR (or /tmp).
std::string TempDir(const std::string& prefix);

// A TempDir removed, with all it holds, when this goes out of scope. Benches run outside
// Bazel's TEST_TMPDIR: without it each run left its repository and store (27 MB for the
// rollout bench) in /tmp. Declare it before what runs in it, so it goes last.
class ScopedTempDir {
 public:
  explicit ScopedTempDir(const std::string& prefix) : path_(TempDir(prefix)) {}
  ~ScopedTempDir();
  ScopedTempDir(const ScopedTempDir&) = delete;
  ScopedTempDir& operator=(const ScopedTempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  const std::string path_;
};

// Runs `command` with /bin/sh; returns its exit code. Output goes to `output` if given.
int Run(const std::string& command, std::string* output = nullptr);

class GitFixture {
 public:
  // Creates a repository on branch main in `dir`.
  explicit GitFixture(std::string dir);

  const std::string& dir() const { return dir_; }
  std::string url() const { return "file://" + dir_; }
  void Write(const std::string& path, const std::string& content);
  void Remove(const std::string& path);
  // A symbolic link at `path` whose text is `target` (replacing what is there), folders
  // made as needed.
  void Link(const std::string& target, const std::string& path);
  // Commits everything; returns the commit id.
  std::string Commit(const std::string& message);
  // Records `commit` as a submodule's gitlink at `path` in the index, as `git submodule
  // add` does, without cloning anything; CommitStaged commits it.
  void Gitlink(const std::string& path, const std::string& commit);
  // Commits what is staged and only that (Commit stages every change first, which drops a
  // gitlink with no folder behind it); returns the commit id.
  std::string CommitStaged(const std::string& message);
  void Tag(const std::string& name);
  void Git(const std::string& args);

 private:
  std::string dir_;
};

}  // namespace gitfleet::testing

#endif  // GITFLEET_TESTS_UTIL_GIT_FIXTURE_H_
