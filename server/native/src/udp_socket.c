/*
 * udp_socket.c - a lean connected UDP socket for TFTP transfers.
 *
 * Why this exists: a lock-step TFTP transfer is one round trip per 512-byte block, so the fixed
 * cost per datagram decides the throughput. Node's dgram pays, per received datagram, a 64 KiB
 * buffer allocation and a source-address string, and per send a request object; profiles showed
 * that as most of the gap to tftpd-hpa. Here a datagram costs one recv(2) into a buffer
 * allocated once per socket, and a send is one send(2) on the JS thread.
 *
 * JS API (plain Node-API, NAPI_VERSION 8):
 *   new UdpSocket(localAddress, localPort, peerAddress, peerPort, onDatagram, onError, onWritable)
 *     Creates a non-blocking AF_INET socket with SO_REUSEADDR (a second, unconnected socket may
 *     share the port: see server/tftp/server.ts), binds it and connect()s it to the peer, so the
 *     kernel delivers only the peer's datagrams.
 *     onDatagram(ackBlock: number, packet?: Buffer | number)
 *        ackBlock >= 0 with a second argument 1: the armed packet (see arm) was sent for this
 *        ACK before the callback, 2: sending it failed (treat it as lost);
 *        ackBlock >= 0: an ACK (opcode 4, 4 bytes or padded) for that wire block number, no Buffer made;
 *        ackBlock -1:   anything else, `packet` is a copy of the datagram.
 *     onError(err: Error)   receive-side errors, e.g. ECONNREFUSED (ICMP port unreachable)
 *     onWritable()          the socket can send again after send() returned -1
 *   socket.send(data: Buffer|Uint8Array): number   (an own property: a function bound to the
 *     native state, so the per-block call skips napi_unwrap's private-property lookup)
 *     0 = sent; -1 = EAGAIN (send buffer full; nothing sent, onWritable fires once it drains);
 *     > 0 = errno of any other failure (e.g. 111 ECONNREFUSED). Never throws for I/O errors:
 *     the per-block path has no try/catch and no error object.
 *   socket.arm(packet: Buffer, ackBlock: number) / socket.arm(): void
 *     Lock-step latency: the next DATA is sent from C as soon as the ACK for ackBlock arrives,
 *     before any JS runs (JS is told, see onDatagram); one armed packet at a time, consumed by
 *     its ACK; no argument disarms.
 *   socket.lockstep(fileFd, size, blksize, acked, baseTimeoutMs, minRetransmitMs, srttMs,
 *                   maxRetries, maxThreads, onEvent): number
 *     Hands a lock-step data phase to a worker thread (lockstep.c): the poll watcher stops for
 *     good and the thread reads the socket; 0 started, else an errno (EAGAIN: thread cap).
 *   socket.stopLockstep(): [acked, dataPackets, bytesSent, retransmits] | undefined
 *     Stops and joins that thread (close() does too).
 *   socket.close(): void   idempotent; no callback fires after it returns
 *   socket.port: number    the bound local port
 *
 * Threading and lifetime: see poll_socket.h: everything on the JS thread, readability via a
 * uv_poll_t on the env's loop (one datagram per wakeup, see on_poll), native state freed once
 * the uv handle closed and both the JS wrapper and its send function were finalized, a strong
 * wrapper reference while open, an async env cleanup hook.
 *
 * EAGAIN on send is not treated as a loss: in a windowed transfer a full send buffer would
 * otherwise cost a whole retransmit timeout (1 s by default). send() reports it and watches
 * writability once; JS resumes the window from the refused block on onWritable.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <node_api.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>
#include "napi_common.h"
#include "lockstep.h"
#include "poll_socket.h"

/* Largest UDP payload: nothing is ever truncated (a truncated packet could decode as valid). */
#define RECV_BUFFER_SIZE 65536
#define TFTP_OPCODE_ACK 4

/* The JS callbacks, in PollSocket.callbacks. */
enum { ON_DATAGRAM, ON_ERROR, ON_WRITABLE };

typedef struct {
  PollSocket base; /* first: a PollSocket * is a UdpSocket * (poll_socket.h) */
  /* Lock-step fast path (see socket.arm): the next DATA, sent from C when its ACK arrives. */
  int armed_ack;       /* wire block whose ACK releases the armed packet; -1 = nothing armed */
  napi_ref armed_ref;  /* keeps the armed Buffer alive */
  void *armed_data;
  size_t armed_length;
  /* Lock-step data phase on a worker thread (lockstep.c): it owns the fd's receive side. */
  Lockstep *lockstep;
} UdpSocket;

/* PollSocket.on_close: drop the armed packet with the callbacks. */
static void disarm(PollSocket *base) {
  UdpSocket *self = (UdpSocket *)base;
  if (self->armed_ref != NULL) napi_delete_reference(base->env, self->armed_ref);
  self->armed_ref = NULL;
  self->armed_ack = -1;
}

/* PollSocket.on_close (runs while the fd is still open): join a lock-step thread, then disarm. */
static void on_socket_close(PollSocket *base) {
  UdpSocket *self = (UdpSocket *)base;
  if (self->lockstep != NULL) {
    lockstep_free(self->lockstep);
    self->lockstep = NULL;
  }
  disarm(base);
}

/* ---------- receive path ---------- */

/* Reads and delivers one datagram. Returns 0, or an errno (EAGAIN = nothing queued). */
static int receive_one(UdpSocket *self) {
  PollSocket *base = &self->base;
  ssize_t n = recv(base->fd, base->recv_buffer, RECV_BUFFER_SIZE, MSG_DONTWAIT);
  if (n < 0) return errno == EWOULDBLOCK ? EAGAIN : errno;
  napi_env env = base->env;
  const unsigned char *p = base->recv_buffer;
  napi_value argv[2];
  size_t argc;
  if (n >= 4 && p[0] == 0 && p[1] == TFTP_OPCODE_ACK) {
    /* The per-block case: a small integer, no Buffer, no string. */
    int block = (p[2] << 8) | p[3];
    int fast = 0;
    if (block == self->armed_ack && self->armed_ref != NULL) {
      /* Lock-step: answer before JS runs; JS learns it was sent (second argument 1, or 2 on EAGAIN/error). */
      ssize_t sent;
      do {
        sent = send(base->fd, self->armed_data, self->armed_length, MSG_DONTWAIT);
      } while (sent < 0 && errno == EINTR);
      fast = sent < 0 ? 2 : 1;
      self->armed_ack = -1;
      napi_delete_reference(env, self->armed_ref);
      self->armed_ref = NULL;
    }
    if (napi_create_int32(env, block, &argv[0]) != napi_ok) return 0;
    argc = 1;
    if (fast != 0) {
      if (napi_create_int32(env, fast, &argv[1]) != napi_ok) return 0;
      argc = 2;
    }
  } else {
    void *copy;
    if (napi_create_int32(env, -1, &argv[0]) != napi_ok ||
        napi_create_buffer_copy(env, (size_t)n, p, &copy, &argv[1]) != napi_ok)
      return 0;
    argc = 2;
  }
  poll_socket_call_js(base, ON_DATAGRAM, argc, argv);
  return 0;
}

static void on_poll(uv_poll_t *handle, int status, int events) {
  UdpSocket *self = (UdpSocket *)handle->data;
  PollSocket *base = &self->base;
  if (base->closed) return;
  napi_env env = base->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  if (status < 0) {
    poll_socket_report_error(base, ON_ERROR, -status, "poll");
  } else {
    if (events & UV_WRITABLE) {
      /* One notification per EAGAIN: stop watching writability before telling JS. */
      base->poll_events = UV_READABLE;
      uv_poll_start(&base->poll, base->poll_events, on_poll);
      poll_socket_call_js(base, ON_WRITABLE, 0, NULL);
    }
    /*
     * One datagram per wakeup: in a lock-step transfer the next ACK is never queued yet right
     * after we answered one, so a second recv() would be a wasted EAGAIN syscall per block.
     * Polling is level-triggered: anything still queued wakes us on the next loop turn.
     */
    if ((events & UV_READABLE) && !base->closed) {
      int err = receive_one(self);
      /* ECONNREFUSED: the peer's port is closed (ICMP). The kernel clears the error once read. */
      if (err != 0 && err != EAGAIN && err != EINTR) poll_socket_report_error(base, ON_ERROR, err, "recv");
    }
  }
  napi_close_handle_scope(env, scope);
}

/* ---------- setup ---------- */

/* Returns an open fd, or -errno with *failed_call naming the failing step. */
static int open_connected_socket(struct in_addr local_address, int local_port, struct in_addr peer_address,
                                 int peer_port, const char **failed_call) {
  int fd = udp_socket_new(failed_call);
  if (fd < 0) return -errno;
  /* SO_REUSEADDR: the transfer's unconnected "strangers" socket shares this port. */
  if (!udp_enable_option(fd, SOL_SOCKET, SO_REUSEADDR, "setsockopt(SO_REUSEADDR)", failed_call) ||
      !udp_bind(fd, local_address, local_port, failed_call))
    return udp_close_failed(fd);
  struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons((uint16_t)peer_port), .sin_addr = peer_address};
  if (connect(fd, (struct sockaddr *)&peer, sizeof peer) < 0) {
    *failed_call = "connect";
    return udp_close_failed(fd);
  }
  return fd;
}

static napi_value send_datagram(napi_env env, napi_callback_info info);

/* new UdpSocket(localAddress, localPort, peerAddress, peerPort, onDatagram, onError, onWritable) */
static napi_value construct(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7], this_value;
  if (!poll_socket_constructor_args(
          env, info, &argc, argv, &this_value, "UdpSocket", 7,
          "UdpSocket(localAddress, localPort, peerAddress, peerPort, onDatagram, onError, onWritable)"))
    return NULL;
  struct in_addr local_address, peer_address;
  int local_port, peer_port;
  if (!get_ipv4_arg(env, argv[0], &local_address, "localAddress") || !get_port_arg(env, argv[1], &local_port) ||
      !get_ipv4_arg(env, argv[2], &peer_address, "peerAddress") || !get_port_arg(env, argv[3], &peer_port))
    return NULL;
  if (!is_function(env, argv[4]) || !is_function(env, argv[5]) || !is_function(env, argv[6])) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "onDatagram, onError and onWritable must be functions");
    return NULL;
  }
  const char *failed_call = "socket";
  int fd = open_connected_socket(local_address, local_port, peer_address, peer_port, &failed_call);
  if (fd < 0) {
    napi_throw(env, make_errno_error(env, -fd, failed_call));
    return NULL;
  }
  napi_value callbacks[] = {[ON_DATAGRAM] = argv[4], [ON_ERROR] = argv[5], [ON_WRITABLE] = argv[6]};
  int bound_port;
  PollSocket *base = poll_socket_attach(env, this_value, fd, sizeof(UdpSocket), RECV_BUFFER_SIZE, "metalman.UdpSocket",
                                        callbacks, 3, UV_READABLE, on_poll, on_socket_close, &bound_port);
  if (base == NULL) return NULL;
  UdpSocket *self = (UdpSocket *)base;
  self->armed_ack = -1;
  /* send is a per-socket function carrying `self` as its data: the per-block call needs no unwrap. */
  napi_value port_value, send_function;
  if (napi_create_int32(env, bound_port, &port_value) != napi_ok ||
      napi_create_function(env, "send", NAPI_AUTO_LENGTH, send_datagram, self, &send_function) != napi_ok ||
      napi_add_finalizer(env, send_function, self, poll_socket_release_owner, NULL, NULL) != napi_ok) {
    poll_socket_close(base);
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (!pending) napi_throw_error(env, "ERR_NAPI", "UdpSocket setup failed");
    return NULL;
  }
  base->owners++; /* the finalizer is registered: the function now co-owns self */
  napi_property_descriptor properties[] = {
      {"port", NULL, NULL, NULL, NULL, port_value, napi_enumerable, NULL},
      {"send", NULL, NULL, NULL, NULL, send_function, napi_default_method, NULL},
  };
  if (napi_define_properties(env, this_value, 2, properties) != napi_ok) {
    poll_socket_close(base);
    return NULL;
  }
  return this_value;
}

static UdpSocket *unwrap(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv) {
  return (UdpSocket *)poll_socket_unwrap(env, info, argc, argv, "UdpSocket");
}

/* socket.send(data): one send(2); see the header comment for the return values. */
static napi_value send_datagram(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  void *callback_data = NULL;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, &callback_data));
  PollSocket *self = (PollSocket *)callback_data;
  if (self->closed) {
    napi_throw_error(env, "ERR_SOCKET_DGRAM_NOT_RUNNING", "UdpSocket is closed");
    return NULL;
  }
  void *data = NULL;
  size_t length = 0;
  napi_typedarray_type array_type;
  bool is_typed = false;
  /* No ArrayBuffer/offset out-parameters: asking for the ArrayBuffer costs a lookup per send. */
  if (argc < 1 || napi_is_typedarray(env, argv[0], &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(env, argv[0], &array_type, &length, &data, NULL, NULL) != napi_ok ||
      array_type != napi_uint8_array) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "data must be a Buffer or Uint8Array");
    return NULL;
  }
  ssize_t sent;
  do {
    sent = send(self->fd, data, length, MSG_DONTWAIT);
  } while (sent < 0 && errno == EINTR);
  int status = 0;
  if (sent < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      status = -1;
      if (!(self->poll_events & UV_WRITABLE)) {
        self->poll_events = UV_READABLE | UV_WRITABLE;
        uv_poll_start(&self->poll, self->poll_events, on_poll);
      }
    } else {
      status = errno;
    }
  }
  napi_value result;
  NAPI_CALL(env, napi_create_int32(env, status, &result));
  return result;
}

/* socket.arm(packet, ackBlock) / socket.arm(): the next DATA to send as soon as the ACK for
 * wire block ackBlock arrives, before JS runs (lock-step latency); no argument disarms. The
 * Buffer must stay unchanged until the ACK callback reports it sent, or until disarmed. */
static napi_value arm_method(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  UdpSocket *self = unwrap(env, info, &argc, argv);
  if (self == NULL || self->base.closed) return NULL;
  disarm(&self->base);
  if (argc < 2 || is_nullish(env, argv[0])) return NULL;
  bool is_buffer = false;
  int32_t ack = -1;
  if (napi_is_buffer(env, argv[0], &is_buffer) != napi_ok || !is_buffer ||
      napi_get_buffer_info(env, argv[0], &self->armed_data, &self->armed_length) != napi_ok ||
      napi_get_value_int32(env, argv[1], &ack) != napi_ok || ack < 0 || ack > 0xffff) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "arm(packet: Buffer, ackBlock: 0..65535)");
    return NULL;
  }
  NAPI_CALL(env, napi_create_reference(env, argv[0], 1, &self->armed_ref));
  self->armed_ack = ack;
  return NULL;
}

/* socket.lockstep(fileFd, size, blksize, acked, baseTimeoutMs, minRetransmitMs, srttMs, maxRetries,
 * maxThreads, onEvent): number - hands the data phase to a worker thread (lockstep.c); 0, or an
 * errno (11 EAGAIN: the thread cap is reached) and nothing changed. The socket stops delivering
 * datagrams to onDatagram for good: the thread reads them. */
static napi_value lockstep_method(napi_env env, napi_callback_info info) {
  size_t argc = 10;
  napi_value argv[10];
  UdpSocket *self = unwrap(env, info, &argc, argv);
  if (self == NULL) return NULL;
  PollSocket *base = &self->base;
  if (base->closed) return throw_errno(env, EBADF, "lockstep");
  if (self->lockstep != NULL) return throw_errno(env, EBUSY, "lockstep");
  double numbers[9];
  for (size_t i = 0; i < 9; i++) {
    if (argc < 10 || napi_get_value_double(env, argv[i], &numbers[i]) != napi_ok) {
      napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "lockstep(9 numbers, onEvent)");
      return NULL;
    }
  }
  if (!is_function(env, argv[9]) || numbers[0] < 0 || numbers[1] < 0 || numbers[2] < 8 || numbers[2] > 65464) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE",
                          "lockstep(fileFd >= 0, size >= 0, blksize 8..65464, ..., onEvent)");
    return NULL;
  }
  LockstepParams params = {
      .socket_fd = base->fd,
      .file_fd = (int)numbers[0],
      .size = (uint64_t)numbers[1],
      .blksize = (uint32_t)numbers[2],
      .acked = (uint64_t)numbers[3],
      .base_timeout_ms = numbers[4],
      .min_retransmit_ms = numbers[5],
      .srtt_ms = numbers[6],
      .max_retries = (int)numbers[7],
      .max_threads = (int)numbers[8],
  };
  params.last_block = params.size / params.blksize + 1;
  /* Stop watching first: from here on the thread alone reads the socket. */
  if (base->poll_started) uv_poll_stop(&base->poll);
  int err = lockstep_start(env, &params, argv[9], &self->lockstep);
  if (err != 0 && base->poll_started) uv_poll_start(&base->poll, base->poll_events, on_poll);
  napi_value result;
  NAPI_CALL(env, napi_create_int32(env, err, &result));
  return result;
}

/* socket.stopLockstep(): [acked, dataPackets, bytesSent, retransmits] | undefined - stops and joins
 * the thread (at once: it wakes on shutdown), so the counters are final. */
static napi_value stop_lockstep_method(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  UdpSocket *self = unwrap(env, info, &argc, NULL);
  if (self == NULL) return NULL;
  napi_value result;
  if (self->lockstep == NULL) {
    NAPI_CALL(env, napi_get_undefined(env, &result));
    return result;
  }
  LockstepStats stats;
  lockstep_stop(self->lockstep, &stats);
  lockstep_free(self->lockstep);
  self->lockstep = NULL;
  double values[4] = {(double)stats.acked, (double)stats.data_packets, (double)stats.bytes_sent,
                      (double)stats.retransmits};
  NAPI_CALL(env, napi_create_array_with_length(env, 4, &result));
  for (uint32_t i = 0; i < 4; i++) {
    napi_value value;
    NAPI_CALL(env, napi_create_double(env, values[i], &value));
    NAPI_CALL(env, napi_set_element(env, result, i, value));
  }
  return result;
}

static napi_value close_method(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  UdpSocket *self = unwrap(env, info, &argc, NULL);
  if (self != NULL) poll_socket_close(&self->base);
  return NULL;
}

/* udp_listener.c: the listening socket with IP_PKTINFO, exported by the same addon. */
napi_status udp_listener_register(napi_env env, napi_value exports);

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor methods[] = {
      {"close", NULL, close_method, NULL, NULL, NULL, napi_default_method, NULL},
      {"arm", NULL, arm_method, NULL, NULL, NULL, napi_default_method, NULL},
      {"lockstep", NULL, lockstep_method, NULL, NULL, NULL, napi_default_method, NULL},
      {"stopLockstep", NULL, stop_lockstep_method, NULL, NULL, NULL, napi_default_method, NULL},
  };
  napi_value constructor;
  NAPI_CALL(env, napi_define_class(env, "UdpSocket", NAPI_AUTO_LENGTH, construct, NULL,
                                   sizeof methods / sizeof methods[0], methods, &constructor));
  NAPI_CALL(env, napi_set_named_property(env, exports, "UdpSocket", constructor));
  NAPI_CALL(env, udp_listener_register(env, exports));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
