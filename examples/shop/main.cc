// cutover-shop: a small online store built to be deployed blue-green by
// cutover. See README.md.
//
//   cutover-shop [--port P] [--release v1|v2|v3|v4] [--sqlite PATH] [--host H]
//
//   --port     default $PORT (cutover's process driver sets it)
//   --release  default $CUTOVER_RELEASE, else v1
//   --sqlite   the SQLite file shared by every instance (default ./shop.db);
//              holds carts without REDIS_URL and orders without DATABASE_URL
//   --host     address to listen on (default 127.0.0.1)
//   REDIS_URL     redis://[:PASSWORD@]HOST[:PORT][/DB]: carts and sessions there
//   DATABASE_URL  postgres://...: orders there
//
// SIGTERM or SIGINT: stop accepting, finish the requests in flight, exit 0.
// Threads: the main thread waits for the stop signal; a second one runs the
// server's accept loop; cpp-httplib's pool threads run the handlers.
#include <httplib.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>

#include "release.h"
#include "shop.h"
#include "stores.h"

namespace {

struct Flags {
  std::string host = "127.0.0.1";
  int port = -1;
  std::string release;
  std::string sqlite = "shop.db";
};

const char* Env(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : nullptr;
}

bool ParsePort(std::string_view text, int& port) {
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
  return ec == std::errc() && p == text.data() + text.size() && port >= 0 && port <= 65535;
}

int Usage(const std::string& problem) {
  std::fprintf(stderr,
               "cutover-shop: %s\n"
               "usage: cutover-shop [--port P] [--release v1|v2|v3|v4] [--sqlite PATH] "
               "[--host H]\n",
               problem.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::printf(
          "usage: cutover-shop [--port P] [--release v1|v2|v3|v4] [--sqlite PATH] [--host H]\n"
          "environment: PORT, CUTOVER_RELEASE, REDIS_URL, DATABASE_URL\n");
      return 0;
    }
    if (i + 1 >= argc) return Usage(std::string(arg) + " needs a value");
    std::string_view value = argv[++i];
    if (arg == "--port") {
      if (!ParsePort(value, flags.port)) return Usage("--port: '" + std::string(value) + "'");
    } else if (arg == "--release") {
      flags.release = value;
    } else if (arg == "--sqlite") {
      flags.sqlite = value;
    } else if (arg == "--host") {
      flags.host = value;
    } else {
      return Usage("unknown flag " + std::string(arg));
    }
  }
  if (flags.port < 0) {
    const char* port = Env("PORT");
    if (port == nullptr) return Usage("no --port and no $PORT");
    if (!ParsePort(port, flags.port)) return Usage("$PORT: '" + std::string(port) + "'");
  }
  if (flags.release.empty()) {
    const char* release = Env("CUTOVER_RELEASE");
    flags.release = release != nullptr ? release : "v1";
  }
  shop::Result<shop::Release> release = shop::ParseRelease(flags.release);
  if (!release) return Usage(release.error());
  const shop::Behaviour behaviour = shop::BehaviourOf(*release);

  shop::StoreOptions options;
  options.sqlite_path = flags.sqlite;
  if (const char* url = Env("REDIS_URL")) options.redis_url = url;
  if (const char* url = Env("DATABASE_URL")) options.database_url = url;
  options.columns.note = behaviour.writes_note;
  options.columns.gift_message = behaviour.gift_message;
  shop::Result<shop::Stores> stores = shop::OpenStores(options);
  if (!stores) return Usage(stores.error());

  // Blocked before any thread starts, so that only the signal thread takes them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  shop::Shop app(*release, *stores->carts, *stores->orders);
  httplib::Server server;
  // cpp-httplib listens with SO_REUSEPORT by default, which lets a second
  // program of the same user listen on the port too and take a share of its
  // connections without an error; SO_REUSEADDR alone makes a port in use
  // fail the start.
  server.set_socket_options([](socket_t sock) {
    const int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  app.Register(server);

  // Port 0: any free port, which the log line then names.
  const int port = flags.port == 0
                       ? server.bind_to_any_port(flags.host)
                       : (server.bind_to_port(flags.host, flags.port) ? flags.port : -1);
  if (port <= 0) {
    shop::Log("cutover-shop " + flags.release + ": cannot listen on " + flags.host + ":" +
              std::to_string(flags.port) + ": " + std::strerror(errno));
    return 1;
  }
  shop::Log("cutover-shop " + flags.release + " listening on " + flags.host + ":" +
            std::to_string(port) + "; carts in " + stores->carts->Describe() + ", orders in " +
            stores->orders->Describe());
  // Says at once, in the log, whether the stores and the schema are there.
  (void)app.Health();

  std::atomic<bool> stopping{false};
  std::atomic<bool> failed{false};
  std::atomic<bool> done{false};  // the accept loop has returned
  std::thread serving([&] {
    server.listen_after_bind();
    done = true;
    if (!stopping) {
      // The accept loop ended without being asked to: wake the main thread.
      failed = true;
      ::kill(::getpid(), SIGTERM);
    }
  });
  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  stopping = true;
  if (failed) {
    shop::Log("the server stopped accepting connections");
  } else {
    shop::Log(std::string("received SIG") + sigabbrev_np(signal_number) + ", stopping");
  }
  // stop() does nothing before the accept loop runs: a signal in the first
  // moments would otherwise leave this process waiting forever.
  while (!done && !server.is_running()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  server.stop();
  serving.join();
  shop::Log("stopped");
  return failed ? 1 : 0;
}
