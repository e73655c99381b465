/*
 * sendfile.c - zero-copy file → TCP socket transfer with Linux sendfile(2), for large
 * netboot artifacts (disk images of 512 MiB and more).
 *
 * Why this exists: streaming through Node copies every byte twice in user space (read() into
 * a Buffer, then write() to the socket) and on a small box that copy, not the network, is
 * the bottleneck. sendfile(2) moves page-cache pages to the socket inside the kernel.
 *
 * JS API (plain Node-API, NAPI_VERSION 8):
 *   sendfile(socketFd, fileFd, offset, length, timeoutMs, callback) -> Job
 *     Sends up to `length` bytes of the file starting at `offset` (the file position is not
 *     used or moved). Returns early, without error, when the socket buffer stays full for
 *     PROGRESS_GRACE_MS after some progress (the caller re-queues the rest). callback(code: string | null, bytesSent: number) runs on the JS thread
 *     when the job ends; `code` is null on success, else an errno name ("EPIPE",
 *     "ECONNRESET", "ETIMEDOUT" when the socket stayed unwritable for timeoutMs before any
 *     byte went out, "ECANCELED" after job.cancel()). The caller keeps timeoutMs short (a
 *     pool thread is held that long at most) and applies the real idle timeout itself. bytesSent counts bytes handed to the kernel, also on error.
 *   job.cancel(): void   idempotent; shuts the socket down so a waiting job ends at once.
 *
 * Threading: the transfer runs on the libuv thread pool (napi_async_work). libuv owns the
 * socket fd and its epoll registration, so the worker cannot wait through libuv; it waits
 * for POLLOUT with poll(2) on its own descriptor instead (never spins). The caller bounds
 * `length` (a few MiB) so that many clients share the small pool fairly and a stalled
 * client holds a thread for at most timeoutMs per turn.
 *
 * Descriptor safety: both fds are dup()ed on the JS thread when the job is created and the
 * duplicates are closed when it completes. If JS closes the socket (or the file) while the
 * worker runs, the worker keeps using the same open file descriptions and can never write
 * into an unrelated descriptor that reused the number.
 *
 * Lifetime: the Job wrapper is held by a strong reference until the completion callback
 * ran; the native struct is freed by the wrapper's finalizer, so cancel() after completion
 * is a harmless no-op.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>
#include "napi_common.h"

/* Per sendfile(2) call: large enough to amortize the syscall, small enough to recheck cancel. */
#define SYSCALL_CHUNK (1024 * 1024)
/* After progress, how long a job waits for a full socket to drain before it yields its thread. */
#define PROGRESS_GRACE_MS 5
/* poll(2) slice, so a cancelled job notices the flag even if the shutdown wakeup was missed. */
#define POLL_SLICE_MS 1000

typedef struct {
  napi_env env;
  napi_async_work work;
  napi_ref wrapper;  /* strong until complete */
  napi_ref callback;
  int socket_fd;     /* our dup, -1 once closed */
  int file_fd;       /* our dup, -1 once closed */
  int64_t offset;
  int64_t length;
  int64_t timeout_ms;
  int64_t sent;
  int error;         /* errno of the failure, 0 on success */
  atomic_bool cancelled;
  bool completed;    /* complete callback ran (JS thread only) */
} Job;

static int64_t monotonic_ms(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* Wait until the socket accepts data again. Returns 0, or an errno (ETIMEDOUT, ECANCELED, ...). */
static int wait_writable(Job *job, int64_t deadline) {
  for (;;) {
    if (atomic_load(&job->cancelled)) return ECANCELED;
    int64_t left = deadline - monotonic_ms();
    if (left <= 0) return ETIMEDOUT;
    struct pollfd pfd = {.fd = job->socket_fd, .events = POLLOUT};
    int ready = poll(&pfd, 1, (int)(left < POLL_SLICE_MS ? left : POLL_SLICE_MS));
    if (ready < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (ready == 0) continue;
    /* POLLERR/POLLHUP: let the next sendfile report the precise error (EPIPE, ECONNRESET). */
    return 0;
  }
}

static void execute(napi_env env, void *data) {
  Job *job = data;
  int64_t deadline = monotonic_ms() + job->timeout_ms;
  while (job->sent < job->length) {
    if (atomic_load(&job->cancelled)) {
      job->error = ECANCELED;
      return;
    }
    off_t offset = (off_t)(job->offset + job->sent);
    int64_t want = job->length - job->sent;
    ssize_t n = sendfile(job->socket_fd, job->file_fd, &offset, (size_t)(want < SYSCALL_CHUNK ? want : SYSCALL_CHUNK));
    if (n > 0) {
      job->sent += n;
      deadline = monotonic_ms() + job->timeout_ms; /* idle timeout: counts from the last progress */
      continue;
    }
    if (n == 0) {
      /* End of file before `length`: the file shrank under us. */
      job->error = ENODATA;
      return;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {
      /* The socket buffer is full again. A fast client drains it within a few ms, so wait
       * that long; a slower one gets its pool thread handed to another client (JS re-queues
       * the rest at the back of the pool's queue). Only a job that made no progress at all
       * waits up to timeoutMs, so a busy pool never spins. */
      int64_t wait_until = deadline;
      if (job->sent > 0) {
        int64_t grace = monotonic_ms() + PROGRESS_GRACE_MS;
        if (grace < wait_until) wait_until = grace;
      }
      int err = wait_writable(job, wait_until);
      if (err == ETIMEDOUT && job->sent > 0) return;
      if (err != 0) {
        job->error = err;
        return;
      }
      continue;
    }
    job->error = errno;
    return;
  }
}

static void close_fds(Job *job) {
  if (job->socket_fd >= 0) close(job->socket_fd);
  if (job->file_fd >= 0) close(job->file_fd);
  job->socket_fd = -1;
  job->file_fd = -1;
}

static void complete(napi_env env, napi_status status, void *data) {
  Job *job = data;
  job->completed = true;
  close_fds(job);
  napi_delete_async_work(env, job->work);
  job->work = NULL;
  if (status == napi_cancelled && job->error == 0) job->error = ECANCELED;

  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value callback, global, argv[2];
  napi_get_reference_value(env, job->callback, &callback);
  napi_get_global(env, &global);
  if (job->error == 0) {
    napi_get_null(env, &argv[0]);
  } else {
    napi_create_string_utf8(env, uv_err_name(-job->error), NAPI_AUTO_LENGTH, &argv[0]);
  }
  napi_create_double(env, (double)job->sent, &argv[1]);
  napi_delete_reference(env, job->callback);
  job->callback = NULL;
  napi_ref wrapper = job->wrapper;
  job->wrapper = NULL;
  napi_call_function(env, global, callback, 2, argv, NULL);
  raise_pending_exception(env);
  napi_delete_reference(env, wrapper); /* may now be finalized, which frees job */
  napi_close_handle_scope(env, scope);
}

static void finalize_job(napi_env env, void *data, void *hint) {
  Job *job = data;
  /* Only reachable after complete (the strong reference held it alive until then). */
  close_fds(job);
  free(job);
}

/* ---------- JS-facing functions ---------- */

static napi_value throw_type(napi_env env, const char *message) {
  napi_throw_type_error(env, NULL, message);
  return NULL;
}


static bool get_int64(napi_env env, napi_value value, int64_t *out) {
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_number) return false;
  double d;
  napi_get_value_double(env, value, &d);
  if (d != d || d < 0 || d > 9007199254740991.0 || d != (double)(int64_t)d) return false;
  *out = (int64_t)d;
  return true;
}

static napi_value job_cancel(napi_env env, napi_callback_info info) {
  napi_value self;
  napi_get_cb_info(env, info, NULL, NULL, &self, NULL);
  Job *job = NULL;
  if (napi_unwrap(env, self, (void **)&job) != napi_ok || job == NULL) return NULL;
  if (job->completed) return NULL;
  atomic_store(&job->cancelled, true);
  /* Wakes a worker blocked in poll() or sendfile(); the socket is being abandoned anyway. */
  if (job->socket_fd >= 0) shutdown(job->socket_fd, SHUT_RDWR);
  return NULL;
}

static napi_value start_sendfile(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 6) return throw_type(env, "sendfile(socketFd, fileFd, offset, length, timeoutMs, callback)");
  int64_t socket_fd, file_fd, offset, length, timeout_ms;
  if (!get_int64(env, argv[0], &socket_fd) || socket_fd > INT32_MAX) return throw_type(env, "socketFd must be a descriptor");
  if (!get_int64(env, argv[1], &file_fd) || file_fd > INT32_MAX) return throw_type(env, "fileFd must be a descriptor");
  if (!get_int64(env, argv[2], &offset)) return throw_type(env, "offset must be a non-negative integer");
  if (!get_int64(env, argv[3], &length)) return throw_type(env, "length must be a non-negative integer");
  if (!get_int64(env, argv[4], &timeout_ms) || timeout_ms < 1 || timeout_ms > INT32_MAX) {
    return throw_type(env, "timeoutMs must be a positive integer");
  }
  napi_valuetype type;
  napi_typeof(env, argv[5], &type);
  if (type != napi_function) return throw_type(env, "callback must be a function");

  Job *job = calloc(1, sizeof *job);
  if (job == NULL) return throw_errno(env, ENOMEM, "calloc");
  job->env = env;
  job->offset = offset;
  job->length = length;
  job->timeout_ms = timeout_ms;
  atomic_init(&job->cancelled, false);
  job->socket_fd = fcntl((int)socket_fd, F_DUPFD_CLOEXEC, 0);
  if (job->socket_fd < 0) {
    int err = errno;
    free(job);
    return throw_errno(env, err, "dup");
  }
  job->file_fd = fcntl((int)file_fd, F_DUPFD_CLOEXEC, 0);
  if (job->file_fd < 0) {
    int err = errno;
    close(job->socket_fd);
    free(job);
    return throw_errno(env, err, "dup");
  }

  napi_value wrapper, cancel, resource_name;
  napi_create_object(env, &wrapper);
  napi_create_function(env, "cancel", NAPI_AUTO_LENGTH, job_cancel, NULL, &cancel);
  napi_set_named_property(env, wrapper, "cancel", cancel);
  if (napi_wrap(env, wrapper, job, finalize_job, NULL, NULL) != napi_ok) {
    close_fds(job);
    free(job);
    return throw_errno(env, ENOMEM, "napi_wrap");
  }
  /* From here the finalizer owns `job`. */
  napi_create_reference(env, wrapper, 1, &job->wrapper);
  napi_create_reference(env, argv[5], 1, &job->callback);
  napi_create_string_utf8(env, "metalman.sendfile", NAPI_AUTO_LENGTH, &resource_name);
  if (napi_create_async_work(env, NULL, resource_name, execute, complete, job, &job->work) != napi_ok ||
      napi_queue_async_work(env, job->work) != napi_ok) {
    if (job->work != NULL) napi_delete_async_work(env, job->work);
    job->work = NULL;
    job->completed = true;
    close_fds(job);
    napi_delete_reference(env, job->callback);
    napi_delete_reference(env, job->wrapper);
    job->callback = NULL;
    job->wrapper = NULL;
    return throw_errno(env, EAGAIN, "napi_queue_async_work");
  }
  return wrapper;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "sendfile", NAPI_AUTO_LENGTH, start_sendfile, NULL, &fn);
  napi_set_named_property(env, exports, "sendfile", fn);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
