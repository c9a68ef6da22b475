// Corpus readers, split discovery, bad-input errors and the token cache (claim C05 data path).
#include "rbk/results.h"
#include "rbk/corpus.h"
#include "rbk/tokenizer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace {
namespace fs = std::filesystem;

fs::path tmpdir(const std::string& name) {
  auto d = fs::temp_directory_path() / ("rbk_lm_" + name + "_" + std::to_string(::getpid()));
  rbk::remove_directory_tree(d.string());
  fs::create_directories(d);
  return d;
}

// Runs f, expects a CorpusError whose message contains every needle; prints the message.
template <class F>
void expect_error(F f, std::vector<std::string> needles) {
  try {
    f();
    ADD_FAILURE() << "no CorpusError";
  } catch (const rbk::CorpusError& e) {
    std::printf("error: %s\n", e.what());
    for (auto& n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << "missing '" << n << "'";
  }
}

TEST(Corpus, FindsEveryKnownLayout) {
  auto d = tmpdir("layouts");
  for (auto name : {"wiki.train.tokens", "ptb.valid.txt", "sotu.test.txt"}) std::ofstream(d / name) << "x\n";
  EXPECT_EQ(rbk::find_split_file(d.string(), "train"), (d / "wiki.train.tokens").string());
  EXPECT_EQ(rbk::find_split_file(d.string(), "valid"), (d / "ptb.valid.txt").string());
  EXPECT_EQ(rbk::find_split_file(d.string(), "test"), (d / "sotu.test.txt").string());
  fs::remove(d / "sotu.test.txt");
  expect_error([&] { rbk::find_split_file(d.string(), "test"); }, {d.string(), "test", "wiki.test.tokens"});
  EXPECT_EQ(rbk::find_split_file(std::string(RBK_TEST_DATA_DIR) + "/sotu_sample", "valid"), std::string(RBK_TEST_DATA_DIR) + "/sotu_sample/sotu.valid.txt");
}

TEST(Corpus, JsonLinesTextFieldAndErrors) {
  auto d = tmpdir("jsonl");
  std::ofstream(d / "ok.jsonl") << "{\"text\": \"one two\\nthree\", \"meta\": 1}\n\n{\"text\": \"four\"}\n";
  auto c = rbk::read_corpus((d / "ok.jsonl").string());
  EXPECT_EQ(c.lines, (std::vector<std::string>{"one two", "three", "four"}));
  EXPECT_EQ(c.n_bytes, 8 + 6 + 5);
  std::ofstream(d / "bad.jsonl") << "{\"text\": \"a\"}\n{\"text\": \"b\"\n";
  expect_error([&] { rbk::read_corpus((d / "bad.jsonl").string()); }, {"bad.jsonl:2", "malformed JSON"});
  std::ofstream(d / "nofield.jsonl") << "{\"body\": \"a\"}\n";
  expect_error([&] { rbk::read_corpus((d / "nofield.jsonl").string()); }, {"nofield.jsonl:1", "\"text\""});
}

TEST(Corpus, MissingEmptyAndInvalidUtf8) {
  auto d = tmpdir("bad");
  expect_error([&] { rbk::read_corpus((d / "nope.txt").string()); }, {"nope.txt", "cannot open"});
  std::ofstream(d / "empty.txt") << "\n  \n\t\n";
  expect_error([&] { rbk::read_corpus((d / "empty.txt").string()); }, {"empty.txt", "empty split"});
  std::ofstream(d / "latin1.txt") << "fine line\ncaf\xE9 au lait\n";
  expect_error([&] { rbk::read_corpus((d / "latin1.txt").string()); }, {"latin1.txt:2", "invalid UTF-8", "byte 3"});
  std::ofstream(d / "surrogate.txt") << "\xED\xA0\x80\n";
  expect_error([&] { rbk::read_corpus((d / "surrogate.txt").string()); }, {"surrogate.txt:1", "invalid UTF-8"});
  EXPECT_NO_THROW(rbk::check_utf8("caf\xC3\xA9 \xE2\x80\x94 \xF0\x9F\x98\x80", "x", 1));
}

TEST(Corpus, MaxBytesStopsAtWholeLines) {
  auto full = rbk::read_corpus(std::string(RBK_TEST_DATA_DIR) + "/sotu_sample/sotu.train.txt");
  auto part = rbk::read_corpus(std::string(RBK_TEST_DATA_DIR) + "/sotu_sample/sotu.train.txt", rbk::CorpusFormat::Auto, 2000);
  std::printf("full %lld bytes %zu lines, part %lld bytes %zu lines\n", (long long)full.n_bytes, full.lines.size(),
              (long long)part.n_bytes, part.lines.size());
  EXPECT_EQ(full.n_bytes, static_cast<int64_t>(fs::file_size(std::string(RBK_TEST_DATA_DIR) + "/sotu_sample/sotu.train.txt")));
  EXPECT_GE(part.n_bytes, 2000);
  EXPECT_LT(part.lines.size(), full.lines.size());
  for (size_t i = 0; i < part.lines.size(); ++i) EXPECT_EQ(part.lines[i], full.lines[i]);
}

TEST(TokenCache, HitMatchesFreshEncodingAndStaleKeyRebuilds) {
  auto d = tmpdir("cache");
  const std::string src = std::string(RBK_TEST_DATA_DIR) + "/sotu_sample/sotu.train.txt";
  auto tok = rbk::WordTokenizer::build(rbk::read_corpus(src).lines);
  auto fresh = rbk::load_token_stream(src, tok, "");
  auto first = rbk::load_token_stream(src, tok, (d / "c").string());
  size_t n_files = 0;
  for (auto& e : fs::directory_iterator(d / "c")) { (void)e; ++n_files; }
  EXPECT_EQ(n_files, 1u);
  auto second = rbk::load_token_stream(src, tok, (d / "c").string());
  std::printf("tokens %lld, bytes %lld\n", (long long)fresh.ids.numel(), (long long)fresh.n_bytes);
  EXPECT_TRUE(torch::equal(fresh.ids, first.ids));
  EXPECT_TRUE(torch::equal(fresh.ids, second.ids));
  EXPECT_EQ(second.n_bytes, fresh.n_bytes);
  // A different vocabulary must not read the old cache.
  auto tok2 = rbk::WordTokenizer::build({"Gentlemen of the"});
  auto other = rbk::load_token_stream(src, tok2, (d / "c").string());
  EXPECT_LE(other.ids.max().item<int64_t>(), 3);
  // A corrupted cache file is rejected by its size check and rebuilt.
  for (auto& e : fs::directory_iterator(d / "c")) fs::resize_file(e.path(), 40);
  auto again = rbk::load_token_stream(src, tok, (d / "c").string());
  EXPECT_TRUE(torch::equal(fresh.ids, again.ids));
}

}  // namespace
