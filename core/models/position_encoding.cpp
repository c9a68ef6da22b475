// Position modes of the language models and the fixed encodings (see position_encoding.h; issue 17).
#include "rbk/position_encoding.h"

#include "rbk/lm_config.h"

#include <cmath>
#include <stdexcept>

namespace rbk {
namespace {

// Base of the geometric frequency ladder of both fixed encodings (Vaswani et al.; RoFormer).
constexpr double kFrequencyBase = 10000.0;

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

// (n, n_freq) float64 angles t * base^(-2i / dim), t < n, i < n_freq.
torch::Tensor position_angles(int64_t n, int64_t n_freq, int64_t dim) {
  const auto opts = torch::TensorOptions().dtype(torch::kFloat64);
  const auto i = torch::arange(n_freq, opts);
  const auto inv_freq = torch::pow(kFrequencyBase, -2.0 * i / static_cast<double>(dim));  // (n_freq,)
  return torch::arange(n, opts).unsqueeze(1) * inv_freq.unsqueeze(0);
}

}  // namespace

std::string to_string(PositionMode m) {
  switch (m) {
    case PositionMode::Learned: return "learned";
    case PositionMode::None: return "none";
    case PositionMode::Sinusoidal: return "sinusoidal";
    case PositionMode::Rotary: return "rotary";
  }
  return "?";
}

std::vector<std::string> supported_positions(const std::string& arch) {
  if (arch == "resnet_bk") return {"learned", "none", "sinusoidal"};
  if (arch == "transformer") return {"learned", "none", "sinusoidal", "rotary"};
  if (arch == "mamba" || arch == "rwkv") return {"none"};
  return {};
}

PositionMode resolve_position(const LmConfig& c) {
  const auto allowed = supported_positions(c.arch);
  if (allowed.empty())
    throw std::invalid_argument("model config 'arch' = '" + c.arch + "': no position modes known for this architecture");
  const std::string mode = c.position == "auto" ? allowed.front() : c.position;
  bool ok = false;
  for (const auto& a : allowed) ok = ok || a == mode;
  if (!ok)
    throw std::invalid_argument("model config 'position' = '" + c.position + "' is not supported by arch '" + c.arch +
                                "': expected auto or one of " + join(allowed));
  if (c.arch == "resnet_bk" && c.prime_bump != "none" && mode != "learned")
    throw std::invalid_argument("model config 'prime_bump' = '" + c.prime_bump + "' needs position = 'learned' (it "
                                "perturbs rows of the learned position table); got position = '" + c.position + "'");
  if (mode == "rotary" && (c.n_heads < 1 || c.d_model % c.n_heads != 0 || (c.d_model / c.n_heads) % 2 != 0))
    throw std::invalid_argument("model config 'position' = 'rotary' needs an even head dimension d_model / n_heads; got "
                                "d_model = " + std::to_string(c.d_model) + ", n_heads = " + std::to_string(c.n_heads));
  if (mode == "learned") return PositionMode::Learned;
  if (mode == "none") return PositionMode::None;
  if (mode == "sinusoidal") return PositionMode::Sinusoidal;
  return PositionMode::Rotary;
}

void check_position_supported(const LmConfig& c) { (void)resolve_position(c); }

int64_t position_parameters(const LmConfig& c) {
  return resolve_position(c) == PositionMode::Learned ? c.n_seq * c.d_model : 0;
}

torch::Tensor sinusoidal_positions(int64_t n, int64_t d_model, const torch::TensorOptions& options) {
  TORCH_CHECK(n >= 0 && d_model >= 1, "sinusoidal_positions: need n >= 0 and d_model >= 1, got ", n, ", ", d_model);
  const int64_t n_freq = (d_model + 1) / 2;
  const auto a = position_angles(n, n_freq, d_model);  // (n, n_freq)
  // Interleave: column 2i = sin, 2i + 1 = cos; an odd D drops the last cosine.
  auto pe = torch::stack({torch::sin(a), torch::cos(a)}, 2).reshape({n, 2 * n_freq});
  if (2 * n_freq != d_model) pe = pe.narrow(1, 0, d_model);
  return pe.to(options);
}

double sinusoidal_amplitude(const LmConfig& c) {
  // Each sin/cos pair has mean square 1/2, so the unit-amplitude table has RMS 1/sqrt(2).
  const double embedding_std = c.init == "papertime" ? 0.02 : 1.0;
  return std::sqrt(2.0) * embedding_std;
}

RotaryTables rotary_tables(int64_t n, int64_t head_dim, const torch::TensorOptions& options) {
  TORCH_CHECK(head_dim >= 2 && head_dim % 2 == 0, "rotary_tables: head_dim must be even and >= 2, got ", head_dim);
  const auto a = position_angles(n, head_dim / 2, head_dim);  // (n, head_dim / 2)
  return {torch::cos(a).to(options), torch::sin(a).to(options)};
}

torch::Tensor apply_rotary(const torch::Tensor& x, const RotaryTables& t) {
  const int64_t half = x.size(-1) / 2;
  TORCH_CHECK(x.dim() >= 2 && x.size(-1) == 2 * half && t.cos.size(0) == x.size(-2) && t.cos.size(1) == half,
              "apply_rotary: x must be (..., n, 2 * ", t.cos.size(1), ") with n = ", t.cos.size(0), ", got ", x.sizes());
  const auto c = t.cos.to(x.scalar_type()), s = t.sin.to(x.scalar_type());
  const auto x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);
  return torch::cat({x1 * c - x2 * s, x1 * s + x2 * c}, -1);
}

}  // namespace rbk
