/*
 * device_socket.c - a UDP socket pinned to one network interface, for interface-mode DHCP.
 *
 * Why this exists: Node's `dgram` cannot set SO_BINDTODEVICE or IP_PKTINFO. A DHCP server on a
 * host (or netns) with several NICs must (a) hear broadcast DISCOVERs of exactly one NIC and
 * (b) broadcast its replies out of that NIC even when there is no default route (without one,
 * sendto(255.255.255.255) fails with EPERM because the kernel has no route to pick an interface).
 * See docs/dhcp-sockets.md for the measurements.
 *
 * JS API (plain Node-API, NAPI_VERSION 8):
 *   new DeviceSocket(interfaceName, port, onMessage, onError?)
 *     onMessage(data: Buffer, address: string, port: number, ifindex: number, destination: string)
 *     onError(err: Error)            receive-side errors (the socket stays open)
 *   socket.send(data: Buffer|Uint8Array, address: string, port: number): void   throws on error
 *   socket.close(): void            idempotent
 *   socket.interfaceIndex: number   socket.port: number (the bound local port)
 * Errors are Error objects with `code` ("EPERM", "ENODEV", ...), `errno` (negative, like Node's
 * own system errors) and `syscall`.
 *
 * Threading: everything runs on the JS thread. Readability is watched with a uv_poll_t on the
 * environment's own libuv loop, so the callback is an ordinary same-thread call.
 *
 * Lifetime: the native state is freed only when BOTH the uv handle has finished closing (libuv
 * still owns the uv_poll_t memory until its close callback) AND the JS wrapper was finalized.
 * While open, the wrapper is kept alive by a strong reference (like a dgram socket), so an
 * open socket never disappears under a pending callback. An async env cleanup hook closes the
 * socket when the environment (main thread or worker) shuts down.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
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

/* Largest possible UDP payload: nothing can be truncated with a buffer this size. */
#define RECV_BUFFER_SIZE 65536
/* Datagrams read per readability wakeup, so a flood cannot starve the rest of the event loop. */
#define MAX_DATAGRAMS_PER_WAKEUP 64

typedef struct {
  napi_env env;
  int fd;
  uv_poll_t poll;
  bool closed;         /* close() ran: fd closed, refs released, uv_close requested */
  bool poll_started;   /* uv_poll_init succeeded: memory must outlive uv_close */
  bool poll_closed;    /* uv_close callback ran (or the poll never existed) */
  bool finalized;      /* JS wrapper finalized */
  napi_ref wrapper;    /* strong while open */
  napi_ref on_message;
  napi_ref on_error;   /* may be NULL */
  napi_async_context async_context;
  napi_async_cleanup_hook_handle cleanup_hook;
  unsigned char *recv_buffer;
} DeviceSocket;

/* ---------- errors ---------- */




/* ---------- lifetime ---------- */

static void maybe_free(DeviceSocket *self) {
  if (self->finalized && self->poll_closed) {
    free(self->recv_buffer);
    free(self);
  }
}

static void on_poll_closed(uv_handle_t *handle) {
  DeviceSocket *self = (DeviceSocket *)handle->data;
  self->poll_closed = true;
  if (self->cleanup_hook != NULL) {
    /* Tells Node (normal close, or env teardown waiting for us) that no handle is left. */
    napi_remove_async_cleanup_hook(self->cleanup_hook);
    self->cleanup_hook = NULL;
  }
  maybe_free(self);
}

/* Stop watching, close the fd and drop the JS references. Safe to call more than once. */
static void close_socket(DeviceSocket *self) {
  if (self->closed) return;
  self->closed = true;
  if (self->poll_started) {
    /* uv_close stops the watcher synchronously, so the fd can be closed right after. */
    uv_close((uv_handle_t *)&self->poll, on_poll_closed);
  } else {
    self->poll_closed = true;
  }
  if (self->fd >= 0) {
    close(self->fd);
    self->fd = -1;
  }
  napi_env env = self->env;
  if (self->on_message != NULL) napi_delete_reference(env, self->on_message);
  if (self->on_error != NULL) napi_delete_reference(env, self->on_error);
  self->on_message = self->on_error = NULL;
  if (self->async_context != NULL) napi_async_destroy(env, self->async_context);
  self->async_context = NULL;
  if (self->wrapper != NULL) {
    /* Let the wrapper be collected now that no callback can fire any more. */
    napi_delete_reference(env, self->wrapper);
    self->wrapper = NULL;
  }
  if (!self->poll_started && self->cleanup_hook != NULL) {
    napi_remove_async_cleanup_hook(self->cleanup_hook);
    self->cleanup_hook = NULL;
  }
}

static void on_env_cleanup(napi_async_cleanup_hook_handle handle, void *arg) {
  DeviceSocket *self = (DeviceSocket *)arg;
  self->cleanup_hook = handle; /* removed in on_poll_closed once libuv is done with the handle */
  close_socket(self);
}

static void finalize_wrapper(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  DeviceSocket *self = (DeviceSocket *)data;
  self->finalized = true;
  close_socket(self); /* normally already closed; covers env teardown ordering */
  maybe_free(self);
}

/* ---------- receive path ---------- */

/* Call a JS function from a libuv callback: make_callback runs microtasks/async hooks, and an
   exception thrown by the listener becomes an 'uncaughtException' (same as an EventEmitter listener). */
static void call_js(DeviceSocket *self, napi_ref fn_ref, size_t argc, napi_value *argv) {
  napi_env env = self->env;
  napi_value fn, recv, result;
  if (fn_ref == NULL || napi_get_reference_value(env, fn_ref, &fn) != napi_ok || fn == NULL) return;
  /* make_callback needs an object receiver: use the socket itself (or globalThis). */
  if (self->wrapper == NULL || napi_get_reference_value(env, self->wrapper, &recv) != napi_ok || recv == NULL) {
    napi_get_global(env, &recv);
  }
  if (napi_make_callback(env, self->async_context, recv, fn, argc, argv, &result) != napi_ok) {
    raise_pending_exception(env);
  }
}

static void report_error(DeviceSocket *self, int err, const char *syscall) {
  napi_handle_scope scope;
  if (napi_open_handle_scope(self->env, &scope) != napi_ok) return;
  napi_value error = make_errno_error(self->env, err, syscall);
  call_js(self, self->on_error, 1, &error);
  napi_close_handle_scope(self->env, scope);
}

/* Read one datagram and hand it to JS. Returns 0, or an errno (EAGAIN = drained). */
static int receive_one(DeviceSocket *self) {
  struct sockaddr_in source;
  struct iovec iov = {.iov_base = self->recv_buffer, .iov_len = RECV_BUFFER_SIZE};
  /* Room for the IP_PKTINFO control message. */
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(struct in_pktinfo))];
  } control;
  struct msghdr msg = {
      .msg_name = &source,
      .msg_namelen = sizeof source,
      .msg_iov = &iov,
      .msg_iovlen = 1,
      .msg_control = control.buf,
      .msg_controllen = sizeof control.buf,
  };
  ssize_t n = recvmsg(self->fd, &msg, MSG_DONTWAIT);
  if (n < 0) return errno == EWOULDBLOCK ? EAGAIN : errno;

  int ifindex = 0;
  struct in_addr destination = {0};
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
      struct in_pktinfo info;
      memcpy(&info, CMSG_DATA(c), sizeof info);
      ifindex = info.ipi_ifindex;
      destination = info.ipi_addr; /* header destination: 255.255.255.255 for a broadcast */
    }
  }

  char address[INET_ADDRSTRLEN] = "0.0.0.0";
  char destination_text[INET_ADDRSTRLEN] = "0.0.0.0";
  inet_ntop(AF_INET, &source.sin_addr, address, sizeof address);
  inet_ntop(AF_INET, &destination, destination_text, sizeof destination_text);

  napi_env env = self->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return 0;
  napi_value argv[5];
  void *copy;
  if (napi_create_buffer_copy(env, (size_t)n, self->recv_buffer, &copy, &argv[0]) == napi_ok &&
      napi_create_string_utf8(env, address, NAPI_AUTO_LENGTH, &argv[1]) == napi_ok &&
      napi_create_uint32(env, ntohs(source.sin_port), &argv[2]) == napi_ok &&
      napi_create_int32(env, ifindex, &argv[3]) == napi_ok &&
      napi_create_string_utf8(env, destination_text, NAPI_AUTO_LENGTH, &argv[4]) == napi_ok) {
    call_js(self, self->on_message, 5, argv);
  }
  napi_close_handle_scope(env, scope);
  return 0;
}

static void on_readable(uv_poll_t *handle, int status, int events) {
  (void)events;
  DeviceSocket *self = (DeviceSocket *)handle->data;
  if (self->closed) return;
  if (status < 0) {
    report_error(self, -status, "poll");
    return;
  }
  for (int i = 0; i < MAX_DATAGRAMS_PER_WAKEUP && !self->closed; i++) {
    int err = receive_one(self);
    if (err == EAGAIN) return;
    if (err == EINTR) continue;
    if (err != 0) {
      /* Socket stays open; level-triggered polling retries on the next loop turn. */
      report_error(self, err, "recvmsg");
      return;
    }
  }
}

/* ---------- socket setup ---------- */

/* Returns an open fd, or -errno with *failed_call naming the failing step. */
static int open_device_socket(const char *ifname, int port, const char **failed_call) {
  int one = 1;
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *failed_call = "socket";
    return -errno;
  }
  /* SO_REUSEADDR: one socket per interface may share 0.0.0.0:67 (each pinned to its own device),
     and a restart does not have to wait for the old socket. */
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) {
    *failed_call = "setsockopt(SO_REUSEADDR)";
    goto fail;
  }
  /* SO_BROADCAST: without it the kernel refuses sendto(255.255.255.255) with EACCES. */
  if (setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof one) < 0) {
    *failed_call = "setsockopt(SO_BROADCAST)";
    goto fail;
  }
  /* SO_BINDTODEVICE: receive only what arrives on this NIC (a 0.0.0.0 socket otherwise hears the
     broadcasts of every NIC) and send out of this NIC without a route lookup, which is what
     makes a limited broadcast work without a default route. Needs CAP_NET_RAW. */
  if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, ifname, (socklen_t)strlen(ifname)) < 0) {
    *failed_call = "setsockopt(SO_BINDTODEVICE)";
    goto fail;
  }
  /* IP_PKTINFO: report the arrival interface and header destination of each datagram, so the
     server can tell a broadcast from a unicast and log the interface. */
  if (setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one) < 0) {
    *failed_call = "setsockopt(IP_PKTINFO)";
    goto fail;
  }
  /* Bind the wildcard address: broadcast DISCOVERs (to 255.255.255.255) never match a socket
     bound to the interface's own address. */
  struct sockaddr_in local = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  local.sin_addr.s_addr = htonl(INADDR_ANY);
  if (bind(fd, (struct sockaddr *)&local, sizeof local) < 0) {
    *failed_call = "bind";
    goto fail;
  }
  return fd;
fail: {
  int err = errno;
  close(fd);
  return -err;
}
}

static bool get_string_arg(napi_env env, napi_value value, char *out, size_t size, const char *what) {
  napi_valuetype type;
  size_t length = 0;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_string ||
      napi_get_value_string_utf8(env, value, NULL, 0, &length) != napi_ok || length == 0 || length >= size) {
    char message[96];
    snprintf(message, sizeof message, "%s must be a non-empty string shorter than %zu bytes", what, size);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", message);
    return false;
  }
  napi_get_value_string_utf8(env, value, out, size, &length);
  return true;
}




static napi_value set_int_property(napi_env env, napi_value object, const char *name, int value) {
  napi_value number;
  NAPI_CALL(env, napi_create_int32(env, value, &number));
  napi_property_descriptor property = {name, NULL, NULL, NULL, NULL, number, napi_enumerable, NULL};
  NAPI_CALL(env, napi_define_properties(env, object, 1, &property)); /* read-only */
  return object;
}

/* new DeviceSocket(interfaceName, port, onMessage, onError?) */
static napi_value construct(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4], this_value, new_target;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, &this_value, NULL));
  NAPI_CALL(env, napi_get_new_target(env, info, &new_target));
  if (new_target == NULL) {
    napi_throw_type_error(env, "ERR_CONSTRUCT_CALL_REQUIRED", "DeviceSocket must be called with new");
    return NULL;
  }
  if (argc < 3) {
    napi_throw_type_error(env, "ERR_MISSING_ARGS", "DeviceSocket(interfaceName, port, onMessage, onError?)");
    return NULL;
  }
  char ifname[IFNAMSIZ];
  int port;
  if (!get_string_arg(env, argv[0], ifname, sizeof ifname, "interfaceName")) return NULL;
  if (!get_port_arg(env, argv[1], &port)) return NULL;
  bool has_on_error = argc > 3 && !is_nullish(env, argv[3]);
  if (!is_function(env, argv[2]) || (has_on_error && !is_function(env, argv[3]))) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "onMessage and onError must be functions");
    return NULL;
  }

  /* Resolve the name first so a typo gives ENODEV naming the interface, not a setsockopt error. */
  unsigned int ifindex = if_nametoindex(ifname);
  if (ifindex == 0) {
    char syscall[64];
    snprintf(syscall, sizeof syscall, "if_nametoindex(%s)", ifname);
    throw_errno(env, errno == 0 ? ENODEV : errno, syscall);
    return NULL;
  }
  const char *failed_call = "socket";
  int fd = open_device_socket(ifname, port, &failed_call);
  if (fd < 0) {
    throw_errno(env, -fd, failed_call);
    return NULL;
  }
  struct sockaddr_in bound;
  socklen_t bound_length = sizeof bound;
  if (getsockname(fd, (struct sockaddr *)&bound, &bound_length) < 0) {
    int err = errno;
    close(fd);
    throw_errno(env, err, "getsockname");
    return NULL;
  }

  DeviceSocket *self = calloc(1, sizeof *self);
  unsigned char *buffer = malloc(RECV_BUFFER_SIZE);
  if (self == NULL || buffer == NULL) {
    free(self);
    free(buffer);
    close(fd);
    throw_errno(env, ENOMEM, "malloc");
    return NULL;
  }
  self->env = env;
  self->fd = fd;
  self->recv_buffer = buffer;
  self->poll.data = self;
  /* From here on `self` belongs to the wrapper: every failure path goes through close_socket. */
  if (napi_wrap(env, this_value, self, finalize_wrapper, NULL, NULL) != napi_ok) {
    close(fd);
    free(buffer);
    free(self);
    napi_throw_error(env, "ERR_NAPI", "napi_wrap failed");
    return NULL;
  }

  napi_value resource_name;
  uv_loop_t *loop = NULL;
  int err = 0;
  const char *step = NULL;
  if (napi_create_reference(env, argv[2], 1, &self->on_message) != napi_ok ||
      (has_on_error && napi_create_reference(env, argv[3], 1, &self->on_error) != napi_ok) ||
      napi_create_string_utf8(env, "metalman.DeviceSocket", NAPI_AUTO_LENGTH, &resource_name) != napi_ok ||
      napi_async_init(env, NULL, resource_name, &self->async_context) != napi_ok ||
      napi_get_uv_event_loop(env, &loop) != napi_ok ||
      napi_add_async_cleanup_hook(env, on_env_cleanup, self, &self->cleanup_hook) != napi_ok) {
    err = ENOMEM;
    step = "napi setup";
  } else if ((err = uv_poll_init(loop, &self->poll, fd)) != 0) {
    err = -err;
    step = "uv_poll_init";
  } else {
    self->poll_started = true;
    if ((err = uv_poll_start(&self->poll, UV_READABLE, on_readable)) != 0) {
      err = -err;
      step = "uv_poll_start";
    }
  }
  if (step == NULL && napi_create_reference(env, this_value, 1, &self->wrapper) != napi_ok) {
    err = ENOMEM;
    step = "napi_create_reference";
  }
  if (step != NULL) {
    close_socket(self); /* the finalizer frees the memory later */
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (!pending) throw_errno(env, err, step);
    return NULL;
  }
  if (set_int_property(env, this_value, "interfaceIndex", (int)ifindex) == NULL ||
      set_int_property(env, this_value, "port", ntohs(bound.sin_port)) == NULL) {
    close_socket(self);
    return NULL;
  }
  return this_value;
}

static DeviceSocket *unwrap(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv) {
  napi_value this_value;
  void *data = NULL;
  if (napi_get_cb_info(env, info, argc, argv, &this_value, NULL) != napi_ok ||
      napi_unwrap(env, this_value, &data) != napi_ok || data == NULL) {
    napi_throw_type_error(env, "ERR_INVALID_THIS", "not a DeviceSocket");
    return NULL;
  }
  return (DeviceSocket *)data;
}

/* socket.send(data, address, port): one sendto(); throws with the errno code on failure. */
static napi_value send_datagram(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  DeviceSocket *self = unwrap(env, info, &argc, argv);
  if (self == NULL) return NULL;
  if (self->closed) {
    napi_throw_error(env, "ERR_SOCKET_DGRAM_NOT_RUNNING", "DeviceSocket is closed");
    return NULL;
  }
  if (argc < 3) {
    napi_throw_type_error(env, "ERR_MISSING_ARGS", "send(data, address, port)");
    return NULL;
  }
  bool is_typed = false;
  void *data = NULL;
  size_t length = 0;
  napi_typedarray_type array_type;
  napi_value array_buffer;
  size_t byte_offset;
  if (napi_is_typedarray(env, argv[0], &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(env, argv[0], &array_type, &length, &data, &array_buffer, &byte_offset) != napi_ok ||
      array_type != napi_uint8_array) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "data must be a Buffer or Uint8Array");
    return NULL;
  }
  char address[INET_ADDRSTRLEN];
  int port;
  if (!get_string_arg(env, argv[1], address, sizeof address, "address")) return NULL;
  if (!get_port_arg(env, argv[2], &port)) return NULL;
  struct sockaddr_in destination = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (inet_pton(AF_INET, address, &destination.sin_addr) != 1) {
    napi_throw_type_error(env, "ERR_INVALID_IP_ADDRESS", "address must be a dotted IPv4 address");
    return NULL;
  }
  ssize_t sent;
  do {
    sent = sendto(self->fd, data, length, 0, (struct sockaddr *)&destination, sizeof destination);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) {
    throw_errno(env, errno, "sendto");
    return NULL;
  }
  return NULL;
}

static napi_value close_method(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  DeviceSocket *self = unwrap(env, info, &argc, NULL);
  if (self != NULL) close_socket(self);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor methods[] = {
      {"send", NULL, send_datagram, NULL, NULL, NULL, napi_default_method, NULL},
      {"close", NULL, close_method, NULL, NULL, NULL, napi_default_method, NULL},
  };
  napi_value constructor;
  NAPI_CALL(env, napi_define_class(env, "DeviceSocket", NAPI_AUTO_LENGTH, construct, NULL,
                                   sizeof methods / sizeof methods[0], methods, &constructor));
  NAPI_CALL(env, napi_set_named_property(env, exports, "DeviceSocket", constructor));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
