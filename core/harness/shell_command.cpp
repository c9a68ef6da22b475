// Shell quoting and command output for the git queries of provenance and the ledger.
#include "rbk/shell_command.h"

#include <array>
#include <cstdio>
#include <sys/wait.h>

namespace rbk {

std::string shell_quote(const std::string& word) {
  std::string q = "'";
  for (char ch : word) q += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return q + "'";
}

bool ShellCommandResult::exited_zero() const { return status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0; }

ShellCommandResult run_shell_command(const std::string& command) {
  ShellCommandResult r;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) return r;
  std::array<char, 4096> buf{};
  std::size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) r.output.append(buf.data(), n);
  r.status = ::pclose(pipe);
  return r;
}

}  // namespace rbk
