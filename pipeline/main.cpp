#include <malloc.h>

#include <cstdio>
#include <exception>

#include "pipeline/commands/commands.hpp"
#include "pipeline/core/config.hpp"
#include "pipeline/core/error.hpp"
#include "schedulers/comm.hpp"

int main(int argc, char** argv) {
  // A fixed mmap threshold: buffers of 256 KiB and more (GDAL's cached blocks, warp and
  // composite buffers, all churned scene after scene) are mapped and given back when
  // freed. glibc's default raises the threshold after the first such free and keeps
  // them in the heap, where they fragmented it: a rank compositing 10 scenes per season
  // peaked at 1.3 GB for a 256 MB block cache, 0.7 GB with this (bench/composite_memory.sh).
  mallopt(M_MMAP_THRESHOLD, 256 * 1024);
  eo::MpiSession mpi(argc, argv);
  CLI::App app{"eo-pipeline: multi-modal Earth-observation embeddings over planetary-scale areas"};
  app.set_version_flag("--version", "eo-pipeline " EO_VERSION);
  app.require_subcommand(1);

  eo::PlanOptions plan;
  eo::add_plan_command(app, plan);
  eo::SynthOptions synth;
  eo::add_synth_command(app, synth);
  eo::PrepareOptions prepare;
  eo::add_prepare_command(app, prepare);
  eo::PretrainOptions pretrain;
  eo::add_pretrain_command(app, pretrain);
  eo::ExportOptions export_opts;
  eo::add_export_command(app, export_opts);
  eo::RunOptions run;
  eo::add_run_command(app, run);
  eo::StatusOptions status;
  eo::add_status_command(app, status);
  eo::TodoOptions todo;
  eo::add_todo_command(app, todo);
  eo::FinalizeOptions finalize;
  eo::add_finalize_command(app, finalize);
  eo::FewshotOptions fewshot;
  eo::add_fewshot_command(app, fewshot);
  eo::RenderOptions render;
  eo::add_render_command(app, render);
  eo::CatalogOptions catalog;
  eo::add_catalog_command(app, catalog);
  eo::SimilarOptions similar;
  eo::add_similar_command(app, similar);
  eo::IndexOptions index;
  eo::add_index_command(app, index);
  eo::ServeOptions serve;
  eo::add_serve_command(app, serve);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return eo::kExitUsage;
  }

  try {
    if (app.got_subcommand("plan")) return eo::run_plan(plan);
    if (app.got_subcommand("synth")) return eo::run_synth(synth);
    if (app.got_subcommand("prepare")) return eo::run_prepare(prepare);
    if (app.got_subcommand("catalog")) return eo::run_catalog(catalog);
    if (app.got_subcommand("pretrain")) return eo::run_pretrain(pretrain);
    if (app.got_subcommand("export")) return eo::run_export(export_opts);
    if (app.got_subcommand("run")) return eo::run_run(run);
    if (app.got_subcommand("status")) return eo::run_status(status);
    if (app.got_subcommand("todo")) return eo::run_todo(todo);
    if (app.got_subcommand("finalize")) return eo::run_finalize(finalize);
    if (app.got_subcommand("fewshot")) return eo::run_fewshot(fewshot);
    if (app.got_subcommand("render")) return eo::run_render(render);
    if (app.got_subcommand("similar")) return eo::run_similar(similar);
    if (app.got_subcommand("index")) return eo::run_index(index);
    if (app.got_subcommand("serve")) return eo::run_serve(serve);
  } catch (const eo::ConfigError& e) {
    std::fprintf(stderr, "eo-pipeline: config error: %s\n", eo::clipped(e.what(), 2000).c_str());
    eo::MpiSession::abort_all(eo::kExitUsage);
    return eo::kExitUsage;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "eo-pipeline: error: %s\n", eo::clipped(e.what(), 2000).c_str());
    eo::MpiSession::abort_all(eo::kExitTilesFailed);
    return eo::kExitTilesFailed;
  }
  return eo::kExitUsage;
}
