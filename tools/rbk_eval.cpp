// rbk_eval: perplexity and bits per byte of a trained checkpoint on any text file, or on a split
// of the corpus the checkpoint was trained on (claim C05 and later LM claims; issue 17).
//   rbk_eval CHECKPOINT (TEXTFILE | --split train|valid|test) [--out DIR] [key=value ...]
// Keys: format, batch_size / seq_len / layout (0 or "checkpoint" = the training batching recorded
// in the checkpoint), precision (fp32, or bf16 autocast on CUDA, as rbk_train), device,
// loss_chunk_tokens (0 = full logits), threads. The tokenizer comes from the checkpoint.
// Prints the result JSON and writes it, with run_experiment's provenance, to
// DIR/rbk_eval.<text stem or split>.json (DIR defaults to the checkpoint's directory).
// Exit codes: 0 evaluated, 1 failed, 2 bad input: a missing file, a file that is not a checkpoint
// (random bytes, truncated, empty) or a bad key, with one line naming it and nothing written.
#include "rbk/experiment.h"
#include "rbk/evaluator.h"
#include "rbk/lm_data.h"
#include "rbk/lm_loss.h"
#include "rbk/options.h"
#include "rbk/trainer.h"

#include <filesystem>
#include <iostream>

namespace fs = std::filesystem;

namespace {

rbk::ParamSpec spec(const std::string& key, rbk::ParamType type, nlohmann::json def, const std::string& help,
                    std::vector<std::string> choices = {}, double lo = 0, double hi = double(int64_t(1) << 40)) {
  rbk::ParamSpec s;
  s.key = key;
  s.type = type;
  s.help = help;
  s.default_value = std::move(def);
  s.choices = std::move(choices);
  if (type == rbk::ParamType::Int) {
    s.min = lo;
    s.max = hi;
  }
  return s;
}

rbk::ConfigSchema schema() {
  using rbk::ParamType;
  auto layouts = rbk::layout_choices();
  layouts.insert(layouts.begin(), "checkpoint");
  rbk::ConfigSchema s;
  s.add(spec("checkpoint", ParamType::String, "", "checkpoint written by rbk_train (model.pt)"))
      .add(spec("text", ParamType::String, "", "text file to score (or split)"))
      .add(spec("split", ParamType::String, "none", "split of the checkpoint's data.data_dir to score instead of text",
                {"none", "train", "valid", "test"}))
      .add(spec("format", ParamType::String, "auto", "text format", rbk::corpus_format_choices()))
      .add(spec("batch_size", ParamType::Int, 0, "streams per batch (0 = the checkpoint's)", {}, 0, 1 << 20))
      .add(spec("seq_len", ParamType::Int, 0, "tokens per sequence (0 = the checkpoint's)", {}, 0, int64_t(1) << 24))
      .add(spec("layout", ParamType::String, "checkpoint", "batch layout", layouts))
      .add(spec("precision", ParamType::String, "fp32", "fp32, or bf16 autocast (CUDA only)", rbk::precision_choices()))
      .add(spec("device", ParamType::String, "auto", "auto = CUDA when visible, else the CPU", {"auto", "cpu", "cuda"}))
      .add(spec("loss_chunk_tokens", ParamType::Int, rbk::kDefaultLossChunkTokens,
                "head + NLL in chunks of this many tokens (0 = full logits)"))
      .add(spec("threads", ParamType::Int, 0, "CPU threads (0 = RBK_THREADS or every core)", {}, 0, 1024));
  return s;
}

// The stream to score: the text file, or the checkpoint's corpus split (data record of rbk_train).
rbk::TokenStream stream_to_score(const rbk::Config& cfg, const nlohmann::json& meta, const rbk::Tokenizer& tok) {
  const auto format = rbk::parse_corpus_format(cfg.get_string("format"));
  if (cfg.get_string("split") == "none") return rbk::load_token_stream(cfg.get_string("text"), tok, "", format);
  const auto& extra = meta.value("extra", nlohmann::json::object());
  if (!extra.contains("data"))
    throw rbk::ConfigError("split = '" + cfg.get_string("split") + "': checkpoint " + cfg.get_string("checkpoint") +
                           " records no data options (written before issue 17); give a text file instead");
  const auto data = rbk::data_options_from_json(extra.at("data"));
  const auto file = rbk::find_split_file(rbk::resolve_repo_path(data.data_dir), cfg.get_string("split"));
  return rbk::load_token_stream(file, tok, "", rbk::parse_corpus_format(data.format), data.eval_max_bytes);
}

void evaluate(const rbk::Config& cfg, rbk::ExperimentOutput& out) {
  out.checkpoint_dir.clear();  // nothing to resume
  const std::string ckpt = cfg.get_string("checkpoint");
  const auto device = rbk::experiment_device(cfg);
  const std::string precision = cfg.get_string("precision");
  try {
    rbk::wants_bf16_autocast(precision, device, "precision");
  } catch (const std::invalid_argument& e) {
    throw rbk::ConfigError(e.what());
  }
  nlohmann::json meta;
  try {
    meta = rbk::read_checkpoint_meta(ckpt);
  } catch (const rbk::CheckpointError& e) {
    throw rbk::ConfigError(e.what());
  }
  const auto extra = meta.value("extra", nlohmann::json::object());
  const auto tok = rbk::tokenizer_from_meta(extra.value("tokenizer", nlohmann::json()));
  const auto stream = stream_to_score(cfg, meta, *tok);
  const int64_t n_seq = meta.at("model_config").at("n_seq").get<int64_t>();
  const int64_t batch = cfg.get_int("batch_size") > 0 ? cfg.get_int("batch_size") : extra.value("batch_size", int64_t(1));
  const int64_t seq = cfg.get_int("seq_len") > 0 ? cfg.get_int("seq_len") : extra.value("seq_len", n_seq);
  if (seq > n_seq)
    throw rbk::ConfigError("seq_len = " + std::to_string(seq) + " exceeds the checkpoint's model.n_seq = " +
                           std::to_string(n_seq));
  const std::string layout =
      cfg.get_string("layout") == "checkpoint" ? extra.value("layout", std::string("correct")) : cfg.get_string("layout");
  if (stream.ids.numel() < 2 * batch)
    throw rbk::ConfigError(stream.source + ": " + std::to_string(stream.ids.numel()) + " tokens, fewer than 2 x batch_size = " +
                           std::to_string(2 * batch));
  std::shared_ptr<rbk::LanguageModel> model;
  try {
    model = rbk::load_model_from_checkpoint(ckpt, device);
  } catch (const rbk::CheckpointError& e) {
    throw rbk::ConfigError(e.what());  // a meta record without readable parameters: still bad input
  }
  auto r = rbk::evaluate_language_model(*model, stream, batch, seq, rbk::parse_batch_layout(layout), device, precision,
                                        cfg.get_int("loss_chunk_tokens"));
  auto row = r.to_json();
  row.update({{"status", "ok"}, {"checkpoint", ckpt}, {"text", stream.source}, {"bytes", stream.n_bytes},
              {"batch_size", batch}, {"seq_len", seq}, {"layout", layout}, {"precision", precision},
              {"device", device.str()}, {"model", meta.at("model_config")}});
  std::cout << row.dump(2) << "\n";
  out.summary = {{"ppl", r.ppl}, {"bits_per_byte", r.bits_per_byte}, {"tokens", r.tokens}};
  out.rows.push_back(std::move(row));
}

int usage_error(const std::string& msg) {
  std::cerr << "rbk_eval: " << msg << "\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> positional, passed{argv[0]};
  std::string split = "none", out_dir, preset_file = std::string(RBK_REPO_DIR) + "/tools/presets/eval.json";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--help" || a == "-h") {
      std::cout << "usage: rbk_eval CHECKPOINT (TEXTFILE | --split train|valid|test) [--out DIR] [key=value ...]\nkeys:\n"
                << schema().describe();
      return 0;
    } else if (a == "--split" && has_value) {
      split = argv[++i];
    } else if (a == "--out" && has_value) {
      out_dir = argv[++i];
    } else if (a == "--preset-file" && has_value) {
      preset_file = argv[++i];
    } else if (a.rfind("--", 0) == 0) {
      return usage_error("unknown option '" + a + "' or missing value (see --help)");
    } else if (a.find('=') != std::string::npos) {
      passed.push_back(a);
    } else {
      positional.push_back(a);
    }
  }
  const size_t want = split == "none" ? 2 : 1;
  if (positional.size() != want)
    return usage_error(split == "none" ? "expected CHECKPOINT TEXTFILE (or CHECKPOINT --split NAME; see --help)"
                                       : "expected CHECKPOINT with --split (no text file)");
  const std::string& ckpt = positional[0];
  // The checkpoint is checked before anything else runs: a file that is not one gets one line.
  try {
    rbk::read_checkpoint_meta(ckpt);
  } catch (const rbk::CheckpointError& e) {
    return usage_error(e.what());
  }
  std::string name = split;
  if (split == "none") {
    const std::string& text = positional[1];
    std::error_code ec;
    if (!fs::is_regular_file(text, ec)) return usage_error(text + ": text file not found");
    name = fs::path(text).stem().string();
    passed.push_back("text=" + text);
  }
  passed.push_back("checkpoint=" + ckpt);
  passed.push_back("split=" + split);
  if (out_dir.empty()) out_dir = fs::path(ckpt).has_parent_path() ? fs::path(ckpt).parent_path().string() : ".";
  for (const std::string& flag : {std::string("--preset-file"), preset_file, std::string("--preset"), name,
                                  std::string("--out"), out_dir})
    passed.push_back(flag);
  std::vector<char*> cargs;
  for (auto& a : passed) cargs.push_back(a.data());
  rbk::ExperimentSpec spec{"rbk_eval", {"C05"}, "perplexity and bits per byte of a checkpoint on a text", schema()};
  return rbk::run_experiment(static_cast<int>(cargs.size()), cargs.data(), spec, evaluate);
}
