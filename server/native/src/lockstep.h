/* lockstep.h - the lock-step TFTP data phase on a worker thread (see lockstep.c). */
#ifndef METALMAN_LOCKSTEP_H
#define METALMAN_LOCKSTEP_H

#include <node_api.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* Event kinds passed to JS (server/tftp/transfer-socket.ts mirrors them). */
enum {
  LOCKSTEP_PROGRESS = 0,     /* every PROGRESS_BLOCKS blocks: counters only */
  LOCKSTEP_PACKET = 1,       /* a non-ACK, non-ERROR datagram (copy attached); the transfer goes on */
  LOCKSTEP_OK = 2,           /* the last block was acknowledged */
  LOCKSTEP_TIMEOUT = 3,      /* max_retries full timeouts without the ACK */
  LOCKSTEP_UNREACHABLE = 4,  /* ICMP port unreachable: the client is gone */
  LOCKSTEP_CLIENT_ERROR = 5, /* the client sent ERROR (packet attached) */
  LOCKSTEP_READ_ERROR = 6,   /* pread failed (errno attached; EIO: the file shrank) */
  LOCKSTEP_SOCKET_ERROR = 7, /* other recv/poll error (errno attached); for recv the transfer goes on */
  LOCKSTEP_STOPPED = 8,      /* lockstep_stop was called (never posted) */
  LOCKSTEP_FAILED = 9        /* the socket kept failing (errno attached): the transfer ends */
};

typedef struct {
  int socket_fd;          /* connected to the peer; the caller stops watching it meanwhile */
  int file_fd;            /* the artifact, read with pread(2); stays open until lockstep_free */
  uint64_t size;          /* bytes of the file to send */
  uint32_t blksize;
  uint64_t last_block;    /* floor(size / blksize) + 1 */
  uint64_t acked;         /* blocks already acknowledged (0 at the start of the data phase) */
  double base_timeout_ms; /* the full retransmit timeout */
  double min_retransmit_ms;
  double srtt_ms;         /* smoothed RTT so far (the OACK sample), < 0 = none */
  int max_retries;
  int max_threads;        /* refuse (EAGAIN) when this many lock-step threads already run */
} LockstepParams;

typedef struct {
  uint64_t acked;
  uint64_t highest_sent;
  uint64_t data_packets;
  uint64_t bytes_sent;
  uint64_t retransmits;
  double srtt_ms;
  int error;
} LockstepStats;

typedef struct Lockstep Lockstep;

/* Starts the thread; 0, or EAGAIN (thread cap reached) / another errno. on_event is a JS function. */
int lockstep_start(napi_env env, const LockstepParams *params, napi_value on_event, Lockstep **out);
/* Stops (if still running) and joins the thread; the final counters go to *stats (may be NULL). */
void lockstep_stop(Lockstep *self, LockstepStats *stats);
/* lockstep_stop, then frees everything. */
void lockstep_free(Lockstep *self);

#endif
