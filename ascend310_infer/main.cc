/**
 * DPRNN inference on Ascend 310 with MindSpore's C++ inference API.
 *
 *   ./dprnn_310 MINDIR_PATH INPUT_DIR [RESULT_DIR] [DEVICE_ID]
 *
 * Loads the MindIR exported by export.py (input float32 [1, L], output float32 [1, C, L]), runs
 * every INPUT_DIR/*.bin written by preprocess_310.py and writes RESULT_DIR/{name}_0.bin (default
 * ./result_Files), the files postprocess.py reads. Prints the time of each file and the total.
 */
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "include/api/context.h"
#include "include/api/model.h"
#include "include/api/serialization.h"
#include "include/api/status.h"
#include "include/api/types.h"

namespace ms = mindspore;

namespace {

int Fail(const std::string &message) {
  std::cerr << "error: " << message << std::endl;
  return 1;
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

bool WriteBinary(const std::string &path, const void *data, size_t size) {
  std::ofstream out(path, std::ios::binary);
  out.write(static_cast<const char *>(data), static_cast<std::streamsize>(size));
  return static_cast<bool>(out);
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
  if (argc < 3) {
    return Fail("usage: dprnn_310 MINDIR_PATH INPUT_DIR [RESULT_DIR] [DEVICE_ID]");
  }
  const std::string mindir_path = argv[1];
  const std::string input_dir = argv[2];
  const std::string result_dir = argc > 3 ? argv[3] : "./result_Files";
  const uint32_t device_id = argc > 4 ? static_cast<uint32_t>(std::stoul(argv[4])) : 0;

  std::vector<std::string> inputs;
  if (!ListBins(input_dir, &inputs)) {
    return Fail(input_dir + ": no such folder (make the inputs with preprocess_310.py)");
  }
  if (inputs.empty()) {
    return Fail(input_dir + ": no .bin inputs (make them with preprocess_310.py)");
  }
  if (mkdir(result_dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return Fail(result_dir + ": cannot create the result folder");
  }

  auto context = std::make_shared<ms::Context>();
  auto ascend310 = std::make_shared<ms::Ascend310DeviceInfo>();
  ascend310->SetDeviceID(device_id);
  context->MutableDeviceInfo().push_back(ascend310);

  ms::Graph graph;
  ms::Status status = ms::Serialization::Load(mindir_path, ms::ModelType::kMindIR, &graph);
  if (status != ms::kSuccess) {
    return Fail(mindir_path + ": cannot load the MindIR (" + status.ToString() + ")");
  }
  ms::Model model;
  status = model.Build(ms::GraphCell(graph), context);
  if (status != ms::kSuccess) {
    return Fail("building the model for Ascend 310 device " + std::to_string(device_id) + " failed (" +
                status.ToString() + ")");
  }
  std::vector<ms::MSTensor> model_inputs = model.GetInputs();
  if (model_inputs.size() != 1) {
    return Fail(mindir_path + ": expected a model with one input, found " + std::to_string(model_inputs.size()));
  }
  const size_t input_bytes = model_inputs[0].DataSize();

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
    std::vector<ms::MSTensor> feed = {ms::MSTensor(model_inputs[0].Name(), model_inputs[0].DataType(),
                                                   model_inputs[0].Shape(), data.data(), data.size())};
    std::vector<ms::MSTensor> outputs;
    auto start = std::chrono::steady_clock::now();
    status = model.Predict(feed, &outputs);
    if (status != ms::kSuccess || outputs.empty()) {
      return Fail(path + ": prediction failed (" + status.ToString() + ")");
    }
    const std::string out_path = result_dir + "/" + Stem(path) + "_0.bin";
    if (!WriteBinary(out_path, outputs[0].Data().get(), outputs[0].DataSize())) {
      return Fail(out_path + ": cannot write (disk full?)");
    }
    std::cout << Stem(path) << ".bin: " << MillisecondsSince(start) << " ms" << std::endl;
  }
  std::cout << "The total run time is: " << MillisecondsSince(total_start) << " ms" << std::endl;
  return 0;
}
