// Progress and report lines of programs whose ranks share one stderr.
#pragma once
#include <ostream>
#include <string>

namespace rbk {

// The ranks of a distributed job write to one stderr (the launcher's, or a log file they all
// inherit). An unbuffered stream written piece by piece (`std::cerr << a << b`) issues one write(2)
// per piece, so two ranks' pieces interleave mid-line and a log grep misses a line that was printed
// (CI saw this once). Composing the line first and writing it in one call keeps it whole.
inline void write_log_line(std::ostream& os, const std::string& line) {
  os << (line + "\n") << std::flush;
}

}  // namespace rbk
