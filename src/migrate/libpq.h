// libpq, PostgreSQL's client library, loaded when first needed rather than
// linked: the daemon runs migrations against PostgreSQL only for services
// that say so, and libpq with what it loads (Kerberos, LDAP, GnuTLS, SASL)
// adds about 5.6 MiB to the memory of every daemon that never uses it.
// Types and constants still come from libpq-fe.h.
#pragma once
#include <libpq-fe.h>

#include "common/error.h"

namespace cutover {

// clang-format off
#define CUTOVER_LIBPQ_FUNCTIONS(X) \
  X(PQclear) \
  X(PQfinish) \
  X(PQgetisnull) \
  X(PQgetvalue) \
  X(PQerrorMessage) \
  X(PQresultErrorField) \
  X(PQsetNoticeProcessor) \
  X(PQgetCancel) \
  X(PQfreeCancel) \
  X(PQcancel) \
  X(PQntuples) \
  X(PQexec) \
  X(PQsendQuery) \
  X(PQisBusy) \
  X(PQconsumeInput) \
  X(PQsocket) \
  X(PQresultStatus) \
  X(PQputCopyEnd) \
  X(PQgetResult) \
  X(PQexecParams) \
  X(PQconnectdbParams) \
  X(PQstatus)
// clang-format on

// The functions cutover calls, by their own names.
struct LibPq {
#define CUTOVER_LIBPQ_MEMBER(name) decltype(&::name) name = nullptr;
  CUTOVER_LIBPQ_FUNCTIONS(CUTOVER_LIBPQ_MEMBER)
#undef CUTOVER_LIBPQ_MEMBER
};

// Loads libpq.so.5 once (any thread); an error says what is missing.
Result<const LibPq*> LoadLibPq();

// The loaded library. Only after LoadLibPq() succeeded.
const LibPq& Pq();

}  // namespace cutover
