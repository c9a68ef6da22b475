// Prime-Bump potential V_eps (papers 000/001 eq. (5), Definition 3; claims C07, C08):
//   V(x) = scale * sum_{p < P prime} sum_{k=1..k_max} alpha_{p,k}(eps) psi_eps(x - log p),
//   alpha_{p,k}(eps) = log p / p^{k(1/2+eps)},   psi_eps(x) = eps^{-1/2} exp(-x^2 / (2 eps)).
// Every power k is centred at log p, as upstream's compute_potential does (upstream-audit 4.1; the
// docstring's k log p is not what the code computes), so the k-sum only rescales each bump.
// Two grids:
//   Integer (compat): upstream's token positions x = 0..N-1 with P = N. The bumps sit in
//     [log 2, log N] < 8, so V is non-negligible on about the first ten sites only.
//   Scaled: N equispaced points covering [log 2 - m sqrt(eps), log P + m sqrt(eps)], so every bump
//     is resolved by many points whatever N is; P is fixed, so refining N is h -> 0.
// Everything here is fp64.
#pragma once
#include <torch/torch.h>
#include <cstdint>
#include <string>
#include <vector>

namespace rbk {

enum class PrimeBumpGrid { Integer, Scaled };

// "integer" / "scaled"; throws std::invalid_argument naming the value otherwise.
PrimeBumpGrid parse_prime_bump_grid(const std::string& name);
std::string to_string(PrimeBumpGrid grid);

struct PrimeBumpOptions {
  double epsilon = 1.0;       // bump width parameter eps > 0
  int64_t k_max = 3;          // powers k = 1..k_max
  double scale = 0.02;        // upstream's overall amplitude
  int64_t prime_limit = 0;    // primes p < prime_limit; 0 means "= N" (upstream's choice)
  double margin_sigmas = 5.0; // Scaled grid: half-widths sqrt(eps) kept beyond the outer centres
};

// All primes p < n (sieve of Eratosthenes), ascending.
std::vector<int64_t> primes_below(int64_t n);

double prime_bump_alpha(int64_t p, int64_t k, double epsilon);
double prime_bump_psi(double x, double epsilon);

// Grid positions for N sites.
torch::Tensor prime_bump_positions(int64_t n, PrimeBumpGrid grid,
                                   const PrimeBumpOptions& opt);  // -> (N,) float64

// V evaluated at arbitrary positions (vectorised over the primes).
torch::Tensor prime_bump_potential_at(const torch::Tensor& x,  // (N,) float64 positions
                                      const PrimeBumpOptions& opt);  // -> (N,) float64

// Convenience: positions + potential on the chosen grid. spacing gets h (1 for Integer).
torch::Tensor prime_bump_potential(int64_t n, PrimeBumpGrid grid, const PrimeBumpOptions& opt,
                                   double* spacing = nullptr);  // -> (N,) float64

}  // namespace rbk
