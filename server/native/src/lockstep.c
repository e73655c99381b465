/*
 * lockstep.c - a lock-step TFTP data phase (windowsize 1) on a worker thread, off the event loop.
 *
 * Why: a lock-step transfer is one round trip per block and the server is idle ~92 % of it; what
 * counts is the time from an ACK arriving to the next DATA leaving. On the event loop every turn
 * goes through libuv's epoll wakeup and whatever else the main thread is doing. tftpd-hpa forks
 * a process per transfer that blocks in recvfrom/sendto; this is the same shape with a thread:
 * it owns the transfer's connected socket, blocks in recv(2) with the retransmit timeout
 * (SO_RCVTIMEO), and on the expected ACK sends the next block, read ahead with pread(2) from the
 * artifact's descriptor in 128 KiB chunks: one recv and one send per block.
 *
 * The thread follows TftpSession's lock-step rules (server/tftp/session.ts, docs/tftp.md):
 * - an ACK for the block in flight moves on; any other ACK (a duplicate of the previous block,
 *   an old one) is ignored - never a resend (RFC 1350, the Sorcerer's Apprentice bug);
 * - block numbers are absolute here and go on the wire modulo 65536 (rollover to 0);
 * - retransmit: the first interval is ~4 smoothed round trips, >= min_retransmit_ms, rounded up
 *   to a power of two, doubling up to the full timeout; only full timeouts count towards
 *   max_retries; RTT samples only from blocks sent once (Karn);
 * - a non-ACK datagram: ERROR ends the transfer (reported with the packet), anything else is
 *   reported (JS decodes and counts it) and the transfer goes on.
 * It reports to JS through a napi_threadsafe_function only every PROGRESS_BLOCKS blocks, for a
 * non-ACK datagram, and once at the end; never per block. JS stops it (server shutdown, socket
 * close) with a flag and shutdown(SHUT_RD), which wakes the blocked recv, and lockstep_stop joins it, so the caller gets the
 * final counters synchronously. At most `max_threads` run at once in the process (threads are a
 * process resource, hence the one process-wide counter); beyond that lockstep_start refuses and
 * the caller keeps the event-loop path.
 */
#define _GNU_SOURCE
#include "lockstep.h"
#include "napi_common.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TFTP_OPCODE_DATA 3
#define TFTP_OPCODE_ACK 4
#define TFTP_OPCODE_ERROR 5
#define RECV_BUFFER_SIZE 65536
#define PROGRESS_BLOCKS 4096
#define THREAD_STACK_BYTES (256 * 1024)
#define CHUNK_BYTES (128 * 1024)
#define MAX_SOCKET_ERRORS 64

/* Lock-step threads running in this process (all envs): bounded by each start's max_threads. */
static atomic_int running_threads;

typedef struct {
  int kind;
  LockstepStats stats;
  int detail;          /* errno for LOCKSTEP_READ_ERROR / LOCKSTEP_SOCKET_ERROR */
  size_t packet_length;
  unsigned char packet[]; /* the datagram for LOCKSTEP_PACKET / LOCKSTEP_CLIENT_ERROR */
} LockstepEvent;

struct Lockstep {
  LockstepParams p;
  atomic_bool stopping;
  /* Read-ahead: one pread per chunk, not per block. */
  unsigned char *chunk;
  size_t chunk_capacity;
  uint64_t chunk_offset;
  size_t chunk_length;
  pthread_t thread;
  bool joined;
  napi_threadsafe_function tsfn;
  LockstepStats stats; /* written by the thread; read by JS only after the join */
  unsigned char *packet;
  unsigned char *recv_buffer;
};

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void post(Lockstep *self, int kind, int detail, const unsigned char *packet, size_t length) {
  LockstepEvent *event = malloc(sizeof *event + length);
  if (event == NULL) return; /* progress is best effort; the final counters come from the join too */
  event->kind = kind;
  event->stats = self->stats;
  event->detail = detail;
  event->packet_length = length;
  if (length > 0) memcpy(event->packet, packet, length);
  if (napi_call_threadsafe_function(self->tsfn, event, napi_tsfn_nonblocking) != napi_ok) free(event);
}

/* First retransmit interval (TftpSession#firstRto). */
static double first_rto(const Lockstep *self) {
  if (self->stats.srtt_ms < 0) return self->p.base_timeout_ms;
  double ms = self->p.min_retransmit_ms;
  while (ms < 4 * self->stats.srtt_ms && ms < self->p.base_timeout_ms) ms *= 2;
  return ms < self->p.base_timeout_ms ? ms : self->p.base_timeout_ms;
}

/* Reads block `block` into self->packet (from the read-ahead chunk, refilled with one pread per
 * CHUNK_BYTES): its datagram length, or -errno (-EIO: the file shrank). */
static ssize_t load_block(Lockstep *self, uint64_t block) {
  uint64_t offset = (block - 1) * (uint64_t)self->p.blksize;
  size_t length = self->p.size - offset < self->p.blksize ? (size_t)(self->p.size - offset) : self->p.blksize;
  if (offset < self->chunk_offset || offset + length > self->chunk_offset + self->chunk_length) {
    uint64_t left = self->p.size - offset;
    size_t want = left < self->chunk_capacity ? (size_t)left : self->chunk_capacity;
    size_t got = 0;
    while (got < want) {
      ssize_t n = pread(self->p.file_fd, self->chunk + got, want - got, (off_t)(offset + got));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return -errno;
      if (n == 0) break;
      got += (size_t)n;
    }
    self->chunk_offset = offset;
    self->chunk_length = got;
    if (got < length) return -EIO;
  }
  memcpy(self->packet + 4, self->chunk + (offset - self->chunk_offset), length);
  uint16_t wire = (uint16_t)(block & 0xffff);
  self->packet[0] = 0;
  self->packet[1] = TFTP_OPCODE_DATA;
  self->packet[2] = (unsigned char)(wire >> 8);
  self->packet[3] = (unsigned char)(wire & 0xff);
  return (ssize_t)(length + 4);
}

/* One DATA on the wire; a failed send (EAGAIN included) is a lost datagram: the timer recovers it. */
static void send_block(Lockstep *self, size_t length) {
  ssize_t sent;
  do {
    sent = send(self->p.socket_fd, self->packet, length, MSG_DONTWAIT);
  } while (sent < 0 && errno == EINTR);
  self->stats.data_packets++;
  self->stats.bytes_sent += length - 4;
}

/* The blocking recv's timeout (SO_RCVTIMEO); a syscall only when it changes (rarely: the RTO is
 * a power of two). */
static void set_wait(Lockstep *self, double ms, double *current) {
  if (ms < 1) ms = 1; /* 0 would mean "forever" */
  ms = (double)(long)(ms + 0.999);
  if (ms == *current) return;
  struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)((long)ms % 1000) * 1000};
  setsockopt(self->p.socket_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  *current = ms;
}

/*
 * The loop. Per block: one blocking recv (the ACK), a memcpy from the read-ahead chunk, one send.
 * The socket is made blocking for recv (sends stay MSG_DONTWAIT); lockstep_stop wakes a blocked
 * recv with shutdown(SHUT_RD), which makes it return 0.
 */
static int run(Lockstep *self) {
  LockstepStats *s = &self->stats;
  int flags = fcntl(self->p.socket_fd, F_GETFL);
  if (flags >= 0) fcntl(self->p.socket_fd, F_SETFL, flags & ~O_NONBLOCK);
  uint64_t block = s->acked + 1; /* the block in flight */
  ssize_t length = load_block(self, block);
  if (length < 0) {
    s->error = (int)-length;
    return LOCKSTEP_READ_ERROR;
  }
  send_block(self, (size_t)length);
  s->highest_sent = block;
  int sends = 1; /* of the block in flight (Karn) */
  double sent_at = now_ms();
  double rto = first_rto(self);
  double deadline = sent_at + rto;
  double wait_set = -1;
  int retries = 0;
  int socket_errors = 0; /* in a row */
  for (;;) {
    if (atomic_load(&self->stopping)) return LOCKSTEP_STOPPED;
    double now = now_ms();
    if (now >= deadline) {
      if (rto < self->p.base_timeout_ms) {
        rto = rto * 2 < self->p.base_timeout_ms ? rto * 2 : self->p.base_timeout_ms; /* a fast probe */
      } else if (++retries > self->p.max_retries) {
        return LOCKSTEP_TIMEOUT;
      }
      deadline = now + rto;
      send_block(self, (size_t)length);
      s->retransmits++;
      if (sends < 255) sends++;
      continue;
    }
    set_wait(self, deadline - now, &wait_set);
    ssize_t n = recv(self->p.socket_fd, self->recv_buffer, RECV_BUFFER_SIZE, 0);
    if (atomic_load(&self->stopping)) return LOCKSTEP_STOPPED;
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue; /* the timeout */
      if (errno == ECONNREFUSED) return LOCKSTEP_UNREACHABLE; /* ICMP port unreachable: client gone */
      /* Other ICMP errors are reported once each and the transfer goes on; an error that
         repeats without a datagram in between (a broken socket) must not spin: give up. */
      s->error = errno;
      if (++socket_errors > MAX_SOCKET_ERRORS) return LOCKSTEP_FAILED;
      post(self, LOCKSTEP_SOCKET_ERROR, errno, NULL, 0);
      continue;
    }
    socket_errors = 0;
    const unsigned char *p = self->recv_buffer;
    if (n >= 4 && p[0] == 0 && p[1] == TFTP_OPCODE_ACK) {
      /* Only the ACK of the block in flight counts; duplicates and old ACKs are ignored. */
      if (((p[2] << 8) | p[3]) != (int)(block & 0xffff)) continue;
      now = now_ms();
      if (sends == 1) {
        double sample = now - sent_at;
        s->srtt_ms = s->srtt_ms < 0 ? sample : s->srtt_ms + (sample - s->srtt_ms) / 8;
      }
      s->acked = block;
      if (block >= self->p.last_block) return LOCKSTEP_OK;
      block++;
      length = load_block(self, block);
      if (length < 0) {
        s->error = (int)-length;
        return LOCKSTEP_READ_ERROR;
      }
      send_block(self, (size_t)length);
      s->highest_sent = block;
      sends = 1;
      sent_at = now;
      retries = 0;
      rto = first_rto(self);
      deadline = now + rto;
      if (block % PROGRESS_BLOCKS == 0) post(self, LOCKSTEP_PROGRESS, 0, NULL, 0);
      continue;
    }
    if (n >= 2 && p[0] == 0 && p[1] == TFTP_OPCODE_ERROR) {
      post(self, LOCKSTEP_CLIENT_ERROR, 0, p, (size_t)n);
      return LOCKSTEP_CLIENT_ERROR;
    }
    post(self, LOCKSTEP_PACKET, 0, p, (size_t)n); /* JS decodes and counts it; the transfer goes on */
  }
}

static void *thread_main(void *arg) {
  Lockstep *self = arg;
  int result = run(self);
  /* A stopped transfer's owner reads the counters from the join; a client ERROR was posted. */
  if (result != LOCKSTEP_STOPPED && result != LOCKSTEP_CLIENT_ERROR) post(self, result, self->stats.error, NULL, 0);
  napi_release_threadsafe_function(self->tsfn, napi_tsfn_release);
  atomic_fetch_sub(&running_threads, 1);
  return NULL;
}

/* ---------- JS side (main thread) ---------- */

/* The tsfn's call_js: onEvent(kind, acked, dataPackets, bytesSent, retransmits, detail?). */
static void deliver(napi_env env, napi_value callback, void *context, void *data) {
  (void)context;
  LockstepEvent *event = data;
  if (env == NULL || callback == NULL) { /* torn down */
    free(event);
    return;
  }
  napi_value argv[6], undefined;
  napi_get_undefined(env, &undefined);
  size_t argc = 5;
  if (napi_create_int32(env, event->kind, &argv[0]) != napi_ok ||
      napi_create_double(env, (double)event->stats.acked, &argv[1]) != napi_ok ||
      napi_create_double(env, (double)event->stats.data_packets, &argv[2]) != napi_ok ||
      napi_create_double(env, (double)event->stats.bytes_sent, &argv[3]) != napi_ok ||
      napi_create_double(env, (double)event->stats.retransmits, &argv[4]) != napi_ok) {
    free(event);
    return;
  }
  if (event->packet_length > 0) {
    void *copy;
    if (napi_create_buffer_copy(env, event->packet_length, event->packet, &copy, &argv[5]) == napi_ok) argc = 6;
  } else if (event->detail != 0) {
    if (napi_create_int32(env, event->detail, &argv[5]) == napi_ok) argc = 6;
  }
  free(event);
  napi_value result;
  if (napi_call_function(env, undefined, callback, argc, argv, &result) != napi_ok) raise_pending_exception(env);
}

int lockstep_start(napi_env env, const LockstepParams *params, napi_value on_event, Lockstep **out) {
  *out = NULL;
  if (params->max_threads <= 0) return EAGAIN;
  int running = atomic_fetch_add(&running_threads, 1);
  if (running >= params->max_threads) {
    atomic_fetch_sub(&running_threads, 1);
    return EAGAIN;
  }
  Lockstep *self = calloc(1, sizeof *self);
  int err = ENOMEM;
  if (self == NULL) goto fail_count;
  self->p = *params;
  self->stats.acked = params->acked;
  self->stats.srtt_ms = params->srtt_ms;
  self->packet = malloc(4 + params->blksize);
  self->recv_buffer = malloc(RECV_BUFFER_SIZE);
  size_t blocks_per_chunk = CHUNK_BYTES / params->blksize;
  self->chunk_capacity = (blocks_per_chunk > 0 ? blocks_per_chunk : 1) * params->blksize;
  self->chunk = malloc(self->chunk_capacity);
  atomic_init(&self->stopping, false);
  if (self->packet == NULL || self->recv_buffer == NULL || self->chunk == NULL) goto fail_self;
  napi_value name;
  if (napi_create_string_utf8(env, "metalman.TftpLockstep", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_threadsafe_function(env, on_event, NULL, name, 0, 1, NULL, NULL, NULL, deliver, &self->tsfn) !=
          napi_ok)
    goto fail_self;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, THREAD_STACK_BYTES);
  err = pthread_create(&self->thread, &attr, thread_main, self);
  pthread_attr_destroy(&attr);
  if (err != 0) {
    napi_release_threadsafe_function(self->tsfn, napi_tsfn_abort);
    goto fail_self;
  }
  *out = self;
  return 0;
fail_self:
  free(self->chunk);
  free(self->packet);
  free(self->recv_buffer);
  free(self);
fail_count:
  atomic_fetch_sub(&running_threads, 1);
  return err;
}

void lockstep_stop(Lockstep *self, LockstepStats *stats) {
  if (!self->joined) {
    atomic_store(&self->stopping, true);
    shutdown(self->p.socket_fd, SHUT_RD); /* wakes a blocked recv (it returns 0) */
    pthread_join(self->thread, NULL);
    self->joined = true;
  }
  if (stats != NULL) *stats = self->stats;
}

void lockstep_free(Lockstep *self) {
  lockstep_stop(self, NULL);
  free(self->chunk);
  free(self->packet);
  free(self->recv_buffer);
  free(self);
}
