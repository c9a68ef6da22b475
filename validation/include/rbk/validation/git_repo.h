// A small read-only view of the repository's git history, for the ledger's stale-result, rule-
// history and provenance checks. Every call runs `git -C <dir> ...` with each argument quoted for
// the shell; stderr is discarded. Where there is no git, or the directory is not in a work tree,
// or a commit is unknown, the answers are empty/unknown and the caller says so: never a crash.
#pragma once
#include "rbk/shell_command.h"

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace rbk::validation {

struct GitCommitLine {
  std::string hash;     // short hash
  std::string subject;
  // "<hash> <subject>", the subject cut at kSubjectChars so that a ledger line stays readable.
  static constexpr std::size_t kSubjectChars = 80;
  std::string text() const {
    return hash + " " + (subject.size() > kSubjectChars ? subject.substr(0, kSubjectChars - 3) + "..." : subject);
  }
};

class GitRepo {
 public:
  // dir: any directory inside the work tree (usually the repository root given as --source-dir).
  explicit GitRepo(std::string dir);

  bool available() const { return available_; }
  // Why git answers nothing here ("no git work tree at <dir>", "git not found"); "" when available.
  const std::string& unavailable_reason() const { return why_unavailable_; }
  const std::string& toplevel() const { return toplevel_; }

  // Runs git with the given arguments in dir; nullopt when git fails (exit status non-zero).
  std::optional<std::string> run(const std::vector<std::string>& args) const;

  bool commit_exists(const std::string& commit) const;
  std::optional<std::string> tree_of(const std::string& commit) const;  // `git rev-parse <c>^{tree}`
  // Commits in <commit>..HEAD touching any of paths (relative to dir), newest first; nullopt when
  // the commit is unknown or git fails.
  std::optional<std::vector<GitCommitLine>> commits_since(const std::string& commit,
                                                          const std::vector<std::string>& paths) const;
  // The declared sources whose content differs between <commit> and HEAD: "<status> <path>" per
  // file (git diff --name-status with exact rename detection, -M100%). A path matches a declared
  // source when it equals it or lies under it (a directory). A file moved without a byte changed
  // from a path that was a source at <commit> (declared_then: the registry's list as it was
  // there) to one that is a source now is not a change: the code it holds is the code the result
  // ran. Without declared_then every move into the sources counts as a change. nullopt when the
  // commit is unknown or git fails.
  std::optional<std::vector<std::string>> changed_sources_since(
      const std::string& commit, const std::vector<std::string>& paths,
      const std::vector<std::string>* declared_then = nullptr) const;
  // The content of path (relative to dir) at commit; nullopt when it did not exist there.
  std::optional<std::string> show_file(const std::string& commit, const std::string& path) const;
  // Path relative to the work tree's top level, or "" when it lies outside it.
  std::string path_in_repo(const std::string& path) const;

 private:
  std::string dir_, toplevel_, why_unavailable_;
  bool available_ = false;
};

// Quoting for /bin/sh is core's (rbk/shell_command.h), shared with the provenance capture.
using rbk::shell_quote;

}  // namespace rbk::validation
