// The command line: the options every command takes, and each command's own. It is
// all the executable needs to parse and explain a call; what a command does is in
// pipeline/commands/ (see pipeline/stages_module.hpp for where those run).

#include "pipeline/cli.hpp"

#include "pipeline/commands/commands.hpp"

namespace eo {

namespace {

const char* kModalityHelp = "the embeddings compared: fused (default), a modality (s2rgb, s1amp, s1coh), or concat";

}  // namespace

void add_common_options(CLI::App& cmd, CommonOptions& opts) {
  cmd.add_option("CONFIG", opts.config, "YAML config; the embedded demo config when omitted")
      ->check(CLI::ExistingFile);
  cmd.add_option("--output", opts.output, "output folder (overrides the config's 'output')");
  cmd.add_flag("--print-config", opts.print_config, "print the resolved config with defaults filled in, then exit");
  auto* q = cmd.add_flag("-q,--quiet", opts.quiet, "log warnings and errors only");
  auto* v = cmd.add_flag("-v,--verbose", opts.verbose, "log debug messages too");
  q->excludes(v);
}

void add_plan_command(CLI::App& app, PlanOptions& opts) {
  auto* cmd = app.add_subcommand("plan", "plan a run: tiles, chips and km^2 per AOI and zone, and the split across ranks");
  add_common_options(*cmd, opts.common);
  cmd->add_option("--ranks", opts.ranks, "preview the split across N ranks (array tasks for slurm-array)")
      ->check(CLI::Range(1, 1000000));
  add_choice_option(*cmd, "--partition", opts.partition,
                    "partitioner for the preview (default: the config's schedule.partition)");
  add_choice_option(*cmd, "--order", opts.order, "space-filling curve (default: the config's schedule.order)");
  cmd->add_option("--tiles", opts.tiles_file, "where to write the tile list (default: OUTPUT/plan/tiles.jsonl)");
  cmd->add_flag("--json", opts.json, "print the summary as JSON on stdout");
}

void add_synth_command(CLI::App& app, SynthOptions& opts) {
  auto* cmd = app.add_subcommand("synth", "write a synthetic multi-modal world (S2, S1, coherence, labels) and its catalog");
  add_common_options(*cmd, opts.common);
  cmd->add_flag("--force", opts.force, "replace a world (its catalog and rasters) that other settings made");
  cmd->add_option("--stac-hrefs", opts.stac_hrefs,
                  "publish the STAC (and catalog) with asset hrefs under this URL, where the world is to be served "
                  "(http(s)://HOST/PATH/ or s3://BUCKET/PREFIX/; tests/support/object_store.py serves it)");
}

void add_prepare_command(CLI::App& app, PrepareOptions& opts) {
  auto* cmd = app.add_subcommand("prepare", "warp and chip every tile into HDF5 chip stores for pretraining (under mpirun)");
  add_common_options(*cmd, opts.common);
}

void add_pretrain_command(CLI::App& app, PretrainOptions& opts) {
  auto* cmd = app.add_subcommand("pretrain", "train the multi-modal CLIP/ViT on the chip stores (under mpirun)");
  add_common_options(*cmd, opts.common);
}

void add_export_command(CLI::App& app, ExportOptions& opts) {
  auto* cmd = app.add_subcommand("export", "write the model's encoders as TorchScript (torch.jit.load, model.torchscript)");
  add_common_options(*cmd, opts.common);
  cmd->add_option("--out", opts.out, "folder to write to (default OUTPUT/export/<model version>)");
}

void add_run_command(CLI::App& app, RunOptions& opts) {
  auto* cmd = app.add_subcommand("run", "embed every tile of the plan into the Zarr cube (the main job, under mpirun)");
  add_common_options(*cmd, opts.common);
  add_choice_option(*cmd, "--partition", opts.partition, "overrides schedule.partition");
  add_choice_option(*cmd, "--inputs", opts.inputs, "overrides run.inputs");
  cmd->add_flag("--json", opts.json, "print the run report as JSON at the end");
  cmd->add_flag("--verify", opts.verify, "first read back every file of every done tile (status --verify) and redo the "
                                         "tiles whose files are damaged");
}

void add_status_command(CLI::App& app, StatusOptions& opts) {
  auto* cmd = app.add_subcommand("status", "tiles done / no data / failed / pending per zone, and the failures");
  add_common_options(*cmd, opts.common);
  add_choice_option(*cmd, "--stage", opts.stage, "the job to report on (default: run)");
  cmd->add_flag("--json", opts.json, "as JSON");
  cmd->add_flag("--verify", opts.verify, "read back every file of every done tile and compare it with what the journal "
                                         "recorded (size and hash); exit 1 when one is damaged");
}

void add_todo_command(CLI::App& app, TodoOptions& opts) {
  auto* cmd = app.add_subcommand("todo", "the tiles a run would (re)compute now, and the array tasks that own them");
  add_common_options(*cmd, opts.common);
  auto* size = cmd->add_option("--array-size", opts.array_size, "tasks of the SLURM array")->check(CLI::PositiveNumber);
  cmd->add_option("--tiles-per-task", opts.tiles_per_task, "size the array from the plan: this many tiles per task")
      ->check(CLI::PositiveNumber)
      ->excludes(size);
  cmd->add_option("--max-tasks", opts.max_tasks, "at most this many tasks when sizing (default 1000)")
      ->check(CLI::PositiveNumber);
  auto* j = cmd->add_flag("--json", opts.json, "as JSON");
  cmd->add_flag("--shell", opts.shell, "as shell assignments (EO_ARRAY_SIZE, EO_TASKS, ...) for slurm/submit.sh")
      ->excludes(j);
}

void add_finalize_command(CLI::App& app, FinalizeOptions& opts) {
  auto* cmd = app.add_subcommand(
      "finalize", "after a SLURM array: clean up, write the run report, name the tasks to resubmit (exit 3)");
  add_common_options(*cmd, opts.common);
  cmd->add_option("--array-size", opts.array_size, "tasks of the SLURM array")->required()->check(CLI::PositiveNumber);
  cmd->add_option("--chain", opts.chain, "the tasks' reports to gather (default: $EO_RUN_CHAIN)");
  cmd->add_flag("--json", opts.json, "print the report as JSON");
}

void add_fewshot_command(CLI::App& app, FewshotOptions& opts) {
  auto* cmd = app.add_subcommand("fewshot", "few-shot models on the cube's embeddings against all labels and a band-statistics baseline");
  add_common_options(*cmd, opts.common);
  cmd->add_option("--cube", opts.cube, "the cube (default: run.cube, else OUTPUT/cube.zarr)");
  cmd->add_option("--labels", opts.labels,
                  "your own labels instead of the catalog's label maps: a GeoJSON of points or polygons with a value "
                  "or a class, or a label raster; writes OUTPUT/fewshot/labels-<name>/ with a map of the whole cube");
  cmd->add_option("--label-property", opts.label_property, "the GeoJSON property holding the label (default value)");
}

void add_render_command(CLI::App& app, RenderOptions& opts) {
  auto* cmd = app.add_subcommand("render", "the embeddings on their first 3 principal components as RGB maps, and a scatter");
  add_common_options(*cmd, opts.common);
  cmd->add_option("--cube", opts.cube, "the cube (default: run.cube, else OUTPUT/cube.zarr)");
  cmd->add_option("--array", opts.array, "the embeddings to draw: fused (default) or a modality's");
}

void add_similar_command(CLI::App& app, SimilarOptions& opts) {
  auto* cmd = app.add_subcommand("similar", "the chips most like a chip, a place, or a GeoJSON of example chips");
  add_common_options(*cmd, opts.common);
  cmd->add_option("--cube", opts.cube, "the cube (default: run.cube, else OUTPUT/cube.zarr)");
  auto* chip = cmd->add_option("--chip", opts.chips, "a chip id to look for (repeatable: several positives)");
  auto* at = cmd->add_option("--lonlat", opts.lonlat, "LON,LAT: the chip there");
  auto* ex = cmd->add_option("--examples", opts.examples,
                             "GeoJSON of example chips: points, polygons or \"chip\" properties; "
                             "property label: positive (default) or negative");
  chip->excludes(at)->excludes(ex);
  at->excludes(ex);
  cmd->add_option("--unlike", opts.unlike,
                  "a chip id to move away from (repeatable; with --chip or --lonlat: negatives, as in the GeoJSON)")
      ->excludes(ex);
  cmd->add_option("--modality", opts.modality, kModalityHelp);
  cmd->add_option("-k,--k", opts.k, "how many chips (default 20)")->check(CLI::PositiveNumber);
  cmd->add_flag("--index", opts.use_index, "search the index `eo-pipeline index` built (approximate; no map)");
  cmd->add_option("--nprobe", opts.nprobe, "lists an IVF index visits (default: the index's)")->check(CLI::PositiveNumber);
  cmd->add_option("--threads", opts.threads, "threads reading the cube (default: every core)")->check(CLI::PositiveNumber);
  cmd->add_option("--out", opts.out, "folder for hits.geojson and the maps (default OUTPUT/similar)");
  cmd->add_flag("--json", opts.json, "print the summary as JSON");
}

void add_index_command(CLI::App& app, IndexOptions& opts) {
  auto* cmd = app.add_subcommand("index", "build the approximate-search index (FAISS) of a cube, for `similar --index`");
  add_common_options(*cmd, opts.common);
  cmd->add_option("--cube", opts.cube, "the cube (default: run.cube, else OUTPUT/cube.zarr)");
  cmd->add_option("--modality", opts.modality, kModalityHelp);
  cmd->add_option("--factory", opts.factory,
                  "a FAISS index_factory string, or auto: Flat up to 100,000 chips, else IVF<sqrt(chips)>,SQ8");
  cmd->add_option("--nprobe", opts.nprobe, "the lists an IVF search visits by default (default: a 64th, at least 8)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--threads", opts.threads, "threads reading the cube (default: every core)")->check(CLI::PositiveNumber);
  cmd->add_flag("--json", opts.json, "print the index's card as JSON");
}

void add_serve_command(CLI::App& app, ServeOptions& opts) {
  auto* cmd = app.add_subcommand("serve", "the cube's explorer in a web browser: its map, chips, their provenance, the "
                                          "chips most like them, and few-shot maps from your labels");
  add_common_options(*cmd, opts.common);
  cmd->add_option("--cube", opts.cube, "the cube (default: run.cube, else OUTPUT/cube.zarr)");
  cmd->add_option("--host", opts.host, "the address to listen on (default 127.0.0.1: this machine only)");
  cmd->add_option("--port", opts.port, "the port (default 8765; 0: any free one)")->check(CLI::Range(0, 65535));
  cmd->add_option("--threads", opts.threads, "threads of an exact search (default: every core)")->check(CLI::PositiveNumber);
}

void add_catalog_command(CLI::App& app, CatalogOptions& opts) {
  auto* cmd = app.add_subcommand("catalog", "describe real inputs as a catalog: STAC items, the global seasonal "
                                            "coherence dataset's tiles, or a folder of rasters");
  cmd->add_option("DIR", opts.dir, "folder to scan (recursively)")->check(CLI::ExistingDirectory);
  cmd->add_option("--stac", opts.stac, "STAC ItemCollection (stac-client search --save), Item, Catalog or Collection "
                                       "JSON; repeat for several")->check(CLI::ExistingFile);
  cmd->add_option("--collections", opts.collections, "YAML mapping of other STAC collections to modalities "
                                                     "(docs/inputs.md)")->check(CLI::ExistingFile);
  add_choice_option(*cmd, "--layout", opts.layout,
                    "how DIR is laid out: files (any rasters, --modality says what they are; the default) "
                    "or global-coherence (N48W090_winter_vv_COH12.tif, ..._vh_AMP.tif)");
  cmd->add_option("--coherence", opts.coherence, "global-coherence: the coherence metric for s1coh (COH06, COH12, ...)");
  cmd->add_option("--modality", opts.modality, "what the rasters of DIR are")
      ->check(CLI::IsMember({"s2rgb", "s1amp", "s1coh", "worldcover", "treecover"}));
  cmd->add_option("--out", opts.out, "catalog file to write (JSON lines)")->required();
  cmd->add_option("--season", opts.season, "season of every raster: 0 DJF, 1 MAM, 2 JJA, 3 SON (default: from the "
                                           "file name, DJF/MAM/JJA/SON)")->check(CLI::Range(0, 3));
  cmd->add_option("--bands", opts.bands, "source bands for the modality's bands, e.g. 3,2,1 for RGB of a Landsat stack")
      ->delimiter(',');
  cmd->add_option("--variable", opts.variable, "NetCDF/HDF5 variable (subdataset) to use");
  cmd->add_option("--time", opts.time, "ISO 8601 time or interval of the rasters");
  cmd->add_option("--pattern", opts.pattern, "only files whose name matches this regular expression");
  cmd->add_flag("--append", opts.append, "add to an existing catalog instead of replacing it");
  auto* q = cmd->add_flag("-q,--quiet", opts.quiet, "log warnings and errors only");
  auto* v = cmd->add_flag("-v,--verbose", opts.verbose, "log every file considered");
  q->excludes(v);
}

}  // namespace eo
