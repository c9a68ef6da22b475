// Timing helpers shared by experiments and benchmarks: median of repetitions after warm-up.
#pragma once
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

double median(std::vector<double> values);

// Least-squares slope of log(y) against log(x): the exponent of y ~ x^p. Needs >= 2 points.
double fit_power_law_exponent(const std::vector<double>& x, const std::vector<double>& y);

}  // namespace rbk
