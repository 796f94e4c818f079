#include "driver/instance_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/types.h"
#include "driver/proc.h"

namespace cutover {

namespace {

using Json = nlohmann::ordered_json;

constexpr int kFormatVersion = 1;

Json RecordToJson(const InstanceRecord& r) {
  Json env = Json::array();
  for (const auto& [name, value] : r.spec.env) env.push_back({{"name", name}, {"value", value}});
  return Json{
      {"service", r.spec.service},
      {"color", std::string(ColorName(r.spec.color))},
      {"release", r.spec.release},
      {"index", r.spec.index},
      {"pid", r.pid},
      {"pgid", r.pgid},
      {"port", r.spec.port},
      {"start_time", r.start_time},
      {"restarts", r.restarts},
      {"last_exit", r.last_exit},
      {"spec",
       {{"command", r.spec.command},
        {"workdir", r.spec.workdir},
        {"env", std::move(env)},
        {"log_path", r.spec.log_path},
        {"stop_timeout_ms", r.spec.stop_timeout.count()}}},
  };
}

// nlohmann::json throws on a missing field or a wrong type; the caller catches
// that and turns it into an Error.
Result<InstanceRecord> RecordFromJson(const Json& j) {
  InstanceRecord r;
  r.spec.service = j.at("service").get<std::string>();
  std::string color = j.at("color").get<std::string>();
  auto parsed = ParseColor(color);
  if (!parsed) return MakeError(ErrorCode::kInvalidArgument, "bad color " + Quoted(color));
  r.spec.color = *parsed;
  r.spec.release = j.at("release").get<std::string>();
  r.spec.index = j.at("index").get<int>();
  r.pid = j.at("pid").get<int>();
  r.pgid = j.at("pgid").get<int>();
  r.spec.port = j.at("port").get<uint16_t>();
  r.start_time = j.at("start_time").get<uint64_t>();
  r.restarts = j.value("restarts", 0);
  r.last_exit = j.value("last_exit", std::string());
  const Json& spec = j.at("spec");
  r.spec.command = spec.at("command").get<std::string>();
  r.spec.workdir = spec.at("workdir").get<std::string>();
  for (const Json& var : spec.at("env")) {
    r.spec.env.emplace_back(var.at("name").get<std::string>(), var.at("value").get<std::string>());
  }
  r.spec.log_path = spec.at("log_path").get<std::string>();
  r.spec.stop_timeout = Millis(spec.at("stop_timeout_ms").get<int64_t>());
  return r;
}

std::string ErrnoText(int err) { return std::strerror(err); }

}  // namespace

std::string SerializeInstanceFile(const InstanceFile& file) {
  Json instances = Json::array();
  for (const InstanceRecord& r : file.instances) instances.push_back(RecordToJson(r));
  Json j{{"format", kFormatVersion}, {"boot_id", file.boot_id}, {"instances", instances}};
  return j.dump(2) + "\n";
}

Result<InstanceFile> ParseInstanceFile(std::string_view text, std::string_view path) {
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return MakeError(ErrorCode::kInvalidArgument, std::string(path) + ": not valid JSON");
  }
  try {
    int format = j.at("format").get<int>();
    if (format != kFormatVersion) {
      return MakeError(ErrorCode::kInvalidArgument,
                       std::string(path) + ": unknown format " + std::to_string(format));
    }
    InstanceFile file;
    file.boot_id = j.value("boot_id", std::string());
    for (const Json& json : j.at("instances")) {
      auto record = RecordFromJson(json);
      if (!record) return std::unexpected(record.error().Wrap(path));
      file.instances.push_back(std::move(*record));
    }
    return file;
  } catch (const Json::exception& e) {
    return MakeError(ErrorCode::kInvalidArgument, std::string(path) + ": " + e.what());
  }
}

Result<std::optional<std::string>> ReadFileIfExists(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT) return std::optional<std::string>();
    return MakeError(ErrorCode::kIo, "cannot read " + Quoted(path) + ": " + ErrnoText(errno));
  }
  std::string text;
  char buf[8192];
  while (true) {
    ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      return MakeError(ErrorCode::kIo, "cannot read " + Quoted(path) + ": " + ErrnoText(errno));
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  return std::optional<std::string>(std::move(text));
}

Status WriteFileAtomically(const std::string& path, std::string_view content) {
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  std::error_code ec;
  if (!dir.empty()) std::filesystem::create_directories(dir, ec);
  if (ec) {
    return MakeError(ErrorCode::kIo, "cannot create " + Quoted(dir.string()) + ": " + ec.message());
  }
  std::string tmp = path + ".tmp";
  auto fail = [&](std::string what) {
    int err = errno;
    ::unlink(tmp.c_str());
    return MakeError(ErrorCode::kIo, what + " " + Quoted(tmp) + ": " + ErrnoText(err));
  };
  {
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd.valid()) return fail("cannot create");
    size_t done = 0;
    while (done < content.size()) {
      ssize_t n = ::write(fd.get(), content.data() + done, content.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return fail("cannot write");
      done += static_cast<size_t>(n);
    }
    if (::fsync(fd.get()) != 0) return fail("cannot flush");
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) return fail("cannot rename");
  // The rename itself is durable only once the directory is flushed.
  UniqueFd dir_fd(::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir_fd.valid()) ::fsync(dir_fd.get());
  return {};
}

}  // namespace cutover
