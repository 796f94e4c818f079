#include "support/postgres_server.h"

#include <libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <system_error>

#include "support/child_process.h"
#include "support/net.h"
#include "support/temp_dir.h"
#include "support/wait.h"

namespace cutover::test {
namespace {

constexpr std::string_view kBinDir = "/usr/lib/postgresql/15/bin";
constexpr std::string_view kUser = "postgres";

std::string Bin(std::string_view name) { return std::string(kBinDir) + "/" + std::string(name); }

// PostgreSQL refuses to run as root, so a root test process runs the server
// binaries as the `postgres` user.
bool RunningAsRoot() { return ::geteuid() == 0; }

std::string RunuserPath() {
  for (const char* p : {"/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"}) {
    if (::access(p, X_OK) == 0) return p;
  }
  return "runuser";
}

std::string TrimRight(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  return s;
}

// Runs one server binary to completion, as `postgres` when we are root.
// Returns what it printed; the error holds that output too.
Result<std::string> RunTool(const std::filesystem::path& root, std::vector<std::string> argv,
                            std::chrono::seconds timeout) {
  if (RunningAsRoot()) {
    argv.insert(argv.begin(), {RunuserPath(), "-u", std::string(kUser), "--"});
  }
  static std::atomic<int> counter{0};
  std::filesystem::path out = root / ("tool-" + std::to_string(++counter) + ".out");
  ChildOptions options;
  options.argv = argv;
  // A PG* variable of the caller's shell must not redirect the tools to
  // another server or data directory.
  options.unset_env = {"PGDATA",     "PGHOST",     "PGPORT",    "PGUSER",
                       "PGDATABASE", "PGPASSWORD", "PGSERVICE", "PGOPTIONS"};
  options.env = {{"LC_ALL", "C"}};
  // The root's home may be closed to `postgres`; its own folder is not.
  options.working_dir = root;
  options.output_file = out;
  auto child = ChildProcess::Spawn(options);
  if (!child) return std::unexpected(child.error().Wrap(argv.front()));
  std::optional<ExitStatus> status = child->Wait(DeadlineIn(timeout));
  std::string output = TrimRight(child->Output());
  std::error_code ec;
  std::filesystem::remove(out, ec);
  std::string command;
  for (const auto& a : argv) command += (command.empty() ? "" : " ") + a;
  if (!status) {
    child->Kill();
    return MakeError(ErrorCode::kTimeout, command + ": still running after " +
                                              std::to_string(timeout.count()) + "s\n" + output);
  }
  if (!status->Exited(0)) {
    return MakeError(ErrorCode::kInternal, command + ": " + status->ToString() + "\n" + output);
  }
  return output;
}

// A folder under /tmp that the `postgres` user owns (when we are root) and
// can reach: the default TMPDIR of a root shell may sit below /root.
Result<std::filesystem::path> MakeRoot() {
  std::string base = "/tmp";
  if (!RunningAsRoot()) {
    const char* env = std::getenv("TMPDIR");
    if (env != nullptr && *env != '\0') base = env;
  }
  std::string pattern = base + "/cutover-pg-XXXXXX";
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) {
    return MakeError(ErrorCode::kIo, "mkdtemp " + pattern + ": " + std::strerror(errno));
  }
  std::filesystem::path root(buf.data());
  if (::chmod(root.c_str(), 0755) != 0) {
    return MakeError(ErrorCode::kIo, "chmod " + root.string() + ": " + std::strerror(errno));
  }
  if (RunningAsRoot()) {
    passwd* pw = ::getpwnam(std::string(kUser).c_str());
    if (pw == nullptr) {
      return MakeError(ErrorCode::kNotFound, "no user '" + std::string(kUser) + "'");
    }
    if (::chown(root.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
      return MakeError(ErrorCode::kIo, "chown " + root.string() + ": " + std::strerror(errno));
    }
  }
  return root;
}

// Kills the postmaster named by the data directory's pid file; the last
// resort when pg_ctl cannot stop it.
void KillPostmaster(const std::filesystem::path& data) {
  auto pid_file = ReadFile(data / "postmaster.pid");
  if (!pid_file) return;
  std::string_view text = *pid_file;
  text = text.substr(0, text.find('\n'));
  pid_t pid = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), pid);
  if (ec != std::errc() || pid <= 1) return;
  ::kill(pid, SIGKILL);
}

bool ValidIdentifier(std::string_view name) {
  if (name.empty() || name.size() > 63) return false;
  if (std::isdigit(static_cast<unsigned char>(name.front()))) return false;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  }
  return true;
}

void IgnoreNotice(void*, const char*) {}

}  // namespace

std::string PostgresUnavailableReason() {
  if (::access(Bin("initdb").c_str(), X_OK) != 0) {
    return "PostgreSQL 15 is not installed (" + Bin("initdb") +
           " is missing; scripts/setup installs it)";
  }
  if (RunningAsRoot() && ::getpwnam(std::string(kUser).c_str()) == nullptr) {
    return "running as root and there is no '" + std::string(kUser) + "' user to run PostgreSQL as";
  }
  return {};
}

bool PostgresAvailable() { return PostgresUnavailableReason().empty(); }

Result<PostgresServer> PostgresServer::Start() {
  if (std::string why = PostgresUnavailableReason(); !why.empty()) {
    return MakeError(ErrorCode::kUnavailable, why);
  }
  auto root = MakeRoot();
  if (!root) return std::unexpected(root.error());
  // Owns the folder from here on, so every failure below removes it.
  PostgresServer server(*root, 0);
  std::filesystem::path data = server.root_ / "data";
  auto init = RunTool(server.root_,
                      {Bin("initdb"), "-D", data.string(), "-A", "trust", "-U", "postgres",
                       "--no-sync", "--no-instructions", "--locale=C", "-E", "UTF8"},
                      std::chrono::seconds(120));
  if (!init) return std::unexpected(init.error().Wrap("initdb"));

  // FreePort only finds a port that is free now; another process may take it
  // before the server binds, so a bind failure picks another.
  std::string last_error;
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto port = FreePort();
    if (!port) return std::unexpected(port.error());
    std::string server_options = "-c listen_addresses=127.0.0.1 -p " + std::to_string(*port) +
                                 " -k " + server.root_.string() +
                                 " -c fsync=off -c synchronous_commit=off"
                                 " -c full_page_writes=off";
    auto started =
        RunTool(server.root_,
                {Bin("pg_ctl"), "-D", data.string(), "-l", (server.root_ / "server.log").string(),
                 "-o", server_options, "-w", "-t", "60", "start"},
                std::chrono::seconds(90));
    if (started) {
      server.port_ = *port;
      server.running_ = true;
      return server;
    }
    std::string log = server.Log();
    last_error = started.error().message + "\nserver log:\n" + log;
    KillPostmaster(data);
    if (log.find("Address already in use") == std::string::npos) break;
  }
  return MakeError(ErrorCode::kUnavailable, "pg_ctl start: " + last_error);
}

PostgresServer::PostgresServer(PostgresServer&& other) noexcept
    : root_(std::move(other.root_)), port_(other.port_), running_(other.running_) {
  other.root_.clear();
  other.running_ = false;
}

PostgresServer& PostgresServer::operator=(PostgresServer&& other) noexcept {
  if (this != &other) {
    Release();
    root_ = std::move(other.root_);
    port_ = other.port_;
    running_ = other.running_;
    other.root_.clear();
    other.running_ = false;
  }
  return *this;
}

PostgresServer::~PostgresServer() { Release(); }

void PostgresServer::Release() {
  if (root_.empty()) return;
  if (running_) (void)Stop();
  std::error_code ec;
  std::filesystem::remove_all(root_, ec);
  root_.clear();
}

std::string PostgresServer::Url(std::string_view database) const {
  return "postgres://postgres@127.0.0.1:" + std::to_string(port_) + "/" + std::string(database);
}

std::string PostgresServer::Log() const {
  auto log = ReadFile(root_ / "server.log");
  return log ? *log : std::string();
}

Status PostgresServer::CreateDatabase(std::string_view name) {
  if (!ValidIdentifier(name)) {
    return MakeError(ErrorCode::kInvalidArgument, "bad database name '" + std::string(name) + "'");
  }
  auto session = PgSession::Connect(Url("postgres"));
  if (!session) return std::unexpected(session.error());
  auto done = session->Query("CREATE DATABASE " + std::string(name));
  if (!done) return std::unexpected(done.error().Wrap("CREATE DATABASE " + std::string(name)));
  return {};
}

Status PostgresServer::Stop() {
  if (!running_) return {};
  running_ = false;
  std::filesystem::path data = root_ / "data";
  auto stopped = RunTool(
      root_, {Bin("pg_ctl"), "-D", data.string(), "-m", "immediate", "-w", "-t", "30", "stop"},
      std::chrono::seconds(60));
  if (!stopped) {
    KillPostmaster(data);
    return MakeError(ErrorCode::kInternal, stopped.error().message + "\nserver log:\n" + Log());
  }
  return {};
}

Result<PgSession> PgSession::Connect(const std::string& url) {
  PGconn* conn = PQconnectdb(url.c_str());
  if (conn == nullptr) return MakeError(ErrorCode::kInternal, "PQconnectdb: out of memory");
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string message = TrimRight(PQerrorMessage(conn));
    PQfinish(conn);
    return MakeError(ErrorCode::kUnavailable, "connect " + url + ": " + message);
  }
  // NOTICEs (e.g. "relation already exists, skipping") are not test output.
  PQsetNoticeProcessor(conn, IgnoreNotice, nullptr);
  return PgSession(conn);
}

PgSession::PgSession(PgSession&& other) noexcept : conn_(other.conn_) { other.conn_ = nullptr; }

PgSession& PgSession::operator=(PgSession&& other) noexcept {
  if (this != &other) {
    if (conn_ != nullptr) PQfinish(conn_);
    conn_ = other.conn_;
    other.conn_ = nullptr;
  }
  return *this;
}

PgSession::~PgSession() {
  if (conn_ != nullptr) PQfinish(conn_);
}

Result<PgRows> PgSession::Query(std::string_view sql) {
  if (conn_ == nullptr) return MakeError(ErrorCode::kConflict, "no connection");
  PGresult* res = PQexec(conn_, std::string(sql).c_str());
  if (res == nullptr) {
    return MakeError(ErrorCode::kUnavailable, TrimRight(PQerrorMessage(conn_)));
  }
  PgRows rows;
  ExecStatusType status = PQresultStatus(res);
  if (status == PGRES_TUPLES_OK) {
    int n = PQntuples(res);
    int cols = PQnfields(res);
    rows.reserve(static_cast<size_t>(n));
    for (int r = 0; r < n; ++r) {
      std::vector<std::string> row;
      row.reserve(static_cast<size_t>(cols));
      for (int c = 0; c < cols; ++c) row.emplace_back(PQgetvalue(res, r, c));
      rows.push_back(std::move(row));
    }
  } else if (status != PGRES_COMMAND_OK) {
    std::string message = TrimRight(PQresultErrorMessage(res));
    PQclear(res);
    return MakeError(ErrorCode::kInternal, message);
  }
  PQclear(res);
  return rows;
}

Result<std::optional<std::string>> PgSession::QueryValue(std::string_view sql) {
  auto rows = Query(sql);
  if (!rows) return std::unexpected(rows.error());
  if (rows->empty() || rows->front().empty()) return std::optional<std::string>();
  return std::optional<std::string>(rows->front().front());
}

Result<PostgresServer*> SharedPostgresServer() {
  // Destroyed at exit, which stops the server and removes its folder.
  static std::mutex mu;
  static std::optional<PostgresServer> server;
  static std::optional<Error> error;
  std::lock_guard lock(mu);
  if (!server && !error) {
    auto started = PostgresServer::Start();
    if (started) {
      server.emplace(std::move(*started));
    } else {
      error = started.error();
    }
  }
  if (error) return std::unexpected(*error);
  return &*server;
}

}  // namespace cutover::test
