// Peak memory: CUDA allocator peak and the CPU peak resident set (see peak_memory.h; issue 17).
#include "rbk/peak_memory.h"

#include "rbk/torch_compat.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <new>
#include <sstream>

namespace rbk {

int64_t proc_status_bytes(const std::string& field) {
  std::ifstream in("/proc/self/status");
  const std::string prefix = field + ":";
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) != 0) continue;
    std::istringstream ss(line.substr(prefix.size()));
    int64_t kib = -1;
    ss >> kib;  // "VmHWM:    13528 kB"
    return kib >= 0 ? kib * 1024 : -1;
  }
  return -1;
}

int64_t cpu_peak_rss_bytes() { return proc_status_bytes("VmHWM"); }
int64_t cpu_current_rss_bytes() { return proc_status_bytes("VmRSS"); }

std::string reset_peak_memory(const torch::Device& device) {
  cuda_reset_peak_memory(device);
  if (cpu_peak_rss_bytes() < 0) return "unavailable";
  // "5" resets the peak resident set size to the current one (proc(5), /proc/pid/clear_refs).
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
  out.flush();
  return out.good() ? "since_reset" : "since_process_start";
}

PeakMemory read_peak_memory(const torch::Device& device, const std::string& cpu_scope) {
  PeakMemory p;
  p.cuda_peak_allocated_bytes = cuda_peak_allocated_bytes(device);
  p.cpu_peak_rss_bytes = cpu_peak_rss_bytes();
  p.cpu_peak_rss_scope = p.cpu_peak_rss_bytes < 0 ? "unavailable" : cpu_scope;
  return p;
}

nlohmann::json PeakMemory::to_json() const {
  auto bytes = [](int64_t b) { return b < 0 ? nlohmann::json(nullptr) : nlohmann::json(b); };
  return {{"cuda_peak_allocated_bytes", bytes(cuda_peak_allocated_bytes)},
          {"cpu_peak_rss_bytes", bytes(cpu_peak_rss_bytes)},
          {"cpu_peak_rss_scope", cpu_peak_rss_scope}};
}

PeakMemory PeakMemory::from_json(const nlohmann::json& j) {
  PeakMemory p;
  auto bytes = [&](const char* k) {
    return j.contains(k) && j.at(k).is_number() ? j.at(k).get<int64_t>() : int64_t(-1);
  };
  p.cuda_peak_allocated_bytes = bytes("cuda_peak_allocated_bytes");
  p.cpu_peak_rss_bytes = bytes("cpu_peak_rss_bytes");
  p.cpu_peak_rss_scope = j.value("cpu_peak_rss_scope", std::string("unavailable"));
  return p;
}

bool message_says_out_of_memory(const std::string& message) {
  std::string m = message;
  std::transform(m.begin(), m.end(), m.begin(), [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  return m.find("out of memory") != std::string::npos || m.find("can't allocate memory") != std::string::npos ||
         m.find("not enough memory") != std::string::npos;
}

bool is_out_of_memory(const std::exception& e) {
  if (dynamic_cast<const c10::OutOfMemoryError*>(&e) != nullptr) return true;
  if (dynamic_cast<const std::bad_alloc*>(&e) != nullptr) return true;
  const auto* c = dynamic_cast<const c10::Error*>(&e);
  return c != nullptr && message_says_out_of_memory(c->what_without_backtrace());
}

}  // namespace rbk
