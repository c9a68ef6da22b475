// Corpus readers, split discovery and the token-id cache (see corpus.h; claim C05).
#include "rbk/corpus.h"
#include "rbk/tokenizer.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>

namespace rbk {
namespace fs = std::filesystem;

std::string to_string(CorpusFormat f) {
  switch (f) {
    case CorpusFormat::Auto: return "auto";
    case CorpusFormat::Text: return "text";
    case CorpusFormat::JsonLines: return "jsonl";
  }
  return "?";
}

CorpusFormat parse_corpus_format(const std::string& s) {
  if (s == "auto") return CorpusFormat::Auto;
  if (s == "text") return CorpusFormat::Text;
  if (s == "jsonl") return CorpusFormat::JsonLines;
  throw CorpusError("corpus format '" + s + "': expected one of auto, text, jsonl");
}

void check_utf8(const std::string& s, const std::string& path, int64_t line) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned c = p[i];
    size_t len = 0;
    uint32_t cp = 0;
    if (c < 0x80) { ++i; continue; }
    if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; }
    bool ok = len > 0 && i + len <= n;
    for (size_t k = 1; ok && k < len; ++k) {
      ok = (p[i + k] & 0xC0) == 0x80;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    // Overlong forms, surrogates and code points past U+10FFFF are invalid too.
    if (ok) ok = !((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
                   (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF);
    if (!ok)
      throw CorpusError(path + ":" + std::to_string(line) + ": invalid UTF-8 at byte " + std::to_string(i) +
                        " of the line (0x" + [&] { char b[8]; std::snprintf(b, sizeof b, "%02X", c); return std::string(b); }() +
                        "); expected UTF-8 text");
    i += len;
  }
}

uint64_t fnv1a64(const std::string& bytes, uint64_t h) {
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

CorpusText read_corpus(const std::string& path, CorpusFormat format, int64_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw CorpusError(path + ": cannot open corpus file (missing or unreadable)");
  if (format == CorpusFormat::Auto) {
    const std::string ext = fs::path(path).extension().string();
    format = (ext == ".jsonl" || ext == ".json") ? CorpusFormat::JsonLines : CorpusFormat::Text;
  }
  CorpusText out;
  out.path = path;
  std::string line;
  int64_t lineno = 0;
  bool any_text = false;
  auto add = [&](std::string text) {
    if (!text.empty() && text.back() == '\r') text.pop_back();
    for (char ch : text)
      if (!std::isspace(static_cast<unsigned char>(ch))) { any_text = true; break; }
    out.n_bytes += static_cast<int64_t>(text.size()) + 1;
    out.lines.push_back(std::move(text));
  };
  while (std::getline(in, line)) {
    ++lineno;
    check_utf8(line, path, lineno);
    if (format == CorpusFormat::JsonLines) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      nlohmann::json rec;
      try {
        rec = nlohmann::json::parse(line);
      } catch (const std::exception& e) {
        throw CorpusError(path + ":" + std::to_string(lineno) + ": malformed JSON line (" + e.what() +
                          "); expected one JSON object with a string field \"text\" per line");
      }
      if (!rec.is_object() || !rec.contains("text") || !rec["text"].is_string())
        throw CorpusError(path + ":" + std::to_string(lineno) +
                          ": JSON line has no string field \"text\"; expected {\"text\": \"...\", ...}");
      std::stringstream ss(rec["text"].get<std::string>());
      std::string part;
      while (std::getline(ss, part)) add(std::move(part));
    } else {
      add(std::move(line));
    }
    if (max_bytes > 0 && out.n_bytes >= max_bytes) break;
  }
  if (!any_text) throw CorpusError(path + ": empty split (no non-whitespace text in " + std::to_string(lineno) + " lines)");
  return out;
}

std::string find_split_file(const std::string& dir, const std::string& split) {
  if (split != "train" && split != "valid" && split != "test")
    throw CorpusError("split '" + split + "': expected train, valid or test");
  std::vector<std::string> names;
  for (const std::string& s : split == "valid" ? std::vector<std::string>{"valid", "validation"}
                                               : std::vector<std::string>{split}) {
    for (const char* pat : {"wiki.%s.tokens", "wiki.%s.raw", "ptb.%s.txt", "sotu.%s.txt", "%s.txt", "%s.jsonl",
                            "%s.tokens", "%s.raw"}) {
      char buf[256];
      std::snprintf(buf, sizeof buf, pat, s.c_str());
      names.emplace_back(buf);
    }
  }
  std::string tried;
  for (const auto& n : names) {
    const fs::path p = fs::path(dir) / n;
    if (fs::is_regular_file(p)) return p.string();
    tried += (tried.empty() ? "" : ", ") + n;
  }
  throw CorpusError(dir + ": no " + split + " split found (tried " + tried + ")");
}

namespace {
constexpr char kCacheMagic[8] = {'R', 'B', 'K', 'T', 'O', 'K', '0', '1'};
}

void write_token_cache(const std::string& path, uint64_t key, const TokenStream& s) {
  const auto ids = s.ids.to(torch::kInt32).contiguous();
  const int64_t count = ids.numel();
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw CorpusError(tmp + ": cannot write token cache");
    out.write(kCacheMagic, 8);
    out.write(reinterpret_cast<const char*>(&key), 8);
    out.write(reinterpret_cast<const char*>(&s.n_bytes), 8);
    out.write(reinterpret_cast<const char*>(&count), 8);
    out.write(reinterpret_cast<const char*>(ids.data_ptr<int32_t>()), count * 4);
    if (!out) throw CorpusError(tmp + ": short write of token cache");
  }
  fs::rename(tmp, path);
}

bool read_token_cache(const std::string& path, uint64_t key, TokenStream& s) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  char magic[8];
  uint64_t k = 0;
  int64_t n_bytes = 0, count = 0;
  in.read(magic, 8);
  in.read(reinterpret_cast<char*>(&k), 8);
  in.read(reinterpret_cast<char*>(&n_bytes), 8);
  in.read(reinterpret_cast<char*>(&count), 8);
  if (!in || std::memcmp(magic, kCacheMagic, 8) != 0 || k != key || count < 0) return false;
  if (static_cast<uint64_t>(fs::file_size(path)) != 32 + static_cast<uint64_t>(count) * 4) return false;
  auto ids = torch::empty({count}, torch::kInt32);
  in.read(reinterpret_cast<char*>(ids.data_ptr<int32_t>()), count * 4);
  if (!in) return false;
  s.ids = ids.to(torch::kInt64);
  s.n_bytes = n_bytes;
  return true;
}

TokenStream load_token_stream(const std::string& path, const Tokenizer& tok, const std::string& cache_dir,
                              CorpusFormat format, int64_t max_bytes) {
  TokenStream s;
  s.source = path;
  std::string cache_path;
  uint64_t key = 0;
  if (!cache_dir.empty()) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw CorpusError(path + ": cannot open corpus file (missing or unreadable)");
    std::stringstream ss;
    ss << in.rdbuf();
    key = fnv1a64(ss.str(), tok.fingerprint() ^ (static_cast<uint64_t>(max_bytes) * 0x9E3779B97F4A7C15ULL) ^
                                (static_cast<uint64_t>(format) << 56));
    fs::create_directories(cache_dir);
    char hex[32];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(key));
    cache_path = (fs::path(cache_dir) / (fs::path(path).filename().string() + "." + tok.kind() + "." + hex + ".ids")).string();
    if (read_token_cache(cache_path, key, s)) return s;
  }
  const CorpusText text = read_corpus(path, format, max_bytes);
  const auto ids = tok.encode_lines(text.lines);
  if (ids.empty()) throw CorpusError(path + ": empty split (the tokenizer produced no tokens)");
  s.ids = torch::from_blob(const_cast<int32_t*>(ids.data()), {static_cast<int64_t>(ids.size())}, torch::kInt32)
              .to(torch::kInt64);
  s.n_bytes = text.n_bytes;
  if (!cache_path.empty()) write_token_cache(cache_path, key, s);
  return s;
}

}  // namespace rbk
