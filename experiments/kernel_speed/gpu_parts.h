// exp_kernel_speed's GPU parts besides the same-work comparison (same_work.h): the launch floor and
// copy bandwidth, the paper point on the model's inputs, the Triton-like compat kernel, the sweep
// over N, and the summary keys that need several parts. Each measures, checks against fp64 before
// it times, and writes its rows and summary keys (main.cpp's top comment lists them). CUDA builds
// only (gpu_parts.cpp is empty elsewhere).
#pragma once
#include "rbk/config.h"
#include "rbk/experiment.h"

#include <cstdint>

namespace rbk::kernel_speed {

// What every part shares.
struct GpuPlan {
  int64_t batch = 0, n = 0;  // the paper point
  int warmup = 0, repeats = 0;
  double copy_gbps = 0.0;    // the device-to-device copy bandwidth measured in this run
};

// Measures the copy bandwidth (returned) and the empty kernel's launch floor.
double measure_floors(const rbk::Config& cfg, int warmup, int repeats, rbk::ExperimentOutput& out);
void run_paper_point(const GpuPlan& plan, rbk::ExperimentOutput& out);
void run_compat(const GpuPlan& plan, rbk::ExperimentOutput& out);
void run_sweep(const rbk::Config& cfg, const GpuPlan& plan, rbk::ExperimentOutput& out);
// The stable kernels against the compat kernel, and issue 3's targets: they need the paper point
// and the compat part of this run.
void summarise_paper_point_and_compat(rbk::ExperimentOutput& out);

}  // namespace rbk::kernel_speed
