/*
 * Helpers shared by metalman's Node-API addons (device_socket.c, udp_socket.c, udp_listener.c,
 * poll_socket.c, sendfile.c, open_beneath.c):
 * errno -> JS Error conversion in Node's own shape, and argument checks. Header-only
 * (static inline), so an addon needs no extra source file for them.
 */
#ifndef METALMAN_NAPI_COMMON_H
#define METALMAN_NAPI_COMMON_H

#include <arpa/inet.h>
#include <node_api.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

/* Build `Error("<syscall> <CODE>: <message>")` with code/errno/syscall, like Node's own. */
static inline napi_value make_errno_error(napi_env env, int err, const char *syscall) {
  char message[256];
  const char *name = uv_err_name(-err); /* libuv error codes are negated errno values on Unix */
  snprintf(message, sizeof message, "%s %s: %s", syscall, name, strerror(err));
  napi_value code_value, message_value, error, errno_value, syscall_value;
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code_value);
  napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &message_value);
  napi_create_error(env, code_value, message_value, &error);
  napi_create_int32(env, -err, &errno_value);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &syscall_value);
  napi_set_named_property(env, error, "errno", errno_value);
  napi_set_named_property(env, error, "syscall", syscall_value);
  return error;
}

/* Throws the errno error; returns NULL so JS-facing functions can `return throw_errno(...)`. */
static inline napi_value throw_errno(napi_env env, int err, const char *syscall) {
  napi_throw(env, make_errno_error(env, err, syscall));
  return NULL;
}

/* Bail out of a JS-facing function when a Node-API call fails (an exception is then pending or is thrown). */
#define NAPI_CALL(env, call)                                                             \
  do {                                                                                   \
    if ((call) != napi_ok) {                                                             \
      bool pending = false;                                                              \
      napi_is_exception_pending((env), &pending);                                        \
      if (!pending) napi_throw_error((env), "ERR_NAPI", "Node-API call failed: " #call); \
      return NULL;                                                                       \
    }                                                                                    \
  } while (0)

/* A UDP port argument: an integer 0..65535 (0 = let the kernel choose). Throws RangeError otherwise. */
static inline bool get_port_arg(napi_env env, napi_value value, int *port) {
  napi_valuetype type;
  double number = -1;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_number ||
      napi_get_value_double(env, value, &number) != napi_ok || number < 0 || number > 65535 ||
      number != (double)(int)number) {
    napi_throw_range_error(env, "ERR_SOCKET_BAD_PORT", "port must be an integer 0..65535");
    return false;
  }
  *port = (int)number;
  return true;
}

/* A dotted IPv4 string argument. Throws TypeError(ERR_INVALID_IP_ADDRESS) naming `what` otherwise. */
static inline bool get_ipv4_arg(napi_env env, napi_value value, struct in_addr *out, const char *what) {
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

static inline bool is_function(napi_env env, napi_value value) {
  napi_valuetype type;
  return napi_typeof(env, value, &type) == napi_ok && type == napi_function;
}

static inline bool is_nullish(napi_env env, napi_value value) {
  napi_valuetype type;
  return napi_typeof(env, value, &type) == napi_ok && (type == napi_undefined || type == napi_null);
}

/* An exception thrown by a JS callback we invoked must not vanish silently: hand it to Node
   as an 'uncaughtException', the same as a throwing EventEmitter listener. */
static inline void raise_pending_exception(napi_env env) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) {
    napi_value exception;
    napi_get_and_clear_last_exception(env, &exception);
    napi_fatal_exception(env, exception);
  }
}

#endif
