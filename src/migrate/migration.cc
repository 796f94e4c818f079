// Migration files: names, header options, checksums.
#include "migrate/migration.h"

#include <fmt/format.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

namespace cutover {

namespace {

constexpr std::string_view kOptionPrefix = "cutover:";

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

Status BadName(std::string_view filename, std::string_view why) {
  return MakeError(ErrorCode::kInvalidArgument,
                   fmt::format("{}: {}; migration files are named "
                               "<UTC timestamp>_<name>.<expand|backfill|contract>.sql, e.g. "
                               "20261126093000_add_gift_message.expand.sql",
                               filename, why));
}

// Reads the `-- cutover: ...` options of the comment lines before the first
// statement.
Status ParseOptions(MigrationFile& f) {
  std::istringstream in(f.sql);
  std::string raw;
  int line = 0;
  bool in_block_comment = false;
  while (std::getline(in, raw)) {
    ++line;
    std::string_view text = Trim(raw);
    if (in_block_comment) {
      if (text.find("*/") != std::string_view::npos) in_block_comment = false;
      continue;
    }
    if (text.empty()) continue;
    if (text.starts_with("/*")) {
      in_block_comment = text.find("*/", 2) == std::string_view::npos;
      continue;
    }
    if (!text.starts_with("--")) break;  // the first statement: options end here
    text = Trim(text.substr(2));
    if (!text.starts_with(kOptionPrefix)) continue;
    std::string_view option = Trim(text.substr(kOptionPrefix.size()));
    auto where = [&] { return fmt::format("{}:{}", f.filename, line); };
    if (option == "no-transaction") {
      f.options.no_transaction = true;
    } else if (option.starts_with("lock-timeout")) {
      std::string_view value = Trim(option.substr(std::string_view("lock-timeout").size()));
      if (!value.starts_with('=')) {
        return MakeError(ErrorCode::kInvalidArgument,
                         fmt::format("{}: lock-timeout needs a value, e.g. "
                                     "'-- cutover: lock-timeout=2s'",
                                     where()));
      }
      Result<Millis> d = ParseDuration(Trim(value.substr(1)));
      if (!d || d->count() <= 0) {
        return MakeError(ErrorCode::kInvalidArgument,
                         fmt::format("{}: lock-timeout: {}", where(),
                                     d ? std::string("must be more than 0") : d.error().message));
      }
      f.options.lock_timeout = *d;
    } else if (option.starts_with("allow ") || option == "allow") {
      std::string_view rest = Trim(option.substr(5));
      size_t because = rest.find(" because ");
      std::string_view rule = Trim(rest.substr(0, because));
      std::string_view reason =
          because == std::string_view::npos ? std::string_view() : Trim(rest.substr(because + 9));
      if (rule.empty() || rule.find(' ') != std::string_view::npos || reason.empty()) {
        return MakeError(ErrorCode::kInvalidArgument,
                         fmt::format("{}: an override reads '-- cutover: allow <rule> because "
                                     "<reason>', and the reason is required",
                                     where()));
      }
      f.options.allowances.push_back({std::string(rule), std::string(reason), line});
    } else {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("{}: unknown option {}; known: no-transaction, "
                                   "lock-timeout=DURATION, allow RULE because REASON",
                                   where(), Quoted(option)));
    }
  }
  return {};
}

}  // namespace

std::string_view DialectName(Dialect d) { return d == Dialect::kPostgres ? "postgres" : "sqlite"; }

std::string_view PhaseName(Phase p) {
  switch (p) {
    case Phase::kExpand:
      return "expand";
    case Phase::kBackfill:
      return "backfill";
    case Phase::kContract:
      return "contract";
  }
  return "expand";
}

std::optional<Phase> ParsePhase(std::string_view s) {
  if (s == "expand") return Phase::kExpand;
  if (s == "backfill") return Phase::kBackfill;
  if (s == "contract") return Phase::kContract;
  return std::nullopt;
}

std::string Sha256Hex(std::string_view bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &size, EVP_sha256(), nullptr);
  std::string out;
  out.reserve(size * 2);
  for (unsigned int i = 0; i < size; ++i) out += fmt::format("{:02x}", digest[i]);
  return out;
}

Result<MigrationFile> ParseMigration(std::string filename, std::string path, std::string sql) {
  MigrationFile f;
  std::string_view name = filename;
  if (!name.ends_with(".sql")) {
    return std::unexpected(BadName(filename, "not a .sql file").error());
  }
  name.remove_suffix(4);
  size_t dot = name.rfind('.');
  if (dot == std::string_view::npos) {
    return std::unexpected(BadName(filename, "the phase is missing").error());
  }
  std::optional<Phase> phase = ParsePhase(name.substr(dot + 1));
  if (!phase) {
    return std::unexpected(
        BadName(filename, fmt::format("unknown phase {}", Quoted(name.substr(dot + 1)))).error());
  }
  name = name.substr(0, dot);
  size_t underscore = name.find('_');
  std::string_view version = name.substr(0, underscore);
  if (version.size() != 14 || !std::all_of(version.begin(), version.end(), [](char c) {
        return std::isdigit(static_cast<unsigned char>(c));
      })) {
    return std::unexpected(
        BadName(filename, "it does not start with a UTC timestamp of 14 digits (YYYYMMDDHHMMSS)")
            .error());
  }
  if (underscore == std::string_view::npos || underscore + 1 >= name.size()) {
    return std::unexpected(BadName(filename, "the name after the timestamp is missing").error());
  }
  f.version = std::string(version);
  f.name = std::string(name.substr(underscore + 1));
  f.phase = *phase;
  f.filename = std::move(filename);
  f.path = std::move(path);
  f.sql = std::move(sql);
  f.sha256 = Sha256Hex(f.sql);
  if (Status options = ParseOptions(f); !options) return std::unexpected(options.error());
  return f;
}

Result<std::vector<MigrationFile>> LoadMigrations(const std::string& dir) {
  std::error_code ec;
  std::filesystem::directory_iterator it(dir, ec);
  if (ec) {
    return MakeError(ErrorCode::kNotFound,
                     fmt::format("migrations folder {}: {}", dir, ec.message()));
  }
  std::vector<MigrationFile> files;
  std::map<std::string, std::string> by_version;
  for (const auto& entry : it) {
    std::string filename = entry.path().filename().string();
    if (!filename.ends_with(".sql") || !entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    if (!in && !in.eof()) {
      return MakeError(ErrorCode::kIo, fmt::format("{}: cannot be read", entry.path().string()));
    }
    Result<MigrationFile> f = ParseMigration(filename, entry.path().string(), text.str());
    if (!f) return std::unexpected(f.error());
    auto [at, inserted] = by_version.emplace(f->version, filename);
    if (!inserted) {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("{} and {} have the same timestamp {}; each file needs its own",
                                   at->second, filename, f->version));
    }
    files.push_back(std::move(*f));
  }
  std::sort(files.begin(), files.end(),
            [](const MigrationFile& a, const MigrationFile& b) { return a.version < b.version; });
  return files;
}

}  // namespace cutover
