// Whitespace word-level tokenizer of the PoC (upstream-audit §2.1, §11; claim C05).
#include "rbk/tokenizer.h"
#include "rbk/corpus.h"

#include <algorithm>
#include <fstream>

namespace rbk {

std::vector<int32_t> Tokenizer::encode_lines(const std::vector<std::string>& lines) const {
  std::vector<int32_t> out;
  // BPE models see line breaks (GPT-2 encodes "\n" as a token); the PoC word model never does.
  const bool newline = kind() == "gpt2_bpe";
  for (const auto& l : lines) encode_line(newline ? l + "\n" : l, out);
  return out;
}

void split_whitespace(const std::string& line, std::vector<std::string>& out) {
  size_t i = 0;
  const size_t n = line.size();
  auto ws = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; };
  while (i < n) {
    while (i < n && ws(line[i])) ++i;
    size_t j = i;
    while (j < n && !ws(line[j])) ++j;
    if (j > i) out.emplace_back(line.substr(i, j - i));
    i = j;
  }
}

WordTokenizer WordTokenizer::build(const std::vector<std::string>& train_lines, int64_t top_k) {
  WordTokenizer t;
  std::unordered_map<std::string, int64_t> count;
  std::vector<std::string> order;  // first-occurrence order
  std::vector<std::string> words;
  for (const auto& l : train_lines) {
    words.clear();
    split_whitespace(l, words);
    for (auto& w : words) {
      auto it = count.find(w);
      if (it == count.end()) {
        count.emplace(w, 1);
        order.push_back(w);
      } else {
        ++it->second;
      }
    }
  }
  if (order.empty()) throw CorpusError("WordTokenizer::build: the train text has no tokens");
  t.itos_.push_back("<unk>");
  if (top_k > 0) {
    // Stable sort keeps first-occurrence order among equal counts, so the vocabulary is a
    // deterministic function of the text.
    std::stable_sort(order.begin(), order.end(),
                     [&](const std::string& a, const std::string& b) { return count[a] > count[b]; });
    if (static_cast<int64_t>(order.size()) > top_k - 1) order.resize(static_cast<size_t>(std::max<int64_t>(top_k - 1, 0)));
  }
  for (auto& w : order)
    if (w != "<unk>") t.itos_.push_back(w);  // a literal "<unk>" in the text maps to id 0
  t.finish();
  return t;
}

void WordTokenizer::finish() {
  stoi_.clear();
  stoi_.reserve(itos_.size() * 2);
  uint64_t h = fnv1a64("word-v1");
  for (size_t i = 0; i < itos_.size(); ++i) {
    stoi_.emplace(itos_[i], static_cast<int32_t>(i));
    h = fnv1a64(itos_[i] + '\n', h);
  }
  fingerprint_ = h;
}

WordTokenizer WordTokenizer::load(const std::string& vocab_path) {
  std::ifstream in(vocab_path, std::ios::binary);
  if (!in) throw CorpusError(vocab_path + ": cannot open vocabulary file");
  WordTokenizer t;
  std::string line;
  int64_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    check_utf8(line, vocab_path, lineno);
    if (lineno == 1 && line != "<unk>")
      throw CorpusError(vocab_path + ":1: first token is '" + line + "', expected <unk>");
    if (line.empty()) throw CorpusError(vocab_path + ":" + std::to_string(lineno) + ": empty token");
    t.itos_.push_back(line);
  }
  if (t.itos_.empty()) throw CorpusError(vocab_path + ": empty vocabulary file");
  t.finish();
  if (t.stoi_.size() != t.itos_.size()) throw CorpusError(vocab_path + ": duplicate tokens in vocabulary");
  return t;
}

WordTokenizer WordTokenizer::from_itos(std::vector<std::string> itos) {
  if (itos.empty() || itos[0] != "<unk>") throw CorpusError("WordTokenizer::from_itos: token 0 must be <unk>");
  WordTokenizer t;
  t.itos_ = std::move(itos);
  t.finish();
  if (t.stoi_.size() != t.itos_.size()) throw CorpusError("WordTokenizer::from_itos: duplicate tokens");
  return t;
}

void WordTokenizer::save(const std::string& vocab_path) const {
  std::ofstream out(vocab_path, std::ios::binary | std::ios::trunc);
  if (!out) throw CorpusError(vocab_path + ": cannot write vocabulary file");
  for (const auto& w : itos_) out << w << '\n';
}

int32_t WordTokenizer::id_of(const std::string& token) const {
  auto it = stoi_.find(token);
  return it == stoi_.end() ? kUnkId : it->second;
}

void WordTokenizer::encode_line(const std::string& line, std::vector<int32_t>& out) const {
  thread_local std::vector<std::string> words;
  words.clear();
  split_whitespace(line, words);
  for (const auto& w : words) out.push_back(id_of(w));
}

std::string WordTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string s;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) s += ' ';
    const int32_t id = ids[i];
    s += (id >= 0 && id < static_cast<int32_t>(itos_.size())) ? itos_[id] : "<unk>";
  }
  return s;
}

}  // namespace rbk
