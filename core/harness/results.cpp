// Atomic JSON and HDF5 result files, and their readers (used by validation and tests).
#include "rbk/results.h"

#include <H5Cpp.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace rbk {
namespace fs = std::filesystem;

namespace {

std::string temp_path_for(const std::string& path) {
  return path + ".tmp." + std::to_string(::getpid());
}

void ensure_parent(const std::string& path) {
  const fs::path parent = fs::path(path).parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    fs::create_directories(parent, ec);
    if (ec) throw ResultFileError("cannot create directory '" + parent.string() + "': " + ec.message());
  }
}

// fsync the file, then rename over the target: readers see either the old or the new file.
void commit_temp(const std::string& tmp, const std::string& path) {
  const int fd = ::open(tmp.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw ResultFileError("cannot rename '" + tmp + "' to '" + path + "'");
  }
}

}  // namespace

void write_text_atomic(const std::string& path, const std::string& text) {
  ensure_parent(path);
  const std::string tmp = temp_path_for(path);
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw ResultFileError("cannot open '" + tmp + "' for writing");
    out << text;
    out.flush();
    if (!out) {
      std::remove(tmp.c_str());
      throw ResultFileError("write to '" + tmp + "' failed (disk full?)");
    }
  }
  commit_temp(tmp, path);
}

void write_json_atomic(const std::string& path, const nlohmann::json& doc) {
  // NaN/Inf are not JSON: writers store null for them; dump() would emit "null" as well.
  write_text_atomic(path, doc.dump(2) + "\n");
}

nlohmann::json read_json_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw ResultFileError("result file '" + path + "' cannot be opened");
  try {
    nlohmann::json doc;
    in >> doc;
    return doc;
  } catch (const std::exception& e) {
    throw ResultFileError("result file '" + path + "' is not valid JSON: " + e.what());
  }
}

void check_result_document(const nlohmann::json& doc, const std::string& path) {
  auto need = [&](bool ok, const std::string& what) {
    if (!ok) throw ResultFileError("result file '" + path + "': " + what);
  };
  need(doc.is_object(), "top level is not a JSON object");
  need(doc.contains("schema") && doc["schema"].is_string() && doc["schema"].get<std::string>().rfind("rbk.result/", 0) == 0,
       "field 'schema' missing or not 'rbk.result/<version>'");
  need(doc.contains("experiment") && doc["experiment"].is_string(), "field 'experiment' missing or not a string");
  need(doc.contains("context") && doc["context"].is_object(), "field 'context' missing or not an object");
  need(doc["context"].contains("git_commit") && doc["context"]["git_commit"].is_string(),
       "field 'context.git_commit' missing or not a string");
  need(doc.contains("config") && doc["config"].is_object(), "field 'config' missing or not an object");
  need(doc.contains("rows") && doc["rows"].is_array(), "field 'rows' missing or not an array");
  need(doc.contains("summary") && doc["summary"].is_object(), "field 'summary' missing or not an object");
  need(doc.contains("status") && doc["status"].is_string(), "field 'status' missing or not a string");
}

ArrayRecord make_array(std::string name, std::vector<double> values, std::string units, std::string description) {
  ArrayRecord r;
  r.name = std::move(name);
  r.shape = {static_cast<int64_t>(values.size())};
  r.values = std::move(values);
  r.units = std::move(units);
  r.description = std::move(description);
  return r;
}

ArrayRecord make_int_array(std::string name, std::vector<int64_t> values, std::string units, std::string description) {
  ArrayRecord r;
  r.name = std::move(name);
  r.shape = {static_cast<int64_t>(values.size())};
  r.int_values = std::move(values);
  r.is_integer = true;
  r.units = std::move(units);
  r.description = std::move(description);
  return r;
}

namespace {

void write_string_attribute(H5::H5Object& obj, const std::string& name, const std::string& value) {
  H5::StrType type(H5::PredType::C_S1, value.empty() ? 1 : value.size());
  H5::DataSpace scalar(H5S_SCALAR);
  H5::Attribute a = obj.createAttribute(name, type, scalar);
  a.write(type, value.empty() ? std::string(" ") : value);
}

// Creates intermediate groups for "a/b/c".
H5::Group ensure_groups(H5::H5File& file, const std::string& dataset_path) {
  H5::Group g = file.openGroup("/");
  std::string prefix;
  std::istringstream in(dataset_path);
  std::string part;
  std::vector<std::string> parts;
  while (std::getline(in, part, '/'))
    if (!part.empty()) parts.push_back(part);
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    prefix += "/" + parts[i];
    if (!file.nameExists(prefix)) file.createGroup(prefix);
  }
  return g;
}

}  // namespace

void write_hdf5_atomic(const std::string& path, const std::vector<ArrayRecord>& arrays,
                       const std::map<std::string, std::string>& root_attributes) {
  ensure_parent(path);
  const std::string tmp = temp_path_for(path);
  try {
    H5::Exception::dontPrint();
    H5::H5File file(tmp, H5F_ACC_TRUNC);
    for (const auto& [k, v] : root_attributes) {
      H5::Group root = file.openGroup("/");
      write_string_attribute(root, k, v);
    }
    for (const auto& a : arrays) {
      int64_t count = 1;
      for (auto d : a.shape) count *= d;
      const size_t have = a.is_integer ? a.int_values.size() : a.values.size();
      if (static_cast<int64_t>(have) != count)
        throw ResultFileError("array '" + a.name + "' has " + std::to_string(have) + " values for a shape of " +
                              std::to_string(count));
      ensure_groups(file, a.name);
      std::vector<hsize_t> dims(a.shape.begin(), a.shape.end());
      H5::DataSpace space(static_cast<int>(dims.size()), dims.data());
      H5::DataSet ds = file.createDataSet(a.name, a.is_integer ? H5::PredType::NATIVE_INT64 : H5::PredType::NATIVE_DOUBLE,
                                          space);
      if (count > 0) {
        if (a.is_integer) ds.write(a.int_values.data(), H5::PredType::NATIVE_INT64);
        else ds.write(a.values.data(), H5::PredType::NATIVE_DOUBLE);
      }
      write_string_attribute(ds, "units", a.units);
      write_string_attribute(ds, "description", a.description);
    }
    file.close();
  } catch (const H5::Exception& e) {
    std::remove(tmp.c_str());
    throw ResultFileError("writing HDF5 '" + path + "' failed: " + e.getDetailMsg());
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  commit_temp(tmp, path);
}

std::vector<double> read_hdf5_dataset(const std::string& path, const std::string& name, std::vector<int64_t>* shape) {
  try {
    H5::Exception::dontPrint();
    H5::H5File file(path, H5F_ACC_RDONLY);
    if (!file.nameExists(name)) throw ResultFileError("HDF5 file '" + path + "' has no dataset '" + name + "'");
    H5::DataSet ds = file.openDataSet(name);
    H5::DataSpace space = ds.getSpace();
    const int rank = space.getSimpleExtentNdims();
    std::vector<hsize_t> dims(rank);
    space.getSimpleExtentDims(dims.data());
    size_t count = 1;
    for (auto d : dims) count *= d;
    std::vector<double> out(count);
    if (count > 0) ds.read(out.data(), H5::PredType::NATIVE_DOUBLE);
    if (shape) shape->assign(dims.begin(), dims.end());
    return out;
  } catch (const H5::Exception& e) {
    throw ResultFileError("reading dataset '" + name + "' of HDF5 file '" + path + "' failed: " + e.getDetailMsg());
  }
}

std::string read_hdf5_root_attribute(const std::string& path, const std::string& name) {
  try {
    H5::Exception::dontPrint();
    H5::H5File file(path, H5F_ACC_RDONLY);
    H5::Group root = file.openGroup("/");
    if (!root.attrExists(name)) throw ResultFileError("HDF5 file '" + path + "' has no root attribute '" + name + "'");
    H5::Attribute a = root.openAttribute(name);
    std::string value;
    a.read(a.getStrType(), value);
    return value;
  } catch (const H5::Exception& e) {
    throw ResultFileError("reading attribute '" + name + "' of HDF5 file '" + path + "' failed: " + e.getDetailMsg());
  }
}

bool remove_directory_tree(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return errno == ENOENT;
  // Depth-first (children before their directory), never following symbolic links.
  auto remove_entry = [](const char* p, const struct stat*, int, struct FTW*) -> int { return ::remove(p) == 0 ? 0 : -1; };
  return ::nftw(path.c_str(), remove_entry, 16, FTW_DEPTH | FTW_PHYS) == 0;
}

}  // namespace rbk
