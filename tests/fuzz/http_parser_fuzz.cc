// libFuzzer target for the router's HTTP/1.1 parser and chunked decoder.
// Checks, for any input: no crash or out-of-bounds read (under ASan); every
// view a parse returns lies inside the input; a chunked body decodes the same
// fed whole or byte by byte.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "router/http_parser.h"

namespace {

using cutover::ChunkedDecoder;
using cutover::HeaderField;
using cutover::ParseError;
using cutover::ParseLimits;
using cutover::ParseResult;

void Check(bool ok) {
  if (!ok) std::abort();
}

bool Inside(std::string_view part, std::string_view whole) {
  return part.empty() ||
         (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

void FuzzRequest(std::string_view data) {
  ParseLimits limits{1024, 32};
  std::vector<HeaderField> fields;
  cutover::RequestHead head;
  head.headers = &fields;
  size_t len = 0;
  ParseError error;
  ParseResult r = cutover::ParseRequestHead(data, limits, head, &len, &error);
  if (r == ParseResult::kComplete) {
    Check(len <= data.size());
    Check(Inside(head.method, data) && Inside(head.target, data));
    Check(head.path == "/" || Inside(head.path, data));
    Check(Inside(head.host, data));
    for (const HeaderField& f : fields) Check(Inside(f.name, data) && Inside(f.value, data));
    Check(fields.size() <= limits.max_headers);
  } else if (r == ParseResult::kError) {
    Check(error.status >= 400 && error.status < 600 && !error.reason.empty());
  }
}

void FuzzResponse(std::string_view data) {
  ParseLimits limits{1024, 32};
  std::vector<HeaderField> fields;
  cutover::ResponseHead head;
  head.headers = &fields;
  size_t len = 0;
  ParseError error;
  ParseResult r = cutover::ParseResponseHead(data, limits, "GET", head, &len, &error);
  if (r == ParseResult::kComplete) {
    Check(len <= data.size() && head.status >= 100 && head.status <= 999);
    for (const HeaderField& f : fields) Check(Inside(f.name, data) && Inside(f.value, data));
  }
}

void FuzzChunked(std::string_view data) {
  ChunkedDecoder whole;
  std::string whole_out;
  size_t whole_used = whole.Feed(data, [&](std::string_view d) { whole_out.append(d); });
  Check(whole_used <= data.size());

  ChunkedDecoder bytes;
  std::string bytes_out;
  size_t bytes_used = 0;
  while (bytes_used < data.size() && !bytes.done() && !bytes.failed()) {
    bytes_used +=
        bytes.Feed(data.substr(bytes_used, 1), [&](std::string_view d) { bytes_out.append(d); });
  }
  Check(whole.done() == bytes.done() && whole.failed() == bytes.failed());
  if (whole.done()) Check(whole_used == bytes_used && whole_out == bytes_out);
  if (!whole.failed() && !whole.done()) Check(whole_used == data.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  std::string_view data(reinterpret_cast<const char*>(bytes), size);
  FuzzRequest(data);
  FuzzResponse(data);
  FuzzChunked(data);
  return 0;
}
