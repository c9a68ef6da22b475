// ResNet-BK language model (PoC and paper-time forms) and the model factory (see lm_model.h;
// upstream-audit §2.1, §2.3, §4.2; claim C05).
#include "rbk/lm_model.h"
#include "rbk/mamba_lm.h"
#include "rbk/prime_bump.h"
#include "rbk/rwkv_lm.h"
#include "rbk/transformer_lm.h"

#include <stdexcept>

namespace rbk {
namespace {

void check_choice(const std::string& key, const std::string& v, std::initializer_list<const char*> allowed) {
  std::string list;
  for (const char* a : allowed) {
    if (v == a) return;
    list += (list.empty() ? "" : ", ") + std::string(a);
  }
  throw std::invalid_argument("model config '" + key + "' = '" + v + "': expected one of " + list);
}

void check_range(const std::string& key, double v, double lo, double hi) {
  if (!(v >= lo && v <= hi))
    throw std::invalid_argument("model config '" + key + "' = " + std::to_string(v) + ": expected a value in [" +
                                std::to_string(lo) + ", " + std::to_string(hi) + "]");
}

}  // namespace

nlohmann::json LmConfig::to_json() const {
  return {{"arch", arch}, {"vocab_size", vocab_size}, {"d_model", d_model}, {"n_layers", n_layers},
          {"n_seq", n_seq}, {"dropout", dropout}, {"init", init}, {"block", block},
          {"num_experts", num_experts}, {"top_k", top_k}, {"router", router},
          {"legacy_scattering_scale", legacy_scattering_scale}, {"scattering_epsilon", scattering_epsilon},
          {"bk_forward", bk_forward}, {"bk_gradient", bk_gradient}, {"bk_context", bk_context},
          {"prime_bump", prime_bump}, {"prime_bump_scale", prime_bump_scale},
          {"prime_bump_epsilon", prime_bump_epsilon}, {"n_heads", n_heads}, {"ffn_dim", ffn_dim},
          {"tie_weights", tie_weights}, {"expand", expand}, {"d_state", d_state}, {"d_conv", d_conv},
          {"dt_rank", dt_rank}};
}

LmConfig LmConfig::from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw std::invalid_argument("model config: expected a JSON object");
  LmConfig c;
  const auto defaults = c.to_json();
  for (auto it = j.begin(); it != j.end(); ++it)
    if (!defaults.contains(it.key())) throw std::invalid_argument("model config: unknown key '" + it.key() + "'");
  auto get = [&](const char* key, auto& field) {
    if (!j.contains(key)) return;
    try {
      field = j.at(key).get<std::remove_reference_t<decltype(field)>>();
    } catch (const std::exception&) {
      throw std::invalid_argument(std::string("model config '") + key + "' = " + j.at(key).dump() + ": wrong type");
    }
  };
  get("arch", c.arch); get("vocab_size", c.vocab_size); get("d_model", c.d_model); get("n_layers", c.n_layers);
  get("n_seq", c.n_seq); get("dropout", c.dropout); get("init", c.init); get("block", c.block);
  get("num_experts", c.num_experts); get("top_k", c.top_k); get("router", c.router);
  get("legacy_scattering_scale", c.legacy_scattering_scale); get("scattering_epsilon", c.scattering_epsilon);
  get("bk_forward", c.bk_forward); get("bk_gradient", c.bk_gradient); get("bk_context", c.bk_context);
  get("prime_bump", c.prime_bump); get("prime_bump_scale", c.prime_bump_scale);
  get("prime_bump_epsilon", c.prime_bump_epsilon); get("n_heads", c.n_heads); get("ffn_dim", c.ffn_dim);
  get("tie_weights", c.tie_weights); get("expand", c.expand); get("d_state", c.d_state); get("d_conv", c.d_conv);
  get("dt_rank", c.dt_rank);
  c.validate();
  return c;
}

void LmConfig::validate() const {
  check_choice("arch", arch, {"resnet_bk", "transformer", "mamba", "rwkv"});
  check_range("vocab_size", static_cast<double>(vocab_size), 2, 1e8);
  check_range("d_model", static_cast<double>(d_model), 1, 1e6);
  check_range("n_layers", static_cast<double>(n_layers), 1, 1e4);
  check_range("n_seq", static_cast<double>(n_seq), 1, 1e9);
  check_range("dropout", dropout, 0, 0.99);
  check_choice("init", init, {"torch_default", "papertime"});
  if (arch == "resnet_bk") {
    check_choice("block", block, {"poc", "papertime"});
    check_range("num_experts", static_cast<double>(num_experts), 1, 1e4);
    check_range("top_k", static_cast<double>(top_k), 1, 1e4);
    parse_router(router);
    parse_forward_mode(bk_forward);
    parse_gradient_mode(bk_gradient);
    parse_context(bk_context);
    check_choice("prime_bump", prime_bump, {"none", "simple", "potential"});
    if (router == "scattering_phase" && block != "papertime")
      throw std::invalid_argument("model config 'router' = 'scattering_phase' needs block = 'papertime' (it routes by "
                                  "the BK-Core output, which the PoC block computes after the MoE)");
    if (bk_context == "causal" && bk_forward != "stable")
      throw std::invalid_argument("model config 'bk_context' = 'causal' needs bk_forward = 'stable' (got '" + bk_forward + "')");
  } else if (arch == "mamba") {
    check_range("expand", static_cast<double>(expand), 1, 64);
    check_range("d_state", static_cast<double>(d_state), 1, 256);
    check_range("d_conv", static_cast<double>(d_conv), 1, 64);
    check_range("dt_rank", static_cast<double>(dt_rank), 0, 1e6);
  } else if (arch == "rwkv") {
    check_range("ffn_dim", static_cast<double>(ffn_dim), 1, 1e8);
  } else {
    check_range("n_heads", static_cast<double>(n_heads), 1, 1e4);
    check_range("ffn_dim", static_cast<double>(ffn_dim), 1, 1e8);
    if (d_model % n_heads != 0)
      throw std::invalid_argument("model config: d_model " + std::to_string(d_model) + " is not a multiple of n_heads " +
                                  std::to_string(n_heads));
  }
}

int64_t count_parameters(const torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

std::shared_ptr<LanguageModel> make_language_model(const LmConfig& config) {
  config.validate();
  if (config.arch == "transformer") return std::make_shared<TransformerLm>(config);
  if (config.arch == "mamba") return make_mamba_lm(config);
  if (config.arch == "rwkv") return make_rwkv_lm(config);
  if (config.arch != "resnet_bk")
    throw std::invalid_argument("model config 'arch' = '" + config.arch + "': not built into this library");
  return std::make_shared<ResNetBkLm>(config);
}

ResNetBkLm::ResNetBkLm(const LmConfig& c) : LanguageModel(c) {
  c.validate();
  bk_.forward = parse_forward_mode(c.bk_forward);
  bk_.gradient = parse_gradient_mode(c.bk_gradient);
  bk_.context = parse_context(c.bk_context);
  router_ = parse_router(c.router);
  const int64_t D = c.d_model;
  tok_emb_ = register_module("tok_emb", torch::nn::Embedding(c.vocab_size, D));
  pos_emb_ = register_module("pos_emb", torch::nn::Embedding(c.n_seq, D));
  for (int64_t l = 0; l < c.n_layers; ++l) blocks_.push_back(make_resnet_bk_block(*this, "block" + std::to_string(l) + "_", c));
  final_norm_ = register_module("final_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({D})));
  head_ = register_module("head", torch::nn::Linear(D, c.vocab_size));
  reset_parameters();
}

void init_papertime_weights(torch::nn::Module& model, torch::nn::Embedding& tok_emb, torch::nn::Embedding& pos_emb) {
  torch::NoGradGuard ng;
  torch::nn::init::normal_(tok_emb->weight, 0.0, 0.02);
  torch::nn::init::normal_(pos_emb->weight, 0.0, 0.02);
  for (auto& m : model.modules(false)) {
    if (auto* lin = m->as<torch::nn::Linear>()) {
      torch::nn::init::xavier_uniform_(lin->weight);
      if (lin->bias.defined()) lin->bias.zero_();
    }
  }
}

void ResNetBkLm::reset_parameters() {
  torch::NoGradGuard ng;
  const auto& c = config_;
  if (c.init == "papertime") init_papertime_weights(*this, tok_emb_, pos_emb_);
  // torch_default: the LibTorch constructors already match PyTorch's defaults (PoC)
  if (c.prime_bump == "simple") {
    for (int64_t p : primes_below(c.n_seq)) pos_emb_->weight[p].add_(c.prime_bump_scale);
  } else if (c.prime_bump == "potential") {
    PrimeBumpOptions po;
    po.epsilon = c.prime_bump_epsilon;
    po.scale = c.prime_bump_scale;
    auto V = prime_bump_potential(c.n_seq, PrimeBumpGrid::Integer, po).to(torch::kFloat32);  // (N,)
    pos_emb_->weight.add_(V.unsqueeze(1));
  }
}

ResNetBkBlock make_resnet_bk_block(torch::nn::Module& owner, const std::string& p, const LmConfig& c) {
  const int64_t D = c.d_model;
  MoeOptions mo;
  mo.d_model = D;
  mo.num_experts = c.num_experts;
  mo.top_k = c.top_k;
  mo.dropout = c.dropout;
  mo.router = parse_router(c.router);
  mo.legacy_scattering_scale = c.legacy_scattering_scale;
  mo.scattering_epsilon = c.scattering_epsilon;
  ResNetBkBlock b;
  b.papertime = c.block == "papertime";
  b.norm = owner.register_module(p + "norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({D})));
  b.moe = owner.register_module(p + "moe", Moe(mo));
  b.v_proj = owner.register_module(p + "v_proj", torch::nn::Linear(D, 1));
  b.out_proj = owner.register_module(p + "out_proj", torch::nn::Linear(2, D));
  if (b.papertime) b.bk_scale = owner.register_parameter(p + "bk_scale", torch::ones({}));
  return b;
}

torch::Tensor resnet_bk_block_forward(ResNetBkBlock& b, const torch::Tensor& h, const BkCoreOptions& bk) {
  const auto B = h.size(0), n = h.size(1), D = h.size(2);
  auto u = b.norm->forward(h);
  if (!b.papertime) {
    auto m = b.moe->forward(u.reshape({B * n, D})).view({B, n, D});
    auto v = b.v_proj->forward(m).squeeze(-1);                  // (B, n): potential from the MoE output
    auto f = bk_core_features(v, bk).to(h.scalar_type());     // (B, n, 2)
    return m + b.out_proj->forward(f);
  }
  auto v = b.v_proj->forward(u).squeeze(-1).clamp(-3.0, 3.0);  // (B, n)
  auto f = bk_core_features(v, bk).to(h.scalar_type());       // (B, n, 2)
  torch::Tensor g;
  if (b.moe->options().router == RouterKind::ScatteringPhase)
    g = torch::complex(f.select(-1, 0).detach(), f.select(-1, 1).detach()).reshape({B * n});
  auto m = b.moe->forward(u.reshape({B * n, D}), g).view({B, n, D});
  return m + b.bk_scale * b.out_proj->forward(f.clamp(-10.0, 10.0));
}

torch::Tensor ResNetBkLm::forward(const torch::Tensor& ids) {
  TORCH_CHECK(ids.dim() == 2, "ResNetBkLm: ids must be (B, n), got ", ids.sizes());
  TORCH_CHECK(ids.size(1) <= config_.n_seq, "ResNetBkLm: sequence length ", ids.size(1), " exceeds n_seq ", config_.n_seq);
  auto pos = torch::arange(ids.size(1), ids.options());
  auto h = tok_emb_->forward(ids) + pos_emb_->forward(pos).unsqueeze(0);
  for (auto& b : blocks_) h = h + resnet_bk_block_forward(b, h, bk_);
  return head_->forward(final_norm_->forward(h));
}

torch::Tensor ResNetBkLm::expert_counts() const {
  std::vector<torch::Tensor> rows;
  for (const auto& b : blocks_) rows.push_back(b.moe->expert_counts());
  return torch::stack(rows);
}

void ResNetBkLm::reset_expert_counts() {
  for (auto& b : blocks_) b.moe->reset_expert_counts();
}

}  // namespace rbk
