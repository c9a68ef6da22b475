// Peak memory of a run (issue 17: rbk_train and the sweep record it beside every result): the
// CUDA caching allocator's peak of allocated bytes on a CUDA device, and on the CPU the process's
// peak resident set (VmHWM of /proc/self/status). The CPU peak is per process: it is reset by
// writing "5" to /proc/self/clear_refs (Linux >= 4.0); where that write is refused the peak counts
// from process start, and the record says so.
#pragma once
#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <cstdint>
#include <string>

namespace rbk {

struct PeakMemory {
  int64_t cuda_peak_allocated_bytes = -1;  // -1: not a CUDA device (JSON null)
  int64_t cpu_peak_rss_bytes = -1;         // -1: no /proc (JSON null)
  // "since_reset": VmHWM after a successful clear_refs reset at the start of the measured span;
  // "since_process_start": the reset was refused; "unavailable": no /proc/self/status.
  std::string cpu_peak_rss_scope = "unavailable";
  nlohmann::json to_json() const;
  static PeakMemory from_json(const nlohmann::json& j);
};

// Starts a measured span: resets the CUDA allocator's peak on `device` (when CUDA) and tries to
// reset the process's VmHWM. Returns the scope the CPU peak will have.
std::string reset_peak_memory(const torch::Device& device);

// Reads both peaks now. `cpu_scope` is what reset_peak_memory returned.
PeakMemory read_peak_memory(const torch::Device& device, const std::string& cpu_scope);

// A "kB" field of /proc/self/status in bytes ("VmHWM", "VmRSS", ...), or -1 where there is none.
int64_t proc_status_bytes(const std::string& field);
// VmHWM (peak resident set) and VmRSS (current resident set) in bytes, or -1.
int64_t cpu_peak_rss_bytes();
int64_t cpu_current_rss_bytes();

// Whether a message is an allocator's: "out of memory" (CUDA), "can't allocate memory" or "not
// enough memory" (CPU allocator), in any case.
bool message_says_out_of_memory(const std::string& message);
// Whether e is an allocator's out-of-memory failure, which runs record as status "oom" (a result,
// not a bug): c10::OutOfMemoryError (CUDA), std::bad_alloc, or a c10::Error whose message says so
// (LibTorch 1.13's CUDA and CPU allocators). Other exceptions are not the allocator's, whatever they
// say; the sweep runner, which receives a runner's exceptions second-hand, also reads their message.
bool is_out_of_memory(const std::exception& e);

}  // namespace rbk
