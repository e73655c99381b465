/*
 * udp_listener.c - an unconnected UDP socket that knows which local address each datagram was
 * sent to (IP_PKTINFO), and can answer from a chosen local address.
 *
 * Why this exists: a server bound to 0.0.0.0 on a host with a secondary address, a VIP or
 * several NICs must answer from the address the client talked to; EDK2 (and most PXE ROMs)
 * drop a reply from any other source. Node's dgram reports neither the destination of a
 * datagram nor lets a send pick its source. The TFTP server binds each transfer to the
 * reported address; the DHCP relay transport sends its replies with it as the source.
 *
 * JS API (plain Node-API, NAPI_VERSION 8; registered by udp_socket.c's module init):
 *   new UdpListener(localAddress, port, onMessage, onError)
 *     A non-blocking AF_INET socket with IP_PKTINFO (and SO_REUSEADDR when reuseAddress is
 *     true), bound to localAddress:port.
 *     onMessage(data: Buffer, address: string, port: number, localAddress: string)
 *        localAddress: the local address the datagram was for (ipi_spec_dst: the destination
 *        itself for unicast, the interface's address for a broadcast).
 *     onError(err: Error)   receive-side errors (the socket stays open)
 *   listener.send(data, address, port, sourceAddress?): number
 *     One sendmsg(2); with sourceAddress (a local IPv4 literal) the datagram leaves from it
 *     (IP_PKTINFO ipi_spec_dst). 0 = sent, otherwise the errno (never throws for I/O errors).
 *   listener.close(): void   idempotent; no callback fires after it returns
 *   listener.port: number     the bound local port
 *
 * Threading and lifetime follow udp_socket.c: JS thread only, a uv_poll_t on the env's loop,
 * native state freed once the uv handle closed and the wrapper was finalized.
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

#define LISTENER_RECV_BUFFER_SIZE 65536
/* Bounded work per wakeup, so a flood on one socket cannot starve the loop. */
#define LISTENER_MAX_DATAGRAMS_PER_WAKEUP 32

typedef struct {
  napi_env env;
  int fd;
  uv_poll_t poll;
  bool closed;
  bool poll_started;
  bool poll_closed;
  bool finalized;
  napi_ref wrapper; /* strong while open */
  napi_ref on_message;
  napi_ref on_error;
  napi_async_context async_context;
  napi_async_cleanup_hook_handle cleanup_hook;
  unsigned char *recv_buffer;
} UdpListener;

static void listener_maybe_free(UdpListener *self) {
  if (self->finalized && self->poll_closed) {
    free(self->recv_buffer);
    free(self);
  }
}

static void listener_on_poll_closed(uv_handle_t *handle) {
  UdpListener *self = (UdpListener *)handle->data;
  self->poll_closed = true;
  if (self->cleanup_hook != NULL) {
    napi_remove_async_cleanup_hook(self->cleanup_hook);
    self->cleanup_hook = NULL;
  }
  listener_maybe_free(self);
}

static void listener_close(UdpListener *self) {
  if (self->closed) return;
  self->closed = true;
  if (self->poll_started) {
    uv_close((uv_handle_t *)&self->poll, listener_on_poll_closed);
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
    napi_delete_reference(env, self->wrapper);
    self->wrapper = NULL;
  }
  if (!self->poll_started && self->cleanup_hook != NULL) {
    napi_remove_async_cleanup_hook(self->cleanup_hook);
    self->cleanup_hook = NULL;
  }
}

static void listener_on_env_cleanup(napi_async_cleanup_hook_handle handle, void *arg) {
  UdpListener *self = (UdpListener *)arg;
  self->cleanup_hook = handle;
  listener_close(self);
}

static void listener_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  UdpListener *self = (UdpListener *)data;
  self->finalized = true;
  listener_close(self);
  listener_maybe_free(self);
}

static void listener_call_js(UdpListener *self, napi_ref fn_ref, size_t argc, napi_value *argv) {
  napi_env env = self->env;
  napi_value fn, receiver, result;
  if (fn_ref == NULL || napi_get_reference_value(env, fn_ref, &fn) != napi_ok || fn == NULL) return;
  if (self->wrapper == NULL || napi_get_reference_value(env, self->wrapper, &receiver) != napi_ok ||
      receiver == NULL)
    return;
  if (napi_make_callback(env, self->async_context, receiver, fn, argc, argv, &result) != napi_ok) {
    raise_pending_exception(env);
  }
}

/* Reads and delivers one datagram. Returns 0, or an errno (EAGAIN = drained). */
static int listener_receive_one(UdpListener *self) {
  struct sockaddr_in source;
  struct iovec iov = {.iov_base = self->recv_buffer, .iov_len = LISTENER_RECV_BUFFER_SIZE};
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
  if (msg.msg_flags & MSG_TRUNC) return 0; /* cannot happen with a 64 KiB buffer; never deliver a partial datagram */
  struct in_addr local = {0};
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
      struct in_pktinfo info;
      memcpy(&info, CMSG_DATA(c), sizeof info);
      local = info.ipi_spec_dst;
    }
  }
  char address[INET_ADDRSTRLEN] = "0.0.0.0";
  char local_text[INET_ADDRSTRLEN] = "0.0.0.0";
  inet_ntop(AF_INET, &source.sin_addr, address, sizeof address);
  inet_ntop(AF_INET, &local, local_text, sizeof local_text);
  napi_env env = self->env;
  napi_value argv[4];
  void *copy;
  if (napi_create_buffer_copy(env, (size_t)n, self->recv_buffer, &copy, &argv[0]) == napi_ok &&
      napi_create_string_utf8(env, address, NAPI_AUTO_LENGTH, &argv[1]) == napi_ok &&
      napi_create_uint32(env, ntohs(source.sin_port), &argv[2]) == napi_ok &&
      napi_create_string_utf8(env, local_text, NAPI_AUTO_LENGTH, &argv[3]) == napi_ok) {
    listener_call_js(self, self->on_message, 4, argv);
  }
  return 0;
}

static void listener_on_poll(uv_poll_t *handle, int status, int events) {
  (void)events;
  UdpListener *self = (UdpListener *)handle->data;
  if (self->closed) return;
  napi_env env = self->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  if (status < 0) {
    napi_value error = make_errno_error(env, -status, "poll");
    listener_call_js(self, self->on_error, 1, &error);
  } else {
    for (int i = 0; i < LISTENER_MAX_DATAGRAMS_PER_WAKEUP && !self->closed; i++) {
      int err = listener_receive_one(self);
      if (err == EAGAIN) break;
      if (err == EINTR) continue;
      if (err != 0) {
        napi_value error = make_errno_error(env, err, "recvmsg");
        listener_call_js(self, self->on_error, 1, &error);
        break;
      }
    }
  }
  napi_close_handle_scope(env, scope);
}

static bool listener_ipv4_arg(napi_env env, napi_value value, struct in_addr *out, const char *what) {
  char text[INET_ADDRSTRLEN];
  size_t length = 0;
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_string ||
      napi_get_value_string_utf8(env, value, text, sizeof text, &length) != napi_ok ||
      inet_pton(AF_INET, text, out) != 1) {
    char message[96];
    snprintf(message, sizeof message, "%s must be a dotted IPv4 address", what);
    napi_throw_type_error(env, "ERR_INVALID_IP_ADDRESS", message);
    return false;
  }
  return true;
}

static int open_listener_socket(struct in_addr address, int port, bool reuse, const char **failed_call) {
  int one = 1;
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *failed_call = "socket";
    return -errno;
  }
  if (reuse && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) {
    *failed_call = "setsockopt(SO_REUSEADDR)";
    goto fail;
  }
  if (setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one) < 0) {
    *failed_call = "setsockopt(IP_PKTINFO)";
    goto fail;
  }
  /* Replies to a relay may go to a subnet broadcast giaddr (a misconfiguration, but not ours to fail). */
  if (setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof one) < 0) {
    *failed_call = "setsockopt(SO_BROADCAST)";
    goto fail;
  }
  struct sockaddr_in local = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr = address};
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

/* new UdpListener(localAddress, port, onMessage, onError, reuseAddress?) */
static napi_value listener_construct(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5], this_value, new_target;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, &this_value, NULL));
  NAPI_CALL(env, napi_get_new_target(env, info, &new_target));
  if (new_target == NULL) {
    napi_throw_type_error(env, "ERR_CONSTRUCT_CALL_REQUIRED", "UdpListener must be called with new");
    return NULL;
  }
  if (argc < 4) {
    napi_throw_type_error(env, "ERR_MISSING_ARGS", "UdpListener(localAddress, port, onMessage, onError, reuseAddress?)");
    return NULL;
  }
  struct in_addr address;
  int port;
  if (!listener_ipv4_arg(env, argv[0], &address, "localAddress") || !get_port_arg(env, argv[1], &port)) return NULL;
  if (!is_function(env, argv[2]) || !is_function(env, argv[3])) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "onMessage and onError must be functions");
    return NULL;
  }
  bool reuse = false;
  if (argc >= 5 && !is_nullish(env, argv[4])) NAPI_CALL(env, napi_get_value_bool(env, argv[4], &reuse));
  const char *failed_call = "socket";
  int fd = open_listener_socket(address, port, reuse, &failed_call);
  if (fd < 0) {
    napi_throw(env, make_errno_error(env, -fd, failed_call));
    return NULL;
  }
  struct sockaddr_in bound;
  socklen_t bound_length = sizeof bound;
  if (getsockname(fd, (struct sockaddr *)&bound, &bound_length) < 0) {
    int err = errno;
    close(fd);
    napi_throw(env, make_errno_error(env, err, "getsockname"));
    return NULL;
  }
  UdpListener *self = calloc(1, sizeof *self);
  unsigned char *buffer = malloc(LISTENER_RECV_BUFFER_SIZE);
  if (self == NULL || buffer == NULL) {
    free(self);
    free(buffer);
    close(fd);
    napi_throw(env, make_errno_error(env, ENOMEM, "malloc"));
    return NULL;
  }
  self->env = env;
  self->fd = fd;
  self->recv_buffer = buffer;
  self->poll.data = self;
  if (napi_wrap(env, this_value, self, listener_finalize, NULL, NULL) != napi_ok) {
    close(fd);
    free(buffer);
    free(self);
    napi_throw_error(env, "ERR_NAPI", "napi_wrap failed");
    return NULL;
  }
  napi_value resource_name, port_value;
  uv_loop_t *loop = NULL;
  int err = 0;
  const char *step = NULL;
  if (napi_create_reference(env, argv[2], 1, &self->on_message) != napi_ok ||
      napi_create_reference(env, argv[3], 1, &self->on_error) != napi_ok ||
      napi_create_string_utf8(env, "metalman.UdpListener", NAPI_AUTO_LENGTH, &resource_name) != napi_ok ||
      napi_async_init(env, NULL, resource_name, &self->async_context) != napi_ok ||
      napi_get_uv_event_loop(env, &loop) != napi_ok ||
      napi_add_async_cleanup_hook(env, listener_on_env_cleanup, self, &self->cleanup_hook) != napi_ok) {
    err = ENOMEM;
    step = "napi setup";
  } else if ((err = uv_poll_init(loop, &self->poll, fd)) != 0) {
    err = -err;
    step = "uv_poll_init";
  } else {
    self->poll_started = true;
    if ((err = uv_poll_start(&self->poll, UV_READABLE, listener_on_poll)) != 0) {
      err = -err;
      step = "uv_poll_start";
    }
  }
  if (step == NULL && napi_create_reference(env, this_value, 1, &self->wrapper) != napi_ok) {
    err = ENOMEM;
    step = "napi_create_reference";
  }
  if (step == NULL && (napi_create_int32(env, ntohs(bound.sin_port), &port_value) != napi_ok ||
                       napi_set_named_property(env, this_value, "port", port_value) != napi_ok)) {
    err = ENOMEM;
    step = "port property";
  }
  if (step != NULL) {
    listener_close(self);
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (!pending) napi_throw(env, make_errno_error(env, err, step));
    return NULL;
  }
  return this_value;
}

static UdpListener *listener_unwrap(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv) {
  napi_value this_value;
  void *data = NULL;
  if (napi_get_cb_info(env, info, argc, argv, &this_value, NULL) != napi_ok ||
      napi_unwrap(env, this_value, &data) != napi_ok || data == NULL) {
    napi_throw_type_error(env, "ERR_INVALID_THIS", "not a UdpListener");
    return NULL;
  }
  return (UdpListener *)data;
}

/* listener.send(data, address, port, sourceAddress?) */
static napi_value listener_send(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  UdpListener *self = listener_unwrap(env, info, &argc, argv);
  if (self == NULL) return NULL;
  if (self->closed) {
    napi_throw_error(env, "ERR_SOCKET_DGRAM_NOT_RUNNING", "UdpListener is closed");
    return NULL;
  }
  if (argc < 3) {
    napi_throw_type_error(env, "ERR_MISSING_ARGS", "send(data, address, port, sourceAddress?)");
    return NULL;
  }
  void *data = NULL;
  size_t length = 0;
  bool is_buffer = false;
  if (napi_is_buffer(env, argv[0], &is_buffer) != napi_ok || !is_buffer ||
      napi_get_buffer_info(env, argv[0], &data, &length) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "data must be a Buffer");
    return NULL;
  }
  struct in_addr destination, source = {0};
  int port;
  if (!listener_ipv4_arg(env, argv[1], &destination, "address") || !get_port_arg(env, argv[2], &port)) return NULL;
  bool with_source = argc >= 4 && !is_nullish(env, argv[3]);
  if (with_source && !listener_ipv4_arg(env, argv[3], &source, "sourceAddress")) return NULL;
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr = destination};
  struct iovec iov = {.iov_base = data, .iov_len = length};
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(struct in_pktinfo))];
  } control;
  memset(&control, 0, sizeof control);
  struct msghdr msg = {.msg_name = &to, .msg_namelen = sizeof to, .msg_iov = &iov, .msg_iovlen = 1};
  if (with_source && source.s_addr != htonl(INADDR_ANY)) {
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof control.buf;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = IPPROTO_IP;
    c->cmsg_type = IP_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof(struct in_pktinfo));
    struct in_pktinfo pktinfo = {.ipi_ifindex = 0, .ipi_spec_dst = source};
    memcpy(CMSG_DATA(c), &pktinfo, sizeof pktinfo);
  }
  ssize_t sent;
  do {
    sent = sendmsg(self->fd, &msg, MSG_DONTWAIT);
  } while (sent < 0 && errno == EINTR);
  napi_value result;
  NAPI_CALL(env, napi_create_int32(env, sent < 0 ? errno : 0, &result));
  return result;
}

static napi_value listener_close_method(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  UdpListener *self = listener_unwrap(env, info, &argc, NULL);
  if (self != NULL) listener_close(self);
  return NULL;
}

/* Called from udp_socket.c's module init: the addon exports UdpSocket and UdpListener. */
napi_status udp_listener_register(napi_env env, napi_value exports) {
  napi_property_descriptor methods[] = {
      {"send", NULL, listener_send, NULL, NULL, NULL, napi_default_method, NULL},
      {"close", NULL, listener_close_method, NULL, NULL, NULL, napi_default_method, NULL},
  };
  napi_value constructor;
  napi_status status = napi_define_class(env, "UdpListener", NAPI_AUTO_LENGTH, listener_construct, NULL,
                                         sizeof methods / sizeof methods[0], methods, &constructor);
  if (status != napi_ok) return status;
  return napi_set_named_property(env, exports, "UdpListener", constructor);
}
