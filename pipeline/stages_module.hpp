#pragma once
// The commands that run the stages (GDAL, HDF5, LibTorch, FAISS, ...) are built into a
// module, eo-pipeline-stages.so beside the executable, which the executable loads when one
// of them runs. Linked into the executable, those libraries cost every call 0.46 s and
// 170 MiB before it did anything, `--help` included (bench/startup_bench.sh): the loader
// resolving 300 libraries and LibTorch's static initialisers were most of it. `plan` and
// `status` need none of them and stay in the executable, with every command's options
// (pipeline/cli.cpp), so that a call is parsed, explained or refused without the module.

// X(command, its options): the module exports `eo_run_<command>`, which calls
// `eo::run_<command>`; the executable's `eo::run_<command>` loads the module and calls it.
#define EO_STAGES_MODULE_COMMANDS(X) \
  X(synth, SynthOptions)             \
  X(prepare, PrepareOptions)         \
  X(catalog, CatalogOptions)         \
  X(pretrain, PretrainOptions)       \
  X(export, ExportOptions)           \
  X(run, RunOptions)                 \
  X(todo, TodoOptions)               \
  X(finalize, FinalizeOptions)       \
  X(fewshot, FewshotOptions)         \
  X(render, RenderOptions)           \
  X(similar, SimilarOptions)         \
  X(index, IndexOptions)             \
  X(serve, ServeOptions)

#define EO_STAGES_MODULE_FILE "eo-pipeline-stages.so"
