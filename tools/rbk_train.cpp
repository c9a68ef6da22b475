// rbk_train: trains any language model of the library (ResNet-BK PoC / paper-time, every BK-Core,
// router and initialisation option, or the Transformer baseline) on a corpus directory, from a
// JSON preset plus key=value overrides (claim C05 and the later LM experiments).
//   rbk_train --preset-file FILE [--out DIR] [key=value ...]
// Writes DIR/model.pt (checkpoint; rerunning resumes from it), DIR/metrics.jsonl and
// DIR/train_result.json (per-epoch training PPL, held-out PPL and bits per byte).
// Exit codes: 0 trained, 1 failed or diverged, 2 bad configuration or input.
#include "rbk/bpe_tokenizer.h"
#include "rbk/config.h"
#include "rbk/corpus.h"
#include "rbk/evaluator.h"
#include "rbk/lm_model.h"
#include "rbk/results.h"
#include "rbk/tokenizer.h"
#include "rbk/torch_compat.h"
#include "rbk/trainer.h"

#include <filesystem>
#include <iostream>

namespace fs = std::filesystem;

namespace {

rbk::ConfigSchema schema() {
  rbk::ConfigSchema s;
  s.add_int("seed", 0, int64_t(1) << 62, "random seed")
      .add_string("data_dir", {}, "corpus directory with train/valid/test splits")
      .add_string("format", {"auto", "text", "jsonl"}, "corpus format")
      .add_int("train_max_bytes", 0, int64_t(1) << 40, "bytes of train text to read (0 = all)")
      .add_int("eval_max_bytes", 0, int64_t(1) << 40, "bytes of valid/test text to read (0 = all)")
      .add_string("tokenizer", {"word", "gpt2_bpe"}, "tokenizer")
      .add_int("vocab_top_k", 0, 100000000, "word tokenizer: 0 = every train type, K = top K incl. <unk>")
      .add_string("bpe_dir", {}, "directory with encoder.json and vocab.bpe")
      .add_string("arch", {"resnet_bk", "transformer"}, "model family")
      .add_string("block", {"poc", "papertime"}, "ResNet-BK block form")
      .add_string("router", {"learned_topk", "switch_top1", "gumbel_hard", "scattering_phase"}, "MoE router")
      .add_int("d_model", 1, 65536, "width").add_int("n_layers", 1, 1024, "depth")
      .add_int("n_seq", 2, int64_t(1) << 24, "sequence length").add_int("num_experts", 1, 1024, "experts")
      .add_int("top_k", 1, 1024, "experts per token").add_int("n_heads", 1, 1024, "attention heads")
      .add_int("ffn_dim", 1, 1 << 20, "Transformer FFN width").add_real("dropout", 0, 0.99, "dropout")
      .add_string("init", {"torch_default", "papertime"}, "initialisation")
      .add_string("bk_forward", {"stable", "compat_poc", "compat_papertime", "compat_papertime_triton"}, "BK-Core forward")
      .add_string("bk_gradient", {"exact", "papertime_hybrid", "head_hybrid"}, "BK-Core gradient")
      .add_string("bk_context", {"bidirectional", "causal"}, "BK-Core context")
      .add_string("prime_bump", {"none", "simple", "potential"}, "Prime-Bump initialisation")
      .add_real("legacy_scattering_scale", 0, 10, "upstream's gate modulation (0.1 upstream, 0 off)")
      .add_int("batch_size", 1, 1 << 20, "streams per batch").add_int("epochs", 1, 100000, "epochs")
      .add_int("max_steps", 0, int64_t(1) << 40, "step cap (0 = none)")
      .add_real("lr", 0, 10, "peak learning rate").add_real("weight_decay", 0, 10, "AdamW weight decay")
      .add_string("schedule", {"constant", "cosine"}, "learning-rate schedule")
      .add_int("warmup_steps", 0, int64_t(1) << 40, "linear warm-up steps").add_real("min_lr_ratio", 0, 1, "cosine floor / lr")
      .add_real("clip_norm", 0, 1e6, "gradient clipping (0 = off)").add_int("grad_accum", 1, 1 << 20, "micro-batches per step")
      .add_real("spike_factor", 0, 1e6, "loss-spike divergence factor (0 = off)")
      .add_string("layout", {"correct", "upstream_time_major"}, "batch layout (upstream_time_major = PoC bug)")
      .add_int("checkpoint_every", 0, int64_t(1) << 40, "steps between checkpoints (0 = each epoch)")
      .add_int("log_every", 1, int64_t(1) << 40, "steps between progress lines")
      .add_string("device", {"auto", "cpu", "cuda"}, "device").add_int("threads", 0, 1024, "CPU threads (0 = default)");
  return s;
}

std::string resolve(const std::string& p) {
  if (p.empty() || fs::path(p).is_absolute() || fs::exists(p)) return p;
  return (fs::path(RBK_REPO_DIR) / p).string();
}

}  // namespace

int main(int argc, char** argv) {
  std::string preset_file, out_dir = "rbk_train_out";
  std::vector<std::string> overrides;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::cout << "usage: rbk_train --preset-file FILE [--out DIR] [key=value ...]\n" << schema().describe();
      return 0;
    } else if (a == "--preset-file" && i + 1 < argc) {
      preset_file = argv[++i];
    } else if (a == "--out" && i + 1 < argc) {
      out_dir = argv[++i];
    } else if (a.find('=') != std::string::npos) {
      overrides.push_back(a);
    } else {
      std::cerr << "rbk_train: unknown argument '" << a << "' (see --help)\n";
      return 2;
    }
  }
  if (preset_file.empty()) {
    std::cerr << "rbk_train: --preset-file is required (e.g. tools/presets/poc_sotu.json)\n";
    return 2;
  }
  rbk::Config cfg;
  std::unique_ptr<rbk::Tokenizer> tok;
  nlohmann::json tok_meta;
  rbk::TokenStream train, valid, test;
  rbk::LmConfig mc;
  rbk::TrainOptions o;
  try {
    cfg = rbk::load_config(schema(), preset_file, fs::path(preset_file).stem().string(), overrides);
    if (cfg.get_int("threads") > 0) at::set_num_threads(static_cast<int>(cfg.get_int("threads")));
    else rbk::configure_cpu_threads();
    const std::string dev = cfg.get_string("device");
    if (dev == "cuda" && !rbk::cuda_available()) throw rbk::ConfigError("device=cuda but no CUDA device is available");
    o.device = (dev == "cuda" || (dev == "auto" && rbk::cuda_available())) ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
    const auto dir = resolve(cfg.get_string("data_dir"));
    const auto fmt = rbk::parse_corpus_format(cfg.get_string("format"));
    const auto train_path = rbk::find_split_file(dir, "train");
    if (cfg.get_string("tokenizer") == "word") {
      auto t = rbk::WordTokenizer::build(rbk::read_corpus(train_path, fmt, cfg.get_int("train_max_bytes")).lines,
                                         cfg.get_int("vocab_top_k"));
      tok_meta = {{"kind", "word"}, {"itos", t.itos()}};
      tok = std::make_unique<rbk::WordTokenizer>(std::move(t));
    } else {
      const auto bd = resolve(cfg.get_string("bpe_dir"));
      tok = std::make_unique<rbk::Gpt2BpeTokenizer>(rbk::Gpt2BpeTokenizer::load(bd + "/encoder.json", bd + "/vocab.bpe"));
      tok_meta = {{"kind", "gpt2_bpe"}, {"encoder_json", fs::absolute(bd + "/encoder.json").string()},
                  {"vocab_bpe", fs::absolute(bd + "/vocab.bpe").string()}};
    }
    const std::string cache = out_dir + "/token_cache";
    train = rbk::load_token_stream(train_path, *tok, cache, fmt, cfg.get_int("train_max_bytes"));
    valid = rbk::load_token_stream(rbk::find_split_file(dir, "valid"), *tok, cache, fmt, cfg.get_int("eval_max_bytes"));
    test = rbk::load_token_stream(rbk::find_split_file(dir, "test"), *tok, cache, fmt, cfg.get_int("eval_max_bytes"));
    mc.arch = cfg.get_string("arch");
    mc.vocab_size = tok->vocab_size();
    mc.d_model = cfg.get_int("d_model");
    mc.n_layers = cfg.get_int("n_layers");
    mc.n_seq = cfg.get_int("n_seq");
    mc.dropout = cfg.get_real("dropout");
    mc.init = cfg.get_string("init");
    mc.block = cfg.get_string("block");
    mc.num_experts = cfg.get_int("num_experts");
    mc.top_k = cfg.get_int("top_k");
    mc.router = cfg.get_string("router");
    mc.legacy_scattering_scale = cfg.get_real("legacy_scattering_scale");
    mc.bk_forward = cfg.get_string("bk_forward");
    mc.bk_gradient = cfg.get_string("bk_gradient");
    mc.bk_context = cfg.get_string("bk_context");
    mc.prime_bump = cfg.get_string("prime_bump");
    mc.n_heads = cfg.get_int("n_heads");
    mc.ffn_dim = cfg.get_int("ffn_dim");
    try {
      mc.validate();
    } catch (const std::invalid_argument& e) {
      throw rbk::ConfigError(e.what());
    }
    o.batch_size = cfg.get_int("batch_size");
    o.seq_len = cfg.get_int("n_seq");
    o.layout = rbk::parse_batch_layout(cfg.get_string("layout"));
    o.epochs = cfg.get_int("epochs");
    o.max_steps = cfg.get_int("max_steps");
    o.lr = cfg.get_real("lr");
    o.weight_decay = cfg.get_real("weight_decay");
    o.schedule = cfg.get_string("schedule");
    o.warmup_steps = cfg.get_int("warmup_steps");
    o.min_lr_ratio = cfg.get_real("min_lr_ratio");
    o.clip_norm = cfg.get_real("clip_norm");
    o.grad_accum = cfg.get_int("grad_accum");
    o.spike_factor = cfg.get_real("spike_factor");
    o.seed = static_cast<uint64_t>(cfg.get_int("seed"));
    o.checkpoint_path = out_dir + "/model.pt";
    o.checkpoint_every = cfg.get_int("checkpoint_every");
    o.metrics_path = out_dir + "/metrics.jsonl";
    o.log_every = cfg.get_int("log_every");
  } catch (const rbk::ConfigError& e) {
    std::cerr << "rbk_train: configuration error: " << e.what() << "\n";
    return 2;
  } catch (const rbk::CorpusError& e) {
    std::cerr << "rbk_train: data error: " << e.what() << "\n";
    return 2;
  }
  try {
    torch::manual_seed(o.seed);
    auto model = rbk::make_language_model(mc);
    std::cerr << "rbk_train: " << mc.arch << " with " << rbk::count_parameters(*model) << " parameters, V = " << mc.vocab_size
              << ", train tokens " << train.ids.numel() << ", device " << o.device.str() << "\n";
    nlohmann::json extra{{"tokenizer", tok_meta}, {"layout", rbk::to_string(o.layout)}, {"batch_size", o.batch_size},
                         {"seq_len", o.seq_len}, {"config", cfg.values()}};
    auto tr = rbk::train_language_model(*model, train.ids, o, extra);
    nlohmann::json res{{"schema", "rbk.train_result/1"}, {"config", cfg.values()}, {"model", mc.to_json()},
                       {"parameters", rbk::count_parameters(*model)}, {"train", tr.to_json()}};
    if (tr.status == "ok") {
      res["valid"] = rbk::evaluate_language_model(*model, valid, o.batch_size, o.seq_len, o.layout, o.device).to_json();
      res["test"] = rbk::evaluate_language_model(*model, test, o.batch_size, o.seq_len, o.layout, o.device).to_json();
      std::cerr << "rbk_train: valid PPL " << res["valid"]["ppl"] << ", test PPL " << res["test"]["ppl"] << "\n";
    }
    rbk::write_json_atomic(out_dir + "/train_result.json", res);
    std::cerr << "rbk_train: wrote " << out_dir << "/train_result.json (status " << tr.status << ")\n";
    return tr.status == "ok" ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "rbk_train: failed: " << e.what() << "\n";
    return 1;
  }
}
