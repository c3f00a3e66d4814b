/**
 * DPRNN inference with MindSpore Lite (cloud-side inference package, 2.x): Ascend 310 or CPU.
 *
 *   ./dprnn_310 MINDIR_PATH INPUT_DIR RESULT_DIR [--device ascend|cpu] [--device_id N]
 *               [--precision preferred_fp32|enforce_fp32|enforce_fp16|enforce_origin|preferred_optimal]
 *
 * Builds the MindIR exported by export.py (input float32 [1, L], output float32 [1, C, L]) with
 * Model::Build(path, kMindIR, context), runs every .bin file of INPUT_DIR written by
 * preprocess_310.py and writes RESULT_DIR/{name}_0.bin, the files postprocess.py reads. Prints the
 * time of each file and the total.
 *
 * Which MindIR: with --device ascend, the ascend form (export.py --export_target ascend), whose LSTMs
 * are DynamicRNN nodes, or the ONNX export converted for Ascend (scripts/convert_310.sh); with
 * --device cpu, the cpu form (--export_target cpu). Lite's Ascend converter takes no LSTM node from a
 * MindIR (no graph-engine op adapter has that name: mindir.ASCEND_CONVERTER), so the cpu form fails at
 * Model::Build on Ascend, and DynamicRNN has no CPU kernel. scripts/run_infer_310.sh checks the form
 * before it runs this app.
 *
 * Precision: --precision (default preferred_fp32) is Lite's Ascend precision mode (AscendDeviceInfo::
 * SetPrecisionMode); the ascend form casts the LSTMs' inputs to float16 itself, as DynamicRNN is
 * documented for float16 only. On CPU, enforce_fp16 turns on Lite's float16 kernels and every other
 * mode runs float32.
 */
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "include/api/context.h"
#include "include/api/model.h"
#include "include/api/status.h"
#include "include/api/types.h"

namespace ms = mindspore;

namespace {

const char kUsage[] =
    "usage: dprnn_310 MINDIR_PATH INPUT_DIR RESULT_DIR [--device ascend|cpu] [--device_id N] "
    "[--precision preferred_fp32|enforce_fp32|enforce_fp16|enforce_origin|preferred_optimal]";
const std::vector<std::string> kPrecisions = {"preferred_fp32", "enforce_fp32", "enforce_fp16", "enforce_origin",
                                              "preferred_optimal"};

struct Options {
  std::string mindir_path;
  std::string input_dir;
  std::string result_dir;
  std::string device = "ascend";
  uint32_t device_id = 0;
  std::string precision = "preferred_fp32";
};

int Fail(const std::string &message) {
  std::cerr << "error: " << message << std::endl;
  return 1;
}

bool ParseDeviceId(const std::string &text, uint32_t *device_id) {
  auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  if (text.empty() || text.size() > 4 || !std::all_of(text.begin(), text.end(), is_digit)) {
    return false;
  }
  *device_id = static_cast<uint32_t>(std::stoul(text));
  return true;
}

// Returns an empty string when the arguments are valid, else the one-line error.
std::string ParseOptions(int argc, char **argv, Options *options) {
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0) {
      positional.push_back(arg);
      continue;
    }
    if (i + 1 >= argc) {
      return arg + " needs a value; " + kUsage;
    }
    const std::string value = argv[++i];
    if (arg == "--device") {
      if (value != "ascend" && value != "cpu") {
        return "--device must be ascend or cpu, got '" + value + "'";
      }
      options->device = value;
    } else if (arg == "--device_id") {
      if (!ParseDeviceId(value, &options->device_id)) {
        return "--device_id must be a whole number such as 0, got '" + value + "'";
      }
    } else if (arg == "--precision") {
      if (std::find(kPrecisions.begin(), kPrecisions.end(), value) == kPrecisions.end()) {
        return "--precision must be preferred_fp32, enforce_fp32, enforce_fp16, enforce_origin or "
               "preferred_optimal, got '" + value + "'";
      }
      options->precision = value;
    } else {
      return "unknown option " + arg + "; " + kUsage;
    }
  }
  if (positional.size() != 3) {
    return kUsage;
  }
  options->mindir_path = positional[0];
  options->input_dir = positional[1];
  options->result_dir = positional[2];
  return "";
}

std::shared_ptr<ms::Context> MakeContext(const Options &options) {
  auto context = std::make_shared<ms::Context>();
  if (options.device == "ascend") {
    auto ascend = std::make_shared<ms::AscendDeviceInfo>();
    ascend->SetDeviceID(options.device_id);
    ascend->SetPrecisionMode(options.precision);
    context->MutableDeviceInfo().push_back(ascend);
  } else {
    auto cpu = std::make_shared<ms::CPUDeviceInfo>();
    cpu->SetEnableFP16(options.precision == "enforce_fp16");
    context->MutableDeviceInfo().push_back(cpu);
  }
  return context;
}

bool ListBins(const std::string &dir, std::vector<std::string> *files) {
  DIR *handle = opendir(dir.c_str());
  if (handle == nullptr) {
    return false;
  }
  for (dirent *entry = readdir(handle); entry != nullptr; entry = readdir(handle)) {
    std::string name = entry->d_name;
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".bin") == 0) {
      files->push_back(dir + "/" + name);
    }
  }
  closedir(handle);
  std::sort(files->begin(), files->end());
  return true;
}

bool ReadBinary(const std::string &path, std::vector<char> *data) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) {
    return false;
  }
  data->resize(static_cast<size_t>(in.tellg()));
  in.seekg(0);
  return static_cast<bool>(in.read(data->data(), static_cast<std::streamsize>(data->size())));
}

// Written under a temporary name and renamed, so a killed run never leaves a torn result file.
bool WriteBinary(const std::string &path, const void *data, size_t size) {
  const std::string partial = path + ".partial";
  {
    std::ofstream out(partial, std::ios::binary);
    out.write(static_cast<const char *>(data), static_cast<std::streamsize>(size));
    if (!out.flush()) {
      std::remove(partial.c_str());
      return false;
    }
  }
  return std::rename(partial.c_str(), path.c_str()) == 0;
}

// postprocess.py reads float32 [1, C, L] for an input of L samples: anything else is refused here,
// rather than written as a result file that would be scored as garbage. Empty when it is right.
std::string CheckOutput(const ms::MSTensor &output, size_t input_samples) {
  if (output.DataType() != ms::DataType::kNumberTypeFloat32) {
    return "the model's output is not float32";
  }
  const std::vector<int64_t> shape = output.Shape();
  if (shape.size() != 3 || shape[0] != 1 || shape[1] < 1 || shape[2] != static_cast<int64_t>(input_samples) ||
      output.DataSize() != static_cast<size_t>(shape[1]) * input_samples * sizeof(float)) {
    std::string shown;
    for (int64_t dim : shape) {
      shown += (shown.empty() ? "" : ", ") + std::to_string(dim);
    }
    return "the model's output is [" + shown + "] (" + std::to_string(output.DataSize()) + " bytes), not [1, C, " +
           std::to_string(input_samples) + "] float32";
  }
  return "";
}

std::string Stem(const std::string &path) {
  std::string name = path.substr(path.find_last_of('/') + 1);
  return name.substr(0, name.rfind('.'));
}

double MillisecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main(int argc, char **argv) {
  Options options;
  const std::string error = ParseOptions(argc, argv, &options);
  if (!error.empty()) {
    return Fail(error);
  }
  std::vector<std::string> inputs;
  if (!ListBins(options.input_dir, &inputs)) {
    return Fail(options.input_dir + ": no such folder (make the inputs with preprocess_310.py)");
  }
  if (inputs.empty()) {
    return Fail(options.input_dir + ": no .bin inputs (make them with preprocess_310.py)");
  }
  struct stat info;
  if (stat(options.mindir_path.c_str(), &info) != 0 || !S_ISREG(info.st_mode)) {
    return Fail(options.mindir_path + ": no such MindIR file (make one with export.py)");
  }
  if (mkdir(options.result_dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return Fail(options.result_dir + ": cannot create the result folder (" + std::strerror(errno) + ")");
  }

  ms::Model model;
  ms::Status status = model.Build(options.mindir_path, ms::ModelType::kMindIR, MakeContext(options));
  if (status != ms::kSuccess) {
    const std::string where = options.device == "ascend" ? "Ascend device " + std::to_string(options.device_id)
                                                         : std::string("CPU");
    const std::string form = options.device == "ascend" ? "ascend" : "cpu";
    return Fail("building " + options.mindir_path + " for " + where + " failed (" + status.ToString() +
                "): is it the " + form + " form (python export.py --export_target " + form +
                "), and are LITE_HOME's runtime libraries on LD_LIBRARY_PATH?");
  }
  std::vector<ms::MSTensor> model_inputs = model.GetInputs();
  if (model_inputs.size() != 1) {
    return Fail(options.mindir_path + ": expected a model with one input, found " +
                std::to_string(model_inputs.size()));
  }
  ms::MSTensor &input = model_inputs[0];
  if (input.DataType() != ms::DataType::kNumberTypeFloat32) {
    return Fail(options.mindir_path + ": the model's input is not float32: export it again with export.py");
  }
  const size_t input_bytes = input.DataSize();

  auto total_start = std::chrono::steady_clock::now();
  for (const std::string &path : inputs) {
    std::vector<char> data;
    if (!ReadBinary(path, &data)) {
      return Fail(path + ": cannot read");
    }
    if (data.size() != input_bytes) {
      return Fail(path + ": " + std::to_string(data.size()) + " bytes, but the model's input takes " +
                  std::to_string(input_bytes) + ": preprocess with the export_length of the MindIR");
    }
    void *input_data = input.MutableData();
    if (input_data == nullptr) {
      return Fail("cannot allocate the model's input buffer");
    }
    std::memcpy(input_data, data.data(), data.size());
    std::vector<ms::MSTensor> outputs;
    auto start = std::chrono::steady_clock::now();
    status = model.Predict(model_inputs, &outputs);
    if (status != ms::kSuccess || outputs.size() != 1) {
      return Fail(path + ": prediction failed (" + status.ToString() + ")");
    }
    const std::string problem = CheckOutput(outputs[0], input_bytes / sizeof(float));
    if (!problem.empty()) {
      return Fail(options.mindir_path + ": " + problem + ": export it again with export.py");
    }
    const std::string out_path = options.result_dir + "/" + Stem(path) + "_0.bin";
    std::shared_ptr<const void> output = outputs[0].Data();
    if (output == nullptr || !WriteBinary(out_path, output.get(), outputs[0].DataSize())) {
      return Fail(out_path + ": cannot write (disk full?)");
    }
    std::cout << Stem(path) << ".bin: " << MillisecondsSince(start) << " ms" << std::endl;
  }
  std::cout << "The total run time is: " << MillisecondsSince(total_start) << " ms" << std::endl;
  return 0;
}
