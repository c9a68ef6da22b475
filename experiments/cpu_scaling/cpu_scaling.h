// Shared parts of exp_cpu_scaling (claims C02, C03, C04, C09; see main.cpp's top comment): the
// timed rows as objects that can be stepped in any order (so two rows can be interleaved), the
// equal-work checks read from their last call, and the stages of the run.
#pragma once
#include "rbk/config.h"
#include "rbk/experiment.h"
#include "rbk/language_model.h"
#include "rbk/moe.h"
#include "rbk/options.h"
#include "rbk/trainer.h"
#include "rbk/timing.h"
#include "rbk/tensor_metrics.h"

#include <torch/torch.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace rbk_cpu_scaling {

using torch::Tensor;

// Seed 004's headline numbers are at N = 2048 (audit §10.2); the interleaved repeats run there.
constexpr int64_t kReferenceN = 2048;

const std::vector<std::string>& all_rows();
std::string family_of(const std::string& row);
nlohmann::json number_or_null(double x);
bool all_finite(const Tensor& t);

// The random inputs of one N, shared by every row built from them so that the two sides of a
// ratio see the same tokens.
struct RowInputs {
  int64_t B = 0, N = 0, D = 0;
  Tensor x;   // (B, N, D) float32 ~ U(0, 1): the PoC's layer input
  Tensor r;   // (B, N, D) float32 ~ N(0, 1): loss weights, L = sum(y * r) / (B N)
  Tensor v;   // (B, N) float32 ~ U[-1, 1]: BK-Core rows' potential (audit §1.4)
  Tensor r2;  // (B, N, 2) float32 ~ N(0, 1): loss weights of the BK-Core rows
  Tensor g;   // (B N,) complex64 G_ii of a potential ~ U[-3, 3] (audit §3.3): scattering router input
};
RowInputs make_row_inputs(int64_t B, int64_t N, int64_t D);

// What one timed point produced.
struct Measured {
  rbk::TimingStats t;
  bool finite = true;      // output, loss and every gradient finite
  bool nontrivial = true;  // output not constant
  double nonfinite_fraction = 0;
  nlohmann::json extra = nlohmann::json::object();
};

// One row at one N, ready to be called: `step` is the timed call (one training step of a layer,
// or routing alone), `inspect` reads the last call's outputs (finiteness, extras such as the
// gradient's cosine with fp64). The tensors below are what the equal-work checks compare.
struct TimedRow {
  std::string row;
  int64_t tokens = 0;                                    // B N
  std::function<void()> step;
  std::function<void(Measured&)> inspect;
  std::shared_ptr<torch::nn::Module> module;             // the timed layer's parameters (none for bkcore rows)
  std::shared_ptr<rbk::MoeImpl> moe;                     // MoE and route rows: the layer (expert counts)
  Tensor input;                                          // what the layer was given (x, x as (T, D), or v)
  std::shared_ptr<Tensor> output = std::make_shared<Tensor>();  // last call's output
  std::shared_ptr<Tensor> loss = std::make_shared<Tensor>();    // last call's loss (training rows)
  std::vector<Tensor> grad_owners;                       // tensors whose .grad() a step fills, in a fixed order
  std::shared_ptr<rbk::MoeImpl::Routing> routing;        // route rows: the last routing decision
};

// Builds `row` on `in`. Returns false (and leaves `out` alone) when the row does not run at in.N
// (attention_max_n, autograd_max_n, compat_max_n).
bool make_timed_row(const std::string& row, const RowInputs& in, const rbk::Config& cfg, TimedRow& out);
// Copies every parameter of `from` into the same-named parameter of `to` (same architecture).
void copy_parameters(const torch::nn::Module& from, torch::nn::Module& to);
// The last call's output, loss and gradients finite, output not constant (route rows: weights
// finite, every expert index in [0, E)); t is left zero.
Measured check_last_call(const TimedRow& t);
// check_last_call plus the row's extras (bkcore rows: forward-only time, cosine with fp64).
Measured inspect_row(const TimedRow& t);
// Concatenated gradients of grad_owners (fp64, flat); undefined entries count as zeros.
Tensor flat_gradient(const TimedRow& t);

// Parameters that exist only because of the router choice (C09): every parameter of rbk::Moe
// built with `o`, plus every registered buffer that requires grad, minus the parameters of an
// expert stack of the same shape (E x Linear(D, hD) + Linear(hD, D)) built on its own, so the
// count does not depend on parameter names.
int64_t router_owned_parameters(const rbk::MoeOptions& o);
// Parameters of one expert (Linear(D, hD) + Linear(hD, D)): the expert weights one token uses.
int64_t expert_parameters(const rbk::MoeOptions& o);

// Stage 1 (ratio_repeats.cpp): the deciding ratios at kReferenceN as samples (interleaved
// repeats) on `in` (in.N == kReferenceN), their equal-work checks, and per row the pooled
// timings, which the sweep reuses at N = kReferenceN (same inputs) instead of timing those rows
// again.
struct PooledRow {
  Measured m;  // t over every inner call of every repeat; finite/extras from the last call
};
void run_ratio_repeats(const rbk::Config& cfg, const RowInputs& in, rbk::ExperimentOutput& out,
                       std::map<std::string, PooledRow>& pooled);

// Stage 3 (lm_training.cpp): short identical LM trainings (C04 accuracy, C09 expert usage).
// The recipe comes from the model.* and train.* sections (options.h); train.max_steps > 0 bounds
// every run (0 = no LM training). lm_recipe checks the recipe and every LM derived from it
// (ConfigError), so run() calls it before any timing.
struct LmRecipe {
  rbk::LmConfig model;  // vocab_size 0: set from the tokenizer
  rbk::TrainOptions train;
};
LmRecipe lm_recipe(const rbk::Config& cfg);
void run_training(const rbk::Config& cfg, rbk::ExperimentOutput& out);

}  // namespace rbk_cpu_scaling
