/*
 * poll_socket.c - the lifetime, callback and setup code shared by the UDP socket addons.
 * See poll_socket.h for the rules; device_socket.c, udp_socket.c and udp_listener.c embed it.
 */
#define _GNU_SOURCE
#include "poll_socket.h"
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "napi_common.h"

/* ---------- lifetime ---------- */

static void maybe_free(PollSocket *self) {
  if (self->owners == 0 && self->poll_closed) {
    free(self->recv_buffer);
    free(self);
  }
}

static void on_poll_closed(uv_handle_t *handle) {
  PollSocket *self = (PollSocket *)handle->data;
  self->poll_closed = true;
  if (self->cleanup_hook != NULL) {
    /* Tells Node (normal close, or env teardown waiting for us) that no handle is left. */
    napi_remove_async_cleanup_hook(self->cleanup_hook);
    self->cleanup_hook = NULL;
  }
  maybe_free(self);
}

void poll_socket_close(PollSocket *self) {
  if (self->closed) return;
  self->closed = true;
  /* The concrete type's own teardown first, while the fd is still open: a worker thread that
   * reads it (udp_socket.c's lock-step thread) is joined before the descriptor goes away. */
  if (self->on_close != NULL) self->on_close(self);
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
  for (int i = 0; i < POLL_SOCKET_MAX_CALLBACKS; i++) {
    if (self->callbacks[i] != NULL) napi_delete_reference(env, self->callbacks[i]);
    self->callbacks[i] = NULL;
  }
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
  PollSocket *self = (PollSocket *)arg;
  self->cleanup_hook = handle; /* removed in on_poll_closed once libuv is done with the handle */
  poll_socket_close(self);
}

void poll_socket_release_owner(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  PollSocket *self = (PollSocket *)data;
  self->owners--;
  poll_socket_close(self); /* normally already closed; covers env teardown ordering */
  maybe_free(self);
}

/* ---------- calling JS ---------- */

void poll_socket_call_js(PollSocket *self, int index, size_t argc, napi_value *argv) {
  napi_env env = self->env;
  napi_value fn, receiver, result;
  napi_ref fn_ref = self->callbacks[index];
  if (fn_ref == NULL || napi_get_reference_value(env, fn_ref, &fn) != napi_ok || fn == NULL) return;
  /* The wrapper is referenced exactly while the socket is open, and callbacks only fire then. */
  if (self->wrapper == NULL || napi_get_reference_value(env, self->wrapper, &receiver) != napi_ok ||
      receiver == NULL)
    return;
  if (napi_make_callback(env, self->async_context, receiver, fn, argc, argv, &result) != napi_ok) {
    raise_pending_exception(env);
  }
}

void poll_socket_report_error(PollSocket *self, int index, int err, const char *syscall) {
  napi_value error = make_errno_error(self->env, err, syscall);
  poll_socket_call_js(self, index, 1, &error);
}

/* ---------- receive path ---------- */

ssize_t poll_socket_recv_pktinfo(PollSocket *self, size_t size, struct sockaddr_in *source, struct in_pktinfo *info,
                                 int *flags) {
  struct iovec iov = {.iov_base = self->recv_buffer, .iov_len = size};
  /* Room for the IP_PKTINFO control message. */
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(struct in_pktinfo))];
  } control;
  struct msghdr msg = {
      .msg_name = source,
      .msg_namelen = sizeof *source,
      .msg_iov = &iov,
      .msg_iovlen = 1,
      .msg_control = control.buf,
      .msg_controllen = sizeof control.buf,
  };
  ssize_t n = recvmsg(self->fd, &msg, MSG_DONTWAIT);
  if (n < 0) return errno == EWOULDBLOCK ? -EAGAIN : -errno;
  *flags = msg.msg_flags;
  memset(info, 0, sizeof *info);
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) memcpy(info, CMSG_DATA(c), sizeof *info);
  }
  return n;
}

void poll_socket_drain(PollSocket *self, int status, int max, int (*receive_one)(PollSocket *), int error_index,
                       const char *syscall) {
  if (self->closed) return;
  napi_handle_scope scope;
  if (napi_open_handle_scope(self->env, &scope) != napi_ok) return;
  if (status < 0) {
    poll_socket_report_error(self, error_index, -status, "poll");
  } else {
    for (int i = 0; i < max && !self->closed; i++) {
      int err = receive_one(self);
      if (err == EAGAIN) break;
      if (err == EINTR) continue;
      if (err != 0) {
        poll_socket_report_error(self, error_index, err, syscall);
        break;
      }
    }
  }
  napi_close_handle_scope(self->env, scope);
}

PollSocket *poll_socket_unwrap(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv,
                               const char *class_name) {
  napi_value this_value;
  void *data = NULL;
  if (napi_get_cb_info(env, info, argc, argv, &this_value, NULL) != napi_ok ||
      napi_unwrap(env, this_value, &data) != napi_ok || data == NULL) {
    char message[64];
    snprintf(message, sizeof message, "not a %s", class_name);
    napi_throw_type_error(env, "ERR_INVALID_THIS", message);
    return NULL;
  }
  return (PollSocket *)data;
}

bool poll_socket_check_open(napi_env env, PollSocket *self, const char *class_name) {
  if (!self->closed) return true;
  char message[64];
  snprintf(message, sizeof message, "%s is closed", class_name);
  napi_throw_error(env, "ERR_SOCKET_DGRAM_NOT_RUNNING", message);
  return false;
}

bool poll_socket_constructor_args(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv,
                                  napi_value *this_value, const char *class_name, size_t required, const char *usage) {
  napi_value new_target;
  if (napi_get_cb_info(env, info, argc, argv, this_value, NULL) != napi_ok ||
      napi_get_new_target(env, info, &new_target) != napi_ok) {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (!pending) napi_throw_error(env, "ERR_NAPI", "Node-API call failed: constructor arguments");
    return false;
  }
  if (new_target == NULL) {
    char message[64];
    snprintf(message, sizeof message, "%s must be called with new", class_name);
    napi_throw_type_error(env, "ERR_CONSTRUCT_CALL_REQUIRED", message);
    return false;
  }
  if (*argc < required) {
    napi_throw_type_error(env, "ERR_MISSING_ARGS", usage);
    return false;
  }
  return true;
}

/* ---------- socket setup ---------- */

int udp_socket_new(const char **failed_call) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) *failed_call = "socket";
  return fd;
}

bool udp_enable_option(int fd, int level, int name, const char *what, const char **failed_call) {
  int one = 1;
  if (setsockopt(fd, level, name, &one, sizeof one) == 0) return true;
  *failed_call = what;
  return false;
}

bool udp_bind(int fd, struct in_addr address, int port, const char **failed_call) {
  struct sockaddr_in local = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr = address};
  if (bind(fd, (struct sockaddr *)&local, sizeof local) == 0) return true;
  *failed_call = "bind";
  return false;
}

int udp_close_failed(int fd) {
  int err = errno;
  close(fd);
  return -err;
}

PollSocket *poll_socket_attach(napi_env env, napi_value this_value, int fd, size_t size, size_t recv_buffer_size,
                               const char *resource_name, const napi_value *callbacks, size_t callback_count,
                               int events, uv_poll_cb on_poll, void (*on_close)(PollSocket *), int *bound_port) {
  struct sockaddr_in bound;
  socklen_t bound_length = sizeof bound;
  if (getsockname(fd, (struct sockaddr *)&bound, &bound_length) < 0) {
    int err = errno;
    close(fd);
    throw_errno(env, err, "getsockname");
    return NULL;
  }
  *bound_port = ntohs(bound.sin_port);

  PollSocket *self = calloc(1, size);
  unsigned char *buffer = malloc(recv_buffer_size);
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
  self->poll_events = events;
  self->owners = 1;
  self->on_close = on_close;
  if (napi_wrap(env, this_value, self, poll_socket_release_owner, NULL, NULL) != napi_ok) {
    close(fd);
    free(buffer);
    free(self);
    napi_throw_error(env, "ERR_NAPI", "napi_wrap failed");
    return NULL;
  }

  /* From here on `self` belongs to the wrapper: every failure path goes through poll_socket_close. */
  napi_value resource;
  uv_loop_t *loop = NULL;
  int err = 0;
  const char *step = NULL;
  for (size_t i = 0; i < callback_count && step == NULL; i++) {
    if (callbacks[i] != NULL && napi_create_reference(env, callbacks[i], 1, &self->callbacks[i]) != napi_ok) {
      err = ENOMEM;
      step = "napi setup";
    }
  }
  if (step != NULL || napi_create_string_utf8(env, resource_name, NAPI_AUTO_LENGTH, &resource) != napi_ok ||
      napi_async_init(env, NULL, resource, &self->async_context) != napi_ok ||
      napi_get_uv_event_loop(env, &loop) != napi_ok ||
      napi_add_async_cleanup_hook(env, on_env_cleanup, self, &self->cleanup_hook) != napi_ok) {
    err = ENOMEM;
    step = "napi setup";
  } else if ((err = uv_poll_init(loop, &self->poll, fd)) != 0) {
    err = -err;
    step = "uv_poll_init";
  } else {
    self->poll_started = true;
    if ((err = uv_poll_start(&self->poll, events, on_poll)) != 0) {
      err = -err;
      step = "uv_poll_start";
    }
  }
  if (step == NULL && napi_create_reference(env, this_value, 1, &self->wrapper) != napi_ok) {
    err = ENOMEM;
    step = "napi_create_reference";
  }
  if (step != NULL) {
    poll_socket_close(self); /* the finalizer frees the memory later */
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (!pending) throw_errno(env, err, step);
    return NULL;
  }
  return self;
}
