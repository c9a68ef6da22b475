// FLOPs per token, analytic and counted (see flop_count.h; claim C11).
#include "rbk/flop_count.h"
#include "rbk/lowrank_resolvent.h"

#include <ATen/record_function.h>

#include <atomic>
#include <memory>
#include <cstring>
#include <stdexcept>

namespace rbk {

namespace {

// Element-wise constants (FLOPs per element). Conventions, not measurements:
constexpr double kNormPerElement = 5.0;          // LayerNorm / RMSNorm: upstream's FLOPs counter (audit §9.5)
constexpr double kBkRecursionPerPosition = 34.0;  // theta 14 + phi 14 + division 6 (audit §9.5)
constexpr double kComplexMulAdd = 8.0;           // one complex multiply (6) + add (2)
constexpr double kScanPerState = 9.0;            // Mamba: exp(Delta A) ~3, h = a h + b x ~4, y += C h ~2
constexpr double kGatePerElement = 5.0;          // SiLU x sigmoid and the gating product

double fraction_experts(const LmConfig& c) {
  // Experts evaluated per token: dense mixtures evaluate all E; the scattering router sends its
  // "resonance" tokens (top 10 % of |G|, moe.h) to two experts.
  if (c.router == "gumbel_hard" || (c.router == "learned_topk" && c.top_k >= c.num_experts))
    return static_cast<double>(c.num_experts);
  if (c.router == "scattering_phase") return 1.0 + 0.1 * std::min<int64_t>(1, c.num_experts - 1);
  return static_cast<double>(c.top_k);
}

}  // namespace

double TokenFlops::matmul_total() const {
  double s = 0;
  for (const auto& [k, v] : matmul) s += v;
  return s;
}
double TokenFlops::elementwise_total() const {
  double s = 0;
  for (const auto& [k, v] : elementwise) s += v;
  return s;
}
nlohmann::json TokenFlops::to_json() const {
  return {{"matmul", matmul}, {"elementwise", elementwise}, {"matmul_total", matmul_total()},
          {"elementwise_total", elementwise_total()}, {"total", total()}};
}

TokenFlops analytic_token_flops(const LmConfig& c, int64_t n, double f) {
  TokenFlops t;
  const double D = static_cast<double>(c.d_model), L = static_cast<double>(c.n_layers), V = static_cast<double>(c.vocab_size);
  t.matmul["head"] = 2.0 * D * V;
  t.elementwise["final_norm"] = kNormPerElement * D;
  if (c.arch == "resnet_bk") {
    const double hD = 2.0 * D;  // expert hidden width (moe.h: hidden_mult 2)
    const bool gated = c.router != "scattering_phase";
    t.matmul["block.v_proj"] = L * f * 2.0 * D;
    if (gated) t.matmul["block.gate"] = L * f * 2.0 * D * static_cast<double>(c.num_experts);
    t.matmul["block.experts"] = L * f * fraction_experts(c) * (2.0 * D * hD + 2.0 * hD * D);
    t.matmul["block.out_proj"] = L * f * 2.0 * 2.0 * D;
    t.elementwise["block.norm"] = L * f * kNormPerElement * D;
    t.elementwise["block.expert_relu_and_residual"] = L * f * (fraction_experts(c) * hD + 3.0 * D);
    t.elementwise["block.bk_recursion"] = L * kBkRecursionPerPosition;  // every position, halted or not
    const int64_t r = semiseparable_rank_of(c);
    if (r > 0) {
      const double R = static_cast<double>(r);
      // C = V^T X and X C^-1: complex products, 2 M N K real-FLOP units x 4 per complex multiply-add.
      t.matmul["block.semiseparable"] = L * 4.0 * (2.0 * R * R + 2.0 * R * R);
      t.elementwise["block.semiseparable_solve"] = L * (2.0 * 2.0 * R * kComplexMulAdd + 10.0);
    }
  } else if (c.arch == "transformer") {
    const double F = static_cast<double>(c.ffn_dim), N = static_cast<double>(n);
    t.matmul["block.qkv"] = L * 2.0 * D * 3.0 * D;
    // Scores and values over all n keys (LibTorch 1.13's math path computes the full n x n matrix
    // and masks it; a fused causal kernel does about half).
    t.matmul["block.attention"] = L * 2.0 * 2.0 * N * D;
    t.matmul["block.proj"] = L * 2.0 * D * D;
    t.matmul["block.ffn"] = L * 2.0 * 2.0 * D * F;
    t.elementwise["block.norm"] = L * 2.0 * kNormPerElement * D;
    t.elementwise["block.softmax_gelu_residual"] = L * (5.0 * N * static_cast<double>(c.n_heads) / 1.0 + 8.0 * F + 2.0 * D);
  } else if (c.arch == "mamba") {
    const double Di = static_cast<double>(c.expand * c.d_model), S = static_cast<double>(c.d_state);
    const double R = static_cast<double>(c.dt_rank > 0 ? c.dt_rank : (c.d_model + 15) / 16);
    const double K = static_cast<double>(c.d_conv);
    t.matmul["block.in_proj"] = L * 2.0 * D * 2.0 * Di;
    t.matmul["block.x_proj"] = L * 2.0 * Di * (R + 2.0 * S);
    t.matmul["block.dt_proj"] = L * 2.0 * R * Di;
    t.matmul["block.out_proj"] = L * 2.0 * Di * D;
    t.elementwise["block.conv"] = L * 2.0 * K * Di;
    t.elementwise["block.scan"] = L * kScanPerState * Di * S;
    t.elementwise["block.norm_gates_residual"] = L * (kNormPerElement * D + 2.0 * kGatePerElement * Di + D);
  } else {
    throw std::invalid_argument("analytic_token_flops: arch '" + c.arch + "' has no FLOP count; expected resnet_bk, transformer or mamba");
  }
  return t;
}

namespace {

std::atomic<double> g_matmul_flops{0.0};
std::atomic<bool> g_flop_counter_alive{false};
// Depth of fused-attention operators on this thread: their matrix products are counted once, at
// the attention operator, and the leaves that its math path runs inside it are not counted again.
thread_local int t_attention_depth = 0;
struct InsideAttention : at::ObserverContext {};

bool is_complex(const c10::IValue& v) { return v.isTensor() && v.toTensor().is_complex(); }

void add_flops(double flops) {
  double cur = g_matmul_flops.load();
  while (!g_matmul_flops.compare_exchange_weak(cur, cur + flops)) {
  }
}

// aten::scaled_dot_product_attention (LibTorch >= 2; its fused CPU and GPU kernels run no
// aten::bmm) and 1.13's aten::_scaled_dot_product_attention. Counted as the dense products the
// analytic count states: scores 2 (B N) S Dh and values 2 (B N) S Dv for q (.., N, Dh), k (.., S, Dh)
// and v (.., S, Dv), the full N x S matrix whether or not a causal kernel skips the masked half.
bool is_attention(const char* name) {
  return std::strcmp(name, "aten::scaled_dot_product_attention") == 0 ||
         std::strcmp(name, "aten::_scaled_dot_product_attention") == 0;
}

std::unique_ptr<at::ObserverContext> count_matmul(const at::RecordFunction& fn) {
  const char* name = fn.name();
  if (is_attention(name)) {
    if (t_attention_depth++ == 0) {
      const auto inputs = fn.inputs();
      if (inputs.size() >= 3 && inputs[0].isTensor() && inputs[1].isTensor() && inputs[2].isTensor()) {
        const auto& q = inputs[0].toTensor();
        const double rows = static_cast<double>(q.numel()) / static_cast<double>(q.size(-1));  // B H N
        const double keys = static_cast<double>(inputs[1].toTensor().size(-2));
        add_flops(2.0 * rows * keys * static_cast<double>(q.size(-1) + inputs[2].toTensor().size(-1)));
      }
    }
    return std::make_unique<InsideAttention>();
  }
  if (t_attention_depth > 0) return nullptr;
  // Leaves of every other matrix product (aten::linear and aten::matmul dispatch to these).
  int a = -1, b = -1;
  if (std::strcmp(name, "aten::mm") == 0 || std::strcmp(name, "aten::bmm") == 0) {
    a = 0; b = 1;
  } else if (std::strcmp(name, "aten::addmm") == 0 || std::strcmp(name, "aten::baddbmm") == 0) {
    a = 1; b = 2;
  } else {
    return nullptr;
  }
  const auto inputs = fn.inputs();
  if (static_cast<int>(inputs.size()) <= b || !inputs[a].isTensor() || !inputs[b].isTensor()) return nullptr;
  const auto& x = inputs[a].toTensor();
  const auto& y = inputs[b].toTensor();
  double flops = 2.0 * static_cast<double>(x.numel()) * static_cast<double>(y.size(-1));  // 2 (batch) M K N
  if (is_complex(inputs[a]) || is_complex(inputs[b])) flops *= 4.0;  // a complex MAC is 4 real MACs
  add_flops(flops);
  return nullptr;
}

void leave_attention(const at::RecordFunction&, at::ObserverContext* ctx) {
  if (ctx != nullptr) --t_attention_depth;
}

}  // namespace

MatmulFlopCounter::MatmulFlopCounter() {
  if (g_flop_counter_alive.exchange(true)) throw std::logic_error("MatmulFlopCounter: only one may exist at a time");
  g_matmul_flops = 0.0;
  handle_ = at::addGlobalCallback(
      at::RecordFunctionCallback(count_matmul, leave_attention).needsInputs(true).scopes({at::RecordScope::FUNCTION}));
}

MatmulFlopCounter::~MatmulFlopCounter() {
  at::removeCallback(handle_);
  g_flop_counter_alive = false;
}

double MatmulFlopCounter::flops() const { return g_matmul_flops.load(); }
void MatmulFlopCounter::reset() { g_matmul_flops = 0.0; }

}  // namespace rbk
