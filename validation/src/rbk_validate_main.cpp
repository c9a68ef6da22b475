// rbk_validate: the claims ledger. Reads the claims registry and every result file it names
// (committed results/ and, with --build-dir, fresh runs in a build tree), judges each claim C01-C24
// and writes paper/CLAIMS.md, paper/verdicts.json and the seeds' tables (paper/tables/*.md, *.tex),
// all atomically. Each claim gets two verdicts: the method as described (face corrected) and the
// authors' code (face compat). Stale results, rules changed after their results and failed runs
// are listed; git history is read where the source directory is a git work tree.
//   rbk_validate [--source-dir DIR] [--build-dir DIR] [--registry FILE] [--tables FILE] [--out DIR]
// Exit codes: 0 written; 2 bad arguments or a malformed registry (nothing written); 3 written, but
// at least one result file was malformed (its claims are "not yet measured" with the error noted).
#include "rbk/results.h"
#include "rbk/run_context.h"
#include "rbk/validation/registry.h"
#include "rbk/validation/render.h"
#include "rbk/validation/result_store.h"
#include "rbk/validation/verdict.h"

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#ifndef RBK_SOURCE_DIR
#define RBK_SOURCE_DIR "."
#endif

namespace fs = std::filesystem;
using namespace rbk::validation;

namespace {

void usage(std::ostream& o) {
  o << "usage: rbk_validate [--source-dir DIR] [--build-dir DIR] [--registry FILE] [--tables FILE] [--out DIR]\n"
       "  --source-dir  repository root (committed results/ and experiments/); default " RBK_SOURCE_DIR "\n"
       "  --build-dir   build tree whose results/<experiment>/ hold fresh runs (they win over committed ones)\n"
       "  --registry    claims registry; default <source>/validation/claims_registry.json\n"
       "  --tables      paper table definitions; default <source>/validation/paper_tables.json\n"
       "  --out         output directory; default <source>/paper\n";
}

std::string display(const std::string& path, const std::string& source_dir) {
  std::error_code ec;
  const std::string rel = fs::relative(path, source_dir, ec).string();
  return ec || rel.empty() || rel.rfind("..", 0) == 0 ? path : rel;
}

}  // namespace

int main(int argc, char** argv) {
  std::string source_dir = RBK_SOURCE_DIR, build_dir, registry_path, tables_path, out_dir;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&](std::string& dst) {
      if (i + 1 >= argc) {
        std::cerr << "rbk_validate: " << a << " needs a value\n";
        usage(std::cerr);
        std::exit(2);
      }
      dst = argv[++i];
    };
    if (a == "--help" || a == "-h") {
      usage(std::cout);
      return 0;
    } else if (a == "--source-dir") {
      next(source_dir);
    } else if (a == "--build-dir") {
      next(build_dir);
    } else if (a == "--registry") {
      next(registry_path);
    } else if (a == "--tables") {
      next(tables_path);
    } else if (a == "--out") {
      next(out_dir);
    } else {
      std::cerr << "rbk_validate: unknown argument '" << a << "'\n";
      usage(std::cerr);
      return 2;
    }
  }
  std::error_code ec;
  source_dir = fs::absolute(source_dir, ec).lexically_normal().string();
  if (!fs::is_directory(source_dir)) {
    std::cerr << "rbk_validate: --source-dir '" << source_dir << "' is not a directory (expected the repository root)\n";
    return 2;
  }
  if (!build_dir.empty()) {
    build_dir = fs::absolute(build_dir, ec).lexically_normal().string();
    if (!fs::is_directory(build_dir)) {
      std::cerr << "rbk_validate: --build-dir '" << build_dir << "' is not a directory (expected a build tree)\n";
      return 2;
    }
  }
  if (registry_path.empty()) registry_path = source_dir + "/validation/claims_registry.json";
  if (tables_path.empty()) tables_path = source_dir + "/validation/paper_tables.json";
  if (out_dir.empty()) out_dir = source_dir + "/paper";

  Registry registry;
  TableSet tables;
  try {
    registry = load_registry(registry_path);
    tables = load_tables(tables_path, registry);
  } catch (const RegistryError& e) {
    std::cerr << "rbk_validate: " << e.what() << "\n";
    return 2;
  }

  std::string commit = "unknown";
  try {
    commit = rbk::RunContext::capture(argc, argv, 0).git_commit;
  } catch (const std::exception&) {
    // Provenance of the generator is best effort; the result files carry their own commits.
  }
  RenderContext ctx;
  ctx.generator = "rbk_validate (validation/src/rbk_validate_main.cpp) @ " + commit.substr(0, 10);
  ctx.registry_path = display(registry_path, source_dir);
  ctx.tables_path = display(tables_path, source_dir);

  ResultStore store(source_dir, build_dir, registry);
  VerdictEngine engine(registry, store);
  std::vector<ClaimVerdict> verdicts;
  std::map<std::string, ClaimVerdict> by_id;
  for (const auto& claim : registry.claims) {
    verdicts.push_back(engine.judge(claim));
    by_id[claim.id] = verdicts.back();
  }

  try {
    rbk::write_text_atomic(out_dir + "/CLAIMS.md", render_claims_markdown(registry, verdicts, store, ctx));
    rbk::write_text_atomic(out_dir + "/verdicts.json",
                           verdicts_to_json(registry, verdicts, store, ctx).dump(2) + "\n");
    for (const auto& t : tables.tables) {
      rbk::write_text_atomic(out_dir + "/tables/" + t.id + ".md", render_table_markdown(t, store, by_id, ctx));
      rbk::write_text_atomic(out_dir + "/tables/" + t.id + ".tex", render_table_latex(t, store, by_id, ctx));
    }
    rbk::write_text_atomic(out_dir + "/tables/README.md", render_tables_index(tables, by_id, ctx));
  } catch (const std::exception& e) {
    std::cerr << "rbk_validate: cannot write the ledger into '" << out_dir << "': " << e.what() << "\n";
    return 1;
  }

  int malformed = 0;
  std::cout << "result files:\n";
  for (const auto& kv : store.sources()) {
    const ResultSource& s = kv.second;
    if (s.ok) {
      std::cout << "  " << kv.first << ": " << s.display_path << " (" << s.origin << ", preset " << s.preset
                << ", commit " << (s.git_commit.empty() ? "unknown" : s.git_commit.substr(0, 10)) << ")\n"
                << "      " << s.stale_text() << "\n      provenance " << s.provenance_check
                << (s.dirty_check.empty() ? "" : " (" + s.dirty_check + ")") << "\n";
    } else if (s.found) {
      ++malformed;
      std::cerr << "rbk_validate: error: " << s.error << "\n";
      std::cout << "  " << kv.first << ": UNREADABLE " << s.display_path << "\n";
    } else {
      std::cout << "  " << kv.first << ": " << s.error << "\n";
    }
    for (const auto& f : s.failed_runs) std::cout << "      failed run, never judged: " << f << "\n";
  }
  std::cout << "rules changed after their results:\n";
  std::size_t changed = 0;
  for (const auto& v : verdicts) {
    for (const auto* list : {&v.parts, &v.audit_checks}) {
      for (const auto& r : *list) {
        if (!r.change || (r.change->kind != RuleChange::Changed && r.change->kind != RuleChange::Added)) continue;
        ++changed;
        std::cout << "  " << r.part_id << ": " << r.change->text() << "\n";
      }
    }
  }
  if (!changed) std::cout << "  none\n";
  for (const auto& p : check_falsifiers(registry)) {
    std::cerr << "rbk_validate: warning: " << p.part_id << " does not fail on its own falsifier (" << p.outcome
              << "); the part is judged INVALID\n";
  }
  std::cout << "verdicts (the method as described | the authors' code):\n";
  for (const auto& v : verdicts) {
    std::cout << "  " << v.claim_id << "  " << to_string(v.corrected.verdict) << " | " << to_string(v.compat.verdict)
              << "\n      described: " << v.corrected.reason << "\n      authors' code: " << v.compat.reason << "\n";
  }
  std::cout << "wrote " << out_dir << "/CLAIMS.md, verdicts.json and " << tables.tables.size() * 2
            << " table files under " << out_dir << "/tables\n";
  return malformed ? 3 : 0;
}
