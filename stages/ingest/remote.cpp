#include "stages/ingest/remote.hpp"

#include <cpl_conv.h>
#include <cpl_error.h>
#include <cpl_vsi.h>
#include <curl/curl.h>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <fstream>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace eo {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::int64_t kChunk = 64 * 1024;
constexpr std::int64_t kMaxRunChunks = 256;  // one request fetches at most 16 MiB
constexpr std::int64_t kMergeGapChunks = 4;  // missing runs this close are fetched as one
constexpr const char* kPrefix = "/vsieo/";

std::string env(const char* name, const std::string& fallback = "") {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}
double env_number(const char* name, double fallback) {
  const std::string v = env(name);
  if (v.empty()) return fallback;
  char* end = nullptr;
  const double x = std::strtod(v.c_str(), &end);
  return end && *end == '\0' && std::isfinite(x) && x >= 0 ? x : fallback;
}
bool env_yes(const char* name, bool fallback) {
  std::string v = env(name);
  if (v.empty()) return fallback;
  std::transform(v.begin(), v.end(), v.begin(), ::tolower);
  return v == "yes" || v == "true" || v == "on" || v == "1";
}

struct Settings {
  int attempts = static_cast<int>(std::max(1.0, env_number("EO_HTTP_ATTEMPTS", 6)));
  double retry_s = env_number("EO_HTTP_RETRY_S", 0.5);
  double max_wait_s = env_number("EO_HTTP_MAX_WAIT_S", 120);
  double timeout_s = env_number("EO_HTTP_TIMEOUT_S", 60);
  int in_flight = static_cast<int>(std::max(1.0, env_number("EO_HTTP_IN_FLIGHT", 64)));
  std::int64_t cache_bytes = static_cast<std::int64_t>(env_number("EO_HTTP_CACHE_MB", 256) * 1024 * 1024);
};
const Settings& settings() {
  static const Settings s;
  return s;
}

std::atomic<std::int64_t> n_requests{0};
thread_local std::string last_failure;
thread_local bool last_failure_not_the_objects = false;

// --- Where an object is and how a request for it is signed ----------------------------

struct AwsCredentials {
  std::string key, secret, token;
};

// The AWS tools' credentials: the environment, else the profile of the shared file.
AwsCredentials aws_credentials() {
  AwsCredentials c{env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"), env("AWS_SESSION_TOKEN")};
  if (!c.key.empty()) return c;
  const std::string file = env("AWS_SHARED_CREDENTIALS_FILE", env("HOME", "/root") + "/.aws/credentials");
  const std::string profile = env("AWS_PROFILE", env("AWS_DEFAULT_PROFILE", "default"));
  std::ifstream in(file);
  std::string line, section;
  const auto trim = [](std::string s) {
    s.erase(0, s.find_first_not_of(" \t\r"));
    s.erase(s.find_last_not_of(" \t\r") + 1);
    return s;
  };
  while (std::getline(in, line)) {
    line = trim(line);
    if (line.starts_with("[") && line.ends_with("]")) {
      section = trim(line.substr(1, line.size() - 2));
      continue;
    }
    const auto eq = line.find('=');
    if (section != profile || eq == std::string::npos) continue;
    const std::string k = trim(line.substr(0, eq)), v = trim(line.substr(eq + 1));
    if (k == "aws_access_key_id") c.key = v;
    if (k == "aws_secret_access_key") c.secret = v;
    if (k == "aws_session_token") c.token = v;
  }
  return c;
}

struct S3Access {
  std::string region = env("AWS_REGION", env("AWS_DEFAULT_REGION"));
  std::string endpoint = env("AWS_S3_ENDPOINT");
  bool https = env_yes("AWS_HTTPS", true);
  bool virtual_hosting = env_yes("AWS_VIRTUAL_HOSTING", true);
  bool sign = !env_yes("AWS_NO_SIGN_REQUEST", false);
  bool requester_pays = env_yes("AWS_REQUEST_PAYER", false) || env("AWS_REQUEST_PAYER") == "requester";
  AwsCredentials credentials = sign ? aws_credentials() : AwsCredentials{};
};
const S3Access& s3() {
  static const S3Access a;
  return a;
}

// s3://bucket/key as an http(s) URL, as GDAL's /vsis3/ addresses it.
std::string s3_url(const std::string& object) {
  const S3Access& a = s3();
  const std::string rest = object.substr(5);
  const auto slash = rest.find('/');
  const std::string bucket = rest.substr(0, slash), key = slash == std::string::npos ? "" : rest.substr(slash + 1);
  std::string endpoint = a.endpoint;
  if (endpoint.empty()) endpoint = a.region.empty() ? "s3.amazonaws.com" : "s3." + a.region + ".amazonaws.com";
  const std::string scheme = a.https ? "https://" : "http://";
  if (a.virtual_hosting && bucket.find('.') == std::string::npos) return scheme + bucket + "." + endpoint + "/" + key;
  return scheme + endpoint + "/" + bucket + "/" + key;
}

// Planetary Computer's blobs are read with a SAS token per storage account and container.
class SasTokens {
 public:
  // The token's key ("account/container") for a URL that needs one; "" when it needs none.
  static std::string key_of(const std::string& url) {
    const std::string hosts = env("EO_SAS_HOSTS", ".blob.core.windows.net");
    const auto scheme = url.find("://");
    if (scheme == std::string::npos) return "";
    const auto path = url.find('/', scheme + 3);
    const std::string host = url.substr(scheme + 3, path == std::string::npos ? std::string::npos : path - scheme - 3);
    const std::string rest = path == std::string::npos ? "" : url.substr(path + 1);
    std::size_t start = 0;
    while (start <= hosts.size()) {
      const auto comma = hosts.find(',', start);
      const std::string h = hosts.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      start = comma == std::string::npos ? hosts.size() + 1 : comma + 1;
      if (h.empty()) continue;
      if (h.find("://") != std::string::npos) {  // a URL prefix: the container is the next folder
        if (!url.starts_with(h)) continue;
        const std::string after = url.substr(h.size());
        return fmt::format("{}/{}", host, after.substr(0, after.find('/')));
      }
      if (host.ends_with(h)) return fmt::format("{}/{}", host.substr(0, host.find('.')), rest.substr(0, rest.find('/')));
    }
    return "";
  }

  // The token's query string, fetched when there is none, it is near its expiry, or it is
  // `refused` (a 403 with it: revoked); a token another request renewed already is used.
  // Throws std::runtime_error saying why none can be had.
  std::string token(const std::string& key, const std::string& refused = "");

 private:
  struct Token {
    std::string query;
    std::time_t expiry = 0;
  };
  std::mutex mutex_;
  std::map<std::string, Token> tokens_;
};
SasTokens& sas() {
  static SasTokens t;
  return t;
}

// --- Requests ----------------------------------------------------------------------------

struct Request {
  std::string object;    // s3://... or the URL without the signature: the object's name
  std::string url;       // what is fetched (unsigned)
  std::int64_t offset = 0, length = -1;  // length -1: the whole body, no range
  // The result
  std::string body;
  long status = 0;
  std::int64_t total = -1;  // the object's size, from Content-Range (or the body of a 200)
  std::string etag;
  // Per attempt
  std::string content_range, retry_after;
  int attempts = 0;
  Clock::time_point first, wake;
  bool sign = true;   // false: the token endpoint's own request
  std::string token;  // the SAS token the last attempt was signed with
  bool renewed_token = false;
  char error[CURL_ERROR_SIZE] = {};
};

std::size_t on_body(char* data, std::size_t size, std::size_t n, void* user) {
  auto* r = static_cast<Request*>(user);
  const std::size_t bytes = size * n;
  // A body longer than asked for is a server's mistake: stop it (the check below fails it).
  if (r->length >= 0 && static_cast<std::int64_t>(r->body.size() + bytes) > r->length) return 0;
  r->body.append(data, bytes);
  return bytes;
}

std::size_t on_header(char* data, std::size_t size, std::size_t n, void* user) {
  auto* r = static_cast<Request*>(user);
  std::string line(data, size * n);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
  if (line.starts_with("HTTP/")) {  // a new response (after a redirect): forget the last one's
    r->etag.clear(), r->content_range.clear(), r->retry_after.clear();
    return size * n;
  }
  const auto colon = line.find(':');
  if (colon == std::string::npos) return size * n;
  std::string name = line.substr(0, colon), value = line.substr(colon + 1);
  std::transform(name.begin(), name.end(), name.begin(), ::tolower);
  value.erase(0, value.find_first_not_of(' '));
  if (name == "etag") r->etag = value;
  if (name == "content-range") r->content_range = value;
  if (name == "retry-after") r->retry_after = value;
  return size * n;
}

struct Multi {
  CURLM* handle = curl_multi_init();
  ~Multi() { curl_multi_cleanup(handle); }
};
// One per reading thread: its connections stay open from one read to the next.
thread_local Multi multi;

std::string signed_url(Request& r) {
  const std::string key = SasTokens::key_of(r.url);
  if (key.empty()) return r.url;
  r.token = sas().token(key);
  return r.url + (r.url.find('?') == std::string::npos ? "?" : "&") + r.token;
}

CURL* start(Request& r, curl_slist*& headers) {
  CURL* e = curl_easy_init();
  curl_easy_setopt(e, CURLOPT_URL, (r.sign ? signed_url(r) : r.url).c_str());
  curl_easy_setopt(e, CURLOPT_PRIVATE, &r);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &r);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, &r);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r.error);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(settings().timeout_s * 1000));
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(std::min(settings().timeout_s, 15.0) * 1000));
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2TLS);
  curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);  // wait for an HTTP/2 connection to multiplex over
  curl_easy_setopt(e, CURLOPT_USERAGENT, "eo-pipeline");
  // The certificate authorities GDAL's own requests trust, where they are set.
  const char* ca = CPLGetConfigOption("CURL_CA_BUNDLE", CPLGetConfigOption("SSL_CERT_FILE", nullptr));
  if (ca && *ca) curl_easy_setopt(e, CURLOPT_CAINFO, ca);
  const std::string range = r.length >= 0 ? fmt::format("{}-{}", r.offset, r.offset + r.length - 1) : "";
  if (!range.empty()) curl_easy_setopt(e, CURLOPT_RANGE, range.c_str());
  if (r.object.starts_with("s3://")) {
    const S3Access& a = s3();
    if (a.requester_pays) headers = curl_slist_append(headers, "x-amz-request-payer: requester");
    if (a.sign && !a.credentials.key.empty()) {
      const std::string sigv4 = fmt::format("aws:amz:{}:s3", a.region.empty() ? "us-east-1" : a.region);
      curl_easy_setopt(e, CURLOPT_AWS_SIGV4, sigv4.c_str());
      curl_easy_setopt(e, CURLOPT_USERNAME, a.credentials.key.c_str());
      curl_easy_setopt(e, CURLOPT_PASSWORD, a.credentials.secret.c_str());
      if (!a.credentials.token.empty())
        headers = curl_slist_append(headers, ("x-amz-security-token: " + a.credentials.token).c_str());
    }
  }
  if (headers) curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
  r.body.clear();
  r.error[0] = '\0';
  r.status = 0;
  ++r.attempts;
  ++n_requests;
  return e;
}

// fail: the object's own answer (404, 403, a wrong length); access: no answer can come
// until the user mends something that is not the object (the URL, the host's name, the
// certificates trusted); retry: anything on the way, which may pass.
enum class Outcome { ok, retry, fail, access };

// Whether the response is the range asked for, whole and of the object already seen.
Outcome judge(Request& r, CURLcode code, std::string& why) {
  const auto reason = [&] { return std::string(r.error[0] ? r.error : curl_easy_strerror(code)); };
  if (code != CURLE_OK) {
    why = reason();
    const bool access = code == CURLE_URL_MALFORMAT || code == CURLE_UNSUPPORTED_PROTOCOL ||
                        code == CURLE_COULDNT_RESOLVE_HOST || code == CURLE_SSL_CACERT_BADFILE ||
                        code == CURLE_PEER_FAILED_VERIFICATION;
    return access ? Outcome::access : Outcome::retry;
  }
  if (r.status == 429 || r.status == 408 || r.status >= 500) {
    why = fmt::format("HTTP {}", r.status);
    return Outcome::retry;
  }
  if (r.status == 403 && r.sign && !r.renewed_token && !SasTokens::key_of(r.url).empty()) {
    // An expired or revoked SAS token: fetched anew, once.
    r.renewed_token = true;
    sas().token(SasTokens::key_of(r.url), r.token);
    why = "HTTP 403";
    return Outcome::retry;
  }
  if (r.status == 404) return why = "HTTP 404 Not Found", Outcome::fail;
  if (r.status == 403) return why = "HTTP 403 Forbidden", Outcome::fail;
  if (r.length < 0) {
    if (r.status != 200) return why = fmt::format("HTTP {}", r.status), Outcome::fail;
    return Outcome::ok;
  }
  if (r.status == 206) {
    long long a = -1, b = -1, total = -1;
    if (std::sscanf(r.content_range.c_str(), "bytes %lld-%lld/%lld", &a, &b, &total) != 3 || a != r.offset ||
        static_cast<std::int64_t>(r.body.size()) != b - a + 1 ||
        (b + 1 != r.offset + r.length && b + 1 != total)) {
      why = fmt::format("a short or wrong body: {} bytes for bytes {}-{} (Content-Range '{}')", r.body.size(), r.offset,
                        r.offset + r.length - 1, r.content_range);
      return Outcome::retry;
    }
    r.total = total;
    return Outcome::ok;
  }
  if (r.status == 200 && r.offset == 0) {  // a server that ignores Range sends it all: the size is the body's
    const std::int64_t got = static_cast<std::int64_t>(r.body.size());
    if (got <= r.length) {
      r.total = got;
      return Outcome::ok;
    }
  }
  if (r.status == 416) return why = "HTTP 416 Range Not Satisfiable (the object is shorter than the catalog says)", Outcome::fail;
  why = fmt::format("HTTP {}", r.status);
  return Outcome::fail;
}

double backoff_s(const Request& r) {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  const double base = settings().retry_s * std::pow(2.0, r.attempts - 1);
  double wait = std::uniform_real_distribution<double>(0.5, 1.0)(rng) * std::min(base, 30.0);  // jitter
  if (!r.retry_after.empty()) {
    char* end = nullptr;
    const double s = std::strtod(r.retry_after.c_str(), &end);
    if (end && *end == '\0' && s >= 0) wait = std::max(wait, std::min(s, 300.0));
  }
  return wait;
}

// Performs the requests, up to EO_HTTP_IN_FLIGHT at once, each retried as settings say.
// "" when all succeeded; else why the first that failed did (the caller names the object).
std::string perform(std::vector<Request>& requests, CURLM* handle = multi.handle) {
  const Settings& s = settings();
  std::deque<Request*> ready;
  std::vector<Request*> waiting;
  for (Request& r : requests) {
    r.first = Clock::now();
    ready.push_back(&r);
  }
  std::map<CURL*, curl_slist*> active;
  std::string failure;
  const auto finish = [&](CURL* e) {
    curl_multi_remove_handle(handle, e);
    curl_slist_free_all(active.at(e));
    active.erase(e);
    curl_easy_cleanup(e);
  };
  while (failure.empty() && (!ready.empty() || !waiting.empty() || !active.empty())) {
    const auto now = Clock::now();
    for (auto it = waiting.begin(); it != waiting.end();)
      if ((*it)->wake <= now) ready.push_back(*it), it = waiting.erase(it);
      else ++it;
    while (failure.empty() && !ready.empty() && static_cast<int>(active.size()) < s.in_flight) {
      Request* r = ready.front();
      ready.pop_front();
      curl_slist* headers = nullptr;
      try {
        CURL* e = start(*r, headers);
        active[e] = headers;
        curl_multi_add_handle(handle, e);
      } catch (const std::exception& ex) {  // a SAS token that cannot be had
        curl_slist_free_all(headers);
        failure = ex.what();
      }
    }
    if (!failure.empty()) break;
    int running = 0;
    curl_multi_perform(handle, &running);
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(handle, &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      CURL* e = msg->easy_handle;
      const CURLcode code = msg->data.result;
      Request* r = nullptr;
      curl_easy_getinfo(e, CURLINFO_PRIVATE, &r);
      curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r->status);
      finish(e);
      std::string why;
      Outcome o = Outcome::fail;
      try {
        o = judge(*r, code, why);
      } catch (const std::exception& ex) {
        why = ex.what();
      }
      const double spent = std::chrono::duration<double>(Clock::now() - r->first).count();
      if (o == Outcome::retry && r->attempts < s.attempts && spent < s.max_wait_s) {
        r->wake = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(backoff_s(*r)));
        waiting.push_back(r);
      } else if (o != Outcome::ok && failure.empty()) {
        failure = o == Outcome::retry ? fmt::format("{} ({} attempts in {:.1f} s)", why, r->attempts, spent) : why;
        last_failure_not_the_objects = o == Outcome::retry || o == Outcome::access;
      }
    }
    if (!failure.empty()) break;
    if (active.empty() && ready.empty() && !waiting.empty()) {
      auto wake = waiting.front()->wake;
      for (Request* r : waiting) wake = std::min(wake, r->wake);
      std::this_thread::sleep_until(wake);
    } else if (!active.empty()) {
      curl_multi_poll(handle, nullptr, 0, 100, nullptr);
    }
  }
  while (!active.empty()) finish(active.begin()->first);
  return failure;
}

std::string SasTokens::token(const std::string& key, const std::string& refused) {
  std::lock_guard lock(mutex_);
  const std::time_t now = std::time(nullptr);
  auto it = tokens_.find(key);
  if (it != tokens_.end() && it->second.expiry - 60 > now && it->second.query != refused) return it->second.query;
  std::vector<Request> request(1);
  Request& q = request.front();
  q.url = q.object = env("EO_SAS_TOKEN_URL", "https://planetarycomputer.microsoft.com/api/sas/v1/token") + "/" + key;
  q.sign = false;
  // A multi handle of its own: this runs inside a transfer of the thread's.
  Multi own;
  if (const std::string failure = perform(request, own.handle); !failure.empty())
    throw std::runtime_error(fmt::format("no SAS token from {}: {}", redact_url(q.url), failure));
  Token t;
  try {
    const auto j = nlohmann::json::parse(q.body);
    t.query = j.at("token").get<std::string>();
    std::tm tm{};
    const std::string expiry = j.value("msft:expiry", "");
    t.expiry = strptime(expiry.c_str(), "%Y-%m-%dT%H:%M:%S", &tm) ? timegm(&tm) : now + 600;
  } catch (const std::exception&) {
    throw std::runtime_error(fmt::format("the SAS token endpoint {} answered no token", redact_url(q.url)));
  }
  tokens_[key] = t;
  return t.query;
}

// GDAL hands the handler's callbacks the name without the prefix; ours with it.
std::string object_of(const char* filename) {
  const std::string name = filename;
  return name.starts_with(kPrefix) ? name.substr(std::strlen(kPrefix)) : name;
}

// --- Objects and the chunk cache -----------------------------------------------------------

struct ObjectState {
  std::int64_t size = -1;
  std::string etag;
};

using Chunk = std::shared_ptr<const std::string>;

class Store {
 public:
  std::optional<ObjectState> state(const std::string& object) {
    std::lock_guard lock(mutex_);
    auto it = objects_.find(object);
    if (it == objects_.end()) return std::nullopt;
    return it->second;
  }
  // Records what a response says of its object; throws when that is not what was seen before.
  void observe(const std::string& object, std::int64_t size, const std::string& etag) {
    std::lock_guard lock(mutex_);
    ObjectState& s = objects_[object];
    if ((s.size >= 0 && size >= 0 && s.size != size) || (!s.etag.empty() && !etag.empty() && s.etag != etag))
      throw std::runtime_error(fmt::format("the object changed during the run (size {} and ETag {}, now {} and {}); "
                                           "run again to read the new one from the start",
                                           s.size, s.etag, size, etag));
    if (s.size < 0) s.size = size;
    if (s.etag.empty()) s.etag = etag;
  }
  Chunk get(const std::string& object, std::int64_t index) {
    std::lock_guard lock(mutex_);
    auto it = chunks_.find(key(object, index));
    if (it == chunks_.end()) return nullptr;
    lru_.splice(lru_.begin(), lru_, it->second.second);
    return it->second.first;
  }
  // Claims a chunk for the calling thread to fetch; false when it is cached or another
  // thread is fetching it (a prefetch ahead of the reads): await() it instead of fetching
  // it twice.
  bool claim(const std::string& object, std::int64_t index) {
    const std::string k = key(object, index);
    std::lock_guard lock(mutex_);
    return !chunks_.count(k) && pending_.insert(k).second;
  }
  void release(const std::string& object, const std::vector<std::int64_t>& indices) {
    if (indices.empty()) return;
    {
      std::lock_guard lock(mutex_);
      for (std::int64_t i : indices) pending_.erase(key(object, i));
    }
    fetched_.notify_all();
  }
  // The chunk once no thread is fetching it; null when it was not had (a failed prefetch).
  Chunk await(const std::string& object, std::int64_t index) {
    const std::string k = key(object, index);
    std::unique_lock lock(mutex_);
    fetched_.wait(lock, [&] { return !pending_.count(k); });
    auto it = chunks_.find(k);
    if (it == chunks_.end()) return nullptr;
    lru_.splice(lru_.begin(), lru_, it->second.second);
    return it->second.first;
  }
  void put(const std::string& object, std::int64_t index, Chunk chunk) {
    std::lock_guard lock(mutex_);
    const std::string k = key(object, index);
    if (chunks_.count(k)) return;
    bytes_ += static_cast<std::int64_t>(chunk->size());
    lru_.push_front(k);
    chunks_.emplace(k, std::make_pair(std::move(chunk), lru_.begin()));
    while (bytes_ > settings().cache_bytes && !lru_.empty()) {
      auto victim = chunks_.find(lru_.back());
      bytes_ -= static_cast<std::int64_t>(victim->second.first->size());
      chunks_.erase(victim);
      lru_.pop_back();
    }
  }

 private:
  static std::string key(const std::string& object, std::int64_t index) { return fmt::format("{}#{}", object, index); }
  std::mutex mutex_;
  std::unordered_map<std::string, ObjectState> objects_;
  std::list<std::string> lru_;
  std::unordered_map<std::string, std::pair<Chunk, std::list<std::string>::iterator>> chunks_;
  std::unordered_set<std::string> pending_;  // chunks a thread is fetching
  std::condition_variable fetched_;
  std::int64_t bytes_ = 0;
};
Store& store() {
  static Store s;
  return s;
}

std::string url_of(const std::string& object) { return object.starts_with("s3://") ? s3_url(object) : object; }

// Chunks [first, last] of an object, fetched in one request.
struct Run {
  std::string object;
  std::int64_t first = 0, last = 0;
};

// Fetches the runs (of one object or many) at once and puts their chunks in the cache, and
// in `got` when given (runs of one object).
std::string fetch_runs(const std::vector<Run>& runs, std::map<std::int64_t, Chunk>* got = nullptr) {
  std::vector<Request> requests(runs.size());
  for (std::size_t i = 0; i < runs.size(); ++i) {
    requests[i].object = runs[i].object;
    requests[i].url = url_of(runs[i].object);
    requests[i].offset = runs[i].first * kChunk;
    requests[i].length = (runs[i].last - runs[i].first + 1) * kChunk;
  }
  if (std::string failure = perform(requests); !failure.empty()) return failure;
  try {
    for (std::size_t i = 0; i < runs.size(); ++i) {
      Request& r = requests[i];
      store().observe(r.object, r.total, r.etag);
      for (std::int64_t c = runs[i].first; c <= runs[i].last; ++c) {
        const std::int64_t at = (c - runs[i].first) * kChunk;
        if (at >= static_cast<std::int64_t>(r.body.size())) break;  // past the end of the object
        auto chunk = std::make_shared<const std::string>(r.body.substr(static_cast<std::size_t>(at), kChunk));
        store().put(r.object, c, chunk);
        if (got) (*got)[c] = std::move(chunk);
      }
    }
  } catch (const std::exception& e) {  // the object changed during the run: a run again reads the new one
    last_failure_not_the_objects = true;
    return e.what();
  }
  return "";
}

// Sorted chunks of an object as runs, those close together merged into one request.
void add_runs(const std::string& object, std::vector<std::int64_t> chunks, std::vector<Run>& runs) {
  std::sort(chunks.begin(), chunks.end());
  const std::size_t first = runs.size();
  for (std::int64_t c : chunks)
    if (runs.size() > first && c - runs.back().last <= kMergeGapChunks && c - runs.back().first < kMaxRunChunks)
      runs.back().last = c;
    else
      runs.push_back({object, c, c});
}

// Chunks this thread claimed, released however the fetch ends.
struct Claims {
  std::map<std::string, std::vector<std::int64_t>> chunks;
  ~Claims() {
    for (const auto& [object, indices] : chunks) store().release(object, indices);
  }
};

// The object's size, fetching its first chunk (which a reader of its header needs next)
// when it is not known yet; -1 with the failure recorded when it cannot be had.
std::int64_t object_size(const std::string& object) {
  const auto known = [&] {
    const auto s = store().state(object);
    return s ? s->size : -1;
  };
  if (known() >= 0) return known();
  // Another thread fetching the first chunk (a prefetch of the header) learns it as well.
  Claims claims;
  if (store().claim(object, 0)) claims.chunks[object] = {0};
  else if (store().await(object, 0) && known() >= 0) return known();
  if (std::string failure = fetch_runs({{object, 0, 0}}); !failure.empty()) {
    last_failure = failure;
    return -1;
  }
  return known();
}

// Reads the ranges of the object into the buffers: from the cache, the rest in runs of
// adjacent chunks fetched at once; chunks a prefetch is fetching are waited for. False,
// with the failure recorded, when any cannot be had.
bool read_ranges(const std::string& object, int n, void** buffers, const vsi_l_offset* offsets, const size_t* sizes) {
  const std::int64_t size = object_size(object);
  if (size < 0) return false;
  std::map<std::int64_t, Chunk> got;
  for (int i = 0; i < n; ++i) {
    const auto off = static_cast<std::int64_t>(offsets[i]);
    const std::int64_t end = std::min(size, off + static_cast<std::int64_t>(sizes[i]));
    for (std::int64_t c = off / kChunk; sizes[i] > 0 && c * kChunk < end; ++c) got.emplace(c, nullptr);
  }
  // First what is cached, then what another thread fetches, then the rest; a chunk a
  // failed prefetch did not get is fetched here, in a second round.
  for (int round = 0; round < 2; ++round) {
    std::vector<std::int64_t> mine, awaited;
    for (auto& [c, chunk] : got) {
      if (chunk || (chunk = store().get(object, c))) continue;
      if (round == 0 && !store().claim(object, c)) awaited.push_back(c);
      else mine.push_back(c);
    }
    Claims claims;
    if (round == 0) claims.chunks[object] = mine;
    std::vector<Run> runs;
    add_runs(object, mine, runs);
    if (!runs.empty())
      if (std::string failure = fetch_runs(runs, &got); !failure.empty()) {
        last_failure = failure;
        return false;
      }
    for (std::int64_t c : awaited) got[c] = store().await(object, c);
  }
  for (int i = 0; i < n; ++i) {
    auto off = static_cast<std::int64_t>(offsets[i]);
    const std::int64_t end = off + static_cast<std::int64_t>(sizes[i]);
    if (end > size) {
      last_failure = fmt::format("a read past the end of the object ({} bytes)", size);
      return false;
    }
    auto* out = static_cast<char*>(buffers[i]);
    while (off < end) {
      const Chunk& chunk = got.at(off / kChunk);
      const std::int64_t in = off % kChunk;
      const std::int64_t take = chunk ? std::min(end - off, static_cast<std::int64_t>(chunk->size()) - in) : 0;
      if (take <= 0) {
        last_failure = fmt::format("bytes {}-{} missing after the read", off, end - 1);
        return false;
      }
      std::memcpy(out, chunk->data() + in, static_cast<std::size_t>(take));
      out += take;
      off += take;
    }
  }
  return true;
}

// Fetches the ranges' chunks that are neither cached nor being fetched, all at once;
// failures are left to the reads, which fetch again and say why.
void fetch_ahead(const std::vector<RemoteRange>& ranges) {
  std::map<std::string, std::set<std::int64_t>> wanted;
  for (const RemoteRange& r : ranges) {
    const std::string readable = readable_path(r.path);
    if (!readable.starts_with(kPrefix) || r.length <= 0) continue;
    const std::string object = object_of(readable.c_str());
    for (std::int64_t c = r.offset / kChunk; c * kChunk < r.offset + r.length; ++c) wanted[object].insert(c);
  }
  Claims claims;
  std::vector<Run> runs;
  for (const auto& [object, chunks] : wanted) {
    std::vector<std::int64_t>& mine = claims.chunks[object];
    for (std::int64_t c : chunks)
      if (store().claim(object, c)) mine.push_back(c);
    add_runs(object, mine, runs);
  }
  if (!runs.empty()) fetch_runs(runs);
  last_failure.clear();
  last_failure_not_the_objects = false;
}

// --- The GDAL file system handler ----------------------------------------------------------

struct Handle {
  std::string object;
  std::int64_t size = 0, pos = 0;
  bool eof = false;
};

int on_stat(void*, const char* filename, VSIStatBufL* st, int) {
  const std::int64_t size = object_size(object_of(filename));
  if (size < 0) {
    errno = ENOENT;
    return -1;
  }
  std::memset(st, 0, sizeof(*st));
  st->st_size = static_cast<vsi_l_offset>(size);
  st->st_mode = S_IFREG | 0444;
  return 0;
}

void* on_open(void*, const char* filename, const char* access) {
  if (access && (std::strchr(access, 'w') || std::strchr(access, 'a') || std::strchr(access, '+'))) {
    errno = EACCES;
    return nullptr;
  }
  const std::string object = object_of(filename);
  const std::int64_t size = object_size(object);
  if (size < 0) {
    errno = ENOENT;
    CPLError(CE_Failure, CPLE_OpenFailed, "%s", last_failure.c_str());
    return nullptr;
  }
  return new Handle{object, size, 0, false};
}

vsi_l_offset on_tell(void* f) { return static_cast<vsi_l_offset>(static_cast<Handle*>(f)->pos); }

int on_seek(void* f, vsi_l_offset offset, int whence) {
  auto* h = static_cast<Handle*>(f);
  const auto off = static_cast<std::int64_t>(offset);
  h->pos = whence == SEEK_SET ? off : whence == SEEK_CUR ? h->pos + off : h->size + off;
  h->eof = false;
  return 0;
}

size_t on_read(void* f, void* buffer, size_t size, size_t count) {
  auto* h = static_cast<Handle*>(f);
  if (size == 0 || count == 0) return 0;
  std::int64_t want = static_cast<std::int64_t>(size * count);
  if (h->pos + want > h->size) {
    want = std::max<std::int64_t>(0, h->size - h->pos);
    h->eof = true;
  }
  const auto offset = static_cast<vsi_l_offset>(h->pos);
  const auto n = static_cast<size_t>(want);
  void* buffers[] = {buffer};
  if (n > 0 && !read_ranges(h->object, 1, buffers, &offset, &n)) {
    CPLError(CE_Failure, CPLE_FileIO, "%s", last_failure.c_str());
    return 0;
  }
  h->pos += want;
  return static_cast<size_t>(want) / size;
}

int on_read_multi_range(void* f, int n, void** buffers, const vsi_l_offset* offsets, const size_t* sizes) {
  auto* h = static_cast<Handle*>(f);
  if (!read_ranges(h->object, n, buffers, offsets, sizes)) {
    CPLError(CE_Failure, CPLE_FileIO, "%s", last_failure.c_str());
    return -1;
  }
  return 0;
}

int on_eof(void* f) { return static_cast<Handle*>(f)->eof ? 1 : 0; }

int on_close(void* f) {
  delete static_cast<Handle*>(f);
  return 0;
}

// A COG is one file: no side-car to look for (each a round trip GDAL would otherwise make).
char** on_siblings(void*, const char*) { return static_cast<char**>(CPLCalloc(1, sizeof(char*))); }

}  // namespace

void install_remote_reader() {
  static std::once_flag once;
  std::call_once(once, [] {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    VSIFilesystemPluginCallbacksStruct* cb = VSIAllocFilesystemPluginCallbacksStruct();
    cb->stat = on_stat;
    cb->open = on_open;
    cb->tell = on_tell;
    cb->seek = on_seek;
    cb->read = on_read;
    cb->read_multi_range = on_read_multi_range;
    cb->eof = on_eof;
    cb->close = on_close;
    cb->sibling_files = on_siblings;
    VSIInstallPluginHandler(kPrefix, cb);
    VSIFreeFilesystemPluginCallbacksStruct(cb);
  });
}

bool is_remote_path(const std::string& path) {
  return path.starts_with("/vsicurl/http") || path.starts_with("/vsis3/") || path.starts_with(kPrefix);
}

std::string readable_path(const std::string& path) {
  if (path.starts_with("/vsicurl/http")) return kPrefix + path.substr(9);
  if (path.starts_with("/vsis3/")) return std::string(kPrefix) + "s3://" + path.substr(7);
  return path;
}

std::string redact_url(const std::string& url) {
  const auto q = url.find('?');
  return q == std::string::npos ? url : url.substr(0, q);
}

std::string unsigned_href(const std::string& url) { return SasTokens::key_of(url).empty() ? url : redact_url(url); }

std::string take_remote_failure() { return std::exchange(last_failure, std::string()); }

bool take_remote_failure_not_the_objects() { return std::exchange(last_failure_not_the_objects, false); }

std::optional<RemoteObjectInfo> remote_object_info(const std::string& path) {
  install_remote_reader();
  const std::string readable = readable_path(path);
  if (!readable.starts_with(kPrefix)) return std::nullopt;
  const std::string object = object_of(readable.c_str());
  if (object_size(object) < 0) return std::nullopt;
  const auto s = store().state(object);
  return RemoteObjectInfo{s->size, s->etag};
}

bool read_remote_ranges(const std::string& path, int n, void** buffers, const std::uint64_t* offsets, const std::size_t* sizes) {
  install_remote_reader();
  const std::string readable = readable_path(path);
  if (!readable.starts_with(kPrefix)) {
    last_failure = path + " is not a remote path";
    return false;
  }
  static_assert(sizeof(vsi_l_offset) == sizeof(std::uint64_t));
  return read_ranges(object_of(readable.c_str()), n, buffers, reinterpret_cast<const vsi_l_offset*>(offsets), sizes);
}

void fetch_remote(const std::vector<RemoteRange>& ranges) {
  install_remote_reader();
  fetch_ahead(ranges);
}

RemotePrefetch::RemotePrefetch(std::vector<RemoteRange> ranges) : ranges_(std::move(ranges)) {
  install_remote_reader();
  std::stable_sort(ranges_.begin(), ranges_.end(), [](const RemoteRange& a, const RemoteRange& b) { return a.step < b.step; });
  if (!ranges_.empty()) thread_ = std::thread([this] { loop(); });
}

RemotePrefetch::~RemotePrefetch() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  changed_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void RemotePrefetch::reached(int step) {
  {
    std::lock_guard lock(mutex_);
    reached_ = std::max(reached_, step);
  }
  changed_.notify_all();
}

void RemotePrefetch::loop() {
  for (std::size_t first = 0, next = 0; first < ranges_.size(); first = next) {
    const int step = ranges_[first].step;
    next = first;
    while (next < ranges_.size() && ranges_[next].step == step) ++next;
    {
      std::unique_lock lock(mutex_);
      changed_.wait(lock, [&] { return stop_ || reached_ >= step - 1; });
      if (stop_) return;
      if (reached_ > step) continue;  // the reads are past it already
    }
    fetch_ahead({ranges_.begin() + static_cast<std::ptrdiff_t>(first), ranges_.begin() + static_cast<std::ptrdiff_t>(next)});
  }
}

std::int64_t remote_requests() { return n_requests.load(); }

}  // namespace eo
