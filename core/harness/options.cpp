// The machinery of the option sections (options.h): one generic path from a field table to JSON,
// to a ConfigSchema under a prefix and back from a Config; LmConfig's JSON and validation built
// from the model table; the cross-field checks; repository-relative paths.
#include "rbk/options.h"
#include "rbk/act.h"
#include "rbk/position_encoding.h"

#include "rbk/torch_compat.h"

#include <cmath>
#include <filesystem>
#include <sstream>
#include <stdexcept>

namespace rbk {
namespace {

using nlohmann::json;

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

template <class S>
ParamSpec spec_of(const OptionField<S>& f, const std::string& key) {
  ParamSpec p;
  p.key = key;
  p.type = f.type;
  p.help = f.help;
  p.min = f.min;
  p.max = f.max;
  p.choices = f.choices;
  return p;
}

template <class S>
void register_fields(ConfigSchema& schema, const std::vector<OptionField<S>>& fields, const std::string& prefix,
                     const json& overrides, const char* section) {
  if (!overrides.is_object()) throw ConfigError(std::string(section) + " defaults: expected a JSON object of field -> value");
  for (auto it = overrides.begin(); it != overrides.end(); ++it) {
    bool known = false;
    for (const auto& f : fields) known = known || f.name == it.key();
    if (!known) throw ConfigError(std::string(section) + " defaults: unknown field '" + it.key() + "' (a program bug)");
  }
  const S defaults{};
  for (const auto& f : fields) {
    ParamSpec p = spec_of(f, prefix + f.name);
    p.default_value = overrides.contains(f.name) ? overrides.at(f.name) : f.get(defaults);
    schema.add(std::move(p));
  }
}

template <class S>
void read_fields(const Config& cfg, const std::vector<OptionField<S>>& fields, const std::string& prefix, S& s) {
  const json& values = cfg.values();
  for (const auto& f : fields) {
    const std::string key = prefix + f.name;
    if (!values.contains(key))
      throw ConfigError("config has no key '" + key + "' (the program did not register this section with prefix '" +
                        prefix + "')");
    f.set(s, values.at(key));
  }
}

template <class S>
json fields_to_json(const std::vector<OptionField<S>>& fields, const S& s) {
  json j = json::object();
  for (const auto& f : fields) j[f.name] = f.get(s);
  return j;
}

// what: names the section in messages ("model config"); keys are checked with spec key = name.
template <class S>
S fields_from_json(const std::vector<OptionField<S>>& fields, const json& j, const std::string& what) {
  if (!j.is_object()) throw ConfigError(what + ": expected a JSON object, got " + j.dump());
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool known = false;
    for (const auto& f : fields) known = known || f.name == it.key();
    if (!known) {
      std::vector<std::string> names;
      for (const auto& f : fields) names.push_back(f.name);
      throw ConfigError(what + ": unknown key '" + it.key() + "'; allowed keys: " + joined(names));
    }
  }
  S s{};
  for (const auto& f : fields)
    if (j.contains(f.name)) f.set(s, validate_value(spec_of(f, f.name), j.at(f.name), what));
  return s;
}

template <class S>
void check_fields(const std::vector<OptionField<S>>& fields, const S& s, const std::string& prefix, const std::string& what) {
  for (const auto& f : fields) (void)validate_value(spec_of(f, prefix + f.name), f.get(s), what);
}

}  // namespace

// ---- Choices ----------------------------------------------------------------------------------

void check_option_choice(const std::string& key, const std::string& value, const std::vector<std::string>& choices) {
  for (const auto& c : choices)
    if (c == value) return;
  throw ConfigError(key + " = '" + value + "': expected one of " + joined(choices));
}

// ---- Schema, Config, JSON ---------------------------------------------------------------------

void add_data_options(ConfigSchema& schema, const std::string& prefix, const json& overrides) {
  register_fields(schema, data_option_fields(), prefix, overrides, "data");
}
void add_lm_config_options(ConfigSchema& schema, const std::string& prefix, const json& overrides) {
  register_fields(schema, lm_config_fields(), prefix, overrides, "model");
}
void add_train_options(ConfigSchema& schema, const std::string& prefix, const json& overrides) {
  register_fields(schema, train_option_fields(), prefix, overrides, "train");
}
void add_bk_core_options(ConfigSchema& schema, const std::string& prefix, const json& overrides) {
  register_fields(schema, bk_core_option_fields(), prefix, overrides, "bk");
}

DataOptions data_options_from(const Config& cfg, const std::string& prefix) {
  DataOptions d;
  read_fields(cfg, data_option_fields(), prefix, d);
  return d;
}
LmConfig lm_config_from(const Config& cfg, const std::string& prefix) {
  LmConfig c;
  read_fields(cfg, lm_config_fields(), prefix, c);
  check_lm_config(c, prefix, false);
  return c;
}
TrainOptions train_options_from(const Config& cfg, const std::string& prefix, torch::Device device) {
  TrainOptions t;
  read_fields(cfg, train_option_fields(), prefix, t);
  t.device = device;
  check_train_options(t, prefix);
  return t;
}
BkCoreOptions bk_core_options_from(const Config& cfg, const std::string& prefix) {
  BkCoreOptions b;
  read_fields(cfg, bk_core_option_fields(), prefix, b);
  check_bk_core_options(b, prefix);
  return b;
}

json data_options_to_json(const DataOptions& d) { return fields_to_json(data_option_fields(), d); }
json train_options_to_json(const TrainOptions& t) { return fields_to_json(train_option_fields(), t); }
json bk_core_options_to_json(const BkCoreOptions& b) { return fields_to_json(bk_core_option_fields(), b); }
DataOptions data_options_from_json(const json& j) { return fields_from_json(data_option_fields(), j, "data options"); }
// No device here: precision is checked against the device by check_train_options / train_options_from.
TrainOptions train_options_from_json(const json& j) { return fields_from_json(train_option_fields(), j, "train options"); }
BkCoreOptions bk_core_options_from_json(const json& j) {
  auto b = fields_from_json(bk_core_option_fields(), j, "bk options");
  check_bk_core_options(b, "");
  return b;
}

// LmConfig's JSON and validation come from the model table; they keep throwing
// std::invalid_argument (checkpoint readers and tests rely on it), with the ConfigError's text.
nlohmann::json LmConfig::to_json() const { return fields_to_json(lm_config_fields(), *this); }

LmConfig LmConfig::from_json(const nlohmann::json& j) {
  try {
    LmConfig c = fields_from_json(lm_config_fields(), j, "model config");
    c.validate();
    return c;
  } catch (const ConfigError& e) {
    throw std::invalid_argument(e.what());
  }
}

void LmConfig::validate() const {
  try {
    check_fields(lm_config_fields(), *this, "", "model config");
    check_lm_config(*this, "", true);
  } catch (const ConfigError& e) {
    throw std::invalid_argument(e.what());
  }
}

// ---- Cross-field checks -----------------------------------------------------------------------

void check_lm_config(const LmConfig& c, const std::string& p, bool require_vocab) {
  auto val = [](const std::string& v) { return "'" + v + "'"; };
  check_option_choice(p + "arch", c.arch, arch_choices());
  if (require_vocab && c.vocab_size < 2)
    throw ConfigError(p + "vocab_size = " + std::to_string(c.vocab_size) +
                      ": expected >= 2 (programs set it from the tokenizer)");
  auto positions = supported_positions(c.arch);
  positions.insert(positions.begin(), "auto");
  bool position_ok = false;
  for (const auto& m : positions) position_ok = position_ok || m == c.position;
  if (!position_ok)
    throw ConfigError(p + "position = " + val(c.position) + " is not supported by " + p + "arch = " + val(c.arch) +
                      "; allowed for " + c.arch + ": " + joined(positions));
  try {
    check_position_supported(c);  // the modes' own conditions (Prime-Bump needs the table, rotary an even head)
    check_ablation_and_act_config(c);  // the ablation switches and ACT keys (act.h), at parse time
  } catch (const std::invalid_argument& e) {
    throw ConfigError(p.empty() ? std::string(e.what()) : "in " + p + "*: " + e.what());
  }
  if (c.arch == "resnet_bk") {
    if (c.bk_context == "causal" && c.bk_forward != "stable")
      throw ConfigError(p + "bk_context = 'causal' needs " + p + "bk_forward = 'stable' (got " + val(c.bk_forward) +
                        "; the compat recursions are bidirectional only)");
    if (c.bk_gradient == "autograd" && c.bk_forward != "stable")
      throw ConfigError(p + "bk_gradient = 'autograd' needs " + p + "bk_forward = 'stable' (got " + val(c.bk_forward) +
                        "; autograd differentiates the stable recursion)");
    if (c.top_k > c.num_experts)
      throw ConfigError(p + "top_k = " + std::to_string(c.top_k) + " exceeds " + p + "num_experts = " +
                        std::to_string(c.num_experts) + "; expected top_k in [1, num_experts]");
    if (c.router == "scattering_phase" && c.block != "papertime")
      throw ConfigError(p + "router = 'scattering_phase' needs " + p + "block = 'papertime' (got " + val(c.block) +
                        "; it routes by the BK-Core output, which the PoC block computes after the MoE)");
    if (!(c.bk_z_imag > 0.0))
      throw ConfigError(p + "bk_z_imag = " + std::to_string(c.bk_z_imag) +
                        ": expected Im z > 0 (the resolvent (H - z)^-1 needs z off the real axis)");
  } else if (c.arch == "transformer") {
    if (c.d_model % c.n_heads != 0)
      throw ConfigError(p + "d_model = " + std::to_string(c.d_model) + " is not a multiple of " + p + "n_heads = " +
                        std::to_string(c.n_heads) + "; expected n_heads to divide d_model");
  }
}

void check_train_options(const TrainOptions& t, const std::string& p) {
  if (t.precision == "bf16" && !t.device.is_cuda())
    throw ConfigError(p + "precision = 'bf16' needs a CUDA device (device is " + t.device.str() +
                      "); allowed off CUDA: fp32 (CPU autocast is not used)");
}

void check_model_and_training(const LmConfig& c, const TrainOptions& t, const std::string& mp, const std::string& tp) {
  if (t.seq_len > c.n_seq)
    throw ConfigError(tp + "seq_len = " + std::to_string(t.seq_len) + " exceeds " + mp + "n_seq = " +
                      std::to_string(c.n_seq) + "; expected seq_len <= n_seq (the longest sequence the model takes)");
  if (t.layout == BatchLayout::UpstreamTimeMajor && c.arch != "resnet_bk")
    throw ConfigError(tp + "layout = 'upstream_time_major' is the PoC bug of ResNet-BK, but " + mp + "arch = '" +
                      c.arch + "'; allowed for " + c.arch + ": correct");
  if (t.layout == BatchLayout::UpstreamTimeMajor && t.batch_size > c.n_seq)
    throw ConfigError(tp + "layout = 'upstream_time_major' feeds (N, B) = (" + std::to_string(t.seq_len) + ", " +
                      std::to_string(t.batch_size) + "), so " + tp + "batch_size = " + std::to_string(t.batch_size) +
                      " must be <= " + mp + "n_seq = " + std::to_string(c.n_seq));
}

void check_bk_core_options(const BkCoreOptions& b, const std::string& p) {
  if (b.context == BkContext::Causal && b.forward != BkForwardMode::Stable)
    throw ConfigError(p + "context = 'causal' needs " + p + "forward = 'stable' (got '" + to_string(b.forward) +
                      "'; the compat recursions are bidirectional only)");
  if (b.gradient == BkGradientMode::Autograd && b.forward != BkForwardMode::Stable)
    throw ConfigError(p + "gradient = 'autograd' needs " + p + "forward = 'stable' (got '" + to_string(b.forward) + "')");
  if (!(b.z.imag() > 0.0))
    throw ConfigError(p + "z_imag = " + std::to_string(b.z.imag()) + ": expected Im z > 0");
}

BkCoreOptions bk_core_options_of(const LmConfig& c) {
  BkCoreOptions b;
  b.forward = parse_forward_mode(c.bk_forward);
  b.gradient = parse_gradient_mode(c.bk_gradient);
  b.context = parse_context(c.bk_context);
  b.z = c10::complex<double>(c.bk_z_real, c.bk_z_imag);
  return b;
}

std::string resolve_repo_path(const std::string& path) {
  namespace fs = std::filesystem;
  if (path.empty() || fs::path(path).is_absolute() || fs::exists(path)) return path;
  return (fs::path(RBK_SOURCE_DIR) / path).string();
}

}  // namespace rbk
