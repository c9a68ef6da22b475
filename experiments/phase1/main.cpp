// exp_phase1: seed 001's Phase-1 efficiency tables (Tables 5-9, claim C18): the Phase-1 model
// (HTT embedding + AR-SSM + low-rank FFN, phase1_model.h) against the baseline Transformer of the
// same vocabulary, width and depth (rbk's causal Transformer, 8 heads, FFN 4D).
//  memory:     peak memory of the forward (graph kept) and of forward + backward, one batch, fp32;
//              on the CPU the process's VmHWM after a clear_refs reset minus VmRSS at the reset
//              (after malloc_trim), on CUDA the caching allocator's peak (rbk/peak_memory.h).
//  throughput: no-grad forward time (median of `repeats` after one warm-up) at every length of
//              seq_lens (>= 5 for the fits), tokens/s = B N / time; least-squares fits of time
//              against a + b N and a + b N log N with their R^2 and the number of points.
//  perplexity: untrained PPL = exp(mean CE) on uniform random tokens for every vocabulary of
//              vocab_sweep (the initial logits are near uniform, so PPL ~ V: an initialisation
//              property, reported as the ratio PPL / V); the main vocabulary's value in the summary.
#include "rbk/experiment.h"
#include "rbk/lm_loss.h"
#include "rbk/language_model.h"
#include "rbk/peak_memory.h"
#include "rbk/phase1_model.h"
#include "rbk/timing.h"
#include "rbk/torch_compat.h"

#include <cmath>
#include <cstdio>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <functional>
#include <memory>

namespace {

using json = nlohmann::json;
constexpr double kMiB = 1024.0 * 1024.0;

struct Model {
  std::shared_ptr<torch::nn::Module> module;
  std::function<torch::Tensor(const torch::Tensor&)> features;
  std::function<torch::Tensor()> head_weight, head_bias;
};

Model make_model(const std::string& which, int64_t V, int64_t D, int64_t L, int64_t n_seq, int64_t htt_rank) {
  Model m;
  if (which == "phase1") {
    rbk::Phase1Config c;
    c.vocab_size = V;
    c.d_model = D;
    c.n_layers = L;
    c.htt_rank = htt_rank;
    auto p = std::make_shared<rbk::Phase1Lm>(c);
    m.module = p;
    m.features = [p](const torch::Tensor& x) { return p->forward_features(x); };
    m.head_weight = [p] { return p->head_weight(); };
    m.head_bias = [p] { return p->head_bias(); };
    return m;
  }
  rbk::LmConfig c;
  c.arch = "transformer";
  c.vocab_size = V;
  c.d_model = D;
  c.n_layers = L;
  c.n_seq = n_seq;
  c.n_heads = 8;
  c.ffn_dim = 4 * D;
  auto p = rbk::make_language_model(c);
  m.module = p;
  m.features = [p](const torch::Tensor& x) { return p->forward_features(x); };
  m.head_weight = [p] { return p->head_weight(); };
  m.head_bias = [p] { return p->head_bias(); };
  return m;
}

torch::Tensor loss_of(Model& m, const torch::Tensor& ids, int64_t chunk) {
  const int64_t B = ids.size(0), N = ids.size(1) - 1;
  auto f = m.features(ids.narrow(1, 0, N));
  return rbk::chunked_linear_cross_entropy(f.reshape({B * N, f.size(-1)}), m.head_weight(), m.head_bias(),
                                           ids.narrow(1, 1, N).reshape({-1}), chunk);
}

void release_free_heap_pages() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

// R^2 of the least-squares fit y = a + b g.
double r_squared(const std::vector<double>& g, const std::vector<double>& y) {
  const double n = static_cast<double>(g.size());
  double sg = 0, sy = 0, sgg = 0, sgy = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    sg += g[i];
    sy += y[i];
    sgg += g[i] * g[i];
    sgy += g[i] * y[i];
  }
  const double b = (n * sgy - sg * sy) / (n * sgg - sg * sg), a = (sy - b * sg) / n, mean = sy / n;
  double ss_res = 0, ss_tot = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    ss_res += std::pow(y[i] - (a + b * g[i]), 2);
    ss_tot += std::pow(y[i] - mean, 2);
  }
  return 1.0 - ss_res / ss_tot;
}

}  // namespace

int main(int argc, char** argv) {
  rbk::ExperimentSpec spec;
  spec.name = "phase1";
  spec.claims = {"C18"};
  spec.description = "Phase 1 (HTT + AR-SSM) vs the baseline Transformer: peak memory, throughput vs N with fits, untrained PPL";
  auto& s = spec.schema;
  s.add_string_list("models", {"baseline", "phase1"}, "models measured (baseline = rbk's Transformer)");
  s.add_int("vocab_size", 2, 10000000, "vocabulary (seed 001: GPT-2's 50,257)");
  s.add_int("d_model", 8, 65536, "width of both models");
  s.add_int("n_layers", 1, 256, "depth of both models");
  s.add_int("htt_rank", 1, 1024, "HTT embedding rank");
  s.add_int("batch", 1, 1024, "sequences per batch");
  s.add_int("memory_seq_len", 2, 1 << 20, "sequence length of the memory measurement");
  s.add_int_list("seq_lens", 2, 1 << 20, "sequence lengths of the throughput sweep (>= 5 for the fits)");
  s.add_int("repeats", 1, 1000, "timed forwards per length (median)");
  s.add_int_list("vocab_sweep", 2, 10000000, "vocabularies of the untrained-PPL sweep");
  s.add_int("ppl_seq_len", 2, 1 << 20, "tokens per sequence of the untrained-PPL measurement");
  s.add_int("ppl_batches", 1, 1000, "batches of the untrained-PPL measurement");
  s.add_int("loss_chunk_tokens", 1, 1 << 20, "tokens per chunk of the head + loss");
  s.add_string("device", {"cpu", "cuda", "auto"}, "where to run");
  s.add_int("threads", 0, 256, "LibTorch CPU threads of this process (0: every core)");
  return rbk::run_experiment(argc, argv, spec, [](const rbk::Config& cfg, rbk::ExperimentOutput& out) {
    const auto lens = cfg.get_int_list("seq_lens");
    if (lens.size() < 2) throw rbk::ConfigError("seq_lens: needs at least 2 lengths for a fit (5 for the claim), got " +
                                                std::to_string(lens.size()));
    const torch::Device device = rbk::experiment_device(cfg);
    const int64_t V = cfg.get_int("vocab_size"), D = cfg.get_int("d_model"), L = cfg.get_int("n_layers");
    const int64_t B = cfg.get_int("batch"), chunk = cfg.get_int("loss_chunk_tokens"), hr = cfg.get_int("htt_rank");
    int64_t max_n = cfg.get_int("memory_seq_len");
    for (auto n : lens) max_n = std::max(max_n, n);
    max_n = std::max(max_n, cfg.get_int("ppl_seq_len"));
    out.summary["n_sequence_lengths"] = lens.size();
    out.summary["settings"] = {{"vocab_size", V}, {"d_model", D}, {"n_layers", L}, {"batch", B}, {"precision", "fp32"},
                               {"baseline", "rbk causal Transformer, 8 heads, FFN 4D, learned positions"},
                               {"phase1", "HTT embedding + L x [AR-SSM, low-rank FFN] + low-rank head (phase1_model.h)"},
                               {"attention_backend", rbk::causal_attention_backend()}};
    std::map<std::string, double> peaks;
    for (const auto& name : cfg.get_string_list("models")) {
      json& m_out = out.summary[name];
      const std::string which = name == "phase1" ? "phase1" : "baseline";
      torch::manual_seed(cfg.get_int("seed"));
      Model m = make_model(which, V, D, L, max_n, hr);
      m.module->to(device);
      int64_t params = 0;
      for (const auto& p : m.module->parameters()) params += p.numel();
      m_out["params"] = params;
      // Memory: forward with the graph, then forward + backward.
      const int64_t Nm = cfg.get_int("memory_seq_len");
      const auto ids = torch::randint(V, {B, Nm + 1}, torch::TensorOptions().dtype(torch::kInt64)).to(device);
      m.module->train();
      double fwd_bytes = -1, bwd_bytes = -1;
      // Forward + backward first: it is the peak the claim reads, and the first span of a model
      // is the one least affected by heap pages an earlier span left mapped.
      for (int pass = 1; pass >= 0; --pass) {
        m.module->zero_grad();
        rbk::synchronize_device(device);
        release_free_heap_pages();
        const int64_t rss0 = rbk::cpu_current_rss_bytes();
        const std::string scope = rbk::reset_peak_memory(device);
        {
          auto loss = loss_of(m, ids, chunk);
          if (pass == 1) loss.backward();
          rbk::synchronize_device(device);
        }
        const auto peak = rbk::read_peak_memory(device, scope);
        const double bytes = device.is_cuda() ? static_cast<double>(peak.cuda_peak_allocated_bytes)
                                              : static_cast<double>(peak.cpu_peak_rss_bytes - rss0);
        (pass == 0 ? fwd_bytes : bwd_bytes) = bytes;
        m_out["memory_scope"] = device.is_cuda() ? "CUDA allocator peak" : "VmHWM (" + scope + ") - VmRSS at reset";
      }
      m.module->zero_grad();
      m_out["forward_mb"] = fwd_bytes / kMiB;
      m_out["backward_mb"] = bwd_bytes / kMiB;
      m_out["peak_mb"] = std::max(fwd_bytes, bwd_bytes) / kMiB;
      m_out["memory_seq_len"] = Nm;
      peaks[which] = std::max(fwd_bytes, bwd_bytes);
      out.rows.push_back({{"part", "memory"}, {"model", which}, {"status", "ok"}, {"forward_bytes", fwd_bytes},
                          {"forward_backward_bytes", bwd_bytes}, {"params", params}});
      // Throughput.
      m.module->eval();
      torch::NoGradGuard ng;
      std::vector<double> ns, ts, nlogn;
      double tok_sum = 0;
      for (int64_t n : lens) {
        const auto x = torch::randint(V, {B, n}, torch::TensorOptions().dtype(torch::kInt64)).to(device);
        torch::Tensor y;
        const auto st = rbk::time_repeated([&] {
          y = m.features(x);
          rbk::synchronize_device(device);
        }, 1, static_cast<int>(cfg.get_int("repeats")));
        TORCH_CHECK(torch::isfinite(y).all().item<bool>(), "phase1: non-finite features at N = ", n);
        const double tps = static_cast<double>(B * n) / st.median_s;
        m_out["n" + std::to_string(n)] = {{"tokens_per_s", tps}, {"forward_ms", 1e3 * st.median_s}};
        ns.push_back(static_cast<double>(n));
        ts.push_back(st.median_s);
        nlogn.push_back(static_cast<double>(n) * std::log2(static_cast<double>(n)));
        tok_sum += tps;
        out.rows.push_back({{"part", "throughput"}, {"model", which}, {"status", "ok"}, {"seq_len", n}, {"batch", B},
                            {"median_s", st.median_s}, {"tokens_per_s", tps}});
        std::fprintf(stderr, "%-8s N %6lld: %8.2f ms  %10.0f tok/s\n", which.c_str(), (long long)n, 1e3 * st.median_s, tps);
      }
      m_out["avg_tokens_per_s"] = tok_sum / static_cast<double>(lens.size());
      m_out["r2_linear"] = r_squared(ns, ts);
      m_out["r2_nlogn"] = r_squared(nlogn, ts);
      m_out["fit_points"] = lens.size();
      m_out["fit_definition"] = "least squares of forward time on a + b N and on a + b N log2 N";
      // Untrained PPL on uniform random tokens against the vocabulary.
      const int64_t Np = cfg.get_int("ppl_seq_len");
      json sweep = json::array();
      for (int64_t v : cfg.get_int_list("vocab_sweep")) {
        torch::manual_seed(cfg.get_int("seed") + 1);
        Model mv = make_model(which, v, D, L, max_n, hr);
        mv.module->to(device);
        mv.module->eval();
        double nll = 0;
        const int64_t nb = cfg.get_int("ppl_batches");
        for (int64_t b = 0; b < nb; ++b) {
          const auto idv = torch::randint(v, {B, Np + 1}, torch::TensorOptions().dtype(torch::kInt64)).to(device);
          nll += loss_of(mv, idv, chunk).item<double>();
        }
        const double loss = nll / static_cast<double>(nb), ppl = std::exp(loss);
        sweep.push_back({{"vocab_size", v}, {"untrained_loss", loss}, {"untrained_ppl", ppl}, {"ppl_over_vocab", ppl / v}});
        out.rows.push_back({{"part", "untrained_ppl"}, {"model", which}, {"status", "ok"}, {"vocab_size", v},
                            {"untrained_loss", loss}, {"untrained_ppl", ppl}});
        if (v == V) {
          m_out["untrained_loss"] = loss;
          m_out["untrained_ppl"] = ppl;
          m_out["untrained_ppl_over_vocab"] = ppl / static_cast<double>(V);
        }
      }
      m_out["untrained_ppl_vs_vocab"] = sweep;
    }
    if (peaks.count("baseline") && peaks.count("phase1") && peaks["baseline"] > 0)
      out.summary["phase1"]["peak_vram_reduction"] = 1.0 - peaks["phase1"] / peaks["baseline"];
  });
}
