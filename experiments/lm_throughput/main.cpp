// exp_lm_throughput: issue 7's performance target (a measurement, not a paper claim; the claims
// registry has no entry for it): training throughput (tokens/s) and peak GPU memory of each
// language model at equal size, side by side in one run:
//   resnet_bk_bidirectional   ResNet-BK LM, stable BK forward + exact gradient, as in the papers
//   resnet_bk_causal          the same with the causal BK-Core (our corrected variant)
//   resnet_bk_*_dense_moe     either, with the MoE's dense dispatch (every expert on every token, no
//                             host synchronisation; moe.h, issue 25): the same function and weights
//   resnet_bk_*_grouped_moe   either, with the grouped dispatch (the routed tokens only, over padded
//                             tiles, no host synchronisation; moe_grouped.h): the same function
//   transformer               causal Transformer, attention through rbk::causal_attention
//                             (scaled_dot_product_attention = flash attention on LibTorch >= 2)
//   mamba, rwkv               the Mamba-1 and RWKV-4 LMs (a row with status "not_built" where
//                             make_language_model does not know them yet)
// The reference is a ResNet-BK configuration (gpu preset: seeds 000/001's "Small": V 50,000, D 256,
// L 6, N 2048, E 4 = 32,500,084 parameters); every baseline keeps V, L and N and gets the width that
// brings it closest to the reference's parameter count (rbk::size_to_parameter_count, within the
// configured tolerance; a baseline that cannot be sized is a row with status "sizing_failed").
//
// Each row: the same batch size, sequence length N, precision (bf16 autocast on CUDA in the gpu
// preset), loss, AdamW (rbk::MultiTensorAdamW) and gradient clipping as the LM trainer
// (rbk::language_model_loss with train.loss_chunk_tokens: the head and cross-entropy in chunks, so
// that no step holds the (B N x V) logits; 0 = the plain full-logits path; rbk::clip_grad_norm_no_sync).
// The gpu preset uses the plain loss: the chunked head runs in fp32 / TF32 instead of bf16 and, at
// 2k, cost the Transformer 18 % of its tokens/s and ResNet-BK 10 % (H100, results/lm_throughput/
// chunked_loss at 615c808 against the plain loss at f49a28d: +6.2 ms on the Transformer's step,
// +3.4 ms on ResNet-BK's), which moved the 2k ratio from 0.91 to 1.00. gpu_lengths chunks it (the only way to reach 128k): every
// point of that curve has the same head, so its ratios compare with each other, not with the 2k row;
// `warmup_steps` untimed steps, then `timed_steps` steps each timed
// as device-synchronised wall time (and the host's time to issue it); tokens/s = B N / median step
// time. Then `phase_steps` steps timed per phase (forward + loss, backward, clipping + AdamW).
// Inputs are uniform random token ids (throughput does not depend on the text; they are drawn
// once, before timing). Peak memory is the CUDA caching allocator's peak of allocated bytes, reset
// before each model is built (null on the CPU). The loss after the timed steps must be finite, else status "diverged"; an
// out-of-memory failure is status "oom". Only the gpu preset on a CUDA device is the target's
// configuration: summary.is_target_configuration says whether this run was. Then `busy_steps` more
// steps, issued back to back, under LibTorch's profiler recording device activities only: the GPU
// busy fraction (rbk::measure_gpu_busy; issue 25 asks for >= 90 %), null on the CPU. From the same
// recording, where the kernel time went, each key per step (the sums over the busy steps / busy_steps):
// row.gpu_busy.kernel_seconds_per_step (the sum of the device activities' durations: overlapping
// ones each count, so it may exceed busy_seconds / steps), .kernel_seconds_per_step_by_category
// {category: seconds}, every category of rbk::kernel_categories() (matmul, bk_core, attention, copy,
// ...; gpu_busy.cpp gives each one's rule), 0 where none ran (they sum to the total),
// .top_kernels_per_step [{name, category, calls, seconds}] (the rbk::kTopKernels names with the most
// time, most first) and .rest_kernels_per_step {names (distinct, not per step), calls, seconds};
// .largest_gap_seconds and .largest_gap_start_seconds (after the span's start): whether the idle
// time is spread between launches or sits in one stretch. Before those steps, one more step is
// profiled alone and left out of the fraction: row.gpu_busy.profiler_warmup {fraction,
// largest_gap_seconds, largest_gap_start_seconds} (see measure_busy). Then `attribution_steps` eager steps (the
// captured modes' step run operator by operator: a graph's replay has no operators) under the
// profiler with the host's operators, after the final loss is read: row.kernel_attribution, per
// step, the kernels' time by (category, operator stack that launched them) (rbk::
// measure_kernel_attribution): {top [{category, op_stack, example_kernel, calls, seconds}], rest
// {rows, calls, seconds}, seconds, unattributed_seconds}; where the copies and elementwise kernels
// of gpu_busy's categories come from.
//
// Step modes (`step_modes`; issue 25's lever "CUDA graph capture of the whole training step"): every
// variant is timed in each listed mode, the same step and data in each:
//   eager              the trainer's step as above, issued operator by operator (rbk::MultiTensorAdamW)
//   eager_device_step  the same step through rbk::CapturedLmStep, issued operator by operator: AdamW
//                      with its step count on the device (rbk::DeviceStepAdamW), the batch copied
//                      into a fixed input tensor first; the baseline of cuda_graph, so that the two
//                      differ by the capture alone
//   cuda_graph         that step captured once as a CUDA graph (after the warm-up steps, which run
//                      eagerly) and replayed with one launch per step, plus the batch's copy
// Each row's `optimizer` names the AdamW that ran: multi_tensor_adamw (eager), or
// device_step_adamw_fused / device_step_adamw_multi_tensor (the device-step modes; fused on CUDA
// where the LibTorch has the kernel).
// Rows carry step_mode; a mode other than eager is a suffix of the row's label and of its key in
// summary.variants and the length curve ("transformer+cuda_graph"), and each ratio to the
// Transformer is taken within one mode. Phase timing runs in eager mode only (a replay has no
// phases); the other modes take those steps untimed, so that every mode trains the same batches in
// the same order and the final losses of one variant agree across modes up to rounding. A ResNet-BK
// variant with the gather MoE dispatch cannot be captured (it reads its experts' row counts on the
// host every layer): its cuda_graph rows have status "not_capturable".
//
// Loss kernel (`loss_kernel`): aten is the trainer's rbk::language_model_loss; fused replaces its
// plain path's head and cross-entropy by rbk::language_model_loss_fused (fused_cross_entropy.h: the
// fused softmax cross-entropy kernel gives loss and gradient in one pass over the bf16 logits, and
// the head's gradients are formed in forward; on the CPU the same from aten ops), for every model
// alike. Issue 25: the loss was 31 % of both models' kernel time at 2k.
//
// Length curve (issue 25: tokens/s against N for every architecture, from 2k to the longest N each
// reaches): `lengths` lists the sequence lengths timed, model.n_seq first. Every model keeps the width it was
// sized to at model.n_seq (learned position tables grow with N, as they would in use); tokens per
// step stay at B x model.n_seq (B = max(1, B n_seq / N)) so that memory other than attention's stays
// flat. Rows carry their N; a model that runs out of memory at some N gets a row "skipped" at every
// longer N. summary.length_curve[variant][N] holds tokens/s, the batch and the ratio to the
// Transformer's tokens/s at the same N.
#include "throughput_config.h"

#include "rbk/captured_lm_step.h"
#include "rbk/experiment.h"
#include "rbk/fused_cross_entropy.h"
#include "rbk/gpu_busy.h"
#include "rbk/kernel_attribution.h"
#include "rbk/peak_memory.h"
#include "rbk/language_model.h"
#include "rbk/model_sizing.h"
#include "rbk/multi_tensor_adamw.h"
#include "rbk/options.h"
#include "rbk/timing.h"
#include "rbk/torch_compat.h"
#include "rbk/torch_compat_cuda_graph.h"
#include "rbk/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// Reference model of the issue's target: "~30M parameters, N = 2048, bf16, on the H100".
constexpr int64_t kTargetSeqLen = 2048;
constexpr int64_t kTargetParamsLow = 25'000'000, kTargetParamsHigh = 35'000'000;

// The key of a variant in a step mode (summary.variants, the length curve, row labels).
std::string mode_key(const std::string& variant, const std::string& mode) {
  return mode == "eager" ? variant : variant + "+" + mode;
}

std::string arch_of(const std::string& variant) {
  return variant.rfind("resnet_bk", 0) == 0 ? "resnet_bk" : variant;
}

// What every timed model shares: where and how it trains, and how many steps of each kind.
struct StepPlan {
  torch::Device device = torch::kCPU;
  rbk::TrainOptions train;
  bool bf16 = false;
  bool fused_loss = false;  // loss_kernel = fused
  int64_t warmup = 0, timed = 0, phase_steps = 0, busy_steps = 0, attribution_steps = 0;
  uint64_t seed = 0;
  // The busy measurement's steps with its profiler warm-up step (measure_busy).
  int64_t busy_steps_with_warmup() const { return busy_steps > 0 ? busy_steps + 1 : 0; }
  int64_t ref_params = 0;
};

// The variants' configurations at model.n_seq: the reference's own variants, and the baselines sized
// to the reference's parameter count there. A baseline that cannot be sized becomes a row of its own
// (status not_built / error / sizing_failed) and is not timed.
std::vector<std::pair<std::string, rbk::LmConfig>> configure_variants(const rbk::Config& cfg, const rbk::LmConfig& ref,
                                                                      int64_t ref_params, rbk::ExperimentOutput& out) {
  std::vector<std::pair<std::string, rbk::LmConfig>> models;
  for (const auto& variant : cfg.get_string_list("variants")) {
    rbk::LmConfig mc = ref;
    if (variant.rfind("resnet_bk_causal", 0) == 0) mc.bk_context = "causal";
    for (const char* dispatch : {"dense", "grouped"}) {
      const std::string suffix = std::string("_") + dispatch + "_moe";
      if (variant.size() > suffix.size() && variant.compare(variant.size() - suffix.size(), suffix.size(), suffix) == 0)
        mc.moe_dispatch = dispatch;
    }
    if (arch_of(variant) != "resnet_bk") {
      json row{{"variant", variant}, {"arch", arch_of(variant)}, {"batch_size", cfg.get_int("train.batch_size")},
               {"seq_len", ref.n_seq}};
      rbk::LmConfig base = ref;
      base.arch = variant;
      try {
        mc = rbk::size_to_parameter_count(base, ref_params, cfg.get_real("size_tolerance"), cfg.get_int("width_multiple"));
      } catch (const std::invalid_argument& e) {
        const std::string what = e.what();
        row["status"] = what.find("not built") != std::string::npos ? "not_built" : "error";
        row["message"] = what;
      } catch (const std::runtime_error& e) {
        row["status"] = "sizing_failed";
        row["message"] = e.what();
      }
      if (row.contains("status")) {
        std::fprintf(stderr, "%s: %s\n", variant.c_str(), row["message"].get<std::string>().c_str());
        out.rows.push_back(row);
        continue;
      }
    }
    models.emplace_back(variant, mc);
  }
  return models;
}

// One model in training: in eager mode its three phases in the trainer's order; in the other modes
// the step of rbk::CapturedLmStep, eager or replayed.
struct TrainingRig {
  std::shared_ptr<rbk::LanguageModel> model;
  std::unique_ptr<rbk::MultiTensorAdamW> optim;
  std::unique_ptr<rbk::CapturedLmStep> device_step;  // step modes eager_device_step, cuda_graph
  std::vector<torch::Tensor> params;
  torch::Tensor ids;   // (steps, b, n + 1) token ids on the device, drawn before any timing
  torch::Tensor loss;  // the last forward's
  const StepPlan* plan = nullptr;
  int64_t n = 0;

  void forward(int64_t s) {
    optim->zero_grad();
    auto batch = ids[s];
    const auto x = batch.narrow(1, 0, n), y = batch.narrow(1, 1, n);
    loss = rbk::language_model_loss_with(*model, x, y, plan->bf16, plan->train.loss_chunk_tokens, plan->fused_loss);
  }
  void backward() { loss.backward(); }
  void update() {
    if (plan->train.clip_norm > 0) rbk::clip_grad_norm_no_sync(params, plan->train.clip_norm);
    optim->step();
  }
  void step(int64_t s) {
    if (device_step && device_step->captured()) return device_step->run_captured(ids[s]);
    step_eager(s);
  }
  // Operator by operator in every mode (kernel attribution: a replay launches no operators).
  void step_eager(int64_t s) {
    if (device_step) return device_step->run_eager(ids[s]);
    forward(s);
    backward();
    update();
  }
  const torch::Tensor& last_loss() const { return device_step ? device_step->loss() : loss; }
};

TrainingRig make_rig(const StepPlan& plan, const rbk::LmConfig& mc, int64_t b, int64_t n, const std::string& mode) {
  TrainingRig rig;
  rig.plan = &plan;
  rig.n = n;
  torch::manual_seed(plan.seed);
  rig.model = rbk::make_language_model(mc);
  rig.model->to(plan.device);
  rig.model->train();
  rig.params = rig.model->parameters();
  const auto& t = plan.train;
  if (mode == "eager")
    rig.optim = std::make_unique<rbk::MultiTensorAdamW>(
        rig.params, torch::optim::AdamWOptions(t.lr).weight_decay(t.weight_decay).betas({t.beta1, t.beta2}).eps(t.eps));
  else
    rig.device_step = std::make_unique<rbk::CapturedLmStep>(*rig.model, t, plan.bf16, b, n, plan.fused_loss);
  const int64_t steps = plan.warmup + plan.timed + plan.phase_steps + plan.busy_steps_with_warmup() + plan.attribution_steps;
  rig.ids = torch::randint(mc.vocab_size, {steps, b, n + 1}, torch::TensorOptions().dtype(torch::kInt64).device(plan.device));
  return rig;
}

// Runs fn, then synchronises: appends the device-synchronised time to secs and the host's time to
// issue fn to host; on_issued runs between the two (not counted as host time).
void issue_and_sync(const torch::Device& device, const std::function<void()>& fn, std::vector<double>& secs,
                    std::vector<double>& host, const std::function<void()>& on_issued = nullptr) {
  const auto t0 = Clock::now();
  fn();
  const auto t_issued = Clock::now();
  if (on_issued) on_issued();
  rbk::synchronize_device(device);
  secs.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  host.push_back(std::chrono::duration<double>(t_issued - t0).count());
}

// Where a step's time goes: `phase_steps` steps after the timed ones (not among them, which they
// would slow), synchronised after each phase; per phase the median of its device-synchronised time
// and of the host's time to issue it, and the ATen operator calls it dispatches
// (rbk::OperatorCallCounter; counting slows the host a little, one more reason these steps are not
// the timed ones).
json time_phases(TrainingRig& rig, int64_t first_step, const std::string& label) {
  const StepPlan& plan = *rig.plan;
  const char* names[] = {"forward", "backward", "update"};
  std::vector<double> phase_secs[3], phase_host[3], phase_ops[3], phase_outermost[3];
  rbk::OperatorCallCounter ops;  // created while no operator runs (the caller synchronised)
  for (int64_t s = 0; s < plan.phase_steps; ++s) {
    const std::function<void()> phase_fns[3] = {[&] { rig.forward(first_step + s); }, [&] { rig.backward(); },
                                                [&] { rig.update(); }};
    for (int ph = 0; ph < 3; ++ph) {
      ops.reset();
      issue_and_sync(plan.device, phase_fns[ph], phase_secs[ph], phase_host[ph], [&] {
        phase_ops[ph].push_back(static_cast<double>(ops.count()));
        phase_outermost[ph].push_back(static_cast<double>(ops.outermost_count()));
      });
    }
  }
  json phases = json::object();
  std::string line;
  for (int ph = 0; ph < 3; ++ph) {
    const double sec = rbk::median(phase_secs[ph]), host = rbk::median(phase_host[ph]), calls = rbk::median(phase_ops[ph]);
    phases[names[ph]] = {{"seconds_median", sec},
                         {"host_seconds_median", host},
                         {"operator_calls_median", calls},
                         {"outermost_operator_calls_median", rbk::median(phase_outermost[ph])}};
    char buf[128];
    std::snprintf(buf, sizeof buf, "%s%s %.4f / %.4f, %.0f", ph ? "; " : "", names[ph], sec, host, calls);
    line += buf;
  }
  std::fprintf(stderr, "%s phases (median s synchronised / host, operator calls): %s\n", label.c_str(), line.c_str());
  return phases;
}

// Where the GPU's time went during the busy steps (issue 25: which kernels to speed up), per step:
// the activities' durations summed (overlapping ones each count, so the total may exceed
// busy_seconds / steps) per category (rbk::kernel_category) and for the names with the most time.
json kernel_time_per_step(const rbk::KernelBreakdown& k, int64_t steps, const std::string& label) {
  const double per = 1.0 / static_cast<double>(steps);
  json by_category = json::object();
  std::vector<std::pair<double, std::string>> ranked;
  for (const auto& [category, sec] : k.seconds_by_category) {
    by_category[category] = sec * per;
    ranked.emplace_back(sec, category);
  }
  json top = json::array();
  for (const auto& t : k.top)
    top.push_back({{"name", t.name}, {"category", t.category}, {"calls", static_cast<double>(t.count) * per},
                   {"seconds", t.seconds * per}});
  std::sort(ranked.rbegin(), ranked.rend());
  std::string line;  // the four largest categories as shares of the kernel time
  for (size_t i = 0; i < std::min<size_t>(4, ranked.size()); ++i) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "%s%s %.1f %%", i ? ", " : "", ranked[i].second.c_str(),
                  k.total_seconds > 0 ? 100.0 * ranked[i].first / k.total_seconds : 0.0);
    line += buf;
  }
  std::fprintf(stderr, "%s: kernel time %.4f s per step: %s\n", label.c_str(), k.total_seconds * per, line.c_str());
  return {{"kernel_seconds_per_step", k.total_seconds * per},
          {"kernel_seconds_per_step_by_category", by_category},
          {"top_kernels_per_step", top},
          {"rest_kernels_per_step", {{"names", k.rest_names}, {"calls", static_cast<double>(k.rest_count) * per},
                                     {"seconds", k.rest_seconds * per}}}};
}

// Issue 25's third target: how busy the GPU is over `busy_steps` steps issued back to back as in
// training (rbk::measure_gpu_busy: device activities only, so the host is not slowed; null on the
// CPU, with the reason), and from the same recording where the kernel time went.
//
// The first profiled session of a process is not a fair window: on an H100 the first row of
// lengths_grouped (ResNet-BK, 2k, captured) had one 2.4 ms (1cb7c3c) and 3.1 ms (1080b84) gap 1.6 us
// after its first activity, and none of the other 13 rows a gap over 7 us, while plain GEMMs as a
// process's first session show no such gap (GpuBusy.SaturatedStreamIsBusyAndAnIdleHostIsNot passes
// on the GPU). A cost of the profiler's first session with a captured step, not of training: each
// row first profiles one step alone, records its gap (profiler_warmup), and measures the fraction
// over the steps after it. That second session has a smaller gap of its own: at 3fa197e the measured
// window of every row, Transformer and ResNet-BK alike, opens ~2 us in with a 0.50-0.91 ms gap while
// the warm-ups past the first have none over 7 us (NOTES.md, session 35). It is left in the
// fraction: it can only make a step look less busy than it is.
json measure_busy(TrainingRig& rig, int64_t first_step, const std::string& label) {
  const int64_t steps = rig.plan->busy_steps;
  const rbk::GpuBusy warm = rbk::measure_gpu_busy([&] { rig.step(first_step); });
  json warmup = warm.error.empty()
                    ? json{{"fraction", warm.busy_fraction}, {"largest_gap_seconds", warm.largest_gap_seconds},
                           {"largest_gap_start_seconds", warm.largest_gap_start_seconds}}
                    : json{{"error", warm.error}};
  const rbk::GpuBusy gb = rbk::measure_gpu_busy([&] {
    for (int64_t s = 0; s < steps; ++s) rig.step(first_step + 1 + s);
  });
  if (!gb.error.empty()) return {{"fraction", nullptr}, {"error", gb.error}, {"steps", steps}, {"profiler_warmup", warmup}};
  std::fprintf(stderr, "%s: GPU busy %.1f %% of %.4f s over %lld steps (%lld device activities)\n", label.c_str(),
               100.0 * gb.busy_fraction, gb.span_seconds, (long long)steps, (long long)gb.activities);
  json busy{{"fraction", gb.busy_fraction}, {"busy_seconds", gb.busy_seconds}, {"span_seconds", gb.span_seconds},
            {"activities", gb.activities}, {"steps", steps}, {"largest_gap_seconds", gb.largest_gap_seconds},
            {"largest_gap_start_seconds", gb.largest_gap_start_seconds}, {"profiler_warmup", warmup}};
  busy.update(kernel_time_per_step(gb.kernels, steps, label));
  return busy;
}

// Where the kernels come from: `attribution_steps` eager steps with the host's operators recorded
// (rbk::measure_kernel_attribution), per step. A failure here (an eager step beside a captured
// graph's memory may not fit at the longest N) is recorded in the object and leaves the row's
// measurements as they are.
json attribute_kernels(TrainingRig& rig, int64_t first_step, const std::string& label) {
  const int64_t steps = rig.plan->attribution_steps;
  const rbk::KernelAttribution ka = rbk::measure_kernel_attribution([&] {
    for (int64_t s = 0; s < steps; ++s) rig.step_eager(first_step + s);
  });
  if (!ka.error.empty()) return {{"error", ka.error}, {"steps", steps}};
  const double per = 1.0 / static_cast<double>(steps);
  json top = json::array();
  for (const auto& t : ka.top)
    top.push_back({{"category", t.category}, {"op_stack", t.op_stack}, {"example_kernel", t.example_kernel},
                   {"calls", static_cast<double>(t.calls) * per}, {"seconds", t.seconds * per}});
  std::fprintf(stderr, "%s: kernels attributed to operators: %.4f s per step, %.1f %% without an operator; first: %s\n",
               label.c_str(), ka.total_seconds * per, 100.0 * ka.unattributed_seconds / std::max(ka.total_seconds, 1e-30),
               ka.top.empty() ? "-" : ka.top[0].op_stack.c_str());
  return {{"steps", steps}, {"seconds", ka.total_seconds * per}, {"unattributed_seconds", ka.unattributed_seconds * per},
          {"top", top},
          {"rest", {{"rows", ka.rest_rows}, {"calls", static_cast<double>(ka.rest_calls) * per}, {"seconds", ka.rest_seconds * per}}}};
}

// Builds and times one model at batch b and length n; fills row (status ok / diverged) and appends
// its per-step arrays. Throws what training throws (the caller records oom / error).
void time_model(const StepPlan& plan, const rbk::LmConfig& mc, int64_t b, int64_t n, const std::string& mode,
                const std::string& label, json& row, rbk::ExperimentOutput& out) {
  row["model"] = mc.to_json();
  if (mc.arch == "transformer") {
    row["attention"] = rbk::causal_attention_backend();
    row["head_dim"] = mc.d_model / mc.n_heads;
  }
  rbk::synchronize_device(plan.device);
  rbk::cuda_reset_peak_memory(plan.device);
  TrainingRig rig = make_rig(plan, mc, b, n, mode);
  const int64_t params = rbk::count_parameters(*rig.model);
  row["parameters"] = params;
  row["parameters_over_reference"] = static_cast<double>(params) / static_cast<double>(plan.ref_params);
  // Which AdamW ran the update: the trainer's (host step count) in eager mode, else the device-step
  // AdamW by its fused or multi-tensor kernel (device_step_adamw.h), which moves the step's time.
  row["optimizer"] = !rig.device_step ? "multi_tensor_adamw"
                     : rig.device_step->optimizer().fused() ? "device_step_adamw_fused"
                                                            : "device_step_adamw_multi_tensor";

  if (mode == "cuda_graph") {
    // All warm-up steps but the last run eagerly before the capture (on the capture's stream); the
    // last is the first replay, untimed: a graph's first launch also uploads it. So every mode
    // trains on the same batches in the same order.
    rig.device_step->capture(rig.ids.narrow(0, 0, plan.warmup - 1));
    rig.step(plan.warmup - 1);
  } else {
    for (int64_t s = 0; s < plan.warmup; ++s) rig.step(s);
  }
  rbk::synchronize_device(plan.device);
  std::vector<double> secs, host_secs;
  for (int64_t s = 0; s < plan.timed; ++s)
    issue_and_sync(plan.device, [&] { rig.step(plan.warmup + s); }, secs, host_secs);
  const int64_t after_timed = plan.warmup + plan.timed;
  if (plan.phase_steps > 0 && mode == "eager") row["phases"] = time_phases(rig, after_timed, label);
  // The other modes take the phase steps as plain steps: every mode trains the same batches, so
  // their final losses compare (equal up to rounding).
  if (mode != "eager")
    for (int64_t s = 0; s < plan.phase_steps; ++s) rig.step(after_timed + s);
  if (plan.busy_steps > 0) row["gpu_busy"] = measure_busy(rig, after_timed + plan.phase_steps, label);

  const double final_loss = rig.last_loss().item<double>();
  // After the loss is read: these steps change the model, not the row's timings or loss.
  if (plan.attribution_steps > 0)
    row["kernel_attribution"] = attribute_kernels(rig, after_timed + plan.phase_steps + plan.busy_steps_with_warmup(), label);
  const double median = rbk::median(secs);
  const int64_t peak = rbk::cuda_peak_allocated_bytes(plan.device);
  const double tps = static_cast<double>(b * n) / median;
  row["step_seconds_median"] = median;
  row["step_seconds_min"] = *std::min_element(secs.begin(), secs.end());
  row["step_seconds_max"] = *std::max_element(secs.begin(), secs.end());
  // Host time to issue the step (until step() returns, before the final synchronisation). Close to
  // the step time: the host was never ahead of its GPU, issuing operators or waiting at a
  // synchronisation inside the step (a size copied to the host) until the end; well below it: the
  // GPU still had queued work when the host was done (GPU-bound). On the CPU the two are the same
  // by construction.
  const double host_median = rbk::median(host_secs);
  row["host_seconds_median"] = host_median;
  row["host_over_step"] = host_median / median;
  row["tokens_per_step"] = b * n;
  row["tokens_per_second"] = tps;
  row["peak_memory_bytes"] = peak >= 0 ? json(peak) : json(nullptr);
  row["final_loss"] = std::isfinite(final_loss) ? json(final_loss) : json(nullptr);
  row["status"] = std::isfinite(final_loss) ? "ok" : "diverged";
  if (!std::isfinite(final_loss)) row["message"] = "non-finite loss after the timed steps";
  out.arrays.push_back(rbk::make_array(label + "/step_seconds", secs, "s", "device-synchronised wall time per training step"));
  out.arrays.push_back(rbk::make_array(label + "/host_seconds", host_secs, "s",
                                       "host time to issue each training step (before its synchronisation)"));
  std::fprintf(stderr, "%s: D %lld, %lld parameters (%.3f x ref), median step %.4f s (min %.4f, max %.4f; host %.4f s), "
               "%.0f tok/s, peak %s, loss %.4f\n", label.c_str(), (long long)mc.d_model, (long long)params,
               static_cast<double>(params) / static_cast<double>(plan.ref_params), median,
               row["step_seconds_min"].get<double>(), row["step_seconds_max"].get<double>(), host_median, tps,
               peak >= 0 ? (std::to_string(peak / (1 << 20)) + " MiB").c_str() : "n/a", final_loss);
}

// The Transformer's key in the step mode of `key` (a variant's key in summary.variants / the curve).
std::string transformer_key_for(const std::string& key) {
  const auto plus = key.find('+');
  return plus == std::string::npos ? "transformer" : "transformer" + key.substr(plus);
}

// Issue 25's target: each variant's tokens/s over the Transformer's of this run in the same step
// mode, at model.n_seq (summary.variants) and at every N of the curve where both ran.
void add_ratios_to_transformer(json& variants, json& curve) {
  for (auto& [key, v] : variants.items()) {
    const std::string t = transformer_key_for(key);
    if (v["status"] == "ok" && variants.contains(t) && variants[t]["status"] == "ok")
      v["tokens_per_second_over_transformer"] =
          v["tokens_per_second"].get<double>() / variants[t]["tokens_per_second"].get<double>();
  }
  for (auto& [key, by_n] : curve.items()) {
    const std::string t = transformer_key_for(key);
    if (!curve.contains(t)) continue;
    for (auto& [n_key, point] : by_n.items()) {
      const json& tp = curve[t].value(n_key, json::object());
      if (point.contains("tokens_per_second") && tp.contains("tokens_per_second"))
        point["tokens_per_second_over_transformer"] =
            point["tokens_per_second"].get<double>() / tp["tokens_per_second"].get<double>();
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const rbk::ExperimentSpec spec = lm_throughput::experiment_spec();

  return rbk::run_experiment(argc, argv, spec, [](const rbk::Config& cfg, rbk::ExperimentOutput& out) {
    StepPlan plan;
    plan.device = rbk::experiment_device(cfg);  // threads: set by run_experiment
    const lm_throughput::CheckedInputs in = lm_throughput::checked_inputs(cfg, plan.device);
    const rbk::LmConfig& ref = in.ref;
    const std::vector<int64_t>& lengths = in.lengths;
    plan.train = in.train;
    const std::string& precision = plan.train.precision;
    plan.bf16 = rbk::wants_bf16_autocast(precision, plan.device);
    if (plan.device.is_cuda()) at::globalContext().setAllowTF32CuBLAS(true);
    plan.ref_params = rbk::count_parameters(*rbk::make_language_model(ref));
    plan.warmup = cfg.get_int("warmup_steps");
    plan.timed = cfg.get_int("timed_steps");
    plan.phase_steps = cfg.get_int("phase_steps");
    plan.busy_steps = cfg.get_int("busy_steps");
    plan.attribution_steps = cfg.get_int("attribution_steps");
    plan.seed = static_cast<uint64_t>(cfg.get_int("seed"));
    const int64_t B = plan.train.batch_size, N = ref.n_seq;
    const bool target_config = plan.device.is_cuda() && plan.bf16 && N == kTargetSeqLen &&
                               plan.ref_params >= kTargetParamsLow && plan.ref_params <= kTargetParamsHigh;
    std::fprintf(stderr, "lm_throughput: reference ResNet-BK V %lld D %lld L %lld N %lld E %lld = %lld parameters; B %lld, %s, "
                 "loss chunk %lld tokens, device %s%s\n", (long long)ref.vocab_size, (long long)ref.d_model,
                 (long long)ref.n_layers, (long long)N, (long long)ref.num_experts, (long long)plan.ref_params, (long long)B,
                 precision.c_str(), (long long)plan.train.loss_chunk_tokens, plan.device.str().c_str(),
                 target_config ? "" : " (NOT the target configuration: a pipeline check)");
    out.summary["reference"] = {{"model", ref.to_json()}, {"parameters", plan.ref_params}};
    out.summary["is_target_configuration"] = target_config;
    out.summary["configuration_note"] =
        target_config ? "~30M parameters, N = 2048, bf16 autocast, CUDA: the issue-7 target configuration"
                      : "not the target configuration (needs CUDA, bf16, N = 2048, a ~30M-parameter reference): "
                        "this run only checks the pipeline";
    out.summary["inputs"] = "uniform random token ids, drawn once before timing";
    out.summary["attention_backend"] = rbk::causal_attention_backend();
    out.summary["loss_chunk_tokens"] = plan.train.loss_chunk_tokens;
    out.summary["variants"] = json::object();

    const auto models = configure_variants(cfg, ref, plan.ref_params, out);
    json curve = json::object();
    std::map<std::string, int64_t> out_of_memory_at;  // variant -> the first N it ran out of memory at
    plan.fused_loss = cfg.get_string("loss_kernel") == "fused";
    out.summary["loss_kernel"] = cfg.get_string("loss_kernel");
    const std::vector<std::string> modes = cfg.get_string_list("step_modes");
    for (const int64_t n : lengths) {
      const int64_t b = std::max<int64_t>(1, B * N / n);  // tokens per step kept at B N (at least one sequence)
      for (const auto& mode : modes) {
        for (const auto& [variant, sized] : models) {
          const std::string key = mode_key(variant, mode);
          const std::string label = n == N ? key : key + "@n" + std::to_string(n);
          json row{{"variant", variant}, {"arch", arch_of(variant)}, {"step_mode", mode}, {"batch_size", b}, {"seq_len", n},
                   {"precision", precision}, {"device", plan.device.str()}, {"warmup_steps", plan.warmup},
                   {"timed_steps", plan.timed}, {"loss_chunk_tokens", plan.train.loss_chunk_tokens},
                   {"loss_kernel", plan.fused_loss ? "fused" : "aten"}};
          json& point = curve[key][std::to_string(n)];
          point = {{"batch_size", b}};
          if (out_of_memory_at.count(key)) {
            row["status"] = "skipped";
            row["message"] = "out of memory at N = " + std::to_string(out_of_memory_at[key]);
          } else if (mode == "cuda_graph" && sized.arch == "resnet_bk" && sized.moe_dispatch == "gather") {
            row["status"] = "not_capturable";
            row["message"] = "the gather MoE dispatch reads its experts' row counts on the host in every layer (moe.h)";
          } else {
            rbk::LmConfig mc = sized;
            mc.n_seq = n;
            try {
              time_model(plan, mc, b, n, mode, label, row, out);
              point["tokens_per_second"] = row["tokens_per_second"];
              if (n == N)
                out.summary["variants"][key] = {
                    {"status", row["status"]}, {"step_mode", mode}, {"parameters", row["parameters"]}, {"d_model", mc.d_model},
                    {"tokens_per_second", row["tokens_per_second"]}, {"step_seconds_median", row["step_seconds_median"]},
                    {"host_over_step", row["host_over_step"]}, {"peak_memory_bytes", row["peak_memory_bytes"]},
                    {"gpu_busy_fraction", row.contains("gpu_busy") ? row["gpu_busy"]["fraction"] : json(nullptr)}};
            } catch (const std::exception& e) {
              const std::string what = e.what();
              row["status"] = rbk::is_out_of_memory(e) ? "oom" : "error";
              row["message"] = what.substr(0, 2000);
              if (row["status"] == "oom") out_of_memory_at[key] = n;
              std::fprintf(stderr, "%s: %s: %s\n", label.c_str(), row["status"].get<std::string>().c_str(),
                           what.substr(0, 400).c_str());
            }
          }
          point["status"] = row["status"];
          out.rows.push_back(row);
          // The model and its graph are gone: give their memory back (a graph's private pool is
          // otherwise kept, and the next model's steps cannot allocate from it).
          rbk::release_cached_cuda_memory();
        }
      }
    }
    add_ratios_to_transformer(out.summary["variants"], curve);
    out.summary["length_curve"] = curve;
  });
}
