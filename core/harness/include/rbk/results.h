// Result files of record: JSON (config + provenance + rows of metrics) and HDF5 (arrays with
// units), both written atomically: to a temporary file beside the target, then rename(2), so a
// crash never leaves a half-written or truncated result where a good one used to be.
#pragma once
#include <nlohmann/json.hpp>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace rbk {

struct ResultFileError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Writes text to path atomically (temporary + fsync + rename). Creates parent directories.
void write_text_atomic(const std::string& path, const std::string& text);
void write_json_atomic(const std::string& path, const nlohmann::json& doc);

// Deletes a directory tree (checkpoints of a finished run, test scratch). Returns false and leaves
// what it could not remove when something fails; a missing path is success. Written on POSIX nftw
// instead of std::filesystem::remove_all: on the GPU machine (LibTorch 2.11 wheel) every process
// that called remove_all crashed with a segmentation fault (suspected: a copy of libstdc++'s
// filesystem symbols with another ABI, exported by a library loaded with Torch).
bool remove_directory_tree(const std::string& path);

// Reads and parses a JSON result file; errors name the file and what is wrong.
nlohmann::json read_json_file(const std::string& path);

// Checks a parsed result document has the fields every rbk result carries (schema, experiment,
// context with git_commit, config, rows). Throws ResultFileError naming the file and the field.
void check_result_document(const nlohmann::json& doc, const std::string& path);

// One array for an HDF5 result file. Data is stored as float64 (or int64) with its shape.
struct ArrayRecord {
  std::string name;                 // dataset path, e.g. "stable_fp32/max_rel_error"
  std::vector<int64_t> shape;       // row-major
  std::vector<double> values;       // used when !is_integer
  std::vector<int64_t> int_values;  // used when is_integer
  bool is_integer = false;
  std::string units;                // "s", "1", "tokens", ...
  std::string description;
};

ArrayRecord make_array(std::string name, std::vector<double> values, std::string units, std::string description);
ArrayRecord make_int_array(std::string name, std::vector<int64_t> values, std::string units, std::string description);

// Writes the arrays plus root attributes (each a JSON-encoded string: "context", "config",
// "experiment") atomically.
void write_hdf5_atomic(const std::string& path, const std::vector<ArrayRecord>& arrays,
                       const std::map<std::string, std::string>& root_attributes);

// Reads one dataset back as float64 (for validation and tests); throws ResultFileError.
std::vector<double> read_hdf5_dataset(const std::string& path, const std::string& name,
                                      std::vector<int64_t>* shape = nullptr);
std::string read_hdf5_root_attribute(const std::string& path, const std::string& name);

}  // namespace rbk
