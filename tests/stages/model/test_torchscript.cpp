// TorchScript: our encoders exported through the PyTorch mirror give the same embeddings
// as the C++ model, and an encoder scripted in Python (Debian's python3-torch) gives in
// C++ the embeddings Python computed, to within 1e-5.

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "stages/model/torchscript.hpp"
#include "support/run.hpp"

namespace eo {
namespace {

namespace fs = std::filesystem;
const std::string kMirror = EO_SOURCE_DIR "/stages/model/python/eo_encoder.py";

// Python: save_expected(x, encoder, path) keeps an input and the encoder's output for it
// as the buffers of a TorchScript file that C++ reads back.
const std::string kSaveExpected = R"(import torch
class Expected(torch.nn.Module):
    def __init__(self, x, y):
        super().__init__()
        self.register_buffer('x', x)
        self.register_buffer('y', y)
    def forward(self):
        return self.y
def save_expected(x, encoder, path):
    with torch.no_grad():
        torch.jit.script(Expected(x, encoder(x))).save(path)
)";

// Channel projections start at zero (the shared projection alone); drawn at random, they
// must come out of the export as they went in.
void randomise_channel_proj(ChannelEncoder& enc) {
  torch::NoGradGuard no_grad;
  if (enc->channel_proj.defined()) enc->channel_proj.normal_(0, 0.2);
}

class TorchScript : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("eo_ts_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(TorchScript, OurEncoderExportedGivesTheSameEmbeddings) {
  for (const auto& [channel_embed, channel_proj] : std::vector<std::pair<bool, bool>>{{false, false}, {true, false}, {false, true}, {true, true}}) {
    SCOPED_TRACE(fmt::format("channel embeddings {}, channel projections {}", channel_embed, channel_proj));
    torch::manual_seed(3);
    ModelConfig config = ModelConfig::from_preset(ModelPreset::nano);
    config.channel_embed = channel_embed;
    config.channel_proj = channel_proj;
    ChannelEncoder enc(config, 6);
    randomise_channel_proj(enc);
    enc->eval();
    save_encoder_for_export(enc, dir_ / "s2rgb.pkl", dir_ / "s2rgb.json");
    const auto r = test::run("/usr/bin/python3 " + kMirror + " export " + (dir_ / "s2rgb.pkl").string() + " " +
                             (dir_ / "s2rgb.json").string() + " " + (dir_ / "s2rgb.pt").string());
    ASSERT_EQ(r.code, 0) << r.output;
    ScriptedEncoder scripted(dir_ / "s2rgb.pt");
    torch::NoGradGuard no_grad;
    for (int size : {112, 224}) {  // the trained size and an interpolated one
      const auto x = torch::randn({5, 1, size, size});
      const auto channel = torch::tensor({0, 5, 2, 2, 1}, torch::kLong);
      const auto ours = enc->forward(x, channel), theirs = scripted.forward(x, channel);
      EXPECT_LE((ours - theirs).abs().max().item<float>(), 1e-5f) << size << " px";
    }
    const auto x = torch::randn({3, 6, 112, 112});
    auto mask = torch::ones({3, 6});
    mask[1][4] = 0;
    EXPECT_LE((encode_channels(enc, x, mask) - scripted.encode_channels(x, mask)).abs().max().item<float>(), 1e-5f);
  }
}

// Exported by LibTorch alone (no Python), with either pooling, with and without channel
// embeddings: the same embeddings in C++ (ScriptedEncoder), and in Python's torch.jit.load
// on an input Python drew.
TEST_F(TorchScript, ExportedByLibTorchGivesTheSameEmbeddingsInCppAndPython) {
  for (const auto& [pooling, by_channel] : std::vector<std::pair<Pooling, bool>>{{Pooling::cls, false}, {Pooling::mean, true}}) {
    SCOPED_TRACE(name_str(pooling) + (by_channel ? ", channel embeddings and projections" : ""));
    torch::manual_seed(5);
    ModelConfig config = ModelConfig::from_preset(ModelPreset::nano);
    config.pooling = pooling;
    config.channel_embed = config.channel_proj = by_channel;
    config.depth = 3;
    ChannelEncoder enc(config, 4);
    randomise_channel_proj(enc);
    enc->eval();
    const fs::path file = dir_ / ("ours_" + name_str(pooling) + ".pt");
    export_torchscript(enc, file);
    ScriptedEncoder scripted(file);
    torch::NoGradGuard no_grad;
    const auto channel = torch::tensor({3, 0, 1, 3, 2}, torch::kLong);
    for (int size : {112, 160}) {  // the trained size and an interpolated one
      const auto x = torch::randn({5, 1, size, size});
      EXPECT_LE((enc->forward(x, channel) - scripted.forward(x, channel)).abs().max().item<float>(), 1e-5f)
          << size << " px";
    }
    // Python calls it with the channels 0..3 when it has channel embeddings and projections.
    const std::string py = R"(
import sys, torch, torch.nn as nn
torch.manual_seed(1)
enc = torch.jit.load(sys.argv[1])
x = torch.randn(4, 1, 112, 112)
channel = torch.arange(4)
save_expected(x, (lambda x: enc(x, channel)) if hasattr(enc, 'channel_proj') else enc, sys.argv[2])
)";
    std::ofstream(dir_ / "run.py") << kSaveExpected << py;
    const auto r = test::run("/usr/bin/python3 " + (dir_ / "run.py").string() + " " + file.string() + " " +
                             (dir_ / "expected.pt").string());
    ASSERT_EQ(r.code, 0) << r.output;
    auto expected = torch::jit::load((dir_ / "expected.pt").string());
    const auto got = enc->forward(expected.attr("x").toTensor(), by_channel ? torch::arange(4) : torch::Tensor());
    const auto y = expected.attr("y").toTensor();
    ASSERT_EQ(got.sizes(), y.sizes());
    EXPECT_LE((got - y).abs().max().item<float>(), 1e-5f);
  }
}

TEST_F(TorchScript, EncoderScriptedInPythonRunsInCpp) {
  // Somebody's own encoder: a small CNN, scripted with its test input and output inside.
  const std::string py = R"(
import torch, torch.nn as nn
torch.manual_seed(7)
class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 8, 5, stride=2), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2), nn.ReLU(),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 32))
    def forward(self, x):
        return self.net(x)
enc = torch.jit.script(Encoder().eval())
enc.save(')" + (dir_ / "theirs.pt").string() + R"(')
x = torch.randn(4, 1, 64, 64)
save_expected(x, enc, ')" + (dir_ / "expected.pt").string() + R"(')
)";
  std::ofstream(dir_ / "make.py") << kSaveExpected << py;
  const auto r = test::run("/usr/bin/python3 " + (dir_ / "make.py").string());
  ASSERT_EQ(r.code, 0) << r.output;
  ScriptedEncoder theirs(dir_ / "theirs.pt");
  auto expected = torch::jit::load((dir_ / "expected.pt").string());
  const auto x = expected.attr("x").toTensor(), y = expected.attr("y").toTensor();
  torch::NoGradGuard no_grad;
  const auto got = theirs.forward(x, {});
  ASSERT_EQ(got.sizes(), y.sizes());
  EXPECT_LE((got - y).abs().max().item<float>(), 1e-5f);
  EXPECT_THROW(ScriptedEncoder(dir_ / "make.py"), std::runtime_error);
}

}  // namespace
}  // namespace eo
