// The one way rbk runs a shell command and reads its output: provenance (run_context.cpp) and the
// ledger's git queries (validation/src/git_repo.cpp) both ask git through it.
#pragma once
#include <string>

namespace rbk {

// One word for /bin/sh: single-quoted, an embedded quote closed, escaped and reopened ('it'\''s');
// safe for any byte except NUL.
std::string shell_quote(const std::string& word);

struct ShellCommandResult {
  std::string output;  // stdout as read, untrimmed
  int status = -1;     // pclose's status (-1: the command could not be started)
  bool exited_zero() const;
};

// Runs `command` with /bin/sh (popen) and reads all of its stdout; stderr is the caller's business.
ShellCommandResult run_shell_command(const std::string& command);

}  // namespace rbk
