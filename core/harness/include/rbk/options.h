// Options defined once (issue 17): the data, model, training and BK-Core sections every language
// model program composes. One field table per section (name, type, range or choices, help, the
// struct's default, and how to read and write the struct's member) drives
//   * JSON in and out (LmConfig::to_json / from_json are built from the model table),
//   * registration into a ConfigSchema under a prefix ("model." -> keys model.d_model, ...), with
//     the struct's default, so a preset lists only what it changes,
//   * reading the struct back from a validated Config with that prefix.
// Checks that involve more than one key (a causal BK context with a compat forward, a position mode
// the architecture lacks, bf16 without CUDA, top_k above num_experts, ...) live here too, each a
// ConfigError naming the keys, their values and what is allowed (exit 2 in run_experiment).
#pragma once
#include "rbk/bk_core_autograd.h"
#include "rbk/config.h"
#include "rbk/lm_config.h"
#include "rbk/position_encoding.h"
#include "rbk/trainer.h"

#include <nlohmann/json.hpp>
#include <functional>
#include <limits>
#include <string>
#include <vector>

namespace rbk {

// Where a language model's text comes from and how it becomes token ids (lm_data.h loads it).
struct DataOptions {
  std::string data_dir = "data/sotu";  // <name>.{train,valid,test} splits; scripts/fetch_corpus.sh
  std::string format = "auto";         // "auto" | "text" | "jsonl" (corpus.h)
  std::string tokenizer = "word";      // "word" (built on the train split) | "gpt2_bpe"
  int64_t vocab_top_k = 0;             // word: 0 = <unk> + every train type, K = <unk> + top K-1
  std::string bpe_dir = "data/gpt2";   // gpt2_bpe: directory with encoder.json and vocab.bpe
  int64_t train_max_bytes = 0;         // read at most this many bytes of train (0 = all)
  int64_t eval_max_bytes = 0;          // ... of valid and test (0 = all)
};

// ---- Closed choice lists, defined once -------------------------------------------------------
const std::vector<std::string>& arch_choices();          // resnet_bk, transformer, mamba, rwkv
const std::vector<std::string>& init_choices();          // torch_default, papertime
const std::vector<std::string>& block_choices();         // poc, papertime
const std::vector<std::string>& router_choices();        // learned_topk, switch_top1, gumbel_hard, scattering_phase
const std::vector<std::string>& bk_forward_choices();    // stable, compat_poc, compat_papertime, compat_papertime_triton
const std::vector<std::string>& bk_gradient_choices();   // exact, papertime_hybrid, head_hybrid, autograd
const std::vector<std::string>& bk_context_choices();    // bidirectional, causal
const std::vector<std::string>& prime_bump_choices();    // none, simple, potential
const std::vector<std::string>& position_choices();      // auto, learned, none, sinusoidal, rotary
const std::vector<std::string>& precision_choices();     // fp32, bf16
const std::vector<std::string>& schedule_choices();      // constant, cosine
const std::vector<std::string>& layout_choices();        // correct, upstream_time_major
const std::vector<std::string>& corpus_format_choices(); // auto, text, jsonl
const std::vector<std::string>& tokenizer_choices();     // word, gpt2_bpe
const std::vector<std::string>& compat_execution_choices();  // scalar_loop, tensor_ops

// Position modes per architecture: supported_positions(arch) in position_encoding.h (the model
// classes build the modes; "auto" is always allowed and means the arch's own).

// Throws ConfigError "<key> = '<value>': expected one of ..." unless value is in choices.
void check_option_choice(const std::string& key, const std::string& value, const std::vector<std::string>& choices);

// ---- Field tables ----------------------------------------------------------------------------
// One option of a section. type is Int, Real, Bool or String; min/max bound numbers, choices
// close strings (empty = free text). get/set move the member to and from JSON (set receives a
// value already checked by validate_value).
template <class S>
struct OptionField {
  std::string name;  // key within the section: "d_model"
  ParamType type;
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  std::vector<std::string> choices;
  std::string help;
  std::function<nlohmann::json(const S&)> get;
  std::function<void(S&, const nlohmann::json&)> set;
};

const std::vector<OptionField<DataOptions>>& data_option_fields();
const std::vector<OptionField<LmConfig>>& lm_config_fields();
// Every TrainOptions field except those a program sets itself: seed, device, checkpoint_path,
// metrics_path, label, stop_after_steps.
const std::vector<OptionField<TrainOptions>>& train_option_fields();
// forward, gradient, context, z_real, z_imag, compat_execution.
const std::vector<OptionField<BkCoreOptions>>& bk_core_option_fields();

// ---- Schema registration (keys prefix + name, defaults = the struct's defaults) --------------
// The prefix is usually the section name with a dot ("model."); an empty prefix registers bare
// names. Registered keys may be omitted from a preset (the default is recorded in the resolved
// config). overrides: defaults that differ from the struct's for this program (e.g. a training
// recipe's lr); keys are field names without the prefix; an unknown name throws ConfigError.
void add_data_options(ConfigSchema& schema, const std::string& prefix = "data.",
                      const nlohmann::json& overrides = nlohmann::json::object());
void add_lm_config_options(ConfigSchema& schema, const std::string& prefix = "model.",
                           const nlohmann::json& overrides = nlohmann::json::object());
void add_train_options(ConfigSchema& schema, const std::string& prefix = "train.",
                       const nlohmann::json& overrides = nlohmann::json::object());
void add_bk_core_options(ConfigSchema& schema, const std::string& prefix = "bk.",
                         const nlohmann::json& overrides = nlohmann::json::object());

// ---- Reading a section back from a validated Config ----------------------------------------
// Each applies the section's cross-field checks (ConfigError naming prefixed keys). lm_config_from
// leaves vocab_size as configured (0 = "from the tokenizer": set it, then call LmConfig::validate).
DataOptions data_options_from(const Config& cfg, const std::string& prefix = "data.");
LmConfig lm_config_from(const Config& cfg, const std::string& prefix = "model.");
// device is the program's (experiment_device); precision bf16 off CUDA is a ConfigError here.
TrainOptions train_options_from(const Config& cfg, const std::string& prefix, torch::Device device);
BkCoreOptions bk_core_options_from(const Config& cfg, const std::string& prefix = "bk.");

// ---- JSON of a whole section (keys = field names, no prefix) ---------------------------------
nlohmann::json data_options_to_json(const DataOptions& d);
nlohmann::json train_options_to_json(const TrainOptions& t);  // the table's fields only
nlohmann::json bk_core_options_to_json(const BkCoreOptions& b);
// Partial objects are fine (missing keys keep the default); unknown keys, wrong types, values out
// of range or choices throw ConfigError naming the key. train_options_from_json knows no device, so
// it leaves the precision/device check to check_train_options.
DataOptions data_options_from_json(const nlohmann::json& j);
TrainOptions train_options_from_json(const nlohmann::json& j);
BkCoreOptions bk_core_options_from_json(const nlohmann::json& j);

// ---- Cross-field checks, defined once --------------------------------------------------------
// Model: causal BK context with a compat forward; autograd gradient with a compat forward; a
// position mode the arch lacks; top_k above num_experts; scattering_phase router without the
// papertime block; d_model not a multiple of n_heads (transformer); Im z <= 0. Keys are named
// prefix + field. vocab_size is checked only when require_vocab (0 means "from the tokenizer").
void check_lm_config(const LmConfig& c, const std::string& prefix = "model.", bool require_vocab = false);
// Training: precision bf16 without a CUDA device (uses t.device); ranges are per-field.
void check_train_options(const TrainOptions& t, const std::string& prefix = "train.");
// Model x training: train.seq_len above model.n_seq; upstream_time_major layout for a model that
// is not resnet_bk (the PoC bug exists only there) or with batch_size above n_seq (the model then
// sees sequences of length batch_size).
void check_model_and_training(const LmConfig& c, const TrainOptions& t, const std::string& model_prefix = "model.",
                              const std::string& train_prefix = "train.");
// BK-Core section: causal or autograd with a compat forward; Im z <= 0.
void check_bk_core_options(const BkCoreOptions& b, const std::string& prefix = "bk.");
// BK-Core options as the model config describes them (bk_forward, bk_gradient, bk_context, z).
BkCoreOptions bk_core_options_of(const LmConfig& c);

// ---- Paths ------------------------------------------------------------------------------------
// A relative path is taken from the working directory when it exists there, else from the
// repository root (RBK_REPO_DIR at build time); absolute and empty paths are returned as given.
std::string resolve_repo_path(const std::string& path);

}  // namespace rbk
