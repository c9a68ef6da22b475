// GPT-2 byte-level BPE, written from the algorithm (see bpe_tokenizer.h). Used by the LM
// experiments that follow the upstream long-context / quantisation scripts (upstream-audit §11).
#include "rbk/bpe_tokenizer.h"
#include "rbk/corpus.h"

#include <nlohmann/json.hpp>

#include <climits>
#include <fstream>
#include <sstream>

namespace rbk {
namespace {

std::string utf8_encode(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xF0 | (cp >> 18));
    s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

// Decodes one code point at s[i]; invalid bytes decode as themselves (length 1) so that the
// pre-tokeniser never loops; callers check UTF-8 before.
uint32_t utf8_next(const std::string& s, size_t i, size_t* len) {
  const auto c = static_cast<unsigned char>(s[i]);
  size_t n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
  if (i + n > s.size()) n = 1;
  uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
  for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  *len = n;
  return cp;
}

bool in(uint32_t c, uint32_t a, uint32_t b) { return c >= a && c <= b; }

// Python re's \s for str patterns.
bool is_space(uint32_t c) {
  return c == ' ' || in(c, 0x09, 0x0D) || in(c, 0x1C, 0x1F) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         in(c, 0x2000, 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// \p{N}: decimal digits of the common scripts plus the superscript, fraction, number-form and
// enclosed-digit blocks. A hand-written subset of the Unicode tables (documented limitation:
// digits of rarer scripts count as "other").
bool is_number(uint32_t c) {
  return in(c, '0', '9') || c == 0xB2 || c == 0xB3 || c == 0xB9 || in(c, 0xBC, 0xBE) || in(c, 0x660, 0x669) ||
         in(c, 0x6F0, 0x6F9) || in(c, 0x966, 0x96F) || in(c, 0x9E6, 0x9EF) || in(c, 0xE50, 0xE59) ||
         c == 0x2070 || in(c, 0x2074, 0x2079) || in(c, 0x2080, 0x2089) || in(c, 0x2150, 0x2182) ||
         in(c, 0x2185, 0x2189) || in(c, 0x2460, 0x249B) || in(c, 0x24EA, 0x24FF) || in(c, 0x2776, 0x2793) ||
         in(c, 0x3021, 0x3029) || in(c, 0xFF10, 0xFF19);
}

// \p{L}: letters of Latin, Greek, Cyrillic, Armenian, Hebrew, Arabic, Devanagari, CJK, kana,
// Hangul and the Latin/Greek extended blocks; marks, punctuation and symbols are excluded.
bool is_letter(uint32_t c) {
  if (c < 0x80) return in(c, 'A', 'Z') || in(c, 'a', 'z');
  if (c < 0x100) return c == 0xAA || c == 0xB5 || c == 0xBA || (in(c, 0xC0, 0xFF) && c != 0xD7 && c != 0xF7);
  return in(c, 0x100, 0x2C1) || in(c, 0x2C6, 0x2D1) || in(c, 0x2E0, 0x2E4) || c == 0x2EC || c == 0x2EE ||
         in(c, 0x370, 0x374) || c == 0x376 || c == 0x377 || in(c, 0x37A, 0x37D) || c == 0x37F || c == 0x386 ||
         in(c, 0x388, 0x3F5) || in(c, 0x3F7, 0x481) || in(c, 0x48A, 0x52F) || in(c, 0x531, 0x556) ||
         in(c, 0x560, 0x588) || in(c, 0x5D0, 0x5EA) || in(c, 0x620, 0x64A) || in(c, 0x671, 0x6D3) ||
         in(c, 0x904, 0x939) || in(c, 0xE01, 0xE30) || in(c, 0x10A0, 0x10FF) || in(c, 0x1100, 0x11FF) ||
         in(c, 0x1E00, 0x1FBC) || in(c, 0x1FC2, 0x1FCC) || in(c, 0x1FD0, 0x1FDB) || in(c, 0x1FE0, 0x1FEC) ||
         in(c, 0x1FF2, 0x1FFC) || c == 0x2071 || c == 0x207F || in(c, 0x2090, 0x209C) || c == 0x2102 ||
         c == 0x2107 || in(c, 0x210A, 0x2113) || c == 0x2115 || in(c, 0x2119, 0x211D) || c == 0x2124 ||
         in(c, 0x212A, 0x212D) || in(c, 0x212F, 0x2139) || in(c, 0x3041, 0x3096) || in(c, 0x309D, 0x309F) ||
         in(c, 0x30A1, 0x30FA) || in(c, 0x30FC, 0x30FF) || in(c, 0x3400, 0x4DBF) || in(c, 0x4E00, 0x9FFF) ||
         in(c, 0xAC00, 0xD7A3) || in(c, 0xF900, 0xFAFF) || in(c, 0xFF21, 0xFF3A) || in(c, 0xFF41, 0xFF5A) ||
         in(c, 0xFF66, 0xFFDC) || in(c, 0x20000, 0x2FA1F);
}

}  // namespace

std::vector<std::string> gpt2_pretokenize(const std::string& text) {
  // Decode once so that every alternative of the pattern is a scan over code points.
  std::vector<uint32_t> cp;
  std::vector<size_t> off;
  for (size_t i = 0; i < text.size();) {
    size_t len = 1;
    cp.push_back(utf8_next(text, i, &len));
    off.push_back(i);
    i += len;
  }
  const size_t n = cp.size();
  off.push_back(text.size());
  auto other = [&](size_t k) { return !is_space(cp[k]) && !is_letter(cp[k]) && !is_number(cp[k]); };
  std::vector<std::string> out;
  size_t i = 0;
  while (i < n) {
    size_t j = i;
    // 's|'t|'re|'ve|'m|'ll|'d, in that order (leftmost alternative wins).
    if (cp[i] == '\'' && i + 1 < n) {
      const uint32_t a = cp[i + 1], b = i + 2 < n ? cp[i + 2] : 0;
      if (a == 's' || a == 't' || a == 'm' || a == 'd') j = i + 2;
      else if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) j = i + 3;
    }
    if (j == i) {
      // " ?X+" for X in letter, number, other: the optional prefix is an ASCII space only.
      const size_t s = (cp[i] == ' ' && i + 1 < n) ? i + 1 : i;
      bool (*cls)(uint32_t) = nullptr;
      if (is_letter(cp[s])) cls = is_letter;
      else if (is_number(cp[s])) cls = is_number;
      if (cls) {
        j = s;
        while (j < n && cls(cp[j])) ++j;
      } else if (other(s)) {
        j = s;
        while (j < n && other(j)) ++j;
      }
    }
    if (j == i) {
      // \s+(?!\S) then \s+: a whitespace run gives its last character to a following word.
      size_t k = i;
      while (k < n && is_space(cp[k])) ++k;
      j = (k < n && k - i > 1) ? k - 1 : k;
      if (j == i) j = i + 1;  // unreachable for valid input; guarantees progress
    }
    out.push_back(text.substr(off[i], off[j] - off[i]));
    i = j;
  }
  return out;
}

Gpt2BpeTokenizer Gpt2BpeTokenizer::from_tables(std::unordered_map<std::string, int32_t> encoder,
                                               std::vector<std::pair<std::string, std::string>> merges) {
  Gpt2BpeTokenizer t;
  // Printable bytes stand for themselves; the rest are shifted past 255 in byte order, so every
  // byte has a visible, whitespace-free symbol.
  int shift = 0;
  for (int b = 0; b < 256; ++b) {
    const bool keep = in(b, 33, 126) || in(b, 161, 172) || in(b, 174, 255);
    t.byte_to_unicode_[b] = utf8_encode(keep ? b : 256 + shift++);
    t.unicode_to_byte_[t.byte_to_unicode_[b]] = static_cast<uint8_t>(b);
  }
  int32_t max_id = -1;
  for (const auto& kv : encoder) max_id = std::max(max_id, kv.second);
  t.decoder_.assign(static_cast<size_t>(max_id + 1), std::string());
  uint64_t h = fnv1a64("gpt2-bpe-v1");
  for (const auto& kv : encoder) {
    if (kv.second < 0) throw CorpusError("BPE encoder: negative id for token '" + kv.first + "'");
    t.decoder_[static_cast<size_t>(kv.second)] = kv.first;
  }
  for (const auto& d : t.decoder_) h = fnv1a64(d + '\n', h);
  for (size_t r = 0; r < merges.size(); ++r) {
    t.ranks_.emplace(merges[r], static_cast<int32_t>(r));
    h = fnv1a64(merges[r].first + ' ' + merges[r].second + '\n', h);
  }
  t.encoder_ = std::move(encoder);
  t.fingerprint_ = h;
  return t;
}

Gpt2BpeTokenizer Gpt2BpeTokenizer::load(const std::string& encoder_json, const std::string& vocab_bpe) {
  std::ifstream ej(encoder_json, std::ios::binary);
  if (!ej) throw CorpusError(encoder_json + ": cannot open GPT-2 encoder.json (run scripts/fetch_corpus.sh)");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(ej);
  } catch (const std::exception& e) {
    throw CorpusError(encoder_json + ": malformed JSON (" + e.what() + "); expected {token: id, ...}");
  }
  if (!j.is_object() || j.empty()) throw CorpusError(encoder_json + ": expected a non-empty JSON object {token: id}");
  std::unordered_map<std::string, int32_t> enc;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!it.value().is_number_integer())
      throw CorpusError(encoder_json + ": token '" + it.key() + "' has a non-integer id");
    enc.emplace(it.key(), it.value().get<int32_t>());
  }
  std::ifstream vb(vocab_bpe, std::ios::binary);
  if (!vb) throw CorpusError(vocab_bpe + ": cannot open GPT-2 vocab.bpe (run scripts/fetch_corpus.sh)");
  std::vector<std::pair<std::string, std::string>> merges;
  std::string line;
  int64_t lineno = 0;
  while (std::getline(vb, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (lineno == 1 && line.rfind("#version", 0) == 0)) continue;
    const auto sp = line.find(' ');
    if (sp == std::string::npos || sp == 0 || sp + 1 >= line.size() || line.find(' ', sp + 1) != std::string::npos)
      throw CorpusError(vocab_bpe + ":" + std::to_string(lineno) + ": merge line '" + line +
                        "' is not two symbols separated by one space");
    merges.emplace_back(line.substr(0, sp), line.substr(sp + 1));
  }
  if (merges.empty()) throw CorpusError(vocab_bpe + ": no merges");
  return from_tables(std::move(enc), std::move(merges));
}

std::vector<std::string> Gpt2BpeTokenizer::bpe(const std::string& word) const {
  std::vector<std::string> parts;
  for (size_t i = 0; i < word.size();) {
    size_t len = 1;
    utf8_next(word, i, &len);
    parts.push_back(word.substr(i, len));
    i += len;
  }
  while (parts.size() > 1) {
    int32_t best = INT32_MAX;
    size_t best_i = 0;
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      auto it = ranks_.find({parts[i], parts[i + 1]});
      if (it != ranks_.end() && it->second < best) {
        best = it->second;
        best_i = i;
      }
    }
    if (best == INT32_MAX) break;
    const std::string a = parts[best_i], b = parts[best_i + 1];
    std::vector<std::string> merged;
    merged.reserve(parts.size());
    for (size_t i = 0; i < parts.size();) {
      if (i + 1 < parts.size() && parts[i] == a && parts[i + 1] == b) {
        merged.push_back(a + b);
        i += 2;
      } else {
        merged.push_back(parts[i]);
        ++i;
      }
    }
    parts.swap(merged);
  }
  return parts;
}

void Gpt2BpeTokenizer::encode_line(const std::string& text, std::vector<int32_t>& out) const {
  for (const auto& piece : gpt2_pretokenize(text)) {
    {
      std::lock_guard<std::mutex> lock(*cache_mutex_);
      auto it = cache_->find(piece);
      if (it != cache_->end()) {
        out.insert(out.end(), it->second.begin(), it->second.end());
        continue;
      }
    }
    std::string u;
    for (unsigned char c : piece) u += byte_to_unicode_[c];
    std::vector<int32_t> ids;
    for (const auto& tok : bpe(u)) {
      auto it = encoder_.find(tok);
      if (it == encoder_.end()) throw CorpusError("BPE: merged symbol '" + tok + "' is not in the encoder (vocabulary and merges do not match)");
      ids.push_back(it->second);
    }
    out.insert(out.end(), ids.begin(), ids.end());
    std::lock_guard<std::mutex> lock(*cache_mutex_);
    if (cache_->size() < (1u << 20)) cache_->emplace(piece, std::move(ids));
  }
}

std::vector<int32_t> Gpt2BpeTokenizer::encode(const std::string& text) const {
  std::vector<int32_t> out;
  encode_line(text, out);
  return out;
}

std::string Gpt2BpeTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string u, bytes;
  for (int32_t id : ids) {
    if (id < 0 || id >= static_cast<int32_t>(decoder_.size()))
      throw CorpusError("BPE decode: id " + std::to_string(id) + " outside [0, " + std::to_string(decoder_.size()) + ")");
    u += decoder_[static_cast<size_t>(id)];
  }
  for (size_t i = 0; i < u.size();) {
    size_t len = 1;
    utf8_next(u, i, &len);
    auto it = unicode_to_byte_.find(u.substr(i, len));
    if (it == unicode_to_byte_.end()) throw CorpusError("BPE decode: symbol outside the byte map");
    bytes += static_cast<char>(it->second);
    i += len;
  }
  return bytes;
}

}  // namespace rbk
