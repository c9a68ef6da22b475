// Mamba-1 LM baseline (see mamba_lm.h; issue 7).
#include "rbk/mamba_lm.h"

#include "rbk/block_checkpoint.h"
#include "rbk/position_encoding.h"

#include <cmath>

namespace rbk {

MambaBlockOptions MambaBlockOptions::from_config(const LmConfig& c) {
  MambaBlockOptions o;
  o.d_model = c.d_model;
  o.expand = c.expand;
  o.d_state = c.d_state;
  o.d_conv = c.d_conv;
  o.dt_rank = c.dt_rank;
  o.n_layers = c.n_layers;
  return o;
}

MambaBlockImpl::MambaBlockImpl(const MambaBlockOptions& o) : options(o) {
  const int64_t D = o.d_model, Di = o.d_inner(), N = o.d_state, R = o.resolved_dt_rank(), K = o.d_conv;
  in_proj = register_module("in_proj", torch::nn::Linear(torch::nn::LinearOptions(D, 2 * Di).bias(false)));
  conv1d = register_module("conv1d", torch::nn::Conv1d(torch::nn::Conv1dOptions(Di, Di, K).groups(Di).padding(K - 1).bias(true)));
  x_proj = register_module("x_proj", torch::nn::Linear(torch::nn::LinearOptions(Di, R + 2 * N).bias(false)));
  dt_proj = register_module("dt_proj", torch::nn::Linear(torch::nn::LinearOptions(R, Di).bias(true)));
  out_proj = register_module("out_proj", torch::nn::Linear(torch::nn::LinearOptions(Di, D).bias(false)));
  A_log = register_parameter("A_log", torch::log(torch::arange(1, N + 1, torch::kFloat)).repeat({Di, 1}).contiguous());
  this->D = register_parameter("D", torch::ones({Di}));

  torch::NoGradGuard ng;
  // Delta projection (Mamba §3.6 / upstream dt init): the weight keeps the low-rank input at unit
  // scale; the bias puts softplus(bias) = dt log-uniform in [1e-3, 1e-1] at initialisation.
  const double std = 1.0 / std::sqrt(static_cast<double>(R));
  dt_proj->weight.uniform_(-std, std);
  const double lo = std::log(1e-3), hi = std::log(1e-1);
  const auto dt = torch::exp(torch::rand({Di}) * (hi - lo) + lo).clamp_min(1e-4);
  dt_proj->bias.copy_(dt + torch::log(-torch::expm1(-dt)));
  // Prenorm residual rescale of the branch's last projection (upstream _init_weights, one residual
  // per layer): keeps the residual stream's variance from growing with depth.
  out_proj->weight.div_(std::sqrt(static_cast<double>(std::max<int64_t>(o.n_layers, 1))));
}

torch::Tensor MambaBlockImpl::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() == 3 && x.size(2) == options.d_model, "MambaBlock: x must be (B, L, ", options.d_model, "), got ",
              x.sizes());
  const int64_t L = x.size(1), Di = options.d_inner(), N = options.d_state, R = options.resolved_dt_rank();
  const auto xz = in_proj->forward(x).transpose(1, 2);           // (B, 2 Di, L)
  auto xin = xz.narrow(1, 0, Di);
  const auto z = xz.narrow(1, Di, Di).contiguous();             // (B, Di, L)
  // Causal depthwise conv: padding d_conv - 1 on both sides, keep the first L outputs.
  auto xc = torch::silu(conv1d->forward(xin).narrow(2, 0, L)).contiguous();  // (B, Di, L)
  const auto xdbl = x_proj->forward(xc.transpose(1, 2));        // (B, L, R + 2N)
  const auto dt_low = xdbl.narrow(2, 0, R);
  const auto delta = torch::matmul(dt_low, dt_proj->weight.t()).transpose(1, 2).contiguous();  // (B, Di, L)
  const auto Bm = xdbl.narrow(2, R, N).transpose(1, 2).contiguous();                           // (B, N, L)
  const auto Cm = xdbl.narrow(2, R + N, N).transpose(1, 2).contiguous();                       // (B, N, L)
  const auto A = -torch::exp(A_log.to(torch::kFloat));                                          // (Di, N)
  const auto y = selective_scan(xc, delta, A, Bm, Cm, D.to(torch::kFloat), z, dt_proj->bias.to(torch::kFloat),
                                /*delta_softplus=*/true, options.scan);                          // (B, Di, L)
  return out_proj->forward(y.transpose(1, 2));
}

RmsNormImpl::RmsNormImpl(int64_t dim, double e) : eps(e) { weight = register_parameter("weight", torch::ones({dim})); }

torch::Tensor RmsNormImpl::forward(const torch::Tensor& x) {
  const auto xf = x.to(torch::kFloat);
  const auto r = torch::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return (xf * r * weight).to(x.scalar_type());
}

MambaLm::MambaLm(const LmConfig& c) : LanguageModel(c) {
  c.validate();
  TORCH_CHECK(c.arch == "mamba", "MambaLm: config arch must be 'mamba', got '", c.arch, "'");
  check_position_supported(c);  // none only: the recurrence carries order
  const int64_t D = c.d_model;
  tok_emb_ = register_module("tok_emb", torch::nn::Embedding(c.vocab_size, D));
  drop_ = register_module("drop", torch::nn::Dropout(c.dropout));
  const auto bo = MambaBlockOptions::from_config(c);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "block" + std::to_string(l) + "_";
    norms_.push_back(register_module(p + "norm", RmsNorm(D)));
    blocks_.push_back(register_module(p + "mixer", MambaBlock(bo)));
  }
  final_norm_ = register_module("final_norm", RmsNorm(D));
  if (!c.tie_weights) head_ = register_module("head", torch::nn::Linear(D, c.vocab_size));
  torch::NoGradGuard ng;
  torch::nn::init::normal_(tok_emb_->weight, 0.0, 0.02);
}

torch::Tensor MambaLm::forward_features(const torch::Tensor& ids) {
  TORCH_CHECK(ids.dim() == 2, "MambaLm: ids must be (B, n), got ", ids.sizes());
  TORCH_CHECK(ids.size(1) <= config_.n_seq, "MambaLm: sequence length ", ids.size(1), " exceeds n_seq ", config_.n_seq);
  auto h = drop_->forward(tok_emb_->forward(ids));  // (B, n, D)
  for (size_t l = 0; l < blocks_.size(); ++l) {
    // Module holders are shared pointers: the closure keeps the layer alive for a checkpointed graph.
    const BlockFunction block = [norm = norms_[l], mixer = blocks_[l], drop = drop_](const torch::Tensor& x) mutable {
      return x + drop->forward(mixer->forward(norm->forward(x)));
    };
    h = run_block(block, h, checkpoint_blocks_);
  }
  return final_norm_->forward(h);
}

std::shared_ptr<LanguageModel> make_mamba_lm(const LmConfig& config) { return std::make_shared<MambaLm>(config); }

int64_t mamba_block_parameters(const LmConfig& c) {
  const auto o = MambaBlockOptions::from_config(c);
  const int64_t D = o.d_model, Di = o.d_inner(), N = o.d_state, R = o.resolved_dt_rank(), K = o.d_conv;
  return D + 2 * D * Di + Di * (K + 1) + Di * (R + 2 * N) + Di * (R + 1) + Di * N + Di + Di * D;
}

int64_t mamba_lm_parameters(const LmConfig& c) {
  const int64_t D = c.d_model, V = c.vocab_size;
  return V * D + c.n_layers * mamba_block_parameters(c) + D + (c.tie_weights ? 0 : D * V + V);
}

}  // namespace rbk
