// exp_cpu_scaling's timed rows (main.cpp's top comment lists them): each row is built once on
// shared inputs and then stepped by the sweep (one point per N) or by the interleaved repeats
// (ratio_repeats.cpp), so both time exactly the same call.
#include "cpu_scaling.h"

#include "rbk/bk_core.h"
#include "rbk/bk_core_autograd.h"
#include "rbk/resnet_bk_lm.h"
#include "rbk/torch_compat.h"

#include <cmath>
#include <stdexcept>

namespace rbk_cpu_scaling {

const std::vector<std::string>& all_rows() {
  static const std::vector<std::string> rows = {
      "bk_layer_exact", "bk_layer_autograd", "bk_layer_compat_poc", "attention_mha_h4", "attention_mha_h1",
      "attention_causal", "bkcore_exact", "bkcore_autograd", "bkcore_papertime_hybrid", "bkcore_head_hybrid",
      "moe_sparse_top1", "ffn_dense_equal_active", "ffn_dense_equal_total", "route_scattering_phase",
      "route_mlp_gating", "moe_scattering_phase", "moe_mlp_gating"};
  return rows;
}

std::string family_of(const std::string& row) {
  if (row.rfind("bkcore_", 0) == 0) return "c02";
  if (row.rfind("moe_sparse", 0) == 0 || row.rfind("ffn_", 0) == 0) return "c04";
  if (row.rfind("route_", 0) == 0 || row == "moe_scattering_phase" || row == "moe_mlp_gating") return "c09";
  return "c03";
}

nlohmann::json number_or_null(double x) { return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr); }

bool all_finite(const Tensor& t) { return !t.defined() || torch::isfinite(t).all().item<bool>(); }

RowInputs make_row_inputs(int64_t B, int64_t N, int64_t D) {
  RowInputs in;
  in.B = B;
  in.N = N;
  in.D = D;
  in.x = torch::rand({B, N, D});
  in.r = torch::randn({B, N, D});
  in.v = torch::rand({B, N}) * 2 - 1;
  in.r2 = torch::randn({B, N, 2});
  const Tensor v_router = torch::rand({B, N}, torch::kDouble) * 6 - 3;
  in.g = rbk::bk_core_diagonal(rbk::laplacian_with_potential(v_router.to(torch::kFloat)), {0, 1}).reshape({B * N});
  return in;
}

namespace {

// The ResNet-BK block of the LM as a stand-alone module.
struct BkLayer {
  std::shared_ptr<torch::nn::Module> owner = std::make_shared<torch::nn::Module>();
  rbk::ResNetBkBlock block;
  rbk::BkCoreOptions bk;
  BkLayer(int64_t D, int64_t E, const std::string& router, rbk::BkForwardMode fwd, rbk::BkGradientMode grad) {
    rbk::LmConfig c;
    c.d_model = D;
    c.num_experts = E;
    c.top_k = 1;
    c.router = router;
    c.block = "papertime";
    block = rbk::make_resnet_bk_block(*owner, "", c);
    bk.forward = fwd;
    bk.gradient = grad;
    // The PoC runs its recursion as one batched tensor op per step (vmap over B): reproduce that.
    bk.compat_execution = rbk::CompatExecution::TensorOps;
  }
};

// PoC attention: nn.MultiheadAttention(D, H) with default need_weights (batch-first input).
Tensor mha_forward(torch::nn::MultiheadAttention& mha, const Tensor& x) {  // x (B, N, D)
  const Tensor s = x.transpose(0, 1);  // LibTorch's MHA is sequence-first (N, B, D)
  return std::get<0>(mha->forward(s, s, s)).transpose(0, 1);
}

// Causal self-attention through rbk::causal_attention (fused SDPA where LibTorch has it).
struct CausalAttentionLayer : torch::nn::Module {
  torch::nn::Linear qkv{nullptr}, proj{nullptr};
  int64_t heads;
  CausalAttentionLayer(int64_t D, int64_t H) : heads(H) {
    qkv = register_module("qkv", torch::nn::Linear(D, 3 * D));
    proj = register_module("proj", torch::nn::Linear(D, D));
  }
  Tensor forward(const Tensor& x) {  // x (B, N, D)
    const int64_t B = x.size(0), N = x.size(1), D = x.size(2), Dh = D / heads;
    const Tensor t = qkv->forward(x).view({B, N, 3, heads, Dh}).permute({2, 0, 3, 1, 4});  // (3, B, H, N, Dh)
    const Tensor o = rbk::causal_attention(t[0], t[1], t[2], 0.0, true);                 // (B, H, N, Dh)
    return proj->forward(o.transpose(1, 2).reshape({B, N, D}));
  }
};

rbk::BkGradientMode grad_mode_of(const std::string& row) {
  if (row == "bkcore_autograd") return rbk::BkGradientMode::Autograd;
  if (row == "bkcore_papertime_hybrid") return rbk::BkGradientMode::PapertimeHybrid;
  if (row == "bkcore_head_hybrid") return rbk::BkGradientMode::HeadHybrid;
  return rbk::BkGradientMode::Exact;
}

// One training step of `forward`: gradients dropped first (every step does the same work), then
// forward, loss sum(y * r) / tokens, backward.
void set_training_step(TimedRow& t, std::function<Tensor()> forward, const Tensor& r) {
  t.step = [owners = t.grad_owners, forward = std::move(forward), r, out = t.output, loss = t.loss,
            tokens = static_cast<double>(t.tokens)] {
    for (auto p : owners) p.mutable_grad().reset();
    *out = forward();
    *loss = (*out * r).sum() / tokens;
    loss->backward();
  };
}

std::vector<Tensor> parameters_of(const torch::nn::Module& m) { return m.parameters(); }

std::vector<int64_t> first_slot_histogram(const rbk::MoeImpl::Routing& rt, int64_t E) {
  const Tensor hist = torch::bincount(rt.idx.select(1, 0), {}, E);
  return std::vector<int64_t>(hist.data_ptr<int64_t>(), hist.data_ptr<int64_t>() + E);
}

}  // namespace

int64_t expert_parameters(const rbk::MoeOptions& o) {
  torch::nn::Linear up(o.d_model, o.hidden_mult * o.d_model), down(o.hidden_mult * o.d_model, o.d_model);
  return rbk::count_parameters(*up) + rbk::count_parameters(*down);
}

int64_t router_owned_parameters(const rbk::MoeOptions& o) {
  rbk::Moe moe(o);
  int64_t owned = rbk::count_parameters(*moe);
  for (const auto& b : moe->buffers())
    if (b.requires_grad()) owned += b.numel();
  return owned - o.num_experts * expert_parameters(o);
}

void copy_parameters(const torch::nn::Module& from, torch::nn::Module& to) {
  torch::NoGradGuard ng;
  auto dst = to.named_parameters();
  for (const auto& kv : from.named_parameters()) {
    TORCH_CHECK(dst.contains(kv.key()) && dst[kv.key()].sizes() == kv.value().sizes(),
                "copy_parameters: no parameter '", kv.key(), "' of shape ", kv.value().sizes(), " in the target");
    dst[kv.key()].copy_(kv.value());
  }
}

Tensor flat_gradient(const TimedRow& t) {
  std::vector<Tensor> parts;
  for (const auto& p : t.grad_owners)
    parts.push_back(p.grad().defined() ? p.grad().to(torch::kDouble).flatten() : torch::zeros({p.numel()}, torch::kDouble));
  return parts.empty() ? torch::zeros({0}, torch::kDouble) : torch::cat(parts);
}

Measured check_last_call(const TimedRow& t) {
  Measured m;
  torch::NoGradGuard ng;
  if (t.routing) {
    const auto& rt = *t.routing;
    const int64_t E = t.moe->options().num_experts;
    m.finite = rt.idx.defined() && all_finite(rt.w) && rt.idx.min().item<int64_t>() >= 0 && rt.idx.max().item<int64_t>() < E;
    m.nontrivial = m.finite;
  } else {
    const Tensor& y = *t.output;
    m.nonfinite_fraction = 1.0 - torch::isfinite(y).to(torch::kDouble).mean().item<double>();
    m.finite = m.nonfinite_fraction == 0 && all_finite(*t.loss);
    for (const auto& p : t.grad_owners) m.finite = m.finite && all_finite(p.grad());
    m.nontrivial = m.finite && y.numel() > 1 && y.to(torch::kDouble).std().item<double>() > 0;
  }
  return m;
}

Measured inspect_row(const TimedRow& t) {
  Measured m = check_last_call(t);
  if (t.inspect) t.inspect(m);
  return m;
}

bool make_timed_row(const std::string& row, const RowInputs& in, const rbk::Config& cfg, TimedRow& t) {
  const int64_t B = in.B, N = in.N, D = in.D, E = cfg.get_int("num_experts");
  const int64_t T = B * N;
  const bool attention = row.rfind("attention_", 0) == 0;
  const bool autograd = row == "bk_layer_autograd" || row == "bkcore_autograd";
  if (attention && N > cfg.get_int("attention_max_n")) return false;
  if (autograd && N > cfg.get_int("autograd_max_n")) return false;
  if (row == "bk_layer_compat_poc" && N > cfg.get_int("compat_max_n")) return false;
  t = TimedRow{};
  t.row = row;
  t.tokens = T;

  if (row.rfind("bk_layer_", 0) == 0) {
    const auto fwd = row == "bk_layer_compat_poc" ? rbk::BkForwardMode::CompatPoc : rbk::BkForwardMode::Stable;
    const auto grad = row == "bk_layer_autograd"     ? rbk::BkGradientMode::Autograd
                      : row == "bk_layer_compat_poc" ? rbk::BkGradientMode::PapertimeHybrid
                                                     : rbk::BkGradientMode::Exact;
    auto layer = std::make_shared<BkLayer>(D, E, cfg.get_string("bk_router"), fwd, grad);
    t.module = layer->owner;
    t.input = in.x;
    t.grad_owners = parameters_of(*layer->owner);
    set_training_step(t, [layer, x = in.x] { return rbk::resnet_bk_block_forward(layer->block, x, layer->bk); }, in.r);
    t.inspect = [router = cfg.get_string("bk_router"), fwd, grad](Measured& m) {
      m.extra["router"] = router;
      m.extra["bk_forward"] = rbk::to_string(fwd);
      m.extra["bk_gradient"] = rbk::to_string(grad);
    };
    return true;
  }
  if (row == "attention_mha_h4" || row == "attention_mha_h1") {
    auto mha = torch::nn::MultiheadAttention(torch::nn::MultiheadAttentionOptions(D, row == "attention_mha_h4" ? 4 : 1));
    t.module = mha.ptr();
    t.input = in.x;
    t.grad_owners = parameters_of(*mha);
    set_training_step(t, [mha, x = in.x]() mutable { return mha_forward(mha, x); }, in.r);
    t.inspect = [](Measured& m) { m.extra["attention"] = "torch::nn::MultiheadAttention, non-causal, need_weights=true, autograd"; };
    return true;
  }
  if (row == "attention_causal") {
    auto layer = std::make_shared<CausalAttentionLayer>(D, 4);
    t.module = layer;
    t.input = in.x;
    t.grad_owners = parameters_of(*layer);
    set_training_step(t, [layer, x = in.x] { return layer->forward(x); }, in.r);
    t.inspect = [](Measured& m) {
      m.extra["attention"] = rbk::fused_attention_available() ? "causal, fused scaled_dot_product_attention"
                                                              : "causal, explicit masked softmax (no fused attention in this LibTorch)";
    };
    return true;
  }
  if (row.rfind("bkcore_", 0) == 0) {
    // Each row differentiates its own leaf holding the shared v, so rows never share .grad().
    const Tensor v = in.v.clone().requires_grad_(true);
    rbk::BkCoreOptions o;
    o.gradient = grad_mode_of(row);
    t.input = v;
    t.grad_owners = {v};
    set_training_step(t, [v, o] { return rbk::bk_core_features(v, o); }, in.r2);
    const int warmup = static_cast<int>(cfg.get_int("warmup")), repeats = static_cast<int>(cfg.get_int("repeats"));
    t.inspect = [v, o, r2 = in.r2, T, warmup, repeats](Measured& m) {
      torch::AutoGradMode on(true);  // the forward as a training step runs it (graph recorded)
      const Tensor grad = v.grad().defined() ? v.grad().clone() : torch::zeros_like(v);
      const auto tf = rbk::time_repeated([&] { rbk::bk_core_features(v, o); }, warmup, repeats);
      // Reference: the exact gradient of the same loss in fp64.
      const Tensor v64 = v.detach().to(torch::kDouble).requires_grad_(true);
      (rbk::bk_core_features(v64, {}) * r2.to(torch::kDouble)).sum().div(double(T)).backward();
      m.extra["time_forward_min_s"] = tf.min_s;
      m.extra["time_forward_median_s"] = tf.median_s;
      m.extra["cosine_vs_exact_fp64"] = number_or_null(rbk::cosine_similarity(grad, v64.grad()));
      m.extra["rel_l2_vs_exact_fp64"] = number_or_null(rbk::relative_l2_error(grad, v64.grad()));
      m.extra["bk_gradient"] = rbk::to_string(o.gradient);
    };
    return true;
  }
  const bool moe_layer = row == "moe_sparse_top1" || row.rfind("ffn_dense_", 0) == 0 || row == "moe_scattering_phase" ||
                         row == "moe_mlp_gating";
  const bool route_only = row == "route_scattering_phase" || row == "route_mlp_gating";
  if (moe_layer || route_only) {
    rbk::MoeOptions mo;
    mo.d_model = D;
    mo.num_experts = E;
    mo.top_k = 1;
    if (row == "moe_sparse_top1") mo.router = rbk::parse_router(cfg.get_string("moe_router"));
    else if (row == "moe_scattering_phase" || row == "route_scattering_phase") mo.router = rbk::RouterKind::ScatteringPhase;
    else mo.router = rbk::RouterKind::LearnedTopK;  // MLP gating; the dense rows take its k >= E path
    if (row.rfind("ffn_dense_", 0) == 0) mo.num_experts = 1;
    if (row == "ffn_dense_equal_total") mo.hidden_mult = 2 * E;
    rbk::Moe moe(mo);
    t.moe = moe.ptr();
    t.module = moe.ptr();
    const Tensor xt = in.x.reshape({T, D});
    const Tensor g = mo.router == rbk::RouterKind::ScatteringPhase ? in.g : Tensor();
    t.input = xt;
    const int64_t router_params = router_owned_parameters(mo), one_expert = expert_parameters(mo);
    if (route_only) {
      t.routing = std::make_shared<rbk::MoeImpl::Routing>();
      t.step = [moe, xt, g, rt = t.routing]() mutable { *rt = moe->route(xt, g); };
      t.inspect = [mo, rt = t.routing, router_params](Measured& m) {
        m.extra["router"] = rbk::to_string(mo.router);
        m.extra["router_parameters"] = router_params;
        m.extra["first_slot_histogram"] = first_slot_histogram(*rt, mo.num_experts);
      };
      return true;
    }
    t.grad_owners = parameters_of(*moe);
    set_training_step(t, [moe, xt, g]() mutable { return moe->forward(xt, g); }, in.r.reshape({T, D}));
    t.inspect = [mo, moe, router_params, one_expert](Measured& m) {
      m.extra["router"] = rbk::to_string(mo.router);
      m.extra["num_experts"] = mo.num_experts;
      m.extra["hidden"] = mo.hidden_mult * mo.d_model;
      m.extra["parameters"] = rbk::count_parameters(*moe);
      m.extra["router_parameters"] = router_params;
      m.extra["active_parameters"] = router_params + one_expert;
    };
    return true;
  }
  throw std::logic_error("cpu_scaling: no implementation for row '" + row + "'");
}

}  // namespace rbk_cpu_scaling
