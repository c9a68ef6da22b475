// Median-of-repetitions timing and power-law fits (time ~ N^p) for the O(N) claims.
#include "rbk/timing.h"

#include <ATen/record_function.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <stdexcept>

namespace rbk {

double median(std::vector<double> values) {
  if (values.empty()) throw std::invalid_argument("median of an empty set");
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

nlohmann::json timing_json(const TimingStats& t) {
  return {{"median_us", t.median_s * 1e6}, {"min_us", t.min_s * 1e6}, {"max_us", t.max_s * 1e6}, {"repeats", t.repeats}};
}

TimingStats time_repeated(const std::function<void()>& fn, int warmup, int repeats) {
  if (repeats < 1) throw std::invalid_argument("time_repeated: repeats must be >= 1");
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<double> t;
  t.reserve(repeats);
  for (int i = 0; i < repeats; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    const auto t1 = std::chrono::steady_clock::now();
    t.push_back(std::chrono::duration<double>(t1 - t0).count());
  }
  TimingStats s;
  s.repeats = repeats;
  s.min_s = *std::min_element(t.begin(), t.end());
  s.max_s = *std::max_element(t.begin(), t.end());
  s.median_s = median(t);
  return s;
}

double fit_power_law_exponent(const std::vector<double>& x, const std::vector<double>& y) {
  if (x.size() != y.size() || x.size() < 2) throw std::invalid_argument("fit_power_law_exponent: need >= 2 (x, y) pairs");
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  const double n = static_cast<double>(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    if (!(x[i] > 0) || !(y[i] > 0)) throw std::invalid_argument("fit_power_law_exponent: values must be positive");
    const double lx = std::log(x[i]), ly = std::log(y[i]);
    sx += lx;
    sy += ly;
    sxx += lx * lx;
    sxy += lx * ly;
  }
  const double den = n * sxx - sx * sx;
  if (den == 0) throw std::invalid_argument("fit_power_law_exponent: all x equal");
  return (n * sxy - sx * sy) / den;
}

namespace {
// The callback is a plain function pointer (no state of its own), hence a file-level counter.
std::atomic<int64_t> g_operator_calls{0};
std::atomic<int64_t> g_outermost_calls{0};
std::atomic<bool> g_counter_alive{false};
thread_local int t_operator_depth = 0;  // FUNCTION-scope operators active on this thread
std::unique_ptr<at::ObserverContext> count_operator_call(const at::RecordFunction&) {
  g_operator_calls.fetch_add(1, std::memory_order_relaxed);
  if (t_operator_depth++ == 0) g_outermost_calls.fetch_add(1, std::memory_order_relaxed);
  return nullptr;
}
void leave_operator_call(const at::RecordFunction&, at::ObserverContext*) {
  if (t_operator_depth > 0) --t_operator_depth;
}
}  // namespace

OperatorCallCounter::OperatorCallCounter() {
  if (g_counter_alive.exchange(true)) throw std::logic_error("OperatorCallCounter: only one may exist at a time");
  reset();
  handle_ = at::addGlobalCallback(
      at::RecordFunctionCallback(count_operator_call, leave_operator_call).scopes({at::RecordScope::FUNCTION}));
}

OperatorCallCounter::~OperatorCallCounter() {
  at::removeCallback(handle_);
  g_counter_alive = false;
}

int64_t OperatorCallCounter::count() const { return g_operator_calls.load(); }

int64_t OperatorCallCounter::outermost_count() const { return g_outermost_calls.load(); }

void OperatorCallCounter::reset() {
  g_operator_calls = 0;
  g_outermost_calls = 0;
}

}  // namespace rbk
