#pragma once
// Each eo-pipeline command: its options, `add_<command>_command` (pipeline/cli.cpp: its
// part of the command line) and `run_<command>` (pipeline/commands/<command>.cpp: its set-up
// and a call), which returns the process exit code. Where each runs: stages_module.hpp.

#include <optional>
#include <vector>

#include "pipeline/cli.hpp"
#include "pipeline/core/choices.hpp"
#include "pipeline/core/config.hpp"
#include "pipeline/core/journal.hpp"

namespace eo {

// Loads and checks the config, applies the common overrides and sets up logging for
// `rank`. Returns nothing when --print-config was asked (the config is printed).
std::optional<Config> start_command(const CommonOptions& opts, int rank);

// Writes the resolved config beside a command's outputs.
void write_resolved_config(const Config& config, const std::filesystem::path& file);

struct PlanOptions {
  CommonOptions common;
  int ranks = 0;  // 0: no partition preview
  std::optional<Partition> partition;  // none: the config's
  std::optional<CurveOrder> order;     // none: the config's
  std::string tiles_file;  // empty: <output>/plan/tiles.jsonl
  bool json = false;
};
void add_plan_command(CLI::App& app, PlanOptions& opts);
int run_plan(const PlanOptions& opts);

struct SynthOptions {
  CommonOptions common;
  bool force = false;      // replace a world these settings did not make
  std::string stac_hrefs;  // the URL the world is served from, for the STAC's hrefs
};
void add_synth_command(CLI::App& app, SynthOptions& opts);
int run_synth(const SynthOptions& opts);

struct PrepareOptions {
  CommonOptions common;
};
void add_prepare_command(CLI::App& app, PrepareOptions& opts);
int run_prepare(const PrepareOptions& opts);

struct PretrainOptions {
  CommonOptions common;
};
void add_pretrain_command(CLI::App& app, PretrainOptions& opts);
int run_pretrain(const PretrainOptions& opts);

struct ExportOptions {
  CommonOptions common;
  std::string out;  // empty: OUTPUT/export/<model version>
};
void add_export_command(CLI::App& app, ExportOptions& opts);
int run_export(const ExportOptions& opts);

struct RunOptions {
  CommonOptions common;
  std::optional<Partition> partition;  // none: the config's
  std::optional<ChipSource> inputs;    // none: the config's
  bool json = false;
  bool verify = false;  // redo the done tiles whose files are damaged
};
void add_run_command(CLI::App& app, RunOptions& opts);
int run_run(const RunOptions& opts);

struct StatusOptions {
  CommonOptions common;
  JournalStage stage = JournalStage::run;
  bool json = false;
  bool verify = false;  // read back every file the journal says a done tile wrote
};
void add_status_command(CLI::App& app, StatusOptions& opts);
int run_status(const StatusOptions& opts);

// `todo` and `finalize` (slurm/): the tiles still to do and the array tasks that own them.
struct TodoOptions {
  CommonOptions common;
  int array_size = 0;      // the SLURM array's tasks; 0: from tiles_per_task
  int tiles_per_task = 0;  // sizes the array from the plan
  int max_tasks = 1000;    // SLURM's default MaxArraySize is 1001
  bool json = false, shell = false;
};
void add_todo_command(CLI::App& app, TodoOptions& opts);
int run_todo(const TodoOptions& opts);

struct FinalizeOptions {
  CommonOptions common;
  int array_size = 0;
  std::string chain;  // empty: EO_RUN_CHAIN
  bool json = false;
};
void add_finalize_command(CLI::App& app, FinalizeOptions& opts);
int run_finalize(const FinalizeOptions& opts);

struct FewshotOptions {
  CommonOptions common;
  std::string cube;    // empty: run.cube, else OUTPUT/cube.zarr
  std::string labels;  // a user's labels instead of the world's label maps
  std::string label_property = "value";
};
void add_fewshot_command(CLI::App& app, FewshotOptions& opts);
int run_fewshot(const FewshotOptions& opts);

struct RenderOptions {
  CommonOptions common;
  std::string cube;  // empty: run.cube, else OUTPUT/cube.zarr
  std::string array = "fused";
};
void add_render_command(CLI::App& app, RenderOptions& opts);
int run_render(const RenderOptions& opts);

struct SimilarOptions {
  CommonOptions common;
  std::string cube;  // empty: run.cube, else OUTPUT/cube.zarr
  std::vector<std::string> chips, unlike;
  std::string lonlat, examples;
  std::string modality = "fused";
  int k = 20;
  bool use_index = false;
  int nprobe = 0;  // 0: the index's
  int threads = 0;  // 0: every core
  std::string out;  // empty: OUTPUT/similar
  bool json = false;
};
void add_similar_command(CLI::App& app, SimilarOptions& opts);
int run_similar(const SimilarOptions& opts);

struct IndexOptions {
  CommonOptions common;
  std::string cube;
  std::string modality = "fused";
  std::string factory = "auto";
  int nprobe = 0;
  int threads = 0;
  bool json = false;
};
void add_index_command(CLI::App& app, IndexOptions& opts);
int run_index(const IndexOptions& opts);

struct ServeOptions {
  CommonOptions common;
  std::string cube;
  std::string host = "127.0.0.1";
  int port = 8765;
  int threads = 0;
};
void add_serve_command(CLI::App& app, ServeOptions& opts);
int run_serve(const ServeOptions& opts);

// How the folder `catalog` walks is laid out.
enum class FolderLayout { files, global_coherence };
template <>
struct ChoiceTable<FolderLayout> {
  static constexpr std::string_view what = "a folder layout";
  static constexpr ChoiceName<FolderLayout> names[] = {{"files", FolderLayout::files},
                                                       {"global-coherence", FolderLayout::global_coherence}};
};

struct CatalogOptions {
  std::string dir, modality, out, variable, time, pattern, coherence = "COH12", collections;
  FolderLayout layout = FolderLayout::files;
  std::vector<std::string> stac;
  int season = -1;
  std::vector<int> bands;
  bool append = false, quiet = false, verbose = false;
};
void add_catalog_command(CLI::App& app, CatalogOptions& opts);
int run_catalog(const CatalogOptions& opts);

}  // namespace eo
