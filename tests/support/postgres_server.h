// PostgresServer: a throwaway PostgreSQL 15 server for tests, with its own
// data folder under /tmp, listening on 127.0.0.1 on a free port and on a unix
// socket inside that folder (so it never collides with a system server).
// Trust authentication; the superuser is `postgres`. Starting takes a second
// or two, so a test binary should share one server and give each test a
// fresh database (CreateDatabase).
//
// PgSession: one libpq connection, for tests that inspect a database or hold
// locks and transactions open while the code under test runs.
//
// Both are owned by one thread at a time (move them, do not share them);
// different objects may be used from different threads.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

struct pg_conn;

namespace cutover::test {

// True when the PostgreSQL 15 server binaries are installed (and, when the
// test runs as root, the `postgres` user they must run as exists).
bool PostgresAvailable();

// Why PostgresAvailable() is false, for GTEST_SKIP; empty when it is true.
std::string PostgresUnavailableReason();

class PostgresServer;

// The server a test binary shares: started on first use (later calls return
// it, or the same start error), stopped when the binary exits. Any thread.
Result<PostgresServer*> SharedPostgresServer();

class PostgresServer {
 public:
  // initdb, then pg_ctl start; waits until the server accepts connections.
  // The error includes the server's log when it does not come up.
  static Result<PostgresServer> Start();

  PostgresServer(PostgresServer&& other) noexcept;
  PostgresServer& operator=(PostgresServer&& other) noexcept;
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;
  // Stops the server (immediate shutdown) if it runs and removes its folder.
  ~PostgresServer();

  // "postgres://postgres@127.0.0.1:PORT/DATABASE".
  std::string Url(std::string_view database = "postgres") const;
  uint16_t port() const { return port_; }
  // The folder holding the data directory, the log and the unix socket.
  const std::filesystem::path& root() const { return root_; }
  // What the server logged so far.
  std::string Log() const;

  // CREATE DATABASE `name` (a plain identifier: letters, digits, '_').
  Status CreateDatabase(std::string_view name);

  // pg_ctl stop -m immediate. The folder stays until destruction.
  Status Stop();
  bool running() const { return running_; }

 private:
  PostgresServer(std::filesystem::path root, uint16_t port) : root_(std::move(root)), port_(port) {}
  void Release();

  std::filesystem::path root_;  // empty once moved from
  uint16_t port_ = 0;
  bool running_ = false;
};

// One result set: rows of columns, as text; NULL reads as an empty string.
using PgRows = std::vector<std::vector<std::string>>;

class PgSession {
 public:
  // Connects with a libpq URI (e.g. PostgresServer::Url(db)).
  static Result<PgSession> Connect(const std::string& url);

  PgSession(PgSession&& other) noexcept;
  PgSession& operator=(PgSession&& other) noexcept;
  PgSession(const PgSession&) = delete;
  PgSession& operator=(const PgSession&) = delete;
  ~PgSession();

  // Runs `sql` (one or more statements; the rows of the last one are
  // returned). The error carries the server's message.
  Result<PgRows> Query(std::string_view sql);
  // Query, for a statement that returns one value (the first column of the
  // first row; nullopt when there is no row).
  Result<std::optional<std::string>> QueryValue(std::string_view sql);

 private:
  explicit PgSession(pg_conn* conn) : conn_(conn) {}

  pg_conn* conn_ = nullptr;
};

}  // namespace cutover::test
