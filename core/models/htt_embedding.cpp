// HTT embedding (htt_embedding.h; seed 001 Table 10, upstream-audit §6.3).
#include "rbk/htt_embedding.h"

#include <stdexcept>
#include <string>

namespace rbk {

namespace {
int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t ceil_sqrt(int64_t x) {
  int64_t r = 0;
  while (r * r < x) ++r;
  return r;
}
}  // namespace

HttFactors htt_factors(int64_t vocab_size, int64_t d_model) {
  if (vocab_size < 1 || d_model < 1)
    throw std::invalid_argument("htt_factors: vocab_size and d_model must be >= 1, got " + std::to_string(vocab_size) +
                                ", " + std::to_string(d_model));
  HttFactors f;
  f.v1 = ceil_sqrt(vocab_size);
  f.v2 = ceil_div(vocab_size, f.v1);
  f.d1 = ceil_sqrt(d_model);
  f.d2 = ceil_div(d_model, f.d1);
  return f;
}

int64_t htt_embedding_parameter_count(int64_t vocab_size, int64_t d_model, int64_t rank, bool phase_encoding) {
  const HttFactors f = htt_factors(vocab_size, d_model);
  return rank * (f.v1 * f.d1 + f.v2 * f.d2) + (phase_encoding ? rank : 0);
}

HttEmbeddingImpl::HttEmbeddingImpl(const HttEmbeddingOptions& options) : options_(options) {
  if (options.rank < 1) throw std::invalid_argument("HttEmbedding: rank must be >= 1, got " + std::to_string(options.rank));
  factors_ = htt_factors(options.vocab_size, options.d_model);
  const int64_t r = options.rank;
  core1_ = register_parameter("core1", torch::randn({factors_.v1, r, factors_.d1}) * options.init_scale);
  core2_ = register_parameter("core2", torch::randn({factors_.v2, r, factors_.d2}) * options.init_scale);
  if (options.phase_encoding)
    phase_ = register_parameter("phase", torch::randn({r}) * 0.1);
  else
    phase_ = register_buffer("phase", torch::zeros({r}));
}

torch::Tensor HttEmbeddingImpl::forward(const torch::Tensor& ids) {
  TORCH_CHECK(ids.dim() == 2 && ids.scalar_type() == torch::kInt64, "HttEmbedding: ids must be (B, n) int64, got ",
              ids.sizes(), " ", ids.scalar_type());
  if (ids.numel() > 0) {
    const auto lo = ids.min().item<int64_t>(), hi = ids.max().item<int64_t>();
    TORCH_CHECK(lo >= 0 && hi < options_.vocab_size, "HttEmbedding: token ids must lie in [0, ", options_.vocab_size,
                "), got [", lo, ", ", hi, "]");
  }
  const int64_t B = ids.size(0), n = ids.size(1), r = options_.rank;
  const auto flat = ids.reshape({-1});
  // t = i1 v2 + i2; i1 < v1 holds because v1 v2 >= V.
  const auto i1 = torch::div(flat, factors_.v2, "floor");
  const auto i2 = torch::remainder(flat, factors_.v2);
  const auto amplitude = torch::cos(phase_).view({1, r, 1});
  const auto a = core1_.index_select(0, i1) * amplitude;  // (T, r, d1)
  const auto b = core2_.index_select(0, i2);              // (T, r, d2)
  const auto outer = torch::bmm(a.transpose(1, 2), b);    // (T, d1, d2)
  return outer.reshape({B * n, factors_.d1 * factors_.d2}).narrow(1, 0, options_.d_model).reshape({B, n, options_.d_model});
}

}  // namespace rbk
