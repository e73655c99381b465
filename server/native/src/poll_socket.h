/*
 * poll_socket.h - the part every metalman UDP socket addon shares (device_socket.c,
 * udp_socket.c, udp_listener.c): a non-blocking fd watched by a uv_poll_t on the env's own
 * libuv loop, its JS wrapper, its callbacks, and the lifetime rules that keep them safe.
 *
 * Threading: everything runs on the JS thread; the poll callback is an ordinary same-thread call.
 *
 * Lifetime: the native state is freed only when BOTH the uv handle has finished closing (libuv
 * still owns the uv_poll_t memory until its close callback) AND every JS object pointing at it
 * (the wrapper, and any function carrying it as data) was finalized. While open, the wrapper is
 * kept alive by a strong reference (like a dgram socket), so an open socket never disappears
 * under a pending callback. An async env cleanup hook closes the socket when the environment
 * (main thread or worker) shuts down.
 *
 * A concrete socket type embeds PollSocket as its FIRST member, so a PollSocket * and the
 * concrete pointer are the same address (the base frees the whole allocation).
 */
#ifndef METALMAN_POLL_SOCKET_H
#define METALMAN_POLL_SOCKET_H

#include <netinet/in.h>
#include <node_api.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

/* The JS callbacks a socket may hold (a NULL slot is simply never called). */
#define POLL_SOCKET_MAX_CALLBACKS 3

typedef struct PollSocket PollSocket;

struct PollSocket {
  napi_env env;
  int fd;
  uv_poll_t poll;
  int poll_events;   /* what the poll watches: UV_READABLE, plus UV_WRITABLE while a send waits */
  bool closed;       /* close ran: fd closed, refs released, uv_close requested */
  bool poll_started; /* uv_poll_init succeeded: memory must outlive uv_close */
  bool poll_closed;  /* uv_close callback ran (or the poll never existed) */
  int owners;        /* JS objects pointing at this state: the wrapper, plus any bound function */
  napi_ref wrapper;  /* strong while open */
  napi_ref callbacks[POLL_SOCKET_MAX_CALLBACKS];
  napi_async_context async_context;
  napi_async_cleanup_hook_handle cleanup_hook;
  unsigned char *recv_buffer;
  /* Releases the concrete type's own references on close (may be NULL). */
  void (*on_close)(PollSocket *self);
};

/*
 * Wraps an open fd (ownership passes in) into `this_value`: allocates `size` bytes of zeroed
 * state (the concrete struct) and a receive buffer, creates a reference per non-NULL callback
 * (callbacks[i] lands in self->callbacks[i]), an async context named `resource_name`, the env
 * cleanup hook, and starts polling for `events` with `on_poll`. *bound_port gets the local port.
 * Returns the state, or NULL with an exception pending (the fd is closed either way on failure).
 */
PollSocket *poll_socket_attach(napi_env env, napi_value this_value, int fd, size_t size, size_t recv_buffer_size,
                               const char *resource_name, const napi_value *callbacks, size_t callback_count,
                               int events, uv_poll_cb on_poll, void (*on_close)(PollSocket *), int *bound_port);

/* Stop watching, close the fd and drop the JS references. Safe to call more than once. */
void poll_socket_close(PollSocket *self);

/* Finalizer for a JS object co-owning the state (registered with owners++). */
void poll_socket_release_owner(napi_env env, void *data, void *hint);

/*
 * Calls callbacks[index] from a libuv callback, with the socket as receiver: make_callback runs
 * microtasks/async hooks right after, and an exception thrown by the listener becomes an
 * 'uncaughtException' (as with an EventEmitter listener). Must run inside a handle scope.
 */
void poll_socket_call_js(PollSocket *self, int index, size_t argc, napi_value *argv);

/* callbacks[index](Error) for errno `err` of `syscall`. Must run inside a handle scope. */
void poll_socket_report_error(PollSocket *self, int index, int err, const char *syscall);

/*
 * One recvmsg(2) into recv_buffer (`size` bytes) with the IP_PKTINFO control message (the socket
 * has IP_PKTINFO set): *source gets the sender, *info the pktinfo (all zero when absent),
 * *flags the msghdr flags (MSG_TRUNC). Returns the datagram length (0 is an empty datagram),
 * or -errno (-EAGAIN = drained).
 */
ssize_t poll_socket_recv_pktinfo(PollSocket *self, size_t size, struct sockaddr_in *source, struct in_pktinfo *info,
                                 int *flags);

/*
 * The readability handler of a datagram socket, inside its own handle scope: a poll error goes
 * to callbacks[error_index]; otherwise up to `max` datagrams are read with receive_one (returns
 * 0, or an errno: EAGAIN = drained, EINTR = retry), so a flood cannot starve the loop. Any
 * other errno goes to callbacks[error_index] as `syscall`; the socket stays open and
 * level-triggered polling retries on the next loop turn.
 */
void poll_socket_drain(PollSocket *self, int status, int max, int (*receive_one)(PollSocket *), int error_index,
                       const char *syscall);

/* The state behind `this`, or NULL with TypeError(ERR_INVALID_THIS, "not a <class_name>") thrown. */
PollSocket *poll_socket_unwrap(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv,
                               const char *class_name);

/* False, with Error(ERR_SOCKET_DGRAM_NOT_RUNNING, "<class_name> is closed") thrown, once closed. */
bool poll_socket_check_open(napi_env env, PollSocket *self, const char *class_name);

/*
 * A constructor's arguments: `new` required (TypeError ERR_CONSTRUCT_CALL_REQUIRED), at least
 * `required` of them (TypeError ERR_MISSING_ARGS with `usage`). False with the error thrown.
 */
bool poll_socket_constructor_args(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv,
                                  napi_value *this_value, const char *class_name, size_t required, const char *usage);

/*
 * Socket setup steps: each returns false with *failed_call naming the step (the syscall name as
 * errors report it) and errno set. A new non-blocking, close-on-exec AF_INET datagram socket
 * (-1 on failure); setsockopt(level, name, 1); bind to address:port; close after a failed step,
 * returning -errno of that step.
 */
int udp_socket_new(const char **failed_call);
bool udp_enable_option(int fd, int level, int name, const char *what, const char **failed_call);
bool udp_bind(int fd, struct in_addr address, int port, const char **failed_call);
int udp_close_failed(int fd);

#endif
