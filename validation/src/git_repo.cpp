// Read-only git queries for the ledger (see git_repo.h).
#include "rbk/validation/git_repo.h"

#include "rbk/shell_command.h"

#include <filesystem>

namespace rbk::validation {

namespace fs = std::filesystem;

namespace {

// Runs a shell command and returns stdout when it exits 0.
std::optional<std::string> capture(const std::string& command) {
  ShellCommandResult r = run_shell_command(command);
  if (!r.exited_zero()) return std::nullopt;
  return std::move(r.output);
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

// A commit name from a result file is passed to git as a revision; refuse anything that is not a
// plain hex object name so a crafted value cannot be read as an option or a revision range.
bool is_hex_commit(const std::string& c) {
  if (c.size() < 4 || c.size() > 64) return false;
  for (char ch : c) {
    if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F'))) return false;
  }
  return true;
}

// The non-empty lines of git's output.
std::vector<std::string> nonempty_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    if (end > start) lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

}  // namespace

GitRepo::GitRepo(std::string dir) : dir_(std::move(dir)) {
  std::error_code ec;
  if (!fs::is_directory(dir_, ec)) {
    why_unavailable_ = "no directory " + dir_;
    return;
  }
  if (!capture("git --version 2>/dev/null")) {
    why_unavailable_ = "git not found";
    return;
  }
  const auto inside = run({"rev-parse", "--is-inside-work-tree"});
  const auto top = run({"rev-parse", "--show-toplevel"});
  if (!inside || trim(*inside) != "true" || !top) {
    why_unavailable_ = "no git work tree at " + dir_;
    return;
  }
  toplevel_ = trim(*top);
  available_ = true;
}

std::optional<std::string> GitRepo::run(const std::vector<std::string>& args) const {
  // -c core.quotepath=off: paths print as they are; no pager; no colour.
  std::string cmd = "git -C " + shell_quote(dir_) + " -c core.quotepath=off -c color.ui=never --no-pager";
  for (const auto& a : args) cmd += " " + shell_quote(a);
  cmd += " 2>/dev/null";
  return capture(cmd);
}

bool GitRepo::commit_exists(const std::string& commit) const {
  if (!available_ || !is_hex_commit(commit)) return false;
  return run({"cat-file", "-e", commit + "^{commit}"}).has_value();
}

std::optional<std::string> GitRepo::tree_of(const std::string& commit) const {
  if (!commit_exists(commit)) return std::nullopt;
  const auto out = run({"rev-parse", commit + "^{tree}"});
  if (!out) return std::nullopt;
  return trim(*out);
}

std::optional<std::vector<GitCommitLine>> GitRepo::commits_since(const std::string& commit,
                                                                 const std::vector<std::string>& paths) const {
  if (!commit_exists(commit)) return std::nullopt;
  std::vector<std::string> args = {"log", "--format=%h%x09%s", commit + "..HEAD", "--"};
  args.insert(args.end(), paths.begin(), paths.end());
  const auto out = run(args);
  if (!out) return std::nullopt;
  std::vector<GitCommitLine> lines;
  for (const std::string& line : nonempty_lines(*out)) {
    const std::size_t tab = line.find('\t');
    lines.push_back({line.substr(0, tab), tab == std::string::npos ? "" : line.substr(tab + 1)});
  }
  return lines;
}

namespace {

bool under_any(const std::string& path, const std::vector<std::string>& roots) {
  for (const auto& r : roots) {
    if (path == r) return true;
    const bool dir_prefix = path.size() > r.size() && path.compare(0, r.size(), r) == 0 &&
                            (r.back() == '/' || path[r.size()] == '/');
    if (dir_prefix) return true;
  }
  return false;
}

}  // namespace

std::optional<std::vector<std::string>> GitRepo::changed_sources_since(const std::string& commit,
                                                                       const std::vector<std::string>& paths,
                                                                       const std::vector<std::string>* declared_then) const {
  if (!commit_exists(commit)) return std::nullopt;
  // No pathspec: rename detection needs both sides of a move in the diff.
  const auto out = run({"diff", "--name-status", "--no-ext-diff", "-M100%", commit, "HEAD"});
  if (!out) return std::nullopt;
  std::vector<std::string> changed;
  for (const std::string& line : nonempty_lines(*out)) {
    // "<status>\t<path>" or, for renames and copies, "<status><score>\t<old>\t<new>".
    const std::size_t t1 = line.find('\t');
    if (t1 == std::string::npos) continue;
    const std::string status = line.substr(0, t1);
    const std::size_t t2 = line.find('\t', t1 + 1);
    const std::string first = line.substr(t1 + 1, t2 == std::string::npos ? std::string::npos : t2 - t1 - 1);
    const std::string second = t2 == std::string::npos ? "" : line.substr(t2 + 1);
    if (status == "R100") {
      const bool was_source = declared_then != nullptr && under_any(first, *declared_then);
      if (under_any(second, paths)) {
        if (was_source) continue;  // a source then, a source now, the same bytes: the same code
        changed.push_back("moved in " + first + " -> " + second + " (not a source at " + commit.substr(0, 10) + ")");
      } else if (under_any(first, paths)) {
        changed.push_back("moved out " + first + " -> " + second);
      }
      continue;
    }
    const std::string path = second.empty() ? first : second;
    if (under_any(path, paths) || (!second.empty() && under_any(first, paths))) changed.push_back(status + " " + path);
  }
  return changed;
}

std::optional<std::string> GitRepo::show_file(const std::string& commit, const std::string& path) const {
  if (!commit_exists(commit) || path.empty()) return std::nullopt;
  return run({"show", commit + ":" + path});
}

std::string GitRepo::path_in_repo(const std::string& path) const {
  if (!available_) return "";
  std::error_code ec;
  const fs::path abs = fs::weakly_canonical(fs::absolute(path, ec), ec);
  const fs::path top = fs::weakly_canonical(toplevel_, ec);
  const std::string rel = fs::relative(abs, top, ec).generic_string();
  if (ec || rel.empty() || rel.rfind("..", 0) == 0) return "";
  return rel;
}

}  // namespace rbk::validation
