// End-to-end runs of the trainer on a small synthetic data set and a tiny ViT: the run
// directory's contents, bit-identical resume after a stop, divergence, and bad input that
// must leave nothing behind.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "core/safetensors.h"
#include "train/config.h"
#include "train/run_support.h"
#include "layers/quant.h"
#include "train/trainer.h"

namespace qilin {
namespace {

const char* kTinyRun = R"(
run: {name: tiny, seed: 3}
model: {arch: vit, img_size: 8, in_chans: 1, num_classes: 4, patch_size: 4, embed_dim: 16, depth: 1, num_heads: 2}
data:
  dataset: synthetic
  val_size: 64
  batch_size: 32
  eval_batch_size: 64
  synthetic_train_size: 320
  synthetic_test_size: 128
optim: {name: adamw, lr: 5.0e-3, weight_decay: 0.05, epochs: 4, schedule: cosine, warmup_steps: 2, ema_decay: 0.9, clip_grad_norm: 1.0}
checkpoint: {every_epochs: 1}
log: {every_steps: 4, progress: lines}
)";

class TrainerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = (std::filesystem::temp_directory_path() /
             ("qilin_trainer_" + std::to_string(getpid()) + "_" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name()))
                .string();
    std::filesystem::create_directories(root_);
    clear_stop_request();
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  Config config(std::vector<std::string> overrides = {}) {
    overrides.push_back("run.out_dir=" + root_);
    return load_config_text(kTinyRun, "tiny.yaml", overrides);
  }

  // Trains the fp32 ResNet-20 (BatchNorm everywhere) for two epochs, then runs PTQ of its last
  // checkpoint with QFP8 e4m3 and 3 calibration batches plus `ptq_options`.
  RunOutcome resnet_ptq(const std::vector<std::string>& ptq_options) {
    RunOutcome fp32 = run_training(config(kResnet));
    EXPECT_EQ(fp32.exit_code(), 0);
    fp32_test_acc_ = fp32.test_acc;
    fp32_init_ = (std::filesystem::path(fp32.run_dir) / "ckpt_last.safetensors").string();
    std::vector<std::string> ptq = kResnet;
    for (const char* o : {"run.mode=ptq", "quant.format=qfp8", "quant.layout=e4m3", "calibrate.batches=3"})
      ptq.push_back(o);
    ptq.insert(ptq.end(), ptq_options.begin(), ptq_options.end());
    ptq.push_back("checkpoint.init_from=" + fp32_init_);
    return run_training(config(ptq));
  }

  // The overrides of run.mode eval of a packed checkpoint under resnet_ptq's quant section plus
  // `extra` (checkpoint.init_from last).
  std::vector<std::string> packed_eval(const std::string& packed, const std::string& name,
                                       const std::vector<std::string>& extra = {}) {
    std::vector<std::string> eval = kResnet;
    for (const char* o : {"run.mode=eval", "quant.format=qfp8", "quant.layout=e4m3"}) eval.push_back(o);
    eval.push_back("run.name=" + name);
    eval.insert(eval.end(), extra.begin(), extra.end());
    eval.push_back("checkpoint.init_from=" + packed);
    return eval;
  }

  const std::vector<std::string> kResnet = {"model.arch=resnet20", "optim.epochs=2", "optim.ema_decay=0"};
  double fp32_test_acc_ = 0;  // of resnet_ptq's fp32 run
  std::string fp32_init_;     // its last checkpoint

  std::string root_;
};

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

// A resumed run ended exactly where the uninterrupted one did: the same last checkpoint, bit
// for bit, and the same test metrics.
void expect_same_run(const RunOutcome& whole, const RunOutcome& resumed) {
  SafetensorsContents a = load_safetensors(whole.run_dir + "/ckpt_last.safetensors");
  SafetensorsContents b = load_safetensors(resumed.run_dir + "/ckpt_last.safetensors");
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    ASSERT_EQ(a.tensors[i].first, b.tensors[i].first);
    EXPECT_EQ(0, std::memcmp(a.tensors[i].second.raw_data(), b.tensors[i].second.raw_data(),
                             a.tensors[i].second.nbytes()))
        << a.tensors[i].first << " differs after resume";
  }
  EXPECT_EQ(whole.test_acc, resumed.test_acc);
  EXPECT_EQ(whole.test_loss, resumed.test_loss);
}

TEST_F(TrainerTest, ARunLearnsAndWritesItsDirectory) {
  RunOutcome out = run_training(config());
  EXPECT_EQ(out.exit_code(), 0);
  const std::filesystem::path dir = out.run_dir;
  for (const char* f : {"config.yaml", "metrics.jsonl", "summary.json", "ckpt_last.safetensors",
                        "ckpt_last.trainer.safetensors", "ckpt_best.safetensors", "ckpt_epoch_1.safetensors",
                        "ckpt_epoch_2.safetensors"})
    EXPECT_TRUE(std::filesystem::exists(dir / f)) << f;
  // Each synthetic class brightens its own pixel pattern: four epochs learn them well past
  // chance (25%).
  EXPECT_GT(out.test_acc, 0.6);
  nlohmann::json summary = read_json((dir / "summary.json").string());
  EXPECT_EQ(summary["status"], "finished");
  EXPECT_EQ(summary["steps"], 32);  // 256 train images / 32 per batch x 4 epochs
  EXPECT_NE(summary["layers"]["blocks.0.mlp.act"].get<std::string>().find("GELU"), std::string::npos);
  // The resolved config reloads to the same config.
  EXPECT_TRUE(load_config((dir / "config.yaml").string()) == config());
  // metrics.jsonl: a train line every 4 steps, a val line per epoch, one test line.
  std::ifstream metrics(dir / "metrics.jsonl");
  int train = 0, val = 0, test = 0;
  for (std::string line; std::getline(metrics, line);) {
    std::string split = nlohmann::json::parse(line)["split"];
    train += split == "train";
    val += split == "val";
    test += split == "test";
  }
  EXPECT_EQ(train, 8);
  EXPECT_EQ(val, 4);
  EXPECT_EQ(test, 1);
}

TEST_F(TrainerTest, ResumeAfterAStopIsBitIdenticalToAnUninterruptedRun) {
  // With crops, flips, mixup/cutmix and dropout: every random stream of the run must resume where it
  // stopped.
  const std::string crop =
      "data.transforms={random_crop: {padding: 1}, hflip: true, mixup_alpha: 0.4, cutmix_alpha: 1.0}";
  const std::string drop = "model.drop_rate=0.1";
  RunOutcome whole = run_training(config({"run.name=whole", crop, drop}));
  ASSERT_EQ(whole.exit_code(), 0);

  request_stop();  // stops after the first step, writing ckpt_last
  RunOutcome stopped = run_training(config({"run.name=resumed", crop, drop}));
  EXPECT_EQ(stopped.exit_code(), 130);
  EXPECT_EQ(read_json(stopped.run_dir + "/summary.json")["steps"], 1);
  clear_stop_request();
  RunOutcome resumed = run_training(config({"run.name=resumed", crop, drop}));  // resume: auto
  ASSERT_EQ(resumed.exit_code(), 0);

  expect_same_run(whole, resumed);
}

TEST_F(TrainerTest, QatResumesWithItsQuantizersStateBitIdentically) {
  // The activation biases freeze at step 4 (calibrated on steps 3-4), inside epoch 1: a run
  // that ends after epoch 1 and is then continued to epoch 2 from its ckpt_last must carry
  // the frozen biases over (they are not in the model's state dict) and end where an
  // uninterrupted two-epoch run ends. A constant schedule, so the shorter run's learning
  // rates are the longer one's.
  const std::vector<std::string> qat = {"run.mode=qat", "quant.format=qfp8", "quant.freeze_bias_after=2",
                                        "calibrate.batches=2", "optim.schedule=constant",
                                        "optim.warmup_steps=0", "optim.ema_decay=0"};
  const auto with = [&](std::vector<std::string> extra) {
    extra.insert(extra.end(), qat.begin(), qat.end());
    return config(extra);
  };
  RunOutcome whole = run_training(with({"run.name=whole", "optim.epochs=2"}));
  ASSERT_EQ(whole.exit_code(), 0);
  RunOutcome first = run_training(with({"run.name=resumed", "optim.epochs=1"}));
  ASSERT_EQ(first.exit_code(), 0);
  SafetensorsContents state = load_safetensors(first.run_dir + "/ckpt_last.trainer.safetensors");
  Tensor mode = state.find("quant.blocks.0.mlp.fc1.input.mode");
  ASSERT_TRUE(mode.defined());
  EXPECT_EQ(mode.data<int32_t>()[0], static_cast<int32_t>(ActivationMode::kFrozen));
  RunOutcome resumed = run_training(with({"run.name=resumed", "optim.epochs=2"}));  // resume: auto
  ASSERT_EQ(resumed.exit_code(), 0);

  expect_same_run(whole, resumed);
}

TEST_F(TrainerTest, AQatRunResumingATrainingCheckpointNamesTheFileAndTheMissingState) {
  RunOutcome fp32 = run_training(config({"run.name=mixed", "optim.epochs=1"}));
  ASSERT_EQ(fp32.exit_code(), 0);
  try {
    run_training(config({"run.name=mixed", "run.mode=qat", "quant.format=qfp8", "calibrate.batches=2", "optim.epochs=2"}));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("mixed/ckpt_last.trainer.safetensors (not written by a qat run?)"), std::string::npos) << msg;
    EXPECT_NE(msg.find("missing quant.patch_embed.proj.input.mode"), std::string::npos) << msg;
  }
}

TEST_F(TrainerTest, ADivergingRunStopsAndKeepsNoBadCheckpoint) {
  RunOutcome out = run_training(config({"optim.lr=1.0e+30", "optim.clip_grad_norm=0", "optim.warmup_steps=0"}));
  EXPECT_EQ(out.exit_code(), 3);
  nlohmann::json summary = read_json(out.run_dir + "/summary.json");
  EXPECT_EQ(summary["status"], "diverged");
  // Whatever checkpoint exists was written before the bad step: its weights are finite.
  if (std::filesystem::exists(out.run_dir + "/ckpt_last.safetensors")) {
    for (auto& [name, t] : load_safetensors(out.run_dir + "/ckpt_last.safetensors").tensors) {
      if (t.dtype() != DType::kFloat32) continue;
      for (float v : t.to_vector()) ASSERT_TRUE(std::isfinite(v)) << name;
    }
  }
}

TEST_F(TrainerTest, AMissingDataSetIsAnErrorBeforeAnythingIsWritten) {
  Config c = config({"data.dataset=fashion_mnist", "data.root=/nonexistent/qilin-data",
                     "model.img_size=28", "model.patch_size=4", "model.num_classes=10",
                     "data.val_size=5000"});
  try {
    run_training(c);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/qilin-data"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(run_directory(c)));
}

// CIFAR-10 binary batches: records of 1 label byte + 3072 pixel bytes. Class k's images
// are bright in channel k % 3, so a few steps learn something.
void write_cifar_batch(const std::string& path, int64_t records, uint8_t seed) {
  std::ofstream out(path, std::ios::binary);
  for (int64_t r = 0; r < records; ++r) {
    const uint8_t label = static_cast<uint8_t>((r * 7 + seed) % 10);
    out.put(static_cast<char>(label));
    for (int64_t i = 0; i < 3072; ++i) {
      const bool bright = i / 1024 == label % 3;
      out.put(static_cast<char>((bright ? 160 : 40) + (i * 13 + r * 5 + seed) % 64));
    }
  }
}

TEST_F(TrainerTest, TrainsOnCifar10BinaryBatchesWithAugmentation) {
  const std::string dir = root_ + "/cifar";
  std::filesystem::create_directories(dir);
  for (int b = 1; b <= 5; ++b) write_cifar_batch(dir + "/data_batch_" + std::to_string(b) + ".bin", 40, b);
  write_cifar_batch(dir + "/test_batch.bin", 50, 9);
  RunOutcome out = run_training(config(
      {"data.dataset=cifar10", "data.root=" + dir, "model.img_size=32", "model.in_chans=3",
       "model.num_classes=10", "model.patch_size=8", "data.val_size=40", "data.eval_batch_size=25",
       "data.transforms={random_crop: {padding: 4}, hflip: true, mixup_alpha: 0.2}", "optim.epochs=2"}));
  EXPECT_EQ(out.exit_code(), 0);
  nlohmann::json summary = read_json(out.run_dir + "/summary.json");
  EXPECT_EQ(summary["steps"], 10);  // (200 - 40) / 32 = 5 steps per epoch
  EXPECT_EQ(summary["finished"], true);
  // The test set is all 50 records of test_batch.bin.
  std::ifstream metrics(out.run_dir + "/metrics.jsonl");
  std::string line, last;
  while (std::getline(metrics, line)) last = line;
  EXPECT_NE(last.find("\"split\":\"test\""), std::string::npos) << last;
}

// <root>/{train,test}/<class>/<n>.png, images of varying sizes.
void write_image_folder(const std::string& root, int per_class) {
  for (const char* split : {"train", "test"}) {
    for (int k = 0; k < 4; ++k) {
      const std::string dir = root + "/" + split + "/class" + std::to_string(k);
      std::filesystem::create_directories(dir);
      for (int i = 0; i < per_class; ++i) {
        cv::Mat m(10 + i % 5, 12 + i % 3, CV_8UC3, cv::Scalar(40, 40, 40));
        m.setTo(cv::Scalar(k == 0 ? 220 : 40, k == 1 ? 220 : 40, k == 2 ? 220 : 40));
        ASSERT_TRUE(cv::imwrite(dir + "/" + std::to_string(i) + ".png", m));
      }
    }
  }
}

TEST_F(TrainerTest, TrainsOnAnImageFolderWithResizedCrops) {
  const std::string dir = root_ + "/folder";
  write_image_folder(dir, 12);
  RunOutcome out = run_training(config(
      {"data.dataset=image_folder", "data.root=" + dir, "model.in_chans=3", "data.val_size=8",
       "data.batch_size=8", "data.transforms={random_resized_crop: true, resize: 8, hflip: true}",
       "optim.epochs=2", "optim.warmup_steps=1"}));
  EXPECT_EQ(out.exit_code(), 0);
  nlohmann::json summary = read_json(out.run_dir + "/summary.json");
  EXPECT_EQ(summary["steps"], 10);  // (48 - 8) / 8 = 5 steps per epoch
}

TEST_F(TrainerTest, AnUnreadableImageNamesTheFileAndLeavesNoRunDirectory) {
  const std::string dir = root_ + "/folder";
  write_image_folder(dir, 12);
  const std::string bad = dir + "/train/class2/5.png";
  { std::ofstream(bad, std::ios::binary | std::ios::trunc) << "not a PNG at all"; }
  Config c = config({"data.dataset=image_folder", "data.root=" + dir, "model.in_chans=3",
                     "data.val_size=8", "data.batch_size=8", "data.transforms={resize: 8}"});
  try {
    run_training(c);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(run_directory(c)));
}

TEST_F(TrainerTest, ImagesOfVaryingSizeWithoutAResizeAreAConfigError) {
  const std::string dir = root_ + "/folder";
  write_image_folder(dir, 2);
  Config c = config({"data.dataset=image_folder", "data.root=" + dir, "model.in_chans=3", "data.val_size=2"});
  try {
    run_training(c);
    FAIL() << "expected an error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("data.transforms.resize"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(run_directory(c)));
}

TEST_F(TrainerTest, PtqQuantizesCalibratesBatchNormExportsPackedAndThePackedFileEvaluatesTheSame) {
  // An fp32 ResNet-20 (BatchNorm everywhere) trained for two epochs, then PTQ with BN
  // re-estimation: the report has the three accuracies, the packed checkpoint loads into an
  // eval run that reproduces the quantized model's test accuracy and loss exactly.
  RunOutcome out = resnet_ptq({"run.name=ptq", "calibrate.bn=true"});
  const std::vector<std::string>& resnet = kResnet;
  const std::string& init = fp32_init_;
  ASSERT_EQ(out.exit_code(), 0);
  const std::filesystem::path dir = out.run_dir;
  nlohmann::json summary = read_json((dir / "summary.json").string());
  for (const char* stage : {"fp32", "quantized", "quantized_bn_calibrated"})
    EXPECT_TRUE(summary["ptq"].contains(stage)) << stage << "\n" << summary.dump(1);
  EXPECT_EQ(summary["ptq"]["calibration_batches"], 3);
  EXPECT_EQ(summary["ptq"]["bn_batches"], 3);
  EXPECT_DOUBLE_EQ(summary["ptq"]["fp32"]["test_acc"].get<double>(), fp32_test_acc_);
  EXPECT_DOUBLE_EQ(summary["test_acc"].get<double>(), summary["ptq"]["quantized_bn_calibrated"]["test_acc"].get<double>());
  // Per-layer SQNR with each quantized evaluation: every quantized layer, finite weight and
  // input figures in a plausible range for e4m3 (weights ~31 dB on Gaussians).
  size_t quantized_layers = 0;
  for (auto& [path, impl] : summary["layers"].items())
    quantized_layers += impl.get<std::string>().rfind("Quant", 0) == 0;
  ASSERT_GT(quantized_layers, 0u);
  for (const char* stage : {"quantized", "quantized_bn_calibrated"}) {
    const nlohmann::json& sqnr = summary["ptq"][stage]["sqnr_db"];
    EXPECT_EQ(sqnr.size(), quantized_layers) << stage;
    for (auto& [path, r] : sqnr.items()) {
      ASSERT_TRUE(r["weight"].is_number() && r["input"].is_number()) << stage << " " << path << ": " << r;
      EXPECT_GT(r["weight"].get<double>(), 20.0) << path;
      EXPECT_LT(r["weight"].get<double>(), 45.0) << path;
      EXPECT_GT(r["input"].get<double>(), 15.0) << path;
    }
  }
  const std::string layer = summary["layers"]["layer1.0.conv1"];
  EXPECT_NE(layer.find("QuantConv2d"), std::string::npos) << layer;
  EXPECT_NE(layer.find("qfp8 e4m3 per_channel mse (frozen"), std::string::npos) << layer;
  // BN statistics were re-estimated: an exact average over the calibration batches.
  const std::filesystem::path packed = dir / "ckpt_quant.safetensors";
  ASSERT_TRUE(std::filesystem::exists(packed));
  SafetensorsContents contents = load_safetensors(packed.string());
  Tensor tracked = contents.find("layer1.0.bn1.num_batches_tracked");
  ASSERT_TRUE(tracked.defined());
  EXPECT_EQ(tracked.data<int64_t>()[0], 3);
  EXPECT_TRUE(contents.find("layer1.0.conv1.weight.qcodes").defined());
  EXPECT_EQ(contents.find("layer1.0.conv1.weight.qcodes").dtype(), DType::kUInt8);

  std::vector<std::string> eval = packed_eval(packed.string(), "eval_packed");
  RunOutcome again = run_training(config(eval));
  ASSERT_EQ(again.exit_code(), 0);
  EXPECT_EQ(again.test_acc, out.test_acc);
  EXPECT_EQ(again.test_loss, out.test_loss);
  // A packed file without the quant section, and fp32 weights under eval with quant, are refused.
  std::vector<std::string> plain = resnet;
  plain.push_back("run.mode=eval");
  plain.push_back("checkpoint.init_from=" + packed.string());
  EXPECT_THROW(run_training(config(plain)), ConfigError);
  eval.back() = "checkpoint.init_from=" + init;
  EXPECT_THROW(run_training(config(eval)), ConfigError);
}

TEST_F(TrainerTest, PtqWithFoldedBatchNormExportsConvBiasesAndThePackedFileEvaluatesTheSame) {
  // quant.fold_bn (DESIGN.md §4.3): the fp32 accuracy is the unfolded model's, every BN of
  // ResNet-20 is folded into its conv before the weights are quantized, the packed file holds
  // conv biases and no BN tensor, and an eval run with the same quant section reproduces the
  // quantized model's test accuracy and loss exactly.
  RunOutcome out = resnet_ptq({"run.name=ptq_fold", "quant.fold_bn=true"});
  ASSERT_EQ(out.exit_code(), 0);
  const std::filesystem::path dir = out.run_dir;
  nlohmann::json summary = read_json((dir / "summary.json").string());
  EXPECT_EQ(summary["ptq"]["fold_bn"], 21) << summary["ptq"].dump(1);  // stem, 9 x 2, 2 downsamples
  EXPECT_FALSE(summary["ptq"].contains("quantized_bn_calibrated"));
  EXPECT_DOUBLE_EQ(summary["ptq"]["fp32"]["test_acc"].get<double>(), fp32_test_acc_);
  EXPECT_DOUBLE_EQ(summary["test_acc"].get<double>(), summary["ptq"]["quantized"]["test_acc"].get<double>());
  const std::string conv = summary["layers"]["layer1.0.conv1"], bn = summary["layers"]["layer1.0.bn1"];
  EXPECT_NE(conv.find("QuantConv2d"), std::string::npos) << conv;
  EXPECT_NE(conv.find("bias, BN folded"), std::string::npos) << conv;
  EXPECT_NE(bn.find("folded"), std::string::npos) << bn;

  const std::filesystem::path packed = dir / "ckpt_quant.safetensors";
  ASSERT_TRUE(std::filesystem::exists(packed));
  SafetensorsContents contents = load_safetensors(packed.string());
  EXPECT_EQ(contents.metadata["qilin.fold_bn"], "21");
  EXPECT_TRUE(contents.find("conv1.bias").defined());
  EXPECT_TRUE(contents.find("layer2.0.downsample.0.bias").defined());
  EXPECT_TRUE(contents.find("layer1.0.conv1.weight.qcodes").defined());
  for (const auto& [name, t] : contents.tensors) {
    EXPECT_EQ(name.find("bn"), std::string::npos) << name;
    EXPECT_EQ(name.find("downsample.1"), std::string::npos) << name;
  }

  std::vector<std::string> eval = packed_eval(packed.string(), "eval_fold", {"quant.fold_bn=true"});
  RunOutcome again = run_training(config(eval));
  ASSERT_EQ(again.exit_code(), 0);
  EXPECT_EQ(again.test_acc, out.test_acc);
  EXPECT_EQ(again.test_loss, out.test_loss);
  // The folded file under a quant section without fold_bn is refused, naming the key.
  eval[eval.size() - 2] = "quant.fold_bn=false";
  eval.push_back("run.name=eval_unfolded");
  try {
    run_training(config(eval));
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("quant.fold_bn"), std::string::npos) << e.what();
  }
}

TEST_F(TrainerTest, QatFineTunesWithFakeQuantFreezesBiasesAndBatchNormAndExportsWhatItEvaluated) {
  const std::vector<std::string> resnet = {"model.arch=resnet20", "optim.epochs=2", "optim.ema_decay=0"};
  RunOutcome fp32 = run_training(config(resnet));
  ASSERT_EQ(fp32.exit_code(), 0);
  const std::string init = (std::filesystem::path(fp32.run_dir) / "ckpt_last.safetensors").string();
  std::vector<std::string> qat = resnet;
  for (const char* o : {"run.mode=qat", "run.name=qat", "quant.format=int8", "quant.freeze_bias_after=3",
                        "quant.freeze_bn_after=1", "calibrate.batches=2", "optim.lr=1.0e-3"})
    qat.push_back(o);
  qat.push_back("checkpoint.init_from=" + init);
  RunOutcome out = run_training(config(qat));
  ASSERT_EQ(out.exit_code(), 0);
  EXPECT_GT(out.test_acc, 0.6);  // the synthetic classes stay learned under int8 fake quantization
  const std::filesystem::path dir = out.run_dir;
  nlohmann::json summary = read_json((dir / "summary.json").string());
  const std::string layer = summary["layers"]["layer1.0.conv1"];
  EXPECT_NE(layer.find("QuantConv2d"), std::string::npos) << layer;
  EXPECT_NE(layer.find("int8"), std::string::npos) << layer;
  EXPECT_NE(layer.find("frozen"), std::string::npos) << layer;
  // BatchNorm statistics: 2 fp32 epochs of 8 steps, then one QAT epoch that updates them and
  // one (freeze_bn_after = 1) that does not.
  SafetensorsContents packed = load_safetensors((dir / "ckpt_quant.safetensors").string());
  Tensor tracked = packed.find("layer1.0.bn1.num_batches_tracked");
  ASSERT_TRUE(tracked.defined());
  EXPECT_EQ(tracked.data<int64_t>()[0], 16 + 8);
  // The packed checkpoint is the model that was tested.
  std::vector<std::string> eval = resnet;
  for (const char* o : {"run.mode=eval", "run.name=eval_qat", "quant.format=int8"}) eval.push_back(o);
  eval.push_back("checkpoint.init_from=" + (dir / "ckpt_quant.safetensors").string());
  RunOutcome again = run_training(config(eval));
  ASSERT_EQ(again.exit_code(), 0);
  EXPECT_EQ(again.test_acc, out.test_acc);
  EXPECT_EQ(again.test_loss, out.test_loss);
}

}  // namespace
}  // namespace qilin
