// rbk_eval: perplexity of a trained checkpoint on any text file (claim C05 and later LM claims).
//   rbk_eval CHECKPOINT TEXTFILE [--format auto|text|jsonl] [--batch-size B] [--seq-len N]
//            [--layout correct|upstream_time_major] [--device cpu|cuda]
// The tokenizer, and by default the batching of training, come from the checkpoint. Prints one
// JSON object (PPL, bits per token, bits per byte, tokens). Exit codes: 0 ok, 1 failed, 2 bad input.
#include "rbk/bpe_tokenizer.h"
#include "rbk/corpus.h"
#include "rbk/evaluator.h"
#include "rbk/tokenizer.h"
#include "rbk/torch_compat.h"
#include "rbk/trainer.h"

#include <filesystem>
#include <iostream>

int main(int argc, char** argv) {
  std::vector<std::string> pos;
  std::string format = "auto", layout_s, device_s = "cpu";
  int64_t batch = 0, seq = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) { std::cerr << "rbk_eval: " << a << " needs a value\n"; std::exit(2); }
      return argv[++i];
    };
    if (a == "--help" || a == "-h") {
      std::cout << "usage: rbk_eval CHECKPOINT TEXTFILE [--format auto|text|jsonl] [--batch-size B] [--seq-len N] "
                   "[--layout correct|upstream_time_major] [--device cpu|cuda]\n";
      return 0;
    } else if (a == "--format") format = next();
    else if (a == "--batch-size") batch = std::stoll(next());
    else if (a == "--seq-len") seq = std::stoll(next());
    else if (a == "--layout") layout_s = next();
    else if (a == "--device") device_s = next();
    else pos.push_back(a);
  }
  if (pos.size() != 2) {
    std::cerr << "rbk_eval: expected CHECKPOINT TEXTFILE (see --help)\n";
    return 2;
  }
  rbk::configure_cpu_threads();
  nlohmann::json meta;
  std::unique_ptr<rbk::Tokenizer> tok;
  rbk::TokenStream stream;
  try {
    if (!std::filesystem::exists(pos[0])) throw std::runtime_error(pos[0] + ": checkpoint not found");
    meta = rbk::read_checkpoint_meta(pos[0]);
    const auto& tm = meta.at("extra").at("tokenizer");
    if (tm.at("kind") == "word") tok = std::make_unique<rbk::WordTokenizer>(rbk::WordTokenizer::from_itos(tm.at("itos")));
    else tok = std::make_unique<rbk::Gpt2BpeTokenizer>(rbk::Gpt2BpeTokenizer::load(tm.at("encoder_json"), tm.at("vocab_bpe")));
    stream = rbk::load_token_stream(pos[1], *tok, "", rbk::parse_corpus_format(format));
    if (batch <= 0) batch = meta.at("extra").value("batch_size", int64_t(1));
    if (seq <= 0) seq = meta.at("extra").value("seq_len", meta.at("model_config").at("n_seq").get<int64_t>());
    if (layout_s.empty()) layout_s = meta.at("extra").value("layout", std::string("correct"));
    if (device_s == "cuda" && !rbk::cuda_available()) throw std::runtime_error("--device cuda: no CUDA device available");
  } catch (const std::exception& e) {
    std::cerr << "rbk_eval: " << e.what() << "\n";
    return 2;
  }
  try {
    const torch::Device dev = device_s == "cuda" ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
    auto model = rbk::load_model_from_checkpoint(pos[0], dev);
    auto r = rbk::evaluate_language_model(*model, stream, batch, seq, rbk::parse_batch_layout(layout_s), dev);
    auto j = r.to_json();
    j["checkpoint"] = pos[0];
    j["text"] = pos[1];
    j["batch_size"] = batch;
    j["seq_len"] = seq;
    j["layout"] = layout_s;
    j["bytes"] = stream.n_bytes;
    std::cout << j.dump(2) << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "rbk_eval: failed: " << e.what() << "\n";
    return 1;
  }
}
