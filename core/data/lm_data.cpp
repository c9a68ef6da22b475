// DataOptions -> tokenizer + token streams, the one data-loading path of the LM programs (lm_data.h).
#include "rbk/lm_data.h"

#include "rbk/bpe_tokenizer.h"

#include <filesystem>

namespace rbk {
namespace fs = std::filesystem;

namespace {

// The resolved directory of data.<key>, or a ConfigError naming the key and how to get the data.
std::string existing_dir(const std::string& key, const std::string& given) {
  const std::string dir = resolve_repo_path(given);
  if (given.empty() || !fs::is_directory(dir))
    throw ConfigError(key + " = '" + given + "'" + (dir != given ? " (" + dir + ")" : std::string()) +
                      " is not a directory; run scripts/fetch_corpus.sh for the default corpus (data/sotu) and GPT-2's "
                      "BPE files (data/gpt2), or point " + key + " at a directory of your own");
  return dir;
}

CorpusFormat format_of(const DataOptions& o) {
  check_option_choice("data.format", o.format, corpus_format_choices());
  return parse_corpus_format(o.format);
}

}  // namespace

double unk_rate(const TokenStream& s) {
  if (!s.ids.defined() || s.ids.numel() == 0) return 0.0;
  return s.ids.eq(WordTokenizer::kUnkId).to(torch::kDouble).mean().item<double>();
}

std::shared_ptr<const Tokenizer> load_tokenizer(const DataOptions& o, nlohmann::json* meta) {
  check_option_choice("data.tokenizer", o.tokenizer, tokenizer_choices());
  if (o.tokenizer == "word") {
    const std::string dir = existing_dir("data.data_dir", o.data_dir);
    const auto text = read_corpus(find_split_file(dir, "train"), format_of(o), o.train_max_bytes);
    auto tok = std::make_shared<WordTokenizer>(WordTokenizer::build(text.lines, o.vocab_top_k));
    if (meta) *meta = {{"kind", "word"}, {"itos", tok->itos()}};
    return tok;
  }
  const std::string dir = existing_dir("data.bpe_dir", o.bpe_dir);
  const std::string encoder = fs::absolute(fs::path(dir) / "encoder.json").string();
  const std::string merges = fs::absolute(fs::path(dir) / "vocab.bpe").string();
  auto tok = std::make_shared<Gpt2BpeTokenizer>(Gpt2BpeTokenizer::load(encoder, merges));
  if (meta) *meta = {{"kind", "gpt2_bpe"}, {"encoder_json", encoder}, {"vocab_bpe", merges}};
  return tok;
}

std::shared_ptr<const Tokenizer> tokenizer_from_meta(const nlohmann::json& meta) {
  auto field = [&](const char* name) -> const nlohmann::json& {
    if (!meta.is_object() || !meta.contains(name))
      throw ConfigError(std::string("tokenizer record: missing field '") + name + "' in " + meta.dump().substr(0, 200));
    return meta.at(name);
  };
  const auto& kind = field("kind");
  if (kind == "word") {
    const auto& itos = field("itos");
    if (!itos.is_array() || itos.empty() || !itos.front().is_string())
      throw ConfigError("tokenizer record: 'itos' must be a non-empty list of strings");
    return std::make_shared<WordTokenizer>(WordTokenizer::from_itos(itos.get<std::vector<std::string>>()));
  }
  if (kind == "gpt2_bpe") {
    const auto& enc = field("encoder_json");
    const auto& merges = field("vocab_bpe");
    if (!enc.is_string() || !merges.is_string())
      throw ConfigError("tokenizer record: 'encoder_json' and 'vocab_bpe' must be file paths");
    return std::make_shared<Gpt2BpeTokenizer>(Gpt2BpeTokenizer::load(enc.get<std::string>(), merges.get<std::string>()));
  }
  throw ConfigError("tokenizer record: kind = " + kind.dump() + ": expected one of word, gpt2_bpe");
}

LmData load_lm_data(const DataOptions& o, const std::string& cache_dir, LmSplits splits) {
  LmData d;
  d.options = o;
  d.data_dir = existing_dir("data.data_dir", o.data_dir);
  const CorpusFormat fmt = format_of(o);
  d.train_file = find_split_file(d.data_dir, "train");
  d.tokenizer = load_tokenizer(o, &d.tokenizer_meta);
  d.train = load_token_stream(d.train_file, *d.tokenizer, cache_dir, fmt, o.train_max_bytes);
  if (splits != LmSplits::TrainOnly) {
    d.valid_file = find_split_file(d.data_dir, "valid");
    d.valid = load_token_stream(d.valid_file, *d.tokenizer, cache_dir, fmt, o.eval_max_bytes);
  }
  if (splits == LmSplits::TrainValidTest) {
    d.test_file = find_split_file(d.data_dir, "test");
    d.test = load_token_stream(d.test_file, *d.tokenizer, cache_dir, fmt, o.eval_max_bytes);
  }
  // <unk> exists only in the word vocabulary; byte-level BPE has no unknown tokens.
  if (o.tokenizer == "word") {
    d.valid_unk_rate = unk_rate(d.valid);
    d.test_unk_rate = unk_rate(d.test);
  }
  return d;
}

nlohmann::json LmData::summary() const {
  auto count = [](const TokenStream& s) -> int64_t { return s.ids.defined() ? s.ids.numel() : 0; };
  return {{"train_file", train_file}, {"tokenizer", tokenizer->kind()}, {"vocab_size", vocab_size()},
          {"train_tokens", count(train)}, {"valid_tokens", count(valid)}, {"test_tokens", count(test)},
          {"train_bytes", train.n_bytes}, {"valid_bytes", valid.n_bytes}, {"test_bytes", test.n_bytes},
          {"valid_unk_rate", valid_unk_rate}, {"test_unk_rate", test_unk_rate}};
}

}  // namespace rbk
