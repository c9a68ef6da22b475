// Timing helpers shared by experiments and benchmarks: median of repetitions after warm-up.
#pragma once
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <functional>
#include <vector>

namespace rbk {

struct TimingStats {
  double median_s = 0;
  double min_s = 0;
  double max_s = 0;
  int repeats = 0;
};

// Wall-clock time of fn() (host clock; for CUDA work fn must synchronise itself).
TimingStats time_repeated(const std::function<void()>& fn, int warmup, int repeats);

// The record of a timing in result files: median_us, min_us, max_us, repeats.
nlohmann::json timing_json(const TimingStats& t);

double median(std::vector<double> values);

// Least-squares slope of log(y) against log(x): the exponent of y ~ x^p. Needs >= 2 points.
double fit_power_law_exponent(const std::vector<double>& x, const std::vector<double>& y);

// Counts the ATen operator calls dispatched on any thread while it is alive (RecordFunction's
// FUNCTION scope: every dispatcher call, nested ones and views included, and the autograd engine's
// threads too). A measure of host work per training step where a GPU step is launch-bound; not a
// kernel count. RecordFunction's global callbacks may only be added and removed while no other
// thread runs operators, so create and destroy a counter between synchronised steps; one at a time.
class OperatorCallCounter {
 public:
  OperatorCallCounter();
  ~OperatorCallCounter();
  OperatorCallCounter(const OperatorCallCounter&) = delete;
  OperatorCallCounter& operator=(const OperatorCallCounter&) = delete;
  int64_t count() const;  // calls since construction or the last reset()
  // The calls made while no other operator was running on their thread: what the program and
  // the autograd engine's nodes issue, without the operators that ATen's own composite and
  // fallback implementations call inside them. Where a CPU fallback loops over tensors that one
  // CUDA kernel handles (the _foreach_ operations), this is the count that carries over.
  int64_t outermost_count() const;
  void reset();

 private:
  uint64_t handle_;
};

}  // namespace rbk
