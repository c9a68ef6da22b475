// Prime-Bump potential (papers 000/001 eq. (5); claims C07, C08). See rbk/prime_bump.h.
#include "rbk/prime_bump.h"

#include <cmath>
#include <stdexcept>

namespace rbk {

PrimeBumpGrid parse_prime_bump_grid(const std::string& name) {
  if (name == "integer") return PrimeBumpGrid::Integer;
  if (name == "scaled") return PrimeBumpGrid::Scaled;
  throw std::invalid_argument("prime-bump grid '" + name + "': expected 'integer' or 'scaled'");
}

std::string to_string(PrimeBumpGrid grid) { return grid == PrimeBumpGrid::Integer ? "integer" : "scaled"; }

std::vector<int64_t> primes_below(int64_t n) {
  std::vector<int64_t> primes;
  if (n <= 2) return primes;
  std::vector<char> composite(static_cast<size_t>(n), 0);
  for (int64_t i = 2; i < n; ++i) {
    if (composite[i]) continue;
    primes.push_back(i);
    for (int64_t j = i * i; j < n; j += i) composite[j] = 1;
  }
  return primes;
}

double prime_bump_alpha(int64_t p, int64_t k, double epsilon) {
  const double lp = std::log(static_cast<double>(p));
  return lp / std::pow(static_cast<double>(p), static_cast<double>(k) * (0.5 + epsilon));
}

double prime_bump_psi(double x, double epsilon) { return std::exp(-x * x / (2.0 * epsilon)) / std::sqrt(epsilon); }

static void check_options(const PrimeBumpOptions& opt, int64_t n) {
  if (!(opt.epsilon > 0.0) || !std::isfinite(opt.epsilon))
    throw std::invalid_argument("prime-bump epsilon = " + std::to_string(opt.epsilon) + ": expected > 0");
  if (opt.k_max < 1) throw std::invalid_argument("prime-bump k_max = " + std::to_string(opt.k_max) + ": expected >= 1");
  if (n < 2) throw std::invalid_argument("prime-bump N = " + std::to_string(n) + ": expected >= 2");
  if (opt.prime_limit < 0)
    throw std::invalid_argument("prime-bump prime_limit = " + std::to_string(opt.prime_limit) + ": expected >= 0");
}

static int64_t effective_limit(const PrimeBumpOptions& opt, int64_t n) { return opt.prime_limit > 0 ? opt.prime_limit : n; }

torch::Tensor prime_bump_positions(int64_t n, PrimeBumpGrid grid, const PrimeBumpOptions& opt) {
  check_options(opt, n);
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  if (grid == PrimeBumpGrid::Integer) return torch::arange(n, f64);
  const int64_t limit = effective_limit(opt, n);
  const auto primes = primes_below(limit);
  if (primes.empty())
    throw std::invalid_argument("prime-bump prime_limit = " + std::to_string(limit) + ": no primes below it");
  const double half = opt.margin_sigmas * std::sqrt(opt.epsilon);
  const double lo = std::log(2.0) - half;
  const double hi = std::log(static_cast<double>(primes.back())) + half;
  return torch::linspace(lo, hi, n, f64);
}

torch::Tensor prime_bump_potential_at(const torch::Tensor& x, const PrimeBumpOptions& opt) {
  TORCH_CHECK(x.dim() == 1 && x.scalar_type() == torch::kFloat64, "prime_bump_potential_at: x must be (N,) float64, got ",
              x.sizes(), " ", x.scalar_type());
  check_options(opt, std::max<int64_t>(x.size(0), 2));
  const int64_t limit = effective_limit(opt, x.size(0));
  const auto primes = primes_below(limit);
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  if (primes.empty()) return torch::zeros_like(x);
  std::vector<double> centre, weight;
  for (int64_t p : primes) {
    double a = 0.0;
    for (int64_t k = 1; k <= opt.k_max; ++k) a += prime_bump_alpha(p, k, opt.epsilon);
    centre.push_back(std::log(static_cast<double>(p)));
    weight.push_back(a);
  }
  auto c = torch::tensor(centre, f64);    // (P,)
  auto w = torch::tensor(weight, f64);    // (P,)
  auto d = x.unsqueeze(1) - c.unsqueeze(0);  // (N, P)
  auto psi = torch::exp(-d * d / (2.0 * opt.epsilon)) / std::sqrt(opt.epsilon);
  return opt.scale * torch::matmul(psi, w);
}

torch::Tensor prime_bump_potential(int64_t n, PrimeBumpGrid grid, const PrimeBumpOptions& opt, double* spacing) {
  auto x = prime_bump_positions(n, grid, opt);
  if (spacing) *spacing = (x[1] - x[0]).item<double>();
  PrimeBumpOptions o = opt;
  if (o.prime_limit == 0) o.prime_limit = n;
  return prime_bump_potential_at(x, o);
}

}  // namespace rbk
