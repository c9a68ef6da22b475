// Birman-Schwinger operator, Schatten norms and bounds, upstream's clipping path, Mourre checks
// (claim C08). See rbk/birman_schwinger.h.
#include "rbk/birman_schwinger.h"

#include "rbk/spectral_statistics.h"

#include <cmath>
#include <limits>
#include <stdexcept>

namespace rbk {

namespace {
// LibTorch errors carry a stack trace after the first line; results keep the message only.
std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

const auto kF64 = torch::TensorOptions().dtype(torch::kFloat64);
const auto kC128 = torch::TensorOptions().dtype(torch::kComplexDouble);

void check_vec(const torch::Tensor& t, const char* name) {
  TORCH_CHECK(t.dim() == 1 && t.scalar_type() == torch::kFloat64, name, " must be (N,) float64, got ", t.sizes(), " ",
              t.scalar_type());
}

// Best c with  M >= c  or  -M >= c  (Hermitian M): the Mourre constant allowing either sign of A.
double best_sign_constant(const torch::Tensor& m) {
  auto e = torch::linalg_eigvalsh(m, "L");
  const double lo = e.min().item<double>(), hi = e.max().item<double>();
  return std::max(lo, -hi);
}
}  // namespace

FreeResolventKernel parse_free_resolvent_kernel(const std::string& name) {
  if (name == "paper") return FreeResolventKernel::PaperFormula;
  if (name == "paper_abs") return FreeResolventKernel::PaperBound;
  if (name == "laplacian") return FreeResolventKernel::DiscreteLaplacian;
  throw std::invalid_argument("free resolvent kernel '" + name + "': expected paper, paper_abs or laplacian");
}

std::string to_string(FreeResolventKernel k) {
  switch (k) {
    case FreeResolventKernel::PaperFormula: return "paper";
    case FreeResolventKernel::PaperBound: return "paper_abs";
    case FreeResolventKernel::DiscreteLaplacian: return "laplacian";
  }
  return "?";
}

torch::Tensor free_resolvent_operator(const torch::Tensor& x, double h, c10::complex<double> z,
                                      FreeResolventKernel kind) {
  check_vec(x, "free_resolvent_operator: x");
  TORCH_CHECK(h > 0 && std::isfinite(h), "free_resolvent_operator: spacing h must be > 0, got ", h);
  TORCH_CHECK(z.imag() > 0, "free_resolvent_operator: Im z must be > 0, got ", z.imag());
  const int64_t n = x.size(0);
  if (kind == FreeResolventKernel::DiscreteLaplacian) {
    auto hz = (laplacian_matrix(n) / (h * h)).to(torch::kComplexDouble) -
              torch::eye(n, kC128) * c10::Scalar(z);
    return torch::linalg_inv(hz);
  }
  auto d = x.unsqueeze(1) - x.unsqueeze(0);  // u - v
  auto arg = kind == FreeResolventKernel::PaperFormula ? d : d.abs();
  // e^{i z arg} = e^{-Im z * arg} e^{i Re z * arg}; modulus and phase separately keep it exact.
  auto r0 = torch::polar(torch::exp(-z.imag() * arg), z.real() * arg);
  r0 = r0 * c10::Scalar(c10::complex<double>(0.0, 0.5)) * torch::sign(d).to(torch::kComplexDouble);
  return r0 * h;
}

torch::Tensor birman_schwinger_operator(const torch::Tensor& v, const torch::Tensor& x, double h,
                                        c10::complex<double> z, FreeResolventKernel kind) {
  check_vec(v, "birman_schwinger_operator: v");
  TORCH_CHECK(v.size(0) == x.size(0), "birman_schwinger_operator: v has ", v.size(0), " points, x has ", x.size(0));
  auto r = free_resolvent_operator(x, h, z, kind);
  auto s = v.abs().sqrt().to(torch::kComplexDouble);
  return s.unsqueeze(1) * r * s.unsqueeze(0);
}

SchattenNorms schatten_norms(const torch::Tensor& k) {
  TORCH_CHECK(k.dim() == 2, "schatten_norms: need a matrix, got ", k.sizes());
  auto sv = torch::linalg_svdvals(k);
  SchattenNorms r;
  r.s1 = sv.sum().item<double>();
  r.op = sv.max().item<double>();
  // Scaled by the largest singular value so that S2 of the growing paper kernel (sigma up to
  // ~1e220 at N = 256, Im z = 2) does not overflow in the squares.
  r.s2 = r.op > 0 && std::isfinite(r.op) ? r.op * (sv / r.op).pow(2).sum().sqrt().item<double>()
                                         : (sv * sv).sum().sqrt().item<double>();
  return r;
}

double potential_lp_norm(const torch::Tensor& v, double p, double h) {
  check_vec(v, "potential_lp_norm: v");
  return std::pow((v.abs().pow(p).sum() * h).item<double>(), 1.0 / p);
}

SchattenBounds schatten_bounds(double im_z, double v_l1, double v_l2) {
  SchattenBounds b;
  b.s2 = 0.5 / std::sqrt(im_z) * v_l2;
  b.s1 = 0.5 / im_z * v_l1;
  return b;
}

CompatBirmanSchwingerResult compat_birman_schwinger(const torch::Tensor& v, c10::complex<double> z,
                                                    const CompatBirmanSchwingerOptions& opt) {
  TORCH_CHECK(v.dim() == 2 && v.scalar_type() == torch::kFloat32, "compat_birman_schwinger: v must be (B, N) float32, got ",
              v.sizes(), " ", v.scalar_type());
  const auto rdt = opt.complex64 ? torch::kFloat32 : torch::kFloat64;
  const auto cdt = opt.complex64 ? torch::kComplexFloat : torch::kComplexDouble;
  const int64_t b = v.size(0), n = v.size(1);
  CompatBirmanSchwingerResult r;
  // Same operation order as upstream, in its working precision, so that its overflows recur.
  auto pos = torch::arange(n, torch::TensorOptions().dtype(rdt));
  auto diff = pos.unsqueeze(1) - pos.unsqueeze(0);
  auto r0 = torch::exp(diff.to(cdt) * c10::Scalar(c10::complex<double>(0.0, 1.0) * z)) *
            c10::Scalar(c10::complex<double>(0.0, 0.5)) * torch::sign(diff).to(cdt);
  if (opt.use_lap) {
    auto w = 1.0 / (1.0 + pos.abs());
    r0 = r0 * w.unsqueeze(1).to(cdt) * w.unsqueeze(0).to(cdt);
  }
  r.max_abs_r0 = r0.abs().max().item<double>();
  auto vv = v.to(rdt);
  auto sq = (vv.abs() + 1e-10).sqrt().to(cdt);                   // (B, N)
  auto k = sq.unsqueeze(2) * r0.unsqueeze(0) * sq.unsqueeze(1);  // (B, N, N)
  auto kbar = k.mean(0);
  r.nonfinite_k = (~torch::isfinite(kbar)).sum().item<int64_t>();
  try {
    auto sv = torch::linalg_svdvals(kbar);
    r.s1 = sv.sum().item<double>();
    r.s2 = (sv * sv).sum().sqrt().item<double>();
  } catch (const std::exception& e) {
    r.s1 = r.s2 = std::numeric_limits<double>::quiet_NaN();
    r.svd_error = first_line(e.what());
  }
  const double l1 = vv.abs().mean(0).sum().item<double>();
  const double l2 = (vv * vv).mean(0).sum().sqrt().item<double>();
  const double eta = z.imag();
  r.s2_bound = 0.5 * std::pow(eta, -0.5) * l2;
  r.s1_bound = opt.epsilon > 0.5 ? 0.5 / eta * l1 : std::numeric_limits<double>::infinity();
  r.s2_satisfied = r.s2 <= r.s2_bound;
  r.s1_satisfied = r.s1 <= r.s1_bound;
  r.clipping_fired = r.s2 > r.s2_bound;  // NaN compares false, as in Python
  if (r.clipping_fired) {
    std::vector<torch::Tensor> clipped;
    for (int64_t i = 0; i < b; ++i) {
      try {
        auto usv = torch::linalg_svd(k[i], false);
        auto s = std::get<1>(usv).clamp_max(opt.schatten_threshold).to(cdt);
        clipped.push_back(torch::matmul(std::get<0>(usv) * s.unsqueeze(0), std::get<2>(usv)));
      } catch (const std::exception& e) {
        ++r.clip_svd_failures;
        if (r.svd_error.empty()) r.svd_error = first_line(e.what());
        clipped.push_back(k[i]);
      }
    }
    k = torch::stack(clipped);
  }
  std::vector<torch::Tensor> g;
  auto eye = torch::eye(n, torch::TensorOptions().dtype(cdt));
  for (int64_t i = 0; i < b; ++i) {
    torch::Tensor inv;
    try {
      inv = torch::linalg_inv(eye + k[i]);
    } catch (const std::exception&) {
      ++r.inverse_failures;
      try {
        inv = torch::linalg_pinv(eye + k[i], 1e-15, false);
      } catch (const std::exception& e) {
        if (r.svd_error.empty()) r.svd_error = first_line(e.what());
        inv = torch::full({n, n}, std::numeric_limits<double>::quiet_NaN(), torch::TensorOptions().dtype(cdt));
      }
    }
    g.push_back(torch::diagonal(inv));
  }
  auto gg = torch::stack(g);  // (B, N)
  r.features_all_finite_before = torch::isfinite(gg).all().item<bool>();
  auto re = torch::real(gg), im = torch::imag(gg);
  auto ok = torch::isfinite(re) & torch::isfinite(im);
  re = torch::where(ok, re, torch::zeros_like(re));
  im = torch::where(ok, im, torch::zeros_like(im));
  auto mag = (re * re + im * im).sqrt();
  auto f = torch::clamp_max(opt.feature_clip / mag.clamp_min(1e-30), 1.0);
  re = re * f;
  im = im * f;
  r.features_all_zero = (re.abs().max().item<double>() == 0.0) && (im.abs().max().item<double>() == 0.0);
  return r;
}

MourreResult mourre_check(int64_t n, double window_lo, double window_hi) {
  TORCH_CHECK(n >= 8, "mourre_check: N must be >= 8, got ", n);
  MourreResult r;
  auto h0 = laplacian_matrix(n).to(torch::kComplexDouble);
  auto xs = torch::arange(n, kF64);
  auto x = torch::diag(xs).to(torch::kComplexDouble);
  const c10::Scalar iu(c10::complex<double>(0.0, 1.0));
  auto c = (torch::matmul(h0, x) - torch::matmul(x, h0)) * iu;  // i[H0, X], Hermitian
  // Centred difference P: super-diagonal -i/2, sub-diagonal +i/2 (upstream's P).
  auto ones = torch::ones({n - 1}, kF64).to(torch::kComplexDouble);
  auto p = torch::diag(ones * c10::Scalar(c10::complex<double>(0.0, -0.5)), 1) +
           torch::diag(ones * c10::Scalar(c10::complex<double>(0.0, 0.5)), -1);
  auto interior = torch::indexing::Slice(2, n - 2);
  r.upstream_max_diff = (c.index({interior, interior}) + 2.0 * p.index({interior, interior})).abs().max().item<double>();
  r.upstream_verified = r.upstream_max_diff < 2.0 / static_cast<double>(n);
  auto eye = torch::eye(n, kC128);
  auto ce = torch::linalg_eigvalsh(c, "L");
  r.commutator_min_eig = ce.min().item<double>();
  r.commutator_max_eig = ce.max().item<double>();
  r.commutator_minus_identity_norm = torch::linalg_eigvalsh(c - eye, "L").abs().max().item<double>();
  // Spectral projection of H0 onto the window.
  auto eig = torch::linalg_eigh(h0, "L");
  auto lam = std::get<0>(eig);
  auto sel = torch::nonzero((lam >= window_lo) & (lam <= window_hi)).squeeze(1);
  r.window_states = sel.numel();
  if (r.window_states == 0) throw std::invalid_argument("mourre_check: no eigenvalue of H0 in the window");
  auto u = std::get<1>(eig).index_select(1, sel);  // (N, m)
  auto proj = [&](const torch::Tensor& m) {
    auto pm = torch::matmul(u.conj().transpose(0, 1), torch::matmul(m, u));
    return 0.5 * (pm + pm.conj().transpose(0, 1));  // symmetrise away rounding
  };
  r.mourre_constant_position = best_sign_constant(proj(c));
  auto ad = 0.5 * (torch::matmul(x, p) + torch::matmul(p, x));
  auto cd = (torch::matmul(h0, ad) - torch::matmul(ad, h0)) * iu;
  auto pcd = proj(cd);
  r.mourre_constant_dilation = best_sign_constant(pcd);
  r.projected_trace_dilation = std::abs(torch::real(torch::trace(pcd)).item<double>());
  return r;
}

}  // namespace rbk
