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
 * Threading and lifetime: see poll_socket.h (one uv_poll_t on the env's loop, state freed once
 * the uv handle closed and the wrapper was finalized, an async env cleanup hook).
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
#include "poll_socket.h"

/* Largest possible UDP payload: nothing can be truncated with a buffer this size. */
#define RECV_BUFFER_SIZE 65536
/* Datagrams read per readability wakeup, so a flood cannot starve the rest of the event loop. */
#define MAX_DATAGRAMS_PER_WAKEUP 64

/* The JS callbacks, in PollSocket.callbacks (the socket needs no state beyond PollSocket). */
enum { ON_MESSAGE, ON_ERROR };

/* Read one datagram and hand it to JS. Returns 0, or an errno (EAGAIN = drained). */
static int receive_one(PollSocket *self) {
  struct sockaddr_in source;
  struct in_pktinfo info;
  int flags;
  ssize_t n = poll_socket_recv_pktinfo(self, RECV_BUFFER_SIZE, &source, &info, &flags);
  if (n < 0) return (int)-n;
  int ifindex = info.ipi_ifindex;
  struct in_addr destination = info.ipi_addr; /* header destination: 255.255.255.255 for a broadcast */

  char address[INET_ADDRSTRLEN] = "0.0.0.0";
  char destination_text[INET_ADDRSTRLEN] = "0.0.0.0";
  inet_ntop(AF_INET, &source.sin_addr, address, sizeof address);
  inet_ntop(AF_INET, &destination, destination_text, sizeof destination_text);

  napi_env env = self->env;
  napi_value argv[5];
  void *copy;
  if (napi_create_buffer_copy(env, (size_t)n, self->recv_buffer, &copy, &argv[0]) == napi_ok &&
      napi_create_string_utf8(env, address, NAPI_AUTO_LENGTH, &argv[1]) == napi_ok &&
      napi_create_uint32(env, ntohs(source.sin_port), &argv[2]) == napi_ok &&
      napi_create_int32(env, ifindex, &argv[3]) == napi_ok &&
      napi_create_string_utf8(env, destination_text, NAPI_AUTO_LENGTH, &argv[4]) == napi_ok) {
    poll_socket_call_js(self, ON_MESSAGE, 5, argv);
  }
  return 0;
}

static void on_readable(uv_poll_t *handle, int status, int events) {
  (void)events;
  poll_socket_drain((PollSocket *)handle->data, status, MAX_DATAGRAMS_PER_WAKEUP, receive_one, ON_ERROR, "recvmsg");
}

/* ---------- socket setup ---------- */

/* Returns an open fd, or -errno with *failed_call naming the failing step. */
static int open_device_socket(const char *ifname, int port, const char **failed_call) {
  int fd = udp_socket_new(failed_call);
  if (fd < 0) return -errno;
  /* SO_REUSEADDR: one socket per interface may share 0.0.0.0:67 (each pinned to its own device),
     and a restart does not have to wait for the old socket. */
  if (!udp_enable_option(fd, SOL_SOCKET, SO_REUSEADDR, "setsockopt(SO_REUSEADDR)", failed_call) ||
      /* SO_BROADCAST: without it the kernel refuses sendto(255.255.255.255) with EACCES. */
      !udp_enable_option(fd, SOL_SOCKET, SO_BROADCAST, "setsockopt(SO_BROADCAST)", failed_call))
    return udp_close_failed(fd);
  /* SO_BINDTODEVICE: receive only what arrives on this NIC (a 0.0.0.0 socket otherwise hears the
     broadcasts of every NIC) and send out of this NIC without a route lookup, which is what
     makes a limited broadcast work without a default route. Needs CAP_NET_RAW. */
  if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, ifname, (socklen_t)strlen(ifname)) < 0) {
    *failed_call = "setsockopt(SO_BINDTODEVICE)";
    return udp_close_failed(fd);
  }
  /* IP_PKTINFO: report the arrival interface and header destination of each datagram, so the
     server can tell a broadcast from a unicast and log the interface. Bind the wildcard
     address: broadcast DISCOVERs (to 255.255.255.255) never match a socket bound to the
     interface's own address. */
  struct in_addr any = {.s_addr = htonl(INADDR_ANY)};
  if (!udp_enable_option(fd, IPPROTO_IP, IP_PKTINFO, "setsockopt(IP_PKTINFO)", failed_call) ||
      !udp_bind(fd, any, port, failed_call))
    return udp_close_failed(fd);
  return fd;
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
  napi_value argv[4], this_value;
  if (!poll_socket_constructor_args(env, info, &argc, argv, &this_value, "DeviceSocket", 3,
                                    "DeviceSocket(interfaceName, port, onMessage, onError?)"))
    return NULL;
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
  napi_value callbacks[] = {[ON_MESSAGE] = argv[2], [ON_ERROR] = has_on_error ? argv[3] : NULL};
  int bound_port;
  PollSocket *self = poll_socket_attach(env, this_value, fd, sizeof(PollSocket), RECV_BUFFER_SIZE,
                                        "metalman.DeviceSocket", callbacks, 2, UV_READABLE, on_readable, NULL,
                                        &bound_port);
  if (self == NULL) return NULL;
  if (set_int_property(env, this_value, "interfaceIndex", (int)ifindex) == NULL ||
      set_int_property(env, this_value, "port", bound_port) == NULL) {
    poll_socket_close(self);
    return NULL;
  }
  return this_value;
}

/* socket.send(data, address, port): one sendto(); throws with the errno code on failure. */
static napi_value send_datagram(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  PollSocket *self = poll_socket_unwrap(env, info, &argc, argv, "DeviceSocket");
  if (self == NULL || !poll_socket_check_open(env, self, "DeviceSocket")) return NULL;
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
  PollSocket *self = poll_socket_unwrap(env, info, &argc, NULL, "DeviceSocket");
  if (self != NULL) poll_socket_close(self);
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
