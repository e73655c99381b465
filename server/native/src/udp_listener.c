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
 * Threading and lifetime: see poll_socket.h (JS thread only, a uv_poll_t on the env's loop,
 * native state freed once the uv handle closed and the wrapper was finalized).
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
#include "poll_socket.h"

#define LISTENER_RECV_BUFFER_SIZE 65536
/* Bounded work per wakeup, so a flood on one socket cannot starve the loop. */
#define LISTENER_MAX_DATAGRAMS_PER_WAKEUP 32

/* The JS callbacks, in PollSocket.callbacks (the listener needs no state beyond PollSocket). */
enum { ON_MESSAGE, ON_ERROR };

/* Reads and delivers one datagram. Returns 0, or an errno (EAGAIN = drained). */
static int listener_receive_one(PollSocket *self) {
  struct sockaddr_in source;
  struct in_pktinfo info;
  int flags;
  ssize_t n = poll_socket_recv_pktinfo(self, LISTENER_RECV_BUFFER_SIZE, &source, &info, &flags);
  if (n < 0) return (int)-n;
  if (flags & MSG_TRUNC) return 0; /* cannot happen with a 64 KiB buffer; never deliver a partial datagram */
  struct in_addr local = info.ipi_spec_dst;
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
    poll_socket_call_js(self, ON_MESSAGE, 4, argv);
  }
  return 0;
}

static void listener_on_poll(uv_poll_t *handle, int status, int events) {
  (void)events;
  poll_socket_drain((PollSocket *)handle->data, status, LISTENER_MAX_DATAGRAMS_PER_WAKEUP, listener_receive_one,
                    ON_ERROR, "recvmsg");
}

static int open_listener_socket(struct in_addr address, int port, bool reuse, const char **failed_call) {
  int fd = udp_socket_new(failed_call);
  if (fd < 0) return -errno;
  if ((reuse && !udp_enable_option(fd, SOL_SOCKET, SO_REUSEADDR, "setsockopt(SO_REUSEADDR)", failed_call)) ||
      !udp_enable_option(fd, IPPROTO_IP, IP_PKTINFO, "setsockopt(IP_PKTINFO)", failed_call) ||
      /* Replies to a relay may go to a subnet broadcast giaddr (a misconfiguration, but not ours to fail). */
      !udp_enable_option(fd, SOL_SOCKET, SO_BROADCAST, "setsockopt(SO_BROADCAST)", failed_call) ||
      !udp_bind(fd, address, port, failed_call))
    return udp_close_failed(fd);
  return fd;
}

/* new UdpListener(localAddress, port, onMessage, onError, reuseAddress?) */
static napi_value listener_construct(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5], this_value;
  if (!poll_socket_constructor_args(env, info, &argc, argv, &this_value, "UdpListener", 4,
                                    "UdpListener(localAddress, port, onMessage, onError, reuseAddress?)"))
    return NULL;
  struct in_addr address;
  int port;
  if (!get_ipv4_arg(env, argv[0], &address, "localAddress") || !get_port_arg(env, argv[1], &port)) return NULL;
  if (!is_function(env, argv[2]) || !is_function(env, argv[3])) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "onMessage and onError must be functions");
    return NULL;
  }
  bool reuse = false;
  if (argc >= 5 && !is_nullish(env, argv[4])) NAPI_CALL(env, napi_get_value_bool(env, argv[4], &reuse));
  const char *failed_call = "socket";
  int fd = open_listener_socket(address, port, reuse, &failed_call);
  if (fd < 0) return throw_errno(env, -fd, failed_call);
  napi_value callbacks[] = {[ON_MESSAGE] = argv[2], [ON_ERROR] = argv[3]};
  int bound_port;
  PollSocket *self = poll_socket_attach(env, this_value, fd, sizeof(PollSocket), LISTENER_RECV_BUFFER_SIZE,
                                        "metalman.UdpListener", callbacks, 2, UV_READABLE, listener_on_poll, NULL,
                                        &bound_port);
  if (self == NULL) return NULL;
  napi_value port_value;
  if (napi_create_int32(env, bound_port, &port_value) != napi_ok ||
      napi_set_named_property(env, this_value, "port", port_value) != napi_ok) {
    poll_socket_close(self);
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (!pending) throw_errno(env, ENOMEM, "port property");
    return NULL;
  }
  return this_value;
}

/* listener.send(data, address, port, sourceAddress?) */
static napi_value listener_send(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  PollSocket *self = poll_socket_unwrap(env, info, &argc, argv, "UdpListener");
  if (self == NULL || !poll_socket_check_open(env, self, "UdpListener")) return NULL;
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
  if (!get_ipv4_arg(env, argv[1], &destination, "address") || !get_port_arg(env, argv[2], &port)) return NULL;
  bool with_source = argc >= 4 && !is_nullish(env, argv[3]);
  if (with_source && !get_ipv4_arg(env, argv[3], &source, "sourceAddress")) return NULL;
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
  PollSocket *self = poll_socket_unwrap(env, info, &argc, NULL, "UdpListener");
  if (self != NULL) poll_socket_close(self);
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
