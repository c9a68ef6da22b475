// One memory probe of exp_memory_search (claims C15, C22): a model of one width built, run and
// measured in a fresh process whose memory is capped at the budget.
//   CPU:  the child sets RLIMIT_DATA (Linux >= 4.7 counts heap and private writable mappings,
//         i.e. every tensor) to its data size at start plus the budget, so the budget is what the
//         probe's own allocations may add to the runtime LibTorch brings; an allocation past it
//         fails inside LibTorch's allocator (c10::Error "can't allocate memory") or as
//         std::bad_alloc, which the child reports as status "oom". Peak = VmHWM - VmRSS at start.
//   CUDA: the caching allocator's per-process memory fraction (torch_compat_memory.h) at
//         budget / total; peak = the allocator's peak of allocated bytes (written, not run here).
// The parent re-executes its own binary (/proc/self/exe --memory-probe SPEC RESULT), waits with a
// timeout and reads the result file; a child killed by a signal or past its timeout counts as not
// fitting, with its status saying why.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace memory_search {

constexpr const char* kProbeFlag = "--memory-probe";

// Child side: runs the probe described by spec_path, writes result_path. Returns the exit code.
int run_probe_child(const std::string& spec_path, const std::string& result_path);

// Parent side: runs one probe in a fresh process. spec: {arch, d_model, n_layers, vocab_size,
// seq_len, batch, training, steps, loss_chunk_tokens, checkpoint_blocks, budget_bytes (0 = none),
// device, threads, weight_dtype, htt_rank, seed, autocast (optional, default true: bf16 autocast
// for CUDA training probes)}. Returns the child's result with "status" (ok | oom | killed | timeout
// | error), "autocast" (whether it ran under autocast) and the wall time of the whole probe.
nlohmann::json run_probe_process(const nlohmann::json& spec, const std::string& scratch_dir, double timeout_s);

}  // namespace memory_search
