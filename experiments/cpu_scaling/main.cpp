// exp_cpu_scaling — seed 004's CPU benchmarks (claims C02, C03, C04) and the scattering-phase
// router's speed claim (C09, seeds 000/002 §3.3, Table 4). upstream-audit §10.2 describes what the
// PoC timed: D = 64, B = 8, N in {64, 256, 1024, 2048}, one forward + backward of one layer on x ~
// U(0, 1); ResNet-BK = MoE -> BK-Core (complex128 loop, NaN from N ~ 488) -> Linear(2, D) with a
// hand-written "analytic" gradient, attention = nn.MultiheadAttention(D, 4 heads) (1 head in the
// analytic-gradient benchmark 3) through autograd. Reported: 6.7x at N = 2048, crossover near
// N ~ 1000, analytic gradient 1.6x (PoC) / 2.5x (integrated) faster than autograd, sparse MoE faster
// than a dense FFN at the same accuracy; seeds 000/002: the router is 10x faster than MLP gating.
//
// Every timed row is one training step (forward + backward, no optimizer step) of one layer, the
// same loss for all rows: L = sum(y * r) / (B N) with a fixed random r. Rows (`rows` key):
//   C03  bk_layer_exact        the ResNet-BK block exactly as the LM runs it (rbk::resnet_bk_block_forward,
//                              paper-time block: LN, v = clamp(Linear(D,1)), BK-Core stable fp32,
//                              MoE (router `bk_router`, top-1), Linear(2, D)), exact custom backward
//        bk_layer_autograd     the same block, BK-Core gradient 'autograd' (LibTorch autograd through
//                              the stable forward written as differentiable ops) — C02 "integrated"
//        bk_layer_compat_poc   the same block with the PoC recursion (compat_poc, executed as one
//                              tensor op per step as upstream's vmap does) and the paper-time hybrid
//                              gradient; status "nonfinite_output" where its output is NaN/Inf
//        attention_mha_h4      torch::nn::MultiheadAttention(D, 4 heads), non-causal, need_weights as
//                              PyTorch's default: the PoC's final benchmark (5_Final_MoE_Scaling)
//        attention_mha_h1      the same with 1 head: the PoC's analytic-gradient benchmark (3_)
//        attention_causal      qkv Linear(D, 3D) -> rbk::causal_attention (4 heads) -> Linear(D, D):
//                              LibTorch's fused scaled_dot_product_attention where it exists
//                              (LibTorch >= 2), the explicit masked softmax on 1.13 — the summary
//                              says which (c03/attention_causal_kind)
//   C02  bkcore_exact | bkcore_autograd | bkcore_papertime_hybrid | bkcore_head_hybrid
//                              rbk::bk_core_features alone (stable forward, v ~ U[-1, 1] (B, N)
//                              float32), forward + backward with each gradient mode; each row also
//                              times the forward alone and gives the cosine / relative L2 error of
//                              its dL/dv against the exact gradient in fp64
//   C04  moe_sparse_top1       rbk::Moe, E experts, router `moe_router` (top-1), on T = B N tokens
//        ffn_dense_equal_active rbk::Moe with E = 1 (one expert, the dense softmax path = a plain
//                              FFN Linear(D, 2D) -> ReLU -> Linear(2D, D)): the same active parameters
//        ffn_dense_equal_total rbk::Moe with E = 1 and hidden width E * 2D: the same total parameters
//   C09  route_scattering_phase / route_mlp_gating
//                              Moe::route alone (no expert), forward only: the scattering-phase router
//                              on G_ii of random v ~ U[-3, 3] (audit §3.3) vs learned MLP gating
//                              (upstream's learned_topk, top-1)
//        moe_scattering_phase / moe_mlp_gating
//                              the whole MoE layer (routing + experts), forward + backward
// Attention rows stop at attention_max_n (memory: B H N^2 floats per score tensor), autograd rows
// at autograd_max_n, the compat row at compat_max_n; larger N are not run (no row).
//
// Short training (C04, C09), rbk::train_language_model on `data_dir` (word tokenizer of the train
// split): paper-time ResNet-BK LMs, stable causal BK-Core (so held-out loss is meaningful, audit
// §1.7), identical recipe and seeds: MoE (E experts, `moe_router`, top-1) vs dense (E = 1, same
// active parameters); validation loss = mean NLL (nats/token) on the valid split. For C09 a
// scattering-phase LM (bidirectional BK-Core, as upstream) is trained with the same recipe and its
// expert usage on the valid split is counted before and after training (every used slot counts;
// resonance tokens use two).
//
// Timings: median and fastest of `repeats` after `warmup`; ratios and fits use the fastest
// repetition (on a shared machine the minimum is the closest to the code's own cost), and only
// rows whose output is finite and non-trivial. A run pins `threads` (1 in the presets, NOTES.md).
//
// Summary keys (read by validation/; N = 2048 is kReferenceN, null where not swept or not finite):
//   c03/{ratio_attention_autograd_over_bk_n2048, ratio_attention_autograd_h1_over_bk_n2048,
//        ratio_attention_causal_over_bk_n2048, crossover_n_attention_autograd,
//        crossover_n_attention_causal, crossover_attention_autograd_bound, attention_causal_kind,
//        fused_attention_available, compat_first_nonfinite_n, compat_nonfinite_fraction_n2048,
//        ratio_attention_autograd_over_bk_compat_n2048}
//     crossover_n_*: N at which attention and the BK layer take equal time, interpolated in
//     log-log between the swept N around the last sign change; when the BK layer is faster at
//     every swept N it is the smallest swept N (an upper bound; *_bound = "at_or_below_smallest_n"),
//     null when attention is faster at every swept N (bound "above_largest_n").
//   c02/{speedup_exact_over_autograd_n2048 (BK-Core alone, forward + backward),
//        speedup_exact_over_autograd_layer_n2048 (the whole layer), backward_speedup_exact_over_autograd_n2048,
//        speedup_papertime_hybrid_over_autograd_n2048, cosine_{exact,autograd,papertime_hybrid,head_hybrid}_vs_exact,
//        rel_l2_autograd_vs_exact}   (cosines at N = 2048, or the largest swept N: c02/cosine_n)
//   c04/{speedup_moe_over_dense_equal_active_n2048, speedup_moe_over_dense_equal_total_n2048,
//        val_loss_moe, val_loss_dense, moe_minus_dense_val_loss (means over seeds),
//        seeds/{seed, val_loss_moe, val_loss_dense}, parameters_{moe,dense}, active_parameters_{moe,dense},
//        train_tokens_per_s_{moe,dense}, lm_setup}
//   c09/{router_speedup (MLP gating time / scattering time, routing alone, N = 2048),
//        layer_speedup, router_ns_per_token_{scattering,mlp}, router_parameters_{scattering,mlp},
//        expert_usage_fraction_{initialised,trained}, expert0_fraction_{initialised,trained},
//        mlp_gating_expert_usage_fraction}
//   exponents/<row>: slope of log(fastest time) vs log N over N >= fit_min_n
//   machine/{BLAS_INFO, LAPACK_INFO, sgemm_library, sgemm_gflops_512}: the BLAS every Linear and
//     attention matmul runs on (ratios depend on it; the BK-Core loops do not)
//   max_n, max_n_attention (attention_mha_h4), max_n_autograd (both autograd rows), max_n_compat:
//     the largest N each kind of row ran at (0 = not run)
//   peak_rss_mb, reference_n, threads
// HDF5: <row>/{n, time_min_s, time_median_s}.
#include "rbk/bk_core_autograd.h"
#include "rbk/corpus.h"
#include "rbk/evaluator.h"
#include "rbk/experiment.h"
#include "rbk/lm_model.h"
#include "rbk/moe.h"
#include "rbk/timing.h"
#include "rbk/tokenizer.h"
#include "rbk/torch_compat.h"
#include "rbk/trainer.h"

#include <ATen/Version.h>
#include <dlfcn.h>
#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>

namespace fs = std::filesystem;

namespace {

using torch::Tensor;

// Seed 004's headline numbers are at N = 2048 (audit §10.2).
constexpr int64_t kReferenceN = 2048;
// Cosine of the autograd gradient with the exact one must be this close to 1 for the two to count
// as "the same gradient" in the log line; fp32 forward of N ~ 1e4 steps loses ~1e-5 at most.
constexpr double kSameGradientCosine = 1.0 - 1e-4;

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

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // Linux: kilobytes
}

// The BLAS behind LibTorch's CPU GEMMs decides the cost of every Linear and of attention's
// matmuls, not of BK-Core's own loops; so every ratio here depends on it. Recorded: LibTorch's
// BLAS_INFO, the shared library that provides sgemm_ (Debian's LibTorch 1.13 takes whatever
// libblas.so.3 the system's alternatives point to, e.g. netlib's reference BLAS), and a measured
// single-thread fp32 GEMM rate.
nlohmann::json machine_blas() {
  nlohmann::json j;
  const std::string cfgs = at::show_config();
  for (const char* key : {"BLAS_INFO=", "LAPACK_INFO="}) {
    const auto p = cfgs.find(key);
    j[std::string(key).substr(0, std::string(key).size() - 1)] =
        p == std::string::npos ? "" : cfgs.substr(p + std::strlen(key), cfgs.find_first_of(", \n", p) - p - std::strlen(key));
  }
  std::string lib = "unknown";
  Dl_info info{};
  if (void* sym = dlsym(RTLD_DEFAULT, "sgemm_"); sym && dladdr(sym, &info) && info.dli_fname) {
    std::error_code ec;
    const auto canon = fs::canonical(info.dli_fname, ec);
    lib = ec ? std::string(info.dli_fname) : canon.string();
  }
  j["sgemm_library"] = lib;
  const int64_t n = 512;  // 2 n^3 = 0.27 GFLOP: long enough to time, short on any BLAS
  const Tensor a = torch::randn({n, n}), b = torch::randn({n, n});
  Tensor c;
  const auto t = rbk::time_repeated([&] { c = torch::mm(a, b); }, 1, 5);
  TORCH_CHECK(torch::isfinite(c).all().item<bool>(), "GEMM probe: non-finite product");
  j["sgemm_gflops_512"] = 2.0 * n * n * n / t.min_s * 1e-9;
  return j;
}

bool all_finite(const Tensor& t) { return !t.defined() || torch::isfinite(t).all().item<bool>(); }

double cosine(const Tensor& a, const Tensor& b) {
  const Tensor x = a.to(torch::kDouble).flatten(), y = b.to(torch::kDouble).flatten();
  return ((x * y).sum() / (x.norm() * y.norm())).item<double>();
}

double rel_l2(const Tensor& a, const Tensor& ref) {
  const Tensor x = a.to(torch::kDouble), y = ref.to(torch::kDouble);
  return ((x - y).norm() / y.norm()).item<double>();
}

// What one timed point produced.
struct Measured {
  rbk::TimingStats t;
  bool finite = true;      // output, loss and every gradient finite
  bool nontrivial = true;  // output not constant
  double nonfinite_fraction = 0;
  nlohmann::json extra = nlohmann::json::object();
};

// One training step of `forward` (forward, loss sum(y * r) / tokens, backward), timed. Gradients
// of `params` and `leaves` are dropped before each step so every step does the same work.
Measured time_training_step(const std::function<Tensor()>& forward, const std::vector<Tensor>& params,
                            const std::vector<Tensor>& leaves, const Tensor& r, int64_t tokens, int warmup, int repeats) {
  Tensor y, loss;
  auto step = [&] {
    for (auto p : params) p.mutable_grad().reset();
    for (auto l : leaves) l.mutable_grad().reset();
    y = forward();
    loss = (y * r).sum() / static_cast<double>(tokens);
    loss.backward();
  };
  Measured m;
  m.t = rbk::time_repeated(step, warmup, repeats);
  torch::NoGradGuard ng;
  m.nonfinite_fraction = 1.0 - torch::isfinite(y).to(torch::kDouble).mean().item<double>();
  m.finite = m.nonfinite_fraction == 0 && all_finite(loss);
  for (const auto& p : params) m.finite = m.finite && all_finite(p.grad());
  for (const auto& l : leaves) m.finite = m.finite && all_finite(l.grad());
  m.nontrivial = m.finite && y.numel() > 1 && y.to(torch::kDouble).std().item<double>() > 0;
  return m;
}

std::vector<Tensor> params_of(const torch::nn::Module& m) { return m.parameters(); }

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
struct MhaLayer {
  torch::nn::MultiheadAttention mha{nullptr};
  MhaLayer(int64_t D, int64_t H) : mha(torch::nn::MultiheadAttentionOptions(D, H)) {}
  Tensor forward(const Tensor& x) {  // x (B, N, D)
    const Tensor s = x.transpose(0, 1);  // LibTorch's MHA is sequence-first (N, B, D)
    return std::get<0>(mha->forward(s, s, s)).transpose(0, 1);
  }
};

// Causal self-attention through rbk::causal_attention (fused SDPA where LibTorch has it).
struct CausalAttentionLayer {
  torch::nn::Linear qkv{nullptr}, proj{nullptr};
  int64_t heads;
  CausalAttentionLayer(int64_t D, int64_t H) : qkv(D, 3 * D), proj(D, D), heads(H) {}
  Tensor forward(const Tensor& x) {  // x (B, N, D)
    const int64_t B = x.size(0), N = x.size(1), D = x.size(2), Dh = D / heads;
    const Tensor t = qkv->forward(x).view({B, N, 3, heads, Dh}).permute({2, 0, 3, 1, 4});  // (3, B, H, N, Dh)
    const Tensor o = rbk::causal_attention(t[0], t[1], t[2], 0.0, true);                 // (B, H, N, Dh)
    return proj->forward(o.transpose(1, 2).reshape({B, N, D}));
  }
  std::vector<Tensor> parameters() const {
    auto p = qkv->parameters();
    auto q = proj->parameters();
    p.insert(p.end(), q.begin(), q.end());
    return p;
  }
};

rbk::BkGradientMode grad_mode_of(const std::string& row) {
  if (row == "bkcore_autograd") return rbk::BkGradientMode::Autograd;
  if (row == "bkcore_papertime_hybrid") return rbk::BkGradientMode::PapertimeHybrid;
  if (row == "bkcore_head_hybrid") return rbk::BkGradientMode::HeadHybrid;
  return rbk::BkGradientMode::Exact;
}

int64_t router_parameters(rbk::Moe& moe) {
  int64_t n = 0;
  for (const auto& kv : moe->named_parameters())
    if (kv.key().rfind("gate", 0) == 0) n += kv.value().numel();
  return n;
}

// One point of one row. Returns false when the row does not run at this N (size limits).
bool run_point(const std::string& row, int64_t N, const rbk::Config& cfg, Measured& m) {
  const int64_t B = cfg.get_int("batch"), D = cfg.get_int("d_model"), E = cfg.get_int("num_experts");
  const int warmup = static_cast<int>(cfg.get_int("warmup")), repeats = static_cast<int>(cfg.get_int("repeats"));
  const int64_t T = B * N;
  const bool attention = row.rfind("attention_", 0) == 0;
  const bool autograd = row == "bk_layer_autograd" || row == "bkcore_autograd";
  if (attention && N > cfg.get_int("attention_max_n")) return false;
  if (autograd && N > cfg.get_int("autograd_max_n")) return false;
  if (row == "bk_layer_compat_poc" && N > cfg.get_int("compat_max_n")) return false;

  const Tensor x = torch::rand({B, N, D});  // the PoC's x ~ U(0, 1)
  const Tensor r = torch::randn({B, N, D});
  if (row.rfind("bk_layer_", 0) == 0) {
    const auto fwd = row == "bk_layer_compat_poc" ? rbk::BkForwardMode::CompatPoc : rbk::BkForwardMode::Stable;
    const auto grad = row == "bk_layer_autograd"     ? rbk::BkGradientMode::Autograd
                      : row == "bk_layer_compat_poc" ? rbk::BkGradientMode::PapertimeHybrid
                                                     : rbk::BkGradientMode::Exact;
    BkLayer layer(D, E, cfg.get_string("bk_router"), fwd, grad);
    m = time_training_step([&] { return rbk::resnet_bk_block_forward(layer.block, x, layer.bk); },
                           params_of(*layer.owner), {}, r, T, warmup, repeats);
    m.extra["router"] = cfg.get_string("bk_router");
    m.extra["bk_forward"] = rbk::to_string(fwd);
    m.extra["bk_gradient"] = rbk::to_string(grad);
    return true;
  }
  if (row == "attention_mha_h4" || row == "attention_mha_h1") {
    MhaLayer layer(D, row == "attention_mha_h4" ? 4 : 1);
    m = time_training_step([&] { return layer.forward(x); }, layer.mha->parameters(), {}, r, T, warmup, repeats);
    m.extra["attention"] = "torch::nn::MultiheadAttention, non-causal, need_weights=true, autograd";
    return true;
  }
  if (row == "attention_causal") {
    CausalAttentionLayer layer(D, 4);
    m = time_training_step([&] { return layer.forward(x); }, layer.parameters(), {}, r, T, warmup, repeats);
    m.extra["attention"] = rbk::fused_attention_available() ? "causal, fused scaled_dot_product_attention"
                                                            : "causal, explicit masked softmax (no fused attention in this LibTorch)";
    return true;
  }
  if (row.rfind("bkcore_", 0) == 0) {
    // v ~ U[-1, 1] as in the audit's gradient measurements (§1.4); upstream gradient r2 ~ N(0, 1).
    const Tensor v = (torch::rand({B, N}) * 2 - 1).requires_grad_(true);
    const Tensor r2 = torch::randn({B, N, 2});
    rbk::BkCoreOptions o;
    o.gradient = grad_mode_of(row);
    m = time_training_step([&] { return rbk::bk_core_features(v, o); }, {}, {v}, r2, T, warmup, repeats);
    const Tensor grad = v.grad().clone();
    const auto tf = rbk::time_repeated([&] { rbk::bk_core_features(v, o); }, warmup, repeats);
    // Reference: the exact gradient of the same loss in fp64.
    const Tensor v64 = v.detach().to(torch::kDouble).requires_grad_(true);
    (rbk::bk_core_features(v64, {}) * r2.to(torch::kDouble)).sum().div(double(T)).backward();
    m.extra["time_forward_min_s"] = tf.min_s;
    m.extra["time_forward_median_s"] = tf.median_s;
    m.extra["cosine_vs_exact_fp64"] = number_or_null(cosine(grad, v64.grad()));
    m.extra["rel_l2_vs_exact_fp64"] = number_or_null(rel_l2(grad, v64.grad()));
    m.extra["bk_gradient"] = rbk::to_string(o.gradient);
    return true;
  }
  if (row == "moe_sparse_top1" || row.rfind("ffn_dense_", 0) == 0 || row == "moe_scattering_phase" || row == "moe_mlp_gating") {
    rbk::MoeOptions mo;
    mo.d_model = D;
    mo.num_experts = E;
    mo.top_k = 1;
    if (row == "moe_sparse_top1") mo.router = rbk::parse_router(cfg.get_string("moe_router"));
    else if (row == "moe_scattering_phase") mo.router = rbk::RouterKind::ScatteringPhase;
    else mo.router = rbk::RouterKind::LearnedTopK;  // moe_mlp_gating; the dense rows take its k >= E path
    if (row.rfind("ffn_dense_", 0) == 0) mo.num_experts = 1;
    if (row == "ffn_dense_equal_total") mo.hidden_mult = 2 * E;
    rbk::Moe moe(mo);
    const Tensor xt = x.reshape({T, D});
    Tensor g;
    if (row == "moe_scattering_phase") {
      const Tensor v = torch::rand({B, N}, torch::kDouble) * 6 - 3;  // audit §3.3: v ~ U[-3, 3]
      g = rbk::resolvent_diagonal(rbk::laplacian_with_potential(v.to(torch::kFloat)), {0, 1}).reshape({T});
    }
    m = time_training_step([&] { return moe->forward(xt, g); }, moe->parameters(), {}, r.reshape({T, D}), T, warmup, repeats);
    int64_t expert_params = 0;
    for (const auto& p : moe->parameters()) expert_params += p.numel();
    expert_params -= router_parameters(moe);
    m.extra["router"] = rbk::to_string(mo.router);
    m.extra["num_experts"] = mo.num_experts;
    m.extra["hidden"] = mo.hidden_mult * D;
    m.extra["parameters"] = rbk::count_parameters(*moe);
    m.extra["router_parameters"] = router_parameters(moe);
    m.extra["active_parameters"] = router_parameters(moe) + expert_params / mo.num_experts;
    return true;
  }
  if (row == "route_scattering_phase" || row == "route_mlp_gating") {
    rbk::MoeOptions mo;
    mo.d_model = D;
    mo.num_experts = E;
    mo.top_k = 1;
    mo.router = row == "route_scattering_phase" ? rbk::RouterKind::ScatteringPhase : rbk::RouterKind::LearnedTopK;
    rbk::Moe moe(mo);
    const Tensor xt = x.reshape({T, D});
    Tensor g;
    if (row == "route_scattering_phase") {
      const Tensor v = torch::rand({B, N}, torch::kDouble) * 6 - 3;
      g = rbk::resolvent_diagonal(rbk::laplacian_with_potential(v.to(torch::kFloat)), {0, 1}).reshape({T});
    }
    rbk::MoeImpl::Routing rt;
    m.t = rbk::time_repeated([&] { rt = moe->route(xt, g); }, warmup, repeats);
    m.finite = all_finite(rt.w) && rt.idx.min().item<int64_t>() >= 0 && rt.idx.max().item<int64_t>() < E;
    m.nontrivial = m.finite;
    const Tensor hist = torch::bincount(rt.idx.select(1, 0), {}, E);  // first slot
    m.extra["router"] = rbk::to_string(mo.router);
    m.extra["router_parameters"] = router_parameters(moe);
    m.extra["first_slot_histogram"] = std::vector<int64_t>(hist.data_ptr<int64_t>(), hist.data_ptr<int64_t>() + E);
    return true;
  }
  throw std::logic_error("cpu_scaling: no implementation for row '" + row + "'");
}

std::string resolve_path(const std::string& p) {
  if (fs::path(p).is_absolute() || fs::exists(p)) return p;
  return (fs::path(RBK_REPO_DIR) / p).string();
}

std::vector<double> usage_fraction(const Tensor& counts) {  // (L, E) int64 -> fractions over E
  const Tensor c = counts.sum(0).to(torch::kDouble);
  const Tensor f = c / c.sum().clamp_min(1.0);
  return std::vector<double>(f.data_ptr<double>(), f.data_ptr<double>() + f.numel());
}

// Short identical training runs (C04) and the router's expert usage (C09).
void run_training(const rbk::Config& cfg, rbk::ExperimentOutput& out) {
  const std::string dir = resolve_path(cfg.get_string("data_dir"));
  if (!fs::is_directory(dir))
    throw rbk::ConfigError("data_dir '" + cfg.get_string("data_dir") + "' (" + dir +
                           ") is not a directory; run scripts/fetch_corpus.sh for the default corpus");
  const auto train_path = rbk::find_split_file(dir, "train");
  const auto train_text = rbk::read_corpus(train_path, rbk::CorpusFormat::Auto, cfg.get_int("train_max_bytes"));
  const auto tok = rbk::WordTokenizer::build(train_text.lines, cfg.get_int("vocab_top_k"));
  const auto train = rbk::load_token_stream(train_path, tok, "", rbk::CorpusFormat::Auto, cfg.get_int("train_max_bytes"));
  const auto valid = rbk::load_token_stream(rbk::find_split_file(dir, "valid"), tok, "", rbk::CorpusFormat::Auto,
                                            cfg.get_int("eval_max_bytes"));
  const int64_t E = cfg.get_int("num_experts");

  rbk::LmConfig base;
  base.vocab_size = tok.vocab_size();
  base.d_model = cfg.get_int("lm_d_model");
  base.n_layers = cfg.get_int("lm_n_layers");
  base.n_seq = cfg.get_int("lm_n_seq");
  base.block = "papertime";
  base.init = "papertime";
  base.bk_forward = "stable";
  base.bk_gradient = "exact";
  base.bk_context = "causal";
  base.top_k = 1;

  rbk::TrainOptions to;
  to.batch_size = cfg.get_int("lm_batch");
  to.seq_len = cfg.get_int("lm_n_seq");
  to.epochs = 1000;  // bounded by max_steps
  to.max_steps = cfg.get_int("train_steps");
  to.lr = cfg.get_real("lr");
  to.log_every = std::max<int64_t>(1, to.max_steps / 4);

  struct Trained {
    std::shared_ptr<rbk::LanguageModel> model;
    rbk::TrainResult tr;
    rbk::EvalResult ev;
    int64_t params = 0;
  };
  auto train_one = [&](const rbk::LmConfig& mc, int64_t seed, const std::string& label,
                       std::vector<double>* usage_initialised) {
    Trained t;
    torch::manual_seed(static_cast<uint64_t>(seed));
    t.model = rbk::make_language_model(mc);
    t.params = rbk::count_parameters(*t.model);
    if (usage_initialised) {
      t.model->reset_expert_counts();
      rbk::evaluate_language_model(*t.model, valid, to.batch_size, to.seq_len, rbk::BatchLayout::Correct);
      *usage_initialised = usage_fraction(t.model->expert_counts());
    }
    rbk::TrainOptions o = to;
    o.seed = static_cast<uint64_t>(seed);
    o.label = label + ": ";
    t.tr = rbk::train_language_model(*t.model, train.ids, o);
    t.model->reset_expert_counts();
    t.ev = rbk::evaluate_language_model(*t.model, valid, to.batch_size, to.seq_len, rbk::BatchLayout::Correct);
    std::printf("[cpu_scaling] %-24s seed %lld: %lld params, %lld steps, valid loss %.4f nats (PPL %.1f), %.0f tok/s\n",
                label.c_str(), (long long)seed, (long long)t.params, (long long)t.tr.steps, t.ev.mean_nll, t.ev.ppl,
                t.tr.tokens_per_second);
    std::fflush(stdout);
    return t;
  };

  // C04: MoE vs dense, same recipe, same seeds.
  rbk::LmConfig moe_cfg = base, dense_cfg = base;
  moe_cfg.num_experts = E;
  moe_cfg.router = cfg.get_string("moe_router");
  dense_cfg.num_experts = 1;  // k = 1 >= E = 1: the MoE's dense path, a plain FFN of width 2D
  dense_cfg.router = "learned_topk";
  std::vector<double> seeds_d, loss_moe, loss_dense, tps_moe, tps_dense;
  std::vector<double> mlp_usage;
  int64_t params_moe = 0, params_dense = 0;
  for (int64_t seed : cfg.get_int_list("train_seeds")) {
    nlohmann::json row{{"family", "c04"}, {"row", "lm_train"}, {"seed", seed}};
    try {
      auto tm = train_one(moe_cfg, seed, "c04 moe " + moe_cfg.router, nullptr);
      auto td = train_one(dense_cfg, seed, "c04 dense ffn", nullptr);
      if (mlp_usage.empty()) mlp_usage = usage_fraction(tm.model->expert_counts());
      params_moe = tm.params;
      params_dense = td.params;
      const bool ok = tm.tr.status == "ok" && td.tr.status == "ok" && std::isfinite(tm.ev.mean_nll) && std::isfinite(td.ev.mean_nll);
      row.update({{"status", ok ? "ok" : "diverged"}, {"moe", {{"model", moe_cfg.to_json()}, {"train", tm.tr.to_json()},
                   {"valid", tm.ev.to_json()}, {"parameters", tm.params}}},
                  {"dense", {{"model", dense_cfg.to_json()}, {"train", td.tr.to_json()}, {"valid", td.ev.to_json()},
                   {"parameters", td.params}}}});
      if (ok) {
        seeds_d.push_back(double(seed));
        loss_moe.push_back(tm.ev.mean_nll);
        loss_dense.push_back(td.ev.mean_nll);
        tps_moe.push_back(tm.tr.tokens_per_second);
        tps_dense.push_back(td.tr.tokens_per_second);
      }
    } catch (const std::exception& e) {
      row.update({{"status", "error"}, {"message", e.what()}});
    }
    out.rows.push_back(row);
  }
  auto mean = [](const std::vector<double>& v) {
    if (v.empty()) return std::nan("");
    double s = 0;
    for (double x : v) s += x;
    return s / double(v.size());
  };
  auto& c04 = out.summary["c04"];
  const int64_t D = base.d_model;
  c04["val_loss_moe"] = number_or_null(mean(loss_moe));
  c04["val_loss_dense"] = number_or_null(mean(loss_dense));
  c04["moe_minus_dense_val_loss"] = number_or_null(mean(loss_moe) - mean(loss_dense));
  c04["seeds"] = {{"seed", seeds_d}, {"val_loss_moe", loss_moe}, {"val_loss_dense", loss_dense}};
  c04["parameters_moe"] = params_moe;
  c04["parameters_dense"] = params_dense;
  // Per block: one expert Linear(D, 2D) + Linear(2D, D) is active in both, plus the gate.
  c04["active_parameters_per_block_moe"] = 4 * D * D + 3 * D + (D * E + E);
  c04["active_parameters_per_block_dense"] = 4 * D * D + 3 * D + (D + 1);
  c04["train_tokens_per_s_moe"] = number_or_null(mean(tps_moe));
  c04["train_tokens_per_s_dense"] = number_or_null(mean(tps_dense));
  c04["lm_setup"] = {{"moe", moe_cfg.to_json()}, {"dense", dense_cfg.to_json()}, {"train_steps", to.max_steps},
                     {"batch", to.batch_size}, {"seq_len", to.seq_len}, {"lr", to.lr}, {"trainer", "rbk::train_language_model"},
                     {"train_tokens", train.ids.numel()}, {"valid_tokens", valid.ids.numel()}, {"vocab_size", base.vocab_size},
                     {"loss", "mean NLL on the valid split, nats per token (rbk::evaluate_language_model)"}};
  out.arrays.push_back(rbk::make_array("c04/val_loss_moe", loss_moe, "nats", "valid mean NLL per seed, MoE LM"));
  out.arrays.push_back(rbk::make_array("c04/val_loss_dense", loss_dense, "nats", "valid mean NLL per seed, dense LM"));

  // C09: expert usage of the scattering-phase router, initialised and after the same training.
  rbk::LmConfig sc_cfg = base;
  sc_cfg.num_experts = E;
  sc_cfg.router = "scattering_phase";
  sc_cfg.bk_context = cfg.get_string("c09_bk_context");
  nlohmann::json row{{"family", "c09"}, {"row", "lm_train_scattering_router"}, {"model", sc_cfg.to_json()}};
  auto& c09 = out.summary["c09"];
  try {
    std::vector<double> usage_init;
    auto ts = train_one(sc_cfg, cfg.get_int_list("train_seeds").front(), "c09 scattering router", &usage_init);
    const auto usage_trained = usage_fraction(ts.model->expert_counts());
    c09["expert_usage_fraction_initialised"] = usage_init;
    c09["expert_usage_fraction_trained"] = usage_trained;
    c09["expert0_fraction_initialised"] = usage_init.at(0);
    c09["expert0_fraction_trained"] = usage_trained.at(0);
    c09["usage_setup"] = "valid split through the paper-time LM (bk_context " + sc_cfg.bk_context +
                         "), every used routing slot counted, summed over layers";
    row.update({{"status", ts.tr.status == "ok" ? "ok" : ts.tr.status}, {"train", ts.tr.to_json()}, {"valid", ts.ev.to_json()},
                {"expert_usage_fraction_initialised", usage_init}, {"expert_usage_fraction_trained", usage_trained}});
    std::printf("[cpu_scaling] scattering router usage: initialised %s, trained %s\n", nlohmann::json(usage_init).dump().c_str(),
                nlohmann::json(usage_trained).dump().c_str());
  } catch (const std::exception& e) {
    row.update({{"status", "error"}, {"message", e.what()}});
  }
  out.rows.push_back(row);
  c09["mlp_gating_expert_usage_fraction"] = mlp_usage;
  c09["mlp_gating_usage_router"] = moe_cfg.router;
}

// N where attention and BK take equal time (see the file comment). ns ascending, ratio = t_attn / t_bk.
std::pair<nlohmann::json, std::string> crossover(const std::vector<double>& ns, const std::vector<double>& ratio) {
  if (ns.empty()) return {nullptr, "not_measured"};
  int last_slower = -1;
  for (size_t i = 0; i < ns.size(); ++i)
    if (ratio[i] < 1.0) last_slower = static_cast<int>(i);
  if (last_slower < 0) return {ns.front(), "at_or_below_smallest_n"};
  if (last_slower == static_cast<int>(ns.size()) - 1) return {nullptr, "above_largest_n"};
  const size_t i = static_cast<size_t>(last_slower);
  const double l0 = std::log(ns[i]), l1 = std::log(ns[i + 1]);
  const double r0 = std::log(ratio[i]), r1 = std::log(ratio[i + 1]);
  return {std::exp(l0 + (0.0 - r0) * (l1 - l0) / (r1 - r0)), "interpolated"};
}

void run(const rbk::Config& cfg, rbk::ExperimentOutput& out) {
  const auto n_list = cfg.get_int_list("n_list");
  const auto rows = cfg.get_string_list("rows");
  if (cfg.get_int("d_model") % 4 != 0) throw rbk::ConfigError("config key 'd_model' must be a multiple of 4 (4 attention heads)");
  const int64_t B = cfg.get_int("batch");
  if (cfg.get_int("train_steps") > 0 && cfg.get_int_list("train_seeds").empty())
    throw rbk::ConfigError("config key 'train_seeds' must list at least one seed when 'train_steps' > 0");

  out.summary["machine"] = machine_blas();
  std::printf("[cpu_scaling] BLAS %s\n", out.summary["machine"].dump().c_str());

  // Per row: N -> fastest time (finite rows), all rows that ran (for fits of the compat path too).
  std::map<std::string, std::map<int64_t, double>> t_ok, t_ran;
  std::map<std::string, std::map<int64_t, nlohmann::json>> extra;
  struct Series {
    std::vector<int64_t> n;
    std::vector<double> tmin, tmed;
  };
  std::map<std::string, Series> series;
  int64_t compat_first_nonfinite = -1;
  double compat_nonfinite_ref = std::nan("");

  for (int64_t N : n_list) {
    for (const auto& row : rows) {
      nlohmann::json j{{"family", family_of(row)}, {"row", row}, {"n", N}, {"batch", B}, {"d_model", cfg.get_int("d_model")}};
      try {
        Measured m;
        if (!run_point(row, N, cfg, m)) continue;
        const bool ok = m.finite && m.nontrivial;
        j.update({{"status", ok ? "ok" : (m.finite ? "trivial_output" : "nonfinite_output")},
                  {"time_min_s", m.t.min_s}, {"time_median_s", m.t.median_s}, {"time_max_s", m.t.max_s},
                  {"repeats", m.t.repeats}, {"ns_per_token", 1e9 * m.t.min_s / double(B * N)},
                  {"nonfinite_fraction", m.nonfinite_fraction}});
        j.update(m.extra);
        t_ran[row][N] = m.t.min_s;
        if (ok) t_ok[row][N] = m.t.min_s;
        extra[row][N] = m.extra;
        auto& s = series[row];
        s.n.push_back(N);
        s.tmin.push_back(m.t.min_s);
        s.tmed.push_back(m.t.median_s);
        if (row == "bk_layer_compat_poc") {
          if (!m.finite && compat_first_nonfinite < 0) compat_first_nonfinite = N;
          if (N == kReferenceN) compat_nonfinite_ref = m.nonfinite_fraction;
        }
        std::printf("[cpu_scaling] N=%-5lld %-24s %10.3f ms (median %.3f)  %s\n", (long long)N, row.c_str(), 1e3 * m.t.min_s,
                    1e3 * m.t.median_s, j["status"].get<std::string>().c_str());
      } catch (const std::exception& e) {
        j.update({{"status", "error"}, {"message", e.what()}});
        std::printf("[cpu_scaling] N=%lld %s: error %s\n", (long long)N, row.c_str(), e.what());
      }
      std::fflush(stdout);
      out.rows.push_back(j);
    }
  }

  auto tmin_at = [&](const std::string& row, int64_t N) {
    auto it = t_ok.find(row);
    if (it == t_ok.end()) return std::nan("");
    auto jt = it->second.find(N);
    return jt == it->second.end() ? std::nan("") : jt->second;
  };
  auto ratio = [&](const std::string& num, const std::string& den, int64_t N) { return tmin_at(num, N) / tmin_at(den, N); };

  // C03
  auto& c03 = out.summary["c03"];
  c03["ratio_attention_autograd_over_bk_n2048"] = number_or_null(ratio("attention_mha_h4", "bk_layer_exact", kReferenceN));
  c03["ratio_attention_autograd_h1_over_bk_n2048"] = number_or_null(ratio("attention_mha_h1", "bk_layer_exact", kReferenceN));
  c03["ratio_attention_causal_over_bk_n2048"] = number_or_null(ratio("attention_causal", "bk_layer_exact", kReferenceN));
  c03["ratio_attention_autograd_over_bk_compat_n2048"] =
      number_or_null(t_ran["attention_mha_h4"].count(kReferenceN) && t_ran["bk_layer_compat_poc"].count(kReferenceN)
                         ? t_ran["attention_mha_h4"][kReferenceN] / t_ran["bk_layer_compat_poc"][kReferenceN]
                         : std::nan(""));
  c03["compat_first_nonfinite_n"] = compat_first_nonfinite < 0 ? nlohmann::json(nullptr) : nlohmann::json(compat_first_nonfinite);
  c03["compat_nonfinite_fraction_n2048"] = number_or_null(compat_nonfinite_ref);
  c03["fused_attention_available"] = rbk::fused_attention_available();
  c03["attention_causal_kind"] = rbk::fused_attention_available() ? "sdpa_fused" : "explicit_masked_softmax";
  for (const auto& [attn, key] : std::vector<std::pair<std::string, std::string>>{{"attention_mha_h4", "attention_autograd"},
                                                                                 {"attention_causal", "attention_causal"}}) {
    std::vector<double> ns, rs;
    for (int64_t N : n_list) {
      const double q = ratio(attn, "bk_layer_exact", N);
      if (std::isfinite(q)) {
        ns.push_back(double(N));
        rs.push_back(q);
      }
    }
    auto [cn, bound] = crossover(ns, rs);
    c03["crossover_n_" + key] = cn;
    c03["crossover_" + key + "_bound"] = bound;
  }

  // C02
  auto& c02 = out.summary["c02"];
  c02["speedup_exact_over_autograd_n2048"] = number_or_null(ratio("bkcore_autograd", "bkcore_exact", kReferenceN));
  c02["speedup_exact_over_autograd_layer_n2048"] = number_or_null(ratio("bk_layer_autograd", "bk_layer_exact", kReferenceN));
  c02["speedup_papertime_hybrid_over_autograd_n2048"] =
      number_or_null(ratio("bkcore_autograd", "bkcore_papertime_hybrid", kReferenceN));
  {
    double bwd = std::nan("");
    if (extra["bkcore_autograd"].count(kReferenceN) && extra["bkcore_exact"].count(kReferenceN)) {
      const double ba = tmin_at("bkcore_autograd", kReferenceN) - extra["bkcore_autograd"][kReferenceN]["time_forward_min_s"].get<double>();
      const double be = tmin_at("bkcore_exact", kReferenceN) - extra["bkcore_exact"][kReferenceN]["time_forward_min_s"].get<double>();
      if (ba > 0 && be > 0) bwd = ba / be;
    }
    c02["backward_speedup_exact_over_autograd_n2048"] = number_or_null(bwd);
  }
  {
    // Cosines at the reference N, else at the largest N every bkcore row ran at.
    int64_t n_cos = -1;
    for (int64_t N : n_list)
      if (N <= kReferenceN && extra["bkcore_autograd"].count(N) && extra["bkcore_exact"].count(N)) n_cos = N;
    c02["cosine_n"] = n_cos < 0 ? nlohmann::json(nullptr) : nlohmann::json(n_cos);
    for (const std::string mode : {"exact", "autograd", "papertime_hybrid", "head_hybrid"}) {
      const std::string row = "bkcore_" + mode;
      nlohmann::json c = nullptr, e = nullptr;
      if (n_cos > 0 && extra[row].count(n_cos)) {
        c = extra[row][n_cos]["cosine_vs_exact_fp64"];
        e = extra[row][n_cos]["rel_l2_vs_exact_fp64"];
      }
      c02["cosine_" + mode + "_vs_exact"] = c;
      if (mode == "autograd") c02["rel_l2_autograd_vs_exact"] = e;
    }
    if (c02["cosine_autograd_vs_exact"].is_number() && c02["cosine_autograd_vs_exact"].get<double>() < kSameGradientCosine)
      std::printf("[cpu_scaling] WARNING: autograd and exact gradients differ (cosine %.8f)\n",
                  c02["cosine_autograd_vs_exact"].get<double>());
  }

  // C04 timing
  auto& c04 = out.summary["c04"];
  c04["speedup_moe_over_dense_equal_active_n2048"] = number_or_null(ratio("ffn_dense_equal_active", "moe_sparse_top1", kReferenceN));
  c04["speedup_moe_over_dense_equal_total_n2048"] = number_or_null(ratio("ffn_dense_equal_total", "moe_sparse_top1", kReferenceN));
  c04["moe_router"] = cfg.get_string("moe_router");

  // C09 timing and parameters
  auto& c09 = out.summary["c09"];
  c09["router_speedup"] = number_or_null(ratio("route_mlp_gating", "route_scattering_phase", kReferenceN));
  c09["layer_speedup"] = number_or_null(ratio("moe_mlp_gating", "moe_scattering_phase", kReferenceN));
  c09["router_ns_per_token_scattering"] = number_or_null(1e9 * tmin_at("route_scattering_phase", kReferenceN) / double(B * kReferenceN));
  c09["router_ns_per_token_mlp"] = number_or_null(1e9 * tmin_at("route_mlp_gating", kReferenceN) / double(B * kReferenceN));
  {
    const int64_t D = cfg.get_int("d_model"), E = cfg.get_int("num_experts");
    rbk::MoeOptions mo;
    mo.d_model = D;
    mo.num_experts = E;
    mo.router = rbk::RouterKind::ScatteringPhase;
    rbk::Moe sc(mo);
    mo.router = rbk::RouterKind::LearnedTopK;
    rbk::Moe mlp(mo);
    c09["router_parameters_scattering"] = router_parameters(sc);
    c09["router_parameters_mlp"] = router_parameters(mlp);
    c09["router_speed_note"] =
        "routing alone (Moe::route, forward); the scattering router is given G_ii, which the paper-time block "
        "computes anyway for its BK features";
  }

  // Exponents of time ~ N^p per row (fastest repetitions, N >= fit_min_n; compat rows include
  // non-finite points: their time is still the cost of the arithmetic).
  auto& ex = out.summary["exponents"];
  for (const auto& [row, s] : series) {
    std::vector<double> xs, ys;
    for (size_t i = 0; i < s.n.size(); ++i)
      if (s.n[i] >= cfg.get_int("fit_min_n")) {
        xs.push_back(double(s.n[i]));
        ys.push_back(s.tmin[i]);
      }
    ex[row] = xs.size() >= 2 ? nlohmann::json(rbk::fit_power_law_exponent(xs, ys)) : nlohmann::json(nullptr);
    out.arrays.push_back(rbk::make_int_array(row + "/n", s.n, "1", "sequence length N"));
    out.arrays.push_back(rbk::make_array(row + "/time_min_s", s.tmin, "s", "fastest repetition of one training step"));
    out.arrays.push_back(rbk::make_array(row + "/time_median_s", s.tmed, "s", "median of the repetitions"));
  }
  // Largest N each kind of row ran at: validation judges an N = 2048 claim only where it was swept.
  auto max_n_of = [&](const std::string& row) {
    auto it = series.find(row);
    return it == series.end() || it->second.n.empty() ? int64_t(0) : it->second.n.back();
  };
  out.summary["max_n"] = n_list.empty() ? int64_t(0) : *std::max_element(n_list.begin(), n_list.end());
  out.summary["max_n_attention"] = max_n_of("attention_mha_h4");
  out.summary["max_n_autograd"] = std::min(max_n_of("bkcore_autograd"), max_n_of("bk_layer_autograd"));
  out.summary["max_n_compat"] = max_n_of("bk_layer_compat_poc");
  out.summary["fit_min_n"] = cfg.get_int("fit_min_n");
  out.summary["reference_n"] = kReferenceN;
  out.summary["threads"] = at::get_num_threads();

  if (cfg.get_int("train_steps") > 0) run_training(cfg, out);
  out.summary["peak_rss_mb"] = peak_rss_mb();
  std::printf("[cpu_scaling] summary %s\n", out.summary.dump().c_str());
}

}  // namespace

int main(int argc, char** argv) {
  rbk::ExperimentSpec spec{"cpu_scaling", {"C02", "C03", "C04", "C09"},
                           "one-layer training-step time vs N on the CPU: ResNet-BK layer vs attention (C03), exact vs "
                           "autograd BK-Core gradient (C02), sparse MoE vs dense FFN (C04), scattering vs MLP router (C09)",
                           {}};
  spec.schema.add_int("batch", 1, 1024, "batch B of every timed layer (PoC: 8)")
      .add_int("d_model", 4, 4096, "width D (PoC: 64)")
      .add_int("num_experts", 1, 64, "experts E of the MoE rows and LMs (PoC: 4)")
      .add_int_list("n_list", 2, 1 << 20, "sequence lengths N")
      .add_string_list("rows", all_rows(), "rows to time (see the file comment)")
      .add_int("attention_max_n", 0, 1 << 20, "largest N of the attention rows (memory: B H N^2 floats)")
      .add_int("autograd_max_n", 0, 1 << 20, "largest N of the autograd rows (one op per recursion step)")
      .add_int("compat_max_n", 0, 1 << 20, "largest N of the compat (PoC recursion) row")
      .add_int("warmup", 0, 100, "untimed calls before timing")
      .add_int("repeats", 1, 1000, "timed calls per point (fastest and median reported)")
      .add_int("fit_min_n", 1, 1 << 20, "smallest N in the time ~ N^p fits")
      .add_string("bk_router", {"learned_topk", "switch_top1", "gumbel_hard"}, "MoE router inside the timed ResNet-BK layer")
      .add_string("moe_router", {"learned_topk", "switch_top1", "gumbel_hard"}, "router of the sparse MoE (C04 rows and LM)")
      .add_string("data_dir", {}, "corpus directory with train/valid splits (relative: cwd, then repo root)")
      .add_int("train_max_bytes", 0, int64_t(1) << 40, "read at most this many bytes of the train split (0 = all)")
      .add_int("eval_max_bytes", 0, int64_t(1) << 40, "read at most this many bytes of the valid split (0 = all)")
      .add_int("vocab_top_k", 0, 10000000, "word vocabulary: 0 = every train type, K = <unk> + top K-1")
      .add_int("lm_d_model", 1, 4096, "LM width").add_int("lm_n_layers", 1, 64, "LM blocks")
      .add_int("lm_n_seq", 2, 65536, "LM sequence length").add_int("lm_batch", 1, 4096, "LM batch")
      .add_int("train_steps", 0, 10000000, "optimizer steps of each short training run (0 = no training)")
      .add_real("lr", 1e-6, 1.0, "AdamW learning rate")
      .add_int_list("train_seeds", 0, 2147483647, "seeds of the C04 MoE/dense pairs (the first also trains the C09 LM)")
      .add_string("c09_bk_context", {"bidirectional", "causal"}, "BK-Core context of the C09 scattering-router LM (upstream: bidirectional)")
      .add_int("threads", 0, 256, "CPU threads (0 = all cores); 1 for timings of record on a shared machine");
  return rbk::run_experiment(argc, argv, spec, run);
}
