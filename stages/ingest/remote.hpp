#pragma once
// Remote inputs: COGs over http(s) and S3, read through GDAL as if they were files, by a
// reader of our own on libcurl's multi interface (why not GDAL's /vsicurl/: docs/decisions.md,
// issue 29). GDAL opens `/vsieo/URL`; the reader fetches the byte ranges GDAL asks for,
// many in flight at once, adjacent ranges merged, into a bounded cache of 64 KiB chunks
// shared by every thread and tile of the process (a COG's header and a block under the
// border of two tiles are fetched once). A request that fails as object stores fail (429,
// 5xx, a reset, a timeout, a short body) is retried with exponential backoff and jitter,
// honouring Retry-After, within a bounded number of attempts and time; a 404 or 403 is not.
// Every response is checked against the object's size and ETag: an object that changes
// during a run is an error that names it, never a mix of two versions. Latency is paid per
// batch, not per read: the chip stage fetches a tile's headers at once and each row's
// blocks while the row before is warped (RemotePrefetch), and the GeoTIFF block decoder
// (tiff_blocks) fetches a window's blocks at once.
//
// Catalogs keep GDAL's names (/vsicurl/https://..., /vsis3/bucket/key); `readable_path`
// maps them onto the reader. Settings come from the environment, as GDAL's and the AWS
// tools' do:
//   EO_HTTP_ATTEMPTS (6)        attempts per request
//   EO_HTTP_RETRY_S (0.5)       first backoff; doubles per attempt, with jitter
//   EO_HTTP_MAX_WAIT_S (120)    time a request may spend on retries
//   EO_HTTP_TIMEOUT_S (60)      one attempt, connect to last byte
//   EO_HTTP_IN_FLIGHT (64)      requests in flight per reading thread
//   EO_HTTP_CACHE_MB (256)      the chunk cache, per process
//   AWS_S3_ENDPOINT, AWS_HTTPS, AWS_VIRTUAL_HOSTING, AWS_REGION / AWS_DEFAULT_REGION,
//   AWS_NO_SIGN_REQUEST, AWS_REQUEST_PAYER, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
//   AWS_SESSION_TOKEN, AWS_PROFILE (~/.aws/credentials)   as GDAL's /vsis3/ reads them
//   EO_SAS_TOKEN_URL (https://planetarycomputer.microsoft.com/api/sas/v1/token),
//   EO_SAS_HOSTS (.blob.core.windows.net): URLs on these hosts (a suffix, or a URL prefix)
//   are signed with a SAS token per account and container, kept until it expires and
//   fetched anew on a 403.

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace eo {

// Installs the /vsieo/ handler into GDAL (once).
void install_remote_reader();

// The path GDAL is to open for a catalog path: /vsicurl/URL and /vsis3/BUCKET/KEY through
// the reader, anything else as it is.
std::string readable_path(const std::string& path);
bool is_remote_path(const std::string& path);

// A URL or path as it may be shown: its query string (a SAS token, a signature) left out.
std::string redact_url(const std::string& url);
// A STAC href as a catalog keeps it: a URL the reader signs itself (EO_SAS_HOSTS) loses the
// token it was saved with (planetary_computer.sign), which would expire and, kept, be
// written into every journal and provenance file; any other URL is kept as it is.
std::string unsigned_href(const std::string& url);

// Why the calling thread's last remote read or open failed: "HTTP 404 Not Found",
// "Connection reset by peer (6 attempts in 11.2 s)"; "" when none did. Taken once.
std::string take_remote_failure();
// Whether the calling thread's last remote failure since it last opened a raster said
// nothing of the object itself: one that passes (retries spent on 429/5xx, resets or
// timeouts; the object changed during the run) or one of access (a host name that does
// not resolve, a certificate not trusted), as against the object's own answer (404, 403).
// A run again, or with its access mended, reads the object. Taken once.
bool take_remote_failure_not_the_objects();

// Size and ETag of a remote object, from the reader's cache or one ranged request;
// nullopt, with take_remote_failure() saying why, when it cannot be read.
struct RemoteObjectInfo {
  std::int64_t size = -1;
  std::string etag;
};
std::optional<RemoteObjectInfo> remote_object_info(const std::string& path);

// Reads byte ranges of a remote file (a catalog path, or what readable_path makes of one) at
// once: from the cache, the rest fetched in runs, many in flight. False, with
// take_remote_failure() saying why, when any cannot be had.
bool read_remote_ranges(const std::string& path, int n, void** buffers, const std::uint64_t* offsets, const std::size_t* sizes);

// Bytes of a remote file wanted soon, and by which step of the reads (a row of chips).
struct RemoteRange {
  std::string path;
  std::int64_t offset = 0, length = 0;
  int step = 0;
};

// Fetches the ranges into the cache now, all at once (the headers of the files a tile is
// about to open). Failures are left to the reads, which fetch again and say why. Paths
// that are not remote are skipped.
void fetch_remote(const std::vector<RemoteRange>& ranges);

// Fetches ranges into the cache ahead of the reads that need them, on a thread of its own,
// so that latency is paid once per step rather than once per read: step 0 and 1 at once,
// each later step once the reads have reached the step before it (reached()), so that
// what is fetched ahead stays within about two steps. What the reads need and no range
// said is still read as before, and a range fetched in vain costs only bytes.
class RemotePrefetch {
 public:
  explicit RemotePrefetch(std::vector<RemoteRange> ranges);
  ~RemotePrefetch();  // abandons the steps not begun, and waits for the one under way
  RemotePrefetch(const RemotePrefetch&) = delete;
  RemotePrefetch& operator=(const RemotePrefetch&) = delete;
  void reached(int step);

 private:
  void loop();
  std::vector<RemoteRange> ranges_;
  std::mutex mutex_;
  std::condition_variable changed_;
  int reached_ = -1;
  bool stop_ = false;
  std::thread thread_;
};

// HTTP requests sent by this process (every attempt), for tests that a path makes none.
std::int64_t remote_requests();

}  // namespace eo
