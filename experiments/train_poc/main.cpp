// exp_train_poc: claim C05 (seed 004: "10.16M parameters, WikiText-2 PPL 1349.94 -> 616.91 ->
// 428.84 after 3 epochs"). upstream-audit §2.1: that number is exp(mean training loss over each
// epoch), and a layout bug fed the model (128, 20), so BK-Core ran across the 20 unrelated streams.
//
// The PoC recipe (D 64, L 4, N 128, B 20, E 4, hard-Gumbel MoE, PyTorch default init, AdamW 1e-3
// wd 0.01, clip 0.5, no schedule, 3 epochs, whitespace vocabulary of the train split) is trained
// on the default corpus (State of the Union, scripts/fetch_corpus.sh) in four variants:
//   upstream_layout_bug    the PoC exactly: compat BK forward, model fed (N, B)
//   correct_bidirectional  (B, N) layout, stable BK-Core, bidirectional as in the papers
//   correct_causal         (B, N) layout, causal BK-Core (our corrected variant)
//   transformer            causal Transformer, same D and L, FFN width chosen for equal size
// Each reports the per-epoch training PPL (the paper's metric) and held-out valid/test PPL and
// bits per byte; unigram and bigram count models give reference points on the same splits.
// A bidirectional model sees its target through BK-Core (audit §1.7), so its held-out PPL is
// flagged held_out_meaningful = false. The bug variant mixes streams at one time step only, so it
// never sees its own target: its held-out PPL is meaningful.
#include "rbk/corpus.h"
#include "rbk/evaluator.h"
#include "rbk/experiment.h"
#include "rbk/lm_model.h"
#include "rbk/tokenizer.h"
#include "rbk/torch_compat.h"
#include "rbk/trainer.h"
#include "rbk/transformer_lm.h"

#include <chrono>
#include <cmath>
#include <filesystem>

namespace fs = std::filesystem;

namespace {

std::string resolve_path(const std::string& p) {
  if (fs::path(p).is_absolute() || fs::exists(p)) return p;
  return (fs::path(RBK_REPO_DIR) / p).string();
}

}  // namespace

int main(int argc, char** argv) {
  rbk::ExperimentSpec spec{"train_poc", {"C05"},
                           "PoC ResNet-BK LM recipe: training PPL per epoch and held-out PPL, layout bug vs correct "
                           "bidirectional vs causal vs Transformer, with unigram/bigram references", {}};
  spec.schema.add_string("data_dir", {}, "directory with <name>.{train,valid,test} splits (relative: cwd, then repo root)")
      .add_int("train_max_bytes", 0, int64_t(1) << 40, "read at most this many bytes of the train split (0 = all)")
      .add_int("eval_max_bytes", 0, int64_t(1) << 40, "read at most this many bytes of valid and test (0 = all)")
      .add_int("vocab_top_k", 0, 10000000, "0: <unk> + every train type (PoC); K: <unk> + top K-1")
      .add_string_list("variants", {"upstream_layout_bug", "correct_bidirectional", "correct_causal", "transformer"},
                       "variants to train")
      .add_int("d_model", 1, 4096, "model width D").add_int("n_layers", 1, 64, "blocks L")
      .add_int("n_seq", 2, 65536, "sequence length N").add_int("batch_size", 1, 4096, "streams B")
      .add_int("num_experts", 1, 64, "MoE experts E").add_int("n_heads", 1, 64, "Transformer heads")
      .add_int("epochs", 1, 100, "epochs").add_int("max_steps", 0, 100000000, "cap on steps per variant (0 = none)")
      .add_real("lr", 1e-6, 1.0, "AdamW learning rate").add_real("weight_decay", 0.0, 1.0, "AdamW weight decay")
      .add_real("clip_norm", 0.0, 100.0, "gradient clipping (0 = off)")
      .add_string("bug_bk_forward", {"compat_poc", "stable"}, "BK forward of the upstream_layout_bug variant")
      .add_string("bidirectional_bk_forward", {"compat_poc", "stable"}, "BK forward of correct_bidirectional")
      .add_real_list("bigram_lambdas", 0.0, 1.0, "bigram interpolation weights; the best on valid is applied to test")
      .add_int("threads", 0, 256, "CPU threads (0 = RBK_THREADS or all cores)")
      .add_string("device", {"auto", "cpu", "cuda"}, "where to train")
      .add_string("precision", {"fp32", "bf16"},
                  "fp32 (the PoC's) or bf16 autocast on CUDA; the bug variant's compat BK forward stays complex128 either way");

  return rbk::run_experiment(argc, argv, spec, [](const rbk::Config& cfg, rbk::ExperimentOutput& out) {
    const torch::Device device = rbk::experiment_device(cfg);  // threads: set by run_experiment
    if (device.is_cuda()) at::globalContext().setAllowTF32CuBLAS(true);

    const std::string dir = resolve_path(cfg.get_string("data_dir"));
    if (!fs::is_directory(dir))
      throw rbk::ConfigError("data_dir '" + cfg.get_string("data_dir") + "' (" + dir +
                             ") is not a directory; run scripts/fetch_corpus.sh for the default corpus");
    const auto train_path = rbk::find_split_file(dir, "train");
    const auto train_text = rbk::read_corpus(train_path, rbk::CorpusFormat::Auto, cfg.get_int("train_max_bytes"));
    const auto tok = rbk::WordTokenizer::build(train_text.lines, cfg.get_int("vocab_top_k"));
    const int64_t V = tok.vocab_size();
    const std::string cache = out.checkpoint_dir.empty() ? "" : out.checkpoint_dir + "/token_cache";
    auto train = rbk::load_token_stream(train_path, tok, cache, rbk::CorpusFormat::Auto, cfg.get_int("train_max_bytes"));
    auto valid = rbk::load_token_stream(rbk::find_split_file(dir, "valid"), tok, cache, rbk::CorpusFormat::Auto, cfg.get_int("eval_max_bytes"));
    auto test = rbk::load_token_stream(rbk::find_split_file(dir, "test"), tok, cache, rbk::CorpusFormat::Auto, cfg.get_int("eval_max_bytes"));
    auto unk_rate = [](const rbk::TokenStream& s) { return s.ids.eq(rbk::WordTokenizer::kUnkId).to(torch::kDouble).mean().item<double>(); };
    std::fprintf(stderr, "train_poc: V=%lld, tokens train %lld / valid %lld / test %lld, <unk> rate valid %.4f test %.4f, device %s, threads %d\n",
                 (long long)V, (long long)train.ids.numel(), (long long)valid.ids.numel(), (long long)test.ids.numel(),
                 unk_rate(valid), unk_rate(test), device.str().c_str(), at::get_num_threads());
    out.summary["data"] = {{"train_file", train_path}, {"vocab_size", V}, {"train_tokens", train.ids.numel()},
                           {"valid_tokens", valid.ids.numel()}, {"test_tokens", test.ids.numel()},
                           {"train_bytes", train.n_bytes}, {"valid_bytes", valid.n_bytes}, {"test_bytes", test.n_bytes},
                           {"valid_unk_rate", unk_rate(valid)}, {"test_unk_rate", unk_rate(test)}};

    // Count-based references on the same splits.
    {
      auto uni_train = rbk::unigram_reference(train.ids, train, V);
      auto uni_valid = rbk::unigram_reference(train.ids, valid, V);
      auto uni_test = rbk::unigram_reference(train.ids, test, V);
      double best_lambda = 0, best_valid = INFINITY;
      nlohmann::json sweep = nlohmann::json::array();
      for (double l : cfg.get_real_list("bigram_lambdas")) {
        const double p = rbk::bigram_reference(train.ids, valid, V, l).ppl;
        sweep.push_back({{"lambda", l}, {"valid_ppl", p}});
        if (p < best_valid) { best_valid = p; best_lambda = l; }
      }
      auto bi_train = rbk::bigram_reference(train.ids, train, V, best_lambda);
      auto bi_valid = rbk::bigram_reference(train.ids, valid, V, best_lambda);
      auto bi_test = rbk::bigram_reference(train.ids, test, V, best_lambda);
      out.rows.push_back({{"status", "ok"}, {"variant", "unigram_add_one"}, {"train_ppl", uni_train.ppl},
                          {"valid", uni_valid.to_json()}, {"test", uni_test.to_json()}});
      out.rows.push_back({{"status", "ok"}, {"variant", "bigram_interpolated"}, {"lambda", best_lambda}, {"lambda_sweep", sweep},
                          {"train_ppl", bi_train.ppl}, {"valid", bi_valid.to_json()}, {"test", bi_test.to_json()}});
      out.summary["references"] = {{"unigram_train_ppl", uni_train.ppl}, {"unigram_valid_ppl", uni_valid.ppl},
                                   {"unigram_test_ppl", uni_test.ppl}, {"bigram_lambda", best_lambda},
                                   {"bigram_train_ppl", bi_train.ppl}, {"bigram_valid_ppl", bi_valid.ppl},
                                   {"bigram_test_ppl", bi_test.ppl}};
      std::fprintf(stderr, "references: unigram train/valid/test PPL %.1f / %.1f / %.1f; bigram (lambda %.2f) %.1f / %.1f / %.1f\n",
                   uni_train.ppl, uni_valid.ppl, uni_test.ppl, best_lambda, bi_train.ppl, bi_valid.ppl, bi_test.ppl);
    }

    rbk::LmConfig base;
    base.vocab_size = V;
    base.d_model = cfg.get_int("d_model");
    base.n_layers = cfg.get_int("n_layers");
    base.n_seq = cfg.get_int("n_seq");
    base.num_experts = cfg.get_int("num_experts");
    base.block = "poc";
    base.router = "gumbel_hard";
    base.init = "torch_default";
    base.dropout = 0.0;

    rbk::TrainOptions to;
    to.batch_size = cfg.get_int("batch_size");
    to.seq_len = cfg.get_int("n_seq");
    to.epochs = cfg.get_int("epochs");
    to.max_steps = cfg.get_int("max_steps");
    to.lr = cfg.get_real("lr");
    to.weight_decay = cfg.get_real("weight_decay");
    to.clip_norm = cfg.get_real("clip_norm");
    to.schedule = "constant";
    to.seed = static_cast<uint64_t>(cfg.get_int("seed"));
    to.device = device;
    to.log_every = 50;
    to.precision = cfg.get_string("precision");
    try {
      (void)rbk::wants_bf16_autocast(to.precision, device);
    } catch (const std::invalid_argument& e) {
      throw rbk::ConfigError(e.what());
    }

    out.summary["variants"] = nlohmann::json::object();
    for (const auto& variant : cfg.get_string_list("variants")) {
      rbk::LmConfig mc = base;
      rbk::TrainOptions o = to;
      o.label = variant + ": ";
      bool meaningful = true;
      if (variant == "upstream_layout_bug") {
        mc.bk_forward = cfg.get_string("bug_bk_forward");
        o.layout = rbk::BatchLayout::UpstreamTimeMajor;
      } else if (variant == "correct_bidirectional") {
        mc.bk_forward = cfg.get_string("bidirectional_bk_forward");
        meaningful = false;
      } else if (variant == "correct_causal") {
        mc.bk_forward = "stable";
        mc.bk_context = "causal";
      } else {
        mc.arch = "transformer";
        mc.n_heads = cfg.get_int("n_heads");
        // FFN width that makes a Transformer block as large as a PoC ResNet-BK block.
        const int64_t D = mc.d_model, E = mc.num_experts;
        const int64_t bk_block = 2 * D + E * (4 * D * D + 3 * D) + (D * E + E) + (D + 1) + 3 * D;
        mc.ffn_dim = std::max<int64_t>(1, (bk_block - (4 * D * D + 9 * D) + D) / (2 * D + 1));
      }
      if (!out.checkpoint_dir.empty()) {
        o.checkpoint_path = out.checkpoint_dir + "/" + variant + ".pt";
        o.checkpoint_every = 200;
        o.metrics_path = out.checkpoint_dir + "/" + variant + ".metrics.jsonl";
      }
      nlohmann::json row{{"variant", variant}, {"model", mc.to_json()}, {"layout", rbk::to_string(o.layout)},
                         {"held_out_meaningful", meaningful}};
      try {
        torch::manual_seed(static_cast<uint64_t>(cfg.get_int("seed")));
        auto model = rbk::make_language_model(mc);
        const int64_t params = rbk::count_parameters(*model);
        row["parameters"] = params;
        std::fprintf(stderr, "%s: %lld parameters\n", variant.c_str(), (long long)params);
        model->reset_expert_counts();
        auto tr = rbk::train_language_model(*model, train.ids, o, {{"variant", variant}});
        row["train"] = tr.to_json();
        std::vector<double> ppl;
        for (const auto& e : tr.epochs) ppl.push_back(e.train_ppl);
        row["train_ppl_per_epoch"] = ppl;
        if (auto c = model->expert_counts(); c.defined()) {
          std::vector<std::vector<int64_t>> cc;
          for (int64_t l = 0; l < c.size(0); ++l) {
            auto r = c[l].contiguous();
            cc.emplace_back(r.data_ptr<int64_t>(), r.data_ptr<int64_t>() + r.numel());
          }
          row["expert_counts_train"] = cc;
        }
        row["status"] = tr.status == "ok" ? "ok" : tr.status;
        if (tr.status == "ok") {
          auto ev = rbk::evaluate_language_model(*model, valid, o.batch_size, o.seq_len, o.layout, device, o.precision);
          auto et = rbk::evaluate_language_model(*model, test, o.batch_size, o.seq_len, o.layout, device, o.precision);
          row["valid"] = ev.to_json();
          row["test"] = et.to_json();
          std::fprintf(stderr, "%s: train PPL/epoch %s, valid PPL %.2f, test PPL %.2f (%.1f s, %.0f tok/s)\n", variant.c_str(),
                       nlohmann::json(ppl).dump().c_str(), ev.ppl, et.ppl, tr.seconds, tr.tokens_per_second);
          out.summary["variants"][variant] = {{"parameters", params}, {"train_ppl_per_epoch", ppl},
                                              {"train_ppl_final", ppl.empty() ? NAN : ppl.back()},
                                              {"valid_ppl", ev.ppl}, {"test_ppl", et.ppl}, {"test_bits_per_byte", et.bits_per_byte},
                                              {"held_out_meaningful", meaningful}, {"train_seconds", tr.seconds},
                                              {"tokens_per_second", tr.tokens_per_second}};
        } else {
          row["message"] = tr.message;
          out.summary["variants"][variant] = {{"parameters", params}, {"status", tr.status}, {"message", tr.message}};
        }
        out.arrays.push_back(rbk::make_array(variant + "/step_loss", tr.step_losses, "nats", "training CE per optimizer step"));
      } catch (const std::exception& e) {
        row["status"] = "error";
        row["message"] = e.what();
        std::fprintf(stderr, "%s: error: %s\n", variant.c_str(), e.what());
      }
      out.rows.push_back(row);
    }
  });
}
